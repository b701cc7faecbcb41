#!/bin/bash
# Packaging: build the .deb, install it with dpkg, log in isolated through
# the installed files, purge it, and check nothing is left behind. Also the
# man pages and packaging/install.sh.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${NSJAIL_SANDBOX:-}" ]; then
    # Built outside the sandbox, where cargo and target/ are the host's.
    deb=$(bash "$REPO/packaging/build-deb.sh" 2>&1 | tail -1)
    export NSJAIL_DEB_REL=$deb
fi
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"
NSJAIL_DEB=$REPO/$NSJAIL_DEB_REL

# dpkg's database and logs are on the host's disk: give them overlays too.
mkdir -p "$SB_DIR/dpkg.up" "$SB_DIR/dpkg.work"
mount -t overlay overlay -o "lowerdir=/var/lib/dpkg,upperdir=$SB_DIR/dpkg.up,workdir=$SB_DIR/dpkg.work" /var/lib/dpkg
mount -t tmpfs tmpfs /var/log

check "the .deb was built" test -f "$NSJAIL_DEB"
info=$(dpkg-deb -f "$NSJAIL_DEB" Package Version Architecture Depends 2>&1)
check "control: package, version, architecture, depends" sh -c "printf '%s' '$info' | grep -q 'Package: pam-nsjail' && printf '%s' '$info' | grep -q 'Depends: libc6'"
check_eq "conffiles: include file and policy" "/etc/pam.d/nsjail|/etc/security/pam_nsjail.toml|" \
    "$(dpkg-deb --ctrl-tarfile "$NSJAIL_DEB" | tar -xO ./conffiles | tr '\n' '|')"
contents=$(dpkg-deb -c "$NSJAIL_DEB")
for f in /usr/sbin/nsjail-helper /usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security/pam_nsjail.so /usr/share/man/man8/pam_nsjail.8.gz \
    /usr/share/man/man5/pam_nsjail.toml.5.gz /usr/share/man/man8/nsjail-helper.8.gz /usr/share/doc/pam-nsjail/copyright \
    /usr/lib/systemd/system/user@.service.d/pam_nsjail.conf; do
    case "$contents" in *"$f"*) ok "package contains $f" ;; *) not_ok "package contains $f" ;; esac
done
check "the helper is not setuid" sh -c "dpkg-deb -c '$NSJAIL_DEB' | grep 'usr/sbin/nsjail-helper' | grep -q '^-rwxr-xr-x root/root'"

# Start from a host without the sandbox's own copies.
securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
[ -n "$securedir" ] || securedir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security
sshd_stop
rm -f /usr/sbin/nsjail-helper "$securedir/pam_nsjail.so" /etc/pam.d/nsjail /etc/security/pam_nsjail.toml
sed -i '/^@include nsjail/d' /etc/pam.d/sshd
check "dpkg -i installs it" dpkg -i "$NSJAIL_DEB"
check "installing does not enable isolation" sh -c '! grep -q "^@include nsjail" /etc/pam.d/sshd'
check_eq "the shipped example policy checks OK" "/etc/security/pam_nsjail.toml: OK (2 policies)" "$(nsjail-helper check 2>/dev/null)"
for page in pam_nsjail nsjail-helper pam_nsjail.toml; do
    check_eq "man $page renders without warnings" "" "$(MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null)"
done
echo '@include nsjail' >>/etc/pam.d/sshd
sshd_start
check_eq "an ssh login through the installed files is isolated (pid 1 is the set's holder)" nsjail-holder \
    "$(ssh_as alice 'ps -p 1 -o comm=' 2>&1)"
check "removal is refused while sshd still includes nsjail" sh -c '! dpkg -r pam-nsjail >/dev/null 2>&1'
check "the package is still installed after the refused removal" sh -c "dpkg -s pam-nsjail | grep -q '^Status: .* ok installed' && test -f $securedir/pam_nsjail.so"
sed -i '/^@include nsjail/d' /etc/pam.d/sshd
check "dpkg --purge removes it" dpkg --purge pam-nsjail
left=$(ls /usr/sbin/nsjail-helper "$securedir/pam_nsjail.so" /etc/pam.d/nsjail /etc/security/pam_nsjail.toml \
    /usr/share/man/man8/pam_nsjail.8.gz /usr/share/doc/pam-nsjail /run/pam_nsjail \
    /usr/lib/systemd/system/user@.service.d/pam_nsjail.conf 2>/dev/null)
check_eq "after purge nothing of the package is left" "" "$left"
check_eq "after purge ssh logins work unconfined" "$(readlink /proc/self/ns/pid)" "$(ssh_as alice 'readlink /proc/self/ns/pid' 2>&1)"

# install.sh: DESTDIR and PREFIX aware, never overwrites a policy.
stage=/run/nsjail-test/stage
mkdir -p "$stage/etc/security" && echo "# mine" >"$stage/etc/security/pam_nsjail.toml"
check "install.sh installs into DESTDIR" env DESTDIR=$stage PREFIX=/usr/local SECUREDIR=/usr/local/lib/security bash "$REPO/packaging/install.sh"
check "install.sh: helper under PREFIX" test -x "$stage/usr/local/sbin/nsjail-helper"
check "install.sh: module in SECUREDIR" test -f "$stage/usr/local/lib/security/pam_nsjail.so"
check "install.sh: the include file points at the helper under PREFIX" grep -q "helper=/usr/local/sbin/nsjail-helper" "$stage/etc/pam.d/nsjail"
check "install.sh: the user manager's drop-in under SYSCONFDIR" grep -qx "NotifyAccess=all" "$stage/etc/systemd/system/user@.service.d/pam_nsjail.conf"
check_eq "install.sh keeps an existing policy" "# mine" "$(cat "$stage/etc/security/pam_nsjail.toml")"
check "install.sh --uninstall removes what it installed" sh -c "DESTDIR=$stage PREFIX=/usr/local SECUREDIR=/usr/local/lib/security bash $REPO/packaging/install.sh --uninstall >/dev/null && test ! -e $stage/usr/local/sbin/nsjail-helper && test ! -e $stage/etc/systemd/system/user@.service.d"

done_testing
