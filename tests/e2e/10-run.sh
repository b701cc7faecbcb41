#!/bin/bash
# `nsjail-helper run`: the engine's isolation, seen from inside a set.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

host_ns() { readlink /proc/self/ns/"$1"; }
run_as() { local u=$1; shift; nsjail-helper run "$u" -- "$@"; }

# ---- what an isolated user sees ----------------------------------------------
probe=$(run_as alice sh -c '
  for n in user mnt pid ipc; do echo "ns_$n=$(readlink /proc/self/ns/$n)"; done
  echo "tmp=$(ls -A /tmp /var/tmp /dev/shm | tr -d "\n")"
  echo "uid_map=$(tr -s " " </proc/self/uid_map | sed "s/^ //" | tr "\n" "|")"
  echo "gid_map=$(tr -s " " </proc/self/gid_map | sed "s/^ //" | tr "\n" "|")"
  echo "root_master=$(awk "\$5==\"/\"" /proc/self/mountinfo | grep -c "master:")"
  echo "id=$(id -u):$(id -g)"
  umount /tmp 2>/dev/null && echo umount_direct=ok || echo umount_direct=refused
  unshare -r -m umount /tmp 2>/dev/null && echo umount_nested=ok || echo umount_nested=refused
')
get() { printf '%s\n' "$probe" | sed -n "s/^$1=//p"; }
for n in user mnt pid ipc; do
    check_ne "run alice: $n namespace differs from the host's" "$(host_ns $n)" "$(get ns_$n)"
done
check_eq "run alice: ps -e shows only her set (its holder and ps)" "nsjail-holder|ps|" "$(run_as alice ps -e -o comm= | tr '\n' '|')"
check_eq "run alice: /tmp, /var/tmp, /dev/shm start empty" "/dev/shm:/tmp:/var/tmp:" "$(get tmp)"
check_eq "run alice: runs as alice" "$(id -u alice):$(id -g alice)" "$(get id)"
sub=$(awk -F: '$1=="alice"{print $2}' /etc/subuid)
uid=$(id -u alice)
expect_uid="$uid $uid 1|1 $((sub + 1)) $((uid - 1))|$((uid + 1)) $((sub + uid + 1)) $((65535 - uid))|"
check_eq "run alice: uid_map maps her uid to itself, the rest from /etc/subuid, never 0" "$expect_uid" "$(get uid_map)"
gm=$(get gid_map)
for g in $(id -G alice); do
    case "|$gm" in *"|$g $g 1|"*) ok "run alice: gid $g identity-mapped" ;;
    *) not_ok "run alice: gid $g identity-mapped" "$gm" ;; esac
done
# Only ids she owns: not the host's tty group (tests/e2e/57-hardening3.sh).
identity=$(printf '%s' "$gm" | tr '|' '\n' | awk '$1 == $2 {print $1}' | sort -n | tr '\n' ' ')
check_eq "run alice: exactly her own gids are identity-mapped (no tty group)" \
    "$(id -G alice | tr ' ' '\n' | sort -n | tr '\n' ' ')" "$identity"
case "|$gm" in *"|0 "*) not_ok "run alice: gid 0 not mapped" "$gm" ;; *) ok "run alice: gid 0 not mapped" ;; esac
check_eq "run alice: umount /tmp is refused" refused "$(get umount_direct)"
check_eq "run alice: umount /tmp as root of a nested user namespace is refused" refused "$(get umount_nested)"

# Propagation: a shared bind mount on the host shows up inside (slave),
# a mount made inside never reaches the host.
mkdir -p /srv/prop/src /srv/prop/mnt /srv/prop/inner
mount --bind /srv/prop /srv/prop && mount --make-shared /srv/prop
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"
run_as alice true
# As root in the set's mount namespace (enter runs commands as the user).
nsenter -t "$(nsjail-helper list --json | python3 -c 'import json,sys; print([s["holder_pid"] for s in json.load(sys.stdin) if s["user"]=="alice"][0])')" -m \
    mount -t tmpfs inner /srv/prop/inner
mount --bind /srv/prop/src /srv/prop/mnt && touch /srv/prop/src/from-host
check "slave propagation: a host mount made after the set exists appears inside" \
    nsjail-helper enter alice -- test -e /srv/prop/mnt/from-host
check "slave propagation: a mount made inside does not reach the host" \
    sh -c '! findmnt /srv/prop/inner'
check_eq "a shared host mount is a slave inside the set" 1 "$(nsjail-helper enter alice -- awk '$5=="/srv/prop"' /proc/self/mountinfo | grep -c master:)"
nsjail-helper stop alice >/dev/null
umount /srv/prop/mnt /srv/prop
set_policy "$(test_policy)"

# ---- alice vs bob ----------------------------------------------------------------
run_as alice sh -c 'echo a >/tmp/alice-tmp; echo a >/dev/shm/alice-shm; ipcmk -M 4096 >/dev/null; ipcmk -Q >/dev/null; ipcs -m | awk "/^0x/{print \$2}" >/dev/shm/alice-ids; sleep 4' &
apid=$!
wait_for nsjail-helper enter alice -- test -s /dev/shm/alice-ids
bob_view=$(run_as bob sh -c 'ls -A /tmp /dev/shm | tr -d "\n"; echo; ipcs -m | grep -c "^0x"; ipcs -q | grep -c "^0x"')
check_eq "bob does not see alice's /tmp, /dev/shm, shm segments or queues" \
    "/dev/shm:/tmp:|0|0|" "$(printf '%s\n' "$bob_view" | tr '\n' '|')"
check_eq "bob does not see alice's processes" "nsjail-holder|ps|" "$(run_as bob ps -e -o comm= | tr '\n' '|')"
check "the host does not see alice's /tmp file" test ! -e /tmp/alice-tmp
check "the host does not see alice's /dev/shm file" test ! -e /dev/shm/alice-shm
alice_shmid=$(nsjail-helper enter alice -- cat /dev/shm/alice-ids)
check "the host has no SysV segment with the id of alice's" sh -c "[ -n '$alice_shmid' ] && ! ipcs -m | awk '{print \$2}' | grep -qx '$alice_shmid'"
check_eq "the host does not see alice's SysV objects (owned by alice)" 0 "$( (ipcs -m; ipcs -q) | awk '$3=="alice"' | wc -l)"
# share = user: a second run of alice joins the same set.
second=$(run_as alice sh -c 'cat /tmp/alice-tmp; ipcs -m | grep -c "^0x"; ps -e -o comm= | grep -c "^sleep$"')
check_eq "share=user: alice's second session sees her /tmp file, shm segment and sleep" "a|1|1" "$(printf '%s' "$second" | tr '\n' '|')"
# and the reverse: bob's objects are invisible to alice.
run_as bob sh -c 'echo b >/tmp/bob-tmp; ipcmk -M 4096 >/dev/null; sleep 3' &
bpid=$!
wait_for nsjail-helper enter bob -- test -e /tmp/bob-tmp
check_eq "alice does not see bob's /tmp file or shm segment" "0|1" \
    "$(run_as alice sh -c 'ls /tmp | grep -c bob; ipcs -m | grep -c "^0x"' | tr '\n' '|' | sed 's/|$//')"
wait $apid $bpid
check "on_logout=kill: after alice's last session no set remains" \
    wait_for sh -c '! nsjail-helper list | grep -q alice'
check "on_logout=kill: no registry entry remains" test ! -e /run/pam_nsjail/sets/u"$(id -u alice)"
check_eq "on_logout=kill: no process of alice remains" 0 "$(pgrep -u alice -c)"

# ---- share = session -----------------------------------------------------------
set_policy "$(test_policy | sed 's/share = "user"/share = "session"/')"
run_as alice sh -c 'echo 1 >/tmp/first; sleep 3' &
p1=$!
sleep 0.5
check_eq "share=session: a concurrent second session has its own /tmp" 0 "$(run_as alice sh -c 'ls -A /tmp | wc -l')"
check_eq "share=session: a concurrent second session has its own processes" "nsjail-holder|ps|" "$(run_as alice ps -e -o comm= | tr '\n' '|')"
wait $p1

# ---- on_logout = linger ---------------------------------------------------------
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"
run_as alice sh -c 'setsid nohup sleep 300 >/dev/null 2>&1 </dev/null &'
check "on_logout=linger: a setsid/nohup job survives the session" \
    sh -c 'nsjail-helper enter alice -- ps -e -o comm= | grep -qx sleep'
check "list shows alice's lingering set" sh -c 'nsjail-helper list | grep -q "^u[0-9]* *alice"'
check "list --json is JSON" sh -c 'nsjail-helper list --json | python3 -c "import json,sys; assert json.load(sys.stdin)[0][\"user\"]==\"alice\""'
check "stop ends the lingering set" nsjail-helper stop alice
check_eq "after stop no process of alice remains" 0 "$(pgrep -u alice -c)"
check "stop of a user without a set fails" sh -c '! nsjail-helper stop alice 2>/dev/null'
set_policy "$(test_policy)"

# ---- carol is exempt -----------------------------------------------------------------
check_eq "carol (exempt) runs in the host namespaces" "$(host_ns user)$(host_ns pid)" \
    "$(run_as carol sh -c 'readlink /proc/self/ns/user /proc/self/ns/pid' | tr -d '\n')"
check_eq "run returns the command's exit status" 7 "$(run_as alice sh -c 'exit 7'; echo $?)"

# ---- bad input: one clear line, exit 1 ----------------------------------------------
expect_fail() { # NAME PATTERN CMD...
    local name=$1 pat=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc = 1 ] && printf '%s' "$out" | grep -Eq -- "$pat"; then ok "$name"; else not_ok "$name" "rc=$rc" "$out"; fi
}
mkdir -p /etc/nsj-bad && chmod 755 /etc/nsj-bad
printf '[[policy]]\nname = "x"\ngroups = ["students"\n' >/etc/nsj-bad/syntax.toml
expect_fail "malformed TOML: path:line:col" '^nsjail-helper: /etc/nsj-bad/syntax.toml:4:1: ' nsjail-helper run --config /etc/nsj-bad/syntax.toml alice -- true
printf '[[policy]]\nname = "x"\ngroups = ["students"]\nisolat = true\n' >/etc/nsj-bad/key.toml
expect_fail "unknown key is named" 'key.toml:4:1: .*isolat' nsjail-helper run --config /etc/nsj-bad/key.toml alice -- true
test_policy >/etc/nsj-bad/open.toml && chmod 666 /etc/nsj-bad/open.toml
expect_fail "world-writable policy is refused" 'open.toml: refusing policy: file is world-writable' nsjail-helper run --config /etc/nsj-bad/open.toml alice -- true
cp /etc/subuid /etc/subuid.save
sed -i '/^alice:/d' /etc/subuid
expect_fail "no sub-id range under subids=required names the file and user" '/etc/subuid: no subordinate id range for user alice' nsjail-helper run alice -- true
cp /etc/subuid.save /etc/subuid
expect_fail "unknown user" "unknown user 'nosuchuser'" nsjail-helper run nosuchuser -- true
expect_fail "check reports a broken policy with line and caret" 'syntax.toml:4:1: ' nsjail-helper check --config /etc/nsj-bad/syntax.toml
check_eq "check on a good policy says OK" "/etc/security/pam_nsjail.toml: OK (2 policies)" "$(nsjail-helper check 2>/dev/null)"
check_eq "usage error exits 2" 2 "$(nsjail-helper run >/dev/null 2>&1; echo $?)"
check_eq "unknown command exits 2" 2 "$(nsjail-helper frobnicate >/dev/null 2>&1; echo $?)"
check_eq "not root: run fails with exit 1" 1 "$(su -s /bin/sh carol -c 'nsjail-helper run alice -- true' >/dev/null 2>&1; echo $?)"
# ---- the admin CLI -----------------------------------------------------------------
explained=$(nsjail-helper explain alice | sed -n '/^uid_map:/,/^gid_map:/p' | grep -v map: | sed 's/^ *//' | tr '\n' '|')
actual=$(run_as alice cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //' | tr '\n' '|')
check_eq "explain alice shows exactly the uid_map her session gets" "$actual" "$explained"
explained=$(nsjail-helper explain alice | sed -n '/^gid_map:/,$p' | grep -E '^ +[0-9]' | sed 's/^ *//' | sort | tr '\n' '|')
actual=$(run_as alice cat /proc/self/gid_map | tr -s ' ' | sed 's/^ //' | sort | tr '\n' '|')
check_eq "explain alice shows exactly the gid_map her session gets" "$actual" "$explained"
check "explain names the policy and the reason" sh -c "nsjail-helper explain alice | grep -q 'policy: *students (alice is in group students (supplementary))'"
check "explain carol says she is not isolated" sh -c "nsjail-helper explain carol | grep -q 'not isolated'"
for cmd in check explain run list enter stop audit; do
    check "$cmd --help prints its usage and exits 0" sh -c "nsjail-helper $cmd --help | grep -q '^usage: nsjail-helper $cmd'"
done
check_eq "enter without a set fails with exit 1" 1 "$(nsjail-helper enter alice -- true >/dev/null 2>&1; echo $?)"
check_eq "enter without a set says so" "nsjail-helper: enter alice: no namespace set" "$(nsjail-helper enter alice -- true 2>&1)"
for cmd in "list" "stop alice" "enter alice" "run alice -- true"; do
    check_eq "not root: $cmd fails with exit 1" 1 "$(su -s /bin/sh carol -c "nsjail-helper $cmd" >/dev/null 2>&1; echo $?)"
done
check_eq "explain of an unknown user fails with exit 1" 1 "$(nsjail-helper explain nosuchuser >/dev/null 2>&1; echo $?)"
audit=$(nsjail-helper audit)
check_eq "audit exits 1 when a session service bypasses pam_nsjail" 1 "$(nsjail-helper audit >/dev/null; echo $?)"
check "audit: sshd is ok" sh -c "printf '%s' \"\$1\" | grep -q '/etc/pam.d/sshd: ok'" _ "$audit"
check "audit: su is flagged with the fix" sh -c "printf '%s' \"\$1\" | grep -q \"warning: /etc/pam.d/su: 'su' opens sessions without pam_nsjail\" && printf '%s' \"\$1\" | grep -q \"fix: add '@include nsjail' to /etc/pam.d/su\"" _ "$audit"

check "no set or holder is left behind" sh -c '[ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder'

done_testing
