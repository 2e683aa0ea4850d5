/* SPDX-License-Identifier: BSD-3-Clause */
/* harness.c - test-support library for cachasided integration tests.
 * See harness.h for the API, the error policy and the timeouts. */
#define _GNU_SOURCE
#define H_INTERNAL 1 /* no call-site macros inside the library */
#include "harness.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAXPROC 64
#define H_TAIL 1500

static pid_t init_pid;
static int atexit_done;
static struct { pid_t pid, owner; } procs[H_MAXPROC];
struct fdbuf { int used; char *buf; size_t len, cap; };
static struct fdbuf *fdbufs;
static int nfdbufs;
static char tmpdir[64];
static pid_t tmpdir_owner;
static unsigned seq;

static const char *at_file;
static int at_line;

static void h_atexit(void);

/* Failures are reported at the test's call site recorded by h_at(). */
#define H_FAIL(...)                                                         \
    _ck_assert_failed(at_file ? at_file : __FILE__,                         \
                      at_file ? at_line : __LINE__, "Failed", __VA_ARGS__)

void h_at(const char *file, int line)
{
    at_file = file;
    at_line = line;
}

/* Once per process (Check's CK_FORK children re-run it): ignore SIGPIPE,
 * forget processes the parent spawned, register the atexit handler. */
static void h_init(void)
{
    if (init_pid == getpid())
        return;
    init_pid = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    for (int i = 0; i < H_MAXPROC; i++)
        if (procs[i].owner != init_pid)
            procs[i].pid = procs[i].owner = 0;
    if (!atexit_done && atexit(h_atexit) == 0)
        atexit_done = 1; /* inherited by forked children: runs there too */
}

/* ------------------------------------------------------------ time ---- */
long long h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void h_msleep(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int tmo(int t) { return t < 0 ? H_TIMEOUT_MS : t; }

static int left(long long deadline)
{
    long long l = deadline - h_now_ms();
    return l < 0 ? 0 : (int)l;
}

static int min_i(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------------------- formatting ---- */
static char *vfmt(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        H_FAIL("harness: bad format string \"%s\"", fmt);
    char *s = malloc((size_t)n + 1);
    if (!s)
        H_FAIL("harness: out of memory");
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static const char *repr_n(const char *p, size_t n)
{
    static char bufs[4][1100];
    static int k;
    char *b = bufs[k++ & 3];
    size_t o = 0;
    if (!p)
        return "(null)";
    for (size_t i = 0; i < n && o < 1000; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') o += (size_t)sprintf(b + o, "\\r");
        else if (c == '\n') o += (size_t)sprintf(b + o, "\\n");
        else if (c == '\t') o += (size_t)sprintf(b + o, "\\t");
        else if (c == '\\') o += (size_t)sprintf(b + o, "\\\\");
        else if (c < 32 || c > 126) o += (size_t)sprintf(b + o, "\\x%02x", c);
        else b[o++] = (char)c;
    }
    if (o >= 1000)
        o += (size_t)sprintf(b + o, "...");
    b[o] = 0;
    return b;
}

const char *h_repr(const char *raw) { return repr_n(raw, raw ? strlen(raw) : 0); }

/* -------------------------------------------------- files and dirs ---- */
const char *h_tmpdir(void)
{
    h_init();
    if (!tmpdir[0]) {
        char t[] = "/tmp/cachasided-test-XXXXXX";
        if (!mkdtemp(t))
            H_FAIL("h_tmpdir: mkdtemp: %s", strerror(errno));
        snprintf(tmpdir, sizeof tmpdir, "%s", t);
        tmpdir_owner = getpid();
    }
    return tmpdir;
}

char *h_path(const char *name)
{
    static char bufs[8][PATH_MAX];
    static int k;
    const char *dir = h_tmpdir();
    char *b = bufs[k++ & 7];
    int n = snprintf(b, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX)
        H_FAIL("h_path: path too long for \"%s\"", name);
    return b;
}

/* unique per process: CK_FORK children share the tmpdir */
static void unique_path(char *dst, const char *stem, const char *ext)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%d-%u.%s", stem, (int)getpid(), ++seq, ext);
    snprintf(dst, PATH_MAX, "%s", h_path(name));
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    remove(p);
    return 0;
}

static void rm_tmpdir(void)
{
    if (!tmpdir[0] || tmpdir_owner != getpid())
        return;
    const char *keep = getenv("CACHASIDED_KEEP_TMP");
    if (keep && *keep && strcmp(keep, "0") != 0)
        fprintf(stderr, "harness: keeping %s\n", tmpdir);
    else
        nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = 0;
}

void h_write_file(const char *path, const char *data, size_t len)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        H_FAIL("h_write_file: open %s: %s", tmp, strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            H_FAIL("h_write_file: write %s: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0)
        H_FAIL("h_write_file: %s: %s", path, strerror(errno));
}

/* whole file from offset, malloc'd and NUL-terminated; NULL if missing */
static char *slurp(const char *path, long off, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (off > 0 && lseek(fd, off, SEEK_SET) < 0) {
        close(fd);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (cap - n < 2048)
            b = realloc(b, cap *= 2);
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = 0;
    *len = n;
    return b;
}

long h_log_size(const char *logpath)
{
    struct stat st;
    return stat(logpath, &st) == 0 ? (long)st.st_size : 0;
}

static int file_has(const char *path, long off, const char *needle)
{
    size_t n;
    char *d = slurp(path, off, &n);
    int r = d && memmem(d, n, needle, strlen(needle)) != NULL;
    free(d);
    return r;
}

int h_log_contains(const char *logpath, const char *needle)
{
    return file_has(logpath, 0, needle);
}

int h_wait_log_after(const char *logpath, long offset, const char *needle,
                     int timeout_ms)
{
    long long dl = h_now_ms() + tmo(timeout_ms);
    for (;;) {
        if (file_has(logpath, offset, needle))
            return 0;
        if (h_now_ms() >= dl)
            return -1;
        h_msleep(20);
    }
}

int h_wait_log(const char *logpath, const char *needle, int timeout_ms)
{
    return h_wait_log_after(logpath, 0, needle, timeout_ms);
}

const char *h_log_tail(const char *logpath)
{
    static char buf[H_TAIL + 64];
    long size = h_log_size(logpath);
    size_t n = 0;
    char *d = slurp(logpath, size > H_TAIL ? size - H_TAIL : 0, &n);
    if (!d)
        snprintf(buf, sizeof buf, "(no log at %s)", logpath);
    else
        snprintf(buf, sizeof buf, "%s%s", size > H_TAIL ? "..." : "", d);
    free(d);
    return buf;
}

/* ------------------------------------------------------- processes ---- */
int h_free_port(void)
{
    h_init();
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        H_FAIL("h_free_port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void reg_del(pid_t pid)
{
    for (int i = 0; i < H_MAXPROC; i++)
        if (procs[i].pid == pid && procs[i].owner == getpid())
            procs[i].pid = procs[i].owner = 0;
}

static void child_fail(int fd, int stage)
{
    int msg[2] = { stage, errno };
    ssize_t r = write(fd, msg, sizeof msg);
    (void)r;
    _exit(127);
}

pid_t h_spawn_env(const char *const argv[], const char *const envp_extra[],
                  const char *logpath)
{
    h_init();
    if (!argv || !argv[0])
        H_FAIL("h_spawn: empty argv");
    int slot = -1;
    for (int i = 0; i < H_MAXPROC && slot < 0; i++)
        if (procs[i].pid == 0)
            slot = i;
    if (slot < 0)
        H_FAIL("h_spawn: more than %d live processes", H_MAXPROC);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        H_FAIL("h_spawn: pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        H_FAIL("h_spawn: fork: %s", strerror(errno));
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(logpath ? logpath : "/dev/null",
                       O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            child_fail(pfd[1], 1);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        if (in > 2) close(in);
        if (out > 2) close(out);
#ifdef CLOSE_RANGE_CLOEXEC
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
#endif
            for (int fd = 3; fd < 4096; fd++)
                if (fd != pfd[1])
                    fcntl(fd, F_SETFD, FD_CLOEXEC);
        for (int i = 0; envp_extra && envp_extra[i]; i++) {
            char *kv = strdup(envp_extra[i]), *eq = strchr(kv, '=');
            if (eq) {
                *eq = 0;
                setenv(kv, eq + 1, 1);
            }
        }
        execvp(argv[0], (char *const *)argv);
        child_fail(pfd[1], 2);
    }
    close(pfd[1]);
    int msg[2] = { 0, 0 };
    ssize_t n = 0;
    struct pollfd p = { pfd[0], POLLIN, 0 };
    if (poll(&p, 1, H_TIMEOUT_MS) > 0)
        n = read(pfd[0], msg, sizeof msg);
    close(pfd[0]);
    if (n == (ssize_t)sizeof msg) {
        char cwd[PATH_MAX];
        waitpid(pid, NULL, 0);
        if (!getcwd(cwd, sizeof cwd))
            snprintf(cwd, sizeof cwd, "?");
        if (msg[0] == 1)
            H_FAIL("h_spawn: cannot open log %s: %s", logpath, strerror(msg[1]));
        H_FAIL("h_spawn: cannot exec %s (cwd %s): %s [binaries are found via "
               "CACHASIDED_BIN, CACHASIDED_UPSTREAM_BIN, REDIS_SERVER_BIN]",
               argv[0], cwd, strerror(msg[1]));
    }
    procs[slot].pid = pid;
    procs[slot].owner = getpid();
    return pid;
}

pid_t h_spawn(const char *const argv[], const char *logpath)
{
    return h_spawn_env(argv, NULL, logpath);
}

/* 0 reaped, -1 timeout, -2 not our child */
static int wait_exit(pid_t pid, int timeout_ms, int *status)
{
    long long dl = h_now_ms() + tmo(timeout_ms);
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            reg_del(pid);
            if (status)
                *status = st;
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            reg_del(pid);
            return -2;
        }
        if (h_now_ms() >= dl)
            return -1;
        h_msleep(5);
    }
}

int h_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    if (pid <= 0)
        return -1;
    return wait_exit(pid, timeout_ms, status) == 0 ? 0 : -1;
}

void h_kill(pid_t pid, int sig)
{
    if (pid > 0)
        kill(pid, sig);
}

int h_exit_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int h_stop(pid_t pid, int timeout_ms)
{
    int st = 0, r;
    /* never signal a pid that is not our unreaped child (it may be reused) */
    if (pid <= 0 || (r = wait_exit(pid, 0, &st)) == -2)
        return -1;
    if (r == 0)
        return h_exit_code(st);
    kill(pid, SIGTERM);
    r = wait_exit(pid, timeout_ms, &st);
    if (r == -1) {
        fprintf(stderr, "harness: pid %d ignored SIGTERM for %d ms, SIGKILL\n",
                (int)pid, tmo(timeout_ms));
        kill(pid, SIGKILL);
        r = wait_exit(pid, H_TIMEOUT_MS, &st);
    }
    return r == 0 ? h_exit_code(st) : -1;
}

void h_cleanup(void)
{
    pid_t me = getpid();
    int any = 0;
    for (int i = 0; i < H_MAXPROC; i++)
        if (procs[i].pid > 0 && procs[i].owner == me &&
            wait_exit(procs[i].pid, 0, NULL) == -1) { /* still running */
            kill(procs[i].pid, SIGTERM);
            any = 1;
        }
    long long dl = h_now_ms() + 2000;
    for (int i = 0; any && i < H_MAXPROC; i++) {
        pid_t pid = procs[i].pid;
        if (pid <= 0 || procs[i].owner != me)
            continue;
        if (wait_exit(pid, left(dl), NULL) == -1) {
            kill(pid, SIGKILL);
            wait_exit(pid, H_TIMEOUT_MS, NULL);
        }
        procs[i].pid = procs[i].owner = 0;
    }
    for (int fd = 0; fd < nfdbufs; fd++)
        if (fdbufs[fd].used) {
            close(fd);
            free(fdbufs[fd].buf);
        }
    free(fdbufs);
    fdbufs = NULL;
    nfdbufs = 0;
}

static void h_atexit(void)
{
    h_cleanup();
    rm_tmpdir();
}

/* ------------------------------------------------------------ sockets -- */
static int connect_addr(int family, const struct sockaddr *sa, socklen_t sl,
                        int timeout_ms)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, sl) == 0)
        return fd;
    if (errno == EINPROGRESS) {
        struct pollfd p = { fd, POLLOUT, 0 };
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
            return fd;
        errno = err ? err : ETIMEDOUT;
    }
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int connect_tcp(int port, int timeout_ms)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect_addr(AF_INET, (struct sockaddr *)&a, sizeof a, timeout_ms);
}

int h_wait_port(int port, int timeout_ms)
{
    h_init();
    long long dl = h_now_ms() + tmo(timeout_ms);
    for (;;) {
        int fd = connect_tcp(port, min_i(left(dl), 250));
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (h_now_ms() >= dl)
            return -1;
        h_msleep(10);
    }
}

static struct fdbuf *fdb(int fd)
{
    if (fd < 0)
        H_FAIL("harness: invalid fd %d", fd);
    if (fd >= nfdbufs) {
        int n = fd + 16;
        fdbufs = realloc(fdbufs, (size_t)n * sizeof *fdbufs);
        memset(fdbufs + nfdbufs, 0, (size_t)(n - nfdbufs) * sizeof *fdbufs);
        nfdbufs = n;
    }
    fdbufs[fd].used = 1;
    return &fdbufs[fd];
}

int h_try_connect(int port, int timeout_ms)
{
    h_init();
    int fd = connect_tcp(port, tmo(timeout_ms));
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fdb(fd)->len = 0;
    return fd;
}

int h_connect(int port)
{
    int fd = h_try_connect(port, H_TIMEOUT_MS);
    if (fd < 0)
        H_FAIL("h_connect: 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

int h_connect_unix(const char *path)
{
    h_init();
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path)
        H_FAIL("h_connect_unix: path too long: %s", path);
    strcpy(a.sun_path, path);
    int fd = connect_addr(AF_UNIX, (struct sockaddr *)&a, sizeof a, H_TIMEOUT_MS);
    if (fd < 0)
        H_FAIL("h_connect_unix: %s: %s", path, strerror(errno));
    fdb(fd)->len = 0;
    return fd;
}

void h_close(int fd)
{
    if (fd < 0)
        return;
    if (fd < nfdbufs && fdbufs[fd].used) {
        free(fdbufs[fd].buf);
        memset(&fdbufs[fd], 0, sizeof fdbufs[fd]);
    }
    close(fd);
}

int h_send(int fd, const char *data, size_t len)
{
    h_init();
    long long dl = h_now_ms() + H_TIMEOUT_MS;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            dl = h_now_ms() + H_TIMEOUT_MS;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { fd, POLLOUT, 0 };
            int r = poll(&p, 1, left(dl));
            if (r == 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            if (r < 0 && errno != EINTR)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

int h_sendf(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    int r = h_send(fd, s, strlen(s));
    free(s);
    return r;
}

int h_send_cmd_len(int fd, int argc, const char *argv[], const size_t argvlen[])
{
    size_t total = 32, o = 0;
    for (int i = 0; i < argc; i++)
        total += 32 + (argvlen ? argvlen[i] : strlen(argv[i]));
    char *b = malloc(total);
    o += (size_t)sprintf(b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        o += (size_t)sprintf(b + o, "$%zu\r\n", l);
        memcpy(b + o, argv[i], l);
        o += l;
        b[o++] = '\r';
        b[o++] = '\n';
    }
    int r = h_send(fd, b, o);
    free(b);
    return r;
}

int h_send_cmd(int fd, int argc, const char *argv[])
{
    return h_send_cmd_len(fd, argc, argv, NULL);
}

/* collects cmd + NULL-terminated varargs into a malloc'd argv */
static const char **collect(const char *cmd, va_list ap, int *argc)
{
    va_list cp;
    int n = 1;
    va_copy(cp, ap);
    while (va_arg(cp, const char *))
        n++;
    va_end(cp);
    const char **v = malloc(sizeof *v * (size_t)n);
    v[0] = cmd;
    for (int i = 1; i < n; i++)
        v[i] = va_arg(ap, const char *);
    *argc = n;
    return v;
}

int h_send_cmdv(int fd, const char *cmd, ...)
{
    int argc;
    va_list ap;
    va_start(ap, cmd);
    const char **v = collect(cmd, ap, &argc);
    va_end(ap);
    int r = h_send_cmd(fd, argc, v);
    free(v);
    return r;
}

/* ------------------------------------------------------------ RESP ----- */
static int parse_ll(const char *s, const char *end, long long *out)
{
    char *e;
    if (s == end || (!isdigit((unsigned char)*s) && *s != '-'))
        return -1;
    errno = 0;
    *out = strtoll(s, &e, 10);
    return (e == end && errno == 0) ? 0 : -1;
}

/* Length of the complete reply at p, 0 if incomplete, -1 if malformed. */
static long resp_frame(const char *p, size_t n, int depth)
{
    long long v;
    if (n == 0)
        return 0;
    const char *nl = memchr(p, '\n', n);
    if (!nl)
        return 0;
    if (nl == p || nl[-1] != '\r' || depth > 64)
        return -1;
    size_t hl = (size_t)(nl - p) + 1;
    switch (p[0]) {
    case '+': case '-': case ',': case '(': case '_':
        return (long)hl;
    case ':': case '#':
        if (p[0] == ':' && parse_ll(p + 1, nl - 1, &v) != 0)
            return -1;
        return (long)hl;
    case '$': case '!': case '=':
        if (parse_ll(p + 1, nl - 1, &v) != 0 || v < -1)
            return -1;
        if (v == -1)
            return (long)hl;
        if (n < hl + (size_t)v + 2)
            return 0;
        if (p[hl + v] != '\r' || p[hl + v + 1] != '\n')
            return -1;
        return (long)(hl + (size_t)v + 2);
    case '*': case '%': case '~': case '>': {
        if (parse_ll(p + 1, nl - 1, &v) != 0 || v < -1 || v > (1LL << 40))
            return -1;
        if (p[0] == '%' && v > 0)
            v *= 2;
        size_t off = hl;
        for (long long i = 0; i < v; i++) {
            long r = resp_frame(p + off, n - off, depth + 1);
            if (r <= 0)
                return r;
            off += (size_t)r;
        }
        return (long)off;
    }
    default:
        return -1;
    }
}

char *h_read_reply_len(int fd, int timeout_ms, size_t *outlen)
{
    h_init();
    struct fdbuf *b = fdb(fd);
    long long dl = h_now_ms() + tmo(timeout_ms);
    for (;;) {
        long r = resp_frame(b->buf, b->len, 0);
        if (r < 0)
            H_FAIL("h_read_reply: RESP protocol error on fd %d: %s", fd,
                         repr_n(b->buf, b->len));
        if (r > 0) {
            char *out = malloc((size_t)r + 1);
            memcpy(out, b->buf, (size_t)r);
            out[r] = 0;
            memmove(b->buf, b->buf + r, b->len - (size_t)r);
            b->len -= (size_t)r;
            if (outlen)
                *outlen = (size_t)r;
            return out;
        }
        if (b->cap - b->len < 4096)
            b->buf = realloc(b->buf, b->cap = b->cap * 2 + 8192);
        struct pollfd p = { fd, POLLIN, 0 };
        int pr = poll(&p, 1, left(dl));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return NULL;
        ssize_t n = read(fd, b->buf + b->len, b->cap - b->len);
        if (n > 0)
            b->len += (size_t)n;
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
            return NULL;
    }
}

char *h_read_reply(int fd, int timeout_ms)
{
    return h_read_reply_len(fd, timeout_ms, NULL);
}

char *h_cmd(int fd, const char *cmd, ...)
{
    int argc;
    va_list ap;
    va_start(ap, cmd);
    const char **v = collect(cmd, ap, &argc);
    va_end(ap);
    h_send_cmd(fd, argc, v); /* on failure the read reports EOF/timeout */
    free(v);
    return h_read_reply(fd, H_DEFAULT);
}

char *h_inline(int fd, const char *line)
{
    size_t l = strlen(line);
    char *b = malloc(l + 3);
    memcpy(b, line, l);
    memcpy(b + l, "\r\n", 3);
    h_send(fd, b, l + 2);
    free(b);
    return h_read_reply(fd, H_DEFAULT);
}

int h_is_closed(int fd, int timeout_ms)
{
    struct fdbuf *b = fdb(fd);
    long long dl = h_now_ms() + tmo(timeout_ms);
    b->len = 0;
    for (;;) {
        char tmp[4096];
        struct pollfd p = { fd, POLLIN, 0 };
        int r = poll(&p, 1, left(dl));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return 0;
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN)))
            continue;
        return 1; /* EOF, ECONNRESET or another error: the peer is gone */
    }
}

/* p is a validated frame of n bytes */
static struct h_reply *build(const char *p, size_t n, size_t *used)
{
    struct h_reply *r = calloc(1, sizeof *r);
    const char *nl = memchr(p, '\n', n);
    size_t hl = (size_t)(nl - p) + 1;
    long long v = 0;
    r->prefix = p[0];
    r->type = (enum h_reply_type)p[0];
    *used = hl;
    switch (p[0]) {
    case ':': case '#':
        r->integer = p[0] == '#' ? p[1] == 't' : strtoll(p + 1, NULL, 10);
        break;
    case '_':
        break;
    case '+': case '-': case ',': case '(':
        r->len = hl - 3;
        r->str = strndup(p + 1, r->len);
        break;
    case '$': case '!': case '=':
        v = strtoll(p + 1, NULL, 10);
        if (v < 0) {
            r->type = H_REPLY_NIL;
            break;
        }
        r->len = (size_t)v;
        r->str = malloc(r->len + 1);
        memcpy(r->str, p + hl, r->len);
        r->str[r->len] = 0;
        *used = hl + r->len + 2;
        break;
    default: /* aggregates */
        v = strtoll(p + 1, NULL, 10);
        if (v < 0) {
            r->type = H_REPLY_NIL;
            break;
        }
        r->elements = (size_t)v * (p[0] == '%' ? 2 : 1);
        r->element = calloc(r->elements ? r->elements : 1, sizeof *r->element);
        for (size_t i = 0; i < r->elements; i++) {
            size_t u;
            r->element[i] = build(p + *used, n - *used, &u);
            *used += u;
        }
    }
    return r;
}

struct h_reply *h_parse_reply_len(const char *raw, size_t len)
{
    if (!raw)
        H_FAIL("h_parse_reply: no reply (read timed out or EOF)");
    long r = resp_frame(raw, len, 0);
    if (r <= 0 || (size_t)r != len)
        H_FAIL("h_parse_reply: malformed reply: %s", repr_n(raw, len));
    size_t used;
    return build(raw, len, &used);
}

struct h_reply *h_parse_reply(const char *raw)
{
    return h_parse_reply_len(raw, raw ? strlen(raw) : 0);
}

void h_reply_free(struct h_reply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        h_reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

long long h_reply_int(const char *raw)
{
    long long v;
    const char *end = raw ? strstr(raw, "\r\n") : NULL;
    if (!raw || raw[0] != ':' || !end || end[2] || parse_ll(raw + 1, end, &v))
        H_FAIL("h_reply_int: expected an integer reply, got %s%s",
                     h_repr(raw), raw ? "" : " (timeout/EOF)");
    return v;
}

/* ------------------------------------------------------------ redis ---- */
static int redis_ping(int port, int timeout_ms)
{
    int fd = h_try_connect(port, timeout_ms), ok = -1;
    if (fd < 0)
        return -1;
    if (h_send(fd, "PING\r\n", 6) == 0) {
        char *r = h_read_reply(fd, timeout_ms);
        ok = (r && strcmp(r, "+PONG\r\n") == 0) ? 0 : -1;
        free(r);
    }
    h_close(fd);
    return ok;
}

static void redis_launch(struct h_redis *r, int pick_port)
{
    const char *bin = getenv("REDIS_SERVER_BIN");
    if (!bin || !*bin)
        bin = getenv("REDIS_SERVER"); /* configure's AC_ARG_VAR */
    for (int attempt = 1;; attempt++) {
        char port[16];
        const char *argv[16 + H_REDIS_MAX_EXTRA];
        int n = 0, st;
        if (pick_port)
            r->port = h_free_port();
        if (!r->log[0])
            unique_path(r->log, "redis", "log");
        snprintf(port, sizeof port, "%d", r->port);
        argv[n++] = bin && *bin ? bin : "redis-server";
        argv[n++] = "--port"; argv[n++] = port;
        argv[n++] = "--bind"; argv[n++] = "127.0.0.1";
        argv[n++] = "--save"; argv[n++] = "";
        argv[n++] = "--appendonly"; argv[n++] = "no";
        argv[n++] = "--daemonize"; argv[n++] = "no";
        argv[n++] = "--dir"; argv[n++] = h_tmpdir();
        for (int i = 0; i < r->nextra; i++)
            argv[n++] = r->extra[i];
        argv[n] = NULL;
        r->pid = h_spawn(argv, r->log);
        long long dl = h_now_ms() + H_TIMEOUT_MS;
        for (;;) {
            if (wait_exit(r->pid, 0, &st) != -1) {
                r->pid = 0;
                if (pick_port && attempt < 3 &&
                    h_log_contains(r->log, "Address already in use"))
                    break; /* lost the port race: try another one */
                fprintf(stderr, "redis log %s:\n%s\n", r->log, h_log_tail(r->log));
                H_FAIL("redis-server (port %d) exited with status %d during "
                             "startup; log tail:\n%s", r->port, h_exit_code(st),
                             h_log_tail(r->log));
            }
            if (redis_ping(r->port, min_i(left(dl), 500)) == 0)
                return;
            if (h_now_ms() >= dl) {
                h_stop(r->pid, 1000);
                r->pid = 0;
                fprintf(stderr, "redis log %s:\n%s\n", r->log, h_log_tail(r->log));
                H_FAIL("redis-server did not answer PING on port %d within "
                             "%d ms; log tail:\n%s", r->port, H_TIMEOUT_MS,
                             h_log_tail(r->log));
            }
            h_msleep(20);
        }
    }
}

void h_redis_start_opts(struct h_redis *r, const char *const extra_args[])
{
    if (!r || r->port < 0 || r->port > 65535)
        H_FAIL("h_redis_start: zero the struct h_redis first");
    if (r->pid > 0)
        H_FAIL("h_redis_start: already running (pid %d)", (int)r->pid);
    r->nextra = 0;
    for (int i = 0; extra_args && extra_args[i]; i++) {
        if (i >= H_REDIS_MAX_EXTRA || strlen(extra_args[i]) >= sizeof r->extra[0])
            H_FAIL("h_redis_start: too many or too long extra args");
        snprintf(r->extra[i], sizeof r->extra[i], "%s", extra_args[i]);
        r->nextra = i + 1;
    }
    redis_launch(r, r->port == 0);
}

void h_redis_start(struct h_redis *r) { h_redis_start_opts(r, NULL); }

void h_redis_stop(struct h_redis *r)
{
    if (r && r->pid > 0)
        h_stop(r->pid, H_STOP_TIMEOUT_MS);
    if (r)
        r->pid = 0;
}

void h_redis_restart(struct h_redis *r)
{
    h_redis_stop(r);
    if (r->port <= 0)
        H_FAIL("h_redis_restart: never started");
    redis_launch(r, 0);
}

/* ------------------------------------------------------------- dns ---- */
void h_dns_serve(int fd, int ms)
{
    long long end = h_now_ms() + ms;

    while (h_now_ms() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        unsigned char q[512], r[600];
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n;
        size_t off = 12, rl;
        int qtype;

        if (poll(&p, 1, 20) <= 0)
            continue;
        n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
        if (n < 17)
            continue;
        while (off < (size_t)n && q[off])
            off += (size_t)q[off] + 1;
        if (off + 5 > (size_t)n)
            continue;
        qtype = q[off + 1] << 8 | q[off + 2];
        off += 5;               /* the 0 label, type, class */
        memcpy(r, q, off);
        r[2] = 0x81;            /* response, recursion desired */
        r[3] = 0x80;            /* recursion available, NOERROR */
        r[4] = 0, r[5] = 1;
        r[6] = 0, r[7] = qtype == 1;
        r[8] = r[9] = r[10] = r[11] = 0;
        rl = off;
        if (qtype == 1) {
            static const unsigned char ans[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1 };
            memcpy(r + rl, ans, sizeof(ans));
            rl += sizeof(ans);
        }
        sendto(fd, r, rl, 0, (struct sockaddr *)&from, fl);
    }
}

/* --------------------------------------------------------- upstream ---- */
static const char *env_or(const char *name, const char *def)
{
    const char *e = getenv(name);
    return e && *e ? e : def;
}

const char *h_upstream_bin(void)
{
    return env_or("CACHASIDED_UPSTREAM_BIN", H_DEFAULT_UPSTREAM_BIN);
}

/* port from the portfile: >0 once written completely (newline-terminated
 * or the same value on two consecutive polls), else 0 */
static int read_portfile(const char *path, int *prev)
{
    size_t n;
    char *d = slurp(path, 0, &n), *e;
    long v = d ? strtol(d, &e, 10) : 0;
    int done = d && e != d && v > 0 && v < 65536 &&
               (*e == '\n' || *e == '\r' || v == *prev);
    if (d && e != d)
        *prev = (int)v;
    free(d);
    return done ? (int)v : 0;
}

void h_upstream_start_args(struct h_upstream *u, int latency_ms,
                           int generate_n, const char *const extra[])
{
    char lat[16], gen[16];
    const char *argv[64];
    int n = 0, st, prev = -1;
    h_init();
    if (!u)
        H_FAIL("h_upstream_start: NULL");
    memset(u, 0, sizeof *u);
    unique_path(u->log, "upstream", "log");
    unique_path(u->portfile, "upstream", "port");
    argv[n++] = h_upstream_bin();
    argv[n++] = "-b"; argv[n++] = "127.0.0.1";
    argv[n++] = "-p"; argv[n++] = "0";
    argv[n++] = "-P"; argv[n++] = u->portfile;
    snprintf(lat, sizeof lat, "%d", latency_ms);
    snprintf(gen, sizeof gen, "%d", generate_n);
    if (latency_ms > 0) { argv[n++] = "-l"; argv[n++] = lat; }
    if (generate_n > 0) { argv[n++] = "-g"; argv[n++] = gen; }
    for (int i = 0; extra && extra[i]; i++) {
        if (n >= 62)
            H_FAIL("h_upstream_start: too many extra args");
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    u->pid = h_spawn(argv, u->log);
    long long dl = h_now_ms() + H_TIMEOUT_MS;
    for (;;) {
        if (wait_exit(u->pid, 0, &st) != -1) {
            u->pid = 0;
            fprintf(stderr, "upstream log %s:\n%s\n", u->log, h_log_tail(u->log));
            H_FAIL("%s exited with status %d during startup; log tail:\n%s",
                         argv[0], h_exit_code(st), h_log_tail(u->log));
        }
        int port = read_portfile(u->portfile, &prev);
        if (port > 0 && h_wait_port(port, min_i(left(dl), 200)) == 0) {
            u->port = port;
            return;
        }
        if (h_now_ms() >= dl) {
            h_stop(u->pid, 1000);
            u->pid = 0;
            fprintf(stderr, "upstream log %s:\n%s\n", u->log, h_log_tail(u->log));
            H_FAIL("%s not listening (portfile %s) within %d ms; log tail:\n%s",
                         argv[0], u->portfile, H_TIMEOUT_MS, h_log_tail(u->log));
        }
        h_msleep(10);
    }
}

void h_upstream_start(struct h_upstream *u, int latency_ms, int generate_n)
{
    h_upstream_start_args(u, latency_ms, generate_n, NULL);
}

int h_upstream_stop(struct h_upstream *u)
{
    if (!u || u->pid <= 0)
        return -1;
    int r = h_stop(u->pid, H_STOP_TIMEOUT_MS);
    u->pid = 0;
    return r;
}

/* 1 complete (decoded into dst), 0 incomplete, -1 malformed; p is NUL-ended */
static int unchunk(const char *p, size_t n, char *dst, size_t *dlen)
{
    size_t off = 0;
    *dlen = 0;
    for (;;) {
        const char *nl = memmem(p + off, n - off, "\r\n", 2);
        char *e;
        if (!nl)
            return 0;
        unsigned long sz = strtoul(p + off, &e, 16);
        if (e == p + off)
            return -1;
        off = (size_t)(nl - p) + 2;
        if (sz == 0)
            return 1;
        if (n - off < sz + 2)
            return 0;
        memcpy(dst + *dlen, p + off, sz);
        *dlen += sz;
        off += sz + 2;
    }
}

int h_http(int port, const char *method, const char *path, const char *body,
           size_t bodylen, char *out, size_t outsz)
{
    h_init();
    if (out && outsz)
        out[0] = 0;
    long long dl = h_now_ms() + H_TIMEOUT_MS;
    int fd = connect_tcp(port, H_TIMEOUT_MS), status = -1;
    if (fd < 0)
        return -1;
    if (body)
        h_sendf(fd, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                "Content-Length: %zu\r\n\r\n", method, path, port, bodylen);
    else
        h_sendf(fd, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close"
                "\r\n\r\n", method, path, port);
    if (body && bodylen)
        h_send(fd, body, bodylen);
    size_t cap = 8192, len = 0, blen = 0;
    char *b = malloc(cap), *bodyp = NULL, *dec = NULL;
    long long clen = -1;
    int chunked = 0, eof = 0, complete = 0;
    while (!complete) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (cap - len < 4096)
            b = realloc(b, cap *= 2);
        int r = poll(&p, 1, left(dl));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* timeout */
        ssize_t n = read(fd, b + len, cap - len - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        eof = n <= 0;
        len += n > 0 ? (size_t)n : 0;
        b[len] = 0;
        char *hend = strstr(b, "\r\n\r\n");
        if (!hend) {
            if (eof)
                break;
            continue;
        }
        bodyp = hend + 4;
        clen = -1;
        chunked = 0;
        for (char *l = strstr(b, "\r\n"); l && l < hend; l = strstr(l + 2, "\r\n")) {
            if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
                clen = strtoll(l + 17, NULL, 10);
            else if (strncasecmp(l + 2, "Transfer-Encoding:", 18) == 0 &&
                     memmem(l, (size_t)(strstr(l + 2, "\r\n") - l), "chunked", 7))
                chunked = 1;
        }
        size_t have = len - (size_t)(bodyp - b);
        if (chunked) {
            free(dec);
            dec = malloc(have + 1);
            int u = unchunk(bodyp, have, dec, &blen);
            complete = u == 1 || (u == 0 && eof);
            if (u < 0)
                break;
        } else {
            blen = clen >= 0 && (size_t)clen < have ? (size_t)clen : have;
            complete = clen >= 0 ? have >= (size_t)clen : eof;
        }
        if (eof)
            break;
    }
    if (complete && sscanf(b, "HTTP/1.%*d %d", &status) == 1 && out && outsz) {
        size_t c = blen < outsz - 1 ? blen : outsz - 1;
        memcpy(out, chunked ? dec : bodyp, c);
        out[c] = 0;
    }
    if (!complete)
        status = -1;
    free(b);
    free(dec);
    close(fd);
    return status;
}

char *h_urlencode(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *s && o + 4 <= outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~", c))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 4, "%%%02X", c);
    }
    if (outsz)
        out[o < outsz ? o : outsz - 1] = 0;
    return out;
}

static void ctl(struct h_upstream *u, const char *method, const char *base,
                const char *id, const char *body, char *out, size_t outsz)
{
    char path[1024];
    if (!u || u->port <= 0)
        H_FAIL("upstream control %s %s: upstream not started", method, base);
    size_t bl = strlen(base);
    if (id && strlen(id) * 3 + bl >= sizeof path)
        H_FAIL("upstream control: id too long");
    memcpy(path, base, bl + 1);
    if (id)
        h_urlencode(id, path + bl, sizeof path - bl);
    int st = h_http(u->port, method, path, body, body ? strlen(body) : 0, out, outsz);
    if ((st < 200 || st > 299) && !(st == 404 && strcmp(method, "DELETE") == 0))
        H_FAIL("upstream %s %s -> %d%s; upstream log tail:\n%s", method, path,
                     st, st < 0 ? " (no/invalid HTTP response)" : "",
                     h_log_tail(u->log));
}

static long count_of(struct h_upstream *u, const char *id)
{
    char out[64], *e;
    ctl(u, "GET", id ? "/_count/" : "/_count", id, NULL, out, sizeof out);
    long v = strtol(out, &e, 10);
    while (isspace((unsigned char)*e))
        e++;
    if (e == out || *e)
        H_FAIL("upstream GET /_count: not a number: %s", h_repr(out));
    return v;
}

long h_upstream_count(struct h_upstream *u) { return count_of(u, NULL); }
long h_upstream_count_id(struct h_upstream *u, const char *id) { return count_of(u, id); }
void h_upstream_reset(struct h_upstream *u) { ctl(u, "POST", "/_reset", NULL, "", NULL, 0); }

void h_upstream_set_latency(struct h_upstream *u, int ms)
{
    char b[16];
    snprintf(b, sizeof b, "%d", ms);
    ctl(u, "PUT", "/_latency", NULL, b, NULL, 0);
}

void h_upstream_set_status(struct h_upstream *u, const char *id, int status)
{
    char b[16];
    snprintf(b, sizeof b, "%d", status);
    ctl(u, status ? "PUT" : "DELETE", "/_status/", id, status ? b : NULL, NULL, 0);
}

void h_upstream_set_body(struct h_upstream *u, const char *id, const char *body)
{
    ctl(u, body ? "PUT" : "DELETE", "/_records/", id, body, NULL, 0);
}

/* ------------------------------------------------------------ daemon --- */
const char *h_daemon_bin(void)
{
    return env_or("CACHASIDED_BIN", H_DEFAULT_DAEMON_BIN);
}

void h_daemon_init(struct h_daemon *d)
{
    memset(d, 0, sizeof *d);
    d->port = h_free_port();
}

/* 0 listening; -1 not (reaped; *exit_status = code, or -1 if killed) */
static int daemon_launch(struct h_daemon *d, const char *const env[],
                         int timeout_ms, int *exit_status, const char *fmt,
                         va_list ap)
{
    int st;
    h_init();
    if (!d || d->port <= 0 || d->port > 65535)
        H_FAIL("h_daemon_start: set d->port first (h_daemon_init)");
    if (d->pid > 0)
        H_FAIL("h_daemon_start: already running (pid %d)", (int)d->pid);
    if (!d->conf[0])
        unique_path(d->conf, "cachasided", "conf");
    if (!d->log[0])
        unique_path(d->log, "cachasided", "log");
    char *conf = vfmt(fmt, ap);
    h_write_file(d->conf, conf, strlen(conf));
    free(conf);
    const char *argv[] = { h_daemon_bin(), "-c", d->conf, NULL };
    pid_t pid = h_spawn_env(argv, env, d->log);
    long long dl = h_now_ms() + tmo(timeout_ms);
    for (;;) {
        if (wait_exit(pid, 0, &st) != -1) {
            if (exit_status)
                *exit_status = h_exit_code(st);
            return -1;
        }
        int fd = connect_tcp(d->port, min_i(left(dl), 200));
        if (fd >= 0) {
            close(fd);
            d->pid = pid;
            return 0;
        }
        if (h_now_ms() >= dl) {
            h_stop(pid, 1000);
            if (exit_status)
                *exit_status = -1;
            return -1;
        }
        h_msleep(10);
    }
}

static void daemon_vstart(struct h_daemon *d, const char *const env[],
                          const char *fmt, va_list ap)
{
    int st = -1;
    if (daemon_launch(d, env, H_TIMEOUT_MS, &st, fmt, ap) == 0)
        return;
    fprintf(stderr, "cachasided log %s:\n%s\n", d->log, h_log_tail(d->log));
    if (st >= 0)
        H_FAIL("cachasided exited with status %d during startup (config %s); "
                     "log tail:\n%s", st, d->conf, h_log_tail(d->log));
    H_FAIL("cachasided not listening on port %d within %d ms (config %s); "
                 "log tail:\n%s", d->port, H_TIMEOUT_MS, d->conf, h_log_tail(d->log));
}

void h_daemon_start(struct h_daemon *d, const char *conf_fmt, ...)
{
    va_list ap;
    va_start(ap, conf_fmt);
    daemon_vstart(d, NULL, conf_fmt, ap);
    va_end(ap);
}

void h_daemon_start_env(struct h_daemon *d, const char *const envp_extra[],
                        const char *conf_fmt, ...)
{
    va_list ap;
    va_start(ap, conf_fmt);
    daemon_vstart(d, envp_extra, conf_fmt, ap);
    va_end(ap);
}

int h_daemon_try_start(struct h_daemon *d, int timeout_ms, int *exit_status,
                       const char *conf_fmt, ...)
{
    va_list ap;
    va_start(ap, conf_fmt);
    int r = daemon_launch(d, NULL, timeout_ms, exit_status, conf_fmt, ap);
    va_end(ap);
    return r;
}

int h_daemon_stop(struct h_daemon *d)
{
    if (!d || d->pid <= 0)
        return -1;
    int r = h_stop(d->pid, H_STOP_TIMEOUT_MS);
    d->pid = 0;
    return r;
}

void h_daemon_rewrite_conf(struct h_daemon *d, const char *fmt, ...)
{
    if (!d || !d->conf[0])
        H_FAIL("h_daemon_rewrite_conf: daemon has no config file yet");
    va_list ap;
    va_start(ap, fmt);
    char *conf = vfmt(fmt, ap);
    va_end(ap);
    h_write_file(d->conf, conf, strlen(conf));
    free(conf);
}
