/*
 * load.c: JetBackup's engine at full load (issue 22), over the public ABI only.
 *
 *   load EMULATOR_URL SCRATCH_DIR [--procs N] [--threads N] [--files N] [--min-size B]
 *        [--max-size B] [--large N] [--large-size B] [--restore N] [--concurrency N]
 *        [--part-size B] [--retries N] [--timeout S] [--prefix DIR]
 *
 * Forks --procs processes (default 10), one per account; each writes its share of
 * --files small files (sizes from --min-size to --max-size, contents pseudo-random from
 * the process and file number) and --large files of --large-size under SCRATCH/pNN/, then
 * waits until every process is ready. Then --threads threads (default 10) each upload
 * their share with dest_upload, one object per call, to pNN/NAME under --prefix; then
 * each thread restores --restore of its files (thread 0 also the large ones) with
 * dest_download, all threads at once, and compares them byte for byte.
 *
 * Every response is checked (status, "ok", no application key), and the "transactions"
 * of every response are summed per process: the B2 calls each process made.
 *
 * Watchdog: each process has alarm(--timeout) (default 120 s): a hang becomes a failure
 * that names the process, its phase and its progress; the parent kills what is left
 * after --timeout + 20 s. Prints one JSON line: counts, the upload phase's wall time
 * (from the moment all processes start uploading until the last finishes its uploads),
 * each process's peak RSS and calls. Exits 0 only when every call succeeded.
 * Environment: B2DEST_ACCOUNT_ID, B2DEST_APPLICATION_KEY, B2DEST_BUCKET.
 */

#include <b2dest.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64
#define MAX_THREADS 64
#define FAIL_REPORTS 5 /* failure messages printed per process; the rest only counted */

/* The B2 calls counted from the responses; anything else is "other". */
static const char *const CALLS[] = {
    "b2_authorize_account",     "b2_list_buckets",        "b2_get_upload_url",
    "b2_upload_file",           "b2_start_large_file",    "b2_get_upload_part_url",
    "b2_upload_part",           "b2_finish_large_file",   "b2_cancel_large_file",
    "b2_list_unfinished_large_files", "b2_list_parts",    "b2_list_file_names",
    "b2_list_file_versions",    "b2_get_file_info",       "b2_download_file_by_name",
    "b2_download_file_by_id",   "b2_hide_file",           "b2_delete_file_version",
    "b2_update_file_retention", "other",
};
#define NCALLS (sizeof CALLS / sizeof CALLS[0])

static struct {
    const char *url, *scratch, *account, *key, *bucket, *prefix;
    int procs, threads, large, restore, concurrency, retries, timeout;
    long files;
    uint64_t min_size, max_size, large_size, part_size;
} opt = {.procs = 10, .threads = 10, .files = 2400, .min_size = 1024, .max_size = 65536,
         .large = 1, .large_size = 450000, .restore = 3, .concurrency = 4, .retries = 10,
         .timeout = 120, .prefix = "load"};

/* This process's state (a child's, after the fork). */
static int g_proc;
static char g_config[2048];
static atomic_long g_uploaded, g_upload_failed, g_restored, g_restore_failed, g_reports;
static atomic_long g_calls[NCALLS];
static const char *volatile g_phase = "start";

static void report(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "load p%02d: %s\n", g_proc, line);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: file sizes and contents from (process, file). */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t small_size(int p, long i)
{
    uint64_t s = ((uint64_t)p << 40) ^ (uint64_t)i ^ 0x51ee;
    return opt.min_size + mix(&s) % (opt.max_size - opt.min_size + 1);
}

static void local_name(char *buf, size_t n, const char *sub, long i, int large)
{
    snprintf(buf, n, "%s/p%02d%s/%s%05ld.bin", opt.scratch, g_proc, sub, large ? "large" : "f", i);
}

static void remote_name(char *buf, size_t n, long i, int large)
{
    snprintf(buf, n, "p%02d/%s%05ld.bin", g_proc, large ? "large" : "f", i);
}

static int write_file(const char *path, uint64_t size, uint64_t seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    uint64_t buf[8192], s = seed;
    while (size > 0) {
        size_t n = size < sizeof buf ? (size_t)size : sizeof buf;
        for (size_t k = 0; k < (n + 7) / 8; k++)
            buf[k] = mix(&s);
        if (write(fd, buf, n) != (ssize_t)n) {
            close(fd);
            return -1;
        }
        size -= n;
    }
    return close(fd);
}

/* 1 when the two files hold the same bytes. */
static int same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa != NULL && fb != NULL;
    static _Thread_local char ba[65536], bb[65536];
    while (same) {
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            same = 0;
        if (na == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* Adds the response's "transactions":{..."calls":{"b2_x":N,...}} to this process's counts. */
static void count_calls(const char *resp)
{
    const char *t = strstr(resp, "\"transactions\":{");
    const char *c = t ? strstr(t, "\"calls\":{") : NULL;
    if (c == NULL)
        return;
    c += strlen("\"calls\":{");
    while (*c == '"') {
        const char *end = strchr(c + 1, '"');
        if (end == NULL || end[1] != ':')
            return;
        size_t len = (size_t)(end - c - 1);
        long n = strtol(end + 2, (char **)&c, 10);
        size_t k = 0;
        while (k < NCALLS - 1 && !(strlen(CALLS[k]) == len && strncmp(CALLS[k], end - len, len) == 0))
            k++;
        atomic_fetch_add(&g_calls[k], n);
        if (*c == ',')
            c++;
    }
}

/* Checks one response, counts its calls, frees it; 1 when the call succeeded. */
static int settle(const char *what, const char *name, int32_t status, char *resp)
{
    const char *problem = NULL;
    if (resp == NULL)
        problem = "no response";
    else if (strstr(resp, opt.key))
        problem = "the application key is in the response";
    else if (status != DEST_OK)
        problem = "failed";
    else if (!strstr(resp, "\"ok\":true"))
        problem = "\"ok\" is not true";
    if (resp)
        count_calls(resp);
    if (problem && atomic_fetch_add(&g_reports, 1) < FAIL_REPORTS)
        report("%s %s: %s (status %d): %.400s", what, name, problem, (int)status,
               resp && !strstr(resp, opt.key) ? resp : "(withheld)");
    dest_free(resp);
    return problem == NULL;
}

/* The files thread t owns: small i with i % threads == t; large j likewise. */
static void *worker(void *arg)
{
    long t = (long)(intptr_t)arg, per_proc = opt.files / opt.procs;
    char local[1024], remote[512];
    for (long j = t; j < opt.large; j += opt.threads) {
        local_name(local, sizeof local, "", j, 1);
        remote_name(remote, sizeof remote, j, 1);
        char *resp = NULL;
        int32_t st = dest_upload(g_config, local, remote, NULL, NULL, &resp);
        atomic_fetch_add(settle("upload", remote, st, resp) ? &g_uploaded : &g_upload_failed, 1);
    }
    for (long i = t; i < per_proc; i += opt.threads) {
        local_name(local, sizeof local, "", i, 0);
        remote_name(remote, sizeof remote, i, 0);
        char *resp = NULL;
        int32_t st = dest_upload(g_config, local, remote, NULL, NULL, &resp);
        atomic_fetch_add(settle("upload", remote, st, resp) ? &g_uploaded : &g_upload_failed, 1);
    }
    return NULL;
}

static void *restorer(void *arg)
{
    long t = (long)(intptr_t)arg, per_proc = opt.files / opt.procs;
    char local[1024], remote[512], back[1024];
    for (int large = 1; large >= 0; large--) {
        long n = large ? (t == 0 ? opt.large : 0) : opt.restore;
        for (long k = 0; k < n; k++) {
            long i = large ? k : t + k * opt.threads;
            if (!large && i >= per_proc)
                break;
            local_name(local, sizeof local, "", i, large);
            local_name(back, sizeof back, "/back", i, large);
            remote_name(remote, sizeof remote, i, large);
            char *resp = NULL;
            int32_t st = dest_download(g_config, remote, back, NULL, NULL, &resp);
            int ok = settle("restore", remote, st, resp);
            if (ok && !same_bytes(local, back)) {
                ok = 0;
                report("restore %s: the restored file differs from the original", remote);
            }
            atomic_fetch_add(ok ? &g_restored : &g_restore_failed, 1);
        }
    }
    return NULL;
}

/* Async-signal-safe: a hang becomes a message and an exit, never a stuck CI. */
static void put_num(char **p, long v)
{
    char d[24];
    int n = 0;
    if (v < 0) {
        *(*p)++ = '-';
        v = -v;
    }
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *(*p)++ = d[--n];
}

static void put_str(char **p, const char *s)
{
    while (*s)
        *(*p)++ = *s++;
}

static void on_child_alarm(int sig)
{
    (void)sig;
    char msg[512], *p = msg;
    put_str(&p, "load p");
    put_num(&p, g_proc);
    put_str(&p, ": HANG: still in phase ");
    put_str(&p, g_phase);
    put_str(&p, " after ");
    put_num(&p, opt.timeout);
    put_str(&p, " s (uploads done ");
    put_num(&p, atomic_load(&g_uploaded) + atomic_load(&g_upload_failed));
    put_str(&p, ", restores done ");
    put_num(&p, atomic_load(&g_restored) + atomic_load(&g_restore_failed));
    put_str(&p, ")\n");
    if (write(2, msg, (size_t)(p - msg)) < 0) {
    }
    _exit(124);
}

static pid_t g_children[MAX_PROCS];

static void on_parent_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "load: HANG: children still running after the time limit; killed\n";
    for (int p = 0; p < opt.procs; p++)
        if (g_children[p] > 0)
            kill(g_children[p], SIGKILL);
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(124);
}

static int run_threads(void *(*fn)(void *))
{
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (long t = 0; t < opt.threads; t++) {
        if (pthread_create(&th[t], NULL, fn, (void *)(intptr_t)t) != 0) {
            report("pthread_create: %s", strerror(errno));
            break;
        }
        started++;
    }
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    return started == opt.threads;
}

/* One account's process: write the files, wait for the go, upload, restore, report. */
static int child(int p, int ready_fd, int go_fd, int result_fd)
{
    g_proc = p;
    signal(SIGALRM, on_child_alarm);
    alarm((unsigned)opt.timeout);
    g_phase = "writing files";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/p%02d", opt.scratch, p);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/p%02d/back", opt.scratch, p);
    mkdir(dir, 0700);
    char path[1024];
    long per_proc = opt.files / opt.procs;
    for (long i = 0; i < per_proc + opt.large; i++) {
        int large = i >= per_proc;
        long n = large ? i - per_proc : i;
        local_name(path, sizeof path, "", n, large);
        uint64_t size = large ? opt.large_size : small_size(p, n);
        if (write_file(path, size, ((uint64_t)p << 48) ^ ((uint64_t)large << 40) ^ (uint64_t)n) != 0) {
            report("writing %s: %s", path, strerror(errno));
            return 2;
        }
    }
    snprintf(g_config, sizeof g_config,
             "{\"name\":\"load p%02d\",\"account_id\":\"%s\",\"application_key\":\"%s\","
             "\"bucket\":\"%s\",\"backup_directory\":\"%s\",\"api_url\":\"%s\","
             "\"upload_retries\":%d,\"retry_initial_delay_ms\":20,\"timeout_seconds\":30,"
             "\"concurrency\":%d",
             p, opt.account, opt.key, opt.bucket, opt.prefix, opt.url, opt.retries, opt.concurrency);
    size_t used = strlen(g_config);
    if (opt.part_size)
        snprintf(g_config + used, sizeof g_config - used, ",\"part_size_bytes\":%" PRIu64 "}",
                 opt.part_size);
    else
        snprintf(g_config + used, sizeof g_config - used, "}");
    char one = 'r';
    g_phase = "waiting for the others";
    if (write(ready_fd, &one, 1) != 1 || read(go_fd, &one, 1) < 0)
        return 2;
    g_phase = "uploading";
    int ok = run_threads(worker);
    uint64_t upload_end = now_ns();
    g_phase = "restoring";
    ok &= run_threads(restorer);
    g_phase = "reporting";
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char line[2048];
    int n = snprintf(line, sizeof line, "%d %ld %ld %ld %ld %ld %" PRIu64, p, atomic_load(&g_uploaded),
                     atomic_load(&g_upload_failed), atomic_load(&g_restored),
                     atomic_load(&g_restore_failed), (long)ru.ru_maxrss, upload_end);
    for (size_t k = 0; k < NCALLS; k++)
        n += snprintf(line + n, sizeof line - (size_t)n, " %ld", atomic_load(&g_calls[k]));
    line[n++] = '\n';
    /* One write under PIPE_BUF: the processes' lines do not interleave. */
    if (write(result_fd, line, (size_t)n) != n)
        return 2;
    return ok && atomic_load(&g_upload_failed) == 0 && atomic_load(&g_restore_failed) == 0 ? 0 : 1;
}

static long num_arg(const char *name, const char *v, long lo, long hi)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < lo || n > hi) {
        fprintf(stderr, "load: %s must be a number from %ld to %ld\n", name, lo, hi);
        exit(64);
    }
    return n;
}

static void parse_args(int argc, char **argv)
{
    if (argc < 3 || (argc - 3) % 2 != 0) {
        fprintf(stderr, "usage: load EMULATOR_URL SCRATCH_DIR [--option VALUE]...\n");
        exit(64);
    }
    opt.url = argv[1];
    opt.scratch = argv[2];
    for (int i = 3; i < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--procs")) opt.procs = (int)num_arg(o, v, 1, MAX_PROCS);
        else if (!strcmp(o, "--threads")) opt.threads = (int)num_arg(o, v, 1, MAX_THREADS);
        else if (!strcmp(o, "--files")) opt.files = num_arg(o, v, 0, 10000000);
        else if (!strcmp(o, "--min-size")) opt.min_size = (uint64_t)num_arg(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--max-size")) opt.max_size = (uint64_t)num_arg(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--large")) opt.large = (int)num_arg(o, v, 0, 1000);
        else if (!strcmp(o, "--large-size")) opt.large_size = (uint64_t)num_arg(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--restore")) opt.restore = (int)num_arg(o, v, 0, 100000);
        else if (!strcmp(o, "--concurrency")) opt.concurrency = (int)num_arg(o, v, 1, 64);
        else if (!strcmp(o, "--part-size")) opt.part_size = (uint64_t)num_arg(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--retries")) opt.retries = (int)num_arg(o, v, 0, 100);
        else if (!strcmp(o, "--timeout")) opt.timeout = (int)num_arg(o, v, 1, 86400);
        else if (!strcmp(o, "--prefix")) opt.prefix = v;
        else {
            fprintf(stderr, "load: unknown option %s\n", o);
            exit(64);
        }
    }
    if (opt.max_size < opt.min_size) {
        fprintf(stderr, "load: --max-size is below --min-size\n");
        exit(64);
    }
    const char *e;
    opt.account = (e = getenv("B2DEST_ACCOUNT_ID")) ? e : "emu-account";
    opt.key = (e = getenv("B2DEST_APPLICATION_KEY")) ? e : "emu-application-key";
    opt.bucket = (e = getenv("B2DEST_BUCKET")) ? e : "b2dest-test";
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    int ready[2], go[2], results[2];
    if (pipe(ready) || pipe(go) || pipe(results)) {
        perror("pipe");
        return 2;
    }
    fflush(NULL);
    for (int p = 0; p < opt.procs; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            close(go[1]); /* else the go pipe never reaches end of file */
            close(ready[0]);
            close(results[0]);
            int rc = child(p, ready[1], go[0], results[1]);
            fflush(NULL);
            _exit(rc);
        }
        g_children[p] = pid;
    }
    close(ready[1]);
    close(go[0]);
    close(results[1]);
    signal(SIGALRM, on_parent_alarm);
    alarm((unsigned)opt.timeout + 20);
    char c;
    int got = 0;
    while (got < opt.procs && read(ready[0], &c, 1) == 1)
        got++;
    uint64_t t0 = now_ns();
    close(go[1]); /* go: every process starts uploading now */

    int failed_procs = 0;
    for (int p = 0; p < opt.procs; p++) {
        int status = 0;
        if (waitpid(g_children[p], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "load: process p%02d ended with %s %d\n", p,
                    WIFSIGNALED(status) ? "signal" : "status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            failed_procs++;
        }
        g_children[p] = 0;
    }
    uint64_t t_end = now_ns();
    alarm(0);

    static char buf[MAX_PROCS * 2048];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(results[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';

    long up = 0, upf = 0, re = 0, ref = 0, reported = 0;
    uint64_t upload_end = t0;
    long total[NCALLS] = {0};
    char procs_json[MAX_PROCS * 1024];
    size_t pj = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        int p;
        long u, uf, r, rf, rss;
        uint64_t end;
        int off = 0;
        if (sscanf(line, "%d %ld %ld %ld %ld %ld %" SCNu64 "%n", &p, &u, &uf, &r, &rf, &rss, &end,
                   &off) != 7)
            continue;
        reported++;
        up += u, upf += uf, re += r, ref += rf;
        if (end > upload_end)
            upload_end = end;
        pj += (size_t)snprintf(procs_json + pj, sizeof procs_json - pj,
                               "%s{\"proc\":%d,\"max_rss_kib\":%ld,\"calls\":{", reported > 1 ? "," : "",
                               p, rss);
        char *rest = line + off;
        int first = 1;
        for (size_t k = 0; k < NCALLS; k++) {
            long v = strtol(rest, &rest, 10);
            total[k] += v;
            if (v) {
                pj += (size_t)snprintf(procs_json + pj, sizeof procs_json - pj, "%s\"%s\":%ld",
                                       first ? "" : ",", CALLS[k], v);
                first = 0;
            }
        }
        pj += (size_t)snprintf(procs_json + pj, sizeof procs_json - pj, "}}");
    }
    long per_proc = opt.files / opt.procs;
    long want_up = (long)opt.procs * (per_proc + opt.large);
    int ok = failed_procs == 0 && reported == opt.procs && up == want_up && upf == 0 && ref == 0;
    printf("{\"ok\":%s,\"procs\":%d,\"threads\":%d,\"small_files\":%ld,\"large_files\":%d,"
           "\"uploaded\":%ld,\"upload_failures\":%ld,\"restored\":%ld,\"restore_failures\":%ld,"
           "\"failed_processes\":%d,\"upload_wall_s\":%.3f,\"total_wall_s\":%.3f,\"calls\":{",
           ok ? "true" : "false", opt.procs, opt.threads, per_proc * opt.procs, opt.procs * opt.large, up,
           upf, re, ref, failed_procs, (double)(upload_end - t0) / 1e9, (double)(t_end - t0) / 1e9);
    int first = 1;
    for (size_t k = 0; k < NCALLS; k++)
        if (total[k]) {
            printf("%s\"%s\":%ld", first ? "" : ",", CALLS[k], total[k]);
            first = 0;
        }
    printf("},\"processes\":[%s]}\n", procs_json);
    return ok ? 0 : 1;
}
