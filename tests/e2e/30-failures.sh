#!/bin/bash
# Misconfiguration and failure: a login is isolated, or refused, never
# silently let in unconfined (unless the admin chose on_error=allow).
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

host_user_ns=$(readlink /proc/self/ns/user)
include=$(cat /etc/pam.d/nsjail)
set_include() { printf '%s\n' "$1" >/etc/pam.d/nsjail; }
refused() { ! ssh_as "$1" 'echo IN' 2>/dev/null | grep -q IN; }
# isolated USER: the login works and runs in a user namespace not the host's.
isolated() {
    local ns
    ns=$(ssh_as "$1" 'readlink /proc/self/ns/user' 2>/dev/null | tail -1)
    [[ $ns == user:* ]] && [ "$ns" != "$host_user_ns" ]
}
# What a login can do beyond a shell: sftp, and forwarding a port (-W to
# sshd's own port answers with its banner when forwarding works).
sftp_works() { echo 'ls /' | sftp -q -b - "${SSH_OPTS[@]/-p/-P}" "$1@127.0.0.1" >/dev/null 2>&1; }
forward_works() { sleep 3 | timeout 10 ssh "${SSH_OPTS[@]}" -W "127.0.0.1:$SSH_PORT" "$1@127.0.0.1" 2>/dev/null | head -c 7 | grep -q SSH-2.0; }
no_sftp() { ! sftp_works "$1"; }
no_forward() { ! forward_works "$1"; }
# refused_everywhere WHY USER: no shell, no sftp, no port forwarding.
refused_everywhere() {
    check "$1: $2 gets no shell" refused "$2"
    check "$1: $2 gets no sftp" no_sftp "$2"
    check "$1: $2 gets no port forwarding" no_forward "$2"
}
# PRI of a LOG_ERR line in facility authpriv (10): 10*8+3.
ERR_PRI='^<83>'

# ---- pamtester -----------------------------------------------------------------------
check "pamtester: open_session/close_session succeed with a valid policy" \
    pamtester -v sshd alice open_session close_session
check "pamtester: the set was created and released" log_has "user=alice service=sshd policy=students action=isolated .*note=\"pamtester"
check "pamtester: nothing is left after close_session" sh -c '[ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder'
check "pamtester: root is never isolated" pamtester sshd root open_session close_session
check "pamtester: an exempt user passes" pamtester sshd carol open_session close_session

# ---- broken policy ---------------------------------------------------------------------
set_policy '[[policy]]
name = "students"
groups = ["students"'
check "pamtester: open_session fails with a broken policy" sh -c '! pamtester sshd alice open_session close_session'
log_clear
refused_everywhere "broken policy" alice
check "broken policy: the log says why (path:line:col), at LOG_ERR" \
    log_has "$ERR_PRI.*user=alice .*action=refused .*policy /etc/security/pam_nsjail.toml is invalid: /etc/security/pam_nsjail.toml:4:1: .*on_error=deny"
check_eq "broken policy: carol, exempt under the last valid policy, still gets in" IN "$(ssh_as carol 'echo IN' 2>&1)"
check "broken policy: carol can still use sftp (control)" sftp_works carol
check "broken policy: carol can still forward a port (control)" forward_works carol
check "broken policy: carol's admission is logged at LOG_ERR" log_has "$ERR_PRI.*user=carol .*action=exempt .*exempt under the last valid policy"

set_include "${include/session  required   pam_nsjail.so/session  required   pam_nsjail.so on_error=allow}"
log_clear
check_eq "on_error=allow: alice gets in unconfined (host user namespace)" "$host_user_ns" "$(ssh_as alice 'readlink /proc/self/ns/user' 2>&1)"
check "on_error=allow: a LOG_ERR line says so" log_has "$ERR_PRI.*user=alice .*action=unconfined .*on_error=allow"
set_include "$include"
set_policy "$(test_policy)"

# ---- world-writable policy is a broken policy ----------------------------------------------
chmod 666 /etc/security/pam_nsjail.toml
log_clear
check "world-writable policy: alice is refused" refused alice
check "world-writable policy: logged" log_has "action=refused .*refusing policy: file is world-writable"
set_policy "$(test_policy)"

# ---- helper missing ------------------------------------------------------------------------
set_include "${include/session  required   pam_nsjail.so/session  required   pam_nsjail.so helper=/nonexistent/nsjail-helper}"
log_clear
refused_everywhere "helper missing" alice
check "helper missing: the log names the helper and the step" log_has "$ERR_PRI.*user=alice .*action=refused .*check helper /nonexistent/nsjail-helper"
set_include "$include"

# ---- auth line missing ----------------------------------------------------------------------
set_include "$(printf '%s\n' "$include" | grep -v '^auth')"
log_clear
refused_everywhere "auth line missing" alice
check "auth line missing: the log names the missing line" log_has "$ERR_PRI.*user=alice .*action=refused .*'auth optional pam_nsjail.so' is missing"
check_eq "auth line missing: exempt carol still gets in" IN "$(ssh_as carol 'echo IN' 2>&1)"
set_include "$include"

# ---- session line missing: open_session never runs pam_nsjail ---------------------------------
set_include "$(printf '%s\n' "$include" | grep -v '^session')"
log_clear
refused_everywhere "session line missing" alice
check "session line missing: the session's child logs why it exits" log_has "$ERR_PRI.*user=alice .*action=refused .*open_session did not run for this login.*session process exits"
check_eq "session line missing: exempt carol still gets in" IN "$(ssh_as carol 'echo IN' 2>&1)"
set_include "$include"

# ---- unknown module argument ------------------------------------------------------------------
set_include "${include/session  required   pam_nsjail.so/session  required   pam_nsjail.so frobnicate}"
log_clear
check "unknown argument: the login still works, isolated" isolated alice
check "unknown argument: logged at LOG_ERR" log_has "$ERR_PRI.*unknown or malformed module argument 'frobnicate'"
set_include "$include"

# ---- missing sub-id range -------------------------------------------------------------------------
cp /etc/subuid /run/nsjail-test/subuid.save
sed -i '/^alice:/d' /etc/subuid
log_clear
refused_everywhere "no sub-id range (subids=required)" alice
check "no sub-id range: the log names /etc/subuid and alice" log_has "action=refused .*/etc/subuid: no subordinate id range for user alice"
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "kill"\nsubids = "optional"/')"
check_eq "subids=optional: alice gets in with only her own ids mapped" "$(id -u alice) $(id -u alice) 1" \
    "$(ssh_as alice 'tr -s " " </proc/self/uid_map | sed "s/^ //"' 2>&1)"
cp /run/nsjail-test/subuid.save /etc/subuid
set_policy "$(test_policy)"

# ---- PAM applications the module does not know never let an isolated user in unconfined ----------
# (su itself places her session in her set: tests/e2e/90-services.sh; a
# copy under another name is an application nobody measured.)
printf '%s\n' 'auth sufficient pam_rootok.so' '@include common-account' '@include common-session' '@include nsjail' >/etc/pam.d/su
cp /usr/bin/su /usr/local/bin/xsu
log_clear
check "xsu - alice (an unknown program, service includes nsjail) is refused" sh -c '! xsu - alice -c "echo IN" 2>/dev/null | grep -q IN'
check "xsu refusal is logged with the reason" log_has "user=alice service=su(-l)? .*action=refused .*/usr/local/bin/xsu cannot place sessions in a namespace set"
check_eq "su - carol (exempt) works" IN "$(su - carol -c 'echo IN' 2>&1)"

# ---- a join that fails, or panics, in sshd's session child ----------------------------------------
# sshd runs the shell unconfined after a failed pam_setcred: the child must
# end instead, however the join fails. A failpoints build of the module
# fails (or panics) in the join when sshd's environment says so.
securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
[ -n "$securedir" ] || securedir=/usr/lib/x86_64-linux-gnu/security
cp "$securedir/pam_nsjail.so" /run/nsjail-test/pam_nsjail.so.good
install -m644 "$REPO/target/failpoints/release/libpam_nsjail.so" "$securedir/pam_nsjail.so"
sshd_stop
sshd_start
check "control: the failpoints build of the module, unarmed, isolates alice" isolated alice
for failpoint in join-fail join-panic; do
    sshd_stop
    NSJAIL_FAILPOINT=$failpoint sshd_start
    log_clear
    refused_everywhere "the join in sshd's child fails ($failpoint)" alice
    case $failpoint in
    join-fail) why='step="failpoint" error="join-fail"' ;;
    join-panic) why='step="join" error="panic: failpoint join-panic"' ;;
    esac
    check "$failpoint: the child logs why it exits" log_has "$ERR_PRI.*pam_nsjail\(sshd:setcred\): user=alice .*action=refused .*$why \(session process exits\)"
done
install -m644 /run/nsjail-test/pam_nsjail.so.good "$securedir/pam_nsjail.so"
sshd_stop
sshd_start

check "nothing is left behind" sh -c '[ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder'
done_testing
