#!/bin/bash
# `nsjail-helper audit` on a default install (this Debian 12 host's PAM
# stacks, or the Debian 13 root's with NSJAIL_ROOTFS=debian13): before the
# install lines, every service that opens sessions is flagged; `audit
# --fix` prints them as a script; once it ran, audit finds no way to a
# session that bypasses pam_nsjail, and no service lets an isolated user
# into the host's namespaces (isolated or refused, never the host).
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

# The package's state: installed, nothing enabled.
sed -i '/^@include nsjail/d' /etc/pam.d/sshd
present=()
for s in sshd login su su-l runuser runuser-l sudo sudo-i cron atd systemd-user; do
    [ -e "/etc/pam.d/$s" ] || [ -e "/usr/lib/pam.d/$s" ] && present+=("$s")
done
echo "# services present: ${present[*]}"
case " ${present[*]} " in *" systemd-user "*) ;; *)
    [ -n "${SB_IN_ROOT:-}" ] && not_ok "the Debian 13 root ships the systemd-user stack" ;;
esac

out=$(nsjail-helper audit)
check_eq "default install: audit exits 1" 1 "$?"
printf '%s\n' "$out" | grep -v '^  ' | sed 's/^/    # before: /'
for s in "${present[@]}"; do
    if [ "$s" = sshd ]; then
        check "default install: sshd flagged (not enabled)" \
            grep -q "warning: /etc/pam.d/sshd: pam_nsjail is not enabled for ssh logins" <<<"$out"
    else
        check "default install: $s flagged as a session without pam_nsjail" \
            grep -qE "^warning: /(etc|usr/lib)/pam.d/$s: '$s' opens sessions without pam_nsjail" <<<"$out"
    fi
done
check "default install: sshd uses PAM (UsePAM yes)" grep -q "^/etc/ssh/sshd_config: UsePAM yes" <<<"$out"

nsjail-helper audit --fix >/tmp/fix.sh
check_eq "audit --fix exits 0 and changes nothing itself" "0 $(md5sum </etc/pam.d/sshd)" \
    "$? $(md5sum </etc/pam.d/sshd)"
for s in "${present[@]}"; do
    check "audit --fix: a line for $s" grep -q "'/etc/pam.d/$s'" /tmp/fix.sh
done
sed 's/^/    # /' /tmp/fix.sh | head -60
check "the fix script runs" sh -e /tmp/fix.sh
out=$(nsjail-helper audit)
check_eq "after the fix: audit exits 0" 0 "$?"
check "after the fix: no problems found" grep -qx "no problems found" <<<"$out"
printf '%s\n' "$out" | sed 's/^/    # after: /'
snapshot() { for f in /etc/pam.d/*; do printf '%s %s\n' "$f" "$(md5sum <"$f")"; done; }
before=$(snapshot)
sh -e /tmp/fix.sh
check_eq "the fix script is idempotent" "$before" "$(snapshot)"
check_eq "after the fix: audit --fix has nothing left" "# nothing to fix in the PAM stacks" \
    "$(nsjail-helper audit --fix | tail -1)"

# What the fixed stacks do: an isolated user never gets the host's
# namespaces through them (isolated in her set, or refused), and the
# exempt user (control) still gets a session on the host.
host_pid=$(readlink /proc/self/ns/pid)
host_mnt=$(readlink /proc/self/ns/mnt)
probe='echo "$(readlink /proc/self/ns/pid) $(readlink /proc/self/ns/mnt)"'
for via in "su carol -c" "runuser -u carol -- sh -c"; do
    got=$(timeout 20 $via "$probe" 2>/dev/null)
    check_eq "control: carol (exempt) through '${via%% *}' is on the host" "$host_pid $host_mnt" "$got"
done
for via in "su alice -c" "su - alice -c" "runuser -u alice -- sh -c" "runuser -l alice -c"; do
    got=$(timeout 20 $via "$probe" 2>/dev/null)
    case "$got" in
    "") ok "alice (isolated) through '$via': refused" ;;
    *"$host_pid"* | *"$host_mnt"*) not_ok "alice (isolated) through '$via' never reaches the host's namespaces" "$got" ;;
    *) ok "alice (isolated) through '$via': in her set, not the host's namespaces" ;;
    esac
done

# The user manager's drop-in (the package installs it): without it, a
# systemd-user stack that includes pam_nsjail is flagged.
case " ${present[*]} " in *" systemd-user "*)
    mv /etc/systemd/system/user@.service.d/pam_nsjail.conf /tmp/dropin.conf
    out=$(nsjail-helper audit)
    check_eq "without the user@.service drop-in: audit exits 1" 1 "$?"
    check "without the user@.service drop-in: flagged, with the fix" \
        grep -q "warning: systemd-user includes pam_nsjail, but no user@.service.d/pam_nsjail.conf drop-in (NotifyAccess=all)" <<<"$out"
    mv /tmp/dropin.conf /etc/systemd/system/user@.service.d/pam_nsjail.conf
    check "with the drop-in back: audit exits 0" nsjail-helper audit
    ;;
esac

# UsePAM no: every ssh login would bypass PAM, and audit says so.
printf 'Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n' >/tmp/sshd_config
mkdir -p /etc/ssh/sshd_config.d
echo 'UsePAM no' >/etc/ssh/sshd_config.d/00-test.conf
out=$(nsjail-helper audit --sshd-config /tmp/sshd_config)
check_eq "UsePAM no in a drop-in: audit exits 1" 1 "$?"
check "UsePAM no in a drop-in: flagged with the fix" \
    grep -q "warning: /tmp/sshd_config: sshd does not use PAM" <<<"$out"
rm /etc/ssh/sshd_config.d/00-test.conf
done_testing
