#!/bin/bash
# Lifetimes: nothing of root's outlives an admin command's own command,
# and no set outlives its last login, however that login ended. Every
# attack has a control beside it.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

linger() { set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"; }

# ---- enter/run: the relay ends with the command ---------------------------------------
# alice's login profile leaves a writer behind in a session of its own:
# once her shell is gone it keeps the pty busy with a fake root prompt and
# records every line it reads from it.
cat >/home/alice/.bash_profile <<'PROFILE'
shell=$$
setsid bash -c 'while kill -0 '"$shell"' 2>/dev/null; do sleep 0.05; done
  while :; do printf "root@host:~# " || exit; IFS= read -r -t 0.01 l && printf "%s\n" "$l" >>"$HOME/captured"; done' <&0 >&1 2>&1 &
PROFILE
chown alice: /home/alice/.bash_profile
# at_terminal CMD...: runs CMD on a new pty, types a line the shell must
# get, then "exit", then (1.5 s later) a line only root's next program
# should get; prints whether and how fast CMD returned.
at_terminal() {
    python3 - "$@" <<'PY'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
def pump(seconds):
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out = os.read(fd, 65536)
                if os.environ.get("DEBUG_PTY"):
                    sys.stderr.write(repr(out) + "\n")
            except OSError:
                os.waitpid(pid, 0)  # EIO: every holder of the pty is gone
                return True
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
    return False
pump(1.5)
os.write(fd, b"echo CONTROL-LINE >>$HOME/typed\n")
pump(1.0)
os.write(fd, b"exit\n")
t0 = time.time()
done = pump(1.5)
os.write(fd, b"SECRET-AFTER-EXIT\n")
done = done or pump(4)
print("returned" if done else "still-running", "%.1f" % (time.time() - t0))
if not done:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
PY
}
linger
nsjail-helper run alice -- true
rm -f /home/alice/captured /home/alice/typed
out=$(at_terminal nsjail-helper enter alice)
check "enter alice: a line typed while her shell runs reaches it (control)" \
    grep -qx CONTROL-LINE /home/alice/typed
check "enter alice: returns within 1 s of her shell's exit, though a process she left keeps the pty busy" \
    sh -c "printf '%s\n' '$out' | awk '\$1==\"returned\" && \$2 < 1 {ok=1} END {exit !ok}'"
check "enter alice: a line root types after her shell ended never reaches her side" \
    sh -c '! grep -q SECRET-AFTER-EXIT /home/alice/captured 2>/dev/null'
check "enter alice: the pty was hung up, so the writer she left has ended" \
    wait_for sh -c "! nsjail-helper enter alice -- pgrep -f 'root@host' >/dev/null"
nsjail-helper stop alice >/dev/null
rm -f /home/alice/captured /home/alice/typed
out=$(at_terminal nsjail-helper run alice)
check "run alice: a line typed while her shell runs reaches it (control)" \
    grep -qx CONTROL-LINE /home/alice/typed
check "run alice: returns within 1 s of her shell's exit" \
    sh -c "printf '%s\n' '$out' | awk '\$1==\"returned\" && \$2 < 1 {ok=1} END {exit !ok}'"
check "run alice: a line root types after her shell ended never reaches her side" \
    sh -c '! grep -q SECRET-AFTER-EXIT /home/alice/captured 2>/dev/null'
nsjail-helper stop alice >/dev/null 2>&1
rm -f /home/alice/.bash_profile /home/alice/captured /home/alice/typed
set_policy "$(test_policy)"

# ---- a set ends with its last login, however the login ended ----------------------
uid=$(id -u alice)
holder_of() { sed -n 's/^holder=\([0-9]*\):.*/\1/p' "/run/pam_nsjail/sets/u$uid" 2>/dev/null; }
# gone PID: the process has exited (a zombie not yet reaped counts).
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# gone_within SECONDS PID
gone_within() {
    local end=$(($(date +%s%N) + $1 * 1000000000))
    while [ "$(date +%s%N)" -lt "$end" ]; do gone "$2" && return 0; sleep 0.02; done
    gone "$2"
}
# started: alice's set exists and her command runs in it.
started() { wait_for sh -c "[ -n \"\$(sed -n 's/^holder=//p' /run/pam_nsjail/sets/u$uid 2>/dev/null)\" ] && nsjail-helper enter alice -- pgrep -x sleep"; }

nsjail-helper run alice -- sleep 60 &
run=$!
started
h=$(holder_of)
kill -TERM "$run"
wait "$run"
check_eq "SIGTERM to run alice: passed on to her command (status 143)" 143 "$?"
check "SIGTERM to run alice: the session is closed and, with on_logout=kill, her set is gone within 2 s" gone_within 2 "$h"
check_eq "SIGTERM to run alice: list shows no set of hers" "" "$(nsjail-helper list | awk '$2=="alice"')"

nsjail-helper run alice -- sleep 60 &
run=$!
started
h=$(holder_of)
kill -HUP "$run"
wait "$run"
check_eq "SIGHUP to run alice (a closed terminal): passed on to her command (status 129)" 129 "$?"
check "SIGHUP to run alice: her set is gone within 2 s" gone_within 2 "$h"

# Two logins; the first one's opener is SIGKILLed (it never closes).
nsjail-helper run alice -- sleep 60 &
run1=$!
started
h=$(holder_of)
nsjail-helper run alice -- sleep 60 &
run2=$!
wait_for sh -c "nsjail-helper list | awk '\$2==\"alice\" && \$5==2' | grep -q ."
kill -KILL "$run1"
wait "$run1" 2>/dev/null
sleep 1
alive_and_usable() { ! gone "$1" && nsjail-helper enter alice -- true; }
check "SIGKILL to one of two run alice: her set lives on with the other login (control)" \
    alive_and_usable "$h"
kill -KILL "$run2"
wait "$run2" 2>/dev/null
check "SIGKILL to the last run alice (no close at all): her set is gone within 2 s" gone_within 2 "$h"
check_eq "after that, list shows no set of hers (the stale record is dropped)" "" "$(nsjail-helper list | awk '$2=="alice"')"

# sshd's monitor killed (SIGKILL, as the OOM killer does): no close_session.
ssh_as alice sleep 60 &
sshpid=$!
wait_for pgrep -f '^sshd(-session)?: alice \[priv\]'
started
h=$(holder_of)
monitor=$(pgrep -f '^sshd(-session)?: alice \[priv\]' | head -1)
check "an ssh login of alice has a monitor process (control)" test -n "$monitor"
kill -KILL "$monitor"
check "SIGKILL to alice's sshd monitor: her set is gone within 2 s" gone_within 2 "$h"
wait "$sshpid" 2>/dev/null

# Control: with on_logout = "linger" a killed opener leaves the set alone.
linger
nsjail-helper run alice -- sleep 60 &
run=$!
started
h=$(holder_of)
kill -KILL "$run"
wait "$run" 2>/dev/null
sleep 1
check "on_logout=linger: SIGKILL to run alice leaves her set alive (control)" \
    nsjail-helper enter alice -- true
check_eq "on_logout=linger: it is still the same set" "$h" "$(holder_of)"

# A holder that fails attach (the recorded process, no longer in the
# recorded user namespace) is killed, not orphaned.
nsjail-helper run alice -- true
check_eq "a later login joins the set whose record matches (control)" "$h" "$(holder_of)"
sed -i 's/^userns=.*/userns=1/' "/run/pam_nsjail/sets/u$uid"
nsjail-helper run alice -- true
check "a holder that fails attach is killed within 2 s" gone_within 2 "$h"
check_ne "and the login got a new set" "$h" "$(holder_of)"
nsjail-helper stop alice >/dev/null
set_policy "$(test_policy)"

# ---- login records: inside a set, only her own ----------------------------------------
# Records of the sandbox's own (the host's /var/log stays untouched).
mount -t tmpfs -o mode=755 tmpfs /var/log
install -m664 -o root -g utmp /dev/null /var/log/wtmp
install -m600 -o root -g utmp /dev/null /var/log/btmp
install -m664 -o root -g utmp /dev/null /var/log/lastlog
# Stand-ins for Debian 13's SQLite records (wtmpdb, lastlog2): readable
# by everyone on a host, as wtmpdb makes them.
echo "wtmpdb: bob from 192.0.2.9" | install -m644 /dev/stdin /var/log/wtmp.db
mkdir -p /var/lib/lastlog
echo "lastlog2: bob from 192.0.2.9" | install -m644 /dev/stdin /var/lib/lastlog/lastlog2.db
ssh "${SSH_OPTS[@]}" -tt alice@127.0.0.1 true >/dev/null 2>&1
ssh "${SSH_OPTS[@]}" -tt bob@127.0.0.1 sleep 30 >/dev/null 2>&1 &
bobssh=$!
wait_for sh -c 'utmpdump /run/utmp 2>/dev/null | grep "^\[7\]" | grep -q "\[bob "'
check "control: the host's utmp lists bob's live login" sh -c 'utmpdump /run/utmp 2>/dev/null | grep -q "\[bob "'
check "control: the host's wtmp has bob's login" sh -c 'utmpdump /var/log/wtmp 2>/dev/null | grep -q "\[bob "'
check "control: lastlog on the host knows where bob came from" sh -c 'lastlog -u bob | grep -q 127.0.0.1'
inside() { nsjail-helper run alice -- sh -c "$1" 2>&1; }
check "in alice's set, utmp has no record of bob" sh -c "! printf '%s' \"\$1\" | grep -q bob" _ "$(inside 'utmpdump /run/utmp')"
check "in alice's set, wtmp has no record of bob" sh -c "! printf '%s' \"\$1\" | grep -q bob" _ "$(inside 'utmpdump /var/log/wtmp')"
check "in alice's set, lastlog -u bob shows nothing of his" sh -c "! printf '%s' \"\$1\" | grep -q 127.0.0.1" _ "$(inside 'lastlog -u bob')"
check "in alice's set, last lists her own login (control) and not bob's" \
    sh -c "printf '%s' \"\$1\" | grep -q '^alice ' && ! printf '%s' \"\$1\" | grep -q '^bob '" _ "$(inside 'last')"
check "in alice's set, lastlog -u alice shows her own last login" sh -c "printf '%s' \"\$1\" | grep -q 127.0.0.1" _ "$(inside 'lastlog -u alice')"
check "in alice's set, who and w work" nsjail-helper run alice -- sh -c 'who >/dev/null && w >/dev/null'
check "in alice's set, the records cannot be unmounted or written" \
    nsjail-helper run alice -- sh -c '! umount /run/utmp 2>/dev/null && ! unshare -rm umount /var/log/wtmp 2>/dev/null && ! sh -c ": >>/var/log/wtmp" 2>/dev/null'
check "control: the host's wtmp.db and lastlog2.db are readable" sh -c 'grep -q bob /var/log/wtmp.db && grep -q bob /var/lib/lastlog/lastlog2.db'
check_eq "in alice's set, Debian 13's wtmp.db and lastlog2.db are empty" "0 0" "$(inside 'wc -c </var/log/wtmp.db; wc -c </var/lib/lastlog/lastlog2.db' | tr '\n' ' ' | sed 's/ $//')"
kill "$bobssh" 2>/dev/null
wait "$bobssh" 2>/dev/null

done_testing
