#!/bin/bash
# Installs pam_nsjail from a built tree (cargo build --release --locked) on
# distributions without the .deb. DESTDIR and PREFIX aware:
#   sudo bash packaging/install.sh
#   DESTDIR=/tmp/stage PREFIX=/usr bash packaging/install.sh
#   sudo bash packaging/install.sh --uninstall
# Never overwrites an existing policy file; enables nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
MANDIR=${MANDIR:-$PREFIX/share/man}
if [ -z "${SECUREDIR:-}" ]; then
    SECUREDIR=$(pkg-config --variable=securedir pam 2>/dev/null || true)
    for d in /usr/lib/x86_64-linux-gnu/security /usr/lib64/security /lib64/security /usr/lib/security /lib/security; do
        [ -n "$SECUREDIR" ] && break
        [ -d "$d" ] && SECUREDIR=$d
    done
    : "${SECUREDIR:=/lib/security}"
fi
files=("$SECUREDIR/pam_nsjail.so" "$SBINDIR/nsjail-helper" "$SYSCONFDIR/pam.d/nsjail"
    "$MANDIR/man8/pam_nsjail.8" "$MANDIR/man8/nsjail-helper.8" "$MANDIR/man5/pam_nsjail.toml.5")
if [ "${1:-}" = --uninstall ]; then
    if grep -qs '^@include nsjail' "$DESTDIR$SYSCONFDIR"/pam.d/*; then
        echo "install.sh: a PAM service still includes nsjail; remove that line first" >&2
        exit 1
    fi
    for f in "${files[@]}"; do rm -f "$DESTDIR$f"; done
    echo "removed; the policy $SYSCONFDIR/security/pam_nsjail.toml was kept"
    exit 0
fi
[ -x target/release/nsjail-helper ] || { echo "install.sh: build first: cargo build --release --locked" >&2; exit 1; }
install -D -m644 target/release/libpam_nsjail.so "$DESTDIR$SECUREDIR/pam_nsjail.so"
install -D -m755 target/release/nsjail-helper "$DESTDIR$SBINDIR/nsjail-helper"
install -D -m644 config/pam.d/nsjail "$DESTDIR$SYSCONFDIR/pam.d/nsjail"
if [ "$SBINDIR" != /usr/sbin ]; then
    # The module's default helper path is /usr/sbin/nsjail-helper.
    sed -i "s|^session  required   pam_nsjail.so\$|& helper=$SBINDIR/nsjail-helper|" "$DESTDIR$SYSCONFDIR/pam.d/nsjail"
fi
if [ ! -e "$DESTDIR$SYSCONFDIR/security/pam_nsjail.toml" ]; then
    install -D -m644 config/pam_nsjail.toml "$DESTDIR$SYSCONFDIR/security/pam_nsjail.toml"
fi
install -D -m644 packaging/man/pam_nsjail.8 "$DESTDIR$MANDIR/man8/pam_nsjail.8"
install -D -m644 packaging/man/nsjail-helper.8 "$DESTDIR$MANDIR/man8/nsjail-helper.8"
install -D -m644 packaging/man/pam_nsjail.toml.5 "$DESTDIR$MANDIR/man5/pam_nsjail.toml.5"
echo "installed; enable with: echo '@include nsjail' >> $SYSCONFDIR/pam.d/sshd"
