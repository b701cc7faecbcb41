#!/bin/bash
# Sub-ids from libsubid when /etc/nsswitch.conf has a subid: line (loaded
# at run time by the helper only: libsubid.so.4 on Debian 12, .so.5 on
# Debian 13), from /etc/subuid and /etc/subgid otherwise. libsubid's own
# "files" backend reads those same files, so both paths must give the same
# maps; a source libsubid cannot load is refused, never replaced by files.
source "$(dirname "$0")/../lib/sandbox.sh"
sandbox_enter "$@"

# Each map's lines sorted: the kernel shows a map of more than five lines
# sorted by inside id, explain in the order they are written.
own_maps='for m in uid_map gid_map; do sed "s/^ *//" /proc/self/$m | tr -s " " | sort -n; echo -; done'
maps_of() { ssh_as "$1" "$own_maps" 2>&1 | tr '\n' '|'; }
explain_maps() {
    local out m
    out=$(nsjail-helper explain "$1" 2>&1)
    for m in uid_map gid_map; do
        awk -v m="^$m:" '$0 ~ m {on = 1; next} /^[^ ]/ {on = 0} on' <<<"$out" | sed 's/^ *//' | tr -s ' ' | sort -n
        echo -
    done | tr '\n' '|'
}
refused() { ! ssh_as "$1" 'echo IN' 2>/dev/null | grep -q IN; }
set_subid_line() {
    sed -i '/^subid:/d' /etc/nsswitch.conf
    [ -z "$1" ] || echo "subid: $1" >>/etc/nsswitch.conf
}
# Distinct ranges for uids and gids, several lines: the order matters.
printf '%s\n' alice:100000:1000 alice:400000:65536 "bob:500000:65536" >/etc/subuid
printf '%s\n' alice:700000:65536 "bob:800000:65536" >/etc/subgid

# ---- no subid line: the files, read by the helper itself ----------------------------
set_subid_line ""
check "explain: no subid line -> subids: /etc/subuid and /etc/subgid" \
    sh -c "nsjail-helper explain alice | grep -qx 'subids: *\/etc\/subuid and \/etc\/subgid'"
files_maps=$(maps_of alice)
files_explain=$(explain_maps alice)
check "files: alice's login maps her range 400000 (the first usable line)" grep -q '^ *1 400001 ' <<<"${files_maps//|/$'\n'}"
check "files: explain shows the maps the login got" test "$files_explain" = "$files_maps"

# ---- subid: files -> libsubid's files backend ---------------------------------------
lib=$(ls /usr/lib/x86_64-linux-gnu/libsubid.so.[45] 2>/dev/null | tail -1)
if [ -z "$lib" ]; then
    not_ok "libsubid is installed (libsubid4 on Debian 12, libsubid5 on Debian 13)"
    done_testing
    exit 1
fi
set_subid_line files
out=$(nsjail-helper explain alice 2>&1)
check "explain: subid: files -> subids: libsubid (nsswitch subid: files)" \
    grep -qx 'subids: *libsubid (nsswitch subid: files)' <<<"$out"
check_eq "libsubid (${lib##*/}): explain gives the same maps as the files" "$files_explain" "$(explain_maps alice)"
log_clear
ssh_as alice 'exec sleep 4' &
hold=$!
wait_for nsjail-helper enter alice -- true
check_eq "libsubid: alice's login gets the same uid and gid maps as with the files" \
    "$files_maps" "$(nsjail-helper enter alice -- sh -c "$own_maps" | tr '\n' '|')"
check "libsubid: the login was isolated" log_has "user=alice service=sshd policy=students action=isolated"
# The module asked the helper: libsubid is not loaded into sshd's monitor.
# (sshd up to 9.7: "sshd: alice [priv]"; 9.8 on: "sshd-session: alice [priv]").
monitors=$(pgrep -f '^sshd(-session)?: alice' | tr '\n' ' ')
mapped=$(for p in $monitors; do grep -c libsubid "/proc/$p/maps"; done | tr '\n' ' ')
none=$(for p in $monitors; do printf '0 '; done)
check_eq "libsubid is mapped into none of sshd's processes for alice (pids $monitors)" \
    "${none:-at least one sshd process}" "$mapped"
wait $hold
check "check: a subid line libsubid can honour is not reported" \
    sh -c "! nsjail-helper check 2>&1 | grep -q 'sub-ids:'"

# ---- subid: nosuch -> refused, never the files ------------------------------------
set_subid_line nosuch
WAIT_TRIES=100 wait_for sh -c '! nsjail-helper enter alice -- true'
log_clear
check "subid: nosuch -> alice is refused" refused alice
check "log: the refusal names the source that cannot be loaded" \
    log_has "user=alice .*action=refused .*nsswitch.conf 'subid: nosuch': source nosuch: libsubid_nosuch.so: .*would use /etc/subuid instead"
check_eq "control: carol (admins, exempt) still logs in, in the host namespaces" \
    "$(readlink /proc/self/ns/user)" "$(ssh_as carol 'readlink /proc/self/ns/user' 2>&1)"
out=$(nsjail-helper check 2>&1)
check "check: reports the subid line it cannot honour" \
    grep -q "warning: sub-ids: nsswitch.conf 'subid: nosuch': source nosuch: libsubid_nosuch.so" <<<"$out"
check "explain: says a login would be refused, and why" \
    sh -c "nsjail-helper explain alice | grep -q \"error: .*libsubid_nosuch.so\""

# ---- back to no subid line: the files again ----------------------------------------
set_subid_line ""
check_eq "no subid line again: the files give the same maps" "$files_maps" "$(maps_of alice)"

done_testing
