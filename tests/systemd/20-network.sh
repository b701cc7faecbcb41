#!/bin/bash
# network = "private" on a systemd host: Debian 13 booted with systemd 257
# under systemd-nspawn (its own network namespace, so its ruleset and
# ip_forward are the container's). The "outside" test host is a network
# namespace inside the container on documentation addresses; a stub
# resolver on the container's 127.0.0.53 stands in for systemd-resolved.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
source "$REPO/tests/lib/sandbox.sh"
source "$REPO/tests/lib/debian13.sh"
source "$REPO/tests/lib/booted.sh"

booted_begin
OUT=192.0.2.2
C sh -c 'cat >/usr/local/bin/nettool && chmod 755 /usr/local/bin/nettool' <"$REPO/tests/lib/nettool.py"
source "$REPO/tests/lib/netlab.sh"
netlab_outside C
C sh -ec "
    echo 'nameserver 127.0.0.53' >/etc/resolv.conf
    printf '[network]\npool = \"198.51.100.0/24\"\n\n[[policy]]\nname = \"admins\"\ngroups = [\"admins\"]\nisolate = false\n\n[[policy]]\nname = \"students\"\ngroups = [\"students\"]\nnetwork = \"private\"\n' >/etc/security/pam_nsjail.toml"
# Servers of the lab, as transient services of the container's systemd.
C systemd-run -q --unit=lab-out -p NetworkNamespacePath=/run/netns/outside nettool serve $OUT 81 "outside banner"
C systemd-run -q --unit=lab-dns -p NetworkNamespacePath=/run/netns/outside nettool dns $OUT test-host.example=$OUT
C systemd-run -q --unit=lab-stub nettool dns-forward 127.0.0.53 $OUT
C systemd-run -q --unit=lab-db nettool serve 127.0.0.1 5432 "host loopback db"
wait_for C sh -c "nettool resolve test-host.example | grep -qx $OUT"
fwd_before=$(C cat /proc/sys/net/ipv4/ip_forward)

check "check accepts the private-network policy" C nsjail-helper check
C setsid sh -c "exec ssh ${KEY[*]} alice@127.0.0.1 'exec nettool serve 127.0.0.1 8888 alice-server' </dev/null >/dev/null 2>&1" &
wait_for ssh_in alice 'nettool connect 127.0.0.1 8888 | grep -q alice-server'
check_eq "control: alice's other login reaches her 127.0.0.1:8888" "connected: alice-server" "$(ssh_in alice nettool connect 127.0.0.1 8888)"
case "$(ssh_in bob nettool connect 127.0.0.1 8888)" in failed:*) ok "bob's login cannot reach alice's 127.0.0.1:8888" ;;
*) not_ok "bob's login cannot reach alice's 127.0.0.1:8888" ;; esac
case "$(C nettool connect 127.0.0.1 8888)" in failed:*) ok "the host cannot reach alice's 127.0.0.1:8888" ;;
*) not_ok "the host cannot reach alice's 127.0.0.1:8888" ;; esac
C setsid sh -c "exec ssh ${KEY[*]} -o ExitOnForwardFailure=yes -N -L 9000:localhost:8888 alice@127.0.0.1 </dev/null >/dev/null 2>&1" &
wait_for C sh -c "nettool connect 127.0.0.1 9000 | grep -q alice"
check_eq "ssh -L 9000:localhost:8888 as alice reaches her server" "connected: alice-server" "$(C nettool connect 127.0.0.1 9000)"
check_eq "alice resolves test-host.example through the host's 127.0.0.53" "$OUT" "$(ssh_in alice nettool resolve test-host.example)"
check_eq "alice reaches the test host by name" "connected: outside banner" "$(ssh_in alice nettool connect test-host.example 81)"
case "$(ssh_in alice nettool connect 127.0.0.1 5432)" in failed:*) ok "alice cannot reach the host's loopback-only db" ;;
*) not_ok "alice cannot reach the host's loopback-only db" ;; esac
check_eq "control: the host reaches its loopback-only db" "connected: host loopback db" "$(C nettool connect 127.0.0.1 5432)"
check "journal: the decision line names the set's address" \
    sh -c "nsenter -t $BOOT_INIT -a journalctl -q --no-pager -o cat -b | grep -Eq 'user=alice .*action=isolated .*addr=198\.51\.100\.[0-9]+ link=nsj[0-9]+ unit=nsjail-'"
check "the host table is loaded while the set lives" C nft list table inet pam_nsjail
C pkill -f "^ssh .*alice@127.0.0.1" 
nothing_left() {
    ! C ip -o link show | grep -q nsj &&
        ! C nft list tables | grep -q pam_nsjail &&
        [ "$(C cat /proc/sys/net/ipv4/ip_forward)" = "$fwd_before" ] &&
        [ -z "$(C ls /run/pam_nsjail/sets)" ]
}
check "after alice's logouts: no link, table, forwarding or set left" wait_for nothing_left
C systemctl stop lab-out lab-dns lab-stub lab-db
done_testing
