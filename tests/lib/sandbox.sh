# shellcheck shell=bash
# Hermetic sandbox for end-to-end tests (DESIGN §5). Source it, then call
# `sandbox_enter "$@"` first thing: the script re-runs itself as pid 1 of a
# private mount+pid+ipc+network namespace (loopback only, so sshd's port,
# nftables, forwarding and links are the sandbox's own) where /etc and /usr are overlays (upper
# dirs under /var/tmp, removed afterwards), /home, /run and /tmp are tmpfs
# and /dev is an overlay holding a syslog socket at /dev/log. Users, sshd,
# IPC objects and every namespace set die with the sandbox; nothing
# reaches the host.
#
# With NSJAIL_ROOTFS=debian13 the same script runs chrooted into a
# throwaway overlay of a cached Debian 13 root (tests/lib/debian13.sh):
# Debian 13's own sshd (OpenSSH 10, sshd-session), PAM 1.7, pamtester and
# tools, with the module and helper built here.

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SSH_PORT=${SSH_PORT:-2222}
SB_LOG=/run/nsjail-test/syslog.txt
SB_KEY=/run/nsjail-test/id_ed25519
TAP_N=0
TAP_FAILED=0

sandbox_enter() {
    if [ -n "${NSJAIL_SANDBOX:-}" ]; then
        if [ -n "${SB_LOWER:-}" ] && [ -z "${SB_IN_ROOT:-}" ]; then
            sandbox_chroot "$@"
        fi
        sandbox_setup
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "not ok 1 - must run as root (the sandbox needs namespaces and overlays)"
        exit 1
    fi
    local dir rc lower=
    case "${NSJAIL_ROOTFS:-}" in
    "") ;;
    debian13)
        # shellcheck source=tests/lib/debian13.sh
        source "$REPO/tests/lib/debian13.sh"
        lower=$(debian13_root) || {
            echo "not ok 1 - could not build the Debian 13 root (debootstrap)"
            exit 1
        }
        ;;
    *)
        echo "not ok 1 - unknown NSJAIL_ROOTFS=$NSJAIL_ROOTFS"
        exit 1
        ;;
    esac
    dir=$(mktemp -d /var/tmp/nsjail-test.XXXXXX)
    NSJAIL_SANDBOX=1 SB_DIR=$dir SB_LOWER=$lower \
        unshare --mount --pid --ipc --net --fork --mount-proc --propagation private \
        -- bash "$0" "$@"
    rc=$?
    rm -rf "$dir"
    exit $rc
}

# Inside the sandbox's namespaces, with SB_LOWER set: re-runs the script
# chrooted into a throwaway overlay of that root filesystem, still as pid 1.
sandbox_chroot() {
    local d=$SB_DIR new=$SB_DIR/newroot script
    mkdir -p "$d/root.up" "$d/root.work" "$new"
    mount -t overlay overlay -o "lowerdir=$SB_LOWER,upperdir=$d/root.up,workdir=$d/root.work" "$new"
    mount --rbind /dev "$new/dev"
    mount -t proc proc "$new/proc"
    mount --rbind /sys "$new/sys"
    # Upper dirs for the overlays sandbox_setup makes inside (an overlay
    # cannot be the upper layer of another).
    mkdir -p "$new/nsjail-sb" "$new/nsjail-repo"
    mount -t tmpfs -o mode=700 tmpfs "$new/nsjail-sb"
    mount --bind "$REPO" "$new/nsjail-repo"
    script=/nsjail-repo/${0#"$REPO"/}
    # pivot_root, not a bare chroot: the kernel refuses new user
    # namespaces to a chrooted process (its root must be its mount
    # namespace's). sandbox_setup detaches /.oldroot.
    mkdir -p "$new/.oldroot"
    cd "$new" && pivot_root . .oldroot || exit 1
    exec chroot . /usr/bin/env SB_IN_ROOT=1 SB_DIR=/nsjail-sb REPO=/nsjail-repo \
        bash "$script" "$@"
}

# Runs inside the sandbox (as its pid 1's script).
sandbox_setup() {
    set -u
    local d=$SB_DIR x
    [ -n "${SB_IN_ROOT:-}" ] && umount -l /.oldroot
    ip link set lo up
    # The checkout may live under /tmp, /home or /run, which get tmpfs
    # below: reach it through a bind mount in the sandbox's own directory.
    mkdir -p "$d/repo"
    mount --bind "$REPO" "$d/repo"
    REPO=$d/repo
    cd "$REPO" || exit 1
    for x in etc usr dev; do
        mkdir -p "$d/$x.up" "$d/$x.work"
    done
    # In a chrooted root, /etc and /usr are already a throwaway overlay.
    if [ -z "${SB_IN_ROOT:-}" ]; then
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/etc.up,workdir=$d/etc.work" /etc
        mount -t overlay overlay -o "lowerdir=/usr,upperdir=$d/usr.up,workdir=$d/usr.work" /usr
    fi
    mount -t tmpfs -o mode=755 tmpfs /home
    mount -t tmpfs -o mode=755 tmpfs /run
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    # /dev: an overlay so /dev/log can be created without touching the
    # host's devtmpfs; the pts mount is bound back in.
    mkdir -p "$d/devsave"
    mount --rbind /dev "$d/devsave"
    mount -t overlay overlay -o "lowerdir=/dev,upperdir=$d/dev.up,workdir=$d/dev.work" /dev
    mount --rbind "$d/devsave/pts" /dev/pts
    # The host's /dev/shm and mqueue stay the host's: the sandbox has its
    # own (and its own IPC namespace, which the mqueue mount shows).
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    [ -d /dev/mqueue ] && mount -t mqueue mqueue /dev/mqueue 2>/dev/null
    mkdir -p /run/sshd /run/nsjail-test
    chmod 755 /run/sshd
    # As on a host: a lock directory any program may write.
    install -d -m 1777 /run/lock
    install -m664 -o root -g utmp /dev/null /run/utmp
    python3 "$REPO/tests/lib/syslog_listener.py" /dev/log "$SB_LOG" &
    SB_SYSLOG_PID=$!
    for _ in $(seq 50); do [ -S /dev/log ] && break; sleep 0.02; done
    trap sandbox_teardown EXIT

    sandbox_install
    groupadd students
    groupadd admins
    useradd -m -s /bin/bash -G students alice
    useradd -m -s /bin/bash -G students bob
    useradd -m -s /bin/bash -G admins carol
    ssh-keygen -q -t ed25519 -N '' -f "$SB_KEY"
    local u
    for u in alice bob carol; do
        grep -q "^$u:" /etc/subuid || usermod --add-subuids 300000-365535 "$u"
        install -d -o "$u" -m700 "/home/$u/.ssh"
        install -o "$u" -m600 "$SB_KEY.pub" "/home/$u/.ssh/authorized_keys"
        usermod -p '*' "$u"
    done
    set_policy "$(test_policy)"
    sshd_start
    set +u
}

# Installs the built module, helper and PAM include like the package does.
# NSJAIL_BUILD_DIR (relative to the checkout, default target/release)
# picks another build, e.g. an older one to show that a test fails there.
sandbox_install() {
    local securedir build=$REPO/${NSJAIL_BUILD_DIR:-target/release}
    securedir=$(pkg-config --variable=securedir pam 2>/dev/null || true)
    [ -n "$securedir" ] || securedir=/usr/lib/x86_64-linux-gnu/security
    # NSJAIL_TEST_BUILD=DIR (or NSJAIL_BUILD_DIR) tests other binaries (an
    # older build, to see a test fail where a fix is missing): a path
    # relative to the checkout (the only host path a Debian 13 root sees),
    # or an absolute one outside /tmp, /run and /home.
    build=${NSJAIL_TEST_BUILD:-${NSJAIL_BUILD_DIR:-target/release}}
    case $build in /*) ;; *) build=$REPO/$build ;; esac
    install -m755 "$build/nsjail-helper" /usr/sbin/nsjail-helper
    install -m644 "$build/libpam_nsjail.so" "$securedir/pam_nsjail.so"
    install -m644 "$REPO/config/pam.d/nsjail" /etc/pam.d/nsjail
    install -D -m644 "$REPO/config/systemd/user@.service.d/pam_nsjail.conf" \
        /etc/systemd/system/user@.service.d/pam_nsjail.conf
    mkdir -p /etc/security
    grep -q '^@include nsjail' /etc/pam.d/sshd || echo '@include nsjail' >>/etc/pam.d/sshd
}

sandbox_teardown() {
    sshd_stop
    [ -n "${SB_SYSLOG_PID:-}" ] && kill "$SB_SYSLOG_PID" 2>/dev/null
    return 0
}

test_policy() {
    cat <<'EOF'
[defaults]
isolate = false

[[policy]]
name = "admins"
groups = ["admins"]
isolate = false

[[policy]]
name = "students"
groups = ["students"]
share = "user"
on_logout = "kill"
EOF
}

# set_policy TEXT: installs TEXT as the policy (root-owned, 0644).
set_policy() {
    printf '%s\n' "$1" >/etc/security/pam_nsjail.toml
    chown root:root /etc/security/pam_nsjail.toml
    chmod 644 /etc/security/pam_nsjail.toml
}

sshd_start() {
    ssh-keygen -q -A
    cat >/run/nsjail-test/sshd_config <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
UsePAM yes
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PidFile /run/nsjail-test/sshd.pid
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxStartups 200
MaxSessions 100
EOF
    /usr/sbin/sshd -f /run/nsjail-test/sshd_config -E /run/nsjail-test/sshd.log
    for _ in $(seq 100); do
        [ -s /run/nsjail-test/sshd.pid ] && break
        sleep 0.02
    done
}

sshd_stop() {
    [ -s /run/nsjail-test/sshd.pid ] && kill "$(cat /run/nsjail-test/sshd.pid)" 2>/dev/null
    rm -f /run/nsjail-test/sshd.pid
}

SSH_OPTS=(-i "$SB_KEY" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10)

# ssh_as USER CMD...: runs CMD over ssh as USER (no pty).
ssh_as() {
    local user=$1
    shift
    ssh "${SSH_OPTS[@]}" "$user@127.0.0.1" "$@"
}

# utmp_users: the users of the USER_PROCESS records in /run/utmp (what
# `who` lists where it reads utmp; Debian 13's `who` asks logind instead).
utmp_users() {
    python3 -c '
import struct
data = open("/run/utmp", "rb").read()
for i in range(0, len(data) - 383, 384):
    kind, = struct.unpack_from("h", data, i)
    if kind == 7:
        print(data[i + 44:i + 76].split(b"\0")[0].decode())'
}
utmp_has() { utmp_users | grep -qx "$1"; }

# ---- TAP ------------------------------------------------------------------

ok() {
    TAP_N=$((TAP_N + 1))
    echo "ok $TAP_N - $1"
}

not_ok() {
    TAP_N=$((TAP_N + 1))
    TAP_FAILED=$((TAP_FAILED + 1))
    echo "not ok $TAP_N - $1"
    shift
    local line
    for line in "$@"; do
        printf '#   %s\n' "$line"
    done
}

# check NAME CMD...: passes if CMD exits 0.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$name"
    else
        not_ok "$name" "command: $*" "${out:0:600}"
    fi
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1" "expected: ${2:0:400}" "actual:   ${3:0:400}"
    fi
}

# check_ne NAME A B: passes if A and B differ (and B is not empty).
check_ne() {
    if [ -n "$3" ] && [ "$2" != "$3" ]; then
        ok "$1"
    else
        not_ok "$1" "both: ${2:0:400}" "and:  ${3:0:400}"
    fi
}

# log_has PATTERN: the syslog capture has a line matching PATTERN (ERE).
log_has() {
    grep -Eq -- "$1" "$SB_LOG"
}

log_clear() {
    : >"$SB_LOG"
}

# wait_for CMD...: retries CMD for up to 5 s (WAIT_TRIES x 0.05 s).
wait_for() {
    local _
    for _ in $(seq "${WAIT_TRIES:-100}"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# runs_in_parallel TAG "USER..." CMD: one `nsjail-helper run USER -- sh -c CMD`
# per listed user, all at once; waits for all of them (not for sshd or the
# syslog listener). Output of the N-th goes to /run/nsjail-test/TAG.N.
runs_in_parallel() {
    local tag=$1 users=$2 cmd=$3 n=0 u pids=()
    rm -f /run/nsjail-test/"$tag".*
    for u in $users; do
        n=$((n + 1))
        nsjail-helper run "$u" -- sh -c "$cmd" >"/run/nsjail-test/$tag.$n" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
}

# runs_ok TAG: how many of those runs printed a pid namespace;
# runs_sets TAG: how many distinct ones.
runs_ok() { grep -l '^pid:' /run/nsjail-test/"$1".* | wc -l; }
runs_sets() { cat /run/nsjail-test/"$1".* | sort -u | wc -l; }

# repeat_word N WORD: WORD repeated N times.
repeat_word() { printf "$2 %.0s" $(seq "$1"); }

done_testing() {
    echo "1..$TAP_N"
    [ "$TAP_FAILED" = 0 ]
}
