#!/bin/bash
# Every way in (issue 18, docs/SERVICES.md): cron, su and runuser place an
# isolated user's session in her set (the set of her ssh logins under
# share = "user"), exempt users stay on the host; login and atd, which
# cannot work inside a set, refuse her with the reason; a failure in the
# session's process never lets it run unconfined. An isolated user edits
# her crontab from her ssh login, in her set, and cron runs it there.
# Two cron rounds wait for a minute boundary each (up to ~2 minutes in all).
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

# As the README says: '@include nsjail' at the end of each service's
# stack (su-l and runuser-l include su and runuser).
for svc in su runuser login cron atd; do
    [ -e /etc/pam.d/$svc ] && echo '@include nsjail' >>/etc/pam.d/$svc
done
# cron and at keep their spools and logs under /var: the sandbox's own.
for x in spool log; do
    mkdir -p "$SB_DIR/var-$x.up" "$SB_DIR/var-$x.work"
    mount -t overlay overlay -o "lowerdir=/var/$x,upperdir=$SB_DIR/var-$x.up,workdir=$SB_DIR/var-$x.work" "/var/$x"
done
cat >/usr/local/bin/nsprobe <<'EOF'
#!/bin/sh
# One line per fact, for the checks below.
echo "ns=$(for n in user mnt pid ipc net; do readlink /proc/self/ns/$n; done | tr '\n' ' ')"
echo "id=$(id -u)"
echo "tmp=$(ls -A /tmp | tr '\n' ' ')"
echo "users=$(ps -e -o user= | sort -u | tr '\n' ' ')"
EOF
chmod 755 /usr/local/bin/nsprobe
touch /tmp/host-marker
echo 'alice:alice-pw-1' | chpasswd
uid_alice=$(id -u alice)
host=$(nsprobe | sed -n 's/^ns=//p')

holder_of() { nsjail-helper list | awk -v u="$1" '$2 == u { print $4 }'; }
# set_ns USER: the namespaces of USER's set, read from its holder.
set_ns() {
    local h
    h=$(holder_of "$1")
    [ -n "$h" ] || return 1
    for n in user mnt pid ipc net; do readlink /proc/"$h"/ns/$n; done | tr '\n' ' '
}
# field NAME OUTPUT: the value of NAME= in OUTPUT (a pty's \r and escapes removed).
field() { printf '%s\n' "$2" | sed 's/\x1b[][?0-9;]*[a-zA-Z]//g; s/\r//g' | sed -n "s/^$1=//p" | head -1; }
no_set() { ! nsjail-helper list | awk '{ print $2 }' | grep -qx "$1"; }
nothing_of_alice() { no_set alice && [ -z "$(pgrep -u alice; pgrep -x su)" ]; }
# in_her_set NAME OUTPUT [USERS]: the probe's namespaces are alice's set's,
# it ran as alice, saw none of the host's /tmp and only the processes of
# USERS (default alice; "nobody" is how su's own process, host root, shows
# inside the set, where root is unmapped).
in_her_set() {
    local name=$1 out=$2 users=${3:-alice } want
    want=$(set_ns alice)
    check_eq "$name: namespaces are alice's set's" "$want" "$(field ns "$out")"
    check_eq "$name: runs as alice, no host /tmp, only [$users] processes" \
        "$uid_alice||$users" "$(field id "$out")|$(field tmp "$out")|$(field users "$out")"
}

# ---- crontab inside her set (nsset/crontab.rs) ---------------------------------------------------
# The program is root:crontab 2755; a set maps the crontab group and covers
# the program with an idmapped view in which root shows as her, so the
# kernel honours its setgid bit there. The sandbox's /usr is an overlay,
# which has no idmapped mounts (a host's ext4, xfs or btrfs /usr has).
# First what that means: the set is made without the bind or the group.
crontab_gid=$(getent group crontab | cut -d: -f3)
log_clear
out=$(ssh_as alice 'crontab -l >/dev/null 2>&1; echo "rc=$?"; echo "lent=$(awk -v g='"$crontab_gid"' "\$1 == g && \$2 == g" /proc/self/gid_map | wc -l)"' 2>&1)
check_eq "crontab on a /usr without idmapped mounts: fails inside, the set does not lend the group" \
    "failed|0" "$([ "$(field rc "$out")" != 0 ] && echo failed)|$(field lent "$out")"
check "crontab on such a /usr: H0 logs why" \
    log_has "crontab will not work in the new set of uid $uid_alice: make an idmapped mount of it"
check "explain alice: the crontab group is not lent here, and why" sh -c \
    "nsjail-helper explain alice | grep -q '^not lent:    crontab (gid $crontab_gid): make an idmapped mount of it'"
# Her live set made there: its record says what it maps, not what was planned.
ssh_as alice 'exec sleep 30' &
held=$!
wait_for sh -c "nsjail-helper list | grep -q ' alice '"
check "explain alice, a live set made on that /usr: it does not lend the crontab group" sh -c \
    "nsjail-helper explain alice | grep -qF 'does not lend crontab (gid $crontab_gid) (made before it was lent, or its crontab view could not be made)'"
# (without a pty sshd keeps the session until its command ends)
pkill -u alice -fx 'sleep 30'
wait "$held" 2>/dev/null
wait_for no_set alice
# Then /usr/bin/crontab served from a tmpfs (which has them), as it is.
mkdir "$SB_DIR/crontab.fs"
mount -t tmpfs -o mode=755 tmpfs "$SB_DIR/crontab.fs"
cp -p /usr/bin/crontab "$SB_DIR/crontab.fs/crontab"
mount --bind "$SB_DIR/crontab.fs/crontab" /usr/bin/crontab
check "explain alice: the crontab group is lent, by name, and why" sh -c \
    "nsjail-helper explain alice | grep -q '^lent group:  crontab (gid $crontab_gid) to every set, member or not: setgid group of the crontab program'"
# An EDITOR for crontab -e: appends a line to the file it is given (and
# moves its mtime on: crontab -e takes an unchanged mtime for no change).
printf '%s\n' '#!/bin/sh' 'echo "# edited in the set" >>"$1"' 'touch -d "@$(($(date +%s) + 5))" "$1"' >/usr/local/bin/nsedit
chmod 755 /usr/local/bin/nsedit
# crontab_in USER TABLE: USER in her ssh login installs TABLE (a file of
# hers) with crontab FILE, lists it, edits it with crontab -e, and reports
# what her login sees of the crontab group and the spool.
crontab_in() {
    ssh_as "$1" 'crontab ~/'"$2"'; echo "install=$?"
        echo "listed=$(crontab -l 2>&1 | grep -c nsprobe)"
        EDITOR=/usr/local/bin/nsedit crontab -e >/dev/null 2>&1; echo "edit=$?"
        echo "edited=$(crontab -l 2>&1 | grep -c "edited in the set")"
        echo "ingroup=$(id -G | tr " " "\n" | grep -cx '"$crontab_gid"')"
        touch /var/spool/cron/crontabs/x 2>/dev/null; echo "touch=$?"
        cat /var/spool/cron/crontabs/carol >/dev/null 2>&1; echo "readcarol=$?"
        crontab -l -u carol >/dev/null 2>&1; echo "listcarol=$?"
        echo "ns=$(for n in user mnt pid ipc net; do readlink /proc/self/ns/$n; done | tr "\n" " ")"' 2>&1
}
crontab_facts() {
    local f
    for f in install listed edit edited ingroup touch; do printf '%s=%s ' $f "$(field $f "$1")"; done
}

# ---- cron round 1: a job with no login open creates her set; it outlives a login -------------
# next_minute: "MIN HOUR" of the next minute boundary at least 8 s away.
next_minute() {
    local now=$(date +%s)
    local t=$((now - now % 60 + 60))
    [ $((t - now)) -lt 8 ] && t=$((t + 60))
    date -d "@$t" +'%-M %-H'
}
read -r m h < <(next_minute)
# (Each probe writes a file of its own and renames it: complete once seen.)
# Each user installs her table herself, in her ssh login: carol (exempt)
# first, the control, so alice then has another user's crontab to try.
printf '%s\n' "$m $h * * * /usr/local/bin/nsprobe >\$HOME/p 2>&1; mv \$HOME/p \$HOME/cron1.out; sleep 8; echo end >\$HOME/cron1.end" >/home/alice/cron1.tab
printf '%s\n' "$m $h * * * /usr/local/bin/nsprobe >\$HOME/p 2>&1; mv \$HOME/p \$HOME/cron1.out" >/home/carol/cron1.tab
chown alice: /home/alice/cron1.tab
chown carol: /home/carol/cron1.tab
out=$(crontab_in carol cron1.tab)
check_eq "control: carol (exempt) installs, lists and edits her crontab in her login, on the host" \
    "install=0 listed=1 edit=0 edited=1 ingroup=0 touch=1 |$host" "$(crontab_facts "$out")|$(field ns "$out")"
out=$(crontab_in alice cron1.tab)
check_eq "alice (isolated) installs, lists and edits her crontab in her login, in her set" \
    "install=0 listed=1 edit=0 edited=1 " "$(crontab_facts "$out" | sed 's/ingroup.*//')"
check_ne "alice's crontab ran in her set, not the host's namespaces" "$host" "$(field ns "$out")"
check_eq "alice in her set is not in group crontab; cannot write the spool outside crontab" \
    "ingroup=0 touch=1 " "$(crontab_facts "$out" | sed 's/.*ingroup/ingroup/')"
check_eq "alice cannot read carol's crontab, neither from the spool nor with crontab -u" \
    "1|1" "$(field readcarol "$out")|$(field listcarol "$out")"
check "the spool holds alice's table, hers, mode 600" \
    test "$(stat -c %U:%a /var/spool/cron/crontabs/alice)" = alice:600
# What the lent group gives a process of hers *outside* the set, which owns
# its user namespace and may take any gid it maps (SECURITY.md): the spool
# without crontab's checks, still nothing of another user.
outside_probe() { # GID FILE: enter her set's user namespace, take GID, append to FILE
    setpriv --reuid alice --regid alice --clear-groups /usr/bin/python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.setns(os.open("/proc/%s/ns/user" % sys.argv[1], os.O_RDONLY), 0x10000000) == 0 or sys.exit("setns")
libc.setresgid(*[int(sys.argv[2])] * 3) == 0 or sys.exit("setresgid")
try:
    open(sys.argv[3], "a").write("x"); print("wrote")
except OSError:
    print("write-denied")' "$(holder_of alice)" "$1" "$2" 2>&1
}
nsjail-helper run alice -- sleep 2 &
run_pid=$!
has_set() { [ -n "$(holder_of "$1")" ]; }
wait_for has_set alice
check_eq "outside her set alice can take the lent group: a file of hers in the spool (the known residue)" \
    wrote "$(outside_probe "$crontab_gid" /var/spool/cron/crontabs/outside)"
check_eq "...but not write carol's table with it" \
    write-denied "$(outside_probe "$crontab_gid" /var/spool/cron/crontabs/carol)"
rm -f /var/spool/cron/crontabs/outside
wait "$run_pid"
wait_for no_set alice
cron -f -L 15 2>/run/nsjail-test/cron1.err &
cron_pid=$!

# ---- meanwhile: bob, isolated, in his set: su never reaches the host -------------------------
out=$(ssh_as bob 'echo alice-pw-1 | su alice -c nsprobe 2>&1; echo "rc=$?"' 2>&1)
check "bob (isolated) su alice inside his set fails: su is not privileged there" \
    sh -c '[ "$1" != "rc=0" ] && [ -n "$1" ]' _ "$(field rc "$out")"
check "bob's su ran nothing: no probe output, so never the host's namespaces" \
    sh -c '! printf "%s" "$1" | grep -q "^ns="' _ "$out"

# ---- meanwhile: login and atd refuse alice (measured: they cannot work in a set) --------------
log_clear
out=$(python3 "$REPO/tests/lib/ptydrive.py" - "nsprobe; exit" -- login -f alice 2>&1)
check "login -f alice on a pty: refused, nothing ran" sh -c '! printf "%s" "$1" | grep -q "^ns="' _ "$out"
check "login: the log names the service and why" \
    log_has "pam_nsjail\(login:session\): user=alice service=login policy=students action=refused .*login cannot run a session inside a namespace set"
check "login refusal left no set" no_set alice
out=$(python3 "$REPO/tests/lib/ptydrive.py" - "nsprobe; exit" -- login -f carol 2>&1)
check_eq "control: login -f carol (exempt) runs in the host namespaces" "$host" "$(field ns "$out")"

atd -f -l 100 &
atd_pid=$!
wait_for test -S /dev/log
for u in alice carol; do
    echo "/usr/local/bin/nsprobe >/home/$u/p 2>&1; mv /home/$u/p /home/$u/at.out" |
        (cd / && setpriv --reuid $u --regid $u --init-groups at now >/dev/null 2>&1)
done
WAIT_TRIES=200 wait_for test -s /home/carol/at.out
check_eq "control: carol's at job runs in the host namespaces" "$host" "$(field ns "$(cat /home/carol/at.out 2>&1)")"
WAIT_TRIES=100 wait_for log_has "service=atd .*user=alice|user=alice service=atd"
check "atd: alice's job did not run" test ! -e /home/alice/at.out
check "atd: the log names the service and why" \
    log_has "pam_nsjail\(atd:session\): user=alice service=atd policy=students action=refused .*atd cannot run a job inside a namespace set"
check "atd refusal left no set" no_set alice
kill "$atd_pid"
wait "$atd_pid" 2>/dev/null

# ---- cron round 1: the checks -------------------------------------------------------------------
check "cron: no set of alice before her job" no_set alice
WAIT_TRIES=1600 wait_for test -s /home/alice/cron1.out
job=$(cat /home/alice/cron1.out)
in_her_set "cron job (no login open)" "$job"
check_ne "cron job: not the host's namespaces" "$host" "$(field ns "$job")"
check "cron: the job created the set (one 'isolated' line naming cron)" \
    log_has "pam_nsjail\(cron:session\): user=alice service=cron policy=students action=isolated set=u$uid_alice"
ssh_as alice true
check "cron: a login that ended while the job runs leaves the set to the job" \
    sh -c '[ -n "$1" ] && [ ! -e /home/alice/cron1.end ]' _ "$(holder_of alice)"
WAIT_TRIES=400 wait_for test -e /home/alice/cron1.end
check "cron: the set ends with the job (on_logout = kill)" wait_for no_set alice
check "cron: the closing line names cron" \
    log_has "pam_nsjail\(cron:session\): user=alice service=cron policy=students action=closed set=u$uid_alice set_ended=yes"
WAIT_TRIES=100 wait_for test -s /home/carol/cron1.out
check_eq "control: carol's cron job runs in the host namespaces" "$host" "$(field ns "$(cat /home/carol/cron1.out)")"
for u in alice carol; do
    out=$(ssh_as $u 'crontab -r; echo "rc=$?"; crontab -l >/dev/null 2>&1; echo "after=$?"' 2>&1)
    check_eq "$u removes her crontab with crontab -r in her login" "0|1" "$(field rc "$out")|$(field after "$out")"
done
check "crontab -r left no table of alice or carol in the spool" \
    test ! -e /var/spool/cron/crontabs/alice -a ! -e /var/spool/cron/crontabs/carol

# ---- cron round 2 (scheduled now): failures in the job's process ------------------------------
# A failpoints build of the module, for cron only: the join fails in the
# forked job process; bob has no sub-id range, so open_session refuses.
securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
[ -n "$securedir" ] || securedir=/usr/lib/x86_64-linux-gnu/security
install -m644 "$REPO/target/failpoints/release/libpam_nsjail.so" "$securedir/pam_nsjail_fp.so"
sed -i 's/^@include nsjail$/auth optional pam_nsjail_fp.so\nsession required pam_nsjail_fp.so/' /etc/pam.d/cron
cp /etc/subuid /run/nsjail-test/subuid.save
sed -i '/^bob:/d' /etc/subuid
kill "$cron_pid"
wait "$cron_pid" 2>/dev/null
read -r m h < <(next_minute)
for u in alice bob; do
    printf '%s\n' "$m $h * * * /usr/local/bin/nsprobe >\$HOME/cron2.out 2>&1" | crontab -u $u -
done
NSJAIL_FAILPOINT=join-fail cron -f -L 15 2>/run/nsjail-test/cron2.err &
cron_pid=$!

# ---- meanwhile: su and runuser, with an ssh login of alice holding her set ----------------------
log_clear
ssh_as alice 'exec sleep 12' &
hold=$!
wait_for test -n "$(holder_of alice)"
in_her_set "root: su alice -c" "$(su alice -c nsprobe 2>&1)" "alice nobody "
in_her_set "root: su - alice -c" "$(su - alice -c nsprobe 2>&1)" "alice nobody "
in_her_set "root: runuser -u alice" "$(runuser -u alice -- nsprobe 2>&1)" "alice nobody "
in_her_set "root: runuser -l alice -c" "$(runuser -l alice -c nsprobe 2>&1)" "alice nobody "
out=$(python3 "$REPO/tests/lib/ptydrive.py" alice-pw-1 x -- setpriv --reuid carol --regid carol --init-groups \
    su alice -c nsprobe 2>&1)
in_her_set "carol (exempt) su alice with alice's password" "$out" "alice nobody "
for svc in su su-l runuser runuser-l; do
    check "$svc: one decision line naming the service, joined to her set" \
        log_has "pam_nsjail\($svc:session\): user=alice service=$svc policy=students action=joined set=u$uid_alice"
done
check_eq "su: the exit code of the command comes back" 7 "$(su alice -c 'exit 7' >/dev/null 2>&1; echo $?)"
out=$(python3 "$REPO/tests/lib/ptydrive.py" - "nsprobe; exit" -- su - alice 2>&1)
in_her_set "root: su - alice, interactive on a pty" "$out" "alice nobody "
# A signal sent to su's pid (the relay, on the host) reaches su inside the
# set, which ends the shell: nothing of the session is left.
su alice -c 'echo started >/dev/shm/su-term; exec sleep 40' &
su_pid=$!
WAIT_TRIES=100 wait_for nsjail-helper enter alice -- test -e /dev/shm/su-term
# su inside the set stopped: its relay stops too (so a calling shell's job
# control sees it), and continuing the relay continues su.
y=$(pgrep -P "$su_pid" -x su)
kill -STOP "$y"
check "su stopped inside the set: its relay on the host stops with it" wait_for sh -c "[ \"\$(ps -o stat= -p $su_pid | cut -c1)\" = T ]"
kill -CONT "$su_pid"
check "continuing the relay continues su inside the set" wait_for sh -c "[ \"\$(ps -o stat= -p $y | cut -c1)\" != T ]"
kill -TERM "$su_pid"
wait "$su_pid"
su_rc=$?
check_ne "kill -TERM su: su ends, not with success" 0 "$su_rc"
check "kill -TERM su: its command in the set ends too" wait_for sh -c '! pgrep -fx "sleep 40"'
check_eq "control: su carol (exempt) runs in the host namespaces" "$host" "$(field ns "$(su carol -c nsprobe)")"
check_eq "control: runuser -u carol (exempt) runs in the host namespaces" "$host" \
    "$(field ns "$(runuser -u carol -- nsprobe)")"
check "su's relay outlives nothing: no su or runuser left" \
    sh -c '[ -z "$(pgrep -x su; pgrep -x runuser)" ]'
wait "$hold"
check "the set ends with the held login" wait_for no_set alice

# share = "session": su gets a set of its own, not the ssh login's.
set_policy "$(test_policy | sed 's/share = "user"/share = "session"/')"
ssh_as alice 'exec sleep 3' &
hold=$!
wait_for test -n "$(holder_of alice)"
ssh_set=$(set_ns alice)
su_ns=$(field ns "$(su alice -c nsprobe 2>&1)")
check "share=session: su alice gets a set of its own" \
    sh -c '[ -n "$1" ] && [ "$1" != "$2" ] && [ "$1" != "$3" ]' _ "$su_ns" "$ssh_set" "$host"
wait "$hold"
set_policy "$(test_policy)"
wait_for no_set alice

# A failure in the child (the failpoints build, for su): never unconfined, nothing left.
for fp in forkjoin-fail join-fail join-panic; do
    log_clear
    cp "$securedir/pam_nsjail.so" /run/nsjail-test/pam_nsjail.so.good
    install -m644 "$REPO/target/failpoints/release/libpam_nsjail.so" "$securedir/pam_nsjail.so"
    out=$(NSJAIL_FAILPOINT=$fp su alice -c nsprobe 2>&1)
    rc=$?
    install -m644 /run/nsjail-test/pam_nsjail.so.good "$securedir/pam_nsjail.so"
    check "su with $fp: fails (rc=$rc) and ran nothing" \
        sh -c '[ "$1" != 0 ] && ! printf "%s" "$2" | grep -q "^ns="' _ "$rc" "$out"
    check "su with $fp: the log names su and why" \
        log_has "pam_nsjail\(su:session\): user=alice service=su policy=students action=refused .*(forkjoin-fail|join-fail|panic: failpoint join-panic)"
    check "su with $fp: no set and no process left" wait_for nothing_of_alice
done

# ---- cron round 2: the checks -------------------------------------------------------------------
WAIT_TRIES=1600 wait_for log_has "pam_nsjail_fp\(cron:session\): user=bob service=cron"
WAIT_TRIES=200 wait_for log_has "user=alice service=cron .*action=refused"
check "cron: alice's job whose join failed did not run" test ! -e /home/alice/cron2.out
check "cron: the job process logs why it exits" \
    log_has "pam_nsjail_fp\(cron:setcred\): user=alice service=cron policy=students action=refused set=u$uid_alice step=\"failpoint\" error=\"join-fail\" \(session process exits\)"
check "cron: bob (no sub-id range) is refused at open_session, the log names cron and why" \
    log_has "pam_nsjail_fp\(cron:session\): user=bob service=cron policy=students action=refused .*/etc/subuid: no subordinate id range for user bob"
check "cron: bob's refused job did not run" test ! -e /home/bob/cron2.out
check "cron: the failed jobs left no set" wait_for sh -c "! nsjail-helper list | awk '{ print \$2 }' | grep -qE 'alice|bob'"
kill "$cron_pid"
wait "$cron_pid" 2>/dev/null
cp /run/nsjail-test/subuid.save /etc/subuid
grep -E "CRON|cron\[|atd\[|su\[|login" "$SB_LOG" | grep -v pam_nsjail | sed 's/^/# /' | head -30
done_testing
