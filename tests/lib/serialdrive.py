# Logs in on a serial line, as a person at a serial console would: the VM's
# second serial port (tests/lib/vm.sh), a unix socket on this side, agetty
# and login on the other. Wakes the getty, answers "login:" with USER and
# "Password:" with PASSWORD, types INPUT once a shell prompt shows, and
# prints what the line carried. Ends once INPUT's output ends the session
# (the getty's next "login:"), when a refused login brings the getty back
# without a shell, or after 60 s. Used by tests/vm/30-services-limits.sh.
# usage: serialdrive.py SOCKET USER PASSWORD INPUT
import re
import select
import socket
import sys
import time

path, user, pw, inp = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
out, t0, last_poke = b"", time.time(), 0.0
sent_user = sent_pw = sent_in = False


def logins():
    # (not "Last login: " of a successful one)
    return len(re.findall(rb"(?<!Last) login: ", out))


while time.time() - t0 < 60:
    r, _, _ = select.select([s], [], [], 0.2)
    if r:
        d = s.recv(4096)
        if not d:
            break
        out += d
    if not sent_user:
        if logins() >= 1:
            s.sendall(user.encode() + b"\r")
            sent_user, seen = True, logins()
        elif time.time() - last_poke > 3:
            # agetty prints its prompt again on a line feed
            s.sendall(b"\r")
            last_poke = time.time()
        continue
    if not sent_pw and b"assword" in out:
        s.sendall(pw.encode() + b"\r")
        sent_pw = True
        continue
    if sent_pw and not sent_in and re.search(rb"[$#] $", out):
        s.sendall(inp.encode() + b"\r")
        sent_in = True
        continue
    if sent_pw and logins() > seen:
        break
s.close()
if sent_in:
    end = "shell"
elif sent_pw and logins() > seen:
    end = "login prompt again after the password, no shell"
else:
    end = "timed out (user sent: %s, password sent: %s)" % (sent_user, sent_pw)
# Terminal control sequences (bash's bracketed paste, agetty's resets) out.
out = re.sub(rb"\x1b\[[0-9;?!]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)", b"", out)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
print("\n[serialdrive.py: %s]" % end)
