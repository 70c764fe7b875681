/*
 * fork_threads.c: the library inside a real host process.
 *
 *   fork_threads EMULATOR_URL SCRATCH_DIR [--light] [--valgrind] [--only=STEP,...]
 *
 * Steps (issue "Reliability and security", items 4 and 7):
 *   a. fork: calls in the parent, in a forked child (and a grandchild), in the parent again,
 *      twice: the runtime is rebuilt in every child and the parent keeps working.
 *   b. threads: 16 threads at once calling every function, on a shared destination and on
 *      separate ones, plus NULL arguments that must give DEST_ERR_INVALID_ARGUMENT.
 *   c. cancel: a progress callback stops a multipart upload (DEST_ERR_CANCELLED); the
 *      same upload then succeeds.
 *   d. reentrant: a progress callback calls dest_list / dest_usage itself.
 *   e. log: lines arrive only on the thread whose call they belong to, never carry the
 *      application key, respect the level and stop when the callback is removed.
 *   f. busy-fork: fork() while other threads are inside calls delivering log lines
 *      through a slow logger: the child's calls must not hang on a lock a vanished
 *      thread held.
 *   g. log-reentrant: the log callback calls dest_set_log_callback, or dest_upload (each
 *      in a child, so a deadlock is one failure, not the end of the run).
 *
 * A log callback is installed for the whole run, so every step also checks where log
 * lines are delivered. alarm() turns a hang into a failure. --light keeps files tiny and
 * loops short; --valgrind (implies --light) accepts exit status 99 from forked children,
 * valgrind's --error-exitcode, whose logs the caller judges (a child inherits its parent's
 * runtime, threads gone, and leaks it by design); the children's own checks still count,
 * reported through a pipe. Environment: B2DEST_ACCOUNT_ID,
 * B2DEST_APPLICATION_KEY, B2DEST_BUCKET override the emulator's defaults.
 *
 * Prints every step and "N passed, M failed"; exits 0 only when nothing failed.
 */

#include <b2dest.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 16
#define CFG_MAX 1024
#define WRONG_KEY "wrong-Secret-Key-4f1d9c"

/* ------------------------------------------------------------------------------------ */
/* Global state                                                                         */

static atomic_int g_passed;
static atomic_int g_failed;
static int g_light;
static int g_valgrind; /* children may exit 99: valgrind's verdict, judged by the caller */
static unsigned g_step_timeout;
/* A child that has not finished by then hangs: a deadlock detector, not a speed check,
 * so the same generous bound with or without valgrind and however busy the CPU is. */
#define CHILD_HANG_SECONDS 60
static const char *g_url;
static const char *g_scratch;
static const char *g_account;
static const char *g_key;
static const char *g_bucket;
static const char *g_version;

/* For the SIGALRM handler. */
static volatile sig_atomic_t g_child_pid;
static const char *volatile g_step_name;

/* ------------------------------------------------------------------------------------ */
/* Checks                                                                               */

static void report(const char *fmt, ...)
{
    va_list ap;
    char line[2048];
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line: lines from threads do not interleave. */
    fprintf(stderr, "[pid %ld] %s\n", (long)getpid(), line);
}

static int check_impl(int ok, int line, const char *expr, const char *fmt, ...)
{
    if (ok) {
        atomic_fetch_add(&g_passed, 1);
        return 1;
    }
    atomic_fetch_add(&g_failed, 1);
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report("  FAIL (fork_threads.c:%d: %s): %s", line, expr, msg);
    return 0;
}

#define CHECK(cond, ...) check_impl(!!(cond), __LINE__, #cond, __VA_ARGS__)

/* Copies at most 300 characters of a response into buf, for messages. */
static const char *clip(const char *s, char *buf, size_t n)
{
    if (s == NULL)
        return "(NULL)";
    snprintf(buf, n, "%.300s%s", s, strlen(s) > 300 ? "..." : "");
    return buf;
}

/*
 * Checks one call: the status is `want`, the response is a JSON object with "ok" set as
 * the status says, "warnings", an "error" on failure, `must` (if any) and no application
 * key. Frees the response (read through `respp` only after the call was made, whatever
 * the order the arguments are evaluated in) and clears it. Returns 1 when all of that holds.
 */
static int expect(const char *what, int32_t status, int32_t want, char **respp, const char *must)
{
    char buf[400];
    char *resp = *respp;
    *respp = NULL;
    size_t len = resp ? strlen(resp) : 0;
    const char *problem = NULL;
    if (status != want)
        problem = "unexpected status";
    else if (resp == NULL)
        problem = "no response stored";
    else if (len < 2 || resp[0] != '{' || resp[len - 1] != '}')
        problem = "response is not a JSON object";
    else if (!strstr(resp, want == DEST_OK ? "\"ok\":true" : "\"ok\":false"))
        problem = "\"ok\" does not match the status";
    else if (!strstr(resp, "\"warnings\":["))
        problem = "no \"warnings\" array";
    else if (want != DEST_OK && !strstr(resp, "\"error\":{"))
        problem = "failure without \"error\"";
    else if (must && !strstr(resp, must))
        problem = "expected text missing";
    else if (strstr(resp, g_key) || strstr(resp, WRONG_KEY))
        problem = "the application key appears in the response";
    int ok = CHECK(problem == NULL, "%s: %s (status %d, wanted %d%s%s): %s", what,
                   problem ? problem : "", (int)status, (int)want, must ? ", needs " : "",
                   must ? must : "", clip(resp, buf, sizeof buf));
    dest_free(resp);
    return ok;
}

/* ------------------------------------------------------------------------------------ */
/* Calls, marked so the log and progress callbacks can tell which thread is inside one.  */

static _Thread_local int tl_depth;      /* > 0 while this thread is inside a dest_* call */
static _Thread_local pthread_t tl_self; /* the thread that entered, as it saw itself */

struct log_sink;
static _Thread_local struct log_sink *tl_sink; /* where step e collects this thread's lines */

static void enter(void)
{
    tl_self = pthread_self();
    tl_depth++;
}

static void leave(void)
{
    tl_depth--;
}

static int on_calling_thread(void)
{
    return tl_depth > 0 && pthread_equal(tl_self, pthread_self());
}

static int32_t c_validate(const char *cfg, char **resp)
{
    enter();
    int32_t s = dest_validate(cfg, resp);
    leave();
    return s;
}

static int32_t c_upload(const char *cfg, const char *local, const char *remote, dest_progress_fn fn,
                        void *ud, char **resp)
{
    enter();
    int32_t s = dest_upload(cfg, local, remote, fn, ud, resp);
    leave();
    return s;
}

static int32_t c_download(const char *cfg, const char *remote, const char *local, dest_progress_fn fn,
                          void *ud, char **resp)
{
    enter();
    int32_t s = dest_download(cfg, remote, local, fn, ud, resp);
    leave();
    return s;
}

static int32_t c_list(const char *cfg, const char *remote, char **resp)
{
    enter();
    int32_t s = dest_list(cfg, remote, resp);
    leave();
    return s;
}

static int32_t c_usage(const char *cfg, char **resp)
{
    enter();
    int32_t s = dest_usage(cfg, resp);
    leave();
    return s;
}

static int32_t c_delete(const char *cfg, const char *remote, char **resp)
{
    enter();
    int32_t s = dest_delete(cfg, remote, resp);
    leave();
    return s;
}

/* ------------------------------------------------------------------------------------ */
/* The log callback, installed for the whole run                                        */

struct log_sink {
    int lines;
    int warn_lines;
    char text[16384]; /* the lines, '\n'-separated, truncated when full */
};

struct log_stats {
    atomic_int lines;
    atomic_int wrong_thread;
    atomic_int with_key;
    atomic_int bad_level;
};

static struct log_stats g_logs;

static void on_log(int32_t level, const char *message, void *user_data);

/* Hooks for steps f and g: a slow logger, and a logger that calls the library. */
static atomic_int g_log_delay_us;
static atomic_int g_log_reenter; /* 1: dest_set_log_callback, 2: dest_upload, from inside */
static char g_reenter_cfg[1024];
static char g_reenter_local[4096];
static _Thread_local int tl_in_log;
static _Thread_local int32_t tl_reenter_status = -1;
static int32_t c_upload(const char *cfg, const char *local, const char *remote, dest_progress_fn fn, void *ud,
                        char **resp);

static void log_hooks(void *user_data)
{
    int delay = atomic_load(&g_log_delay_us);
    if (delay > 0) {
        struct timespec ts = {0, (long)delay * 1000L};
        nanosleep(&ts, NULL);
    }
    int mode = atomic_load(&g_log_reenter);
    if (mode == 0 || tl_in_log)
        return;
    tl_in_log = 1;
    if (mode == 1) {
        dest_set_log_callback(on_log, DEST_LOG_DEBUG, user_data);
        tl_reenter_status = DEST_OK;
    } else if (mode == 2) {
        char *r = NULL;
        tl_reenter_status = c_upload(g_reenter_cfg, g_reenter_local, "inner.bin", NULL, NULL, &r);
        dest_free(r);
    }
    tl_in_log = 0;
}

static void on_log(int32_t level, const char *message, void *user_data)
{
    struct log_stats *stats = user_data;
    log_hooks(user_data);
    atomic_fetch_add(&stats->lines, 1);
    if (!on_calling_thread()) {
        if (atomic_fetch_add(&stats->wrong_thread, 1) < 5)
            report("  log line delivered outside the calling thread: %.200s",
                   message ? message : "(NULL)");
    }
    if (message == NULL || level < DEST_LOG_ERROR || level > DEST_LOG_DEBUG) {
        atomic_fetch_add(&stats->bad_level, 1);
        return;
    }
    if (strstr(message, g_key) || strstr(message, WRONG_KEY)) {
        atomic_fetch_add(&stats->with_key, 1);
        report("  log line contains the application key: %.200s", message);
    }
    struct log_sink *sink = tl_sink;
    if (sink) {
        sink->lines++;
        if (level <= DEST_LOG_WARN)
            sink->warn_lines++;
        size_t used = strlen(sink->text);
        snprintf(sink->text + used, sizeof sink->text - used, "%d %s\n", (int)level, message);
    }
}

/* ------------------------------------------------------------------------------------ */
/* Files and configurations                                                             */

static void scratch_path(char *buf, size_t n, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(buf, n, "%s/%s", g_scratch, name);
}

/* Writes `size` pseudo-random bytes derived from `seed`. */
static int write_file(const char *path, size_t size, uint32_t seed)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    uint32_t x = seed * 2654435761u + 12345u;
    unsigned char buf[4096];
    size_t left = size;
    int ok = 1;
    while (left > 0 && ok) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (unsigned char)x;
        }
        ok = fwrite(buf, 1, n, f) == n;
        left -= n;
    }
    return fclose(f) == 0 && ok;
}

static int same_files(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb");
    FILE *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        unsigned char ba[4096], bb[4096];
        size_t na = fread(ba, 1, sizeof ba, fa);
        size_t nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            same = 0;
        else if (na == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* A destination on the emulator. part_size 0: the default. key NULL: the right key. */
static void make_config(char *buf, size_t n, const char *dir, int concurrency, long part_size,
                        const char *key)
{
    char part[64] = "";
    if (part_size > 0)
        snprintf(part, sizeof part, ",\"part_size_bytes\":%ld", part_size);
    int w = snprintf(buf, n,
                     "{\"name\":\"fork_threads\",\"account_id\":\"%s\",\"application_key\":\"%s\","
                     "\"bucket\":\"%s\",\"backup_directory\":\"%s\",\"api_url\":\"%s\","
                     "\"concurrency\":%d,\"retry_initial_delay_ms\":5,\"timeout_seconds\":%d%s}",
                     g_account, key ? key : g_key, g_bucket, dir, g_url, concurrency,
                     g_light ? 120 : 30, part);
    if (w < 0 || (size_t)w >= n) {
        fprintf(stderr, "configuration too long\n");
        exit(2);
    }
}

/* ------------------------------------------------------------------------------------ */
/* The emulator's control API (/__emulator/...), over a plain socket                     */

static int emu_control(const char *method, const char *path, const char *body)
{
    /* An HTTPS emulator answers its control API in plain HTTP on the same port. */
    const char *p = g_url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else
        return 0;
    char host[256], port[16] = "80";
    size_t hl;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (!end)
            return 0;
        hl = (size_t)(end - p - 1);
        if (hl >= sizeof host)
            return 0;
        memcpy(host, p + 1, hl);
        p = end + 1;
    } else {
        hl = strcspn(p, ":/");
        if (hl >= sizeof host)
            return 0;
        memcpy(host, p, hl);
        p += hl;
    }
    host[hl] = '\0';
    if (*p == ':') {
        size_t pl = strcspn(p + 1, "/");
        if (pl == 0 || pl >= sizeof port)
            return 0;
        memcpy(port, p + 1, pl);
        port[pl] = '\0';
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return 0;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    freeaddrinfo(res);

    char req[2048];
    size_t blen = body ? strlen(body) : 0;
    int rl = snprintf(req, sizeof req,
                      "%s /__emulator/%s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                      method, path, host, port, blen, body ? body : "");
    if (rl < 0 || (size_t)rl >= sizeof req)
        ok = 0;
    for (size_t sent = 0; ok && sent < (size_t)rl;) {
        ssize_t w = send(fd, req + sent, (size_t)rl - sent, MSG_NOSIGNAL);
        if (w <= 0)
            ok = 0;
        else
            sent += (size_t)w;
    }
    char answer[1024] = "";
    size_t got = 0;
    while (ok && got < sizeof answer - 1) {
        ssize_t r = recv(fd, answer + got, sizeof answer - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    answer[got] = '\0';
    if (fd >= 0)
        close(fd);
    return ok && (strncmp(answer, "HTTP/1.1 200", 12) == 0 || strncmp(answer, "HTTP/1.0 200", 12) == 0);
}

/* ------------------------------------------------------------------------------------ */
/* Timeouts                                                                             */

static void write_str(const char *s)
{
    if (write(STDERR_FILENO, s, strlen(s)) < 0) {
        /* nothing to do in a signal handler */
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    write_str("\nTIMEOUT: a call hung (deadlock?) in step: ");
    const char *step = g_step_name;
    write_str(step ? step : "?");
    write_str("\n");
    if (g_child_pid > 0)
        kill((pid_t)g_child_pid, SIGKILL);
    _exit(124);
}

/* Waits for a child with a timeout; returns its wait status, or -1. */
static int wait_child(pid_t pid, unsigned timeout)
{
    g_child_pid = pid;
    unsigned left = alarm(timeout); /* the step's own alarm is re-armed by the caller */
    (void)left;
    int status = 0;
    pid_t r;
    do {
        r = waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    alarm(0);
    g_child_pid = 0;
    return r == pid ? status : -1;
}

/* A forked child, and the pipe on which it reports whether its own checks passed: under
 * valgrind its exit status is valgrind's verdict, not the child's. */
struct child {
    pid_t pid;
    int verdict_fd;
};

static int g_verdict_fd = -1; /* in a child: where to report */

/* Forks. In the child returns {0, -1}; in the parent the child's pid and pipe. */
static struct child start_child(void)
{
    struct child c = {-1, -1};
    int p[2];
    if (!CHECK(pipe(p) == 0, "pipe: %s", strerror(errno)))
        return c;
    fflush(NULL);
    c.pid = fork();
    if (c.pid == 0) {
        close(p[0]);
        if (g_verdict_fd >= 0)
            close(g_verdict_fd); /* the parent's report pipe is not ours to write */
        g_verdict_fd = p[1];
        return c;
    }
    close(p[1]);
    if (!CHECK(c.pid > 0, "fork: %s", strerror(errno))) {
        close(p[0]);
        return c;
    }
    c.verdict_fd = p[0];
    return c;
}

/* In a child: report and exit. */
static void child_exit(int ok)
{
    char verdict = ok ? 'Y' : 'N';
    if (write(g_verdict_fd, &verdict, 1) != 1)
        ok = 0;
    fflush(NULL);
    exit(ok ? 0 : 1);
}

/* In the parent: wait (with a timeout) and check the child's verdict and exit status. */
static int finish_child(const char *who, struct child c, unsigned timeout)
{
    if (c.pid <= 0)
        return 0;
    int status = wait_child(c.pid, timeout);
    char verdict = 0;
    ssize_t n;
    do {
        n = read(c.verdict_fd, &verdict, 1);
    } while (n < 0 && errno == EINTR);
    close(c.verdict_fd);
    int ok = CHECK(n == 1 && verdict == 'Y', "%s: its checks %s", who,
                   n == 1 ? "failed" : "never reported (crashed or hung)");
    if (status == -1)
        return CHECK(0, "%s: waitpid failed", who);
    if (WIFSIGNALED(status))
        return CHECK(0, "%s: killed by signal %d", who, WTERMSIG(status));
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (g_valgrind && code == 99) {
        /* valgrind's --error-exitcode: the test reads the child's valgrind log itself. */
        printf("  %s: valgrind reported errors (judged from its log)\n", who);
        return ok;
    }
    return ok & CHECK(code == 0, "%s: exit status %d", who, code);
}

/* ------------------------------------------------------------------------------------ */
/* Step a: fork                                                                         */

static char g_fork_cfg[CFG_MAX];

/* Upload a fresh small file to `remote`, and check a listing of the directory shows it. */
static int upload_and_list(const char *who, const char *remote, uint32_t seed)
{
    char local[PATH_MAX], what[256], must[256];
    int ok = 1;
    scratch_path(local, sizeof local, "fork-%ld-%u.bin", (long)getpid(), seed);
    ok &= CHECK(write_file(local, 1000 + seed % 500, seed), "%s: write %s", who, local);
    char *resp = NULL;
    snprintf(what, sizeof what, "%s: upload %s", who, remote);
    ok &= expect(what, c_upload(g_fork_cfg, local, remote, NULL, NULL, &resp), DEST_OK, &resp, "\"sha1\"");
    resp = NULL;
    snprintf(what, sizeof what, "%s: list after uploading %s", who, remote);
    snprintf(must, sizeof must, "\"path\":\"%s\"", remote);
    ok &= expect(what, c_list(g_fork_cfg, "", &resp), DEST_OK, &resp, must);
    return ok;
}

/* What a child does: upload, list, download and compare, usage. Returns 1 on success. */
static int child_work(const char *who, int round)
{
    int before = atomic_load(&g_failed);
    char remote[128], local[PATH_MAX], back[PATH_MAX], what[256], must[256];
    uint32_t seed = (uint32_t)(round * 1000 + getpid() % 997);
    snprintf(remote, sizeof remote, "%s-%d.bin", who, round);
    scratch_path(local, sizeof local, "%s-%ld.src", who, (long)getpid());
    scratch_path(back, sizeof back, "%s-%ld.back", who, (long)getpid());
    CHECK(write_file(local, 5000, seed), "%s: write %s", who, local);

    char *resp = NULL;
    snprintf(what, sizeof what, "%s: upload", who);
    expect(what, c_upload(g_fork_cfg, local, remote, NULL, NULL, &resp), DEST_OK, &resp, "\"size\":5000");
    resp = NULL;
    snprintf(what, sizeof what, "%s: list", who);
    snprintf(must, sizeof must, "\"path\":\"%s\"", remote);
    expect(what, c_list(g_fork_cfg, "", &resp), DEST_OK, &resp, must);
    resp = NULL;
    snprintf(what, sizeof what, "%s: download", who);
    expect(what, c_download(g_fork_cfg, remote, back, NULL, NULL, &resp), DEST_OK, &resp, "\"verified\":true");
    CHECK(same_files(local, back), "%s: downloaded copy differs", who);
    resp = NULL;
    snprintf(what, sizeof what, "%s: usage", who);
    expect(what, c_usage(g_fork_cfg, &resp), DEST_OK, &resp, "\"used_bytes\"");
    return atomic_load(&g_failed) == before;
}

static void step_fork(void)
{
    make_config(g_fork_cfg, sizeof g_fork_cfg, "fork", 2, 0, NULL);
    unsigned child_timeout = g_light ? 120 : 60;

    for (int round = 1; round <= 2; round++) {
        char remote[64], who[32];
        printf("  round %d: parent before fork\n", round);
        snprintf(remote, sizeof remote, "parent-%d-before.bin", round);
        upload_and_list("parent", remote, (uint32_t)round * 10 + 1);

        struct child c = start_child();
        if (c.pid < 0)
            return;
        if (c.pid == 0) {
            /* The child: its own alarm (alarms are not inherited). */
            g_step_name = "fork (child)";
            alarm(child_timeout);
            int ok = child_work("child", round);
            if (round == 2) {
                /* Fork after fork: a grandchild of a child that rebuilt its runtime. */
                struct child g = start_child();
                if (g.pid == 0) {
                    g_step_name = "fork (grandchild)";
                    alarm(child_timeout);
                    child_exit(child_work("grandchild", round));
                }
                ok &= finish_child("grandchild", g, child_timeout);
                alarm(child_timeout);
                /* The child still works after its own child did. */
                ok &= child_work("child-again", round);
            }
            child_exit(ok);
        }
        snprintf(who, sizeof who, "child of round %d", round);
        finish_child(who, c, child_timeout * (round == 2 ? 3 : 1));
        alarm(g_step_timeout);

        printf("  round %d: parent after the child\n", round);
        snprintf(remote, sizeof remote, "parent-%d-after.bin", round);
        upload_and_list("parent", remote, (uint32_t)round * 10 + 2);
        char *resp = NULL;
        char must[64];
        snprintf(must, sizeof must, "\"path\":\"child-%d.bin\"", round);
        expect("parent: list shows the child's upload", c_list(g_fork_cfg, "", &resp), DEST_OK, &resp, must);
    }
    char *resp = NULL;
    expect("parent: grandchild's upload visible", c_list(g_fork_cfg, "grandchild-2.bin", &resp), DEST_OK, &resp,
           "\"path\":\"grandchild-2.bin\"");
}

/* ------------------------------------------------------------------------------------ */
/* Step b: threads                                                                      */

struct worker {
    int idx;
    int shared;
    const char *cfg; /* the shared JSON text itself, or own_cfg */
    char own_cfg[CFG_MAX];
    int iterations;
    pthread_barrier_t *barrier;
};

static void null_argument_calls(const struct worker *w)
{
    const char *cfg = w->cfg;
    char *r;
    char what[96];
#define NULL_CALL(label, call)                                                                     \
    do {                                                                                           \
        r = NULL;                                                                                  \
        snprintf(what, sizeof what, "thread %d: %s", w->idx, label);                               \
        expect(what, (call), DEST_ERR_INVALID_ARGUMENT, &r, "\"code\":\"invalid_argument\"");        \
    } while (0)
    NULL_CALL("validate(NULL)", c_validate(NULL, &r));
    NULL_CALL("upload(NULL config)", c_upload(NULL, "x", "y", NULL, NULL, &r));
    NULL_CALL("upload(NULL local)", c_upload(cfg, NULL, "y", NULL, NULL, &r));
    NULL_CALL("upload(NULL remote)", c_upload(cfg, "x", NULL, NULL, NULL, &r));
    NULL_CALL("download(NULL config)", c_download(NULL, "x", "y", NULL, NULL, &r));
    NULL_CALL("download(NULL remote)", c_download(cfg, NULL, "y", NULL, NULL, &r));
    NULL_CALL("download(NULL local)", c_download(cfg, "x", NULL, NULL, NULL, &r));
    NULL_CALL("list(NULL config)", c_list(NULL, "", &r));
    NULL_CALL("list(NULL remote)", c_list(cfg, NULL, &r));
    NULL_CALL("usage(NULL)", c_usage(NULL, &r));
    NULL_CALL("delete(NULL config)", c_delete(NULL, "x", &r));
    NULL_CALL("delete(NULL remote)", c_delete(cfg, NULL, &r));
#undef NULL_CALL
    /* No response wanted: the status alone. */
    CHECK(c_list(NULL, "", NULL) == DEST_ERR_INVALID_ARGUMENT, "thread %d: list(NULL, NULL response)", w->idx);
    CHECK(c_usage(NULL, NULL) == DEST_ERR_INVALID_ARGUMENT, "thread %d: usage(NULL, NULL response)", w->idx);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const char *cfg = w->cfg;
    char local[PATH_MAX], back[PATH_MAX], remote[128], prefix[64], what[160], must[192];
    pthread_barrier_wait(w->barrier);

    for (int it = 0; it < w->iterations; it++) {
        const char *v = dest_version();
        CHECK(v != NULL && strcmp(v, g_version) == 0, "thread %d: dest_version", w->idx);
        dest_free(NULL);

        char *r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: validate", w->idx, it);
        expect(what, c_validate(cfg, &r), DEST_OK, &r, "\"checks\":[");

        size_t size = (size_t)(g_light ? 300 : 2000) + (size_t)w->idx * 37 + (size_t)it;
        scratch_path(local, sizeof local, "thread-%d-%d.src", w->idx, it);
        scratch_path(back, sizeof back, "restore/thread-%d/%d.bin", w->idx, it);
        snprintf(prefix, sizeof prefix, "t%d", w->idx);
        snprintf(remote, sizeof remote, "t%d/f%d.bin", w->idx, it);
        CHECK(write_file(local, size, (uint32_t)(w->idx * 100 + it)), "thread %d: write %s", w->idx, local);

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: upload", w->idx, it);
        snprintf(must, sizeof must, "\"size\":%zu", size);
        expect(what, c_upload(cfg, local, remote, NULL, NULL, &r), DEST_OK, &r, must);

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: list", w->idx, it);
        snprintf(must, sizeof must, "\"path\":\"%s\"", remote);
        expect(what, c_list(cfg, prefix, &r), DEST_OK, &r, must);

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: list everything", w->idx, it);
        expect(what, c_list(cfg, "", &r), DEST_OK, &r, "\"entries\":[");

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: download", w->idx, it);
        expect(what, c_download(cfg, remote, back, NULL, NULL, &r), DEST_OK, &r, "\"verified\":true");
        CHECK(same_files(local, back), "thread %d iteration %d: downloaded copy differs", w->idx, it);

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: usage", w->idx, it);
        expect(what, c_usage(cfg, &r), DEST_OK, &r, "\"used_bytes\"");

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: delete", w->idx, it);
        expect(what, c_delete(cfg, remote, &r), DEST_OK, &r, "\"deleted_versions\":1");

        r = NULL;
        snprintf(what, sizeof what, "thread %d iteration %d: list after delete", w->idx, it);
        expect(what, c_list(cfg, prefix, &r), DEST_OK, &r, "\"entries\":[]");

        CHECK(c_list(cfg, "", NULL) == DEST_OK, "thread %d: list with no response wanted", w->idx);

        null_argument_calls(w);
    }
    return NULL;
}

static void step_threads(void)
{
    static struct worker workers[NTHREADS];
    static char shared_cfg[CFG_MAX];
    pthread_t tids[NTHREADS];
    pthread_barrier_t barrier;
    char restore[PATH_MAX];
    scratch_path(restore, sizeof restore, "restore");
    mkdir(restore, 0700);

    make_config(shared_cfg, sizeof shared_cfg, "threads/shared", 4, 0, NULL);
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    int iterations = g_light ? 1 : 3;
    printf("  %d threads x %d iterations: 8 on one destination, 8 on their own\n", NTHREADS, iterations);
    int started = 0;
    for (int i = 0; i < NTHREADS; i++) {
        struct worker *w = &workers[i];
        w->idx = i;
        w->shared = i % 2 == 0;
        w->iterations = iterations;
        w->barrier = &barrier;
        if (w->shared) {
            w->cfg = shared_cfg;
        } else {
            char dir[64];
            snprintf(dir, sizeof dir, "threads/own-%d", i);
            make_config(w->own_cfg, sizeof w->own_cfg, dir, 1 + i / 2, 0, NULL);
            w->cfg = w->own_cfg;
        }
        int rc = pthread_create(&tids[i], NULL, worker_main, w);
        if (!CHECK(rc == 0, "pthread_create: %s", strerror(rc))) {
            fprintf(stderr, "cannot start all threads: the barrier would never open\n");
            _exit(3);
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&barrier);

    /* What the threads left: nothing, on either kind of destination. */
    char *r = NULL;
    expect("shared destination empty afterwards", c_list(shared_cfg, "", &r), DEST_OK, &r, "\"entries\":[]");
    r = NULL;
    expect("own destination empty afterwards", c_list(workers[1].own_cfg, "", &r), DEST_OK, &r, "\"entries\":[]");
}

/* ------------------------------------------------------------------------------------ */
/* Step c: cancel a multipart upload from the progress callback                         */

struct progress_state {
    int calls;
    int cancel_after; /* return 1 once more than this many calls were made; <0 never */
    int cancels_returned;
    int off_thread;
    int went_backwards;
    uint64_t last_done, last_total;
};

static int32_t on_progress(uint64_t done, uint64_t total, void *user_data)
{
    struct progress_state *s = user_data;
    s->calls++;
    if (!on_calling_thread())
        s->off_thread++;
    if (total < s->last_total)
        s->went_backwards++;
    s->last_done = done;
    s->last_total = total;
    if (s->cancel_after >= 0 && s->calls > s->cancel_after) {
        s->cancels_returned++;
        return 1;
    }
    return 0;
}

static void step_cancel(void)
{
    char cfg[CFG_MAX], local[PATH_MAX], back[PATH_MAX];
    long part = g_light ? 20000 : 100000;
    size_t size = g_light ? 200000 : 1500000;
    make_config(cfg, sizeof cfg, "cancel", 4, part, NULL);
    scratch_path(local, sizeof local, "cancel-big.bin");
    scratch_path(back, sizeof back, "cancel-big.back");
    CHECK(write_file(local, size, 77), "write %s", local);
    char must[64];
    snprintf(must, sizeof must, "\"size\":%zu", size);

    /* Slow every part down so the upload outlasts the second progress call (made at most
     * ~100 ms after the first once bytes move): the cancel then lands mid-upload. */
    CHECK(emu_control("POST", "faults", "{\"call\":\"b2_upload_part\",\"count\":1000,\"action\":\"delay\",\"millis\":250}"),
          "inject a delay fault through %s/__emulator/faults", g_url);

    struct progress_state ps = {0};
    ps.cancel_after = 1;
    char *r = NULL;
    printf("  multipart upload of %zu bytes in parts of %ld, cancelled at the second progress call\n", size, part);
    expect("cancelled multipart upload", c_upload(cfg, local, "big.bin", on_progress, &ps, &r), DEST_ERR_CANCELLED, &r,
           "\"code\":\"cancelled\"");
    printf("  progress calls: %d, the callback returned 1 on %d of them\n", ps.calls, ps.cancels_returned);
    CHECK(ps.cancels_returned >= 1, "the callback never got to cancel (%d calls)", ps.calls);
    CHECK(ps.off_thread == 0, "%d progress calls off the calling thread", ps.off_thread);
    CHECK(emu_control("DELETE", "faults", NULL), "clear faults");

    r = NULL;
    expect("nothing listed after the cancel", c_list(cfg, "", &r), DEST_OK, &r, "\"entries\":[]");
    r = NULL;
    expect("no unfinished large file after the cancel", c_usage(cfg, &r), DEST_OK, &r, "\"unfinished_large_files\":0");

    /* Cancel from the very first call: also refused, nothing made. */
    struct progress_state first = {0};
    first.cancel_after = 0;
    r = NULL;
    expect("upload cancelled at the first progress call", c_upload(cfg, local, "first.bin", on_progress, &first, &r),
           DEST_ERR_CANCELLED, &r, "\"code\":\"cancelled\"");
    r = NULL;
    expect("nothing listed after the first-call cancel", c_list(cfg, "", &r), DEST_OK, &r, "\"entries\":[]");

    /* The same upload without cancelling: nothing left behind breaks it. */
    struct progress_state go = {0};
    go.cancel_after = -1;
    r = NULL;
    expect("same upload, not cancelled", c_upload(cfg, local, "big.bin", on_progress, &go, &r), DEST_OK, &r, must);
    CHECK(go.calls >= 2 && go.off_thread == 0 && go.went_backwards == 0,
          "progress: %d calls, %d off thread, total went backwards %d times", go.calls, go.off_thread,
          go.went_backwards);
    CHECK(go.last_done == size && go.last_total == size, "last progress call %" PRIu64 "/%" PRIu64 ", wanted %zu/%zu",
          go.last_done, go.last_total, size, size);

    struct progress_state down = {0};
    down.cancel_after = -1;
    r = NULL;
    expect("download of the uploaded file", c_download(cfg, "big.bin", back, on_progress, &down, &r), DEST_OK, &r,
           "\"verified\":true");
    CHECK(same_files(local, back), "downloaded copy differs");
    CHECK(down.last_done == size, "download progress ended at %" PRIu64, down.last_done);

    r = NULL;
    expect("delete", c_delete(cfg, "big.bin", &r), DEST_OK, &r, "\"deleted_versions\":1");
}

/* ------------------------------------------------------------------------------------ */
/* Step d: a progress callback that calls the library itself                            */

struct reentrant_state {
    const char *cfg;
    const char *expect_path; /* a file the nested listing must show, or NULL */
    int calls;
    int nested_calls;
    int nested_ok;
    int off_thread;
};

static int32_t on_progress_reentrant(uint64_t done, uint64_t total, void *user_data)
{
    struct reentrant_state *s = user_data;
    s->calls++;
    if (!on_calling_thread())
        s->off_thread++;
    /* At the first call and at the last one (done == total, a second nested call). */
    if (s->calls == 1 || (total > 0 && done == total && s->nested_calls < 3)) {
        char *r = NULL;
        s->nested_calls++;
        int ok = expect("dest_list inside the progress callback", c_list(s->cfg, "", &r), DEST_OK, &r,
                        s->expect_path);
        r = NULL;
        ok &= expect("dest_usage inside the progress callback", c_usage(s->cfg, &r), DEST_OK, &r, "\"used_bytes\"");
        s->nested_ok += ok;
    }
    return 0;
}

static void step_reentrant(void)
{
    char cfg[CFG_MAX], local[PATH_MAX], back[PATH_MAX];
    long part = g_light ? 20000 : 100000;
    size_t size = g_light ? 50000 : 350000;
    make_config(cfg, sizeof cfg, "reentrant", 3, part, NULL);
    scratch_path(local, sizeof local, "reentrant.bin");
    scratch_path(back, sizeof back, "reentrant.back");
    CHECK(write_file(local, size, 5), "write %s", local);
    char must[64];
    snprintf(must, sizeof must, "\"size\":%zu", size);

    struct reentrant_state up = {cfg, NULL, 0, 0, 0, 0};
    char *r = NULL;
    expect("upload whose callback calls dest_list", c_upload(cfg, local, "r.bin", on_progress_reentrant, &up, &r),
           DEST_OK, &r, must);
    CHECK(up.nested_calls >= 2 && up.nested_ok == up.nested_calls, "nested calls: %d made, %d ok", up.nested_calls,
          up.nested_ok);
    CHECK(up.off_thread == 0, "%d progress calls off the calling thread", up.off_thread);

    struct reentrant_state down = {cfg, "\"path\":\"r.bin\"", 0, 0, 0, 0};
    r = NULL;
    expect("download whose callback calls dest_list",
           c_download(cfg, "r.bin", back, on_progress_reentrant, &down, &r), DEST_OK, &r, "\"verified\":true");
    CHECK(same_files(local, back), "downloaded copy differs");
    CHECK(down.nested_calls >= 2 && down.nested_ok == down.nested_calls, "nested calls: %d made, %d ok",
          down.nested_calls, down.nested_ok);
    r = NULL;
    expect("delete", c_delete(cfg, "r.bin", &r), DEST_OK, &r, "\"deleted_versions\":1");
}

/* ------------------------------------------------------------------------------------ */
/* Step e: log lines                                                                    */

#define LOG_THREADS 4

struct log_worker {
    int idx;
    const char *cfg;
    struct log_sink sink;
    char local[PATH_MAX];
    int status;
    pthread_barrier_t *barrier;
};

static void *log_worker_main(void *arg)
{
    struct log_worker *w = arg;
    tl_sink = &w->sink;
    char remote[64];
    snprintf(remote, sizeof remote, "e/log-%d.bin", w->idx);
    pthread_barrier_wait(w->barrier);
    char *r = NULL;
    w->status = c_upload(w->cfg, w->local, remote, NULL, NULL, &r);
    char what[64];
    snprintf(what, sizeof what, "log thread %d: upload", w->idx);
    expect(what, w->status, DEST_OK, &r, NULL);
    tl_sink = NULL;
    return NULL;
}

static void step_log(void)
{
    static struct log_worker workers[LOG_THREADS];
    static struct log_sink sink;
    char cfg[CFG_MAX], wrong[CFG_MAX], local[PATH_MAX];
    make_config(cfg, sizeof cfg, "log", 2, 0, NULL);
    make_config(wrong, sizeof wrong, "log", 2, 0, WRONG_KEY);

    /* Several threads at once, each collecting the lines delivered on it: each must see
     * its own file named and no other thread's. */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, LOG_THREADS);
    pthread_t tids[LOG_THREADS];
    for (int i = 0; i < LOG_THREADS; i++) {
        struct log_worker *w = &workers[i];
        w->idx = i;
        w->cfg = cfg;
        w->barrier = &barrier;
        scratch_path(w->local, sizeof w->local, "log-source-%d.bin", i);
        CHECK(write_file(w->local, 3000, (uint32_t)i), "write %s", w->local);
        int rc = pthread_create(&tids[i], NULL, log_worker_main, w);
        if (!CHECK(rc == 0, "pthread_create: %s", strerror(rc)))
            _exit(3);
    }
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < LOG_THREADS; i++) {
        char mine[64];
        snprintf(mine, sizeof mine, "log-source-%d.bin", i);
        CHECK(workers[i].sink.lines > 0 && strstr(workers[i].sink.text, mine),
              "thread %d got %d lines, none naming its own file %s:\n%s", i, workers[i].sink.lines, mine,
              workers[i].sink.text);
        for (int j = 0; j < LOG_THREADS; j++) {
            char other[64];
            snprintf(other, sizeof other, "log-source-%d.bin", j);
            if (j != i)
                CHECK(!strstr(workers[i].sink.text, other), "thread %d received a line of thread %d's call:\n%s", i, j,
                      workers[i].sink.text);
        }
    }

    /* A retried failure gives a warning line on this thread; it carries no key. */
    tl_sink = &sink;
    memset(&sink, 0, sizeof sink);
    scratch_path(local, sizeof local, "log-retry.bin");
    CHECK(write_file(local, 2000, 9), "write %s", local);
    CHECK(emu_control("POST", "faults",
                      "{\"call\":\"b2_upload_file\",\"count\":1,\"action\":\"error\",\"status\":503,\"code\":\"service_unavailable\"}"),
          "inject a 503 fault");
    char *r = NULL;
    expect("upload retried after a 503", c_upload(cfg, local, "e/retry.bin", NULL, NULL, &r), DEST_OK, &r, NULL);
    CHECK(sink.warn_lines > 0, "no warning line for the retried 503; lines:\n%s", sink.text);
    CHECK(emu_control("DELETE", "faults", NULL), "clear faults");

    /* A refused key: the response and the lines never carry it. */
    memset(&sink, 0, sizeof sink);
    r = NULL;
    expect("validate with a wrong key", c_validate(wrong, &r), DEST_ERR_AUTH, &r, "\"code\":\"auth\"");
    r = NULL;
    expect("upload with a wrong key", c_upload(wrong, local, "e/nope.bin", NULL, NULL, &r), DEST_ERR_AUTH, &r, NULL);

    /* The level filter: at DEST_LOG_ERROR a successful upload says nothing. */
    dest_set_log_callback(on_log, DEST_LOG_ERROR, &g_logs);
    memset(&sink, 0, sizeof sink);
    r = NULL;
    expect("upload with logging at ERROR", c_upload(cfg, local, "e/quiet.bin", NULL, NULL, &r), DEST_OK, &r, NULL);
    CHECK(sink.lines == 0, "%d lines above the ERROR level:\n%s", sink.lines, sink.text);

    /* Removed: nothing at all. */
    dest_set_log_callback(NULL, DEST_LOG_DEBUG, NULL);
    int before = atomic_load(&g_logs.lines);
    r = NULL;
    expect("upload with no log callback", c_upload(cfg, local, "e/silent.bin", NULL, NULL, &r), DEST_OK, &r, NULL);
    CHECK(atomic_load(&g_logs.lines) == before, "lines delivered after the callback was removed");

    /* Back on, for the rest of the run. */
    dest_set_log_callback(on_log, DEST_LOG_DEBUG, &g_logs);
    memset(&sink, 0, sizeof sink);
    r = NULL;
    expect("upload with logging back on", c_upload(cfg, local, "e/loud.bin", NULL, NULL, &r), DEST_OK, &r, NULL);
    CHECK(sink.lines > 0, "no lines after the callback was set again");
    tl_sink = NULL;

    r = NULL;
    expect("delete what the step uploaded", c_delete(cfg, "e", &r), DEST_OK, &r, "\"deleted_versions\":8");
}

/* ------------------------------------------------------------------------------------ */
/* Steps f and g: fork while busy, and a log callback that calls the library            */

/* fork() while other threads are inside calls that deliver log lines through a logger
 * that takes a moment (as one writing to a file does): the child must still work. */
static atomic_int g_busy_stop;
static char g_busy_cfg[CFG_MAX];

static void *busy_main(void *arg)
{
    long idx = (long)(intptr_t)arg;
    char local[PATH_MAX], remote[64];
    scratch_path(local, sizeof local, "busy-%ld.bin", idx);
    CHECK(write_file(local, 3000, (uint32_t)idx), "write %s", local);
    for (int n = 0; !atomic_load(&g_busy_stop); n++) {
        snprintf(remote, sizeof remote, "b%ld/%d.bin", idx, n % 4);
        char *r = NULL;
        char what[64];
        snprintf(what, sizeof what, "busy thread %ld: upload", idx);
        expect(what, c_upload(g_busy_cfg, local, remote, NULL, NULL, &r), DEST_OK, &r, NULL);
    }
    return NULL;
}

static void step_busy_fork(void)
{
    make_config(g_busy_cfg, sizeof g_busy_cfg, "busy-fork", 2, 0, NULL);
    atomic_store(&g_log_delay_us, 500);
    atomic_store(&g_busy_stop, 0);
    pthread_t tids[4];
    for (long i = 0; i < 4; i++)
        if (pthread_create(&tids[i], NULL, busy_main, (void *)(intptr_t)i) != 0)
            _exit(3);
    int forks = g_light ? 3 : 6, good = 0;
    for (int k = 0; k < forks; k++) {
        struct timespec ts = {0, 20000000L + (k % 5) * 7000000L};
        nanosleep(&ts, NULL);
        struct child c = start_child();
        if (c.pid < 0)
            break;
        if (c.pid == 0) {
            g_step_name = "busy-fork (child)";
            alarm(CHILD_HANG_SECONDS);
            char local[PATH_MAX];
            scratch_path(local, sizeof local, "busy-0.bin");
            char *r = NULL;
            child_exit(expect("child of a busy parent: upload", c_upload(g_busy_cfg, local, "child.bin", NULL, NULL, &r),
                              DEST_OK, &r, NULL));
        }
        char who[64];
        snprintf(who, sizeof who, "child %d forked while 4 threads were uploading", k);
        good += finish_child(who, c, CHILD_HANG_SECONDS + 30);
        alarm(g_step_timeout);
    }
    atomic_store(&g_busy_stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(tids[i], NULL);
    atomic_store(&g_log_delay_us, 0);
    printf("  %d of %d children forked mid-call worked\n", good, forks);
}

/* The log callback calls dest_set_log_callback ("safe to call at any time from any
 * thread"), or another dest_* function; each in a child, so a deadlock is one failure. */
static void step_log_reentrant(void)
{
    make_config(g_reenter_cfg, sizeof g_reenter_cfg, "log-reentrant", 2, 0, NULL);
    scratch_path(g_reenter_local, sizeof g_reenter_local, "log-reentrant.bin");
    CHECK(write_file(g_reenter_local, 2000, 3), "write %s", g_reenter_local);
    static const char *const what[] = {"", "dest_set_log_callback inside the log callback",
                                       "dest_upload inside the log callback"};
    for (int mode = 1; mode <= 2; mode++) {
        struct child c = start_child();
        if (c.pid < 0)
            return;
        if (c.pid == 0) {
            g_step_name = what[mode];
            alarm(CHILD_HANG_SECONDS);
            atomic_store(&g_log_reenter, mode);
            char *r = NULL;
            int ok = expect(what[mode], c_upload(g_reenter_cfg, g_reenter_local, "outer.bin", NULL, NULL, &r), DEST_OK,
                            &r, NULL);
            ok &= CHECK(tl_reenter_status == DEST_OK, "%s: the inner call returned %d", what[mode],
                        (int)tl_reenter_status);
            child_exit(ok);
        }
        finish_child(what[mode], c, CHILD_HANG_SECONDS + 30);
        alarm(g_step_timeout);
    }
}

/* ------------------------------------------------------------------------------------ */

static void run_step(const char *name, void (*fn)(void))
{
    int failed_before = atomic_load(&g_failed);
    int passed_before = atomic_load(&g_passed);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("== step %s\n", name);
    fflush(stdout);
    g_step_name = name;
    alarm(g_step_timeout);
    fn();
    alarm(0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int failed = atomic_load(&g_failed) - failed_before;
    int passed = atomic_load(&g_passed) - passed_before;
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%s: step %s (%d checks passed, %d failed, %.1f s)\n", failed ? "FAIL" : "PASS", name, passed, failed,
           secs);
    fflush(stdout);
}

/* Whether `name` is one of the comma-separated names in `list`. */
static int named(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--light") == 0)
            g_light = 1;
        else if (strcmp(argv[i], "--valgrind") == 0)
            g_valgrind = g_light = 1;
        else if (strncmp(argv[i], "--only=", 7) == 0)
            only = argv[i] + 7;
        else if (positional == 0) {
            g_url = argv[i];
            positional = 1;
        } else if (positional == 1) {
            g_scratch = argv[i];
            positional = 2;
        } else {
            positional = 99;
        }
    }
    if (positional != 2) {
        fprintf(stderr, "usage: %s EMULATOR_URL SCRATCH_DIR [--light] [--valgrind] [--only=STEP,...]\n  steps: fork threads cancel reentrant log busy-fork log-reentrant\n",
                argv[0]);
        return 2;
    }
    g_account = getenv("B2DEST_ACCOUNT_ID") ? getenv("B2DEST_ACCOUNT_ID") : "emu-account";
    g_key = getenv("B2DEST_APPLICATION_KEY") ? getenv("B2DEST_APPLICATION_KEY") : "emu-application-key";
    g_bucket = getenv("B2DEST_BUCKET") ? getenv("B2DEST_BUCKET") : "b2dest-test";
    g_step_timeout = g_light ? 300 : 120;
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    g_version = dest_version();
    printf("fork_threads: libb2dest %s, emulator %s%s\n", g_version ? g_version : "(NULL)", g_url,
           g_light ? " (light)" : "");
    if (!CHECK(g_version != NULL && g_version[0] != '\0', "dest_version"))
        g_version = "";
    dest_set_log_callback(on_log, DEST_LOG_DEBUG, &g_logs);

    struct {
        const char *name;
        void (*fn)(void);
    } steps[] = {
        {"fork", step_fork},           {"threads", step_threads},     {"cancel", step_cancel},
        {"reentrant", step_reentrant}, {"log", step_log},             {"busy-fork", step_busy_fork},
        {"log-reentrant", step_log_reentrant},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (!only || named(only, steps[i].name))
            run_step(steps[i].name, steps[i].fn);

    /* The log callback watched every step. */
    printf("log lines: %d, off the calling thread: %d, with the key: %d, bad: %d\n", atomic_load(&g_logs.lines),
           atomic_load(&g_logs.wrong_thread), atomic_load(&g_logs.with_key), atomic_load(&g_logs.bad_level));
    CHECK(atomic_load(&g_logs.lines) > 0, "no log line at all");
    CHECK(atomic_load(&g_logs.wrong_thread) == 0, "log lines off the calling thread");
    CHECK(atomic_load(&g_logs.with_key) == 0, "log lines with the application key");
    CHECK(atomic_load(&g_logs.bad_level) == 0, "log lines with a bad level or NULL text");
    dest_set_log_callback(NULL, 0, NULL);

    int passed = atomic_load(&g_passed), failed = atomic_load(&g_failed);
    printf("fork_threads: %d passed, %d failed\n", passed, failed);
    fflush(NULL);
    return failed == 0 ? 0 : 1;
}
