#!/bin/sh
# pid 1 of the VM's second boot, without systemd (tests/lib/vm.sh VM_INIT):
# what a small init system of a host without systemd does, and no more.
# Debian's initramfs has already moved /dev, /proc, /sys and /run onto the
# root; the share is at /mnt/host.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
# The unified cgroup v2 hierarchy, as a host without systemd mounts it
# (OpenRC's rc_cgroup_mode="unified"): every controller is available.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mountpoint -q /run || mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock && chmod 1777 /run/lock
mount -o remount,rw /
hostname vm13
# QEMU's user network: the guest is 10.0.2.15, the gateway 10.0.2.2.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# A syslog of the test's own at /dev/log (authpriv lines of the module and
# the helper land in /var/log/test-syslog), and the kernel's messages
# through dmesg.
python3 /mnt/host/syslog_listener.py /dev/log /var/log/test-syslog &
install -m664 -o root -g utmp /dev/null /run/utmp
ssh-keygen -A >/dev/null 2>&1
mkdir -p -m755 /run/sshd
/usr/sbin/sshd
echo "nosystemd-init: sshd started" >/dev/console
# pid 1 reaps every orphan (sets' holders among them) until power-off.
exec python3 -c '
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
'
