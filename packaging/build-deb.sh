#!/bin/bash
# Builds the Debian package with dpkg-deb (no cargo-deb, no debhelper):
#
#     bash packaging/build-deb.sh [--lintian]
#
# Runs `cargo build --release --locked`, stages the files, writes
# DEBIAN/control with dependencies from dpkg-shlibdeps, and prints the path
# of the result, target/debian/pam-nsjail_VERSION_ARCH.deb (relative to the
# repository root), as its last line. --lintian also runs lintian on it.
#
# Installing the package enables nothing: the admin appends
# '@include nsjail' to /etc/pam.d/sshd. Removal is refused while a PAM
# service still uses the module; purging also clears /run/pam_nsjail.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

run_lintian=no
case "${1:-}" in
"") ;;
--lintian) run_lintian=yes ;;
*)
    echo "usage: bash packaging/build-deb.sh [--lintian]" >&2
    exit 2
    ;;
esac
for tool in cargo dpkg-deb dpkg-architecture strip gzip; do
    command -v "$tool" >/dev/null || {
        echo "build-deb.sh: $tool is missing (apt-get install dpkg-dev; cargo from rustup or apt)" >&2
        exit 1
    }
done

package=pam-nsjail
# The version of [workspace.package] in Cargo.toml.
version=$(awk '/^\[/ { section = $0; next }
    section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
[ -n "$version" ] || { echo "build-deb.sh: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
# Where libpam looks for modules; Debian's pam.pc has no securedir.
securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
[ -n "$securedir" ] || securedir=/usr/lib/$multiarch/security
# Reproducible timestamps (dpkg-deb clamps file times to it too).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

cargo build --release --locked

work=target/debian/build
stage=$work/debian/$package
rm -rf "$work"
mkdir -p "$stage"
doc=/usr/share/doc/$package
install -d "$stage/DEBIAN" "$stage$securedir" "$stage/usr/sbin" "$stage/etc/pam.d" \
    "$stage/etc/security" "$stage/usr/share/man/man5" "$stage/usr/share/man/man8" "$stage$doc"

install -m644 target/release/libpam_nsjail.so "$stage$securedir/pam_nsjail.so"
install -m755 target/release/nsjail-helper "$stage/usr/sbin/nsjail-helper"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$stage$securedir/pam_nsjail.so" "$stage/usr/sbin/nsjail-helper"
install -m644 config/pam.d/nsjail "$stage/etc/pam.d/nsjail"
install -m644 config/pam_nsjail.toml "$stage/etc/security/pam_nsjail.toml"
# The user manager's drop-in (NotifyAccess=all), read by systemd only; a
# package's unit drop-ins live under /usr/lib.
install -D -m644 "config/systemd/user@.service.d/pam_nsjail.conf" \
    "$stage/usr/lib/systemd/system/user@.service.d/pam_nsjail.conf"
for page in pam_nsjail.8 nsjail-helper.8 pam_nsjail.toml.5; do
    gzip -9n <"packaging/man/$page" >"$stage/usr/share/man/man${page##*.}/$page.gz"
done
install -m644 README.md SECURITY.md packaging/debian/copyright "$stage$doc/"
# Debian policy 12.3: compress documentation larger than 4 KiB.
find "$stage$doc" -type f -name '*.md' -size +4k -exec gzip -9n {} +
install -D -m644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/$package"
# A native package's changelog (lintian wants one in every binary package).
changelog_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
gzip -9n >"$stage$doc/changelog.gz" <<CHANGELOG
$package ($version) unstable; urgency=medium

  * Upstream release $version; see the project's git history.

 -- pam_nsjail developers <security@pam-nsjail.invalid>  $changelog_date
CHANGELOG

for script in postinst prerm postrm; do
    install -m755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done
printf '/etc/pam.d/nsjail\n/etc/security/pam_nsjail.toml\n' >"$stage/DEBIAN/conffiles"
# Checksums for debsums, conffiles excluded (dpkg tracks those itself).
(cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
    LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/conffiles"

# Shared-library dependencies, as debhelper would compute them.
depends="libc6 (>= 2.34), libgcc-s1 (>= 4.2), libpam0g (>= 0.99.7.1)"
if command -v dpkg-shlibdeps >/dev/null; then
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" >"$work/debian/control"
    # A failing dpkg-shlibdeps must not end the build (set -e, pipefail):
    # the fallback above is then used.
    shlibs=$(cd "$work" && dpkg-shlibdeps -O \
        "-edebian/$package$securedir/pam_nsjail.so" "-edebian/$package/usr/sbin/nsjail-helper" 2>/dev/null |
        sed -n 's/^shlibs:Depends=//p') || shlibs=""
    [ -z "$shlibs" ] || depends=$shlibs
fi
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: $arch
Maintainer: pam_nsjail developers <security@pam-nsjail.invalid>
Installed-Size: $installed_size
Depends: $depends, libpam-runtime
Recommends: iproute2, nftables, conntrack
Section: admin
Priority: optional
Description: PAM module isolating ssh logins in per-user namespaces
 pam_nsjail places the ssh logins of users in isolated groups into fresh
 user, mount, pid and ipc namespaces with a private /tmp, /var/tmp and
 /dev/shm, so that users of a shared host (a university login node, a
 shell provider) cannot see each other's processes, temporary files or
 SysV and POSIX IPC objects. Host root is never mapped into a session:
 setuid-root programs do not elevate there.
 .
 Which groups are isolated is set in /etc/security/pam_nsjail.toml.
 The package contains the PAM module, the non-setuid helper and admin
 tool nsjail-helper, the example policy and the include file
 /etc/pam.d/nsjail. It enables nothing: add '@include nsjail' to
 /etc/pam.d/sshd.
CONTROL

out=target/debian/${package}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
if [ "$run_lintian" = yes ]; then
    if command -v lintian >/dev/null; then
        lintian --info "$out" >&2 || true
    else
        echo "build-deb.sh: lintian is not installed (apt-get install lintian)" >&2
    fi
fi
echo "$out"
