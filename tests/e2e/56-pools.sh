#!/bin/bash
# Who the kernel charges (DESIGN §2c): a user who exhausts a per-user pool
# from inside a set must not make another user's login, or root's own
# service, fail. The pools are user namespaces, inotify instances, POSIX
# mqueue bytes, pending signals and processes.
#
# So that nothing touches the host's own counters or limits, everything
# below runs as root of an outer user namespace mapping every id to itself
# (root of it is host root), whose per-user limits the test may lower:
# the charge of a set made inside goes to the owner of the set's user
# namespace at this outer level, which is where the limits bind.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

R=/run/nsjail-test/pools
mkdir -p "$R"
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"

cat >"$R/inner.sh" <<'EOF'
# Runs as root of the outer user namespace, in a mount namespace of its own.
R=/run/nsjail-test/pools
mount --make-rprivate /
echo 40 >/proc/sys/user/max_user_namespaces
# (/proc/sys/user/ holds the per-user-namespace limits; fs.inotify.* is
# the host-wide one and must not be touched.)
echo 30 >/proc/sys/user/max_inotify_instances
result() { printf '%s\n' "$2" >"$R/$1"; }

# Nested user namespaces: alice makes as many as she can, each kept alive.
nsjail-helper run alice -- sh -c 'for i in $(seq 60); do unshare -U sleep 300 >/dev/null 2>&1 & done; sleep 2' 2>/dev/null
result userns_made "$(pgrep -u alice -cx sleep)"
result bob_after_userns "$(nsjail-helper run bob -- id -un 2>&1 | tail -1)"
nsjail-helper stop bob >/dev/null 2>&1

# inotify instances: alice holds as many as she can get.
nsjail-helper run alice -- python3 -c '
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 100 and libc.inotify_init1(0) >= 0:
    n += 1
open("/dev/shm/inotify_made", "w").write(str(n))
if os.fork() == 0:
    os.setsid(); time.sleep(300)' 2>/dev/null
result inotify_made "$(nsjail-helper enter alice -- cat /dev/shm/inotify_made)"
result root_inotify "$(python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print("ok" if libc.inotify_init1(0) >= 0 else os.strerror(ctypes.get_errno()))')"

# POSIX message queue bytes: alice fills hers (her limit: 200000 bytes).
mq='
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class Attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]
libc.mq_open.restype = ctypes.c_int
def make(name):
    a = Attr(0, 10, 4096, 0)
    return libc.mq_open(name.encode(), os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(a)) >= 0
'
nsjail-helper run alice -- prlimit --msgqueue=200000 python3 -c "$mq
n = 0
while n < 50 and make('/nsjail-test-%d' % n):
    n += 1
open('/dev/shm/mq_made', 'w').write(str(n))" 2>/dev/null
result mq_made "$(nsjail-helper enter alice -- cat /dev/shm/mq_made)"
result root_mq "$(prlimit --msgqueue=150000 python3 -c "$mq
print('ok' if make('/nsjail-test-root') else os.strerror(ctypes.get_errno()))
libc.mq_unlink(b'/nsjail-test-root')")"

# Pending signals: alice queues as many as she may (her limit: 500).
nsjail-helper run alice -- prlimit --sigpending=500 python3 -c '
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
if os.fork() == 0:
    os.setsid()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
    n = 0
    while n < 1000 and libc.sigqueue(os.getpid(), signal.SIGRTMIN, 0) == 0:
        n += 1
    open("/dev/shm/sig_made", "w").write(str(n))
    time.sleep(300)' 2>/dev/null
for _ in $(seq 50); do nsjail-helper enter alice -- test -s /dev/shm/sig_made 2>/dev/null && break; sleep 0.1; done
result sig_made "$(nsjail-helper enter alice -- cat /dev/shm/sig_made)"
result root_sig "$(prlimit --sigpending=300 python3 -c '
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
print("ok" if libc.sigqueue(os.getpid(), signal.SIGRTMIN, 0) == 0 else os.strerror(ctypes.get_errno()))')"

# Processes: alice starts as many as she may (her limit: 60), bob ten.
nsjail-helper run alice -- prlimit --nproc=60 sh -c 'for i in $(seq 80); do sleep 300 & done 2>/dev/null; sleep 1' 2>/dev/null
result nproc_alice "$(pgrep -u alice -c)"
result bob_nproc "$(nsjail-helper run bob -- prlimit --nproc=60 sh -c 'n=0; for i in $(seq 10); do sleep 1 & n=$((n+1)); done 2>/dev/null; wait; echo started=$n' 2>&1 | tail -1)"

nsjail-helper stop alice >/dev/null 2>&1
nsjail-helper stop bob >/dev/null 2>&1
EOF

# The outer user namespace (util-linux's --map-users needs newuidmap).
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

get() { cat "$R/$1" 2>/dev/null; }
between() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
check "user namespaces: alice ran into her own limit (control: the pool was exhausted)" between "$(get userns_made)" 30 39
check_eq "user namespaces: bob's login still gets its set" bob "$(get bob_after_userns)"
check "inotify: alice ran into the limit" between "$(get inotify_made)" 20 30
check_eq "inotify: root's own service still gets an instance" ok "$(get root_inotify)"
check "mqueue: alice filled her 200000 bytes" between "$(get mq_made)" 3 5
check_eq "mqueue: root's own mq_open still works" ok "$(get root_mq)"
check "pending signals: alice queued up to her limit" between "$(get sig_made)" 400 500
check_eq "pending signals: root's own sigqueue still works" ok "$(get root_sig)"
check "processes: alice started up to her limit" between "$(get nproc_alice)" 40 60
check_eq "processes: bob's login still starts its processes" started=10 "$(get bob_nproc)"
check "nothing is left behind" wait_for sh -c '[ -z "$(ls /run/pam_nsjail/sets 2>/dev/null)" ] && ! pgrep -x nsjail-holder'
done_testing
