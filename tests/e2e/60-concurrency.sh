#!/bin/bash
# Concurrency: many logins of one user converge on exactly one set; many
# users in parallel each get their own; nothing leaks, nothing deadlocks.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

uid_alice=$(id -u alice)
for round in 1 2; do
    # 50 parallel runs of alice: each records the pid namespace it saw.
    runs_in_parallel c "$(repeat_word 50 alice)" 'readlink /proc/self/ns/pid; sleep 1'
    check_eq "round $round: 50 parallel runs of alice all succeeded" 50 "$(runs_ok c)"
    check_eq "round $round: 50 parallel runs of alice converged on one set" 1 "$(runs_sets c)"
    check "round $round: the set ended with the last session" \
        wait_for sh -c "test ! -e /run/pam_nsjail/sets/u$uid_alice && ! pgrep -x nsjail-holder"
done

# 20 ssh logins of alice at once converge too.
pids=()
for i in $(seq 20); do
    ssh_as alice 'readlink /proc/self/ns/pid; sleep 1' >"/run/nsjail-test/s$i.out" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
check_eq "20 parallel ssh logins of alice all got in" 20 "$(grep -l '^pid:' /run/nsjail-test/s*.out | wc -l)"
check_eq "20 parallel ssh logins of alice share one set" 1 "$(cat /run/nsjail-test/s*.out | sort -u | wc -l)"

# 20 users in parallel, twice: each gets their own set.
for i in $(seq -w 20); do
    useradd -m -G students "user$i"
done
for round in 1 2; do
    start=$(date +%s.%N)
    runs_in_parallel u "$(printf 'user%s ' $(seq -w 20))" 'readlink /proc/self/ns/pid; sleep 1'
    end=$(date +%s.%N)
    check_eq "round $round: 20 users in parallel all succeeded" 20 "$(runs_ok u)"
    check_eq "round $round: 20 users in parallel got 20 distinct sets" 20 "$(runs_sets u)"
    echo "# round $round: 20 users opened and closed in $(python3 -c "print(round($end - $start, 2))") s (each session sleeps 1 s)"
done
check "no set, holder or registry entry leaked" \
    wait_for sh -c '[ -z "$(ls /run/pam_nsjail/sets)" ] && ! pgrep -x nsjail-holder'
check_eq "no session process leaked" 0 "$(pgrep -c -u alice)"
done_testing
