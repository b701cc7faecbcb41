#!/bin/bash
# Faults: each ends with the login refused or (where harmless) succeeding,
# and with no leftover process, mount or registry entry.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

uid=$(id -u alice)
host_pidns=$(readlink /proc/self/ns/pid)
refused() { ! ssh_as "$1" 'echo IN' 2>/dev/null | grep -q IN; }
isolated_login() { [ "$(ssh_as alice 'readlink /proc/self/ns/pid' 2>/dev/null)" != "$host_pidns" ] && [ -n "$(ssh_as alice 'readlink /proc/self/ns/pid' 2>/dev/null)" ]; }
clean() { [ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder >/dev/null && [ "$(pgrep -c -u alice)" = 0 ]; }
# wait_for clean, showing what is left if it never gets there.
settled() {
    wait_for clean && return 0
    echo "sets: $(ls -A /run/pam_nsjail/sets | tr '\n' ' ')"
    ps -eo pid,ppid,user,stat,comm,args --no-headers | grep -v -e ' \[' -e ' ps -eo'
    return 1
}

# ---- helper not executable ---------------------------------------------------------
chmod 644 /usr/sbin/nsjail-helper
log_clear
check "helper not executable: alice is refused" refused alice
check "helper not executable: logged" log_has "action=refused .*nsjail-helper is not executable"
check "helper not executable: nothing left" clean
chmod 755 /usr/sbin/nsjail-helper
cp /usr/sbin/nsjail-helper /run/nsjail-test/helper-copy
chown 1001 /run/nsjail-test/helper-copy
sed -i 's|^session  required   pam_nsjail.so$|& helper=/run/nsjail-test/helper-copy|' /etc/pam.d/nsjail
check "helper owned by a user: alice is refused" refused alice
sed -i 's| helper=/run/nsjail-test/helper-copy||' /etc/pam.d/nsjail

# ---- holder killed while sessions are open ----------------------------------------------
ssh_as alice 'exec sleep 30' &
s1=$!
wait_for sh -c "nsjail-helper enter alice -- ps -e -o comm= | grep -q sleep"
old_holder=$(sed -n 's/^holder=\([0-9]*\):.*/\1/p' /run/pam_nsjail/sets/u$uid)
kill -9 "$old_holder"
check "holder SIGKILLed: the running session dies with it" wait_for sh -c "! kill -0 $s1 2>/dev/null"
wait $s1 2>/dev/null
check "holder SIGKILLed: the next login is isolated in a fresh set" isolated_login
check "holder SIGKILLed: the registry healed (no stale entry, no holder left)" settled

# ---- holder pid reused by an unrelated process -------------------------------------------
ssh_as alice 'exec sleep 30' &
s2=$!
wait_for sh -c "nsjail-helper enter alice -- ps -e -o comm= | grep -q sleep"
dead_holder=$(sed -n 's/^holder=\([0-9]*\):.*/\1/p' /run/pam_nsjail/sets/u$uid)
dead_start=$(sed -n 's/^holder=[0-9]*:\([0-9]*\)$/\1/p' /run/pam_nsjail/sets/u$uid)
cp /run/pam_nsjail/sets/u$uid /run/nsjail-test/record
kill -9 "$dead_holder"
wait $s2 2>/dev/null
wait_for test ! -e /run/pam_nsjail/sets/u$uid
# The holder is dead; put its record back naming a live, unrelated root
# process, as if the kernel had handed the dead holder's pid to it before
# anyone noticed.
sleep 300 &
victim=$!
sed "s/^holder=.*/holder=$victim:$dead_start/" /run/nsjail-test/record >/run/pam_nsjail/sets/u$uid
check "reused pid: the stale record names the victim" grep -q "^holder=$victim:" /run/pam_nsjail/sets/u$uid
check_ne "reused pid: the victim really has another start time" "$dead_start" "$(awk '{print $22}' /proc/$victim/stat)"
check "reused pid: the login still gets an isolated set" isolated_login
check "reused pid: the unrelated process was never signalled" kill -0 $victim
ssh_as alice 'exec sleep 5' &
s3=$!
# Wait for this login's sleep to be in a set: the record of the previous
# login may still be there, about to be removed by its close_session.
wait_for sh -c "nsjail-helper enter alice -- ps -e -o comm= | grep -q sleep"
check_ne "reused pid: the registry names a new holder, not the victim" "$victim" \
    "$(sed -n 's/^holder=\([0-9]*\):.*/\1/p' /run/pam_nsjail/sets/u$uid)"
wait $s3
kill $victim
check "reused pid: nothing left" settled

# ---- /run full ----------------------------------------------------------------------------
mount -t tmpfs -o size=64k,mode=700 tmpfs /run/pam_nsjail
mkdir -m700 /run/pam_nsjail/locks /run/pam_nsjail/sets
head -c 1M /dev/zero >/run/pam_nsjail/fill 2>/dev/null
log_clear
check "/run full: alice is refused" refused alice
check "/run full: the refusal names the registry" log_has "action=refused .*registry"
check "/run full: no holder left behind" sh -c '! pgrep -x nsjail-holder'
umount /run/pam_nsjail
check "/run has room again: alice gets in isolated" isolated_login

# ---- stale lock ------------------------------------------------------------------------------
python3 -c "
import fcntl,os,time
f=open('/run/pam_nsjail/locks/$uid','w'); fcntl.flock(f, fcntl.LOCK_EX); print(os.getpid(), flush=True); time.sleep(60)" >/run/nsjail-test/locker &
locker=$!
wait_for test -s /run/nsjail-test/locker
kill -9 $locker
wait $locker 2>/dev/null
check "a lock left by a killed process does not block the next login" isolated_login

# ---- policy replaced while logins are in flight --------------------------------------------
test_policy >/etc/security/policy-a.toml
# (max_sets above 20: the point here is a whole policy per login, not
# the per-user bound on sets, which 57-pools tests.)
test_policy | sed 's/share = "user"/share = "session"\nmax_sets = 32/' >/etc/security/policy-b.toml
(
    for _ in $(seq 200); do
        cp /etc/security/policy-a.toml /etc/security/.p.tmp && mv /etc/security/.p.tmp /etc/security/pam_nsjail.toml
        cp /etc/security/policy-b.toml /etc/security/.p.tmp && mv /etc/security/.p.tmp /etc/security/pam_nsjail.toml
    done
) &
flipper=$!
runs_in_parallel f "$(repeat_word 20 alice)" 'readlink /proc/self/ns/pid'
wait $flipper
check_eq "policy replaced during 20 logins: every login saw a whole policy and got in" 20 "$(runs_ok f)"
set_policy "$(test_policy)"

# ---- the helper killed at each step of set creation (failpoints build) ----------------------
fp=$REPO/target/failpoints/release/nsjail-helper
if [ -x "$fp" ]; then
    install -m755 "$fp" /run/nsjail-test/nsjail-helper-fp
    for step in h0-after-unshare h0-after-mounts h0-after-fork holder-after-proc holder-after-userns \
        h0-after-maps h0-before-reply h0-after-reply holder-before-exec h0-after-disarm; do
        NSJAIL_FAILPOINT=$step /run/nsjail-test/nsjail-helper-fp run alice -- true >/dev/null 2>&1
        rc=$?
        check_ne "killed at $step: the session is refused" 0 "$rc"
        check "killed at $step: no holder, registry entry or process is left" settled
    done
    check "after the failpoints a normal login works" isolated_login
else
    not_ok "failpoints build missing: cargo build --release --features nsjail-helper/failpoints -p nsjail-helper --target-dir target/failpoints"
fi
check "after all faults: nothing left" settled
done_testing
