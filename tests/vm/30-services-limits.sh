#!/bin/bash
# Resource limits reach the other ways in (issue 18, docs/SERVICES.md): on
# the Debian 13 VM (systemd 257, cgroup v2 with controllers), under a
# policy with limits, an isolated user's cron job and su session are moved
# into her set's scope in her limited slice before anything of hers runs;
# without limits a job stays in cron.service (tests/systemd/40-services.sh)
# and would escape them. cron is not in the VM image: its binary, unit and
# PAM stack come from the cached Debian 13 root (the same trixie
# packages). alice (a login open) and bob (none) are students; carol,
# exempt, is the control. One cron round: at most ~70 s of waiting. Also
# a real console login (agetty on a serial line): alice refused with the
# reason, carol (exempt) gets her shell.
source "$(dirname "$0")/common.sh"
source "$REPO/tests/lib/debian13.sh"

if [ "$(id -u)" != 0 ]; then
    echo "not ok 1 - must run as root"
    exit 1
fi
trap 'for p in "${HELD[@]}"; do kill "$p" 2>/dev/null; done; vm_teardown' EXIT
POLICY='[[policy]]
name = "students"
groups = ["students"]
memory_max = "64M"
tasks_max = 40'
if ! root=$(debian13_root) || ! vm_boot_with_build "$POLICY"; then
    not_ok "boot the Debian 13 VM with this build" "$(tail -5 "$VM_DIR/console.log" 2>/dev/null)"
    done_testing
    exit 1
fi
ok "Debian 13 VM up ($(vm_ssh 'systemctl --version | head -1; uname -r' | tr '\n' ' '))"

# cron as its package installs it, and the install docs' line.
vm_ssh 'cat >/usr/sbin/cron && chmod 755 /usr/sbin/cron' <"$root/usr/sbin/cron"
vm_ssh 'cat >/usr/lib/systemd/system/cron.service' <"$root/usr/lib/systemd/system/cron.service"
vm_ssh 'cat >/etc/pam.d/cron && echo "@include nsjail" >>/etc/pam.d/cron' <"$root/etc/pam.d/cron"
vm_ssh 'set -e
    grep -q "^@include nsjail" /etc/pam.d/su || echo "@include nsjail" >>/etc/pam.d/su
    groupadd -r crontab
    install -d -m 1730 -o root -g crontab /var/spool/cron/crontabs
    useradd -m -s /bin/bash carol
    systemctl daemon-reload
    systemctl start cron'
check "cron.service runs (the trixie binary from the Debian 13 root)" vm_ssh 'systemctl is-active -q cron'
uid_alice=$(vm_ssh id -u alice)
uid_bob=$(vm_ssh id -u bob)
# scope_re UID: the cgroup of a set's scope in UID's limited slice.
scope_re() { echo "^/user.slice/user-$1.slice/user-$1-nsjail.slice/nsjail-$1-[0-9]+\.scope\$"; }
# cg_of PATTERN: the cgroup of the process matching PATTERN (pgrep -fx)
# and of its parent, as the VM's root sees them.
cg_of() {
    vm_ssh "p=\$(pgrep -fx '$1'); [ -n \"\$p\" ] && cut -d: -f3 /proc/\$p/cgroup && cut -d: -f3 /proc/\$(ps -o ppid= -p \$p | tr -d ' ')/cgroup"
}

hold alice 3001 || not_ok "alice's held login started"
holder_cg=$(vm_ssh "cut -d: -f3 /proc/\$(nsjail-helper list | awk '\$2 == \"alice\" { print \$4 }')/cgroup")
check "alice's set is in a scope of her limited slice" grep -Eq "$(scope_re "$uid_alice")" <<<"$holder_cg"

# ---- su from root's login: the shell and its relay move into her set's scope ------------------
vm_ssh "su alice -c 'exec sleep 3101' >/dev/null 2>&1 &"
vm_wait "pgrep -fx 'sleep 3101'"
cg=$(cg_of 'sleep 3101')
echo "# su alice: the command's and its relay's cgroups: $(echo "$cg" | tr '\n' ' ')"
check_eq "su alice: the command and su's relay sit in her set's scope, under her limits" \
    "$holder_cg $holder_cg" "$(echo "$cg" | tr '\n' ' ' | sed 's/ $//')"
vm_ssh "pkill -fx 'sleep 3101'"

# ---- cron: alice (her login open), bob (none), carol (exempt) ------------------------------------
next_minute() {
    local now t
    now=$(vm_ssh date +%s)
    t=$((now - now % 60 + 60))
    [ $((t - now)) -lt 10 ] && t=$((t + 60))
    vm_ssh "date -d @$t +'%-M %-H'"
}
# Each job sleeps until the test has read its cgroups and kills it: short
# sleeps raced the reads (the emulated VM answers an ssh in ~0.3 s).
jobs=(alice:3209 bob:3207 carol:3205)
read -r m h < <(next_minute)
for u in "${jobs[@]}"; do
    vm_ssh "f=/var/spool/cron/crontabs/${u%:*}
        echo '$m $h * * * cat /proc/self/cgroup >\$HOME/p; mv \$HOME/p \$HOME/cron.out; exec sleep ${u#*:}' >\$f
        chown ${u%:*}:crontab \$f && chmod 600 \$f && touch /var/spool/cron/crontabs"
done
declare -A CG
for u in "${jobs[@]}"; do
    WAIT_TRIES=600 wait_for vm_ssh "pgrep -fx 'sleep ${u#*:}'" ||
        echo "# ${u%:*}'s job did not start"
done
for u in "${jobs[@]}"; do
    CG[${u%:*}]=$(cg_of "sleep ${u#*:}" | tr '\n' ' ' | sed 's/ $//')
done
vm_ssh "pkill -x -f 'sleep (3209|3207|3205)'"
cg_alice=${CG[alice]} cg_bob=${CG[bob]} cg_carol=${CG[carol]}
echo "# cron jobs (the job, its relay): alice: $cg_alice; bob: $cg_bob; carol: $cg_carol"
check_eq "cron, alice (login open): the job and its relay sit in her set's scope, under her limits" \
    "$holder_cg $holder_cg" "$cg_alice"
check_eq "cron, alice: inside, her cgroup namespace shows that scope as the root" "0::/" "$(vm_ssh cat /home/alice/cron.out)"
check "cron, bob (no login open): the job and its relay sit in the scope of the set it created, under his limits" \
    sh -c 'set -- $1; [ "$1" = "$2" ] && printf "%s\n" "$1" | grep -Eq "$3"' _ "$cg_bob" "$(scope_re "$uid_bob")"
check "cron, bob: the set is made with limits (one 'isolated' line naming cron and its scope)" \
    vm_ssh "journalctl -q --no-pager -o cat | grep -Eq '^pam_nsjail\(cron:session\): user=bob service=cron policy=students action=isolated set=u$uid_bob holder=[0-9]+ unit=nsjail-$uid_bob-[0-9]+\.scope'"
check_eq "control: carol's (exempt) job stays in cron.service" \
    "/system.slice/cron.service /system.slice/cron.service" "$cg_carol"
check "cron, bob: the set ends with the job, and with it the scope" \
    vm_wait "! nsjail-helper list | grep -q ' bob ' && ! pgrep -u bob && ! systemctl list-units --no-legend 'nsjail-$uid_bob-*' | grep -q ."
# ---- login on a serial console: agetty and login on the VM's second serial port ---------------
# (a unix socket here, driven by tests/lib/serialdrive.py as a person would).
vm_ssh 'set -e
    grep -q "^@include nsjail" /etc/pam.d/login || echo "@include nsjail" >>/etc/pam.d/login
    echo alice:console-pw-a | chpasswd
    echo carol:console-pw-c | chpasswd
    systemctl start serial-getty@ttyS1'
probe='echo "pidns=$(readlink /proc/self/ns/pid) tty=$(tty)"; exit'
serial_login() { python3 "$REPO/tests/lib/serialdrive.py" "$VM_DIR/ttyS1.sock" "$1" "$2" "$probe"; }
out=$(serial_login carol console-pw-c)
printf '%s\n' "$out" | grep -v '^$' | tail -8 | sed 's/^/# carol on ttyS1: /'
check_eq "control: carol (exempt) logs in on the serial console, in the VM's own namespaces" \
    "$(vm_ssh readlink /proc/1/ns/pid) /dev/ttyS1" \
    "$(sed -n 's/^pidns=\(pid:\[[0-9]*\]\) tty=\(.*\)$/\1 \2/p' <<<"$out" | head -1)"
out=$(serial_login alice console-pw-a)
printf '%s\n' "$out" | grep -v '^$' | tail -5 | sed 's/^/# alice on ttyS1: /'
check "serial console: alice's login is refused after her password, no shell" \
    grep -q '^\[serialdrive.py: login prompt again after the password, no shell\]$' <<<"$out"
line=$(vm_ssh "journalctl -q --no-pager -o cat | grep -E '^pam_nsjail\(login:session\): user=alice ' | tail -1")
echo "# $line"
check "serial console: the journal names login and why" \
    grep -q 'service=login policy=students action=refused set=- error="login cannot run a session inside a namespace set' <<<"$line"
check "serial console: nothing of alice's on ttyS1, no set of hers beyond her ssh login's" \
    vm_wait "! pgrep -u alice -t ttyS1 && [ \$(nsjail-helper list | grep -c ' alice ') = 1 ]"
release 3001
check "after her logout: no set, no process of alice" vm_wait "! pgrep -u alice && [ -z \"\$(nsjail-helper list | tail -n +2)\" ]"
done_testing
