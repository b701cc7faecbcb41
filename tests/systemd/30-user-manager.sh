#!/bin/bash
# The user manager (user@UID.service, PAM service systemd-user) of an
# isolated user runs inside her set, on Debian 13 booted with systemd 257
# under systemd-nspawn: systemctl --user, systemd-run --user, the user's
# D-Bus and lingering units work, and whatever the manager starts sees her
# set's /tmp and processes, never the host's. bob (exempt) is the control:
# his manager stays in the host's namespaces. The set has a cgroup namespace
# (the default here): the manager gets one of its own, rooted at
# user@UID.service/pam_nsjail, and a mount namespace below the set's with a
# writable view of it. With "!cgroup" the manager works in the set's own
# namespaces; a set with limits gets no manager, with the reason logged.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
source "$REPO/tests/lib/sandbox.sh"
source "$REPO/tests/lib/debian13.sh"
source "$REPO/tests/lib/booted.sh"

booted_begin
uid_alice=$(C id -u alice)
uid_bob=$(C id -u bob)
# loginctl's linger calls fail from a process nsenter started here ("Protocol
# driver not attached"); from a unit they work.
unit_run() { C systemd-run --wait --pipe --quiet "$@"; }
manager_pid() { C pgrep -u "$1" -x systemd; }
main_pid() { C systemctl show -p MainPID --value "user@$1.service"; }
active() { [ "$(C systemctl is-active "user@$1.service")" = "$2" ]; }
# The lab's policy (test_policy), with bob exempt by name (the control)
# and $1 appended to the students' policy.
policy() {
    test_policy | sed '/^name = "students"/{x;s/.*/name = "control"\nusers = ["bob"]\nisolate = false\n\n[[policy]]/;G}'
    printf '%s\n' "$1"
}
set_policy_in() { policy "$1" | C sh -c 'cat >/etc/security/pam_nsjail.toml'; }

# The install docs' lines: the systemd-user stack includes nsjail, and the
# drop-in for user@.service the package ships.
C sh -c 'cp /usr/lib/pam.d/systemd-user /etc/pam.d/systemd-user && echo "@include nsjail" >>/etc/pam.d/systemd-user'
C mkdir -p /etc/systemd/system/user@.service.d
C sh -c 'cat >/etc/systemd/system/user@.service.d/pam_nsjail.conf' <"$REPO/config/systemd/user@.service.d/pam_nsjail.conf"
C systemctl daemon-reload
set_policy_in ''
C sh -c 'echo "host tmp" >/tmp/host-marker'

# What a process sees: its pid/user namespaces, /tmp, and whose processes
# it can see.
probe='for n in pid user; do readlink /proc/self/ns/$n; done; ls /tmp | tr "\n" " "; echo; ps -e -o user= | sort -u | tr "\n" " "; echo'

# ---- alice: her manager is in her set ---------------------------------------------------
login_bg bob 2001
login_bg alice 2002
ssh_in alice 'echo mine >/tmp/alice-marker'
session=$(ssh_in alice "$probe" 2>/dev/null)
check "alice's ssh login is isolated (her /tmp, only her processes)" \
    sh -c "printf '%s\n' '$session' | sed -n 3p | grep -qx 'alice-marker ' && printf '%s\n' '$session' | sed -n 4p | grep -qx 'alice '"
check "user@$uid_alice.service is active" wait_for active "$uid_alice" active
check "journal: the user manager's session was placed in her set" \
    journal_has "pam_nsjail\(systemd-user:session\): user=alice service=systemd-user policy=students action=(isolated|joined) set=u$uid_alice "
check "journal: her ssh login joined the set the manager's session made, and handed the holder its opener (no warning)" \
    sh -c "nsenter -t $BOOT_INIT -a journalctl -q --no-pager -o cat -b | grep -E 'pam_nsjail\(sshd:session\): user=alice .*action=joined' | grep -vq warning="
mgr=$(manager_pid alice)
check_eq "systemd --user of alice runs in her set's pid and user namespaces" \
    "$(printf '%s\n' "$session" | sed -n 1,2p)" \
    "$(for n in pid user; do C readlink "/proc/$mgr/ns/$n"; done)"
login_ns=$(ssh_in alice 'readlink /proc/self/ns/mnt /proc/self/ns/cgroup' 2>/dev/null)
check "the manager's mount and cgroup namespaces are its own (not her logins', not the host's)" \
    sh -c "[ \"\$(printf '%s\n' '$login_ns' | sed -n 1p)\" != \"\$(nsenter -t $BOOT_INIT -a readlink /proc/$mgr/ns/mnt)\" ] && [ \"\$(printf '%s\n' '$login_ns' | sed -n 2p)\" != \"\$(nsenter -t $BOOT_INIT -a readlink /proc/$mgr/ns/cgroup)\" ] && [ \"\$(nsenter -t $BOOT_INIT -a readlink /proc/1/ns/cgroup)\" != \"\$(nsenter -t $BOOT_INIT -a readlink /proc/$mgr/ns/cgroup)\" ]"
check_eq "on the host, the manager runs in user@$uid_alice.service/pam_nsjail/init.scope" \
    "0::/user.slice/user-$uid_alice.slice/user@$uid_alice.service/pam_nsjail/init.scope" "$(C cat /proc/$mgr/cgroup | grep '^0::')"
main=$(main_pid "$uid_alice")
check_eq "the unit's main process stays on the host (the relay), in the host's pid namespace" \
    "$(C readlink /proc/1/ns/pid)" "$(C readlink "/proc/$main/ns/pid")"
check "systemctl --user status works from her login" ssh_in alice 'systemctl --user status >/dev/null'
check "systemctl --user is-system-running: running" sh -c "nsenter -t $BOOT_INIT -a ssh ${KEY[*]} alice@127.0.0.1 'systemctl --user is-system-running' | grep -qx running"
unit=$(ssh_in alice "systemd-run --user --wait --pipe --quiet sh -c '$probe'" 2>&1)
check_eq "systemd-run --user --wait: the unit sees what her login sees (namespaces, her /tmp, only her processes)" \
    "$session" "$unit"
cg_unit=$(ssh_in alice "systemd-run --user --wait --pipe --quiet --unit=cgprobe sh -c 'grep ^0:: /proc/self/cgroup; ls /sys/fs/cgroup | grep -v [.].*[.] | tr \"\\n\" \" \"'" 2>/dev/null)
check_eq "a unit's cgroup, as it sees it: /app.slice/cgprobe.service" "0::/app.slice/cgprobe.service" "$(printf '%s\n' "$cg_unit" | sed -n 1p)"
check "a unit's /sys/fs/cgroup shows only her manager's tree (app.slice, init.scope), none of the host's (no user.slice, no system.slice)" \
    sh -c "printf '%s\n' '$cg_unit' | sed -n 2p | grep -q 'app.slice' && printf '%s\n' '$cg_unit' | sed -n 2p | grep -q 'init.scope' && ! printf '%s\n' '$cg_unit' | sed -n 2p | grep -Eq 'user.slice|system.slice'"
check "her login's /sys/fs/cgroup is still the set's read-only view (no app.slice)" \
    ssh_in alice '! ls /sys/fs/cgroup | grep -q app.slice && touch /sys/fs/cgroup/x 2>&1 | grep -q Read-only'
check "the host sees her units under user@$uid_alice.service/pam_nsjail/app.slice" \
    C test -d "/sys/fs/cgroup/user.slice/user-$uid_alice.slice/user@$uid_alice.service/pam_nsjail/app.slice"
check "her user bus works from her login (busctl --user call … ListNames)" \
    ssh_in alice 'busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ListNames >/dev/null'
check "and from a unit (busctl --user call … GetId)" \
    ssh_in alice 'systemd-run --user --wait --pipe --quiet busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId >/dev/null'
check "systemctl reload user@$uid_alice (the reload signal passes the relay)" C timeout 20 systemctl reload "user@$uid_alice.service"
check "after the reload (a re-exec, in its own namespaces) the manager answers: running" \
    wait_for sh -c "nsenter -t $BOOT_INIT -a ssh ${KEY[*]} alice@127.0.0.1 'systemctl --user is-system-running' 2>/dev/null | grep -qx running"

# ---- bob (exempt): the control ------------------------------------------------------------
bob_unit=$(ssh_in bob "systemd-run --user --wait --pipe --quiet sh -c '$probe'" 2>&1)
check_eq "control: bob's unit runs in the host's pid and user namespaces" \
    "$(for n in pid user; do C readlink "/proc/1/ns/$n"; done)" "$(printf '%s\n' "$bob_unit" | sed -n 1,2p)"
check "control: bob's unit sees the host's /tmp and alice's processes" \
    sh -c "printf '%s\n' '$bob_unit' | sed -n 3p | grep -q host-marker && printf '%s\n' '$bob_unit' | sed -n 4p | grep -q alice"

# ---- lingering: a unit outlives her logins, in her set ------------------------------------
check "loginctl enable-linger alice" unit_run loginctl enable-linger alice
ssh_in alice 'systemd-run --user --quiet --unit=lingerer sleep 3001' 2>/dev/null
logout_bg 2002
check "after her last logout the lingering unit still runs" sh -c "sleep 2; nsenter -t $BOOT_INIT -a pgrep -u alice -fx '/usr/bin/sleep 3001'"
linger=$(C pgrep -u alice -fx '/usr/bin/sleep 3001')
check_eq "the lingering unit stays in her set (pid and user namespaces, the manager's mount namespace)" \
    "$(printf '%s\n' "$session" | sed -n 1,2p; C readlink /proc/$mgr/ns/mnt)" "$(for n in pid user mnt; do C readlink "/proc/$linger/ns/$n"; done)"
check "nsjail-helper list shows her set, held by the manager" sh -c "nsenter -t $BOOT_INIT -a nsjail-helper list | grep -q '^u$uid_alice '"
check_eq "a new login joins the set the manager holds" "$(printf '%s\n' "$session" | sed -n 1p)" "$(ssh_in alice 'readlink /proc/self/ns/pid' 2>/dev/null)"

# ---- stopping: systemctl stop, then loginctl terminate-user -------------------------------
C systemctl stop "user@$uid_alice.service"
check "systemctl stop user@$uid_alice: the manager ends cleanly (result success)" \
    sh -c "[ \"\$(nsenter -t $BOOT_INIT -a systemctl show -p Result --value user@$uid_alice.service)\" = success ]"
check "systemctl stop: the lingering unit and the set are gone" wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -u alice >/dev/null && [ -z \"\$(nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets)\" ]"
C systemctl start "user@$uid_alice.service"
check "lingering: user@$uid_alice starts again without any login, in a new set" \
    sh -c "[ \"\$(nsenter -t $BOOT_INIT -a systemctl is-active user@$uid_alice.service)\" = active ] && nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets | grep -qx u$uid_alice"
check "loginctl terminate-user (lingering)" unit_run loginctl terminate-user alice
check "loginctl terminate-user: her manager and her set are gone" \
    wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -u alice >/dev/null && [ -z \"\$(nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets)\" ]"
unit_run loginctl disable-linger alice
C systemctl stop "user@$uid_alice.service"
C systemctl reset-failed "user@$uid_alice.service" 2>/dev/null

# ---- not lingering: the manager holds the set until logind stops it -----------------------
login_bg alice 2003
wait_for active "$uid_alice" active
logout_bg 2003
sleep 2
check "not lingering: 2 s after her last logout the manager still holds her set" \
    sh -c "nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets | grep -qx u$uid_alice"
alice_gone() { ! C pgrep -u alice >/dev/null && [ -z "$(C ls /run/pam_nsjail/sets)" ]; }
within_20s() { WAIT_TRIES=400 wait_for "$@"; }
check "not lingering: logind stops user@ (UserStopDelaySec, 10 s) and the set ends with it" \
    within_20s alice_gone

# ---- "!cgroup": the manager works in the set's own namespaces ---------------------------
set_policy_in 'namespaces = ["user", "mount", "pid", "ipc", "!cgroup"]'
login_bg alice 2004
check '"!cgroup": user@'$uid_alice' is active' wait_for active "$uid_alice" active
ssh_in alice 'echo nocg >/tmp/nocg-marker' 2>/dev/null
nocg_login=$(ssh_in alice 'readlink /proc/self/ns/pid /proc/self/ns/mnt /proc/self/ns/cgroup' 2>/dev/null | tr '\n' ' ')
nocg_unit=$(ssh_in alice "systemd-run --user --wait --pipe --quiet sh -c 'readlink /proc/self/ns/pid /proc/self/ns/mnt /proc/self/ns/cgroup; cat /tmp/nocg-marker; grep ^0:: /proc/self/cgroup'" 2>/dev/null)
check_eq '"!cgroup": the unit shares her login'"'"'s pid, mount and cgroup namespaces and sees her /tmp' \
    "${nocg_login}nocg" "$(printf '%s\n' "$nocg_unit" | sed -n 1,4p | tr '\n' ' ' | sed 's/ $//')"
check '"!cgroup": the unit'"'"'s cgroup is the host'"'"'s path in user@'$uid_alice'.service' \
    sh -c "printf '%s\n' '$nocg_unit' | sed -n 5p | grep -q '^0::/user.slice/user-$uid_alice.slice/user@$uid_alice.service/app.slice/'"
logout_bg 2004
C loginctl terminate-user alice
wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -u alice >/dev/null && [ -z \"\$(nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets)\" ]"
C systemctl reset-failed "user@$uid_alice.service" 2>/dev/null

# ---- refused: limits ----------------------------------------------------------------------
# (This lab has no cgroup controllers, so limits also refuse her ssh
# logins: only the manager's own refusal is checked there.)
set_policy_in "$(printf '%s\n' 'namespaces = ["user", "mount", "pid", "ipc", "!cgroup"]' 'tasks_max = 500')"
# Her login starts the manager (pam_systemd, in sshd's open_session).
ssh_in alice true 2>/dev/null
check "limits: user@$uid_alice is not running" sh -c "! nsenter -t $BOOT_INIT -a systemctl is-active -q user@$uid_alice.service"
check "limits: journal: the user manager was refused, with the reason" \
    journal_has "pam_nsjail\(systemd-user:session\): user=alice service=systemd-user policy=students action=refused .*the policy sets resource limits"
C systemctl reset-failed "user@$uid_alice.service" 2>/dev/null
check "limits: nothing of alice is left" wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -u alice >/dev/null && [ -z \"\$(nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets)\" ]"

logout_bg 2001
C loginctl terminate-user bob
check "nothing is left: no set, no holder" wait_for set_gone
check_eq "nsjail-helper list is empty" "" "$(C nsjail-helper list | tail -n +2)"
done_testing
