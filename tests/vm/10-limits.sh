#!/bin/bash
# Per-user resource limits where they are real: the Debian 13 VM (systemd
# 257, cgroup v2 with memory/pids/cpu/io; tests/lib/vm.sh). alice and bob
# are students with memory_max = 64M and tasks_max = 40 each.
source "$(dirname "$0")/common.sh"

if [ "$(id -u)" != 0 ]; then
    echo "not ok 1 - must run as root"
    exit 1
fi
trap 'for p in "${HELD[@]}"; do kill "$p" 2>/dev/null; done; vm_teardown' EXIT
POLICY='[[policy]]
name = "students"
groups = ["students"]
memory_max = "64M"
tasks_max = 40'
if ! vm_boot_with_build "$POLICY"; then
    not_ok "boot the Debian 13 VM with this build" "$(tail -5 "$VM_DIR/console.log" 2>/dev/null)"
    done_testing
    exit 1
fi
ok "Debian 13 VM up ($(vm_ssh 'systemctl --version | head -1; uname -r' | tr '\n' ' '))"

uid_alice=$(vm_ssh id -u alice)
uid_bob=$(vm_ssh id -u bob)
slice_of() { echo "/sys/fs/cgroup/user.slice/user-$1.slice/user-$1-nsjail.slice"; }
SLICE_A=$(slice_of "$uid_alice")
SLICE_B=$(slice_of "$uid_bob")
# hold USER MARK [JOB]: a login held open in the background (a pty, as an
# interactive user), starting JOB (ending in "&") then `sleep MARK`;
# release MARK ends it.
hold() {
    setsid ssh -tt -i "$VM_DIR/key" -p "$VM_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$1@127.0.0.1" "${3:+$3 }exec sleep $2" \
        </dev/null >/dev/null 2>&1 &
    HELD[$2]=$!
    for _ in $(seq 60); do
        vm_ssh "pgrep -u $1 -fx 'sleep $2'" >/dev/null && return 0
        sleep 0.5
    done
    return 1
}
declare -A HELD
release() { kill "${HELD[$1]}" 2>/dev/null; }
vm_wait() { # vm_wait CMD: retries a VM-side shell condition for 30 s
    for _ in $(seq 60); do
        vm_ssh "$1" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}
set_gone() { vm_wait "[ ! -d $(slice_of "$1") ] && ! systemctl list-units --no-legend 'nsjail-$1-*' | grep -q . && ! pgrep -u $1"; }

# 1. Where a login's processes sit: sshd's monitor in logind's session
#    scope, the session child, the shell and what it starts in the set's
#    scope, in the user's limited slice.
hold alice 1001 || not_ok "alice's held login started"
cg=$(vm_ssh -u alice 'cat /proc/self/cgroup; sleep 1 & cat /proc/$!/cgroup')
check "alice's shell and its background job are in her set's scope under her limited slice" \
    test "$(printf '%s\n' "$cg" | grep -c "^0::/user.slice/user-$uid_alice.slice/user-$uid_alice-nsjail.slice/nsjail-$uid_alice-[0-9]*.scope\$")" = 2
where=$(vm_ssh "for p in \$(pgrep -u $uid_alice -f 'sleep 1001'; pgrep -f 'sshd-session: alice'); do echo \$(cat /proc/\$p/comm) \$(cut -d: -f3 /proc/\$p/cgroup); done")
printf '%s\n' "$where" | sed 's/^/# /'
check "sshd's monitor stays in logind's session scope" \
    grep -q "^sshd-session /user.slice/user-$uid_alice.slice/session-[0-9]*.scope" <<<"$where"
check_eq "the slice carries memory_max and tasks_max" "67108864 40" \
    "$(vm_ssh "cat $SLICE_A/memory.max $SLICE_A/pids.max" | tr '\n' ' ' | sed 's/ $//')"

# 2. A memory hog is stopped at memory_max; bob's login and processes are
#    unaffected.
hold bob 1002 || not_ok "bob's held login started"
rc=$(vm_ssh -u alice 'python3 -c "b = b\"x\" * (200 << 20)"; echo $?')
peak=$(vm_ssh "cat $SLICE_A/memory.peak")
kills=$(vm_ssh "sed -n 's/^oom_kill //p' $SLICE_A/memory.events")
echo "# alice's hog: status $rc, slice memory.peak $((peak >> 20)) MiB, oom_kill $kills"
check_eq "alice's 200 MiB hog is killed (SIGKILL)" 137 "$rc"
check "her slice never went above 64 MiB" test "$peak" -le $((64 << 20))
check "the kill is counted in her slice (memory.events oom_kill)" test "${kills:-0}" -ge 1
check "bob's held login survived" vm_ssh "pgrep -u bob -fx 'sleep 1002'"
check_eq "bob can still use 40 MiB" ok "$(vm_ssh -u bob 'python3 -c "b = b\"x\" * (40 << 20); print(\"ok\")"')"
check "bob's slice saw no OOM kill" vm_ssh "grep -qx 'oom_kill 0' $SLICE_B/memory.events"
oomline=$(vm_ssh "journalctl -q --no-pager -o cat | grep -E 'OOM killer|out of memory' | tail -3")
printf '%s\n' "$oomline" | sed 's/^/# log: /'

# 3. Limits hold across logins: 40 MiB in one login, 40 MiB more in a
#    second, 64 MiB for both.
hold alice 1003 'python3 -c "import time; b = b\"x\" * (40 << 20); time.sleep(600)" &' ||
    not_ok "alice's second held login started"
vm_wait "[ \$(cat $SLICE_A/memory.current) -ge $((40 << 20)) ]"
before=$(vm_ssh "sed -n 's/^oom_kill //p' $SLICE_A/memory.events")
rc=$(vm_ssh -u alice 'python3 -c "b = b\"x\" * (40 << 20); print(\"fits\")" 2>&1; echo $?')
after=$(vm_ssh "sed -n 's/^oom_kill //p' $SLICE_A/memory.events")
echo "# third login's 40 MiB: $rc; oom_kill $before -> $after"
check "40 + 40 MiB in two logins of alice hit her one 64 MiB limit" test "$after" -gt "$before"
check_eq "alice's logins share one set" 1 "$(vm_ssh "ls $SLICE_A | grep -c '^nsjail-.*scope\$'")"

# 4. A fork bomb stops at tasks_max.
out=$(vm_ssh -u alice 'python3 -c "
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        n += 1
except OSError as e:
    print(n, e.strerror)
" 2>&1; cat '"$SLICE_A"'/pids.current '"$SLICE_A"'/pids.events')
echo "# fork bomb: $(echo "$out" | tr '\n' ' ')"
check "the fork bomb gets EAGAIN" grep -q "Resource temporarily unavailable" <<<"$out"
check_eq "the slice stops at 40 tasks" 40 "$(vm_ssh "cat $SLICE_A/pids.peak")"
check "bob can still start processes" vm_ssh -u bob 'for i in 1 2 3 4 5; do /bin/true; done'

# 5. What an admin sees.
vm_ssh "systemctl status --no-pager --lines=0 user-$uid_alice-nsjail.slice" | sed 's/^/# /'
vm_ssh "systemd-cgls --no-pager -u user-$uid_alice.slice" | sed 's/^/# /'
vm_ssh "nsjail-helper list" | sed 's/^/# /'

# 6. Everything ends with the set: logout of every login, then
#    terminate-user for bob.
release 1001
release 1003
vm_ssh "pkill -u alice -f 'time.sleep'" # the background job of login 3 and the bomb's sleepers
check "alice's set, scope and slice are gone after her last logout" set_gone "$uid_alice"
vm_ssh "loginctl terminate-user bob"
release 1002
check "loginctl terminate-user ends bob's set, scope and slice" set_gone "$uid_bob"
done_testing
