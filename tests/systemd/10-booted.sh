#!/bin/bash
# pam_nsjail on a systemd host: Debian 13 booted with systemd 257 (logind,
# pam_systemd, user@.service, the system bus) under systemd-nspawn, with
# OpenSSH 10's sshd listening on the container's own loopback. Every ssh
# login below goes through pam_systemd first, so sshd's monitor sits in a
# session-N.scope, as on a real host.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
source "$REPO/tests/lib/sandbox.sh"
source "$REPO/tests/lib/debian13.sh"
source "$REPO/tests/lib/booted.sh"

booted_begin
uid_alice=$(C id -u alice)
holder_of() { C sed -n 's/^holder=\([0-9]*\):.*/\1/p' "/run/pam_nsjail/sets/u$1" 2>/dev/null; }
# closing_sessions: how many sessions logind still lists as "closing".
closing_sessions() {
    C sh -c 'n=0; for s in $(loginctl list-sessions --no-legend | awk "{print \$1}"); do
        [ "$(loginctl show-session "$s" -p State --value)" = closing ] && n=$((n + 1)); done; echo $n'
}
no_nsjail_unit() { ! C systemctl list-units --no-legend 'nsjail-*' | grep -q .; }
no_closing() {
    [ "$(closing_sessions)" = 0 ] && return 0
    C loginctl list-sessions --no-legend >&2
    return 1
}
kill_user_processes() {
    C sh -c "mkdir -p /etc/systemd/logind.conf.d && printf '[Login]\nKillUserProcesses=$1\n' >/etc/systemd/logind.conf.d/kill.conf && systemctl restart systemd-logind"
    wait_for C busctl get-property org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager KillUserProcesses
}

# ---- logins on a systemd host ------------------------------------------------------------
# pid 1 of the login's pid namespace is the set's holder (a refused login
# on OpenSSH 10 may still print a banner: only the last line counts).
in_set() { ssh_in "$1" 'ps -p 1 -o comm=' 2>/dev/null | tail -1; }
check_eq "an ssh login is isolated (pid 1 of its pid namespace is the set's holder)" \
    nsjail-holder "$(in_set alice)"
check "journal: the decision line carries the sshd-session ident and the set's unit" \
    journal_has "^pam_nsjail\(sshd:session\): user=alice service=sshd policy=students action=isolated set=u$uid_alice holder=[0-9]+ unit=nsjail-$uid_alice-[0-9]+\.scope"
check "journal: OpenSSH 10 logs as sshd-session" sh -c "nsenter -t $BOOT_INIT -a journalctl -q --no-pager -b -t sshd-session | grep -q 'pam_nsjail(sshd:session)'"
check "after the login the set is gone (on_logout=kill)" wait_for set_gone

# ---- the set's lifetime belongs to the set, not to the first login's scope ----------------
for kup in yes no; do
    kill_user_processes "$kup"
    C journalctl --rotate >/dev/null 2>&1
    login_bg alice 1001
    holder=$(holder_of "$uid_alice")
    cg=$(C cat "/proc/$holder/cgroup" 2>/dev/null)
    case "$cg" in
    */user.slice/user-"$uid_alice".slice/nsjail-"$uid_alice"-*.scope) ok "KillUserProcesses=$kup: the holder is in a scope of its own in alice's slice" ;;
    *) not_ok "KillUserProcesses=$kup: the holder is in a scope of its own in alice's slice" "$cg" ;;
    esac
    login_bg alice 1002
    check_eq "KillUserProcesses=$kup: the second login joined the same set" "$holder" "$(holder_of "$uid_alice")"
    since=$(C date +%s.%N)
    logout_bg 1001
    check "KillUserProcesses=$kup: the first login's sleep is gone after its logout" \
        wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -fx 'sleep 1001'"
    sleep 2
    check "KillUserProcesses=$kup: the second login keeps running" C pgrep -u alice -fx "sleep 1002"
    check "KillUserProcesses=$kup: the set's holder survived the first login's logout" C kill -0 "$holder"
    check "KillUserProcesses=$kup: no session is left 'closing' by a holder" wait_for no_closing
    if [ "$kup" = yes ]; then
        C journalctl -q --no-pager -o short-precise --since "@$since" \
            -t sshd-session -t systemd-logind -t systemd >"$REPO/target/kill-user-processes-yes.log" 2>&1
    fi
    logout_bg 1002
    check "KillUserProcesses=$kup: the last logout ends the set (no holder, no record)" wait_for set_gone
    check "KillUserProcesses=$kup: the set's scope unit is gone" wait_for no_nsjail_unit
    check "KillUserProcesses=$kup: no session lingers in 'closing'" wait_for no_closing
done

# ---- loginctl terminate-session of one login --------------------------------------------------
user_sessions() { C sh -c 'for s in $(loginctl list-sessions --no-legend | awk "{print \$1}"); do
    [ "$(loginctl show-session "$s" -p Class --value)" = user ] && echo "$s"; done'; }
login_bg alice 1004
first=$(user_sessions)
login_bg alice 1005
holder=$(holder_of "$uid_alice")
C loginctl terminate-session "$first"
check "terminate-session: the terminated login's sleep is gone" \
    wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -fx 'sleep 1004'"
sleep 1
check "terminate-session: the other login keeps running" C pgrep -u alice -fx "sleep 1005"
check "terminate-session: the set's holder survived" C kill -0 "$holder"
logout_bg 1005
check "terminate-session: the last logout still ends the set" wait_for set_gone
kill_user_processes no

# ---- loginctl terminate-user and kill-user end the user's sets --------------------------------
for how in terminate-user kill-user; do
    for logout in kill linger; do
        C sed -i "s/^on_logout = .*/on_logout = \"$logout\"/" /etc/security/pam_nsjail.toml
        login_bg alice 1003
        holder=$(holder_of "$uid_alice")
        C loginctl "$how" alice
        check "loginctl $how (on_logout=$logout) ends alice's set" wait_for sh -c "! nsenter -t $BOOT_INIT -a kill -0 $holder 2>/dev/null"
        check "loginctl $how (on_logout=$logout): no process of alice is left" wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -u alice >/dev/null"
        check "loginctl $how (on_logout=$logout): no set scope is left" wait_for no_nsjail_unit
        C nsjail-helper list >/dev/null 2>&1
    done
done
C sed -i 's/^on_logout = .*/on_logout = "kill"/' /etc/security/pam_nsjail.toml

# ---- a cgroup namespace: the default here (systemd, cgroup v2) ----------------------------------
uid_bob=$(C id -u bob)
login_bg bob 1006
C sed -i '/^name = "students"/a namespaces = ["user", "mount", "pid", "ipc", "!cgroup"]' /etc/security/pam_nsjail.toml
check "control: opted out (\"!cgroup\"), alice sees bob's slice in /sys/fs/cgroup" \
    ssh_in alice "test -d /sys/fs/cgroup/user.slice/user-$uid_bob.slice"
C sed -i '/"!cgroup"\]$/d' /etc/security/pam_nsjail.toml
check "check says nothing about a cgroup namespace hiding nothing here" \
    sh -c "! nsenter -t $BOOT_INIT -a nsjail-helper check 2>&1 | grep -q 'hides nothing'"
cgroup_view='readlink /proc/self/ns/cgroup; ls /sys/fs/cgroup | grep -c slice; find /sys/fs/cgroup -name "session-*" | wc -l; awk "\$5==\"/sys/fs/cgroup\"" /proc/self/mountinfo | tail -1 | awk "{print \$9, \$6}" | cut -d, -f1'
for how in default explicit; do
    [ $how = explicit ] && C sed -i '/^name = "students"/a namespaces = ["user", "mount", "pid", "ipc", "cgroup"]' /etc/security/pam_nsjail.toml
    out=$(ssh_in alice "$cgroup_view")
    check_ne "cgroup ($how): alice's login has a cgroup namespace of its own" "$(C readlink /proc/1/ns/cgroup)" "$(printf '%s\n' "$out" | grep '^cgroup:')"
    check_eq "cgroup ($how): /sys/fs/cgroup shows no slice and no session, bob's included, and is read-only cgroup2" \
        "0|0|cgroup2 ro|" "$(printf '%s\n' "$out" | sed -n '2,4p' | tr '\n' '|')"
done
C sed -i '/^namespaces = \["user", "mount", "pid", "ipc", "cgroup"\]/d' /etc/security/pam_nsjail.toml
logout_bg 1006
wait_for set_gone

# ---- systemd --user is not a way out ------------------------------------------------------
C sh -c 'echo "host tmp" >/tmp/host-marker'
escape='systemd-run --user --wait --pipe --quiet cat /tmp/host-marker'
# Control: with the systemd-user stack as Debian 13 ships it, the user
# manager runs on the host and a command started through it sees the host.
check_eq "control: without pam_nsjail in systemd-user, systemd-run --user from a login reaches the host's /tmp" \
    "host tmp" "$(ssh_in alice "$escape" 2>/dev/null)"
check "audit flags /usr/lib/pam.d/systemd-user" sh -c "nsenter -t $BOOT_INIT -a nsjail-helper audit | grep -q \"warning: /usr/lib/pam.d/systemd-user: 'systemd-user' opens sessions without pam_nsjail\""
C loginctl terminate-user alice
wait_for sh -c "! nsenter -t $BOOT_INIT -a systemctl is-active -q user@$uid_alice.service"
# The fix the docs give: a local copy of the stack that includes nsjail.
C sh -c 'cp /usr/lib/pam.d/systemd-user /etc/pam.d/systemd-user && echo "@include nsjail" >>/etc/pam.d/systemd-user'
check "audit: systemd-user is ok with the local copy" sh -c "nsenter -t $BOOT_INIT -a nsjail-helper audit | grep -q '^/etc/pam.d/systemd-user: ok'"
out=$(ssh_in alice "echo set-tmp >/tmp/set-marker; $escape; echo rc=\$?; systemd-run --user --wait --pipe --quiet cat /tmp/set-marker" 2>/dev/null)
check "with pam_nsjail in systemd-user, systemd-run --user from an isolated login no longer reaches the host's /tmp" \
    sh -c "printf '%s' '$out' | grep -q 'rc=[1-9]' && ! printf '%s' '$out' | grep -q 'host tmp'"
# (Her set has a cgroup namespace, the default here: the manager gets one
# of its own; tests/systemd/30-user-manager.sh has the details.)
check "it runs in her set instead: a unit reads her set's /tmp" sh -c "printf '%s' '$out' | grep -qx set-tmp"
check "journal: the user manager of the isolated user was placed in her set" \
    journal_has "pam_nsjail\(systemd-user:session\): user=alice service=systemd-user policy=students action=(isolated|joined) set=u$uid_alice "
check_eq "control: carol (exempt) still runs systemd-run --user" "host tmp" "$(ssh_in carol "$escape" 2>/dev/null)"
check_eq "ssh logins of alice still work, isolated" nsjail-holder "$(in_set alice)"

# Her user manager now holds her set: end it, so that the next login
# makes a new one.
C loginctl terminate-user alice
set_gone_20s() { WAIT_TRIES=400 wait_for set_gone; }
check "terminate-user alice: her manager and her set are gone" set_gone_20s

# ---- the system bus is unreachable ----------------------------------------------------------
C systemctl stop dbus.socket dbus.service
check_eq "bus down: alice's login is still isolated" nsjail-holder "$(in_set alice)"
check "bus down: the log says the set could not be given its own unit" \
    journal_has "action=isolated set=u$uid_alice .*warning=\"the set could not be given a systemd unit of its own"
C systemctl start dbus.socket dbus.service
check "nothing is left behind" wait_for set_gone
done_testing
