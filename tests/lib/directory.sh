# shellcheck shell=bash
# A directory inside the sandbox (tests/lib/sandbox.sh): a real slapd
# (Debian's slapd, on loopback of the sandbox's own network namespace) with
# users alice/bob/carol/dave and groups students/admins/ldapusers, and a
# real sssd (LDAP provider) that NSS asks for passwd and group. Everything
# it writes lives on tmpfs mounts of the sandbox (/run, and /var/lib/sss,
# /var/log/sssd mounted over here), so nothing reaches the host.
# Source after sandbox_enter; call dir_setup.

DIR_RUN=/run/nsjail-test/ldap
DIR_URI=ldap://127.0.0.1:3890
DIR_BASE=dc=example,dc=test
DIR_ROOTDN=cn=admin,$DIR_BASE
DIR_PW=secret
# uid and gid numbers no /etc/passwd or /etc/group has.
DIR_UID_ALICE=50001 DIR_UID_BOB=50002 DIR_UID_CAROL=50003 DIR_UID_ERIN=50005 DIR_UID_FRANK=50006
DIR_UID_GINA=50007
DIR_GID_STUDENTS=50100 DIR_GID_ADMINS=50200 DIR_GID_LDAPUSERS=50300 DIR_GID_INTERNS=50400
DIR_GID_CONTRACTORS=50500

# dir_ldif: the tree. alice: students is her PRIMARY group; bob and erin:
# students through memberUid (secondary); carol: admins (secondary);
# frank: interns (secondary), a group no one else is in; gina: contractors
# (primary), a group no one else is in and no test looks up by name.
dir_ldif() {
    local u uid gid
    cat <<EOF
dn: $DIR_BASE
objectClass: dcObject
objectClass: organization
o: example
dc: example

dn: ou=people,$DIR_BASE
objectClass: organizationalUnit
ou: people

dn: ou=groups,$DIR_BASE
objectClass: organizationalUnit
ou: groups

dn: cn=students,ou=groups,$DIR_BASE
objectClass: posixGroup
cn: students
gidNumber: $DIR_GID_STUDENTS
memberUid: bob
memberUid: erin

dn: cn=admins,ou=groups,$DIR_BASE
objectClass: posixGroup
cn: admins
gidNumber: $DIR_GID_ADMINS
memberUid: carol

dn: cn=ldapusers,ou=groups,$DIR_BASE
objectClass: posixGroup
cn: ldapusers
gidNumber: $DIR_GID_LDAPUSERS

dn: cn=interns,ou=groups,$DIR_BASE
objectClass: posixGroup
cn: interns
gidNumber: $DIR_GID_INTERNS
memberUid: frank

dn: cn=contractors,ou=groups,$DIR_BASE
objectClass: posixGroup
cn: contractors
gidNumber: $DIR_GID_CONTRACTORS
EOF
    for u in alice:$DIR_UID_ALICE:$DIR_GID_STUDENTS bob:$DIR_UID_BOB:$DIR_GID_LDAPUSERS \
        carol:$DIR_UID_CAROL:$DIR_GID_LDAPUSERS erin:$DIR_UID_ERIN:$DIR_GID_LDAPUSERS \
        frank:$DIR_UID_FRANK:$DIR_GID_LDAPUSERS gina:$DIR_UID_GINA:$DIR_GID_CONTRACTORS; do
        IFS=: read -r u uid gid <<<"$u"
        cat <<EOF

dn: uid=$u,ou=people,$DIR_BASE
objectClass: account
objectClass: posixAccount
objectClass: shadowAccount
uid: $u
cn: $u
uidNumber: $uid
gidNumber: $gid
homeDirectory: /home/$u
loginShell: /bin/bash
EOF
    done
}

# dir_remove_local_users: the sandbox's own alice/bob/carol and groups go,
# so every name below comes from the directory.
dir_remove_local_users() {
    local u
    for u in alice bob carol; do userdel -r "$u" 2>/dev/null; done
    groupdel students 2>/dev/null
    groupdel admins 2>/dev/null
    : >/etc/subuid
    : >/etc/subgid
}

slapd_start() {
    mkdir -p "$DIR_RUN/db"
    cat >"$DIR_RUN/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $DIR_RUN/slapd.pid
loglevel 0
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "$DIR_BASE"
rootdn "$DIR_ROOTDN"
rootpw $DIR_PW
directory $DIR_RUN/db
index objectClass eq
index uid,memberUid,cn eq
EOF
    [ -s "$DIR_RUN/db/data.mdb" ] || dir_ldif | slapadd -q -f "$DIR_RUN/slapd.conf" || return 1
    slapd -f "$DIR_RUN/slapd.conf" -h "$DIR_URI/" || return 1
    wait_for ldapsearch -x -H "$DIR_URI" -b "$DIR_BASE" -s base
}

slapd_stop() {
    local pid
    [ -s "$DIR_RUN/slapd.pid" ] || return 0
    pid=$(cat "$DIR_RUN/slapd.pid")
    kill "$pid" 2>/dev/null
    WAIT_TRIES=200 wait_for sh -c "! kill -0 $pid"
    rm -f "$DIR_RUN/slapd.pid"
}

# ldap_modify LDIF: applies LDIF as the directory's admin.
ldap_modify() {
    printf '%s\n' "$1" | ldapmodify -x -H "$DIR_URI" -D "$DIR_ROOTDN" -w "$DIR_PW" >/dev/null
}

# sssd_start: sssd with the LDAP provider; case-insensitive names; entries
# cached 10 minutes (so a test decides when they expire: sss_cache -E);
# NSS's fast memory cache off (it would answer without asking sssd).
sssd_start() {
    local d
    for d in /var/lib/sss /var/log/sssd; do
        mkdir -p "$d"
        mount -t tmpfs -o mode=755 tmpfs "$d"
    done
    mkdir -p /var/lib/sss/{db,mc,pipes/private,pubconf,gpo_cache,keytabs} /etc/sssd
    chmod 700 /var/lib/sss/pipes/private
    cat >/etc/sssd/sssd.conf <<EOF
[sssd]
services = nss
domains = LDAP

[nss]
memcache_timeout = 0
entry_negative_timeout = 1

[domain/LDAP]
id_provider = ldap
auth_provider = none
ldap_uri = $DIR_URI
ldap_search_base = $DIR_BASE
ldap_schema = rfc2307
ldap_id_use_start_tls = false
ldap_auth_disable_tls_never_use_in_production = true
case_sensitive = false
cache_credentials = false
enumerate = false
entry_cache_timeout = 600
entry_cache_nowait_percentage = 0
ldap_network_timeout = 2
ldap_opt_timeout = 2
offline_timeout = 60
EOF
    chmod 600 /etc/sssd/sssd.conf
    cat >/etc/nsswitch.conf <<EOF
passwd:         files sss
group:          files sss
shadow:         files
hosts:          files
EOF
    sssd -i --logger=files &
    SSSD_PID=$!
    wait_for getent passwd alice
}

sssd_stop() {
    [ -n "${SSSD_PID:-}" ] || return 0
    kill "$SSSD_PID" 2>/dev/null
    wait "$SSSD_PID" 2>/dev/null
    SSSD_PID=
}

# dir_home USER: a home with the test key, owned by the directory's uid.
dir_home() {
    local u=$1 uid gid
    uid=$(id -u "$u") gid=$(id -g "$u")
    install -d -o "$uid" -g "$gid" -m755 "/home/$u"
    install -d -o "$uid" -g "$gid" -m700 "/home/$u/.ssh"
    install -o "$uid" -g "$gid" -m600 "$SB_KEY.pub" "/home/$u/.ssh/authorized_keys"
}

dir_teardown() {
    sssd_stop
    slapd_stop
}
