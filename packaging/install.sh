#!/bin/bash
# Installs pam_nsjail from a built tree, for systems without the .deb:
#
#     cargo build --release --locked
#     sudo bash packaging/install.sh                 # install
#     sudo bash packaging/install.sh --uninstall     # remove (keeps the policy)
#     DESTDIR=/tmp/stage PREFIX=/usr bash packaging/install.sh   # staged
#
# Variables (environment), with their defaults:
#   DESTDIR     ""                  staging root prepended to every path
#   PREFIX      /usr
#   SBINDIR     $PREFIX/sbin        nsjail-helper
#   MANDIR      $PREFIX/share/man
#   DOCDIR      $PREFIX/share/doc/pam_nsjail
#   SYSCONFDIR  /etc                pam.d/nsjail, security/pam_nsjail.toml,
#                                   systemd/system/user@.service.d/pam_nsjail.conf
#   SECUREDIR   the system's PAM module directory: pkg-config's securedir,
#               else the directory holding pam_unix.so
#
# Never overwrites an existing policy file and enables nothing. If the
# helper or the module are not where the module's defaults expect them
# (/usr/sbin, the system's PAM directory), the installed include file names
# them explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

usage() {
    echo "usage: [DESTDIR=...] [PREFIX=...] bash packaging/install.sh [--uninstall]" >&2
    exit 2
}
mode=install
case "${1:-}" in
"") ;;
--uninstall) mode=uninstall ;;
-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
*) usage ;;
esac
[ $# -le 1 ] || usage

# The directory libpam loads modules from when pam.d names no path.
system_securedir() {
    local dir multiarch
    dir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
    if [ -n "$dir" ]; then
        echo "$dir"
        return
    fi
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || true)
    for dir in ${multiarch:+/usr/lib/$multiarch/security /lib/$multiarch/security} \
        /usr/lib64/security /lib64/security /usr/lib/security /lib/security; do
        if [ -e "$dir/pam_unix.so" ]; then
            echo "$dir"
            return
        fi
    done
    echo /lib/security
}

PREFIX=${PREFIX:-/usr}
DESTDIR=${DESTDIR:-}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/pam_nsjail}
SYSCONFDIR=${SYSCONFDIR:-/etc}
SYSTEM_SECUREDIR=$(system_securedir)
SECUREDIR=${SECUREDIR:-$SYSTEM_SECUREDIR}

module=$SECUREDIR/pam_nsjail.so
helper=$SBINDIR/nsjail-helper
include=$SYSCONFDIR/pam.d/nsjail
policy=$SYSCONFDIR/security/pam_nsjail.toml
dropin=$SYSCONFDIR/systemd/system/user@.service.d/pam_nsjail.conf
files=("$module" "$helper" "$include" "$dropin"
    "$MANDIR/man8/pam_nsjail.8" "$MANDIR/man8/nsjail-helper.8" "$MANDIR/man5/pam_nsjail.toml.5"
    "$DOCDIR/README.md" "$DOCDIR/SECURITY.md")

if [ "$mode" = uninstall ]; then
    # A 'required' module that is gone fails every session of the services
    # using it: refuse while any still does.
    # The same test as the package's prerm: '@include nsjail',
    # 'TYPE include|substack nsjail', or a line naming pam_nsjail.so.
    users=$(grep -ls -i -E '^[[:space:]]*(@include[[:space:]]+nsjail([[:space:]#]|$)|-?[[:alpha:]]+[[:space:]]+((include|substack)[[:space:]]+nsjail([[:space:]#]|$)|[^#]*pam_nsjail\.so))' \
        "$DESTDIR$SYSCONFDIR"/pam.d/* 2>/dev/null | grep -v -F -x "$DESTDIR$include" || true)
    if [ -n "$users" ]; then
        echo "install.sh: refusing to uninstall: these PAM services still use pam_nsjail:" >&2
        printf '%s\n' "$users" | sed 's/^/  /' >&2
        echo "install.sh: remove their '@include nsjail' lines first, or their logins would fail" >&2
        exit 1
    fi
    for f in "${files[@]}"; do
        if [ -e "$DESTDIR$f" ]; then
            rm -f "$DESTDIR$f"
            echo "removed $DESTDIR$f"
        fi
    done
    rmdir "$DESTDIR$DOCDIR" "$DESTDIR${dropin%/*}" 2>/dev/null || true
    echo "kept the policy $DESTDIR$policy (delete it by hand if no longer wanted)"
    exit 0
fi

for f in target/release/libpam_nsjail.so target/release/nsjail-helper; do
    [ -f "$f" ] || {
        echo "install.sh: $f is missing; build first: cargo build --release --locked" >&2
        exit 1
    }
done

install -D -m644 target/release/libpam_nsjail.so "$DESTDIR$module"
install -D -m755 target/release/nsjail-helper "$DESTDIR$helper"
install -D -m644 packaging/man/pam_nsjail.8 "$DESTDIR$MANDIR/man8/pam_nsjail.8"
install -D -m644 packaging/man/nsjail-helper.8 "$DESTDIR$MANDIR/man8/nsjail-helper.8"
install -D -m644 packaging/man/pam_nsjail.toml.5 "$DESTDIR$MANDIR/man5/pam_nsjail.toml.5"
install -D -m644 README.md "$DESTDIR$DOCDIR/README.md"
install -D -m644 SECURITY.md "$DESTDIR$DOCDIR/SECURITY.md"
install -D -m644 "config/systemd/user@.service.d/pam_nsjail.conf" "$DESTDIR$dropin"
for f in "${files[@]}"; do
    [ "$f" = "$include" ] || echo "installed $DESTDIR$f"
done

# The include file, naming the module and helper by path where the
# module's defaults would not find them.
module_ref=pam_nsjail.so
[ "$SECUREDIR" = "$SYSTEM_SECUREDIR" ] || module_ref=$module
helper_arg=""
[ "$helper" = /usr/sbin/nsjail-helper ] || helper_arg=" helper=$helper"
install -d "$DESTDIR$SYSCONFDIR/pam.d"
sed -e "s|^\(auth  *optional  *\)pam_nsjail\.so\$|\1$module_ref|" \
    -e "s|^\(session  *required  *\)pam_nsjail\.so\$|\1$module_ref$helper_arg|" \
    config/pam.d/nsjail >"$DESTDIR$include"
chmod 644 "$DESTDIR$include"
echo "installed $DESTDIR$include"

if [ -e "$DESTDIR$policy" ]; then
    echo "kept the existing policy $DESTDIR$policy (the example is config/pam_nsjail.toml)"
else
    install -D -m644 config/pam_nsjail.toml "$DESTDIR$policy"
    echo "installed $DESTDIR$policy (the example policy: edit it)"
fi
if [ "$(id -u)" != 0 ] && [ -z "$DESTDIR" ]; then
    echo "install.sh: warning: not root: the policy, module and helper must be root-owned" >&2
fi
echo "enable with: nsjail-helper check && echo '@include nsjail' >> $SYSCONFDIR/pam.d/sshd"
