#!/bin/bash
# Builds target/debian/pam-nsjail_VERSION_ARCH.deb with dpkg-deb.
# Installing it enables nothing: the admin adds '@include nsjail' to
# /etc/pam.d/sshd. Purging removes the runtime state in /run/pam_nsjail.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
[ -n "$securedir" ] || securedir=/usr/lib/$multiarch/security
cargo build --release --locked --quiet

stage=target/debian/stage
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage$securedir" "$stage/usr/sbin" "$stage/etc/pam.d" "$stage/etc/security" \
    "$stage/usr/share/man/man5" "$stage/usr/share/man/man8" "$stage/usr/share/doc/pam-nsjail"
install -m644 target/release/libpam_nsjail.so "$stage$securedir/pam_nsjail.so"
install -m755 target/release/nsjail-helper "$stage/usr/sbin/nsjail-helper"
strip --strip-unneeded "$stage$securedir/pam_nsjail.so" "$stage/usr/sbin/nsjail-helper"
install -m644 config/pam.d/nsjail "$stage/etc/pam.d/nsjail"
install -m644 config/pam_nsjail.toml "$stage/etc/security/pam_nsjail.toml"
gzip -9n <packaging/man/pam_nsjail.8 >"$stage/usr/share/man/man8/pam_nsjail.8.gz"
gzip -9n <packaging/man/nsjail-helper.8 >"$stage/usr/share/man/man8/nsjail-helper.8.gz"
gzip -9n <packaging/man/pam_nsjail.toml.5 >"$stage/usr/share/man/man5/pam_nsjail.toml.5.gz"
install -m644 README.md SECURITY.md "$stage/usr/share/doc/pam-nsjail/"
install -m644 packaging/debian/copyright "$stage/usr/share/doc/pam-nsjail/copyright"
for script in postinst prerm postrm; do
    install -m755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done
printf '/etc/pam.d/nsjail\n/etc/security/pam_nsjail.toml\n' >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
libc_version=$(dpkg-query -W -f='${Version}' libc6 | cut -d- -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: pam-nsjail
Version: $version
Architecture: $arch
Maintainer: pam_nsjail developers <security@pam-nsjail.invalid>
Installed-Size: $size
Depends: libc6 (>= $libc_version), libpam0g (>= 1.4), libpam-runtime
Section: admin
Priority: optional
Homepage: https://example.invalid/pam_nsjail
Description: per-user namespace isolation for ssh sessions
 pam_nsjail is a PAM session module that places the ssh logins of users
 in isolated groups into fresh user, mount, pid and ipc namespaces with a
 private /tmp, /var/tmp and /dev/shm, so users of a shared host cannot see
 each other's processes, temporary files or IPC objects.
 .
 The package installs the module, the non-setuid helper nsjail-helper,
 the example policy /etc/security/pam_nsjail.toml and the include file
 /etc/pam.d/nsjail. It enables nothing: add '@include nsjail' to
 /etc/pam.d/sshd.
CONTROL
out="target/debian/pam-nsjail_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
