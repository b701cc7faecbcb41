#!/bin/bash
# Resource limits on a host that cannot enforce them: this machine binds
# every controller to cgroup v1 (its v2 hierarchy has none) and runs no
# systemd. A policy with limits must never give a silently unlimited login:
# refused with on_error=deny (the default), let in without limits with a
# LOG_ERR line under on_error=allow; check and explain say why. (Where
# limits are real, the Debian 13 VM tests them: tests/vm/10-limits.sh.)
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

host_user_ns=$(readlink /proc/self/ns/user)
include=$(cat /etc/pam.d/nsjail)
ERR_PRI='^<83>'
if [ -n "$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)" ]; then
    echo "1..0 # SKIP this host has cgroup v2 controllers; the refusal path needs one without"
    exit 0
fi

set_policy "$(test_policy)
memory_max = \"1G\"
tasks_max = 256"
out=$(nsjail-helper check 2>&1)
check "check accepts the limits but warns they cannot be enforced here" \
    grep -q "warning: .*students.*resource limits (memory_max=1G tasks_max=256) cannot be enforced" <<<"$out"
check "explain says the limits are not enforceable here" \
    sh -c 'nsjail-helper explain alice | grep -q "NOT enforceable on this host: .*v1/hybrid"'

log_clear
refused=$(ssh_as alice 'echo IN' 2>/dev/null)
check_eq "on_error=deny: no shell for alice" "" "$(grep IN <<<"$refused")"
check "on_error=deny: the log says why, at LOG_ERR" \
    log_has "$ERR_PRI.*user=alice .*policy=students action=refused .*step=limits error=\"resource limits \(memory_max=1G tasks_max=256\) cannot be enforced: .*v1/hybrid host.*reason=\"on_error=deny\""
check "no set was created" sh -c '[ -z "$(ls /run/pam_nsjail/sets)" ]'
check_eq "an exempt user is not affected" IN "$(ssh_as carol 'echo IN' 2>/dev/null)"

printf '%s\n' "${include/session  required   pam_nsjail.so/session  required   pam_nsjail.so on_error=allow}" >/etc/pam.d/nsjail
log_clear
ns=$(ssh_as alice 'readlink /proc/self/ns/user' 2>/dev/null | tail -1)
check "on_error=allow: alice is isolated (without limits)" test -n "$ns" -a "$ns" != "$host_user_ns"
check "on_error=allow: a LOG_ERR line says the limits are not enforced" \
    log_has "$ERR_PRI.*user=alice .*action=isolated .*limits=unenforced error=\"resource limits .*reason=\"on_error=allow\""
printf '%s\n' "$include" >/etc/pam.d/nsjail
done_testing
