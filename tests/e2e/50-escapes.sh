#!/bin/bash
# Escape attempts by an isolated user, and what still crosses by design.
# Every row is recorded as "attack | expected | observed" and, with
# NSJAIL_WRITE_DOCS=1, written to docs/ESCAPE-TESTS.md.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

ROWS=/run/nsjail-test/rows.md
: >"$ROWS"
# attempt NAME EXPECTED CMD: runs CMD as alice inside her set; the attack
# fails if CMD prints BLOCKED, succeeds if it prints ESCAPED (a property
# check prints CONFIRMED when it holds).
attempt() {
    local name=$1 expected=$2 cmd=$3 out observed
    out=$(nsjail-helper run alice -- /bin/sh -c "$cmd" 2>&1 | tail -1)
    case "$out" in
    BLOCKED) observed=blocked ;;
    ESCAPED) observed=succeeded ;;
    CONFIRMED) observed=confirmed ;;
    *) observed="unexpected: ${out:0:80}" ;;
    esac
    echo "| $name | $expected | $observed |" >>"$ROWS"
    check_eq "$name: $expected" "$expected" "$observed"
}
blocked_if_fails='&& echo ESCAPED || echo BLOCKED'

# Something to aim at: a host process, host IPC objects, bob's set.
sleep 300 &
host_pid=$!
host_shm=$(ipcmk -M 4096 | awk '{print $NF}')
echo secret >/dev/shm/host-posix-shm
nsjail-helper run bob -- sh -c 'echo bob-secret >/tmp/bob-file; exec sleep 300' &
bob_run=$!
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"
wait_for nsjail-helper enter bob -- test -e /tmp/bob-file
bob_holder=$(nsjail-helper list --json | python3 -c 'import json,sys; print([s["holder_pid"] for s in json.load(sys.stdin) if s["user"]=="bob"][0])')
bob_sleep=$(pgrep -u bob -x sleep | head -1)

attempt "umount /tmp" blocked "umount /tmp 2>/dev/null $blocked_if_fails"
attempt "umount /tmp as root of a nested user+mount namespace" blocked "unshare -r -m umount /tmp 2>/dev/null $blocked_if_fails"
attempt "umount -l /tmp in a nested namespace, then read the host's /tmp" blocked \
    "unshare -r -m sh -c 'umount -l /tmp 2>/dev/null; ls /tmp' | grep -q nsjail-test-marker $blocked_if_fails"
touch /tmp/nsjail-test-marker
attempt "remount / shared in a nested namespace and mount a tmpfs to leak to the host" blocked \
    "unshare -r -m sh -c 'mount --make-rshared / 2>/dev/null; mount -t tmpfs leak /mnt 2>/dev/null'; sleep 0.2; false $blocked_if_fails"
check "the nested tmpfs did not reach the host" sh -c '! findmnt -n /mnt | grep -q leak'
attempt "kill a host process" blocked "kill -9 $host_pid 2>/dev/null $blocked_if_fails"
check "the host process survived" kill -0 $host_pid
attempt "kill the set's holder (pid 1)" blocked "kill -9 1 2>/dev/null; sleep 0.1; [ \"\$(ps -p 1 -o comm=)\" = nsjail-holder ] && echo BLOCKED || echo ESCAPED"
attempt "ptrace the holder" blocked "strace -p 1 -e trace=none -o /dev/null 2>/dev/null & p=\$!; sleep 0.3; kill \$p 2>/dev/null; wait \$p 2>/dev/null && echo ESCAPED || echo BLOCKED"
attempt "read /proc/PID/root of a host process" blocked "ls /proc/$host_pid/root/ >/dev/null 2>&1 $blocked_if_fails"
attempt "read /proc/PID/ns of bob's holder" blocked "ls /proc/$bob_holder/ns >/dev/null 2>&1 $blocked_if_fails"
attempt "reach bob's /tmp through /proc/PID/root" blocked "cat /proc/$bob_sleep/root/tmp/bob-file 2>/dev/null | grep -q bob-secret $blocked_if_fails"
attempt "reach bob's /tmp through every visible /proc/*/root" blocked "cat /proc/[0-9]*/root/tmp/bob-file 2>/dev/null | grep -q bob-secret $blocked_if_fails"
attempt "write /proc/self/uid_map" blocked "echo '0 0 1' >/proc/self/uid_map 2>/dev/null $blocked_if_fails"
attempt "write /proc/self/setgroups" blocked "echo allow >/proc/self/setgroups 2>/dev/null $blocked_if_fails"
attempt "map host root in a nested user namespace" blocked \
    "unshare -U sh -c 'echo \"0 0 1\" >/proc/self/uid_map' 2>/dev/null $blocked_if_fails"
attempt "nested 'root' is really alice" blocked \
    "[ \"\$(unshare -r cat /proc/self/uid_map | awk '{print \$2}')\" = 0 ] && echo ESCAPED || echo BLOCKED"
attempt "gain root through su" blocked "su -c 'id -u' root </dev/null 2>/dev/null | grep -qx 0 $blocked_if_fails"
attempt "gain root through passwd (setuid)" blocked "passwd -S root 2>/dev/null | grep -q root $blocked_if_fails"
attempt "gain root through mount (setuid)" blocked "mount -t tmpfs x /mnt 2>/dev/null $blocked_if_fails"
if command -v sudo >/dev/null; then
    attempt "gain root through sudo" blocked "sudo -n id -u 2>/dev/null | grep -qx 0 $blocked_if_fails"
fi
attempt "read /etc/shadow" blocked "cat /etc/shadow >/dev/null 2>&1 $blocked_if_fails"
attempt "see the host's SysV shared memory" blocked "ipcs -m | grep -q '$host_shm' $blocked_if_fails"
attempt "attach the host's SysV segment by id" blocked "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); l.shmat.restype=ctypes.c_void_p; r=l.shmat($host_shm,None,0); sys.exit(0 if r not in (None, ctypes.c_void_p(-1).value) else 1)' 2>/dev/null $blocked_if_fails"
attempt "open the host's POSIX shm in /dev/shm" blocked "cat /dev/shm/host-posix-shm 2>/dev/null $blocked_if_fails"
# TIOCSTI: push keystrokes into a terminal that is not the caller's own.
python3 -c 'import os,pty,time; m,s=pty.openpty(); print(os.ttyname(s), flush=True); time.sleep(30)' >/run/nsjail-test/pty &
pty_py=$!
wait_for test -s /run/nsjail-test/pty
other_pts=$(head -1 /run/nsjail-test/pty)
chgrp tty "$other_pts" && chmod 620 "$other_pts"
attempt "inject keystrokes into another terminal (TIOCSTI)" blocked \
    "python3 -c 'import fcntl,termios; f=open(\"$other_pts\",\"wb\",buffering=0); fcntl.ioctl(f,termios.TIOCSTI,b\"x\")' 2>/dev/null $blocked_if_fails"
kill $pty_py

# What crosses by design without "net": abstract unix sockets and the network.
python3 -c '
import socket,time
s=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind("\0nsjail-test-abstract"); s.listen(5); time.sleep(30)' &
abs_py=$!
sleep 0.3
attempt "connect to a host abstract unix socket (no net namespace)" succeeded \
    "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"\\0nsjail-test-abstract\")' 2>/dev/null $blocked_if_fails"
attempt "connect to a host loopback TCP service (no net namespace)" succeeded \
    "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $SSH_PORT), 2)' 2>/dev/null $blocked_if_fails"
set_policy "$(test_policy | sed 's/share = "user"/share = "session"\nnamespaces = ["user", "mount", "pid", "ipc", "net"]/')"
attempt "with net: connect to a host abstract unix socket" blocked \
    "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"\\0nsjail-test-abstract\")' 2>/dev/null $blocked_if_fails"
attempt "with net: connect to a host loopback TCP service" blocked \
    "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $SSH_PORT), 2)' 2>/dev/null $blocked_if_fails"
attempt "with net: the set has only a loopback interface, and it is up" confirmed \
    "python3 -c 'import socket,sys; sys.exit(0 if [n for i,n in socket.if_nameindex()]==[\"lo\"] else 1)' && python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); socket.create_connection(s.getsockname(),2)' && echo CONFIRMED || echo ESCAPED"
kill $abs_py

# Admin safety: root and exempt users get in whatever the policy's state.
set_policy 'this is not toml ['
check_eq "broken policy: exempt carol still runs (last valid policy)" IN "$(ssh_as carol 'echo IN' 2>/dev/null | tail -1)"
check "broken policy, on_error=deny: alice is never let in unconfined" sh -c "! ssh ${SSH_OPTS[*]} alice@127.0.0.1 'echo IN' 2>/dev/null | grep -q IN"
check "root is never isolated: pamtester as root succeeds with a broken policy" pamtester sshd root open_session close_session
set_policy "$(test_policy)"

kill $host_pid $bob_run 2>/dev/null
nsjail-helper stop bob >/dev/null 2>&1
nsjail-helper stop alice >/dev/null 2>&1
ipcrm -m "$host_shm"
if [ "${NSJAIL_WRITE_DOCS:-}" = 1 ]; then
    {
        echo "# Escape attempts"
        echo
        echo "Generated by \`NSJAIL_WRITE_DOCS=1 bash tests/e2e/50-escapes.sh\` (part of \`tests/run.sh\`)."
        echo "Each attack runs as alice inside her namespace set (\`nsjail-helper run\`, the same set an ssh login joins)."
        echo "\"succeeded\" rows are what crosses by design without a \`net\` namespace (see README, threat model)."
        echo
        echo "| attack | expected | observed |"
        echo "|---|---|---|"
        cat "$ROWS"
    } >"$REPO/docs/ESCAPE-TESTS.md"
fi
done_testing
