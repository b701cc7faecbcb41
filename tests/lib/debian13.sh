# shellcheck shell=bash
# A cached Debian 13 (trixie) root filesystem for the end-to-end tests
# (DESIGN §2b, §5). Source this file, then `root=$(debian13_root)`.
#
# The tree is built once with debootstrap (minbase + DEBIAN13_PACKAGES) under
# /var/cache/pam_nsjail-tests/, keyed by a hash of the recipe, and is meant to
# be used read-only as the LOWER layer of an overlay: nothing in it changes
# per run. Per run, in the upper layer:
#   - ssh host keys: `ssh-keygen -A` (none are cached; a booted ssh.service
#     makes them itself through the drop-in hostkeys.conf written below);
#   - /etc/machine-id is cached EMPTY: a booted systemd then uses a fresh
#     transient id each boot (nspawn passes one) and does not run its
#     first-boot logic (no preset-all, no systemd-firstboot), which an
#     "uninitialized" or missing file would trigger.
# Progress goes to stderr; stdout carries only the path.

DEBIAN13_SUITE=${DEBIAN13_SUITE:-trixie}
DEBIAN13_MIRROR=${DEBIAN13_MIRROR:-http://deb.debian.org/debian}
DEBIAN13_CACHE=${DEBIAN13_CACHE:-/var/cache/pam_nsjail-tests}
# What the e2e tests run inside the root, beyond minbase. debootstrap follows
# Depends only, so Recommends that matter are listed here.
DEBIAN13_PACKAGES=(
    openssh-server openssh-client openssh-sftp-server pamtester
    systemd systemd-sysv libpam-systemd dbus dbus-user-session
    procps util-linux iproute2 psmisc python3 passwd sudo strace
    man-db pkgconf libpam0g-dev dpkg-dev nftables conntrack libsubid5
    cron at
)
# Bump when debian13_finish changes, so old caches are not reused.
DEBIAN13_RECIPE=3

# debian13_root: prints the path of the cached root, building it first if
# needed. Returns non-zero (with debootstrap's log tail on stderr) on failure.
debian13_root() {
    local key root lockfd
    key=$(printf '%s\n' "recipe=$DEBIAN13_RECIPE" "suite=$DEBIAN13_SUITE" \
        "mirror=$DEBIAN13_MIRROR" "${DEBIAN13_PACKAGES[@]}" | sha256sum | cut -c1-16)
    root=$DEBIAN13_CACHE/debian13-$key
    # The name only ever appears by rename of a finished tree.
    if [ -d "$root" ]; then
        printf '%s\n' "$root"
        return 0
    fi
    mkdir -p "$DEBIAN13_CACHE" || return 1
    exec {lockfd}>"$DEBIAN13_CACHE/.lock" || return 1
    flock "$lockfd"
    local rc=0
    [ -d "$root" ] || debian13_build "$root" || rc=$?
    exec {lockfd}>&-
    [ "$rc" = 0 ] && printf '%s\n' "$root"
    return "$rc"
}

# debian13_build ROOT: builds into a temp dir beside ROOT, then renames it
# into place. Called with the cache lock held, so any leftover build dir is
# from an interrupted run and can go.
debian13_build() {
    local root=$1 tmp start rc
    local cache=${root%/*}
    local d
    for d in "$cache"/.build-*; do
        [ -e "$d" ] || continue
        echo "debian13: removing interrupted build $d" >&2
        rm -rf --one-file-system "$d"
    done
    command -v debootstrap >/dev/null || {
        echo "debian13: debootstrap is missing (apt-get install debootstrap)" >&2
        return 1
    }
    tmp=$(mktemp -d "$cache/.build-XXXXXX") || return 1
    start=$SECONDS
    echo "debian13: building $DEBIAN13_SUITE into $tmp (log: $tmp/debootstrap.log)" >&2
    # Stage 1 downloads and unpacks. Stage 2 runs the maintainer scripts in
    # fresh mount/pid/net/uts/ipc namespaces behind a policy-rc.d that denies
    # every start: a service a postinst starts anyway cannot bind a host
    # port, rename the host, or outlive the build. Both run in a private
    # mount namespace, so debootstrap's /dev, /proc and /sys mounts vanish
    # with it even if the build is killed (--kill-child takes stage 2's pid
    # namespace down with this shell).
    if unshare --mount --propagation private \
        debootstrap --foreign --variant=minbase \
        --include="$(
            IFS=,
            echo "${DEBIAN13_PACKAGES[*]}"
        )" \
        "$DEBIAN13_SUITE" "$tmp/root" "$DEBIAN13_MIRROR" >"$tmp/debootstrap.log" 2>&1 &&
        echo "debian13: stage 1 (download, unpack) done after $((SECONDS - start)) s" >&2 &&
        printf '#!/bin/sh\nexit 101\n' >"$tmp/root/usr/sbin/policy-rc.d" &&
        chmod 755 "$tmp/root/usr/sbin/policy-rc.d" &&
        unshare --mount --pid --net --uts --ipc --fork --kill-child --propagation private \
            chroot "$tmp/root" /debootstrap/debootstrap --second-stage \
            >>"$tmp/debootstrap.log" 2>&1 &&
        debian13_finish "$tmp/root" >>"$tmp/debootstrap.log" 2>&1; then
        mv -T "$tmp/root" "$root"
        rc=$?
    else
        rc=1
        echo "debian13: build failed; last lines of the log:" >&2
        tail -n 20 "$tmp/debootstrap.log" >&2
    fi
    rm -rf --one-file-system "$tmp"
    [ "$rc" = 0 ] && echo "debian13: built $root in $((SECONDS - start)) s" >&2
    return "$rc"
}

# debian13_finish DIR: makes the tree a per-run-invariant lower layer.
debian13_finish() {
    local r=$1
    rm -f "$r/usr/sbin/policy-rc.d"
    # Host keys are per run (and a cached private key would be shared by
    # every test machine built from this cache).
    rm -f "$r"/etc/ssh/ssh_host_*
    mkdir -p "$r/etc/systemd/system/ssh.service.d"
    cat >"$r/etc/systemd/system/ssh.service.d/hostkeys.conf" <<'EOF'
# pam_nsjail tests: the cached root ships no host keys; make them per boot.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
    # Empty, not missing and not "uninitialized": see the header.
    : >"$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id"
    ln -s /etc/machine-id "$r/var/lib/dbus/machine-id"
    # debootstrap copied the build host's name and resolver.
    echo debian13 >"$r/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian13\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
    rm -f "$r/etc/resolv.conf"
    : >"$r/etc/resolv.conf"
    # Timers (apt-daily, man-db, fstrim, dpkg-db-backup) would fire at
    # random moments during a booted test; the tests never need them.
    rm -rf "$r/etc/systemd/system/timers.target.wants"
    # /run is a tmpfs in every use; what the postinsts left there is stale.
    find "$r/run" -mindepth 1 -delete
    # What systemd would otherwise redo on every boot (ConditionNeedsUpdate=
    # compares /usr's mtime with /etc/.updated and /var/.updated): the
    # linker cache, the journal catalog, then the stamps themselves.
    local in_root=(unshare --mount --pid --net --uts --ipc --fork --kill-child chroot "$r")
    "${in_root[@]}" ldconfig || return 1
    "${in_root[@]}" journalctl --update-catalog || return 1
    "${in_root[@]}" /usr/lib/systemd/systemd-update-done || return 1
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_Packages \
        "$r"/var/log/apt/* "$r/var/log/bootstrap.log"
}
