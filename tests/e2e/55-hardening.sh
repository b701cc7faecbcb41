#!/bin/bash
# Hardening of the privileged path: what root's admin commands hand to a
# user, the set's pid 1, the helper's own checks, the registry's
# filesystem, and faults on the way. Every check has a control that shows
# the attack or fault is real where nothing stops it.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

uid=$(id -u alice)
fp=/run/nsjail-test/nsjail-helper-fp
install -m755 "$REPO/target/failpoints/release/nsjail-helper" "$fp"
linger() { set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"; }
holder_of() { sed -n 's/^holder=\([0-9]*\):.*/\1/p' "/run/pam_nsjail/sets/u$1"; }
clean() { [ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder >/dev/null; }
# in_pty CMD: runs CMD on a new pseudo-terminal (as an admin at a
# terminal would) and prints, first, that terminal's name, then what CMD
# printed.
in_pty() {
    python3 - "$@" <<'EOF'
import os, pty, sys, select, time
pid, fd = pty.fork()
if pid == 0:
    print(os.ttyname(0), flush=True)
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
end = time.time() + 20
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    elif os.waitpid(pid, os.WNOHANG)[0]:
        break
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
EOF
}

# ---- run and enter lend nothing of root's to the user ----------------------------------
echo "root-only secret" >/run/nsjail-test/rootonly
chmod 600 /run/nsjail-test/rootonly
check_eq "control: a command started with fd 5 on a root-only file reads it" "root-only secret" \
    "$(sh -c 'cat <&5' 5</run/nsjail-test/rootonly 2>&1)"
check "run alice: root's other fds are not passed to the command" \
    sh -c "! nsjail-helper run alice -- sh -c 'cat <&5' 5</run/nsjail-test/rootonly 2>&1 | grep -q secret"
check "run carol (exempt, on the host): root's other fds are not passed either" \
    sh -c "! nsjail-helper run carol -- sh -c 'cat <&5' 5</run/nsjail-test/rootonly 2>&1 | grep -q secret"
out=$(in_pty sh -c 'readlink /proc/self/fd/0')
check_eq "control: a command run at root's terminal has that terminal as stdin" \
    "$(printf '%s\n' "$out" | sed -n 1p)" "$(printf '%s\n' "$out" | sed -n 2p)"
# A pty is named by its path and its devpts instance (st_dev): the
# command's comes from alice's set's own instance, where /dev/pts/0 may
# well be free too.
out=$(in_pty nsjail-helper run alice -- sh -c 'for f in 0 1 2; do echo "$(readlink /proc/$$/fd/$f) $(stat -L -c %d /proc/$$/fd/$f)"; done; ps -o sid= -p $$')
root_tty="$(printf '%s\n' "$out" | sed -n 1p) $(stat -c %d /dev/pts)"
check "run alice at a terminal: the command's stdin, stdout and stderr are a pty of its own, not root's terminal" \
    sh -c "[ \"\$(printf '%s\n' \"\$1\" | sed -n '2,4p' | grep -c '^/dev/pts/')\" = 3 ] && ! printf '%s\n' \"\$1\" | sed -n '2,4p' | grep -qx '$root_tty'" _ "$out"
# TIOCSTI pushes input into the caller's controlling terminal: root's
# shell would run it after the command ends.
inject='python3 -c "import fcntl,termios; [fcntl.ioctl(0, termios.TIOCSTI, bytes([c])) for c in b\"echo PWNED\n\"]"'
check "control: TIOCSTI on root's own terminal reaches root's next read" \
    sh -c "printf '%s\n' \"\$1\" | grep -q 'ROOT-READ:echo PWNED'" _ \
    "$(in_pty bash -c "$inject; read -t 2 line; echo ROOT-READ:\$line")"
check "run alice: TIOCSTI from the command never reaches root's terminal" \
    sh -c "! printf '%s\n' \"\$1\" | grep -q 'ROOT-READ:echo PWNED'" _ \
    "$(in_pty bash -c "nsjail-helper run alice -- $inject; read -t 2 line; echo ROOT-READ:\$line")"
linger
nsjail-helper run alice -- true
check "enter alice: runs as alice, not root" sh -c "[ \"\$(nsjail-helper enter alice -- id -u)\" = $uid ]"
check "enter alice: root's other fds are not passed to the command" \
    sh -c "! nsjail-helper enter alice -- sh -c 'cat <&5' 5</run/nsjail-test/rootonly 2>&1 | grep -q secret"
out=$(in_pty nsjail-helper enter alice -- sh -c 'readlink /proc/self/fd/0')
check "enter alice at a terminal: the command gets a pty of its own" \
    sh -c "printf '%s\n' \"\$1\" | sed -n 2p | grep -q '^/dev/pts/' && [ \"\$(printf '%s\n' \"\$1\" | sed -n 1p)\" != \"\$(printf '%s\n' \"\$1\" | sed -n 2p)\" ]" _ "$out"

# ---- the set belongs to its user, and its pid 1 to nobody inside ----------------------------
check_eq "the set's user namespace is owned by (and charged to) alice" "$uid" \
    "$(nsjail-helper list --json | python3 -c 'import json,sys; print([s["userns_owner_uid"] for s in json.load(sys.stdin) if s["user"]=="alice"][0])')"
holder=$(holder_of "$uid")
nsjail-helper run alice -- sh -c 'kill -TERM 1; kill -KILL 1; kill -HUP 1' 2>/dev/null
sleep 0.3
check "signals from inside the set (TERM, KILL, HUP to pid 1) do not end the holder" kill -0 "$holder"
# PTRACE_SEIZE (0x4206): attaches without stopping the tracee.
ptrace='import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.ptrace(0x4206, int(sys.argv[1]), 0, 0) == 0 else 1)'
check "control: alice can ptrace a process of her own in the set" \
    nsjail-helper run alice -- sh -c "sleep 5 >/dev/null 2>&1 & python3 -c '$ptrace' \$!"
check "alice cannot ptrace the set's holder (it is not dumpable)" \
    nsjail-helper run alice -- sh -c "! python3 -c '$ptrace' 1"
kill -TERM "$holder"
check "control: a SIGTERM from outside the set (loginctl kill-user) ends it" wait_for sh -c "! kill -0 $holder 2>/dev/null"
nsjail-helper list >/dev/null

# ---- the helper trusts no caller --------------------------------------------------------------
out=$(nsjail-helper __create --user "$uid:$uid:" --uid-map 0:0:1 --gid-map 0:0:1 --tmp /tmp </dev/null 2>&1)
check "__create refuses a map of host root (what a caller cannot make it do)" \
    sh -c "printf '%s' \"\$1\" | grep -q '^err parse arguments: uid map line 0 0 1 maps host root'" _ "$out"
check "__create refuses a set for root" sh -c "nsjail-helper __create --user 0:0: --uid-map 1:100000:10 --gid-map 1:100000:10 </dev/null | grep -q 'never made for root'"
check "__create: nothing was built" clean
# The caller ignores SIGCHLD and blocks every signal, as sshd may: the
# set must not inherit that (an ignored SIGCHLD lets the kernel reap the
# holder behind H0's back).
sigign=$(python3 -c '
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, range(1, 32))
os.execvp("nsjail-helper", ["nsjail-helper", "run", "alice", "--", "sh", "-c", "grep ^SigIgn /proc/1/status"])')
check_eq "a caller's ignored SIGCHLD does not reach the set's holder" "SigIgn:	0000000000000000" "$sigign"

# ---- a helper that hangs does not hang the user's later logins --------------------------------
set_policy "$(test_policy)"
nsjail-helper stop alice >/dev/null 2>&1
start=$(date +%s%N)
out=$(NSJAIL_FAILPOINT=h0-hang NSJAIL_HELPER_DEADLINE_MS=1500 "$fp" run alice -- true 2>&1)
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check_ne "a hung helper: the login is refused" 0 "$rc"
check "a hung helper: refused at the deadline, saying why" sh -c "[ $elapsed_ms -lt 6000 ] && printf '%s' \"\$1\" | grep -q 'no answer before the deadline'" _ "$out"
check "a hung helper: nothing is left (holder, record, helper)" wait_for sh -c '[ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder && ! pgrep -f "^nsjail-helper __create"'
check_eq "a hung helper: the next login goes through at once" "$uid" "$(timeout 5 nsjail-helper run alice -- id -u)"

# ---- a corrupt registry record does not orphan a live set ------------------------------------
linger
nsjail-helper run alice -- true
old=$(holder_of "$uid")
echo "this is not a record" >>"/run/pam_nsjail/sets/u$uid"
log_clear
check_eq "corrupt record: the next login still works" "$uid" "$(nsjail-helper run alice -- id -u)"
check "corrupt record: the live set it named was ended, not orphaned" sh -c "! kill -0 $old 2>/dev/null"
check "corrupt record: the log says so" log_has "user=alice .*action=isolated .*warning=\"record u$uid was corrupt; its set \(holder $old\) was ended; kept as /run/pam_nsjail/sets/.corrupt-u$uid-"
nsjail-helper stop alice >/dev/null

# ---- private lock directories; the registry on a filesystem of its own ------------------------
check "the registry has a filesystem of its own" sh -c "findmnt -n -o FSTYPE /run/pam_nsjail | grep -qx tmpfs"
su -s /bin/sh carol -c 'echo carol >/run/lock/carol-lock'
check "control: the host's /run/lock is a writable directory with carol's lock file" test -e /run/lock/carol-lock
check_eq "/run/lock is a private tmpfs in a set" "tmpfs|" "$(nsjail-helper run alice -- sh -c 'findmnt -n -o FSTYPE /run/lock; ls -A /run/lock' | tr '\n' '|')"
nsjail-helper run alice -- sh -c 'echo alice >/run/lock/alice-lock'
check "a lock file of alice's does not reach the host" test ! -e /run/lock/alice-lock
# An exempt user fills /run (here made small) through /run/lock, 1777.
mount -o remount,size=16m /run
su -s /bin/sh carol -c 'dd if=/dev/zero of=/run/lock/fill bs=1M count=64 2>/dev/null'
check "control: /run is full" sh -c '! echo x >/run/full-test 2>/dev/null'
check_eq "/run full: an isolated login still works" "$uid" "$(nsjail-helper run alice -- id -u)"
rm -f /run/lock/fill /run/lock/carol-lock
mount -o remount,size=50% /run

# ---- private temp dirs are bounded by default -------------------------------------------------
mem=$(awk '/^MemTotal:/{print $2 * 1024}' /proc/meminfo)
size=$(nsjail-helper run alice -- df -B1 --output=size /tmp | tail -1 | tr -d ' ')
check "with no tmp_size a private /tmp is 10% of RAM, not the kernel's 50%" \
    python3 -c "import sys; sys.exit(0 if abs($size - $mem * 0.10) <= $mem * 0.01 else 1)"

# ---- processes in nested pid namespaces are counted ----------------------------------------------
linger
nsjail-helper run alice -- sh -c 'unshare -Urpf --mount-proc sleep 30 >/dev/null 2>&1 & sleep 1' &
runpid=$!
wait_for sh -c "pgrep -u alice -x sleep >/dev/null"
wait $runpid
inside=$(nsjail-helper enter alice -- ps -e --no-headers | grep -vc ' ps$')
listed=$(nsjail-helper list --json | python3 -c 'import json,sys; print([s["processes"] for s in json.load(sys.stdin) if s["user"]=="alice"][0])')
check_eq "list counts the processes of nested pid namespaces too" "$inside" "$listed"
nsjail-helper stop alice >/dev/null

# ---- check never changes what logins fall back to ---------------------------------------------
set_policy "$(test_policy)"
pamtester sshd carol open_session close_session >/dev/null 2>&1 # a login: remembered
# A valid policy that isolates carol too, only checked, never used.
set_policy "$(test_policy | sed 's/isolate = false/isolate = true/')"
check_eq "control: that policy isolates carol" "isolate" "$(nsjail-helper explain carol | sed -n 's/^action: *\([a-z]*\).*/\1/p')"
nsjail-helper check >/dev/null 2>&1
set_policy 'broken ['
log_clear
check "after 'check' of another policy, a broken file still falls back to the last policy a login used" \
    sh -c "pamtester sshd carol open_session close_session >/dev/null 2>&1"
check "the log says carol is exempt under the last valid policy" log_has "user=carol .*action=exempt .*exempt under the last valid policy"
set_policy "$(test_policy)"

check "nothing is left behind" wait_for clean
done_testing
