#!/bin/bash
# Escape attempts by an isolated user, each with a control: the same
# attack by the same user left on the host (a policy that exempts her),
# which must succeed, so that "blocked" means the isolation blocked it and
# not that the attack was broken. Attacks that would fail on the host too
# (reading /etc/shadow, su to root, ...) prove nothing about the module and
# are not here. Rows are "attack | control | isolated" and, with
# NSJAIL_WRITE_DOCS=1, written to docs/ESCAPE-TESTS.md.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

ROWS=/run/nsjail-test/rows.md
: >"$ROWS"
test_policy | sed 's/^groups = \["students"\]$/groups = ["students"]\nisolate = false/' >/etc/security/exempt.toml
chmod 644 /etc/security/exempt.toml
check "control setup: under exempt.toml alice runs on the host" \
    sh -c "[ \"\$(nsjail-helper run --config /etc/security/exempt.toml alice -- readlink /proc/self/ns/pid)\" = \"\$(readlink /proc/self/ns/pid)\" ]"

# outcome USER CONFIG CMD: ESCAPED, BLOCKED, or what else CMD printed last.
outcome() {
    local out
    out=$(nsjail-helper run ${2:+--config "$2"} "$1" -- /bin/sh -c "$3" 2>/dev/null | tail -1)
    case "$out" in
    ESCAPED) echo succeeded ;;
    BLOCKED) echo blocked ;;
    *) echo "unexpected: ${out:0:60}" ;;
    esac
}
# attack NAME EXPECTED CMD: CMD prints ESCAPED or BLOCKED. Run by alice on
# the host (the control, which must succeed) and in her set (EXPECTED).
attack() {
    local name=$1 expected=$2 cmd=$3 control isolated
    control=$(outcome alice /etc/security/exempt.toml "$cmd")
    isolated=$(outcome alice "" "$cmd")
    echo "| $name | $control | $isolated | $expected |" >>"$ROWS"
    check_eq "$name: control (alice on the host) succeeds" succeeded "$control"
    check_eq "$name: $expected when isolated" "$expected" "$isolated"
}
yes_no='&& echo ESCAPED || echo BLOCKED'

# Targets on the host: a process, a file in /tmp, SysV and POSIX IPC objects
# of root's, a process of alice's own, a setuid-root program.
echo secret >/tmp/nsjail-test-marker
chmod 644 /tmp/nsjail-test-marker
host_shm=$(ipcmk -M 4096 | awk '{print $NF}')
echo secret >/dev/shm/host-posix-shm
python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
assert libc.mq_open(b"/nsjail-test-host-mq", os.O_CREAT | os.O_RDWR, 0o644, None) >= 0'
setpriv --reuid=alice --regid=alice --init-groups sleep 300 &
alice_host=$!
install -m 4755 /usr/bin/id /usr/local/bin/nsjail-test-suid-id
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"
nsjail-helper run alice -- true
alice_holder=$(sed -n 's/^holder=\([0-9]*\):.*/\1/p' "/run/pam_nsjail/sets/u$(id -u alice)")
nsjail-helper run bob -- sh -c 'echo bob-secret >/tmp/bob-notes; chmod 644 /tmp/bob-notes; exec sleep 300' &
bob_run=$!
setpriv --reuid=bob --regid=bob --init-groups sh -c 'echo bob-secret >/tmp/bob-notes; chmod 644 /tmp/bob-notes; exec sleep 301' &
bob_host=$!
wait_for nsjail-helper enter bob -- test -e /tmp/bob-notes
bob_in_set=$(pgrep -u bob -fx 'sleep 300')

# ---- the host's files, processes and IPC ----------------------------------------------
attack "read the host's /tmp" blocked "cat /tmp/nsjail-test-marker >/dev/null 2>&1 $yes_no"
attack "umount /tmp, then read the host's /tmp" blocked \
    "umount /tmp 2>/dev/null; umount -l /tmp 2>/dev/null; cat /tmp/nsjail-test-marker >/dev/null 2>&1 $yes_no"
attack "umount -l /tmp as root of a nested user+mount namespace, then read the host's /tmp" blocked \
    "unshare -r -m sh -c 'umount -l /tmp 2>/dev/null; cat /tmp/nsjail-test-marker' >/dev/null 2>&1 $yes_no"
attack "see a host process" blocked "kill -0 $alice_host 2>/dev/null $yes_no"
attack "kill a host process (one of alice's own)" blocked "kill -CONT $alice_host 2>/dev/null $yes_no"
attack "ptrace a host process (one of alice's own)" blocked \
    "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.ptrace(0x4206, $alice_host, 0, 0) == 0 else 1)' 2>/dev/null $yes_no"
attack "read /proc/PID/root of a host process (one of alice's own)" blocked "ls /proc/$alice_host/root/ >/dev/null 2>&1 $yes_no"
attack "see the host's SysV shared memory" blocked "ipcs -m | grep -qw '$host_shm' $yes_no"
attack "attach the host's SysV segment by id" blocked \
    "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); l.shmat.restype=ctypes.c_void_p; r=l.shmat($host_shm,None,0o10000); sys.exit(0 if r not in (None, ctypes.c_void_p(-1).value) else 1)' 2>/dev/null $yes_no"
attack "open the host's POSIX shared memory in /dev/shm" blocked "cat /dev/shm/host-posix-shm >/dev/null 2>&1 $yes_no"
attack "open the host's POSIX message queue" blocked \
    "python3 -c 'import ctypes,os,sys; l=ctypes.CDLL(None); sys.exit(0 if l.mq_open(b\"/nsjail-test-host-mq\", os.O_RDONLY) >= 0 else 1)' 2>/dev/null $yes_no"
attack "gain root through a setuid-root program" blocked "[ \"\$(/usr/local/bin/nsjail-test-suid-id -u)\" = 0 ] $yes_no"

# ---- other users ------------------------------------------------------------------------
attack "see bob's processes" blocked "ps -u bob -o comm= | grep -q sleep $yes_no"
attack "read the file bob left in /tmp" blocked "grep -q bob-secret /tmp/bob-notes 2>/dev/null $yes_no"
# Here the control is bob's own read from the host: the path itself works.
control=$(su -s /bin/sh bob -c "grep -q bob-secret /proc/$bob_in_set/root/tmp/bob-notes 2>/dev/null && echo ESCAPED || echo BLOCKED")
isolated=$(outcome alice "" "cat /proc/[0-9]*/root/tmp/bob-notes 2>/dev/null | grep -q bob-secret $yes_no")
echo "| reach bob's private /tmp through /proc/PID/root (control: bob himself, from the host) | ${control/ESCAPED/succeeded} | $isolated | blocked |" >>"$ROWS"
check_eq "reach bob's private /tmp through /proc/*/root: control (bob from the host) succeeds" ESCAPED "$control"
check_eq "reach bob's private /tmp through /proc/*/root: blocked when isolated" blocked "$isolated"

# ---- the set's own pid 1 ------------------------------------------------------------------
# The holder runs as alice; from the host she may signal and trace it (it
# is hers), from inside her set she may not.
control=$(su -s /bin/sh alice -c "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.ptrace(0x4206, $alice_holder, 0, 0) == 0 else 1)' && echo ESCAPED || echo BLOCKED")
isolated=$(outcome alice "" "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.ptrace(0x4206, 1, 0, 0) == 0 else 1)' 2>/dev/null $yes_no")
echo "| ptrace the set's holder (pid 1) | ${control/ESCAPED/succeeded} | $isolated | blocked |" >>"$ROWS"
check_eq "ptrace the set's holder: control (alice from the host) succeeds" ESCAPED "$control"
check_eq "ptrace the set's holder: blocked from inside" blocked "$isolated"
isolated=$(outcome alice "" "kill -9 1; kill -TERM 1; sleep 0.2; [ \"\$(ps -p 1 -o comm=)\" != nsjail-holder ] $yes_no")
control=$(su -s /bin/sh alice -c "kill -9 $alice_holder && echo ESCAPED || echo BLOCKED")
echo "| kill the set's holder (pid 1) | ${control/ESCAPED/succeeded} | $isolated | blocked |" >>"$ROWS"
check_eq "kill the set's holder: blocked from inside" blocked "$isolated"
check_eq "kill the set's holder: control (alice from the host, ending her own set) succeeds" ESCAPED "$control"

# ---- what crosses by design without "net" --------------------------------------------------
python3 -c '
import socket,time
s=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind("\0nsjail-test-abstract"); s.listen(5); time.sleep(60)' &
abs_py=$!
sleep 0.3
abstract="python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"\\0nsjail-test-abstract\")' 2>/dev/null $yes_no"
loopback="python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $SSH_PORT), 2)' 2>/dev/null $yes_no"
attack "connect to a host abstract unix socket (no net namespace: crosses by design)" succeeded "$abstract"
attack "connect to a host loopback TCP service (no net namespace: crosses by design)" succeeded "$loopback"
set_policy "$(test_policy | sed 's/share = "user"/share = "session"\nnamespaces = ["user", "mount", "pid", "ipc", "net"]/')"
attack "with net: connect to a host abstract unix socket" blocked "$abstract"
attack "with net: connect to a host loopback TCP service" blocked "$loopback"
kill $abs_py

# Admin safety: root and exempt users get in whatever the policy's state.
set_policy 'this is not toml ['
check_eq "broken policy: exempt carol still runs (last valid policy)" IN "$(ssh_as carol 'echo IN' 2>/dev/null | tail -1)"
check "broken policy, on_error=deny: alice is never let in unconfined" sh -c "! ssh ${SSH_OPTS[*]} alice@127.0.0.1 'echo IN' 2>/dev/null | grep -q IN"
check "root is never isolated: pamtester as root succeeds with a broken policy" pamtester sshd root open_session close_session
set_policy "$(test_policy)"

kill $alice_host $bob_host $bob_run 2>/dev/null
nsjail-helper stop bob >/dev/null 2>&1
nsjail-helper stop alice >/dev/null 2>&1
ipcrm -m "$host_shm"
rm -f /usr/local/bin/nsjail-test-suid-id
if [ "${NSJAIL_WRITE_DOCS:-}" = 1 ]; then
    {
        echo "# Escape attempts"
        echo
        echo "Generated by \`NSJAIL_WRITE_DOCS=1 bash tests/e2e/50-escapes.sh\` (part of \`tests/run.sh\`)."
        echo "Each attack runs as alice twice: as the control, on the host (a policy exempting her), where it must"
        echo "succeed; then inside her namespace set (\`nsjail-helper run\`, the same set an ssh login joins)."
        echo "Attacks that fail on the host as well prove nothing about the isolation and are not listed."
        echo "\"succeeded\" in the last column is what crosses by design without a \`net\` namespace (see README, threat model)."
        echo
        echo "| attack | control: alice on the host | alice in her set | expected in her set |"
        echo "|---|---|---|---|"
        cat "$ROWS"
    } >"$REPO/docs/ESCAPE-TESTS.md"
fi
done_testing
