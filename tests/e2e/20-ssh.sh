#!/bin/bash
# pam_nsjail.so with a real sshd on loopback: isolated logins end to end.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

host_ns() { readlink /proc/self/ns/"$1"; }
uid_alice=$(id -u alice)

# ---- no pty ---------------------------------------------------------------------
probe=$(ssh_as alice '
  for n in user mnt pid ipc; do echo "ns_$n=$(readlink /proc/self/ns/$n)"; done
  echo "tmp=$(ls -A /tmp | wc -l)"
  echo "uid_map=$(tr -s " " </proc/self/uid_map | sed "s/^ //" | tr "\n" "|")"
  echo "id=$(id -u)"')
get() { printf '%s\n' "$probe" | sed -n "s/^$1=//p"; }
check_eq "ssh alice CMD runs as alice" "$uid_alice" "$(get id)"
for n in user mnt pid ipc; do
    check_ne "ssh alice: $n namespace differs from the host's" "$(host_ns $n)" "$(get ns_$n)"
done
check_eq "ssh alice: ps -e shows only her set (its holder and ps)" "nsjail-holder|ps|" "$(ssh_as alice ps -e -o comm= | tr '\n' '|')"
check_eq "ssh alice: /tmp is private and empty" 0 "$(get tmp)"
sub=$(awk -F: '$1=="alice"{print $2}' /etc/subuid)
check_eq "ssh alice: uid_map as specified" \
    "$uid_alice $uid_alice 1|1 $((sub + 1)) $((uid_alice - 1))|$((uid_alice + 1)) $((sub + uid_alice + 1)) $((65535 - uid_alice))|" \
    "$(get uid_map)"
check "syslog: one 'isolated' decision line for alice" log_has "pam_nsjail\(sshd:session\): user=alice service=sshd policy=students action=isolated set=u$uid_alice"

# ---- pty: the tty (from her set's own devpts) belongs to alice; the host lists her ---
ssh "${SSH_OPTS[@]}" -tt alice@127.0.0.1 'tty >/tmp/mytty; cp /tmp/mytty /dev/shm/; sleep 3' >/run/nsjail-test/tty.out 2>&1 &
tpid=$!
wait_for nsjail-helper enter alice -- test -s /dev/shm/mytty
pts=$(nsjail-helper enter alice -- cat /dev/shm/mytty | tr -d '\r')
check_eq "ssh -tt: the pty, in her set's devpts, is owned by alice" alice \
    "$(nsjail-helper enter alice -- stat -c %U "$pts" 2>&1)"
check "ssh -tt: the host's utmp (what who reads) lists alice" utmp_has alice
check "ssh -tt: the shell runs inside her set" sh -c "[ \"\$(nsjail-helper enter alice -- ps -e -o comm= | grep -c sleep)\" = 1 ]"
wait $tpid

# ---- sftp and scp (a login held open keeps the share=user set alive) -------------
ssh_as alice 'exec sleep 8' &
holdpid=$!
wait_for sh -c "nsjail-helper list | grep -q alice"
echo "payload-$$" >/run/nsjail-test/up.txt
sftp -q -b - "${SSH_OPTS[@]/-p/-P}" alice@127.0.0.1 >/dev/null 2>&1 <<EOF
put /run/nsjail-test/up.txt /tmp/up.txt
get /tmp/up.txt /run/nsjail-test/down.txt
EOF
check_eq "sftp put then get round-trips through alice's private /tmp" "payload-$$" "$(cat /run/nsjail-test/down.txt 2>&1)"
check "sftp: the file is not in the host's /tmp" test ! -e /tmp/up.txt
scp -q "${SSH_OPTS[@]/-p/-P}" /run/nsjail-test/up.txt alice@127.0.0.1:/tmp/scp.txt
check_eq "scp: the copy lands in alice's /tmp (share=user set)" "payload-$$" "$(ssh_as alice 'cat /tmp/scp.txt' 2>&1)"
check "scp: the file is not in the host's /tmp" test ! -e /tmp/scp.txt
check_eq "sftp and scp files are in the same set as the held login" "scp.txt up.txt" "$(ssh_as alice 'ls /tmp' | tr '\n' ' ' | sed 's/ $//')"
wait $holdpid

# ---- alice and bob at once; carol exempt -------------------------------------------------
ssh_as alice 'echo a >/tmp/a-file; echo a >/dev/shm/a-shm; ipcmk -M 4096 >/dev/null; ipcmk -Q >/dev/null; exec sleep 6' &
apid=$!
ssh_as bob 'echo b >/tmp/b-file; echo b >/dev/shm/b-shm; ipcmk -M 4096 >/dev/null; exec sleep 6' &
bpid=$!
wait_for nsjail-helper enter alice -- test -e /dev/shm/a-shm
wait_for nsjail-helper enter bob -- test -e /dev/shm/b-shm
view_bob=$(ssh_as bob 'ls -A /tmp /dev/shm | tr "\n" " "; echo; ipcs -m | grep -c "^0x"; ipcs -q | grep -c "^0x"; ps -e -o user= | sort -u | tr "\n" " "')
# Every process in a set runs as its user, the holder included: the set's
# user namespace belongs to the user (the kernel charges the user for it).
check_eq "bob sees only his own /tmp and /dev/shm files, 1 shm segment, 0 queues, only his processes" \
    "/dev/shm: b-shm  /tmp: b-file |1|0|bob |" "$(printf '%s\n' "$view_bob" | tr '\n' '|')"
view_alice=$(ssh_as alice 'ls -A /tmp /dev/shm | tr "\n" " "; echo; ps -e -o user= | sort -u | tr "\n" " "')
check_eq "alice does not see bob's files or processes" "/dev/shm: a-shm  /tmp: a-file |alice |" \
    "$(printf '%s\n' "$view_alice" | tr '\n' '|')"
check_eq "share=user: alice's second login sees her first login's sleep" 1 "$(ssh_as alice 'ps -e -o comm= | grep -c "^sleep$"')"
check_eq "carol (exempt) is in the host namespaces" "$(host_ns user)$(host_ns pid)$(host_ns mnt)" \
    "$(ssh_as carol 'readlink /proc/self/ns/user /proc/self/ns/pid /proc/self/ns/mnt' | tr -d '\n')"
check "carol (exempt) sees alice's processes on the host" sh -c "ssh_out=\$(ssh ${SSH_OPTS[*]} carol@127.0.0.1 'ps -u alice -o comm='); echo \"\$ssh_out\" | grep -q sleep"
check "syslog: carol's login was logged as exempt" log_has "user=carol service=sshd policy=admins action=exempt"
wait $apid $bpid

# ---- on_logout = kill ----------------------------------------------------------------------
check "after alice's last logout her set is gone from the registry" \
    wait_for sh -c "! nsjail-helper list | grep -q alice && test ! -e /run/pam_nsjail/sets/u$uid_alice"
check_eq "after alice's last logout no process of hers remains" 0 "$(pgrep -u alice -c)"
check "syslog: the set was ended at logout" log_has "user=alice .*action=closed set=u$uid_alice set_ended=yes"
check "no holder is left" sh -c '! pgrep -x nsjail-holder'

# ---- share = session; on_logout = linger ---------------------------------------------------
set_policy "$(test_policy | sed 's/share = "user"/share = "session"/')"
ssh_as alice 'readlink /proc/self/ns/pid >~/first-ns; exec sleep 4' &
s1=$!
wait_for test -s /home/alice/first-ns
second=$(ssh_as alice 'readlink /proc/self/ns/pid; ps -e -o comm= | grep -c "^sleep$"' | tr '\n' '|')
check "share=session: a concurrent second login of alice gets a set of its own" \
    sh -c "case '$second' in pid:*) [ '\$(cat /home/alice/first-ns)' != '${second%%|*}' ] ;; *) false ;; esac"
check_eq "share=session: the second login does not see the first one's processes" 0 "$(printf '%s' "$second" | cut -d'|' -f2)"
wait $s1
rm -f /home/alice/first-ns
set_policy "$(test_policy | sed 's/on_logout = "kill"/on_logout = "linger"/')"
ssh_as alice 'setsid nohup sleep 300 >/dev/null 2>&1 </dev/null & echo started'
check "on_logout=linger: after the logout the set and its background job live on" \
    sh -c "nsjail-helper enter alice -- ps -e -o comm= | grep -qx sleep"
check_eq "on_logout=linger: the next login joins that set and sees its job" 1 "$(ssh_as alice 'ps -e -o comm= | grep -cx sleep')"
nsjail-helper stop alice >/dev/null
set_policy "$(test_policy)"

# ---- nsjail-helper stop ends the user's logins, port forwarding and all ---------------------
sleep 30 | ssh "${SSH_OPTS[@]}" -W "127.0.0.1:$SSH_PORT" alice@127.0.0.1 >/run/nsjail-test/fwd.out 2>/dev/null &
fwd=$!
wait_for test -s /run/nsjail-test/fwd.out
check "control: alice's login forwards a port (-W to sshd's own port)" grep -q SSH-2.0 /run/nsjail-test/fwd.out
wait_for sh -c "nsjail-helper list | grep -q alice"
check "stop alice says it ended her login" sh -c "nsjail-helper stop alice | grep -q '(1 logins ended)'"
check "stop alice: her ssh connection, with its forwarding, is closed" wait_for sh -c "! kill -0 $fwd 2>/dev/null"
pkill -f '^sleep 30$'

done_testing
