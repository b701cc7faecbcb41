#!/bin/bash
# The README's first command:  sudo bash tests/demo.sh
#
# On a fresh Debian machine: installs what it needs, builds pam_nsjail,
# starts a throwaway sshd on 127.0.0.1 inside a private sandbox (the host's
# /etc, users and /run are left exactly as they are) with demo users
# alice and bob (group students, isolated) and carol (group admins,
# exempt) under the example policy config/pam_nsjail.toml, logs alice and
# bob in over ssh at the same time and shows what each session sees next
# to what the host sees. Then everything is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${NSJAIL_SANDBOX:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo bash tests/demo.sh)" >&2; exit 1; }
    need=()
    for pkg in openssh-server openssh-client pamtester libpam0g-dev pkg-config python3 procps util-linux; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    echo "== building (cargo build --release --locked)"
    cargo build --release --locked --quiet
fi

source tests/lib/sandbox.sh
sandbox_enter "$@"
set_policy "$(cat config/pam_nsjail.toml)"

probe='echo "user:   $(id -un) (uid $(id -u))"
for n in user pid mnt ipc; do echo "ns $n: $(readlink /proc/self/ns/$n | tr -dc 0-9)"; done
echo "uid_map:"; tr -s " " </proc/self/uid_map | sed "s/^ */  /"
echo "processes ($(ps -e --no-headers | wc -l)):"; ps -e -o pid=,user=,comm= | sed "s/^ */  /" | head -8
echo "/tmp:    $(ls -A /tmp | tr "\n" " ")"
echo "/dev/shm: $(ls -A /dev/shm | tr "\n" " ")"
echo "SysV shm segments: $(ipcs -m | grep -c "^0x"), queues: $(ipcs -q | grep -c "^0x")"'

echo
echo "== policy (config/pam_nsjail.toml): $(nsjail-helper check)"
echo "== logging alice and bob in over ssh at the same time"
# Each user leaves something behind in their session first.
ssh_as alice 'echo secret >/tmp/alice-notes; echo x >/dev/shm/alice-shm; ipcmk -M 4096 >/dev/null; exec sleep 6' &
a=$!
ssh_as bob 'echo secret >/tmp/bob-notes; ipcmk -Q >/dev/null; exec sleep 6' &
b=$!
wait_for nsjail-helper enter alice -- test -e /dev/shm/alice-shm
wait_for nsjail-helper enter bob -- test -e /tmp/bob-notes
ssh_as alice "$probe" >/run/nsjail-test/alice.txt
ssh_as bob "$probe" >/run/nsjail-test/bob.txt
sh -c "$probe" >/run/nsjail-test/host.txt
ssh_as carol 'echo "carol (exempt): user ns $(readlink /proc/self/ns/user | tr -dc 0-9), sees $(ps -e --no-headers | wc -l) processes"' \
    >/run/nsjail-test/carol.txt

echo
python3 - /run/nsjail-test/alice.txt /run/nsjail-test/bob.txt /run/nsjail-test/host.txt <<'EOF'
import sys
cols = [open(p).read().splitlines() for p in sys.argv[1:]]
heads = ["alice's ssh session", "bob's ssh session", "the host (root)"]
w = 36
print("".join(h.ljust(w) for h in heads))
print("".join(("-" * (w - 2)).ljust(w) for _ in heads))
for i in range(max(map(len, cols))):
    print("".join((c[i] if i < len(c) else "")[: w - 2].ljust(w) for c in cols).rstrip())
EOF
echo
cat /run/nsjail-test/carol.txt
echo
echo "== nsjail-helper list"
nsjail-helper list
echo
echo "== what the admin sees in syslog (authpriv)"
grep -o 'pam_nsjail(sshd:session): .*' "$SB_LOG" | sed 's/^/  /' | head -8
wait $a $b
echo
wait_for sh -c '[ "$(nsjail-helper list | tail -n +2 | wc -l)" = 0 ]' || true
echo "== after both logouts (on_logout = \"kill\"): $(nsjail-helper list | tail -n +2 | wc -l) live sets, $(pgrep -c -x nsjail-holder) holders"
echo "== tearing down the sandbox: the host's /etc, users, /tmp and /run were never touched"
