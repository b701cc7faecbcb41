#!/bin/bash
# trace-service.sh — reproduces one measurement of docs/SERVICES.md
# (issue 18): which process runs which PAM hook for a service, and where
# the session's own process (the job, the shell) ends up.
#
#   tests/tools/trace-service.sh [--debian13] SERVICE   (as root)
#   tests/tools/trace-service.sh --booted systemd-user   (as root)
#
# SERVICE: cron | atd | su | runuser | login. The measurement runs in a
# private mount+pid+ipc+net namespace (like tests/lib/sandbox.sh) with
# overlays on /etc, /usr, /var/spool and /var/log; with --debian13 it is
# chrooted into a throwaway overlay of the cached Debian 13 root
# (tests/lib/debian13.sh), which lacks cron and at: set TRACE_DEBS to a
# directory holding their trixie .debs (`apt-get install --download-only
# cron at` in a chroot of an overlay of that root). --booted boots that root
# under systemd-nspawn (as tests/lib/booted.sh does) and starts
# user@UID.service with an ssh login, then with `systemctl start`.
#
# tests/tools/pam_trace.c (built here with gcc) is put FIRST in the auth,
# account, password and session stacks of the service; the session's
# command, /trace/final.sh, adds a `final` line (its own pid, ppid, ids,
# namespaces), the process tree while it runs, and `final-exit` when it
# ends. Everything goes to stdout. Nothing reaches the host.
set -u
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
D13_ROOT=${D13_ROOT:-}

usage() {
    sed -n '2,22p' "$0" >&2
    exit 2
}

# --- inside the sandbox --------------------------------------------------

# The session's command: one line in the trace like pam_trace's, the tree.
write_final() {
    cat >/trace/final.sh <<'EOF'
#!/bin/bash
tag=${1:-final}
ns() { stat -Lc %i /proc/self/ns/$1; }
ids() { awk -v k="$1" '$1==k":" {print $2","$3","$4}' /proc/$$/status; }
ts() { date +%s.%3N; }
echo "t=$(ts) hook=final tag=$tag pid=$$ ppid=$PPID sid=$(ps -o sid= -p $$ | tr -d ' ') exe=$(readlink /proc/$$/exe) pexe=$(readlink /proc/$PPID/exe) pcomm=$(cat /proc/$PPID/comm) uid=$(ids Uid) gid=$(ids Gid) groups=$(id -G | tr ' ' ,) pidns=$(ns pid) mntns=$(ns mnt) userns=$(ns user) tty=$(tty 2>/dev/null | tr -d '\n')" >>/trace/trace.log
ps -eo pid,ppid,sid,uid,euid,nlwp,args --forest >"/trace/ps-$tag.txt" 2>&1
sleep "${FINAL_SLEEP:-2}"
echo "t=$(ts) hook=final-exit tag=$tag pid=$$" >>/trace/trace.log
EOF
    chmod 755 /trace/final.sh
}

# Prepends the trace line to each stack of /etc/pam.d/FILE.
trace_pam() {
    local f=/etc/pam.d/$1 m="/trace/pam_trace.so /trace/trace.log"
    [ -f "$f" ] || cp "/usr/lib/pam.d/$1" "$f"
    sed -i "1i auth optional $m\naccount optional $m\npassword optional $m\nsession optional $m" "$f"
}

# A pty driver: runs ARGV on a new pty, answers prompts, sends input.
write_pty() {
    cp "$SB_DIR/ptydrive.py" /trace/ptydrive.py
}

# The package (and version) that ships a command, usrmerge or not.
pkg_of() {
    local p
    p=$(dpkg -S "/bin/$1" "/usr/bin/$1" 2>/dev/null | head -1 | cut -d: -f1)
    echo "$p $(dpkg-query -W -f '${Version}' "$p" 2>/dev/null)"
}

run_inside() {
    local svc=$1 d=$SB_DIR x
    ip link set lo up
    if [ -z "${SB_IN_ROOT:-}" ]; then
        for x in etc usr var/spool var/log; do
            mkdir -p "$d/${x//\//_}.up" "$d/${x//\//_}.work"
            mount -t overlay overlay -o "lowerdir=/$x,upperdir=$d/${x//\//_}.up,workdir=$d/${x//\//_}.work" "/$x"
        done
    fi
    mount -t tmpfs -o mode=755 tmpfs /home
    mount -t tmpfs -o mode=755 tmpfs /run
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    install -d -m 1777 /run/lock
    install -m664 -o root -g utmp /dev/null /run/utmp
    mkdir -p /trace && mount -t tmpfs -o mode=1777 tmpfs /trace
    cp "$d/pam_trace.so" /trace/
    install -m666 /dev/null /trace/trace.log
    write_final
    write_pty
    if [ -n "${SB_IN_ROOT:-}" ] && [ -d "$d/debs" ] &&
        { [ "$svc" = cron ] || [ "$svc" = atd ]; }; then
        # cron pre-depends on cron-daemon-common: configure that first.
        for x in cron-daemon-common cron at; do
            [ -e "$d/debs/${x}_"*.deb ] || continue
            DEBIAN_FRONTEND=noninteractive dpkg -i "$d/debs/${x}_"*.deb >"$d/dpkg.log" 2>&1 ||
                { echo "# dpkg -i $x failed:"; tail -5 "$d/dpkg.log"; }
        done
    fi
    useradd -m -s /bin/bash alice
    useradd -m -s /bin/bash bob
    printf 'alice:alice-pw\nbob:bob-pw\n' | chpasswd
    echo "# $(. /etc/os-release; echo "$PRETTY_NAME"), libpam $(dpkg-query -W -f '${Version}' libpam0g 2>/dev/null)"
    echo "# alice=$(id alice) bob=$(id bob)"
    echo "# sandbox pid 1 = $$ ($(readlink /proc/1/exe))"
    case $svc in
    cron)
        trace_pam cron
        echo "* * * * * /trace/final.sh cron" | crontab -u alice -
        echo "# cron $(dpkg-query -W -f '${Version}' cron)"
        cron -f -L 15 &
        local cpid=$! n
        echo "# cron daemon pid $cpid; waiting for two minutes' jobs"
        for n in $(seq 150); do
            [ "$(grep -c 'hook=close_session' /trace/trace.log)" -ge 2 ] && break
            sleep 1
        done
        kill "$cpid"
        ;;
    atd)
        trace_pam atd
        echo "# at $(dpkg-query -W -f '${Version}' at)"
        mkdir -p /var/spool/cron/atjobs /var/spool/cron/atspool
        atd -f &
        local apid=$! n
        sleep 0.5
        echo "/trace/final.sh atd" | setpriv --reuid alice --regid alice --init-groups at now 2>&1
        for n in $(seq 90); do
            grep -q 'hook=close_session' /trace/trace.log && break
            sleep 1
        done
        kill "$apid"
        ;;
    su)
        trace_pam su
        echo "# su from $(pkg_of su)"
        echo "## case su-root-c: root: su alice -c /trace/final.sh"
        echo "=== case su-root-c" >>/trace/trace.log
        su alice -c "/trace/final.sh su-root-c"
        echo "=== case su-l-root-pty" >>/trace/trace.log
        echo "## case su-l-root-pty: root: su - alice on a pty, shell runs final.sh"
        python3 /trace/ptydrive.py - "/trace/final.sh su-l-root-pty; exit" -- su - alice | tail -2
        echo "=== case su-bob-pw" >>/trace/trace.log
        echo "## case su-bob-pw: bob: su alice -c final.sh, password on a pty"
        python3 /trace/ptydrive.py alice-pw x -- setpriv --reuid bob --regid bob --init-groups \
            su alice -c "/trace/final.sh su-bob-pw" | tail -2
        ;;
    runuser)
        trace_pam runuser
        echo "=== case runuser-l" >>/trace/trace.log
        echo "## case runuser-l: runuser -l alice -c final.sh"
        runuser -l alice -c "/trace/final.sh runuser-l"
        echo "=== case runuser-u" >>/trace/trace.log
        echo "## case runuser-u: runuser -u alice -- final.sh"
        runuser -u alice -- /trace/final.sh runuser-u
        ;;
    login)
        trace_pam login
        echo "# login from $(pkg_of login)"
        echo "## case login-f: root: login -f alice on a pty, shell runs final.sh"
        python3 /trace/ptydrive.py - "/trace/final.sh login-f; exit" -- login -f alice | tail -2
        ;;
    *) usage ;;
    esac
    echo "## trace (/trace/trace.log)"
    cat /trace/trace.log
    for x in /trace/ps-*.txt; do
        [ -e "$x" ] || continue
        echo "## process tree while the session's command ran: ${x#/trace/}"
        cat "$x"
    done
}

# Inside the namespaces, for --debian13: chroot into an overlay of the root.
chroot_inside() {
    local d=$SB_DIR new=$SB_DIR/newroot
    mkdir -p "$d/root.up" "$d/root.work" "$new"
    mount -t overlay overlay -o "lowerdir=$D13_ROOT,upperdir=$d/root.up,workdir=$d/root.work" "$new"
    mount --rbind /dev "$new/dev"
    mount -t proc proc "$new/proc"
    mount --rbind /sys "$new/sys"
    mkdir -p "$new/tsb"
    mount --bind "$d" "$new/tsb"
    cp "$0" "$d/trace-service.sh"
    mkdir -p "$new/.oldroot"
    cd "$new" && pivot_root . .oldroot || exit 1
    umount -l /.oldroot
    exec chroot . /usr/bin/env SB_IN_ROOT=1 SB_DIR=/tsb TRACE_INNER=1 \
        bash /tsb/trace-service.sh "$@"
}

# --- booted Debian 13 (systemd-user) ------------------------------------

run_booted() {
    # shellcheck source=tests/lib/booted.sh
    source "$REPO/tests/lib/booted.sh"
    local base m
    base=$(boot_cgroup_base) || { echo "# no cgroup2 hierarchy"; return 1; }
    BOOT_DIR=$SB_DIR
    BOOT_CG=$base/nsjail-boot-trace-${BOOT_DIR##*.}
    mkdir -p "$BOOT_DIR/upper" "$BOOT_DIR/work" "$BOOT_DIR/merged" "$BOOT_CG"
    (
        echo "$BASHPID" >"$BOOT_CG/cgroup.procs"
        exec unshare --mount --propagation private --fork --kill-child=SIGTERM bash -c '
            m=$3/merged
            mount -t tmpfs -o mode=755 tmpfs /run &&
            mount -t overlay overlay -o "lowerdir=$2,upperdir=$3/upper,workdir=$3/work" "$m" || exit 1
            mkdir -p "$m/trace"
            cp "$3/pam_trace.so" "$m/trace/"
            install -m666 /dev/null "$m/trace/trace.log"
            cp "$m/usr/lib/pam.d/systemd-user" "$m/etc/pam.d/systemd-user"
            t="/trace/pam_trace.so /trace/trace.log"
            for f in systemd-user sshd; do
                sed -i "1i auth optional $t\naccount optional $t\npassword optional $t\nsession optional $t" "$m/etc/pam.d/$f"
            done
            ssh-keygen -q -t ed25519 -N "" -f "$m/root/.ssh/id_ed25519" 2>/dev/null ||
                { mkdir -p "$m/root/.ssh"; ssh-keygen -q -t ed25519 -N "" -f "$m/root/.ssh/id_ed25519"; }
            chroot "$m" sh -ec "useradd -m -s /bin/bash alice; echo alice:alice-pw | chpasswd
                install -d -o alice -m700 /home/alice/.ssh
                install -o alice -m600 /root/.ssh/id_ed25519.pub /home/alice/.ssh/authorized_keys"
            SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q -b --register=no \
                --keep-unit --private-network --console=passive -D "$m"' \
            _ "$REPO" "$D13_ROOT" "$BOOT_DIR"
    ) >"$BOOT_DIR/nspawn.log" 2>&1 &
    BOOT_UNSHARE=$!
    for _ in $(seq 200); do
        BOOT_NSPAWN=$(pgrep -P "$BOOT_UNSHARE" -x systemd-nspawn)
        # Its child that exec'd systemd: nspawn's short-lived outer child
        # (comm systemd-nspawn) is its child too for a moment.
        [ -n "$BOOT_NSPAWN" ] && BOOT_INIT=$(pgrep -P "$BOOT_NSPAWN" -x systemd | head -1)
        [ -n "$BOOT_INIT" ] && break
        sleep 0.05
    done
    [ -n "$BOOT_INIT" ] || {
        cat "$BOOT_DIR/nspawn.log"
        boot_stop
        return 1
    }
    for _ in $(seq 100); do
        case "$(C systemctl is-system-running 2>/dev/null)" in running | degraded) break ;; esac
        sleep 0.1
    done
    echo "# booted: $(C sh -c '. /etc/os-release; echo $PRETTY_NAME'), $(C systemctl --version | head -1)"
    local uid key=(-i /root/.ssh/id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
    uid=$(C id -u alice)
    echo "## case ssh: an ssh login of alice (uid $uid) starts user@$uid.service"
    C sh -c 'echo "=== case ssh" >>/trace/trace.log'
    C ssh "${key[@]}" alice@127.0.0.1 'echo "t=$(date +%s.%3N) hook=final tag=ssh pid=$$ ppid=$PPID" >>/trace/trace.log; sleep 1; ps -eo pid,ppid,sid,uid,euid,nlwp,args --forest; systemctl --user is-system-running'
    echo "## user@$uid.service: MainPID=$(C systemctl show -P MainPID "user@$uid.service")"
    echo "## process tree after the ssh login ended (systemd --user still running)"
    C ps -eo pid,ppid,sid,uid,euid,nlwp,args --forest
    m=$(C systemctl show -P MainPID "user@$uid.service")
    [ "$m" != 0 ] && C grep -E '^(Uid|Gid|Groups|Threads)' "/proc/$m/status"
    echo "## loginctl terminate-user alice"
    C sh -c 'echo "=== case terminate-user" >>/trace/trace.log'
    C loginctl terminate-user alice
    for _ in $(seq 100); do
        C systemctl is-active -q "user@$uid.service" || break
        sleep 0.1
    done
    # Measured: this start times out after 90 s (Result: timeout); the
    # hooks it runs before are the point.
    echo "## case start: systemctl start user@$uid.service (no login)"
    C sh -c 'echo "=== case systemctl-start" >>/trace/trace.log'
    C systemctl start "user@$uid.service"
    C systemctl status --no-pager "user@$uid.service" | head -12
    C sh -c 'echo "=== case systemctl-stop" >>/trace/trace.log'
    C systemctl stop "user@$uid.service"
    sleep 1
    echo "## trace (/trace/trace.log)"
    C cat /trace/trace.log
    boot_stop
}

# --- on the host ---------------------------------------------------------

main() {
    local mode=sandbox svc dir rc
    case ${1:-} in
    --debian13) mode=debian13; shift ;;
    --booted) mode=booted; shift ;;
    esac
    svc=${1:-}
    [ -n "$svc" ] || usage
    [ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
    if [ "$mode" != sandbox ]; then
        # shellcheck source=tests/lib/debian13.sh
        source "$REPO/tests/lib/debian13.sh"
        D13_ROOT=$(debian13_root) || exit 1
    fi
    dir=$(mktemp -d /var/tmp/trace-service.XXXXXX)
    gcc -shared -fPIC -o "$dir/pam_trace.so" "$REPO/tests/tools/pam_trace.c" -lpam || exit 1
    cp "$REPO/tests/lib/ptydrive.py" "$dir/ptydrive.py"
    if [ -n "${TRACE_DEBS:-}" ]; then
        mkdir -p "$dir/debs" && cp "$TRACE_DEBS"/*.deb "$dir/debs/"
    fi
    if [ "$mode" = booted ]; then
        [ "$svc" = systemd-user ] || usage
        SB_DIR=$dir run_booted
        rc=$?
    else
        TRACE_INNER=1 TRACE_MODE=$mode SB_DIR=$dir D13_ROOT=$D13_ROOT \
            unshare --mount --pid --ipc --net --fork --mount-proc --propagation private \
            -- bash "$0" "$svc"
        rc=$?
    fi
    rm -rf --one-file-system "$dir"
    exit $rc
}

if [ -n "${TRACE_INNER:-}" ]; then
    if [ "${TRACE_MODE:-}" = debian13 ] && [ -z "${SB_IN_ROOT:-}" ]; then
        chroot_inside "$@"
    fi
    run_inside "$@"
else
    main "$@"
fi
