# shellcheck shell=bash
# A Debian 13 system booted with systemd 257 under systemd-nspawn (DESIGN
# §2b), over a throwaway overlay of the cached root (tests/lib/debian13.sh),
# with the module and helper built here installed like the package does.
# The host keeps no trace: the overlay, /run and every mount live in a
# private mount namespace, nspawn runs in a cgroup of our own that is
# removed afterwards, and every process is stopped by its pid.
#
#   boot_start        boots it; sets BOOT_INIT (the container's pid 1, as
#                     seen from here) and defines `C CMD...`, which runs CMD
#                     inside (all its namespaces; output and status pass
#                     through)
#   boot_stop         powers it off (SIGKILL to its init if that hangs)
#
# Recipe and traps measured on this machine (see debian13.sh's author's
# notes in the commit history): nspawn needs --register=no --keep-unit (no
# systemd on the host), a tmpfs on /run, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
# on a hybrid host, and must never be SIGKILLed (its systemd would survive,
# orphaned): SIGTERM, and SIGKILL to the container's init as the fallback.
# nspawn's seccomp filter denies pidfd_getfd (EPERM, whatever the fd) to
# everything in the container: a login joining a set could not hand its
# holder its pidfd (lifetime.rs), and every join would log "the set will
# not end by itself ..." and the holder stop watching its openers, as on
# no real host: --system-call-filter=pidfd_getfd allows it.

BOOT_DIR=
BOOT_CG=
BOOT_UNSHARE=
BOOT_NSPAWN=
BOOT_INIT=

# The cgroup2 directory nspawn starts in: the container's systemd builds
# its tree below it, not at the host's cgroup root.
boot_cgroup_base() {
    if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        echo /sys/fs/cgroup/unified
    elif [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        echo /sys/fs/cgroup
    else
        return 1
    fi
}

# boot_prepare ROOT MERGED: installs what the tests need into the tree.
boot_prepare() {
    local merged=$2 securedir
    securedir=$merged/usr/lib/x86_64-linux-gnu/security
    # NSJAIL_TEST_BUILD=DIR: other binaries (as in sandbox.sh).
    local build=${NSJAIL_TEST_BUILD:-target/release}
    case $build in /*) ;; *) build=$REPO/$build ;; esac
    install -m755 "$build/nsjail-helper" "$merged/usr/sbin/nsjail-helper"
    install -m644 "$build/libpam_nsjail.so" "$securedir/pam_nsjail.so"
    install -m644 "$REPO/config/pam.d/nsjail" "$merged/etc/pam.d/nsjail"
    # As the package does: the user manager's drop-in (NotifyAccess=all).
    install -D -m644 "$REPO/config/systemd/user@.service.d/pam_nsjail.conf" \
        "$merged/usr/lib/systemd/system/user@.service.d/pam_nsjail.conf"
    echo '@include nsjail' >>"$merged/etc/pam.d/sshd"
    mkdir -p "$merged/etc/security" "$merged/root/.ssh"
    test_policy >"$merged/etc/security/pam_nsjail.toml"
    chmod 644 "$merged/etc/security/pam_nsjail.toml"
    ssh-keygen -q -t ed25519 -N '' -f "$merged/root/.ssh/id_ed25519"
    chroot "$merged" sh -ec '
        groupadd students; groupadd admins
        for u in alice bob; do useradd -m -s /bin/bash -G students $u; done
        useradd -m -s /bin/bash -G admins carol
        for u in alice bob carol; do
            usermod -p "*" $u
            install -d -o $u -m700 /home/$u/.ssh
            install -o $u -m600 /root/.ssh/id_ed25519.pub /home/$u/.ssh/authorized_keys
        done
        echo "marker on the host" >/tmp/host-marker'
}

boot_start() {
    local root base
    root=$(debian13_root) || return 1
    base=$(boot_cgroup_base) || {
        echo "# no cgroup2 hierarchy to boot systemd in" >&2
        return 1
    }
    BOOT_DIR=$(mktemp -d /var/tmp/nsjail-test.XXXXXX)
    BOOT_CG=$base/nsjail-boot-${BOOT_DIR##*.}
    mkdir -p "$BOOT_DIR/upper" "$BOOT_DIR/work" "$BOOT_DIR/merged" "$BOOT_CG"
    (
        echo "$BASHPID" >"$BOOT_CG/cgroup.procs"
        exec unshare --mount --propagation private --fork --kill-child=SIGTERM bash -c '
            source "$1/tests/lib/sandbox.sh"
            source "$1/tests/lib/booted.sh"
            mount -t tmpfs -o mode=755 tmpfs /run &&
            mount -t overlay overlay -o "lowerdir=$2,upperdir=$3/upper,workdir=$3/work" "$3/merged" &&
            boot_prepare "$2" "$3/merged" &&
            SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q -b --register=no \
                --keep-unit --private-network --console=passive \
                --system-call-filter=pidfd_getfd -D "$3/merged"' \
            _ "$REPO" "$root" "$BOOT_DIR"
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
        cat "$BOOT_DIR/nspawn.log" >&2
        return 1
    }
    # Usually 2-5 s; up to 60 s on a busy machine (2 cores shared with
    # other tests' VMs and builds).
    local state=
    for _ in $(seq 600); do
        state=$(C systemctl is-system-running 2>/dev/null)
        case "$state" in
        running | degraded) return 0 ;;
        esac
        sleep 0.1
    done
    echo "# the container did not finish booting (is-system-running: ${state:-no answer}; jobs:)" >&2
    C systemctl list-jobs --no-pager 2>&1 | head -20 | sed 's/^/#   /' >&2
    return 1
}

# C CMD...: runs CMD in the booted system.
C() {
    nsenter -t "$BOOT_INIT" -a "$@"
}

boot_stop() {
    if [ -n "$BOOT_NSPAWN" ]; then
        kill -TERM "$BOOT_NSPAWN" 2>/dev/null
        for _ in $(seq 100); do
            kill -0 "$BOOT_UNSHARE" 2>/dev/null || break
            sleep 0.1
        done
        # Still there after 10 s: end the whole container with its init.
        kill -0 "$BOOT_UNSHARE" 2>/dev/null && kill -KILL "$BOOT_INIT" 2>/dev/null
        wait "$BOOT_UNSHARE" 2>/dev/null
    fi
    # nspawn leaves its payload/supervisor groups behind: remove them,
    # deepest first, here and in the v1 name=systemd tree of a hybrid host.
    local cg
    for cg in "$BOOT_CG" "/sys/fs/cgroup/systemd/${BOOT_CG##*/}"; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    [ -n "$BOOT_DIR" ] && rm -rf --one-file-system "$BOOT_DIR"
    return 0
}

# booted_begin: the start of every booted-lab script: root, the boot, its
# TAP line (or the failure, and exit), and KEY for ssh from inside.
booted_begin() {
    if [ "$(id -u)" != 0 ]; then
        echo "not ok 1 - must run as root (nspawn, overlays)"
        exit 1
    fi
    trap boot_stop EXIT
    if ! boot_start; then
        not_ok "boot Debian 13 with systemd under systemd-nspawn" "$(tail -5 "$BOOT_DIR/nspawn.log" 2>/dev/null)"
        done_testing
        exit 1
    fi
    ok "Debian 13 booted with $(C systemctl --version | head -1)"
    KEY=(-i /root/.ssh/id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10)
}

# ---- helpers of the booted-lab scripts (after booted_begin: KEY) ---------

# ssh_in USER CMD: an ssh login to the container's own sshd.
ssh_in() {
    local user=$1
    shift
    C ssh "${KEY[@]}" "$user@127.0.0.1" "$@"
}
# login_bg USER MARK: an interactive login (pty) held open by `sleep MARK`
# (MARK >= 1000 tells the logins apart); logout_bg MARK ends it from the
# client's side, as a user closing the connection would (the pty's hangup
# ends the sleep).
login_bg() {
    C setsid sh -c "exec ssh -tt ${KEY[*]} $1@127.0.0.1 'exec sleep $2' </dev/null >/dev/null 2>&1" &
    wait_for C pgrep -u "$1" -fx "sleep $2"
}
logout_bg() { C pkill -f "^ssh .*exec sleep $1"; }
# set_gone: no set is registered and no holder runs.
set_gone() { [ -z "$(C ls /run/pam_nsjail/sets 2>/dev/null)" ] && ! C pgrep -x nsjail-holder >/dev/null; }
# journal_has ERE: a line of this boot's journal matches.
journal_has() { C journalctl -q --no-pager -o cat -b | grep -Eq -- "$1"; }
