#!/bin/bash
# The test suite: formatting and lints, unit tests, then every end-to-end
# scenario in tests/e2e (each in its own hermetic sandbox with a real sshd,
# pamtester and throwaway users; nothing touches the host). Run as root:
#     sudo bash tests/run.sh
# Ends with "N passed, N failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.." || exit 1
passed=0
failed=0
step() { # NAME CMD...: one counted step
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok - $name"
    else
        failed=$((failed + 1))
        echo "not ok - $name"
    fi
}

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: must run as root (end-to-end tests use namespaces, sshd and useradd in a sandbox)" >&2
    exit 1
fi
for tool in sshd pamtester ssh unshare python3 pkg-config; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        echo "tests/run.sh: $tool is missing: apt-get install openssh-server openssh-client pamtester util-linux python3 pkg-config libpam0g-dev" >&2
        exit 1
    }
done

step "cargo build --release --locked" cargo build --release --locked --quiet
step "cargo build --examples --locked" cargo build --release --locked --quiet --examples
step "cargo build (failpoints test build: helper and module)" cargo build --release --locked --quiet \
    --features nsjail-helper/failpoints --target-dir target/failpoints
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --locked --quiet --all-targets -- -D warnings
step "cargo test (unit tests, with the root-only ones)" cargo test --workspace --locked --quiet -- --include-ignored

# run_e2e SCRIPT [ENV=VALUE...]: one end-to-end script, counted by its TAP.
run_e2e() {
    local script=$1 out rc p f plan
    shift
    echo "# $script${*:+ ($*)}"
    out=$(env "$@" timeout 600 bash "$script" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E '^(ok|not ok|#)' | sed 's/^/    /'
    p=$(printf '%s\n' "$out" | grep -c '^ok ')
    f=$(printf '%s\n' "$out" | grep -c '^not ok ')
    plan=$(printf '%s\n' "$out" | grep -c '^1\.\.')
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        # The script died without reporting a failure: count it as one.
        f=1
        printf '%s\n' "$out" | tail -20 | sed 's/^/    | /'
    fi
    if [ "$plan" = 0 ] && [ "$f" = 0 ]; then
        f=1
        echo "    not ok - $script ended without a plan"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

# Debian 12 (this host's OpenSSH 9.2, no systemd): every scenario.
for script in tests/e2e/*.sh; do
    run_e2e "$script"
done

# Debian 13 (OpenSSH 10 with sshd-session, Linux-PAM 1.7): the ssh
# scenarios and the other services (cron, at, util-linux su, runuser and
# login) again, against Debian 13's own binaries in a cached root.
source tests/lib/debian13.sh
start=$SECONDS
if step "Debian 13 root (debootstrap, cached under $DEBIAN13_CACHE)" debian13_root >/dev/null; then
    echo "# Debian 13 root ready after $((SECONDS - start)) s"
    for script in tests/e2e/20-ssh.sh tests/e2e/30-failures.sh tests/e2e/45-audit.sh tests/e2e/86-subid-nsswitch.sh tests/e2e/90-services.sh; do
        run_e2e "$script" NSJAIL_ROOTFS=debian13
    done
    # Debian 13 booted with systemd 257 (logind, pam_systemd, user@; cron,
    # su, runuser and login with pam_systemd in their stacks).
    for script in tests/systemd/*.sh; do
        run_e2e "$script"
    done
fi

# A real Debian 13 VM (QEMU, systemd 257, cgroup v2 with controllers):
# per-user resource limits, which neither this host nor nspawn can enforce.
# The image is cached like the Debian 13 root; each scenario boots it once.
source tests/lib/vm.sh
start=$SECONDS
if step "Debian 13 VM image (cached under $VM_CACHE)" vm_image >/dev/null; then
    echo "# Debian 13 VM image ready after $((SECONDS - start)) s"
    for script in tests/vm/[0-9]*.sh; do
        run_e2e "$script" VM_PORT="${VM_PORT:-2822}"
    done
fi

leftover=$(ls -d /var/tmp/nsjail-test.* 2>/dev/null)
step "no sandbox directory left on the host" test -z "$leftover"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
