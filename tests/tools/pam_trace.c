/*
 * pam_trace.so — a measuring tool, not part of the product (issue 18,
 * docs/SERVICES.md). For every PAM hook it runs in, it appends one line
 * to the file named by its first module argument:
 *
 *   t=1733480000.123 hook=open_session flags=0 pid=812 ppid=811 sid=811 exe=/usr/sbin/cron
 *   comm=cron uid=0,0,0 gid=0,0,0 groups=0 threads=1 pidns=4026531836
 *   mntns=4026532201 userns=4026531837 cg=/... service=cron user=alice
 *   tty=cron ruser=- rhost=-
 *
 * uid=/gid= are real,effective,saved; groups= the supplementary list;
 * threads= the Threads: line of /proc/self/status; *ns= the inode numbers
 * of /proc/self/ns/{pid,mnt,user}; cg= the cgroup v2 (0::) path if any. Every hook
 * returns PAM_IGNORE, so the line changes no stack's result. Put it first
 * in a stack (`auth optional pam_trace.so /tmp/trace.log`) to see every
 * call, before a `sufficient` module can end the stack.
 *
 * Build: gcc -shared -fPIC -o pam_trace.so pam_trace.c -lpam
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_modules.h>

static size_t add(char *buf, size_t len, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (len >= cap)
        return len;
    va_start(ap, fmt);
    n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    return len + (size_t)n < cap ? len + (size_t)n : cap - 1;
}

static unsigned long ns_inode(const char *name)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof path, "/proc/self/ns/%s", name);
    if (stat(path, &st) != 0)
        return 0;
    return (unsigned long)st.st_ino;
}

/* First line of FILE that starts with PREFIX, without the prefix and
 * the newline; "-" if none. */
static void proc_line(const char *file, const char *prefix, char *out, size_t cap)
{
    char line[512];
    FILE *f = fopen(file, "re");
    size_t plen = strlen(prefix);

    snprintf(out, cap, "-");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, prefix, plen) == 0) {
            char *v = line + plen;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, cap, "%s", v);
            break;
        }
    }
    fclose(f);
}

static const char *item(pam_handle_t *pamh, int type)
{
    const void *v = NULL;

    if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || !v)
        return "-";
    return v;
}

static const char *flag_names(int flags, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = 0;
    if (flags & PAM_SILENT)
        len = add(buf, len, cap, "|SILENT");
    if (flags & PAM_ESTABLISH_CRED)
        len = add(buf, len, cap, "|ESTABLISH");
    if (flags & PAM_DELETE_CRED)
        len = add(buf, len, cap, "|DELETE");
    if (flags & PAM_REINITIALIZE_CRED)
        len = add(buf, len, cap, "|REINITIALIZE");
    if (flags & PAM_REFRESH_CRED)
        len = add(buf, len, cap, "|REFRESH");
    if (flags & PAM_DISALLOW_NULL_AUTHTOK)
        len = add(buf, len, cap, "|DISALLOW_NULL_AUTHTOK");
    if (flags & PAM_CHANGE_EXPIRED_AUTHTOK)
        len = add(buf, len, cap, "|CHANGE_EXPIRED_AUTHTOK");
    if (flags & PAM_PRELIM_CHECK)
        len = add(buf, len, cap, "|PRELIM_CHECK");
    if (flags & PAM_UPDATE_AUTHTOK)
        len = add(buf, len, cap, "|UPDATE_AUTHTOK");
    return len ? buf + 1 : "0";
}

static void trace(pam_handle_t *pamh, const char *hook, int flags, int argc, const char **argv)
{
    char line[4096], exe[PATH_MAX], comm[64], threads[32], cg[512], fl[160];
    gid_t groups[256];
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    size_t len = 0;
    ssize_t n;
    int ngroups, i, fd;
    struct timespec ts;

    if (argc < 1 || argv[0][0] != '/')
        return;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    proc_line("/proc/self/comm", "", comm, sizeof comm);
    proc_line("/proc/self/status", "Threads:", threads, sizeof threads);
    proc_line("/proc/self/cgroup", "0::", cg, sizeof cg);
    getresuid(&ru, &eu, &su);
    getresgid(&rg, &eg, &sg);
    ngroups = getgroups(256, groups);

    clock_gettime(CLOCK_REALTIME, &ts);
    len = add(line, len, sizeof line, "t=%ld.%03ld ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
    len = add(line, len, sizeof line, "hook=%s flags=%s pid=%d ppid=%d sid=%d exe=%s comm=%s",
              hook, flag_names(flags, fl, sizeof fl), (int)getpid(), (int)getppid(),
              (int)getsid(0), exe, comm);
    len = add(line, len, sizeof line, " uid=%u,%u,%u gid=%u,%u,%u groups=",
              (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg);
    if (ngroups <= 0)
        len = add(line, len, sizeof line, "-");
    for (i = 0; i < ngroups; i++)
        len = add(line, len, sizeof line, "%s%u", i ? "," : "", (unsigned)groups[i]);
    len = add(line, len, sizeof line,
              " threads=%s pidns=%lu mntns=%lu userns=%lu cg=%s service=%s user=%s tty=%s"
              " ruser=%s rhost=%s\n",
              threads, ns_inode("pid"), ns_inode("mnt"), ns_inode("user"), cg,
              item(pamh, PAM_SERVICE), item(pamh, PAM_USER), item(pamh, PAM_TTY),
              item(pamh, PAM_RUSER), item(pamh, PAM_RHOST));

    /* One write(2) per line with O_APPEND: lines from several processes
     * never interleave. The file is created world-writable so a caller
     * that already dropped its ids can still append. */
    fd = open(argv[0], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0)
        return;
    fchmod(fd, 0666);
    if (write(fd, line, len) < 0) {
        /* nothing to do: a tracer must never change the outcome */
    }
    close(fd);
}

#define HOOK(fn, name)                                                         \
    PAM_EXTERN int fn(pam_handle_t *pamh, int flags, int argc, const char **argv) \
    {                                                                          \
        trace(pamh, name, flags, argc, argv);                                  \
        return PAM_IGNORE;                                                     \
    }

HOOK(pam_sm_authenticate, "authenticate")
HOOK(pam_sm_setcred, "setcred")
HOOK(pam_sm_acct_mgmt, "acct_mgmt")
HOOK(pam_sm_open_session, "open_session")
HOOK(pam_sm_close_session, "close_session")
HOOK(pam_sm_chauthtok, "chauthtok")
