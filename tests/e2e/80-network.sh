#!/bin/bash
# network = "private": each set has its own loopback and an address from
# the pool, reaches the "outside" test host (another network namespace on
# documentation addresses) and the sandbox's loopback resolver, and
# nothing of other users or of the host. Every isolation check has its
# control. The sandbox has a network namespace of its own, so its
# nftables ruleset and ip_forward are not the machine's.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

install -m755 "$REPO/tests/lib/nettool.py" /usr/local/bin/nettool
POOL=198.51.100.0/24
GW=198.51.100.1
OUT=192.0.2.2
pids=()
lab=()
bg() { "$@" >/dev/null 2>&1 & pids+=($!); }
# lab: a server of the test lab, stopped only at the end.
labd() { "$@" >/dev/null 2>&1 & lab+=($!); }

# The outside test host: HTTP on :80, a banner on :81, DNS for test-host.example.
source "$REPO/tests/lib/netlab.sh"
netlab_outside
mkdir -p /run/nsjail-test/www
echo "hello from test-host" >/run/nsjail-test/www/index.html
labd ip netns exec outside python3 -m http.server --bind $OUT --directory /run/nsjail-test/www 80
labd ip netns exec outside nettool serve $OUT 81 "outside banner"
labd ip netns exec outside nettool dns $OUT test-host.example=$OUT
# The sandbox host's own services: a stub resolver on its loopback (as
# systemd-resolved would be), a loopback-only "database", a service on
# every address.
labd nettool dns-forward 127.0.0.53 $OUT
labd nettool serve 127.0.0.1 5432 "host loopback db"
labd nettool serve 0.0.0.0 5433 "host service"
echo "nameserver 127.0.0.53" >/etc/resolv.conf
wait_for sh -c "nettool connect $OUT 81 | grep -q banner"
wait_for sh -c "nettool resolve test-host.example | grep -qx $OUT"
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)

private_policy() {
    cat <<EOF2
[network]
pool = "$POOL"

[[policy]]
name = "admins"
groups = ["admins"]
isolate = false

[[policy]]
name = "students"
groups = ["students"]
network = "$1"
EOF2
}
set_policy "$(private_policy private)"
run_as() { local u=$1; shift; nsjail-helper run "$u" -- "$@"; }
lease_of() { sed -n 's/^lease=//p' "/run/pam_nsjail/sets/u$(id -u "$1")" 2>/dev/null; }
addr_of() { lease_of "$1" | cut -d, -f1; }
holder_of() { sed -n 's/^holder=\([0-9]*\):.*/\1/p' "/run/pam_nsjail/sets/u$(id -u "$1")"; }

check "check accepts the private-network policy" nsjail-helper check
log_clear
bg nsjail-helper run alice -- nettool serve 127.0.0.1 8888 "alice's server"
alice_run=${pids[-1]}
wait_for sh -c "nsjail-helper run alice -- nettool connect 127.0.0.1 8888 | grep -q alice"
A=$(addr_of alice)
case "$A" in 198.51.100.*) ok "alice's set has an address from the pool ($A)" ;;
*) not_ok "alice's set has an address from the pool" "lease: $(lease_of alice)" ;; esac
check "the decision log line names the set's address" log_has "user=alice .*action=isolated .*addr=$A link=nsj"

# ---- localhost is her own ----------------------------------------------------
check_eq "control: alice reaches her own 127.0.0.1:8888" "connected: alice's server" "$(run_as alice nettool connect 127.0.0.1 8888)"
case "$(run_as bob nettool connect 127.0.0.1 8888)" in failed:*) ok "bob in his set cannot reach alice's 127.0.0.1:8888" ;;
*) not_ok "bob in his set cannot reach alice's 127.0.0.1:8888" ;; esac
case "$(nettool connect 127.0.0.1 8888)" in failed:*) ok "the host (exempt carol) cannot reach alice's 127.0.0.1:8888" ;;
*) not_ok "the host cannot reach alice's 127.0.0.1:8888" ;; esac

# ---- ssh forwarding lands in the set -----------------------------------------
ssh "${SSH_OPTS[@]}" -o ExitOnForwardFailure=yes -N -L 9000:localhost:8888 alice@127.0.0.1 &
pids+=($!)
ssh "${SSH_OPTS[@]}" -o ExitOnForwardFailure=yes -N -L 9001:localhost:8888 bob@127.0.0.1 &
pids+=($!)
ssh "${SSH_OPTS[@]}" -o ExitOnForwardFailure=yes -N -R 7070:127.0.0.1:5432 alice@127.0.0.1 &
pids+=($!)
wait_for sh -c "nettool connect 127.0.0.1 9000 | grep -q alice"
check_eq "ssh -L 9000:localhost:8888 as alice reaches her server" "connected: alice's server" "$(nettool connect 127.0.0.1 9000)"
wait_for sh -c "nettool connect 127.0.0.1 9001 | grep -q connected"
case "$(nettool connect 127.0.0.1 9001)" in *alice*) not_ok "bob's ssh -L to localhost:8888 reaches nothing of alice's" ;;
*) ok "bob's ssh -L to localhost:8888 reaches nothing of alice's" ;; esac
wait_for sh -c "nsjail-helper run alice -- nettool connect 127.0.0.1 7070 | grep -q 'host loopback db'"
check_eq "ssh -R 7070 as alice listens in her set" "connected: host loopback db" "$(run_as alice nettool connect 127.0.0.1 7070)"
case "$(nettool connect 127.0.0.1 7070)" in failed:*) ok "ssh -R 7070 does not listen on the host's loopback" ;;
*) not_ok "ssh -R 7070 does not listen on the host's loopback" ;; esac
case "$(run_as bob nettool connect 127.0.0.1 7070)" in failed:*) ok "ssh -R 7070 of alice is not in bob's set" ;;
*) not_ok "ssh -R 7070 of alice is not in bob's set" ;; esac

check_eq "ssh -W localhost:8888 as alice goes through her set's network" "alice's server" "$(sleep 2 | timeout 10 ssh "${SSH_OPTS[@]}" -W localhost:8888 alice@127.0.0.1 2>/dev/null | head -1)"

# ---- outbound, and DNS through the host's loopback resolver -------------------
check_eq "alice fetches http://test-host.example/ by name" "hello from test-host" "$(run_as alice nettool fetch http://test-host.example/)"
check_eq "alice fetches http://$OUT/ by address" "hello from test-host" "$(run_as alice nettool fetch http://$OUT/)"
check_eq "alice resolves test-host.example through 127.0.0.53" "$OUT" "$(run_as alice nettool resolve test-host.example)"

# ---- what a set cannot reach ---------------------------------------------------
check_eq "control: the host reaches its loopback-only db" "connected: host loopback db" "$(nettool connect 127.0.0.1 5432)"
case "$(run_as alice nettool connect 127.0.0.1 5432)" in failed:*) ok "alice cannot reach the host's loopback-only db" ;;
*) not_ok "alice cannot reach the host's loopback-only db" ;; esac
check_eq "control: the host's service on all addresses answers on 192.0.2.1" "connected: host service" "$(nettool connect 192.0.2.1 5433)"
case "$(run_as alice nettool connect 192.0.2.1 5433)" in failed:*) ok "alice cannot reach the host's own address 192.0.2.1:5433" ;;
*) not_ok "alice cannot reach the host's own address 192.0.2.1:5433" ;; esac
case "$(run_as alice nettool connect $GW 5433)" in failed:*) ok "alice cannot reach the host through the gateway $GW:5433" ;;
*) not_ok "alice cannot reach the host through the gateway" ;; esac
bg nsjail-helper run bob -- nettool serve 0.0.0.0 8889 "bob's server"
wait_for sh -c "nsjail-helper run bob -- nettool connect 127.0.0.1 8889 | grep -q bob"
B=$(addr_of bob)
check_ne "bob's set has an address of its own" "$A" "$B"
check_eq "control: bob reaches his server on his address $B" "connected: bob's server" "$(run_as bob nettool connect "$B" 8889)"
case "$(run_as alice nettool connect "$B" 8889)" in failed:*) ok "alice cannot reach bob's set address" ;;
*) not_ok "alice cannot reach bob's set address" ;; esac
case "$(nettool connect "$B" 8889)" in failed:*) ok "the host cannot open connections into bob's set" ;;
*) not_ok "the host cannot open connections into bob's set" ;; esac
# Spoofing: even root changing the set's addresses (a user cannot: the
# network namespace is the host's) gets nothing out with another source.
hns=/proc/$(holder_of alice)/ns/net
nsenter --net="$hns" ip addr add 198.51.100.250/32 dev eth0
nsenter --net="$hns" ip addr add "$B/32" dev eth0
check_eq "control: alice's own address gets out" "connected: outside banner" "$(nsenter --net="$hns" nettool connect $OUT 81 "$A")"
case "$(nsenter --net="$hns" nettool connect $OUT 81 198.51.100.250)" in failed:*) ok "a spoofed pool address is dropped" ;;
*) not_ok "a spoofed pool address is dropped" ;; esac
case "$(nsenter --net="$hns" nettool connect $OUT 81 "$B")" in failed:*) ok "bob's address as source from alice's set is dropped" ;;
*) not_ok "bob's address as source from alice's set is dropped" ;; esac
nsenter --net="$hns" ip addr del 198.51.100.250/32 dev eth0
nsenter --net="$hns" ip addr del "$B/32" dev eth0

# ---- abstract unix sockets ---------------------------------------------------
bg nsjail-helper run bob -- nettool serve-abstract bobsock "bob's abstract"
wait_for sh -c "nsjail-helper run bob -- nettool connect-abstract bobsock | grep -q bob"
check_eq "control: bob reaches his abstract socket" "connected: bob's abstract" "$(run_as bob nettool connect-abstract bobsock)"
case "$(run_as alice nettool connect-abstract bobsock)" in failed:*) ok "alice cannot reach bob's abstract unix socket" ;;
*) not_ok "alice cannot reach bob's abstract unix socket" ;; esac

# ---- the host while sets are live -------------------------------------------------
check "the host has table inet pam_nsjail while sets are live" nft list table inet pam_nsjail
check_eq "ip_forward is on while private sets are live" 1 "$(cat /proc/sys/net/ipv4/ip_forward)"
nft list table inet pam_nsjail >/run/nsjail-test/table.live
ip -o link show | grep -o 'nsj[0-9]*' >/run/nsjail-test/links.live
explain=$(nsjail-helper explain alice)
case "$explain" in *"$A"*) ok "explain alice shows her set's address" ;;
*) not_ok "explain alice shows her set's address" "$explain" ;; esac

check "check notes how DNS and forwarding are handled" sh -c 'nsjail-helper check 2>&1 | grep -q "ip_forward is on because pam_nsjail turned it on" && nsjail-helper check 2>&1 | grep -q "loopback (127.0.0.53)"'
printf 'table inet admfw {\n\tchain filter_fw {\n\t\ttype filter hook forward priority 0; policy drop;\n\t}\n}\n' | nft -f -
check "check reports a host firewall that drops forwarded traffic" sh -c 'nsjail-helper check 2>&1 | grep -q "table inet admfw chain filter_fw drops forwarded traffic"'
check "audit reports it too" sh -c 'nsjail-helper audit 2>&1 | grep -q "warning: network: .*table inet admfw chain filter_fw"'
nft delete table inet admfw

for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
pids=()
check "the closing line of alice's ssh login names her address" wait_for log_has "user=alice service=sshd .*action=closed .*addr=$A link=nsj"
nsjail-helper stop alice >/dev/null
nsjail-helper stop bob >/dev/null
wait_for sh -c '! ip -o link show | grep -q nsj'
check_eq "after stop: no nsj link is left" "" "$(ip -o link show | grep -o 'nsj[0-9]*')"
check_eq "after stop: no conntrack entry of the pool is left" 0 "$(conntrack -L 2>/dev/null | grep -c 198.51.100.)"
case "$(nft list tables)" in *pam_nsjail*) not_ok "after the last set: table inet pam_nsjail is removed" ;;
*) ok "after the last set: table inet pam_nsjail is removed" ;; esac
check_eq "after the last set: ip_forward is back to $fwd_before" "$fwd_before" "$(cat /proc/sys/net/ipv4/ip_forward)"

left_over() {
    echo "# links: $(ip -o link show | grep -o 'nsj[0-9]*' | tr '\n' ' ')"
    echo "# tables: $(nft list tables | tr '\n' ' ') forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "# conntrack: $(conntrack -L 2>/dev/null | grep 198.51.100. | head -3)"
}
# wait_long CMD...: retries CMD for up to 15 s (the kernel frees network
# namespaces in batches: after many sets ended, a link can take seconds).
wait_long() { WAIT_TRIES=300 wait_for "$@"; }
# nothing_left: no link, address, route, rule, conntrack entry or
# forwarding of private networks on the host.
nothing_left() {
    ! ip -o link show | grep -q nsj &&
        ! ip -4 -o addr show | grep -q 198.51.100. &&
        ! ip route show | grep -q 198.51.100. &&
        ! nft list tables | grep -q pam_nsjail &&
        [ "$(conntrack -L 2>/dev/null | grep -c 198.51.100.)" = 0 ] &&
        [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$fwd_before" ]
}

# ---- 20 users x 5 logins at once, then all gone -----------------------------------
users=""
for i in $(seq -w 1 20); do
    useradd -m -s /bin/bash -G students "n$i"
    grep -q "^n$i:" /etc/subuid || usermod --add-subuids $((400000 + 10#$i * 65536))-$((400000 + 10#$i * 65536 + 65535)) "n$i"
    users="$users $(repeat_word 5 "n$i")"
done
runs_in_parallel net "$users" "nettool fetch http://$OUT/"
check_eq "20 users x 5 logins at once: every login fetched from the test host" 100 "$(grep -l 'hello from test-host' /run/nsjail-test/net.* | wc -l)"
wait_long nothing_left || left_over
check "20 users x 5 logins, all logged out: no link, address, route, rule, conntrack entry or forwarding left" nothing_left

# ---- a helper killed half-way leaves nothing behind (failpoints build) ----------------
fp=$REPO/target/failpoints/release/nsjail-helper
if [ -x "$fp" ]; then
    install -m755 "$fp" /run/nsjail-test/nsjail-helper-fp
    for step in h0-net-after-link h0-after-mounts h0-after-fork; do
        NSJAIL_FAILPOINT=$step /run/nsjail-test/nsjail-helper-fp run alice -- true >/dev/null 2>&1
        check "helper killed at $step: nothing of the network is left" wait_long nothing_left
    done
else
    not_ok "failpoints build missing: cargo build --release --features nsjail-helper/failpoints -p nsjail-helper --target-dir target/failpoints"
fi

# ---- X11 forwarding: the listener and DISPLAY are the set's -----------------------
if command -v xauth >/dev/null; then
    # sshd_start writes its config anew: restart with X11 forwarding added.
    sshd_stop
    wait_for sh -c '! pgrep -x sshd'
    printf 'X11Forwarding yes\nX11UseLocalhost yes\n' >>/run/nsjail-test/sshd_config
    /usr/sbin/sshd -f /run/nsjail-test/sshd_config -E /run/nsjail-test/sshd.log
    wait_for test -s /run/nsjail-test/sshd.pid
    mkdir -p /tmp/.X11-unix
    python3 -c 'import socket,os; s=socket.socket(socket.AF_UNIX); s.bind("/tmp/.X11-unix/X55"); s.listen(4)
while True:
    c,_=s.accept(); open("/run/nsjail-test/x11-hit","w").write("hit"); c.close()' >/dev/null 2>&1 &
    lab+=($!)
    x11=$(DISPLAY=:55 timeout 30 ssh "${SSH_OPTS[@]}" -X alice@127.0.0.1 'echo "display=$DISPLAY"; python3 -c "import socket,os; n=int(os.environ[\"DISPLAY\"].split(\":\")[1].split(\".\")[0]); socket.create_connection((\"127.0.0.1\", 6000+n)).send(b\"l\"); print(\"port\", 6000+n)"; sleep 0.5' 2>/dev/null)
    case "$x11" in *"display=localhost:"*"port 60"*) ok "ssh -X: DISPLAY=localhost:N and the set's own localhost:60NN is sshd's X11 listener" ;;
    *) not_ok "ssh -X: DISPLAY and the X11 listener in the set agree" "$x11" ;; esac
    check "ssh -X: a connection to the set's display reaches the client's X server" wait_for test -e /run/nsjail-test/x11-hit
else
    not_ok "xauth is missing (apt-get install xauth): X11 forwarding not tested"
fi

# ---- a killed holder: its link goes with it; the next action removes the rest -----
bg nsjail-helper run alice -- sleep 30
wait_for sh -c "ip -o link show | grep -q nsj && grep -q '^lease=' /run/pam_nsjail/sets/u$(id -u alice)"
kill -9 "$(holder_of alice)"
check "holder SIGKILLed: its link is gone with the set" wait_for sh -c "! ip -o link show | grep -q nsj"
wait_long nothing_left || left_over
check "holder SIGKILLed: the login's close removes the table and forwarding" nothing_left

# ---- network = "none", and its older spelling -------------------------------------
for variant in 'network = "none"' 'namespaces = ["user", "mount", "pid", "ipc", "net"]'; do
    set_policy "$(private_policy private | sed "s/^network = .*/$variant/")"
    check "check accepts $variant" nsjail-helper check
    check_eq "$variant: loopback only" "lo" "$(run_as alice python3 -c "import socket; print(' '.join(n for _, n in socket.if_nameindex()))")"
    case "$(run_as alice nettool connect $OUT 81)" in failed:*) ok "$variant: no outbound access" ;;
    *) not_ok "$variant: no outbound access" ;; esac
done
check "after the loopback-only sets: nothing of private networks was made" nothing_left

# ---- control: with network = "host" users do reach each other --------------------
set_policy "$(private_policy host)"
bg nsjail-helper run alice -- nettool serve 127.0.0.1 8890 "alice on the host network"
wait_for sh -c "nettool connect 127.0.0.1 8890 | grep -q alice"
check_eq "control (network = host): bob reaches alice's 127.0.0.1:8890" "connected: alice on the host network" "$(run_as bob nettool connect 127.0.0.1 8890)"
bg nsjail-helper run bob -- nettool serve-abstract bobhost "bob's abstract"
wait_for sh -c "nettool connect-abstract bobhost | grep -q bob"
check_eq "control (network = host): alice reaches bob's abstract socket" "connected: bob's abstract" "$(run_as alice nettool connect-abstract bobhost)"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
nsjail-helper stop alice >/dev/null 2>&1
nsjail-helper stop bob >/dev/null 2>&1
for p in "${lab[@]}"; do kill "$p" 2>/dev/null; done

done_testing
