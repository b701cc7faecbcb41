# shellcheck shell=bash
# A real Debian 13 virtual machine for the tests that need what neither this
# host nor an nspawn container on it has: a cgroup v2 hierarchy with the
# memory, pids, cpu and io controllers (DESIGN §2d "Resources").
#
#   vm_image          prints the cache directory holding vmlinux, initrd.img,
#                     root.img and the test key, building it first if needed
#   vm_start DIR      boots the image with DIR shared in read-only over 9p
#                     (mounted at /mnt/host inside); sets VM_PID, VM_PORT
#   vm_ssh [-u USER] CMD...
#                     runs CMD (a shell command line) in the VM as USER
#                     (default root); output and exit status pass through
#   vm_stop           powers the VM off, SIGKILL to QEMU (by its pid) if that
#                     hangs, and removes the per-boot overlay
#
# VM_INIT=PATH (a script in the shared DIR, relative to it) boots the same
# image without systemd: the kernel's init is a shell that mounts the share
# and runs PATH as pid 1 (tests/vm/nosystemd-init.sh).
#
# Recipe (measured here, DESIGN §2d): debootstrap trixie (minbase + systemd,
# Debian's kernel, openssh-server, libpam-systemd, dbus), an initrd with only
# virtio_pci/virtio_blk/virtio_net/ext4 (initramfs-tools MODULES=list),
# `mkfs.ext4 -d ROOT root.img 4G`, QEMU TCG (this host's KVM cannot run
# Debian's kernel) booting the uncompressed vmlinux directly (PVH entry), a
# throwaway qcow2 overlay per boot, user networking with one hostfwd bound to
# 127.0.0.1 only. Nothing the VM does reaches the host but that port.
# Progress goes to stderr.

VM_SUITE=${VM_SUITE:-trixie}
VM_MIRROR=${VM_MIRROR:-http://deb.debian.org/debian}
VM_CACHE=${VM_CACHE:-/var/cache/pam_nsjail-tests}
VM_PACKAGES=(
    systemd systemd-sysv linux-image-amd64 initramfs-tools openssh-server
    libpam-systemd dbus python3 procps iproute2 util-linux psmisc
)
# Bump when vm_finish changes, so old caches are not reused.
VM_RECIPE=1
VM_PORT=${VM_PORT:-2822}
VM_MEM=${VM_MEM:-1024}
VM_INIT=${VM_INIT:-}
VM_PID=
VM_DIR=
VM_IMAGE=

vm_image() {
    local key dir lockfd rc=0
    key=$(printf '%s\n' "recipe=$VM_RECIPE" "suite=$VM_SUITE" "mirror=$VM_MIRROR" \
        "${VM_PACKAGES[@]}" | sha256sum | cut -c1-16)
    dir=$VM_CACHE/vm13-$key
    if [ -d "$dir" ]; then
        printf '%s\n' "$dir"
        return 0
    fi
    mkdir -p "$VM_CACHE" || return 1
    exec {lockfd}>"$VM_CACHE/.lock-vm" || return 1
    flock "$lockfd"
    [ -d "$dir" ] || vm_build "$dir" || rc=$?
    exec {lockfd}>&-
    [ "$rc" = 0 ] && printf '%s\n' "$dir"
    return "$rc"
}

# vm_build DIR: builds into a temp dir beside DIR, renames it into place.
vm_build() {
    local dir=$1 tmp start rc=0 d
    local cache=${dir%/*}
    for d in "$cache"/.vmbuild-*; do
        [ -e "$d" ] || continue
        echo "vm: removing interrupted build $d" >&2
        rm -rf --one-file-system "$d"
    done
    for tool in debootstrap mkfs.ext4 qemu-img qemu-system-x86_64; do
        command -v "$tool" >/dev/null || {
            echo "vm: $tool is missing (see .ci/run)" >&2
            return 1
        }
    done
    tmp=$(mktemp -d "$cache/.vmbuild-XXXXXX") || return 1
    start=$SECONDS
    echo "vm: building $VM_SUITE into $tmp (log: $tmp/build.log)" >&2
    # As in debian13.sh: stage 2 runs behind a policy-rc.d that denies every
    # start, in namespaces of its own, so no postinst reaches the host.
    if unshare --mount --propagation private \
        debootstrap --foreign --variant=minbase \
        --include="$(
            IFS=,
            echo "${VM_PACKAGES[*]}"
        )" \
        "$VM_SUITE" "$tmp/root" "$VM_MIRROR" >"$tmp/build.log" 2>&1 &&
        echo "vm: stage 1 done after $((SECONDS - start)) s" >&2 &&
        printf '#!/bin/sh\nexit 101\n' >"$tmp/root/usr/sbin/policy-rc.d" &&
        chmod 755 "$tmp/root/usr/sbin/policy-rc.d" &&
        unshare --mount --pid --net --uts --ipc --fork --kill-child --propagation private \
            chroot "$tmp/root" /debootstrap/debootstrap --second-stage \
            >>"$tmp/build.log" 2>&1 &&
        echo "vm: stage 2 done after $((SECONDS - start)) s" >&2 &&
        vm_finish "$tmp" >>"$tmp/build.log" 2>&1; then
        rm -rf --one-file-system "$tmp/root" && mv -T "$tmp" "$dir" || rc=1
    else
        rc=1
        echo "vm: build failed; last lines of $tmp/build.log:" >&2
        tail -n 20 "$tmp/build.log" >&2
        rm -rf --one-file-system "$tmp"
    fi
    [ "$rc" = 0 ] && echo "vm: built $dir in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))" >&2
    return "$rc"
}

# vm_finish TMP: configures TMP/root for booting, then makes TMP/vmlinux,
# TMP/initrd.img, TMP/root.img and TMP/id_ed25519 (the key root and the test
# users accept; it only ever opens this VM, on 127.0.0.1).
vm_finish() {
    local t=$1 r=$1/root kver
    rm -f "$r/usr/sbin/policy-rc.d"
    echo vm13 >"$r/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tvm13\n' >"$r/etc/hosts"
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\nhost0 /mnt/host 9p trans=virtio,version=9p2000.L,msize=512000,ro,nofail 0 0\n' >"$r/etc/fstab"
    mkdir -p "$r/mnt/host"
    # An empty machine-id: a fresh transient one per boot, no first-boot logic.
    : >"$r/etc/machine-id"
    # Network: DHCP from QEMU's user-mode stack.
    mkdir -p "$r/etc/systemd/network" "$r/etc/systemd/system/multi-user.target.wants" \
        "$r/etc/systemd/system/sockets.target.wants" "$r/etc/systemd/system/network-online.target.wants"
    printf '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n' >"$r/etc/systemd/network/10-vm.network"
    ln -sf /usr/lib/systemd/system/systemd-networkd.service "$r/etc/systemd/system/multi-user.target.wants/"
    # Host keys per boot, as in debian13.sh.
    rm -f "$r"/etc/ssh/ssh_host_*
    mkdir -p "$r/etc/systemd/system/ssh.service.d"
    printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
        >"$r/etc/systemd/system/ssh.service.d/hostkeys.conf"
    printf 'UseDNS no\nPermitRootLogin prohibit-password\n' >"$r/etc/ssh/sshd_config.d/vm.conf"
    ssh-keygen -q -t ed25519 -N '' -C pam_nsjail-vm -f "$t/id_ed25519" || return 1
    install -d -m700 "$r/root/.ssh"
    install -m600 "$t/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
    # Timers would fire at random moments during a test; the console getty
    # is not needed (the serial line is only a log).
    rm -rf "$r/etc/systemd/system/timers.target.wants" "$r/etc/systemd/system/getty.target.wants"
    find "$r/run" -mindepth 1 -delete
    # The initrd: only what finds and mounts the root disk.
    printf 'MODULES=list\nCOMPRESS=zstd\n' >"$r/etc/initramfs-tools/conf.d/vm.conf"
    printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >"$r/etc/initramfs-tools/modules"
    kver=$(ls "$r/lib/modules" | head -1)
    unshare --mount --pid --fork --kill-child --propagation private sh -ec '
        mount -t proc proc "$1/proc"
        chroot "$1" update-initramfs -c -k "$2" || chroot "$1" update-initramfs -u -k "$2"
        chroot "$1" ldconfig
        chroot "$1" journalctl --update-catalog
        chroot "$1" /usr/lib/systemd/systemd-update-done' _ "$r" "$kver" || return 1
    cp "$r/boot/initrd.img-$kver" "$t/initrd.img" || return 1
    python3 "$(dirname "${BASH_SOURCE[0]}")/extract_vmlinux.py" "$r/boot/vmlinuz-$kver" "$t/vmlinux" || return 1
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_Packages "$r/var/log/bootstrap.log"
    mkfs.ext4 -q -F -L vmroot -d "$r" "$t/root.img" 4G || return 1
    # Compact base; each boot writes only to its own overlay.
    qemu-img convert -O qcow2 "$t/root.img" "$t/root.qcow2" && rm -f "$t/root.img"
}

# vm_start SHARE_DIR: boots; returns when sshd answers (or fails after 120 s).
vm_start() {
    local share=$1 img start
    local append="root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 panic=-1 net.ifnames=0"
    if [ -n "$VM_INIT" ]; then
        # The kernel hands the words after "--" to init (Debian's initramfs
        # passes them on): a shell that loads 9p, mounts the share and
        # becomes VM_INIT. fstab is systemd's to mount; nothing else is.
        append="$append init=/bin/sh -- -c \"modprobe 9pnet_virtio; modprobe 9p; mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro host0 /mnt/host; exec /bin/sh /mnt/host/$VM_INIT\""
    fi
    img=$(vm_image) || return 1
    VM_IMAGE=$img
    VM_DIR=$(mktemp -d /var/tmp/nsjail-test.vm.XXXXXX)
    qemu-img create -q -f qcow2 -b "$img/root.qcow2" -F qcow2 "$VM_DIR/overlay.qcow2" || return 1
    install -m600 "$img/id_ed25519" "$VM_DIR/key"
    start=$SECONDS
    qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m "$VM_MEM" \
        -display none -no-reboot -serial "file:$VM_DIR/console.log" -monitor none \
        -serial "unix:$VM_DIR/ttyS1.sock,server=on,wait=off" \
        -kernel "$img/vmlinux" -initrd "$img/initrd.img" \
        -append "$append" \
        -drive "file=$VM_DIR/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
        -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$VM_PORT-:22" \
        -virtfs "local,path=$share,mount_tag=host0,security_model=none,readonly=on" \
        </dev/null >"$VM_DIR/qemu.log" 2>&1 &
    VM_PID=$!
    while [ $((SECONDS - start)) -lt 120 ]; do
        if ! kill -0 "$VM_PID" 2>/dev/null; then
            echo "# vm: QEMU exited:" >&2
            tail -5 "$VM_DIR/qemu.log" "$VM_DIR/console.log" >&2
            return 1
        fi
        if vm_ssh true 2>/dev/null; then
            echo "# vm: sshd answered after $((SECONDS - start)) s" >&2
            return 0
        fi
        sleep 1
    done
    echo "# vm: no sshd after 120 s; console tail:" >&2
    tail -20 "$VM_DIR/console.log" >&2
    return 1
}

vm_ssh() {
    local user=root
    if [ "${1-}" = -u ]; then
        user=$2
        shift 2
    fi
    ssh -q -i "$VM_DIR/key" -p "$VM_PORT" -o BatchMode=yes -o ConnectTimeout=5 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        "$user@127.0.0.1" "$@"
}

vm_stop() {
    if [ -n "$VM_PID" ] && kill -0 "$VM_PID" 2>/dev/null; then
        if [ -n "$VM_INIT" ]; then
            # No init system to shut down: power off now (the overlay is
            # thrown away anyway).
            vm_ssh 'echo o >/proc/sysrq-trigger' >/dev/null 2>&1
        else
            vm_ssh systemctl poweroff >/dev/null 2>&1
        fi
        for _ in $(seq 30); do
            kill -0 "$VM_PID" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$VM_PID" 2>/dev/null && kill -KILL "$VM_PID"
        wait "$VM_PID" 2>/dev/null
    fi
    VM_PID=
    [ -n "$VM_DIR" ] && rm -rf --one-file-system "$VM_DIR"
    VM_DIR=
    return 0
}
