#!/bin/bash
# Hardening, third round (issue 16): what a user's own set lends her, the
# set's pid 1 against forged signals, names as NSS spells them, and PAM
# stacks as sites write them. Every attack has a control beside it.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

uid=$(id -u alice)
linger() { set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"; }
holder_of() { sed -n 's/^holder=\([0-9]*\):.*/\1/p' "/run/pam_nsjail/sets/u$1"; }
clean() { [ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder >/dev/null; }

# ---- a set's user namespace lends only ids its user already owns -------------------------
# The set's user namespace is alice's: a process of hers outside the set
# (a cron job) may setns() into it and take any gid it maps. Probe: enter
# the user namespace of the set's holder, take gid ARG, append to FILE.
probe='import ctypes,os,sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/proc/%s/ns/user" % sys.argv[1], os.O_RDONLY)
if libc.setns(fd, 0x10000000) != 0:
    print("setns-failed"); sys.exit(2)
g = int(sys.argv[2])
if libc.setresgid(g, g, g) != 0:
    print("setresgid-refused"); sys.exit(1)
try:
    open(sys.argv[3], "a").write("x")
except OSError:
    print("write-denied"); sys.exit(1)
print("wrote")'
as_alice() { su -s /bin/sh alice -c "$1"; }
tty_gid=$(getent group tty | cut -d: -f3)
termfile=/run/nsjail-test/term
install -m620 -o root -g tty /dev/null "$termfile"
linger
nsjail-helper run alice -- true
holder=$(holder_of "$uid")
check "control: on the host alice cannot write to a root:tty 0620 file (a terminal's mode)" \
    sh -c "! su -s /bin/sh alice -c 'echo x >>$termfile' 2>/dev/null"
check_eq "control: from outside the set alice enters its user namespace and takes her own gid" "wrote" \
    "$(as_alice "python3 -c '$probe' $holder $(id -g alice) /home/alice/own-file")"
# Namespace gid N, unmapped as itself, now maps into her sub range.
check_eq "...but not the tty group: a root:tty 0620 file stays unwritable" "write-denied" \
    "$(as_alice "python3 -c '$probe' $holder $tty_gid $termfile" 2>&1)"
check "the set's gid map holds no tty gid" sh -c "! awk '\$1 == $tty_gid && \$2 == $tty_gid' /proc/$holder/gid_map | grep -q ."
# Her login pty still works without it.
out=$(ssh -tt "${SSH_OPTS[@]}" alice@127.0.0.1 'export TERM=xterm; t=$(tty); echo "TTY=$t GROUP=$(stat -c %G "$t")"; mesg n; mesg y; mesg; script -qc "echo SCRIPT-OK" /dev/null; tmux -S /tmp/tm new -d "sleep 3" && tmux -S /tmp/tm ls >/dev/null && echo TMUX-OK; vim -u NONE -c q && echo VIM-OK; echo hi >"$t" && echo WRITE-OK' 2>&1 | tr -d '\r')
check "ssh -tt: tty names her pty" sh -c "printf '%s\n' \"\$1\" | grep -q '^TTY=/dev/pts/[0-9]* GROUP=nogroup'" _ "$out"
for pair in "mesg:is y" "script:SCRIPT-OK" "tmux:TMUX-OK" "vim:VIM-OK" "sh:WRITE-OK"; do
    tool=${pair%%:*} what=${pair#*:}
    if ! command -v "$tool" >/dev/null; then
        ok "ssh -tt: her pty works without the tty group ($what) # SKIP $tool is not installed"
        continue
    fi
    check "ssh -tt: her pty works without the tty group ($what)" sh -c "printf '%s\n' \"\$1\" | grep -q '$what\$'" _ "$out"
done
# A supplementary group she has been removed from is not lent on.
groupadd extra
usermod -aG extra alice
extra=$(getent group extra | cut -d: -f3)
install -m660 -o root -g extra /dev/null /run/nsjail-test/extra-file
nsjail-helper stop alice >/dev/null
nsjail-helper run alice -- true
holder=$(holder_of "$uid")
check_eq "control: while she is in group extra, its gid is hers through the set" "wrote" \
    "$(as_alice "python3 -c '$probe' $holder $extra /run/nsjail-test/extra-file" 2>&1)"
gpasswd -d alice extra >/dev/null
log_clear
check_eq "removed from extra: her next login still works" "$uid" "$(nsjail-helper run alice -- id -u)"
check "...in a new set: the lingering one that lent extra was ended" sh -c "! kill -0 $holder 2>/dev/null"
check "...and the log says why" log_has "user=alice .*action=isolated .*mapped gid\(s\) $extra she is no longer a member of and had no logins: it was ended"
check_eq "...and the new set does not lend extra" "write-denied" \
    "$(as_alice "python3 -c '$probe' $(holder_of "$uid") $extra /run/nsjail-test/extra-file" 2>&1)"
usermod -aG extra alice
nsjail-helper stop alice >/dev/null
nsjail-helper run alice -- sleep 30 >/dev/null 2>&1 &
runpid=$!
wait_for test -s "/run/pam_nsjail/sets/u$uid"
wait_for sh -c "pgrep -u alice -x sleep"
gpasswd -d alice extra >/dev/null
check "removed from extra while a login uses the set: a new login is refused, not joined" \
    sh -c "! nsjail-helper run alice -- true 2>/dev/null"
check "...saying why and what ends it" log_has "user=alice .*action=refused .*maps gid\(s\) $extra she is no longer a member of, and 1 other login\(s\) still use it"
nsjail-helper stop alice >/dev/null
wait $runpid
check_eq "control: after stop she logs in again" "$uid" "$(nsjail-helper run alice -- id -u)"
set_policy "$(test_policy)"
nsjail-helper stop alice >/dev/null

# ---- the holder believes only signals no process can forge ------------------------------
# rt_sigqueueinfo (x86_64 syscall 129) with si_code SI_QUEUE (-1) and
# si_pid 0: what a SIGTERM from outside the pid namespace looks like.
forge='import ctypes,sys
libc = ctypes.CDLL(None, use_errno=True)
info = (ctypes.c_int * 32)()
info[0], info[2] = 15, -1
sys.exit(0 if libc.syscall(129, int(sys.argv[1]), 15, ctypes.byref(info)) == 0 else 1)'
# What the receiver is told: a process inside that waits for SIGTERM
# prints the sender's pid and si_code.
waiter='import signal,sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
print("ready", flush=True)
i = signal.sigwaitinfo([signal.SIGTERM])
print("pid=%d code=%d" % (i.si_pid, i.si_code))'
linger
nsjail-helper run alice -- true
holder=$(holder_of "$uid")
check_eq "control: a forged SIGTERM arrives claiming no sender pid (si_pid 0, SI_QUEUE)" "pid=0 code=-1" \
    "$(nsjail-helper run alice -- sh -c "python3 -c '$waiter' >/tmp/w.out & until grep -q ready /tmp/w.out 2>/dev/null; do sleep 0.05; done; python3 -c '$forge' \$!; wait; sed -n 2p /tmp/w.out")"
check "control: the kernel accepts the forged SIGTERM to the set's pid 1" \
    nsjail-helper run alice -- python3 -c "$forge" 1
sleep 0.3
check "a forged 'from outside' SIGTERM (rt_sigqueueinfo, SI_QUEUE) does not end the holder" kill -0 "$holder"
# (stop returns once the holder has exited; its pid goes when its parent
# reaps the zombie, a moment later)
check "control: nsjail-helper stop still ends the set" sh -c \
    "nsjail-helper stop alice >/dev/null && for i in \$(seq 100); do kill -0 $holder 2>/dev/null || exit 0; sleep 0.05; done; exit 1"
nsjail-helper run alice -- true
holder=$(holder_of "$uid")
kill -TERM "$holder"
check "control: a real SIGTERM from outside (kill) still ends it" wait_for sh -c "! kill -0 $holder 2>/dev/null"
nsjail-helper list >/dev/null
set_policy "$(test_policy)"

# ---- a panic in sshd's session child never lets the session go on ------------------------
# sshd runs the shell unconfined after a failed pam_setcred in its child,
# and pam-bindings turns a panic into PAM_ABORT: every path of ours in the
# child must end it instead. A stack with only the auth line makes the
# child decide alone (open_session never ran the module); a failpoints
# build of the module panics there when sshd's environment says so.
gets_in() { [ "$(ssh_as "$1" 'echo IN' 2>/dev/null)" = IN ]; }
kept_out() { ! gets_in "$1"; }
securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
[ -n "$securedir" ] || securedir=/usr/lib/x86_64-linux-gnu/security
cp "$securedir/pam_nsjail.so" /run/nsjail-test/pam_nsjail.so.good
cp /etc/pam.d/sshd /run/nsjail-test/sshd.pam.good
# NSJAIL_TEST_FP_BUILD: another failpoints build (as NSJAIL_TEST_BUILD).
fp_build=${NSJAIL_TEST_FP_BUILD:-target/failpoints/release}
case $fp_build in /*) ;; *) fp_build=$REPO/$fp_build ;; esac
install -m644 "$fp_build/libpam_nsjail.so" "$securedir/pam_nsjail.so"
sed -i 's/^@include nsjail$/auth optional pam_nsjail.so/' /etc/pam.d/sshd
sshd_stop
sshd_start
check "control: auth line only, unarmed: carol (exempt) gets in" gets_in carol
check "control: auth line only, unarmed: alice is refused in sshd's child" kept_out alice
sshd_stop
NSJAIL_FAILPOINT=child-decide-panic sshd_start
log_clear
check "a panic where sshd's child decides: alice does not get in (unconfined or at all)" kept_out alice
check "that child logs the panic and exits" log_has "pam_nsjail\(sshd:setcred\): user=alice .*action=refused .*panic: failpoint child-decide-panic.*\(session process exits\)"
cp /run/nsjail-test/sshd.pam.good /etc/pam.d/sshd
install -m644 /run/nsjail-test/pam_nsjail.so.good "$securedir/pam_nsjail.so"
sshd_stop
sshd_start
# OpenSSH 9.8+ (sshd-session) goes on after a failed or aborted
# open_session: there, a panic in the monitor's open_session must end the
# connection too (Debian 13 only: NSJAIL_ROOTFS=debian13).
if [ -x /usr/lib/openssh/sshd-session ]; then
    install -m644 "$fp_build/libpam_nsjail.so" "$securedir/pam_nsjail.so"
    sshd_stop
    NSJAIL_FAILPOINT=login-panic sshd_start
    log_clear
    check "sshd-session: a panic in open_session: alice does not get in" kept_out alice
    check "sshd-session: the monitor logs the panic and ends the connection" \
        log_has "pam_nsjail\(sshd:session\): user=alice .*action=refused .*panic: failpoint login-panic.*\(session process exits\)"
    install -m644 /run/nsjail-test/pam_nsjail.so.good "$securedir/pam_nsjail.so"
    sshd_stop
    sshd_start
fi
check "control: the normal build and stack let alice in again" gets_in alice

# ---- PAM stacks as sites write them: joined or refused, never unconfined ----------------------
in_set() { [ "$(ssh_as "$1" 'cat /proc/1/comm' 2>/dev/null)" = nsjail-holder ]; }
audit_sshd() { nsjail-helper audit | grep -A2 '/etc/pam.d/sshd:'; }
cp /etc/pam.d/sshd /run/nsjail-test/sshd.pam.good
cp /etc/pam.d/common-auth /run/nsjail-test/common-auth.good
# Debian's common-auth once libpam-sss is installed; pam_permit stands in
# for pam_sss (its setcred succeeds).
cat >/etc/pam.d/common-auth <<'PAM'
auth [success=2 default=ignore] pam_unix.so nullok
auth [success=1 default=ignore] pam_permit.so use_first_pass
auth requisite pam_deny.so
auth required pam_permit.so
PAM
check "Debian common-auth with sss jumps: alice's login is isolated" in_set alice
check "...and audit finds the auth line reachable" sh -c "nsjail-helper audit | grep -q '/etc/pam.d/sshd: ok'"
cp /run/nsjail-test/common-auth.good /etc/pam.d/common-auth
# RHEL style: 'auth sufficient pam_sss.so' before our auth line: setcred
# stops there and never reaches pam_nsjail, in the monitor or the child.
sed -i '1i auth sufficient pam_permit.so' /etc/pam.d/sshd
log_clear
check "sufficient module before our auth line: alice is refused, not let in unconfined" kept_out alice
check "...the log says the auth line did not run" log_has "user=alice .*action=refused .*the auth line 'auth optional pam_nsjail.so' is missing"
check "control: carol (exempt) still gets in with that stack" gets_in carol
out=$(audit_sshd)
check "audit flags the sufficient module that skips the auth line, and says where the line must go" \
    sh -c "printf '%s' \"\$1\" | grep -q 'pam_setcred can stop before .*auth sufficient pam_permit.so' && printf '%s' \"\$1\" | grep -q 'fix: put the line .auth optional pam_nsjail.so. before them'" _ "$out"
sed -i '1i auth optional pam_nsjail.so' /etc/pam.d/sshd
check "with the auth line first, as the docs say, alice is isolated" in_set alice
check "...and audit is content" sh -c "nsjail-helper audit | grep -q '/etc/pam.d/sshd: ok'"
cp /run/nsjail-test/sshd.pam.good /etc/pam.d/sshd
nsjail-helper stop alice >/dev/null 2>&1

# ---- the cgroup namespace: default only where it hides something ---------------------------
# No systemd here: a set would stay in its login's cgroup, so a cgroup
# namespace hides nothing; the default leaves it out and check says so.
out=$(nsjail-helper check 2>&1)
check "check notes that a cgroup namespace hides nothing on this host" \
    sh -c "printf '%s' \"\$1\" | grep -q 'note: .*a cgroup namespace hides nothing here.*policies students get none by default'" _ "$out"
check_eq "no systemd: by default a set shares the host's cgroup namespace" "$(readlink /proc/self/ns/cgroup)" \
    "$(nsjail-helper run alice -- readlink /proc/self/ns/cgroup)"
check "explain says why" sh -c "nsjail-helper explain alice | grep -q 'no cgroup: by default only where each set has a systemd scope on cgroup v2, not here'"

check "nothing is left behind" wait_for clean
done_testing
