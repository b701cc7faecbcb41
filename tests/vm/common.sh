# shellcheck shell=bash
# Shared by the VM scenarios: boot the cached Debian 13 VM (tests/lib/vm.sh)
# with this build installed as the package would install it, two students
# (alice, bob) and root's test key for everyone.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$REPO/tests/lib/sandbox.sh"
source "$REPO/tests/lib/vm.sh"

VM_SHARE=

# vm_boot_with_build POLICY_TEXT: boots and installs; returns non-zero on failure.
vm_boot_with_build() {
    VM_SHARE=$(mktemp -d /var/tmp/nsjail-test.share.XXXXXX)
    install -m755 "$REPO/target/release/nsjail-helper" "$VM_SHARE/nsjail-helper"
    install -m644 "$REPO/target/release/libpam_nsjail.so" "$VM_SHARE/pam_nsjail.so"
    install -m644 "$REPO/config/pam.d/nsjail" "$VM_SHARE/nsjail"
    # For a boot without systemd (VM_INIT): its init and a syslog.
    install -m755 "$REPO/tests/vm/nosystemd-init.sh" "$VM_SHARE/nosystemd-init.sh"
    install -m644 "$REPO/tests/lib/syslog_listener.py" "$VM_SHARE/syslog_listener.py"
    printf '%s\n' "$1" >"$VM_SHARE/policy.toml"
    vm_start "$VM_SHARE" || return 1
    vm_ssh 'set -e
        install -m755 /mnt/host/nsjail-helper /usr/sbin/nsjail-helper
        install -m644 /mnt/host/pam_nsjail.so /usr/lib/x86_64-linux-gnu/security/pam_nsjail.so
        install -m644 /mnt/host/nsjail /etc/pam.d/nsjail
        echo "@include nsjail" >>/etc/pam.d/sshd
        install -D -m644 /mnt/host/policy.toml /etc/security/pam_nsjail.toml
        groupadd students
        for u in alice bob; do
            useradd -m -s /bin/bash -G students $u
            usermod -p "*" $u
            install -d -o $u -m700 /home/$u/.ssh
            install -o $u -m600 /root/.ssh/authorized_keys /home/$u/.ssh/authorized_keys
        done
        nsjail-helper check'
}

vm_teardown() {
    vm_stop
    [ -n "$VM_SHARE" ] && rm -rf "$VM_SHARE"
    VM_SHARE=
}

# set_policy_vm TEXT: replaces the VM's policy.
set_policy_vm() {
    printf '%s\n' "$1" | vm_ssh 'cat >/etc/security/pam_nsjail.toml && nsjail-helper check'
}

# hold USER MARK [JOB]: a login held open in the background (a pty, as an
# interactive user), starting JOB (ending in "&") then `sleep MARK`;
# release MARK ends it.
declare -A HELD
hold() {
    setsid ssh -tt -i "$VM_DIR/key" -p "$VM_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$1@127.0.0.1" "${3:+$3 }exec sleep $2" \
        </dev/null >/dev/null 2>&1 &
    HELD[$2]=$!
    for _ in $(seq 60); do
        vm_ssh "pgrep -u $1 -fx 'sleep $2'" >/dev/null && return 0
        sleep 0.5
    done
    return 1
}
release() { kill "${HELD[$1]}" 2>/dev/null; }

# vm_wait CMD: retries a VM-side shell condition for 30 s.
vm_wait() {
    for _ in $(seq 60); do
        vm_ssh "$1" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}
