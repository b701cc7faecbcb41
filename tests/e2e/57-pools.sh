#!/bin/bash
# No cross-user exhaustion, part 2 (issue 17): pools every set draws from
# that 56-pools.sh does not cover. Each check below failed on the build
# before these bounds existed (38b45b6), and each has a control showing
# the pool was really drained or the bound really applies.
#
# - SysV IPC: each set's ipc namespace gets limits (ipc_shm_max,
#   ipc_objects) instead of the kernel's unlimited defaults; root's own
#   ipc namespace keeps its values.
# - Sets charged to root: max_sets bounds a user's concurrent sets, so
#   alice cannot use up root's user.max_ipc_namespaces and lock bob and
#   root out (scaled down in an outer user namespace, as in 56-pools.sh).
# - check: its RAM estimate counts every set a user may have with
#   share = "session", and it names the namespace limits sets are bound by.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

R=/run/nsjail-test/pools2
mkdir -p "$R"
get() { cat "$R/$1" 2>/dev/null; }

# ---- ptys ----------------------------------------------------------------
# The host's devpts scaled down to 16 ptys (a new instance on the sandbox's
# /dev/pts, which sshd's monitors allocate from). Default policy: no keys.
set_policy "$(test_policy)"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,max=16 devpts /dev/pts
mount --bind /dev/pts/ptmx /dev/ptmx
hold_ptys='
import os, sys, time
fds = []
while len(fds) < 100:
    try:
        fds.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        break
open("/tmp/ptys_held", "w").write(str(len(fds)))
time.sleep(float(sys.argv[1]))'
out=$(ssh_as alice -tt 'tty; [ -c "$(tty)" ] && echo named; script -qc tty /dev/null; tmux new-session -d -s t "sleep 5" && tmux ls | wc -l' 2>&1 | tr -d '\r')
check "ptys: alice's login pty has a name in her set" grep -qx '/dev/pts/[0-9]*' <<<"$(sed -n 1p <<<"$out")"
check_eq "ptys: the name is her terminal's" named "$(sed -n 2p <<<"$out")"
check "ptys: script gets a pty" grep -qx '/dev/pts/[0-9]*' <<<"$(sed -n 3p <<<"$out")"
check_eq "ptys: tmux starts" 1 "$(sed -n 4p <<<"$out")"
ssh_as bob -tt 'sleep 20' >/dev/null 2>&1 &
bob_login=$!
wait_for sh -c 'ls /run/pam_nsjail/sets | grep -q "^u$(id -u bob)$"'
sleep 0.5
check_eq "ptys: alice sees no one else's /dev/pts entries (bob is logged in with one)" 0 \
    "$(ssh_as alice 'ls /dev/pts | grep -c "^[0-9]"' 2>&1)"
ssh_as alice "python3 -c '$hold_ptys' 20" >/dev/null 2>&1 &
alice_login=$!
wait_for nsjail-helper enter alice -- test -s /tmp/ptys_held
held=$(nsjail-helper enter alice -- cat /tmp/ptys_held 2>/dev/null)
check_eq "ptys: alice holds all the ptys she can get: her set's 64 (control: the pool is drained)" 64 "$held"
out=$(ssh_as bob -tt tty 2>&1 | tr -d '\r')
check "ptys: bob's next ssh login still gets a pty" grep -qx '/dev/pts/[0-9]*' <<<"$out"
check_eq "ptys: root's openpty still works" ok \
    "$(python3 -c 'import pty; pty.openpty(); print("ok")' 2>&1 | tail -1)"
kill "$alice_login" "$bob_login" 2>/dev/null
wait "$alice_login" "$bob_login" 2>/dev/null
nsjail-helper stop alice >/dev/null 2>&1
nsjail-helper stop bob >/dev/null 2>&1
# The set's own bound, scaled down.
set_policy "$(test_policy | sed 's/^share = "user"/share = "user"\nmax_ptys = 4/')"
check_eq "ptys: max_ptys bounds the set's devpts" 4 \
    "$(nsjail-helper run alice -- sh -c "python3 -c '$hold_ptys' 0; cat /tmp/ptys_held" 2>&1 | tail -1)"
nsjail-helper stop alice >/dev/null 2>&1

# ---- SysV IPC ---------------------------------------------------------------
# With no ipc keys in the policy: shared memory as much as one private
# tmpfs (tmp_size), 128 objects of each kind.
set_policy "$(test_policy | sed 's/^share = "user"/share = "user"\ntmp_size = "64M"/')"
ipc_probe='
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
def shm(mib):
    r = libc.shmget(0, mib << 20, 0o1000 | 0o600)
    return "ok" if r >= 0 else os.strerror(ctypes.get_errno())
queues = 0
while queues < 200 and libc.msgget(0, 0o1000 | 0o600) >= 0:
    queues += 1
print("shm256=%s shm48=%s shm24=%s queues=%d" % (shm(256), shm(48), shm(24), queues))'
root_shmmax_before=$(cat /proc/sys/kernel/shmmax)
out=$(nsjail-helper run alice -- python3 -c "$ipc_probe" 2>&1 | tail -1)
check_eq "SysV: a 256 MiB segment is refused, 48 MiB fit, 48+24 MiB exceed the set's 64 MiB; 128 message queues" \
    "shm256=Invalid argument shm48=ok shm24=No space left on device queues=128" "$out"
check_eq "SysV: the set's shmmax is tmp_size" 67108864 \
    "$(nsjail-helper run alice -- cat /proc/sys/kernel/shmmax 2>&1 | tail -1)"
check_eq "SysV: the set's semaphores (SEMMSL SEMMNS SEMOPM SEMMNI)" "250	32000	100	128" \
    "$(nsjail-helper run alice -- cat /proc/sys/kernel/sem 2>&1 | tail -1)"
check_eq "SysV (control): root's own ipc namespace keeps its limits" "$root_shmmax_before" \
    "$(cat /proc/sys/kernel/shmmax)"
out=$(python3 -c "$ipc_probe")
check_eq "SysV (control): root still makes a 256 MiB segment and 200 queues" \
    "shm256=ok queues=200" "${out%% *} ${out##* }"
ipcrm --all 2>/dev/null
nsjail-helper stop alice >/dev/null 2>&1

# The keys, and their errors.
set_policy "$(test_policy | sed 's/^share = "user"/share = "user"\nipc_shm_max = "8M"\nipc_objects = 16/')"
check_eq "SysV: ipc_shm_max and ipc_objects set the set's limits" "8388608 16" \
    "$(nsjail-helper run alice -- sh -c 'echo $(cat /proc/sys/kernel/shmmax /proc/sys/kernel/msgmni)' 2>&1 | tail -1)"
nsjail-helper stop alice >/dev/null 2>&1
printf '[[policy]]\nname = "p"\ngroups = ["students"]\nipc_objects = 0\nipc_shm_max = "lots"\nmax_sets = 2000\n' >"$R/bad.toml"
out=$(nsjail-helper check --config "$R/bad.toml" 2>&1)
check "check: bad bounds are errors with path:line:col" grep -q \
    "^nsjail-helper: $R/bad.toml:4:15: invalid ipc_objects 0: expected 1..32768" <<<"$out"
check "check: ipc_shm_max is a size" grep -q "^nsjail-helper: $R/bad.toml:5:15: invalid ipc_shm_max \"lots\"" <<<"$out"
check "check: max_sets has a ceiling" grep -q "^nsjail-helper: $R/bad.toml:6:12: invalid max_sets 2000: expected 1..1024" <<<"$out"

# ---- sets charged to root, and check's estimates ----------------------------
# share = "session" with on_logout = "linger": every run makes a set that
# stays. No bound keys in the policy: the default max_sets (8) applies.
set_policy "$(test_policy | sed 's/^share = "user"/share = "session"\ntmp_size = "10%"/;
    s/on_logout = "kill"/on_logout = "linger"/')"
cat >"$R/inner.sh" <<'EOF'
# Runs as root of an outer user namespace (all ids mapped to themselves),
# whose per-user namespace limits the test may lower (see 56-pools.sh).
R=/run/nsjail-test/pools2
mount --make-rprivate /
echo 12 >/proc/sys/user/max_ipc_namespaces
result() { printf '%s\n' "$2" >"$R/$1"; }

# check: 2 students x 8 sets x (3 tmpfs + shm) x 10% of RAM = 640 %, and
# 16 sets against a limit of 12 ipc namespaces; with share = "user",
# 2 sets and 80 % (the controls).
nsjail-helper check >"$R/check_session" 2>&1
sed 's/^share = "session"/share = "user"/' /etc/security/pam_nsjail.toml >"$R/user.toml"
nsjail-helper check --config "$R/user.toml" >"$R/check_user" 2>&1

# alice makes set after set. (`run` itself ends in EPERM in this outer
# namespace once the set is made, so the sets are counted in the registry.)
for i in $(seq 14); do
    nsjail-helper run alice -- true >>"$R/alice_runs" 2>&1
done
result alice_sets "$(ls /run/pam_nsjail/sets | grep -c "^s$(id -u alice)\.")"
result bob_after "$(nsjail-helper run bob -- id -un 2>&1 | tail -1)"
result root_after "$(unshare -i true 2>&1 && echo ok)"
nsjail-helper stop alice >/dev/null 2>&1
nsjail-helper stop bob >/dev/null 2>&1
EOF
log_clear
python3 - "$R/inner.sh" <<'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        sys.exit("unshare: " + os.strerror(ctypes.get_errno()))
    os.write(w, b"u")
    os.read(r2, 1)
    os.execvp("bash", ["bash", sys.argv[1]])
os.read(r, 1)
for f in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{f}", "w") as m:
        m.write("0 0 4294967295")
os.write(w2, b"g")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
EOF
check_eq "max_sets: alice gets 8 sets, no more" 8 "$(get alice_sets)"
check "max_sets: the refusal says why" grep -q "alice already has 8 namespace sets.*(max_sets = 8)" "$R/alice_runs"
check "max_sets: the log line says why" log_has "user=alice .*action=refused.*max_sets = 8"
check_eq "max_sets: bob's login still gets its set" bob "$(get bob_after)"
check_eq "max_sets: root still makes an ipc namespace" ok "$(get root_after)"
check "check: share=session counts max_sets sets per user against RAM" \
    grep -q "policy 'students': 2 users x 8 sets x (3 tmpfs x 10% + SysV shm 10%)" "$R/check_session"
check "check: names the kernel limits on all sets together" \
    grep -q "user.max_ipc_namespaces = 12, .*registry (64 MiB tmpfs, about 16384 sets); isolated users can hold 16 sets" "$R/check_session"
check "check: 2 users x 8 sets reach user.max_ipc_namespaces = 12" \
    grep -q "could hold 16 sets, each with an ipc namespace charged to root, reaching user.max_ipc_namespaces = 12" "$R/check_session"
check "check (control): share=user, 2 users x 1 set x 40% of RAM, 2 sets: no warning" \
    sh -c "! grep -q warning '$R/check_user' && grep -q 'isolated users can hold 2 sets' '$R/check_user'"
check "nothing is left behind" wait_for sh -c '[ -z "$(ls /run/pam_nsjail/sets 2>/dev/null)" ] && ! pgrep -x nsjail-holder'
done_testing
