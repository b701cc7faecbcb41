#!/bin/bash
# Per-user resource limits where they are real: the Debian 13 VM (systemd
# 257, cgroup v2 with memory/pids/cpu/io; tests/lib/vm.sh). alice and bob
# are students with memory_max = 64M, tasks_max = 40, cpu_weight = 100 and
# cpu_quota = 150% each, and a private /tmp of 256M (above memory_max, so
# that the memory limit, not the tmpfs size, is what a big write meets).
source "$(dirname "$0")/common.sh"

if [ "$(id -u)" != 0 ]; then
    echo "not ok 1 - must run as root"
    exit 1
fi
trap 'for p in "${HELD[@]}" "${HOGS[@]}"; do kill "$p" 2>/dev/null; done; vm_teardown' EXIT
HOGS=()
POLICY='[[policy]]
name = "students"
groups = ["students"]
memory_max = "64M"
tasks_max = 40
cpu_weight = 100
cpu_quota = "150%"
tmp_size = "256M"'
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
set_gone() { vm_wait "[ ! -d $(slice_of "$1") ] && ! systemctl list-units --no-legend 'nsjail-$1-*' | grep -q . && ! pgrep -u $1"; }

# 1. Where a login's processes sit: sshd's monitor in logind's session
#    scope, the session child, the shell and what it starts in the set's
#    scope, in the user's limited slice.
hold alice 1001 || not_ok "alice's held login started"
# A shell (exec'd into `sleep 1012`) and its background job, seen from the
# host: inside, the set's cgroup namespace shows the scope as "/".
vm_ssh -u alice 'sleep 1011 </dev/null >/dev/null 2>&1 & exec sleep 1012' >/dev/null 2>&1 &
shell_ssh=$!
vm_wait "pgrep -u alice -fx 'sleep 1011' && pgrep -u alice -fx 'sleep 1012'"
cg=$(vm_ssh "for p in \$(pgrep -u alice -fx 'sleep 101[12]'); do cut -d: -f3 /proc/\$p/cgroup; done")
vm_ssh "pkill -u alice -fx 'sleep 101[12]'"
wait "$shell_ssh"
check "alice's shell and its background job are in her set's scope under her limited slice" \
    test "$(printf '%s\n' "$cg" | grep -c "^/user.slice/user-$uid_alice.slice/user-$uid_alice-nsjail.slice/nsjail-$uid_alice-[0-9]*.scope\$")" = 2
check_eq "inside, her cgroup namespace shows that scope as the root" "0::/" \
    "$(vm_ssh -u alice 'cat /proc/self/cgroup')"
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
check "pam_nsjail logs the OOM kill with alice's name, her set and oom_kill (at the hog's logout)" \
    vm_wait "journalctl -q --no-pager -t nsjail-helper -o cat | grep -q 'user=alice set=u$uid_alice action=oom_kill oom_kill=[0-9]'"

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
" 2>&1')
out="$out
$(vm_ssh "cat $SLICE_A/pids.current $SLICE_A/pids.events")"
echo "# fork bomb: $(echo "$out" | tr '\n' ' ')"
check "the fork bomb gets EAGAIN" grep -q "Resource temporarily unavailable" <<<"$out"
check_eq "the slice stops at 40 tasks" 40 "$(vm_ssh "cat $SLICE_A/pids.peak")"
check "bob can still start processes" vm_ssh -u bob 'for i in 1 2 3 4 5; do /bin/true; done'

# 5. What an admin sees.
vm_ssh "systemctl status --no-pager --lines=0 user-$uid_alice-nsjail.slice" | sed 's/^/# /'
vm_ssh "systemd-cgls --no-pager -u user-$uid_alice.slice" | sed 's/^/# /'
listed=$(vm_ssh "nsjail-helper list")
printf '%s\n' "$listed" | sed 's/^/# /'
# list's MEMORY, TASKS and CPU columns, and --json's usage, for alice.
check "list shows alice's memory, tasks and CPU against 64M, 40 and 150%" \
    grep -Eq '^u[0-9]+ +alice .* [0-9.]+[KMG]/64M +[0-9]+/40 +[0-9]+\.[0-9]s/150%$' <<<"$listed"
usage=$(vm_ssh "nsjail-helper list --json" | python3 -c '
import json, sys
u = [s["usage"] for s in json.load(sys.stdin) if s["user"] == "alice"][0]
print(u["cgroup"], u["memory_current"], u["memory_max"], u["tasks_current"], u["tasks_max"],
      u["cpu_usage_usec"], u["cpu_quota_percent"])')
echo "# list --json, alice: cgroup memory_current memory_max tasks_current tasks_max cpu_usage_usec cpu_quota_percent: $usage"
read -r u_cg u_mem u_memmax u_tasks u_tasksmax u_cpu u_quota <<<"$usage"
check_eq "list reads alice's figures from her slice" "$SLICE_A" "/sys/fs/cgroup$u_cg"
check_eq "list's limits are the policy's: memory_max, tasks_max, cpu_quota" "67108864 40 150" \
    "$u_memmax $u_tasksmax $u_quota"
check "alice's memory in use is above 0 and at most memory_max" \
    test "${u_mem:-0}" -gt 0 -a "${u_mem:-0}" -le "${u_memmax:-0}"
check "alice's tasks are at least her held logins' and at most tasks_max" \
    test "${u_tasks:-0}" -ge 4 -a "${u_tasks:-0}" -le "${u_tasksmax:-0}"
check "alice's CPU time is above 0" test "${u_cpu:-0}" -gt 0

# 6. Equal cpu_weight on one CPU: a CPU hog of alice's and one of bob's,
#    both pinned to CPU 0, each get about half of it (usage_usec of each
#    slice's cpu.stat over 5 s; their sum shows they shared one CPU).
LOOP='while :; do :; done'
HOG="sh -c $LOOP" # its command line, for pgrep -fx
for u in alice bob; do
    vm_ssh -u "$u" "exec taskset -c 0 timeout 60 sh -c '$LOOP'" >/dev/null 2>&1 &
    HOGS+=($!)
done
vm_wait "pgrep -u alice -fx '$HOG' && pgrep -u bob -fx '$HOG'" ||
    not_ok "both CPU hogs started"
shares=$(vm_ssh "use() { sed -n 's/^usage_usec //p' \$1/cpu.stat; }
    a0=\$(use $SLICE_A); b0=\$(use $SLICE_B); t0=\$(date +%s%N)
    sleep 5
    a1=\$(use $SLICE_A); b1=\$(use $SLICE_B); t1=\$(date +%s%N)
    echo \$((a1 - a0)) \$((b1 - b0)) \$(((t1 - t0) / 1000))")
vm_ssh "pkill -fx '$HOG'"
for p in "${HOGS[@]}"; do wait "$p"; done
HOGS=()
read -r cpu_a cpu_b wall <<<"$shares"
cpu_sum=$((${cpu_a:-0} + ${cpu_b:-0}))
share_a=$((${cpu_a:-0} * 100 / (cpu_sum > 0 ? cpu_sum : 1)))
echo "# CPU over ${wall:-?} µs: alice ${cpu_a:-?} µs, bob ${cpu_b:-?} µs: alice $share_a %, bob $((100 - share_a)) %"
check "alice's hog got 30-70 % of CPU 0" test "$share_a" -ge 30 -a "$share_a" -le 70
check "bob's hog got 30-70 % of CPU 0" test $((100 - share_a)) -ge 30 -a $((100 - share_a)) -le 70
check "the two hogs shared one CPU (together at most 1.3 CPU-seconds a second)" \
    test "$cpu_sum" -gt 0 -a "$cpu_sum" -le $((${wall:-0} * 13 / 10))

# 7. Everything ends with the set: logout of every login.
release 1001
release 1003
vm_ssh "pkill -u alice -f 'time.sleep'" # the background job of login 3 and the bomb's sleepers
if set_gone "$uid_alice"; then
    ok "alice's set, scope and slice are gone after her last logout"
else
    not_ok "alice's set, scope and slice are gone after her last logout"
    vm_ssh "systemctl list-units --no-legend 'nsjail-*' 'user*'; loginctl list-sessions --no-legend; pgrep -u $uid_alice -a; ls $SLICE_A" 2>&1 | sed 's/^/# left: /'
fi

# 8. tmpfs pages count against memory_max. alice writes 128 MiB into her
#    private /tmp (256M): the memory limit stops it at 64 MiB, not the
#    tmpfs size. tmpfs pages cannot be reclaimed (no swap), so the kernel's
#    OOM killer kills inside her slice, largest first: the sshd session
#    children of every login of hers (measured: before dd itself), so all
#    her logins end, and with them her set and its tmpfs. dd sees no
#    ENOSPC. bob is unaffected.
hold alice 1004 || not_ok "alice's held login for the tmpfs test started"
klines=$(vm_ssh "journalctl -k -q --no-pager -o cat | wc -l")
out=$(vm_ssh -u alice 'dd if=/dev/zero of=/tmp/big bs=1M count=128 2>&1; echo "dd status $?"')
rc=$?
vm_wait "journalctl -k -q --no-pager -o cat | tail -n +$((klines + 1)) | grep -q 'Killed process [0-9]* '"
klog=$(vm_ssh "journalctl -k -q --no-pager -o cat | tail -n +$((klines + 1))")
killed=$(grep -o 'Killed process [0-9]* ([^)]*)' <<<"$klog" | sed 's/Killed process [0-9]* //' | tr '\n' ' ')
shmem=$(sed -n 's/^shmem //p' <<<"$klog" | sort -n | tail -1)
echo "# alice's 128 MiB tmpfs write: ssh status $rc, output: $(tr '\n' ' ' <<<"$out")"
echo "# OOM kills in her slice, in order: $killed; tmpfs (shmem) charged at the OOM: $((${shmem:-0} >> 20)) MiB"
grep -E 'memory: usage|oom-kill:' <<<"$klog" | head -2 | sed 's/^/# log: /'
check "the write is stopped in alice's slice at its 64 MiB limit" \
    grep -q "oom_memcg=/user.slice/user-$uid_alice.slice/user-$uid_alice-nsjail.slice," <<<"$klog"
check "the kernel counts memory: usage at the limit 65536kB" grep -q 'limit 65536kB' <<<"$klog"
check "the pages are her tmpfs file's: at least 56 MiB shmem charged to her" \
    test "${shmem:-0}" -ge $((56 << 20))
# Which of her processes the OOM killer takes first is the kernel's
# choice (sshd's session children or dd itself): the write must not
# complete, whoever goes.
check "dd did not get its 128 MiB written" sh -c '! printf "%s" "$1" | grep -q "134217728 bytes"' _ "$out"
check_eq "the writing login is ended (its connection closed)" 255 "$rc"
check "so was her other login, and her set, scope and slice with its tmpfs are gone" \
    set_gone "$uid_alice"
check "bob's held login survived" vm_ssh "pgrep -u bob -fx 'sleep 1002'"
check "bob's slice saw no OOM kill" vm_ssh "grep -qx 'oom_kill 0' $SLICE_B/memory.events"
check_eq "bob can write 40 MiB into his /tmp" ok \
    "$(vm_ssh -u bob 'dd if=/dev/zero of=/tmp/f bs=1M count=40 2>/dev/null && rm /tmp/f && echo ok')"
release 1004

# 9. loginctl terminate-user ends a set too.
vm_ssh "loginctl terminate-user bob"
release 1002
check "loginctl terminate-user ends bob's set, scope and slice" set_gone "$uid_bob"

# 10. nsjail-helper run places its command under the limits too (its
#     child is already in the set's pid namespace when it asks systemd to
#     move it: systemd must get its host pid).
check_eq "run alice: her command runs under her limits (the move into her limited scope is verified)" ran \
    "$(vm_ssh "nsjail-helper run alice -- echo ran" 2>&1 | tail -1)"

# 11. The user manager on a host with real controllers (docs/SERVICES.md,
#     "systemd-user"), with the install docs' lines. Without limits, in a
#     set with the default cgroup namespace, it runs in one of its own at
#     user@UID.service/pam_nsjail, which holds no process of its own, so
#     the manager passes controllers on to her units as systemd's own
#     manager does for bob (exempt: the control). With limits it is
#     refused (her units would run outside them).
vm_ssh "systemctl stop user@$uid_alice.service user@$uid_bob.service"
set_policy_vm '[[policy]]
name = "control"
users = ["bob"]
isolate = false

[[policy]]
name = "students"
groups = ["students"]'
vm_ssh 'cp /usr/lib/pam.d/systemd-user /etc/pam.d/ && echo "@include nsjail" >>/etc/pam.d/systemd-user &&
    mkdir -p /etc/systemd/system/user@.service.d &&
    cat >/etc/systemd/system/user@.service.d/pam_nsjail.conf && systemctl daemon-reload' \
    <"$REPO/config/systemd/user@.service.d/pam_nsjail.conf"
hold alice 1101 || not_ok "alice's held login for the user manager started"
hold bob 1102 || not_ok "bob's held login for the user manager started"
check "alice's user manager is active" vm_wait "systemctl is-active -q user@$uid_alice.service"
# (This image has no dbus-user-session, hence no user bus and no
# systemd-run --user: a unit file, started over the manager's private
# socket, writes what it sees into her /tmp.)
unit=$(vm_ssh -u alice 'mkdir -p ~/.config/systemd/user && cat >~/probe.sh &&
    printf "%s\n" "[Service]" "Type=oneshot" "ExecStart=/bin/sh %h/probe.sh" "StandardOutput=file:/tmp/probe.out" \
        >~/.config/systemd/user/probe.service &&
    systemctl --user daemon-reload && systemctl --user start probe.service && cat /tmp/probe.out' <<'EOS'
echo "cg=$(grep ^0:: /proc/self/cgroup)"
echo "ctl=$(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "pid=$(readlink /proc/self/ns/pid)"
EOS
)
printf '%s\n' "$unit" | sed 's/^/# her unit: /'
bob_ctl=$(vm_ssh "cat /sys/fs/cgroup/user.slice/user-$uid_bob.slice/user@$uid_bob.service/cgroup.subtree_control")
echo "# bob's user@$uid_bob.service/cgroup.subtree_control: $bob_ctl"
check "her unit sees its cgroup as /app.slice/probe.service (the manager's own cgroup namespace)" \
    grep -qx 'cg=0::/app.slice/probe.service' <<<"$unit"
check_eq "her unit runs in her set's pid namespace" "pid=$(vm_ssh -u alice 'readlink /proc/self/ns/pid')" "$(grep '^pid=' <<<"$unit")"
check "her manager passes the controllers on as bob's does (cpu, memory, pids)" \
    sh -c '[ "$1" = "ctl=$2" ] && printf "%s" "$2" | grep -q memory && printf "%s" "$2" | grep -q pids' _ \
    "$(grep '^ctl=' <<<"$unit")" "$bob_ctl"
check_eq "user@$uid_alice.service/pam_nsjail itself holds no process" "" \
    "$(vm_ssh "cat /sys/fs/cgroup/user.slice/user-$uid_alice.slice/user@$uid_alice.service/pam_nsjail/cgroup.procs")"
release 1101
release 1102
vm_ssh "systemctl stop user@$uid_alice.service user@$uid_bob.service"
set_policy_vm "$POLICY"
hold alice 1103 || not_ok "alice's held login with limits started"
check "with limits her user manager is refused, with the reason" \
    vm_wait "journalctl -q --no-pager -o cat | grep -q 'pam_nsjail(systemd-user:session): user=alice service=systemd-user policy=students action=refused .*the policy sets resource limits'"
check "and her login is still isolated under her limits" vm_ssh "pgrep -u alice -fx 'sleep 1103' && test -d $SLICE_A"
release 1103
done_testing
