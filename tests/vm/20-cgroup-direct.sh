#!/bin/bash
# Per-user limits on a host WITHOUT systemd: pam_nsjail manages the cgroup v2
# hierarchy itself (/sys/fs/cgroup/pam_nsjail/user-UID/set-N, see
# nsjail-helper/src/limits/direct.rs). The same Debian 13 VM image as
# 10-limits.sh, booted a second way: the kernel's init is
# tests/vm/nosystemd-init.sh (mounts, a static address for QEMU's user
# network, a syslog socket, sshd, and a reaper as pid 1), so the cgroup v2
# root is the kernel's, with every controller and nobody else managing it —
# what a host with a small init system has. alice and bob are students with
# memory_max = 64M, tasks_max = 40 and cpu_quota = 150% each; bob is the
# control for what alice does. (A cgroup delegated by systemd would not do:
# the helper would see systemd and take the systemd path, and a delegated
# subtree is not the root, the one cgroup that may hold processes and still
# hand controllers down.)
source "$(dirname "$0")/common.sh"

if [ "$(id -u)" != 0 ]; then
    echo "not ok 1 - must run as root"
    exit 1
fi
trap 'for p in "${HELD[@]}"; do kill "$p" 2>/dev/null; done; vm_teardown' EXIT
VM_INIT=nosystemd-init.sh
POLICY='[[policy]]
name = "students"
groups = ["students"]
memory_max = "64M"
tasks_max = 40
cpu_quota = "150%"'
if ! vm_boot_with_build "$POLICY"; then
    not_ok "boot the Debian 13 VM without systemd, with this build" "$(tail -5 "$VM_DIR/console.log" 2>/dev/null)"
    done_testing
    exit 1
fi
ok "Debian 13 VM up without systemd (pid 1: $(vm_ssh 'cat /proc/1/comm'), $(vm_ssh 'uname -r'))"
check "no systemd: /run/systemd/system is absent and cgroup2 is the root hierarchy with memory and pids" \
    vm_ssh '[ ! -d /run/systemd/system ] && [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers'
explained=$(vm_ssh 'nsjail-helper explain alice')
grep -A1 '^limits:' <<<"$explained" | sed 's/^/# /'
check "explain says pam_nsjail enforces the limits on the cgroup v2 hierarchy itself" \
    grep -q 'enforced by pam_nsjail on the cgroup v2 hierarchy (no systemd): /sys/fs/cgroup/pam_nsjail/user-' <<<"$explained"

uid_alice=$(vm_ssh id -u alice)
uid_bob=$(vm_ssh id -u bob)
CG_A=/sys/fs/cgroup/pam_nsjail/user-$uid_alice
CG_B=/sys/fs/cgroup/pam_nsjail/user-$uid_bob
syslog_has() { vm_wait "grep -q -- '$1' /var/log/test-syslog"; }

# 1. Where a login's processes sit: the holder and the shell in the set's
#    leaf under alice's cgroup, which carries the limits; sshd's monitor
#    stays in the root cgroup.
hold alice 2001 || not_ok "alice's held login started"
where=$(vm_ssh "for p in \$(pgrep -u $uid_alice -fx 'sleep 2001') \$(pgrep -f 'sshd-session: alice \\[priv\\]'); do echo \$(cat /proc/\$p/comm) \$(cut -d: -f3 /proc/\$p/cgroup); done")
printf '%s\n' "$where" | sed 's/^/# /'
check "alice's shell is in her set's cgroup /pam_nsjail/user-$uid_alice/set-N" \
    grep -Eq "^sleep /pam_nsjail/user-$uid_alice/set-[0-9]+\$" <<<"$where"
check "sshd's monitor stays in the root cgroup" grep -q '^sshd-session /$' <<<"$where"
check_eq "her cgroup carries memory_max, tasks_max and cpu_quota" "67108864 40 150000 100000" \
    "$(vm_ssh "cat $CG_A/memory.max $CG_A/pids.max $CG_A/cpu.max" | tr '\n' ' ' | sed 's/ $//')"
check_eq "no process sits in her cgroup itself (only in set leaves)" "" "$(vm_ssh "cat $CG_A/cgroup.procs")"
check_eq "inside, her cgroup namespace shows the set's cgroup as the root" "0::/" \
    "$(vm_ssh -u alice 'cat /proc/self/cgroup')"

# 2. A memory hog is stopped at memory_max; bob is unaffected (control).
hold bob 2002 || not_ok "bob's held login started"
rc=$(vm_ssh -u alice 'python3 -c "b = b\"x\" * (200 << 20)"; echo $?')
peak=$(vm_ssh "cat $CG_A/memory.peak")
kills=$(vm_ssh "sed -n 's/^oom_kill //p' $CG_A/memory.events")
echo "# alice's 200 MiB hog: status $rc, her cgroup's memory.peak $((peak >> 20)) MiB ($peak bytes), oom_kill $kills"
check_eq "alice's 200 MiB hog is killed (SIGKILL)" 137 "$rc"
check "her cgroup never went above 64 MiB" test "$peak" -le $((64 << 20))
check "the kill is counted in her cgroup (memory.events oom_kill)" test "${kills:-0}" -ge 1
check "bob's held login survived" vm_ssh "pgrep -u bob -fx 'sleep 2002'"
check_eq "bob can still use 40 MiB" ok "$(vm_ssh -u bob 'python3 -c "b = b\"x\" * (40 << 20); print(\"ok\")"')"
check "bob's cgroup saw no OOM kill" vm_ssh "grep -qx 'oom_kill 0' $CG_B/memory.events"
# 3. The kill is logged with her name, when the hog's login closed.
check "the OOM kill is logged: user, set and memory.events' oom_kill count" \
    syslog_has "nsjail-helper.*user=alice set=u$uid_alice action=oom_kill oom_kill=[0-9]"
vm_ssh "grep action=oom_kill /var/log/test-syslog" | sed 's/^/# log: /'
check "no OOM line for bob" vm_ssh '! grep -q "user=bob .*action=oom_kill" /var/log/test-syslog'

# 4. Limits hold across logins: 40 MiB kept by a second login, 40 MiB
#    more in a third: 64 MiB for all.
hold alice 2003 'python3 -c "import time; b = b\"x\" * (40 << 20); time.sleep(600)" &' ||
    not_ok "alice's second held login started"
vm_wait "[ \$(cat $CG_A/memory.current) -ge $((40 << 20)) ]"
before=$(vm_ssh "sed -n 's/^oom_kill //p' $CG_A/memory.events")
out=$(vm_ssh -u alice 'python3 -c "b = b\"x\" * (40 << 20); print(\"fits\")" 2>&1; echo $?')
after=$(vm_ssh "sed -n 's/^oom_kill //p' $CG_A/memory.events")
echo "# third login's 40 MiB: $(tr '\n' ' ' <<<"$out"); oom_kill $before -> $after"
check "40 + 40 MiB in two logins of alice hit her one 64 MiB limit" test "${after:-0}" -gt "${before:-0}"
check_eq "alice's logins share one set: one leaf under her cgroup" 1 \
    "$(vm_ssh "ls -d $CG_A/set-* | wc -l")"

# 5. A fork bomb stops at tasks_max.
out=$(vm_ssh -u alice 'python3 -c "
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        n += 1
except OSError as e:
    print(n, e.strerror)
" 2>&1')
pids_peak=$(vm_ssh "cat $CG_A/pids.peak")
echo "# fork bomb: $(tr '\n' ' ' <<<"$out"); pids.peak $pids_peak; $(vm_ssh "cat $CG_A/pids.events" | tr '\n' ' ')"
check "the fork bomb gets EAGAIN" grep -q "Resource temporarily unavailable" <<<"$out"
check_eq "her cgroup stops at 40 tasks" 40 "$pids_peak"
check "bob can still start processes" vm_ssh -u bob 'for i in 1 2 3 4 5; do /bin/true; done'

# 6. What an admin sees: list's figures come from her cgroup.
listed=$(vm_ssh "nsjail-helper list")
printf '%s\n' "$listed" | sed 's/^/# /'
check "list shows alice's memory, tasks and CPU against 64M, 40 and 150%" \
    grep -Eq "^u$uid_alice +alice .* [0-9.]+[KMG]/64M +[0-9]+/40 +[0-9]+\.[0-9]s/150%\$" <<<"$listed"
check_eq "list --json names her cgroup" "/pam_nsjail/user-$uid_alice" \
    "$(vm_ssh "nsjail-helper list --json" | python3 -c '
import json, sys
print([s["usage"]["cgroup"] for s in json.load(sys.stdin) if s["user"] == "alice"][0])')"

# 7. run and enter put their command into the set's cgroup too (run's
#    child is already in the set's pid namespace when it moves itself).
check_eq "run alice: the command is in her set's cgroup (its namespace root)" "0::/" \
    "$(vm_ssh "nsjail-helper run alice -- cat /proc/self/cgroup" 2>&1 | tail -1)"
check_eq "enter alice: likewise" "0::/" \
    "$(vm_ssh "nsjail-helper enter alice -- cat /proc/self/cgroup" 2>&1 | tail -1)"

# 8. Everything ends with the set: after her last logout her set's cgroup
#    and her own are removed; bob's stays while he is logged in.
release 2001
release 2003
check "alice's set and her cgroup are gone after her last logout" \
    vm_wait "[ ! -d $CG_A ] && ! pgrep -u $uid_alice"
check "bob's cgroup is still there" vm_ssh "[ -d $CG_B ]"
release 2002
check "bob's too after his; pam_nsjail's subtree is left empty" \
    vm_wait "[ ! -d $CG_B ] && [ -z \"\$(ls -d /sys/fs/cgroup/pam_nsjail/*/ 2>/dev/null)\" ]"
done_testing
