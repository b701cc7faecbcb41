#!/bin/bash
# Every way in (issue 18, docs/SERVICES.md) on a systemd host: Debian 13
# booted with systemd 257 under systemd-nspawn, logind and pam_systemd in
# the stacks, the set with a cgroup namespace (the lab's default policy).
# With the lines `nsjail-helper audit --fix` prints applied: cron jobs, su,
# su -l, runuser -u and runuser -l of alice (isolated) run in her set;
# login and atd refuse her with the reason and leave nothing; bob (exempt) is the
# control through the same services. Also shown: where the cron job sits
# in cgroups, a job with no login open creating its set and ending it, and
# a policy with limits refusing a job here (this lab has no cgroup
# controllers). One cron round: at most ~70 s of waiting.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
source "$REPO/tests/lib/sandbox.sh"
source "$REPO/tests/lib/debian13.sh"
source "$REPO/tests/lib/booted.sh"

booted_begin

# ---- the install docs' lines, as audit prints them --------------------------------------
C nsjail-helper audit --fix | C sh -e
check "after audit --fix: nsjail-helper audit finds no problem" C nsjail-helper audit
# The lab's policy (students isolated, share = "user", on_logout = "kill",
# a cgroup namespace by default here), bob exempt by name (the control),
# erin under limits (which this lab cannot enforce).
{
    test_policy | sed '/^name = "students"/{x;s/.*/name = "control"\nusers = ["bob"]\nisolate = false\n\n[[policy]]/;G}'
    printf '\n[[policy]]\nname = "limited"\nusers = ["erin"]\nshare = "user"\non_logout = "kill"\ntasks_max = 500\n'
} | C sh -c 'cat >/etc/security/pam_nsjail.toml'
# dave: a student with no login open when his job runs.
C sh -ec 'useradd -m -s /bin/bash -G students dave; useradd -m -s /bin/bash erin'
C sh -c 'cat >/usr/local/bin/nsprobe && chmod 755 /usr/local/bin/nsprobe' <<'EOF'
#!/bin/sh
# One line per fact; cg is the cgroup as this process's cgroup namespace shows it.
echo "ns=$(for n in user mnt pid ipc net; do readlink /proc/self/ns/$n; done | tr '\n' ' ')"
echo "id=$(id -u)"
echo "tmp=$(ls -A /tmp | tr '\n' ' ')"
echo "users=$(ps -e -o user= | sort -u | tr '\n' ' ')"
echo "cg=$(sed -n 's/^0:://p' /proc/self/cgroup)"
EOF
C sh -c 'cat >/usr/local/lib/ptydrive.py' <"$REPO/tests/lib/ptydrive.py"
C sh -c 'echo "host tmp" >/tmp/host-marker'
uid_alice=$(C id -u alice)
uid_dave=$(C id -u dave)
uid_erin=$(C id -u erin)
host=$(C nsprobe | sed -n 's/^ns=//p')

field() { printf '%s\n' "$2" | sed 's/\x1b[][?0-9;]*[a-zA-Z]//g; s/\r//g' | sed -n "s/^$1=//p" | head -1; }
holder_of() { C nsjail-helper list | awk -v u="$1" '$2 == u { print $4 }'; }
set_ns() {
    local h
    h=$(holder_of "$1")
    [ -n "$h" ] || return 1
    for n in user mnt pid ipc net; do C readlink "/proc/$h/ns/$n"; done | tr '\n' ' '
}
no_set() { ! C nsjail-helper list | awk '{ print $2 }' | grep -qx "$1"; }
# in_her_set NAME OUTPUT [USERS]: alice's set's namespaces, as alice, none
# of the host's /tmp, only the processes of USERS (default alice; "nobody"
# is su's or runuser's own process, host root, unmapped in the set).
in_her_set() {
    local users=${3:-alice }
    check_eq "$1: namespaces are alice's set's" "$(set_ns alice)" "$(field ns "$2")"
    check_eq "$1: runs as alice, no host /tmp, only [$users] processes" \
        "$uid_alice||$users" "$(field id "$2")|$(field tmp "$2")|$(field users "$2")"
}
# A command as a system service runs it: no logind session of its own,
# so pam_systemd in su's, su-l's and runuser-l's stacks makes one.
unit_run() { C systemd-run --wait --pipe --quiet "$@"; }
# user_sessions USER: her logind sessions of class "user".
user_sessions() {
    C sh -c "for s in \$(loginctl list-sessions --no-legend | awk '\$3 == \"$1\" { print \$1 }'); do
        [ \"\$(loginctl show-session \$s -p Class --value)\" = user ] && echo \$s; done"
}
one_session() { [ "$(user_sessions alice | wc -l)" = 1 ]; }

# ---- login: refused for alice, nothing left; bob logs in (control) ------------------------------
out=$(C python3 /usr/local/lib/ptydrive.py - "nsprobe; exit" -- login -f alice 2>&1)
check "login -f alice on a pty: refused, nothing ran" sh -c '! printf "%s" "$1" | grep -q "^ns=" && printf "%s" "$1" | grep -q "exit status 1"' _ "$out"
check "login: the journal names the service and why" \
    journal_has "pam_nsjail\(login:session\): user=alice service=login policy=students action=refused set=- error=\"login cannot run a session inside a namespace set"
# (login's pam_systemd, before pam_nsjail's refusal, starts her user
# manager, which runs in a set of hers until logind stops it,
# UserStopDelaySec = 10 s after the session ends.)
within_20s() { WAIT_TRIES=400 wait_for "$@"; }
check "login refusal: no set, no login process, no process of alice, no logind session of hers (within 20 s)" \
    within_20s sh -c "! nsenter -t $BOOT_INIT -a nsjail-helper list | grep -q ' alice ' && ! nsenter -t $BOOT_INIT -a pgrep -x login && ! nsenter -t $BOOT_INIT -a pgrep -u alice && [ -z \"\$(nsenter -t $BOOT_INIT -a loginctl list-sessions --no-legend | awk '\$3 == \"alice\"')\" ]"
out=$(C python3 /usr/local/lib/ptydrive.py - "nsprobe; exit" -- login -f bob 2>&1)
check_eq "control: login -f bob (exempt) runs in the host's namespaces" "$host" "$(field ns "$out")"
check "control: bob's login shell sees the host's /tmp" sh -c 'printf "%s" "$1" | grep -q "^tmp=.*host-marker"' _ "$out"

# ---- atd: refused for alice with the reason, nothing left; bob's job runs (control) -------------
check "atd.service runs" C systemctl start atd
for u in alice bob; do
    C sh -c "echo '/usr/local/bin/nsprobe >/home/$u/p 2>&1; mv /home/$u/p /home/$u/at.out' |
        (cd / && setpriv --reuid $u --regid $u --init-groups at now) >/dev/null 2>&1"
done
WAIT_TRIES=400 wait_for C test -s /home/bob/at.out
out=$(C cat /home/bob/at.out 2>&1)
check_eq "control: bob's at job runs in the host's namespaces" "$host" "$(field ns "$out")"
check "atd: the journal names the service and why" \
    wait_for journal_has "^pam_nsjail\(atd:session\): user=alice service=atd policy=students action=refused set=- error=\"atd cannot run a job inside a namespace set"
check "atd: alice's job did not run, no set, no process of alice" \
    sh -c "! nsenter -t $BOOT_INIT -a test -e /home/alice/at.out && ! nsenter -t $BOOT_INIT -a nsjail-helper list | grep -q ' alice ' && ! nsenter -t $BOOT_INIT -a pgrep -u alice"
# Her job stays queued (atd would retry it): taken out, atd stopped.
C sh -c 'for j in $(atq | cut -f1); do atrm "$j"; done; systemctl stop atd'

# ---- su and runuser, with an ssh login of alice holding her set ---------------------------------
login_bg alice 3001
before=$(C pgrep -u alice | sort)
since=$(C date +%s.%N)
in_her_set "root: su alice -c" "$(unit_run su alice -c nsprobe 2>&1)" "alice nobody "
in_her_set "root: su - alice -c" "$(unit_run su - alice -c nsprobe 2>&1)" "alice nobody "
in_her_set "root: runuser -u alice --" "$(unit_run runuser -u alice -- nsprobe 2>&1)" "alice nobody "
since_rl=$(C date +%s.%N)
rl=$(unit_run runuser -l alice -c nsprobe 2>&1)
in_her_set "root: runuser -l alice -c" "$rl" "alice nobody "
for svc in su su-l runuser runuser-l; do
    check "$svc: the decision line names the service: joined to her set (no warning)" \
        journal_has "^pam_nsjail\($svc:session\): user=alice service=$svc policy=students action=joined set=u$uid_alice holder=[0-9]+$"
    check "$svc: the closing line (the set stays: her ssh login and her user manager hold it)" \
        journal_has "^pam_nsjail\($svc:session\): user=alice service=$svc policy=students action=closed set=u$uid_alice set_ended=no sessions_left=[1-9][0-9]*$"
done
# pam_systemd (su's common-session, runuser-l's own line) ran in su's
# process on the host, before pam_nsjail: logind made a session scope in
# her slice, which her cgroup namespace shows relative to her set's scope.
check "runuser -l: pam_systemd made a logind session: the command sits in its session-N.scope" \
    sh -c 'case "$1" in /../session-c*.scope) ;; *) exit 1 ;; esac' _ "$(field cg "$rl")"
echo "# cgroups (as her cgroup namespace shows them): runuser -l: $(field cg "$rl")"
echo "# runuser -l alice in the journal (pam_systemd, logind, the user manager, pam_nsjail):"
C journalctl -q --no-pager -o short-precise -b --since "@$since_rl" |
    grep -E 'runuser\[|systemd-logind|session-c[0-9]+\.scope|user@[0-9]+\.service|step=cgroup' |
    sed 's/^[A-Z][a-z]* [0-9]* //; s/ error=.*/ error=.../' | head -20 | sed 's/^/#   /'
# From root's own ssh login (how an admin runs su): pam_systemd finds
# the caller in a session and makes none.
C install -m600 /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys
out=$(C ssh "${KEY[@]}" root@127.0.0.1 'nsprobe | sed -n "s/^cg=/rootcg=/p"; su alice -c nsprobe' 2>&1)
in_her_set "root's ssh login: su alice -c" "$out" "alice nobody "
check "root's ssh login: no new logind session, the command stays in root's session scope" \
    sh -c 'case "$1" in */user-0.slice/session-c*.scope) ;; *) exit 1 ;; esac && [ "${1##*/}" = "${2##*/}" ]' _ \
    "$(field rootcg "$out")" "$(field cg "$out")"
echo "# cgroups: root's ssh login $(field rootcg "$out"); su alice -c from it (in her cgroup namespace): $(field cg "$out")"
check "after su and runuser: no su or runuser process, alice's processes are her ssh login's only" \
    wait_for sh -c "! nsenter -t $BOOT_INIT -a pgrep -x su && ! nsenter -t $BOOT_INIT -a pgrep -x runuser && [ \"\$(nsenter -t $BOOT_INIT -a pgrep -u alice | sort)\" = '$before' ]"
check "after su and runuser: logind ended their sessions (her ssh login's is the only one left)" wait_for one_session
echo "# user@$uid_alice after su, su -l and runuser -l (pam_systemd starts it): $(C systemctl is-active "user@$uid_alice.service"); pam_nsjail(systemd-user) lines: $(C journalctl -q --no-pager -o cat -b --since "@$since" | grep 'pam_nsjail(systemd-user:session): user=alice' | sed 's/ error=.*//' | sort | uniq -c)"
C journalctl -q --no-pager -o cat -b --since "@$since" | grep -E 'pam_systemd' | sort | uniq -c | sed 's/^/# /'
check_eq "control: su bob -c (exempt) runs in the host's namespaces" "$host" "$(field ns "$(unit_run su bob -c nsprobe 2>&1)")"
check_eq "control: runuser -l bob (exempt) runs in the host's namespaces" "$host" "$(field ns "$(unit_run runuser -l bob -c nsprobe 2>&1)")"

# ---- cron: one round, every job of the minute --------------------------------------------------
check "cron.service runs" C systemctl start cron
# next_minute: "MIN HOUR" of the next minute boundary at least 10 s away.
next_minute() {
    local now t
    now=$(C date +%s)
    t=$((now - now % 60 + 60))
    [ $((t - now)) -lt 10 ] && t=$((t + 60))
    C date -d "@$t" +'%-M %-H'
}
read -r m h < <(next_minute)
# (Each probe writes a file of its own and renames it: complete once seen.)
job() { printf '%s\n' "$m $h * * * /usr/local/bin/nsprobe >\$HOME/p 2>&1; mv \$HOME/p \$HOME/cron.out; exec sleep $1"; }
job 6 | C crontab -u alice -
job 3 | C crontab -u dave -
job 1 | C crontab -u erin -
job 1 | C crontab -u bob -
check "cron: no set of dave before his job" no_set dave
WAIT_TRIES=1600 wait_for C test -s /home/alice/cron.out
WAIT_TRIES=100 wait_for C pgrep -u alice -fx 'sleep 6'
job_pid=$(C pgrep -u alice -fx 'sleep 6')
job_cg=$(C cat "/proc/$job_pid/cgroup" 2>/dev/null | sed -n 's/^0:://p')
relay_cg=$(C cat "/proc/$(C ps -o ppid= -p "$job_pid" | tr -d ' ')/cgroup" 2>/dev/null | sed -n 's/^0:://p')
holder_cg=$(C cat "/proc/$(holder_of alice)/cgroup" | sed -n 's/^0:://p')
out=$(C cat /home/alice/cron.out)
in_her_set "cron job (her ssh login open)" "$out"
check_eq "cron job: its process in her set's pid namespace" "$(C readlink "/proc/$(holder_of alice)/ns/pid")" "$(C readlink "/proc/$job_pid/ns/pid")"
check_eq "cron: one decision line of alice naming cron, joined to her set (no warning)" 1 \
    "$(C journalctl -q --no-pager -o cat -b | grep -cE "^pam_nsjail\(cron:session\): user=alice service=cron policy=students action=joined set=u$uid_alice holder=[0-9]+$")"
# Where it sits: cron's per-job process forks the job; the set's scope
# (the holder's) is not where the job is. This lab's policy has no limits.
check_eq "cron job: its processes stay in cron.service's cgroup (not the set's scope $holder_cg)" \
    "/system.slice/cron.service /system.slice/cron.service" "$job_cg $relay_cg"
echo "# cgroups: the job $job_cg (in her cgroup namespace: $(field cg "$out")), its relay $relay_cg, her set's holder $holder_cg"
check "cron: the closing line once the job ended (the set stays with her login and her user manager)" \
    wait_for journal_has "^pam_nsjail\(cron:session\): user=alice service=cron policy=students action=closed set=u$uid_alice set_ended=no sessions_left=[1-9][0-9]*$"

WAIT_TRIES=200 wait_for C test -s /home/dave/cron.out
out=$(C cat /home/dave/cron.out)
check "cron, no login open: dave's job created his set (one 'isolated' line naming cron)" \
    journal_has "^pam_nsjail\(cron:session\): user=dave service=cron policy=students action=isolated set=u$uid_dave holder=[0-9]+ unit=nsjail-$uid_dave-[0-9]+\.scope$"
check "cron, no login open: the job ran as dave, in a set of its own (not the host's, not alice's), no host /tmp" \
    sh -c '[ -n "$1" ] && [ "$1" != "$2" ] && [ "$1" != "$3" ] && [ "$4" = "|dave " ]' _ "$(field ns "$out")" "$host" "$(set_ns alice)" \
    "$(field tmp "$out")|$(field users "$out")"
check "cron, no login open: the set ends with the job (on_logout = kill)" \
    wait_for journal_has "^pam_nsjail\(cron:session\): user=dave service=cron policy=students action=closed set=u$uid_dave set_ended=yes$"
check "cron, no login open: nothing of dave's set is left" wait_for sh -c "! nsenter -t $BOOT_INIT -a nsjail-helper list | grep -q ' dave ' && ! nsenter -t $BOOT_INIT -a pgrep -u dave"

check "cron, limits (not enforceable here): erin's job is refused at open_session, with the reason" \
    wait_for journal_has "^pam_nsjail\(cron:session\): user=erin service=cron policy=limited action=refused set=- step=limits error=\"resource limits \(tasks_max=500\) cannot be enforced"
check "cron, limits: erin's job did not run, no set" sh -c "! nsenter -t $BOOT_INIT -a test -e /home/erin/cron.out && ! nsenter -t $BOOT_INIT -a nsjail-helper list | grep -q ' erin '"

WAIT_TRIES=100 wait_for C test -s /home/bob/cron.out
out=$(C cat /home/bob/cron.out)
check_eq "control: bob's cron job runs in the host's namespaces" "$host" "$(field ns "$out")"
check "control: bob's cron job sees the host's /tmp and alice's processes" \
    sh -c 'printf "%s\n" "$1" | grep -q "^tmp=.*host-marker" && printf "%s\n" "$1" | grep -q "^users=.*alice"' _ "$out"
C journalctl -q --no-pager -o cat -b -t CRON | grep -v pam_nsjail | sort | uniq -c | sed 's/^/# /' | head -12

logout_bg 3001
check "after her logout: no set, no holder, nothing of alice (her user manager ends 10 s after: UserStopDelaySec)" within_20s sh -c "! nsenter -t $BOOT_INIT -a pgrep -u alice && [ -z \"\$(nsenter -t $BOOT_INIT -a ls /run/pam_nsjail/sets)\" ]"
check_eq "nsjail-helper list is empty" "" "$(C nsjail-helper list | tail -n +2)"
check "no join in this boot logged 'stopped watching' (pidfd_getfd works in the lab)" \
    sh -c "! nsenter -t $BOOT_INIT -a journalctl -q --no-pager -o cat -b | grep -q 'stopped watching'"
done_testing
