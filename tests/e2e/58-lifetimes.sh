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

done_testing
