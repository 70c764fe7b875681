/*
 * b2dest-cpanel-transport: a cPanel & WHM "Custom" backup destination on Backblaze B2,
 * through libb2dest.
 *
 * cPanel runs the transport script once per command, with no state kept between runs:
 *
 *   b2dest-cpanel-transport COMMAND CURRENT_DIR PARAMS... [HOST [USER]]
 *
 *   put    CURRENT_DIR LOCAL_FILE REMOTE_FILE
 *   get    CURRENT_DIR REMOTE_FILE LOCAL_FILE
 *   ls     CURRENT_DIR PATH      prints what `ls -l` would
 *   mkdir  CURRENT_DIR PATH      succeeds; B2 has no directories, so nothing is made
 *   chdir  CURRENT_DIR PATH      prints the new current directory
 *   rmdir  CURRENT_DIR PATH      deletes everything under PATH (never "/")
 *   delete CURRENT_DIR PATH      deletes one file
 *
 * Remote paths are absolute ("/" is the backup directory of the configuration) or relative
 * to CURRENT_DIR; none may leave "/". The application key comes from the PASSWORD
 * environment variable (WHM's "Remote Password"), never from the command line; the key
 * ID from USER (WHM's "Remote Account Username") or account_id in the file. HOST is not
 * used (the API address is B2's, or api_url in the file). cPanel passes HOST and USER only
 * when set, so a single trailing argument is either: taken as HOST when it looks like a
 * host name (a dot, a colon or a slash: B2 key IDs have none), else as USER.
 *
 * The rest of the destination is a JSON file: the program's own path with ".json"
 * appended (so each copy or symlink of the program is one destination), or
 * $B2DEST_CPANEL_CONFIG when run by hand (cPanel strips the environment to PASSWORD). It
 * holds b2dest's configuration without the key (bucket, backup_directory, part size,
 * ...), must be a regular file owned by root or the caller and readable and writable by
 * no one else (chmod 600: it may hold an SSE-C key).
 *
 * cPanel kills a script that prints nothing for its Timeout: every command that may run
 * long prints a progress line every 10 s ($B2DEST_CPANEL_HEARTBEAT_SECONDS, 1 to 10, for
 * tests): put and get the bytes moved, rmdir and delete the files deleted and left, ls a
 * "total 0 (...)" line that cPanel's ls parser skips.
 *
 * Exit status: 0 on success, else the DEST_* status of the library (1..14), 64 usage,
 * 66 configuration file unreadable, 78 configuration unsafe or incomplete; the reason is
 * on standard error.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "b2dest.h"

enum { EXIT_USAGE = 64, EXIT_NO_INPUT = 66, EXIT_CONFIG = 78 };

#define MAX_CONFIG_BYTES (64 * 1024)
#define MAX_PATH_BYTES 4096
/* cPanel ends a transport that prints nothing for its Timeout (30 s by default): a long
 * command prints a progress line this often on standard output. */
#define HEARTBEAT_SECONDS 10

static unsigned heartbeat_seconds(void)
{
    const char *v = getenv("B2DEST_CPANEL_HEARTBEAT_SECONDS");
    long n = v != NULL ? strtol(v, NULL, 10) : 0;
    return n >= 1 && n <= HEARTBEAT_SECONDS ? (unsigned)n : HEARTBEAT_SECONDS;
}

static const char *program = "b2dest-cpanel-transport";
static const char *command = "";
/* Set when the key ID is the one name cPanel passed, which might have been the host. */
static const char *guessed_user = NULL;

static void fail_message(const char *fmt, const char *detail)
{
    fprintf(stderr, "%s: %s: ", program, command);
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------------------ */
/* Just enough JSON to read the library's responses (a host would use its JSON library). */

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
        p++;
    }
    return p;
}

/* Decodes the string at p (at its opening quote) into out (NUL-terminated, cut at cap);
 * returns the position after it, or NULL. \u escapes outside ASCII become '?'. */
static const char *read_string(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p != '"') {
        return NULL;
    }
    for (p++; *p != '"'; p++) {
        char c = *p;
        if (c == '\0') {
            return NULL;
        }
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    if (h == '\0') {
                        return NULL;
                    }
                    v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                }
                c = v < 0x80 ? (char)v : '?';
                p += 4;
                break;
            }
            case '\0': return NULL;
            default: c = *p; /* \" \\ \/ */
            }
        }
        if (out != NULL && n + 1 < cap) {
            out[n++] = c;
        }
    }
    if (out != NULL && cap > 0) {
        out[n] = '\0';
    }
    return p + 1;
}

/* Returns the position after the value at p, or NULL. */
static const char *skip_value(const char *p)
{
    p = skip_space(p);
    if (*p == '"') {
        return read_string(p, NULL, 0);
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_space(p + 1);
        if (*p == close) {
            return p + 1;
        }
        for (;;) {
            if (close == '}') {
                p = read_string(skip_space(p), NULL, 0);
                if (p == NULL || *(p = skip_space(p)) != ':') {
                    return NULL;
                }
                p++;
            }
            p = skip_value(p);
            if (p == NULL) {
                return NULL;
            }
            p = skip_space(p);
            if (*p == ',') {
                p++;
            } else if (*p == close) {
                return p + 1;
            } else {
                return NULL;
            }
        }
    }
    /* number, true, false, null */
    const char *start = p;
    while (*p != '\0' && strchr(",}] \n\r\t", *p) == NULL) {
        p++;
    }
    return p == start ? NULL : p;
}

/* The value of member `key` of the object at p (at its '{'), or NULL. */
static const char *member(const char *p, const char *key)
{
    char name[64];
    p = skip_space(p);
    if (p == NULL || *p != '{') {
        return NULL;
    }
    p = skip_space(p + 1);
    while (*p == '"') {
        p = read_string(p, name, sizeof name);
        if (p == NULL || *(p = skip_space(p)) != ':') {
            return NULL;
        }
        p = skip_space(p + 1);
        if (strcmp(name, key) == 0) {
            return p;
        }
        p = skip_value(p);
        if (p == NULL) {
            return NULL;
        }
        p = skip_space(p);
        if (*p != ',') {
            return NULL;
        }
        p = skip_space(p + 1);
    }
    return NULL;
}

static uint64_t member_uint(const char *object, const char *key)
{
    const char *v = member(object, key);
    return v != NULL ? strtoull(v, NULL, 10) : 0;
}

/* Prints the library's error message of a failed call, and returns its status. */
static int report_failure(const char *what, int32_t status, const char *response)
{
    char message[1024] = "no message";
    const char *error = response != NULL ? member(response, "error") : NULL;
    const char *text = error != NULL ? member(error, "message") : NULL;
    if (text != NULL) {
        read_string(text, message, sizeof message);
    }
    fprintf(stderr, "%s: %s: %s failed (status %d): %s\n", program, command, what, (int)status,
            message);
    if (status == DEST_ERR_AUTH && guessed_user != NULL) {
        fprintf(stderr, "%s: %s: the key ID used was '%s', the one name cPanel passed: if that is WHM's Remote Host, put the key ID in Remote Account Username (or account_id in the configuration file)\n",
                program, command, guessed_user);
    }
    return status > 0 && status < 64 ? status : 1;
}

/* ------------------------------------------------------------------------------------ */
/* The configuration: the file, with the key and key ID of cPanel's call added.          */

static void append_json_string(char *out, size_t *n, const char *s)
{
    out[(*n)++] = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)c;
        } else if (c < 0x20) {
            *n += (size_t)sprintf(out + *n, "\\u%04x", c);
        } else {
            out[(*n)++] = (char)c;
        }
    }
    out[(*n)++] = '"';
}

static char *read_config_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        fprintf(stderr, "%s: %s: cannot open the configuration %s: %s (create it: the program's path plus .json; cPanel passes no B2DEST_CPANEL_CONFIG)\n",
                program, command, path, strerror(errno));
        exit(EXIT_NO_INPUT);
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_CONFIG_BYTES) {
        fprintf(stderr, "%s: %s: the configuration %s is not a regular file of at most %d bytes\n",
                program, command, path, MAX_CONFIG_BYTES);
        exit(EXIT_CONFIG);
    }
    /* It says where backups go and what is deleted, and may hold secrets (an SSE-C
     * customer_key): only its owner may change or read it. */
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 077) != 0) {
        fprintf(stderr, "%s: %s: the configuration %s (mode %04o) must be owned by root (or you) and readable and writable by no one else: chmod 600 %s\n",
                program, command, path, (unsigned)(st.st_mode & 07777), path);
        exit(EXIT_CONFIG);
    }
    char *text = calloc(1, (size_t)st.st_size + 1);
    size_t got = 0;
    while (text != NULL && got < (size_t)st.st_size) {
        ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (text == NULL || got != (size_t)st.st_size) {
        fprintf(stderr, "%s: %s: cannot read the configuration %s\n", program, command, path);
        exit(EXIT_NO_INPUT);
    }
    return text;
}

/* What cPanel passed after the parameters: HOST and USER, each only when set in WHM. */
struct account {
    const char *host;
    const char *user;
    /* One name came, and it did not look like a host: taken as USER, maybe wrongly. */
    int single;
};

/* B2 key IDs are letters and digits; a host name has a dot (or is a URL, or host:port). */
static int looks_like_host(const char *s)
{
    return strpbrk(s, ".:/") != NULL || strcmp(s, "localhost") == 0;
}

static struct account read_account(int trailing, char **args)
{
    struct account a = {NULL, NULL, 0};
    if (trailing == 2) {
        a.host = args[0];
        a.user = args[1];
    } else if (trailing == 1) {
        if (looks_like_host(args[0])) {
            a.host = args[0];
        } else {
            a.user = args[0];
            a.single = 1;
        }
    }
    if (a.user != NULL && *a.user == '\0') {
        a.user = NULL;
    }
    return a;
}

/* The destination's JSON: {"application_key": PASSWORD, ["account_id": USER,] ...file}. */
static char *build_config(const struct account *account)
{
    const char *user = account->user;
    const char *path = getenv("B2DEST_CPANEL_CONFIG");
    char own[MAX_PATH_BYTES];
    if (path == NULL || *path == '\0') {
        if (snprintf(own, sizeof own, "%s.json", program) >= (int)sizeof own) {
            fprintf(stderr, "%s: %s: the program's path is too long\n", program, command);
            exit(EXIT_CONFIG);
        }
        path = own;
    }
    const char *key = getenv("PASSWORD");
    if (key == NULL || *key == '\0') {
        fprintf(stderr, "%s: %s: PASSWORD is not set: put the B2 application key in WHM's Remote Password field\n",
                program, command);
        exit(EXIT_CONFIG);
    }
    char *file = read_config_file(path);
    const char *open_brace = skip_space(file);
    if (*open_brace != '{' || skip_value(open_brace) == NULL || *skip_space(skip_value(open_brace)) != '\0') {
        fprintf(stderr, "%s: %s: the configuration %s is not one JSON object\n", program, command, path);
        exit(EXIT_CONFIG);
    }
    if (member(open_brace, "application_key") != NULL) {
        fprintf(stderr, "%s: %s: the configuration %s names application_key: remove it, the key comes from WHM's Remote Password\n",
                program, command, path);
        exit(EXIT_CONFIG);
    }
    const char *in_file = member(open_brace, "account_id");
    char file_id[256] = "";
    if (in_file != NULL && (*in_file != '"' || read_string(in_file, file_id, sizeof file_id) == NULL || file_id[0] == '\0')) {
        fprintf(stderr, "%s: %s: account_id in %s is not a non-empty string\n", program, command, path);
        exit(EXIT_CONFIG);
    }
    if (user != NULL && looks_like_host(user)) {
        fprintf(stderr, "%s: %s: WHM's Remote Account Username '%s' looks like a host name, not a B2 key ID: put the application key ID there (or account_id in %s and leave it empty)\n",
                program, command, user, path);
        exit(EXIT_CONFIG);
    }
    if (in_file != NULL && user != NULL && strcmp(user, file_id) != 0) {
        if (account->single) {
            fprintf(stderr, "%s: %s: cPanel passed one name, '%s' (WHM's Remote Host or Remote Account Username: it passes only those set), which is not a host name and not account_id of %s: leave Remote Account Username empty or set it to the key ID, and put api.backblazeb2.com in Remote Host or leave it empty\n",
                    program, command, user, path);
        } else {
            fprintf(stderr, "%s: %s: WHM's Remote Account Username '%s' and account_id in %s name different keys: leave one of them empty\n",
                    program, command, user, path);
        }
        exit(EXIT_CONFIG);
    }
    int add_user = in_file == NULL;
    if (add_user && account->single) {
        guessed_user = user;
    }
    if (add_user && user == NULL) {
        if (account->host != NULL) {
            fprintf(stderr, "%s: %s: no key ID: WHM's Remote Account Username is empty (cPanel passed only the Remote Host, '%s'): put the application key ID there or account_id in %s\n",
                    program, command, account->host, path);
        } else {
            fprintf(stderr, "%s: %s: no key ID: WHM's Remote Account Username is empty: put the application key ID there or account_id in %s\n",
                    program, command, path);
        }
        exit(EXIT_CONFIG);
    }
    const char *rest = skip_space(open_brace + 1);
    /* Every byte may grow to \u00XX (6 bytes); plus names, quotes and commas. */
    size_t cap = strlen(rest) + 6 * strlen(key) + (add_user ? 6 * strlen(user) : 0) + 64;
    char *json = malloc(cap);
    size_t n = 0;
    if (json == NULL) {
        fprintf(stderr, "%s: %s: out of memory\n", program, command);
        exit(71);
    }
    n += (size_t)sprintf(json, "{\"application_key\":");
    append_json_string(json, &n, key);
    if (add_user) {
        n += (size_t)sprintf(json + n, ",\"account_id\":");
        append_json_string(json, &n, user);
    }
    if (*rest != '}') {
        json[n++] = ',';
    }
    memcpy(json + n, rest, strlen(rest) + 1);
    free(file);
    return json;
}

/* ------------------------------------------------------------------------------------ */
/* Paths: "/" is the backup directory; nothing resolves outside it.                       */

/* Resolves path against cwd into out ("" for "/", else "a/b" without slashes at the ends).
 * Returns 0, or -1 when it would leave "/" or is too long. */
static int resolve(const char *cwd, const char *path, char *out, size_t cap)
{
    char joined[2 * MAX_PATH_BYTES + 2];
    if (snprintf(joined, sizeof joined, "%s/%s", path[0] == '/' ? "" : cwd, path) >= (int)sizeof joined) {
        return -1;
    }
    size_t n = 0;
    char *save = NULL;
    out[0] = '\0';
    for (char *part = strtok_r(joined, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0) {
            continue;
        }
        if (strcmp(part, "..") == 0) {
            if (n == 0) {
                return -1;
            }
            char *slash = strrchr(out, '/');
            n = slash != NULL ? (size_t)(slash - out) : 0;
            out[n] = '\0';
            continue;
        }
        size_t len = strlen(part);
        if (n + len + 2 > cap) {
            return -1;
        }
        if (n > 0) {
            out[n++] = '/';
        }
        memcpy(out + n, part, len + 1);
        n += len;
    }
    return 0;
}

static void remote_path(const char *cwd, const char *path, char *out, size_t cap)
{
    if (resolve(cwd, path, out, cap) != 0) {
        fail_message("'%s' leaves the backup directory (or is too long): refused", path);
        exit(1);
    }
}

/* ------------------------------------------------------------------------------------ */
/* Commands.                                                                              */

struct heartbeat {
    time_t last;
    unsigned interval;
};

static int32_t on_progress(uint64_t done, uint64_t total, void *user_data)
{
    struct heartbeat *beat = user_data;
    time_t now = time(NULL);
    if (now - beat->last >= (time_t)beat->interval) {
        beat->last = now;
        printf("progress %" PRIu64 "/%" PRIu64 "\n", done, total);
        fflush(stdout);
    }
    return 0;
}

/* The library reports no progress for a listing or a delete, so a thread prints a line
 * every interval while one runs, and for a delete a second thread counts what is left by
 * listing the path again once an interval (one b2_list_file_names page per 1,000 files).
 * Counted are the current files dest_list sees, not every version B2 stores. */
struct ticker {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    unsigned interval;
    time_t started;
    const char *path;
    const char *config;
    int for_ls;
    long long total; /* -1 while not known */
    long long left;
    pthread_t printer;
    pthread_t counter;
    int printer_running;
    int counter_running;
};

/* Waits up to `seconds`, or until stopped; returns whether stopped. Holds the lock. */
static int ticker_wait(struct ticker *t, unsigned seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    while (!t->stop) {
        if (pthread_cond_timedwait(&t->wake, &t->lock, &until) != 0) {
            break;
        }
    }
    return t->stop;
}

static void *ticker_print(void *arg)
{
    struct ticker *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!ticker_wait(t, t->interval)) {
        long long elapsed = (long long)(time(NULL) - t->started);
        flockfile(stdout);
        if (t->for_ls) {
            /* cPanel's ls parser skips lines that start with "total N". */
            printf("total 0 (listing /%s: %lld s)\n", t->path, elapsed);
        } else if (t->total < 0) {
            printf("progress %s /%s: counting the files (%lld s)\n", command, t->path, elapsed);
        } else {
            long long left = t->left < t->total ? t->left : t->total;
            printf("progress %s /%s: %lld of %lld files deleted, %lld left (%lld s)\n", command,
                   t->path, t->total - left, t->total, left, elapsed);
        }
        fflush(stdout);
        funlockfile(stdout);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void *ticker_count(void *arg)
{
    struct ticker *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!ticker_wait(t, t->interval)) {
        pthread_mutex_unlock(&t->lock);
        char *response = NULL;
        int32_t status = dest_list(t->config, t->path, &response);
        long long left = status == DEST_OK ? (long long)member_uint(response, "count") : -1;
        dest_free(response);
        pthread_mutex_lock(&t->lock);
        if (left >= 0) {
            t->left = left;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void ticker_start(struct ticker *t, const char *config, const char *path, int for_ls)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    t->interval = heartbeat_seconds();
    t->started = time(NULL);
    t->config = config;
    t->path = path;
    t->for_ls = for_ls;
    t->total = -1;
    t->left = -1;
    /* Without the thread the command still runs, silently as before. */
    t->printer_running = pthread_create(&t->printer, NULL, ticker_print, t) == 0;
}

/* For a delete: the files there before it starts; from now on they are counted down. */
static void ticker_count_from(struct ticker *t, long long total)
{
    pthread_mutex_lock(&t->lock);
    t->total = total;
    t->left = total;
    pthread_mutex_unlock(&t->lock);
    t->counter_running = pthread_create(&t->counter, NULL, ticker_count, t) == 0;
}

static void ticker_stop(struct ticker *t)
{
    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    if (t->printer_running) {
        pthread_join(t->printer, NULL);
    }
    if (t->counter_running) {
        pthread_join(t->counter, NULL);
    }
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
}

static int transfer(const char *config, int upload, const char *local, const char *remote)
{
    struct heartbeat beat = {time(NULL), heartbeat_seconds()};
    char *response = NULL;
    int32_t status = upload ? dest_upload(config, local, remote, on_progress, &beat, &response)
                            : dest_download(config, remote, local, on_progress, &beat, &response);
    int rc = status == DEST_OK ? 0 : report_failure(upload ? "upload" : "download", status, response);
    dest_free(response);
    return rc;
}

/* One `ls -l` line: cPanel splits it on blanks into nine fields, the name last. */
static void ls_line(char type, uint64_t size, uint64_t modified_ms, const char *name)
{
    time_t when = (time_t)(modified_ms / 1000);
    time_t now = time(NULL);
    struct tm tm;
    char date[32];
    gmtime_r(&when, &tm);
    /* As ls: the time for the last six months, the year for older (or future) files. */
    if (when <= now && now - when < 182 * 24 * 3600) {
        strftime(date, sizeof date, "%b %e %H:%M", &tm);
    } else {
        strftime(date, sizeof date, "%b %e  %Y", &tm);
    }
    printf("%c%s 1 b2 b2 %12" PRIu64 " %s %s\n", type, type == 'd' ? "rwxr-xr-x" : "rw-r--r--",
           size, date, name);
}

static int list_command(const char *config, const char *path)
{
    char *response = NULL;
    struct ticker ticker;
    ticker_start(&ticker, config, path, 1);
    int32_t status = dest_list(config, path, &response);
    ticker_stop(&ticker);
    if (status != DEST_OK) {
        int rc = report_failure("list", status, response);
        dest_free(response);
        return rc;
    }
    /* Directories are the first components of what lies deeper, each printed once. */
    size_t prefix_len = strlen(path);
    char **printed = NULL;
    size_t printed_count = 0;
    size_t lines = 0;
    int rc = 0;
    const char *entries = member(response, "entries");
    const char *p = entries != NULL ? skip_space(entries) : NULL;
    if (p != NULL && *p == '[') {
        p = skip_space(p + 1);
        while (p != NULL && *p == '{') {
            char name[MAX_PATH_BYTES];
            const char *path_value = member(p, "path");
            if (path_value != NULL && read_string(path_value, name, sizeof name) != NULL) {
                uint64_t size = member_uint(p, "size");
                uint64_t modified = member_uint(p, "modified_ms");
                if (strcmp(name, path) == 0) {
                    /* ls -l FILE prints the file under the name it was asked by. */
                    const char *base = strrchr(name, '/');
                    ls_line('-', size, modified, base != NULL ? base + 1 : name);
                    lines++;
                } else if (prefix_len == 0 || (strncmp(name, path, prefix_len) == 0 && name[prefix_len] == '/')) {
                    char *rest = name + prefix_len + (prefix_len > 0);
                    char *slash = strchr(rest, '/');
                    if (slash == NULL) {
                        ls_line('-', size, modified, rest);
                        lines++;
                    } else {
                        *slash = '\0';
                        size_t i = 0;
                        while (i < printed_count && strcmp(printed[i], rest) != 0) {
                            i++;
                        }
                        if (i == printed_count) {
                            char **grown = realloc(printed, (printed_count + 1) * sizeof *printed);
                            char *copy = strdup(rest);
                            if (grown == NULL || copy == NULL) {
                                free(copy);
                                printed = grown != NULL ? grown : printed;
                                fail_message("%s", "out of memory");
                                rc = 71;
                                break;
                            }
                            printed = grown;
                            printed[printed_count++] = copy;
                            ls_line('d', 0, modified, rest);
                            lines++;
                        }
                    }
                }
            }
            p = skip_value(p);
            p = p != NULL ? skip_space(p) : NULL;
            if (p != NULL && *p == ',') {
                p = skip_space(p + 1);
            }
        }
    }
    for (size_t i = 0; i < printed_count; i++) {
        free(printed[i]);
    }
    free(printed);
    dest_free(response);
    if (rc != 0) {
        return rc;
    }
    if (lines == 0 && path[0] == '\0') {
        /* The backup directory itself always exists, empty or not. Elsewhere B2 has no
         * directories: nothing under a path is a path that does not exist, and printing
         * nothing makes cPanel say so ("The specified path does not exist"). */
        printf("total 0\n");
    }
    return fflush(stdout) == 0 ? 0 : 74;
}

static int delete_command(const char *config, const char *path, int recursive)
{
    char *response = NULL;
    struct ticker ticker;
    ticker_start(&ticker, config, path, 0);
    /* What is there: the count the progress lines go down from, and for `delete` whether
     * the path is one file (the library deletes a path and all below it). */
    int32_t status = dest_list(config, path, &response);
    if (status != DEST_OK) {
        ticker_stop(&ticker);
        int rc = report_failure("list", status, response);
        dest_free(response);
        return rc;
    }
    long long count = (long long)member_uint(response, "count");
    if (!recursive) {
        const char *entries = member(response, "entries");
        const char *first = entries != NULL ? skip_space(skip_space(entries) + 1) : NULL;
        char name[MAX_PATH_BYTES] = "";
        const char *value = first != NULL && *first == '{' ? member(first, "path") : NULL;
        if (value != NULL) {
            read_string(value, name, sizeof name);
        }
        if (count > 0 && strcmp(name, path) != 0) {
            ticker_stop(&ticker);
            dest_free(response);
            fail_message("'%s' is a directory: use rmdir", path);
            return 1;
        }
    }
    dest_free(response);
    response = NULL;
    ticker_count_from(&ticker, count);
    status = dest_delete(config, path, &response);
    ticker_stop(&ticker);
    int rc = status == DEST_OK ? 0 : report_failure("delete", status, response);
    dest_free(response);
    return rc;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: %s COMMAND CURRENT_DIR PARAMS... [HOST [USER]]\n"
            "  put CURRENT_DIR LOCAL REMOTE | get CURRENT_DIR REMOTE LOCAL | ls CURRENT_DIR PATH\n"
            "  mkdir|chdir|rmdir|delete CURRENT_DIR PATH\n"
            "cPanel's Custom backup transport for Backblaze B2: the key in $PASSWORD, the rest of\n"
            "the destination in %s.json (or $B2DEST_CPANEL_CONFIG, by hand).\n",
            program, program);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int params;
    } commands[] = {{"put", 2},   {"get", 2},   {"ls", 1},     {"mkdir", 1},
                    {"chdir", 1}, {"rmdir", 1}, {"delete", 1}};
    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
        program = argv[0];
    }
    if (argc < 3) {
        return usage();
    }
    command = argv[1];
    int params = -1;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(command, commands[i].name) == 0) {
            params = commands[i].params;
        }
    }
    /* After the parameters cPanel adds the host and the user, each only when set. */
    if (params < 0 || argc < 3 + params || argc > 3 + params + 2) {
        return usage();
    }
    /* cPanel hands back chdir's output as the next CURRENT_DIR, newline included. */
    char cwd[MAX_PATH_BYTES];
    snprintf(cwd, sizeof cwd, "%s", argv[2]);
    cwd[strcspn(cwd, "\r\n")] = '\0';
    char **param = argv + 3;
    struct account account = read_account(argc - 3 - params, argv + 3 + params);
    char path[MAX_PATH_BYTES];

    /* Neither asks B2 anything. B2 has no directories and mkdir makes none, so cPanel's
     * chdir into a directory it has just made must succeed although B2 shows nothing
     * there: chdir fails only for a path that leaves the backup directory. */
    if (strcmp(command, "mkdir") == 0 || strcmp(command, "chdir") == 0) {
        remote_path(cwd, param[0], path, sizeof path);
        if (command[0] == 'c') {
            printf("/%s\n", path);
        }
        return fflush(stdout) == 0 ? 0 : 74;
    }

    char *config = build_config(&account);
    int rc;
    if (strcmp(command, "put") == 0) {
        remote_path(cwd, param[1], path, sizeof path);
        if (path[0] == '\0') {
            fail_message("'%s' names the backup directory, not a file", param[1]);
            rc = 1;
        } else {
            rc = transfer(config, 1, param[0], path);
        }
    } else if (strcmp(command, "get") == 0) {
        remote_path(cwd, param[0], path, sizeof path);
        rc = transfer(config, 0, param[1], path);
    } else if (strcmp(command, "ls") == 0) {
        remote_path(cwd, param[0], path, sizeof path);
        rc = list_command(config, path);
    } else {
        remote_path(cwd, param[0], path, sizeof path);
        if (param[0][0] == '\0' || path[0] == '\0') {
            /* Never the whole backup directory, whatever cPanel asks. */
            fail_message("refusing to remove '%s': it is the whole backup directory", param[0]);
            rc = 1;
        } else {
            rc = delete_command(config, path, strcmp(command, "rmdir") == 0);
        }
    }
    /* The key does not outlive its use in this process's memory. */
    memset(config, 0, strlen(config));
    free(config);
    return rc;
}
