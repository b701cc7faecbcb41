#!/bin/bash
# Users and groups from a directory: a real slapd and sssd (LDAP provider)
# inside the sandbox, NSS asking sssd for passwd and group, real ssh
# logins. Isolation decided by directory group membership (primary and
# memberUid), a change in the directory taking effect once sssd's cache
# expires, the directory unreachable (warm cache: decided from the cache;
# cold cache: refused), and a name typed in another case (sssd
# case_sensitive = false) landing in the same user's set.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"
source "$REPO/tests/lib/directory.sh"
trap 'dir_teardown; sandbox_teardown' EXIT

host_user_ns=$(readlink /proc/self/ns/user)
user_ns_of() { ssh_as "$1" 'readlink /proc/self/ns/user' 2>&1; }
isolated() {
    local ns
    ns=$(user_ns_of "$1")
    [[ $ns =~ ^user:\[[0-9]+\]$ ]] && [ "$ns" != "$host_user_ns" ]
}
on_host() { [ "$(user_ns_of "$1")" = "$host_user_ns" ]; }
no_set() { ! nsjail-helper enter "$1" -- true 2>/dev/null; }

for tool in slapd slapadd ldapmodify sssd sss_cache; do
    command -v "$tool" >/dev/null || {
        not_ok "$tool is installed (apt-get install slapd ldap-utils sssd-ldap sssd-tools; see .ci/run)"
        done_testing
        exit 1
    }
done
dir_remove_local_users
slapd_start || { not_ok "slapd starts in the sandbox"; done_testing; exit 1; }
sssd_start || { not_ok "sssd starts in the sandbox"; done_testing; exit 1; }
for u in alice bob carol frank; do dir_home "$u"; done
# gina: only her passwd entry, by number (her group stays uncached).
getent passwd gina >/dev/null
install -d -o "$DIR_UID_GINA" -g "$DIR_GID_CONTRACTORS" -m 700 /home/gina
install -d -o "$DIR_UID_GINA" -m 700 /home/gina/.ssh
install -o "$DIR_UID_GINA" -m 600 "$SB_KEY.pub" /home/gina/.ssh/authorized_keys
# The sandbox's policy (tests/lib/sandbox.sh), interns isolated as
# students are; $1: [defaults] isolate.
policy_isolating() {
    test_policy | sed -e "0,/^isolate = false\$/s//isolate = $1/" \
        -e 's/^groups = \["students"\]$/groups = ["students", "interns"]/'
}
set_policy "$(policy_isolating false)"
# Sub-ids by name (alice, carol, frank) and by uid (bob).
printf '%s\n' alice:400000:65536 "$DIR_UID_BOB:500000:65536" carol:600000:65536 frank:700000:65536 gina:800000:65536 >/etc/subuid
cp /etc/subuid /etc/subgid

# ---- the users come from the directory ------------------------------------------
check_eq "NSS: alice comes from sssd (uid $DIR_UID_ALICE, primary group students)" \
    "alice:*:$DIR_UID_ALICE:$DIR_GID_STUDENTS" "$(getent passwd alice | cut -d: -f1-4)"
check "NSS: no alice, bob, carol or students in /etc/passwd and /etc/group" \
    sh -c "! grep -Eq '^(alice|bob|carol|erin|frank):' /etc/passwd && ! grep -Eq '^(students|admins|ldapusers|interns):' /etc/group"

# ---- isolation decided by directory groups ----------------------------------------
log_clear
check "alice (students is her primary group in LDAP) is isolated" isolated alice
check "log: alice isolated by policy students" log_has "user=alice service=sshd policy=students action=isolated set=u$DIR_UID_ALICE"
check "bob (students through memberUid) is isolated" isolated bob
check "log: bob isolated by policy students" log_has "user=bob service=sshd policy=students action=isolated"
check "control: carol (admins in LDAP) gets the host namespaces" on_host carol
check "log: carol exempt by policy admins" log_has "user=carol service=sshd policy=admins action=exempt"
check_eq "alice's uid_map uses her /etc/subuid range (by name)" \
    "$DIR_UID_ALICE $DIR_UID_ALICE 1|1 400001 $((DIR_UID_ALICE - 1))|$((DIR_UID_ALICE + 1)) $((400000 + DIR_UID_ALICE + 1)) $((65535 - DIR_UID_ALICE))|" \
    "$(ssh_as alice 'tr -s " " </proc/self/uid_map | sed "s/^ //" | tr "\n" "|"')"
check "bob's uid_map uses his /etc/subuid range (by uid)" \
    sh -c "ssh $(printf '%q ' "${SSH_OPTS[@]}") bob@127.0.0.1 cat /proc/self/uid_map | grep -Eq '^ +1 +500001 '"

# ---- a name typed in another case: the same user, the same set ------------------
ssh_as alice 'exec sleep 6' &
hold=$!
wait_for nsjail-helper enter alice -- true
log_clear
check_eq "ALICE (sssd case_sensitive = false) lands in alice's set (same pid namespace)" \
    "$(nsjail-helper enter alice -- readlink /proc/self/ns/pid)" \
    "$(ssh_as ALICE 'readlink /proc/self/ns/pid' 2>&1)"
check_eq "ALICE runs as alice's uid" "$DIR_UID_ALICE" "$(ssh_as ALICE 'id -u' 2>&1)"
check "log: the decision names the canonical alice, not ALICE" \
    log_has "user=alice service=sshd policy=students action=(isolated|joined)"
check "log: no line names ALICE" sh -c "! grep -q 'user=ALICE' '$SB_LOG'"
check_eq "ALICE's uid_map: alice's /etc/subuid range (looked up by the canonical name)" \
    "$(nsjail-helper enter alice -- cat /proc/self/uid_map | tr -s ' ')" \
    "$(ssh_as ALICE 'cat /proc/self/uid_map' 2>&1 | tr -s ' ')"
wait $hold
WAIT_TRIES=100 wait_for no_set alice
# Sub-id entries match the canonical name (or the uid), as shadow's
# usermod writes them: an entry spelled ALICE is not alice's.
cp /etc/subuid /run/nsjail-test/subuid.saved
sed -i 's/^alice:/ALICE:/' /etc/subuid
out=$(nsjail-helper explain ALICE 2>&1)
check "explain ALICE: reports the canonical user alice" grep -q "^user: *alice (uid $DIR_UID_ALICE" <<<"$out"
check "explain ALICE: an /etc/subuid entry spelled ALICE is not alice's (required: a login would be refused)" \
    grep -q "no subordinate id range for user alice" <<<"$out"
cp /run/nsjail-test/subuid.saved /etc/subuid

# ---- a change in the directory: at the next login once the cache expires ----------
ldap_modify "dn: cn=students,ou=groups,$DIR_BASE
changetype: modify
delete: memberUid
memberUid: bob
-
add: memberUid
memberUid: carol

dn: cn=admins,ou=groups,$DIR_BASE
changetype: modify
delete: memberUid
memberUid: carol"
check_eq "ldapmodify: the directory now lists carol, not bob, in students" "erin carol" \
    "$(ldapsearch -x -LLL -H "$DIR_URI" -b "cn=students,ou=groups,$DIR_BASE" memberUid | sed -n 's/^memberUid: //p' | tr '\n' ' ' | sed 's/ $//')"
check "before the cache expires: bob is still isolated (sssd's cached groups)" isolated bob
check "before the cache expires: carol still gets the host namespaces" on_host carol
sss_cache -E
log_clear
check "after the cache expires: bob (left students) gets the host namespaces" on_host bob
check "log: bob's login is not isolated any more" log_has "user=bob service=sshd policy=(defaults|-) action=(exempt|not_isolated)"
check "after the cache expires: carol (joined students) is isolated" isolated carol
check "log: carol isolated by policy students" log_has "user=carol service=sshd policy=students action=isolated"
check "control: alice, unchanged, is still isolated" isolated alice

# ---- the directory unreachable -----------------------------------------------------
slapd_stop
# Expire every entry: sssd must ask the directory, fail, go offline and
# answer from its cache.
sss_cache -E
log_clear
check "offline, warm cache: alice is isolated (decided from sssd's cache)" isolated alice
check "offline, warm cache: carol is isolated (her cached membership)" isolated carol
check "offline, warm cache control: bob gets the host namespaces" on_host bob
check "sssd reports the directory offline" grep -rqsi "offline" /var/log/sssd/
# frank's passwd entry is cached (his home was made with it), his groups
# never were: offline, NSS knows him in no group but his primary one, and
# has no name for it. Under a policy that exempts by default, whether he
# is an intern (isolated) cannot be decided: refused (on_error=deny), never
# let in unconfined. One that isolates by default isolates him.
check_eq "offline, groups never cached: NSS gives frank only his primary gid" \
    "$DIR_GID_LDAPUSERS" "$(id -G frank 2>&1)"
# Nothing tells the module that frank's list is short (docs/DIRECTORY.md:
# isolate by default on directory hosts). Where NSS cannot even name a
# user's primary group (gina: her passwd entry cached, her group never),
# her membership is visibly unknown: with a policy that isolates by group
# and exempts by default, she is refused (on_error=deny), never let in
# unconfined.
check "offline, gina's group never cached: NSS has no name for her gid" \
    sh -c "getent passwd gina >/dev/null && ! getent group $DIR_GID_CONTRACTORS"
log_clear
check "offline, gina's group unnamed, [defaults] exempt: gina is refused, not let in unconfined" \
    sh -c "! ssh $(printf '%q ' "${SSH_OPTS[@]}") gina@127.0.0.1 echo IN 2>/dev/null | grep -q IN"
check "log: the refusal names gina, the unnamed gid and the policy that might isolate her" \
    log_has "user=gina .*policy=students action=refused .*NSS has no group entry for gid $DIR_GID_CONTRACTORS of user 'gina'"
check "control, same moment: bob (groups cached) still gets the host namespaces" on_host bob
set_policy "$(policy_isolating true)"
check "offline, [defaults] isolate = true: gina is isolated" isolated gina
check "offline, groups never cached, [defaults] isolate = true: frank is isolated" isolated frank
check "control, same policy: carol (admins, cached) is isolated now too, as a student" isolated carol
check "control, same policy: bob (in no group now) is isolated by default" isolated bob
set_policy "$(policy_isolating false)"
# erin is in students but was never looked up: nothing cached.
check "offline, cold cache: NSS does not know erin" sh -c "! getent passwd erin"
check "offline, cold cache: ssh erin is refused" sh -c "! ssh $(printf '%q ' "${SSH_OPTS[@]}") erin@127.0.0.1 echo IN 2>/dev/null | grep -q IN"
log_clear
check "offline, cold cache: the module refuses erin's session (pamtester sshd erin open_session)" \
    sh -c "! pamtester sshd erin open_session >/dev/null 2>&1"
check "log: the refusal names erin and the user lookup (on_error=deny)" \
    log_has "user=erin .*action=refused .*unknown user 'erin'"

done_testing
