# Drives a program on a fresh pty (python's pty.fork): answers a password
# prompt, types one line of input once a shell prompt shows (or after 5 s),
# prints what the program wrote and its exit status. Used by
# tests/tools/trace-service.sh and tests/e2e/90-services.sh.
import os, pty, signal, sys, time, select
# usage: ptydrive.py PASSWORD|- INPUT -- ARGV...
pw, inp, argv = sys.argv[1], sys.argv[2], sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, sent_pw, sent_in, t0, st = b"", False, False, time.time(), None
while time.time() - t0 < 30:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            # EIO: no slave side open, e.g. while login hangs up and
            # reopens its terminal; over only once the program exited.
            d = None
        if d:
            out += d
        else:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            st = None
            time.sleep(0.1)
    if pw != "-" and not sent_pw and b"assword" in out:
        os.write(fd, (pw + "\n").encode()); sent_pw = True
    ready = out.rstrip().endswith((b"$", b"#")) or time.time() - t0 > 5
    if not sent_in and (pw == "-" or sent_pw) and time.time() - t0 > 1 and ready:
        os.write(fd, (inp + "\n").encode()); sent_in = True
if st is None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
print("\n[ptydrive.py: exit status %d]" % os.waitstatus_to_exitcode(st))
