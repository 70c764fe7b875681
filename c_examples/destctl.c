/*
 * destctl: drive a b2dest destination from the command line.
 *
 * The command-line front end that shell scripts and support staff use to check a
 * destination and to move files by hand. It loads libb2dest.so at run time with dlopen,
 * so one destctl binary works with any build of the library:
 *
 *   destctl [OPTIONS] validate
 *   destctl [OPTIONS] upload LOCAL REMOTE
 *   destctl [OPTIONS] download REMOTE LOCAL
 *   destctl [OPTIONS] list [REMOTE]
 *   destctl [OPTIONS] usage
 *   destctl [OPTIONS] delete REMOTE
 *   destctl [OPTIONS] protect [REMOTE]
 *   destctl [OPTIONS] versions [REMOTE] [--as-of TIME]
 *   destctl [OPTIONS] restore REMOTE LOCAL --as-of TIME | --file-id ID
 *   destctl [OPTIONS] rollback [REMOTE] --as-of TIME [--dry-run] [--remove-newer-names]
 *
 * TIME is milliseconds since 1970 or ISO-8601 (2026-12-01T10:00:00Z, an offset, or no zone
 * for UTC).
 *
 * The library's JSON response is printed on standard output as one line, and destctl
 * exits with the library's DEST_* status (0 when the operation succeeded). Errors of
 * destctl itself use the BSD sysexits numbers, which no DEST_* status reaches:
 *   64 usage error, 66 configuration file unreadable, 69 library not loadable,
 *   74 standard output could not be written, 71 out of memory or another system error.
 * SIGINT or SIGTERM stops any command with DEST_ERR_CANCELLED (11): a transfer is
 * cancelled through the library and cleans up; validate, list, usage and delete are
 * abandoned at once (see run_interruptible).
 *
 * Build: make -C c_examples (or see the Makefile for the compiler flags).
 */

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "b2dest.h"

#define DESTCTL_VERSION "0.1.0"

/* sysexits.h numbers, spelled out so that the header is not needed. */
enum {
    EXIT_USAGE = 64,
    EXIT_NO_INPUT = 66,
    EXIT_UNAVAILABLE = 69,
    EXIT_OS_ERROR = 71,
    EXIT_IO_ERROR = 74
};

/* A configuration is a few hundred bytes; refuse anything absurd. */
#define MAX_CONFIG_BYTES (1024 * 1024)

/* ------------------------------------------------------------------------------------ */
/* The library's functions, found with dlsym.                                            */

typedef int32_t (*validate_fn)(const char *, char **);
typedef int32_t (*transfer_fn)(const char *, const char *, const char *, dest_progress_fn,
                               void *, char **);
typedef int32_t (*path_fn)(const char *, const char *, char **);
typedef int32_t (*config_only_fn)(const char *, char **);
typedef int32_t (*path_options_fn)(const char *, const char *, const char *, char **);
typedef int32_t (*restore_fn)(const char *, const char *, const char *, const char *,
                              dest_progress_fn, void *, char **);
typedef void (*free_fn)(char *);
typedef const char *(*version_fn)(void);
typedef void (*set_log_fn)(dest_log_fn, int32_t, void *);

struct library {
    void *handle;
    validate_fn validate;
    transfer_fn upload;
    transfer_fn download;
    path_fn list;
    config_only_fn usage;
    path_fn del;
    path_fn protect;
    path_options_fn list_versions;
    restore_fn download_as_of;
    path_options_fn rollback;
    free_fn free_response;
    version_fn version;
    set_log_fn set_log_callback;
};

/* ------------------------------------------------------------------------------------ */
/* Command line.                                                                         */

struct options {
    const char *lib_path;    /* --lib, or NULL */
    const char *config_path; /* --config, or NULL; "-" is standard input */
    int quiet;
    int verbose; /* 0 none, 1 info, 2 and more debug */
    int show_help;
    int show_version;
    const char *command;
    const char *args[3];
    int arg_count;
    const char *as_of;   /* --as-of, or NULL */
    const char *file_id; /* --file-id, or NULL */
    int dry_run;
    int remove_newer_names;
    char options_json[160]; /* built from the four above */
};

static const char *program_name = "destctl";

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n"
            "  validate                 check the key, bucket and backup directory\n"
            "  upload LOCAL REMOTE      upload a file or a directory tree\n"
            "  download REMOTE LOCAL    restore a file or a directory tree\n"
            "  list [REMOTE]            list the files under REMOTE (default: all)\n"
            "  usage                    show the space the backup directory uses\n"
            "  delete REMOTE            delete a file or directory, every version\n"
            "  protect [REMOTE]         extend the Object Lock retention of backups under\n"
            "                           REMOTE (default: all) to now + retention_days\n"
            "  versions [REMOTE]        every version under REMOTE, newest first per name;\n"
            "                           with --as-of TIME, which one was current then\n"
            "  restore REMOTE LOCAL     restore as it was at --as-of TIME, or the version\n"
            "                           --file-id ID\n"
            "  rollback [REMOTE]        make current what was current at --as-of TIME\n"
            "                           (--dry-run: only say what would be done;\n"
            "                           --remove-newer-names: also names new since then)\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   destination configuration JSON ('-' = standard input;\n"
            "                      the default when standard input is not a terminal)\n"
            "  -l, --lib PATH      libb2dest.so to load (default: $B2DEST_LIB, then\n"
            "                      libb2dest.so beside destctl, then the library path)\n"
            "  -q, --quiet         no progress bar\n"
            "  -v, --verbose       show the library's log lines on standard error\n"
            "                      (twice: debug lines too)\n"
            "  -V, --version       print the versions of destctl and the library\n"
            "  -h, --help          print this help\n"
            "  --as-of TIME        versions/restore/rollback: milliseconds since 1970 or\n"
            "                      ISO-8601 (2026-12-01T10:00:00Z; no zone is UTC)\n"
            "  --file-id ID        restore: that version\n"
            "  --dry-run, --remove-newer-names   rollback\n"
            "Short options combine: -qv is -q -v, -c FILE may be -cFILE.\n"
            "\n"
            "The JSON response is printed on standard output, one line. The exit status is\n"
            "the DEST_* status: 0 ok, 1 invalid argument, 2 configuration, 3 authentication,\n"
            "4 permission, 5 not found, 6 limit, 7 local I/O, 8 network, 9 remote,\n"
            "10 integrity, 11 cancelled, 12 internal, 13 locked (B2 Object Lock kept some\n"
            "versions; the rest was deleted), 14 encryption key (an SSE-C file and no or\n"
            "another customer_key), 15 TLS (this machine refused the server's certificate);\n"
            "64 usage error, 66 configuration file unreadable,\n"
            "69 library not loadable.\n",
            program_name);
}

static int usage_error(const char *what, const char *detail)
{
    if (detail != NULL) {
        fprintf(stderr, "%s: %s: %s\n", program_name, what, detail);
    } else {
        fprintf(stderr, "%s: %s\n", program_name, what);
    }
    fprintf(stderr, "Try '%s --help' for more information.\n", program_name);
    return EXIT_USAGE;
}

/* Takes the value of a long option given as "--name VALUE" or "--name=VALUE".
 * Returns 1 when `arg` is that option (value stored), 0 when it is not, -1 when the value
 * is missing. */
static int long_value(const char *arg, const char *long_name, int argc, char **argv,
                      int *index, const char **value)
{
    size_t long_len = strlen(long_name);
    if (strcmp(arg, long_name) == 0) {
        if (*index + 1 >= argc) {
            return -1;
        }
        *index += 1;
        *value = argv[*index];
        return 1;
    }
    if (strncmp(arg, long_name, long_len) == 0 && arg[long_len] == '=') {
        *value = arg + long_len + 1;
        return 1;
    }
    return 0;
}

/* Short options, combined as getopt does: "-qv", "-vv", "-qc FILE", "-cFILE".
 * Returns 0, or the exit status of a usage error (the message already printed). */
static int parse_short_options(const char *arg, int argc, char **argv, int *index,
                               struct options *opt)
{
    for (const char *p = arg + 1; *p != '\0'; p++) {
        const char **value = NULL;

        switch (*p) {
        case 'q':
            opt->quiet = 1;
            break;
        case 'v':
            opt->verbose++;
            break;
        case 'h':
            opt->show_help = 1;
            break;
        case 'V':
            opt->show_version = 1;
            break;
        case 'c':
            value = &opt->config_path;
            break;
        case 'l':
            value = &opt->lib_path;
            break;
        default: {
            char bad[3] = {'-', *p, '\0'};
            return usage_error("unknown option", bad);
        }
        }
        if (value != NULL) {
            /* The rest of the word is the value, or else the next word is. */
            if (p[1] != '\0') {
                *value = p + 1;
            } else if (*index + 1 < argc) {
                *index += 1;
                *value = argv[*index];
            } else {
                char bad[3] = {'-', *p, '\0'};
                return usage_error("option needs a value", bad);
            }
            return 0;
        }
    }
    return 0;
}

/* Returns 0, or the exit status of a usage error (the message already printed). */
static int parse_options(int argc, char **argv, struct options *opt)
{
    int only_operands = 0;
    int operand_count = 0;

    memset(opt, 0, sizeof *opt);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int found;

        if (!only_operands && arg[0] == '-' && arg[1] != '\0') {
            if (strcmp(arg, "--") == 0) {
                only_operands = 1;
                continue;
            }
            if (arg[1] != '-') {
                int rc = parse_short_options(arg, argc, argv, &i, opt);
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
            found = long_value(arg, "--config", argc, argv, &i, &opt->config_path);
            if (found == 0) {
                found = long_value(arg, "--lib", argc, argv, &i, &opt->lib_path);
            }
            if (found == 0) {
                found = long_value(arg, "--as-of", argc, argv, &i, &opt->as_of);
            }
            if (found == 0) {
                found = long_value(arg, "--file-id", argc, argv, &i, &opt->file_id);
            }
            if (found < 0) {
                return usage_error("option needs a value", arg);
            }
            if (found > 0) {
                continue;
            }
            if (strcmp(arg, "--quiet") == 0) {
                opt->quiet = 1;
            } else if (strcmp(arg, "--verbose") == 0) {
                opt->verbose++;
            } else if (strcmp(arg, "--help") == 0) {
                opt->show_help = 1;
            } else if (strcmp(arg, "--version") == 0) {
                opt->show_version = 1;
            } else if (strcmp(arg, "--dry-run") == 0) {
                opt->dry_run = 1;
            } else if (strcmp(arg, "--remove-newer-names") == 0) {
                opt->remove_newer_names = 1;
            } else {
                return usage_error("unknown option", arg);
            }
            continue;
        }
        if (operand_count == 0) {
            opt->command = arg;
        } else if (operand_count <= 3) {
            opt->args[operand_count - 1] = arg;
        }
        operand_count++;
    }
    opt->arg_count = operand_count > 0 ? operand_count - 1 : 0;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Loading the library.                                                                  */

/* Finds one symbol; function pointers are copied out of dlsym's void * with memcpy, the
 * ISO C way (POSIX guarantees the representations match). */
static int load_symbol(void *handle, const char *name, void *fn_ptr, size_t fn_size)
{
    void *sym;

    (void)dlerror();
    sym = dlsym(handle, name);
    if (sym == NULL) {
        const char *why = dlerror();
        fprintf(stderr, "%s: the library has no function %s: %s\n", program_name, name,
                why != NULL ? why : "symbol is NULL");
        return -1;
    }
    if (fn_size != sizeof sym) {
        fprintf(stderr, "%s: function pointers differ in size from data pointers\n",
                program_name);
        return -1;
    }
    memcpy(fn_ptr, &sym, fn_size);
    return 0;
}

#define LOAD(lib, field, name) \
    load_symbol((lib)->handle, (name), &(lib)->field, sizeof (lib)->field)

/* Where the library is when nothing says otherwise: beside the executable, if there. */
static char *library_beside_executable(void)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;
    char *path;
    size_t dir_len;
    static const char file_name[] = "libb2dest.so";
    struct stat st;

    if (len <= 0) {
        return NULL;
    }
    exe[len] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL) {
        return NULL;
    }
    dir_len = (size_t)(slash - exe) + 1;
    path = malloc(dir_len + sizeof file_name);
    if (path == NULL) {
        return NULL;
    }
    memcpy(path, exe, dir_len);
    memcpy(path + dir_len, file_name, sizeof file_name);
    if (stat(path, &st) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

/* Returns 0, or an exit status (the message already printed). */
static int load_library(const struct options *opt, struct library *lib)
{
    const char *env = getenv("B2DEST_LIB");
    char *beside = NULL;
    const char *path;

    memset(lib, 0, sizeof *lib);
    if (opt->lib_path != NULL) {
        path = opt->lib_path;
    } else if (env != NULL && env[0] != '\0') {
        path = env;
    } else {
        beside = library_beside_executable();
        path = beside != NULL ? beside : "libb2dest.so";
    }

    lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib->handle == NULL) {
        const char *why = dlerror();
        fprintf(stderr,
                "%s: cannot load the b2dest library %s: %s\n"
                "%s: give its path with --lib PATH or B2DEST_LIB=PATH\n",
                program_name, path, why != NULL ? why : "unknown error", program_name);
        free(beside);
        return EXIT_UNAVAILABLE;
    }
    free(beside);

    if (LOAD(lib, validate, "dest_validate") != 0 || LOAD(lib, upload, "dest_upload") != 0 ||
        LOAD(lib, download, "dest_download") != 0 || LOAD(lib, list, "dest_list") != 0 ||
        LOAD(lib, usage, "dest_usage") != 0 || LOAD(lib, del, "dest_delete") != 0 ||
        LOAD(lib, protect, "dest_protect") != 0 ||
        LOAD(lib, list_versions, "dest_list_versions") != 0 ||
        LOAD(lib, download_as_of, "dest_download_as_of") != 0 ||
        LOAD(lib, rollback, "dest_rollback") != 0 ||
        LOAD(lib, free_response, "dest_free") != 0 ||
        LOAD(lib, version, "dest_version") != 0 ||
        LOAD(lib, set_log_callback, "dest_set_log_callback") != 0) {
        /* Nothing of the library has run yet, so unloading it is safe. */
        if (dlclose(lib->handle) != 0) {
            fprintf(stderr, "%s: dlclose: %s\n", program_name, dlerror());
        }
        lib->handle = NULL;
        return EXIT_UNAVAILABLE;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The configuration.                                                                    */

/* Reads all of `in` into a NUL-terminated buffer. Returns NULL (message printed) on error. */
static char *read_all(FILE *in, const char *name)
{
    size_t cap = 4096;
    size_t len = 0;
    char *buf = malloc(cap);

    if (buf == NULL) {
        fprintf(stderr, "%s: out of memory\n", program_name);
        return NULL;
    }
    for (;;) {
        size_t got;
        if (len + 1 == cap) {
            char *bigger;
            if (cap >= MAX_CONFIG_BYTES) {
                fprintf(stderr, "%s: %s: the configuration is larger than %d bytes\n",
                        program_name, name, MAX_CONFIG_BYTES);
                free(buf);
                return NULL;
            }
            bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                fprintf(stderr, "%s: out of memory\n", program_name);
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        got = fread(buf + len, 1, cap - 1 - len, in);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "%s: %s: read error\n", program_name, name);
        free(buf);
        return NULL;
    }
    if (memchr(buf, '\0', len) != NULL) {
        fprintf(stderr, "%s: %s: the configuration contains a NUL byte\n", program_name,
                name);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* The configuration holds the application key: wipe it before giving the memory back.
 * The volatile pointer keeps the compiler from dropping the stores as dead. */
static void wipe_and_free(char *text)
{
    if (text != NULL) {
        volatile char *p = text;
        while (*p != '\0') {
            *p++ = '\0';
        }
        free(text);
    }
}

static int is_blank(const char *text)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') {
        text++;
    }
    return *text == '\0';
}

#define NO_CONFIG_MESSAGE                                                                  \
    "no configuration: give --config FILE, or pipe the configuration JSON on standard "   \
    "input"

/* Returns the configuration JSON (caller frees with wipe_and_free), or NULL with *status
 * set. No --config and nothing but blanks on standard input (a terminal, /dev/null, an
 * empty pipe) is no configuration at all: a usage error. An empty file named with
 * --config is an unreadable configuration. */
static char *load_config(const struct options *opt, int *status)
{
    const char *path = opt->config_path;
    const char *name;
    FILE *in;
    char *text;

    if (path == NULL) {
        if (isatty(STDIN_FILENO)) {
            *status = usage_error(NO_CONFIG_MESSAGE, NULL);
            return NULL;
        }
        text = read_all(stdin, "standard input");
        *status = EXIT_NO_INPUT;
        if (text != NULL && is_blank(text)) {
            wipe_and_free(text);
            *status = usage_error(NO_CONFIG_MESSAGE, NULL);
            return NULL;
        }
        return text;
    }
    if (strcmp(path, "-") == 0) {
        text = read_all(stdin, "standard input");
        name = "standard input";
    } else {
        in = fopen(path, "r");
        if (in == NULL) {
            fprintf(stderr, "%s: cannot open the configuration %s: %s\n", program_name, path,
                    strerror(errno));
            *status = EXIT_NO_INPUT;
            return NULL;
        }
        text = read_all(in, path);
        if (fclose(in) != 0 && text != NULL) {
            fprintf(stderr, "%s: %s: %s\n", program_name, path, strerror(errno));
            free(text);
            text = NULL;
        }
        name = path;
    }
    *status = EXIT_NO_INPUT;
    if (text != NULL && is_blank(text)) {
        fprintf(stderr, "%s: the configuration %s is empty\n", program_name, name);
        wipe_and_free(text);
        return NULL;
    }
    return text;
}

/* ------------------------------------------------------------------------------------ */
/* Progress bar and log lines, both on standard error.                                   */

struct progress {
    int show_bar;        /* draw a bar (stderr is a terminal, not --quiet) */
    int bar_drawn;       /* a bar is on the current line of stderr */
    const char *label;   /* "upload" or "download" */
    double started;      /* monotonic seconds of the first call */
    uint64_t done;
    uint64_t total;
};

static volatile sig_atomic_t interrupted = 0;
static struct timespec first_signal_at;

/* A repeat within this many nanoseconds is the same stop delivered twice: timeout(1)
 * signals both destctl and its process group, and a cron job's `timeout 1h destctl ...`
 * must still end with a clean cancel, not be killed half-way by the echo. */
#define SAME_STOP_NS 500000000L

/* The first SIGINT/SIGTERM asks for a clean stop; a later one ends destctl at once with
 * the signal's default action (a second Ctrl-C from an impatient admin). */
static void on_interrupt(int signo)
{
    int saved_errno = errno;
    struct timespec now;

    if (!interrupted) {
        clock_gettime(CLOCK_MONOTONIC, &first_signal_at);
        interrupted = 1;
    } else if (clock_gettime(CLOCK_MONOTONIC, &now) != 0 ||
               (now.tv_sec - first_signal_at.tv_sec) * 1000000000L +
                       (now.tv_nsec - first_signal_at.tv_nsec) >=
                   SAME_STOP_NS) {
        /* Delivered when this handler returns (the signal is blocked while it runs). */
        signal(signo, SIG_DFL);
        raise(signo);
    }
    errno = saved_errno;
}

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0.0;
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void format_bytes(char *out, size_t size, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t unit = 0;

    while (bytes >= 1024.0 && unit + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024.0;
        unit++;
    }
    if (unit == 0) {
        snprintf(out, size, "%.0f %s", bytes, units[unit]);
    } else {
        snprintf(out, size, "%.1f %s", bytes, units[unit]);
    }
}

static void format_duration(char *out, size_t size, double seconds)
{
    unsigned long s;

    if (seconds < 0.0 || seconds > 359999.0) {
        snprintf(out, size, "--:--");
        return;
    }
    s = (unsigned long)(seconds + 0.5);
    if (s >= 3600) {
        snprintf(out, size, "%lu:%02lu:%02lu", s / 3600, (s / 60) % 60, s % 60);
    } else {
        snprintf(out, size, "%lu:%02lu", s / 60, s % 60);
    }
}

/* Room kept for " 42%  12.0 MiB / 30.0 MiB  5.1 MiB/s  0:03 left" beside the bar. */
#define TAIL_ROOM 52

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) {
        return ws.ws_col;
    }
    return 80;
}

/* Draws "label [=====>    ]  42%  12.0 MiB / 30.0 MiB  5.1 MiB/s  0:03 left". */
static void draw_bar(struct progress *p, int finished)
{
    char done_text[32], total_text[32], rate_text[32], time_text[32], tail[192];
    char bar[256];
    double elapsed = now_seconds() - p->started;
    double rate = elapsed > 0.05 ? (double)p->done / elapsed : 0.0;
    double fraction = p->total > 0 ? (double)p->done / (double)p->total : (finished ? 1 : 0);
    int width = terminal_width();
    int bar_width;
    int tail_width;
    int filled;

    if (fraction > 1.0) {
        fraction = 1.0;
    }
    format_bytes(done_text, sizeof done_text, (double)p->done);
    format_bytes(total_text, sizeof total_text, (double)p->total);
    format_bytes(rate_text, sizeof rate_text, rate);
    if (finished) {
        format_duration(time_text, sizeof time_text, elapsed);
        snprintf(tail, sizeof tail, " %3d%%  %s / %s  %s/s  in %s", (int)(fraction * 100),
                 done_text, total_text, rate_text, time_text);
    } else {
        format_duration(time_text, sizeof time_text,
                        rate > 0.0 ? (double)(p->total - (p->done < p->total ? p->done
                                                                               : p->total)) /
                                         rate
                                   : -1.0);
        snprintf(tail, sizeof tail, " %3d%%  %s / %s  %s/s  %s left", (int)(fraction * 100),
                 done_text, total_text, rate_text, time_text);
    }

    /* A fixed room for the text keeps the bar from changing length as the numbers do. */
    tail_width = (int)strlen(tail) > TAIL_ROOM ? (int)strlen(tail) : TAIL_ROOM;
    bar_width = width - tail_width - (int)strlen(p->label) - 4;
    if (bar_width > (int)sizeof bar - 1) {
        bar_width = (int)sizeof bar - 1;
    }
    if (bar_width < 10) {
        bar_width = 0;
    }
    filled = (int)(fraction * bar_width);
    for (int i = 0; i < bar_width; i++) {
        bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    }
    bar[bar_width] = '\0';

    /* \r and "erase to end of line" keep the bar on one line of the terminal. */
    if (bar_width > 0) {
        fprintf(stderr, "\r\033[K%s [%s]%-*s", p->label, bar, tail_width, tail);
    } else {
        fprintf(stderr, "\r\033[K%s%s", p->label, tail);
    }
    fflush(stderr);
    p->bar_drawn = 1;
}

static void clear_bar(struct progress *p)
{
    if (p->bar_drawn) {
        fputs("\r\033[K", stderr);
        p->bar_drawn = 0;
    }
}

/* The progress callback: runs on the thread that called dest_upload / dest_download. */
static int32_t on_progress(uint64_t done_bytes, uint64_t total_bytes, void *user_data)
{
    struct progress *p = user_data;

    if (p->started == 0.0) {
        p->started = now_seconds();
    }
    p->done = done_bytes;
    p->total = total_bytes;
    if (p->show_bar) {
        draw_bar(p, 0);
    }
    /* Ctrl-C: ask the library to stop; it cleans up and returns DEST_ERR_CANCELLED. */
    return interrupted ? 1 : 0;
}

static void finish_bar(struct progress *p, int32_t status)
{
    if (!p->show_bar || !p->bar_drawn) {
        return;
    }
    if (status == DEST_OK) {
        draw_bar(p, 1);
        fputc('\n', stderr);
    } else {
        clear_bar(p);
    }
    fflush(stderr);
}

static const char *level_name(int32_t level)
{
    switch (level) {
    case DEST_LOG_ERROR:
        return "error";
    case DEST_LOG_WARN:
        return "warn";
    case DEST_LOG_INFO:
        return "info";
    case DEST_LOG_DEBUG:
        return "debug";
    default:
        return "log";
    }
}

/* The log callback: runs on the thread inside the dest_* call, before it returns. */
static void on_log(int32_t level, const char *message, void *user_data)
{
    struct progress *p = user_data;

    if (p != NULL) {
        clear_bar(p);
    }
    fprintf(stderr, "[%s] %s\n", level_name(level), message != NULL ? message : "");
    fflush(stderr);
}

/* ------------------------------------------------------------------------------------ */
/* Commands.                                                                             */

struct command {
    const char *name;
    int min_args;
    int max_args;
    const char *synopsis;
};

static const struct command commands[] = {
    {"validate", 0, 0, "validate"},
    {"upload", 2, 2, "upload LOCAL REMOTE"},
    {"download", 2, 2, "download REMOTE LOCAL"},
    {"list", 0, 1, "list [REMOTE]"},
    {"usage", 0, 0, "usage"},
    {"delete", 1, 1, "delete REMOTE"},
    {"protect", 0, 1, "protect [REMOTE]"},
    {"versions", 0, 1, "versions [REMOTE] [--as-of TIME]"},
    {"restore", 2, 2, "restore REMOTE LOCAL --as-of TIME|--file-id ID"},
    {"rollback", 0, 1, "rollback [REMOTE] --as-of TIME [--dry-run]"},
};

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (no timegm in C11
 * with POSIX 2008). */
static long long days_from_civil(int y, int m, int d)
{
    long long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* TIME as milliseconds since 1970: all digits, or ISO-8601 date and time with an optional
 * fraction and zone (Z or +HH:MM / -HH:MM; none is UTC). Returns 0, or -1 when unreadable. */
static int parse_time_ms(const char *text, long long *ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    long long frac_ms = 0;
    const char *p;
    time_t t;

    if (text[0] != '\0' && strspn(text, "0123456789") == strlen(text)) {
        errno = 0;
        *ms = strtoll(text, NULL, 10);
        return errno == 0 ? 0 : -1;
    }
    if (sscanf(text, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n == 0) {
        return -1;
    }
    p = text + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3) {
                frac_ms = frac_ms * 10 + (*p - '0');
            }
        }
        for (; digits < 3; digits++) {
            frac_ms *= 10;
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return -1;
    }
    t = (time_t)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6) {
            return -1;
        }
        t -= (*p == '+' ? 1 : -1) * (time_t)(oh * 3600 + om * 60);
    } else if (strcmp(p, "Z") != 0 && *p != '\0') {
        return -1;
    }
    *ms = (long long)t * 1000 + frac_ms;
    return 0;
}

/* Checks the recovery flags against the command and writes options_json. Returns 0, or
 * the exit status of a usage error (message printed). */
static int build_recovery_options(struct options *opt)
{
    const char *cmd = opt->command;
    int versions = strcmp(cmd, "versions") == 0, restore = strcmp(cmd, "restore") == 0;
    int rollback = strcmp(cmd, "rollback") == 0;
    long long ms = 0;

    if ((opt->as_of != NULL && !(versions || restore || rollback)) ||
        (opt->file_id != NULL && !restore) ||
        ((opt->dry_run || opt->remove_newer_names) && !rollback)) {
        return usage_error("option not taken by this command", cmd);
    }
    if (opt->as_of != NULL && parse_time_ms(opt->as_of, &ms) != 0) {
        return usage_error("--as-of: not milliseconds or ISO-8601 (2026-12-01T10:00:00Z)",
                           opt->as_of);
    }
    if (opt->file_id != NULL &&
        (opt->file_id[0] == '\0' || strlen(opt->file_id) > 100 ||
         strspn(opt->file_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789_-") != strlen(opt->file_id))) {
        return usage_error("--file-id: not a B2 file id", opt->file_id);
    }
    if (restore && (opt->as_of == NULL) == (opt->file_id == NULL)) {
        return usage_error("restore needs one of --as-of TIME or --file-id ID", NULL);
    }
    if (rollback && opt->as_of == NULL) {
        return usage_error("rollback needs --as-of TIME", NULL);
    }
    if (opt->file_id != NULL) {
        snprintf(opt->options_json, sizeof opt->options_json, "{\"file_id\":\"%s\"}",
                 opt->file_id);
    } else if (opt->as_of != NULL) {
        snprintf(opt->options_json, sizeof opt->options_json,
                 "{\"as_of_ms\":%lld,\"dry_run\":%s,\"remove_newer_names\":%s}", ms,
                 opt->dry_run ? "true" : "false", opt->remove_newer_names ? "true" : "false");
        if (!rollback) {
            snprintf(opt->options_json, sizeof opt->options_json, "{\"as_of_ms\":%lld}", ms);
        }
    } else {
        strcpy(opt->options_json, "{}");
    }
    return 0;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

static int32_t run_command(const struct library *lib, const struct options *opt,
                           const char *config, struct progress *progress, char **response)
{
    const char *cmd = opt->command;

    if (strcmp(cmd, "validate") == 0) {
        return lib->validate(config, response);
    }
    if (strcmp(cmd, "upload") == 0) {
        progress->label = "upload";
        return lib->upload(config, opt->args[0], opt->args[1], on_progress, progress,
                           response);
    }
    if (strcmp(cmd, "download") == 0) {
        progress->label = "download";
        return lib->download(config, opt->args[0], opt->args[1], on_progress, progress,
                             response);
    }
    if (strcmp(cmd, "list") == 0) {
        return lib->list(config, opt->arg_count > 0 ? opt->args[0] : "", response);
    }
    if (strcmp(cmd, "usage") == 0) {
        return lib->usage(config, response);
    }
    if (strcmp(cmd, "protect") == 0) {
        return lib->protect(config, opt->arg_count > 0 ? opt->args[0] : "", response);
    }
    if (strcmp(cmd, "versions") == 0) {
        return lib->list_versions(config, opt->arg_count > 0 ? opt->args[0] : "",
                                  opt->options_json, response);
    }
    if (strcmp(cmd, "restore") == 0) {
        progress->label = "restore";
        return lib->download_as_of(config, opt->args[0], opt->args[1], opt->options_json,
                                   on_progress, progress, response);
    }
    if (strcmp(cmd, "rollback") == 0) {
        return lib->rollback(config, opt->arg_count > 0 ? opt->args[0] : "",
                             opt->options_json, response);
    }
    return lib->del(config, opt->args[0], response);
}

/* Validate, list, usage and delete have no progress callback to learn of a signal by, and
 * block inside the library until they end. They run on a worker thread instead, while
 * this thread waits for either the worker or SIGINT/SIGTERM; on a signal destctl exits at
 * once with DEST_ERR_CANCELLED, leaving the worker's requests to die with the process. */
struct worker_call {
    const struct library *lib;
    const struct options *opt;
    const char *config;
    struct progress *progress;
    char *response;
    int32_t status;
    int done_fd; /* written to when the call has returned */
};

static void *worker_main(void *arg)
{
    struct worker_call *call = arg;
    char byte = 1;

    call->status = run_command(call->lib, call->opt, call->config, call->progress,
                               &call->response);
    while (write(call->done_fd, &byte, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* What an interrupted call leaves behind, for the message. */
static const char *interrupted_outcome(const char *command)
{
    if (strcmp(command, "delete") == 0) {
        return "the delete was stopped before it finished: versions B2 already deleted stay "
               "deleted, the others remain; run the same delete again to finish it";
    }
    if (strcmp(command, "rollback") == 0) {
        return "the rollback was stopped before it finished: what B2 already deleted or "
               "copied stays so; run the same rollback again to finish it";
    }
    if (strcmp(command, "protect") == 0) {
        return "the protect was stopped before it finished: retentions B2 already extended "
               "stay extended, the others are as they were; run it again to finish";
    }
    return "it was stopped before it finished; it changes nothing on B2";
}

/* Prints what destctl prints for a call it stopped, in the library's response form, and
 * ends the process without running exit handlers under the worker thread. */
static void exit_interrupted(const char *command)
{
    const char *outcome = interrupted_outcome(command);

    fprintf(stderr, "%s: interrupted during %s: %s\n", program_name, command, outcome);
    printf("{\"ok\":false,\"warnings\":[],\"error\":{\"code\":\"cancelled\","
           "\"message\":\"interrupted by a signal during %s: %s\",\"retryable\":false}}\n",
           command, outcome);
    fflush(stdout);
    fflush(stderr);
    _exit(DEST_ERR_CANCELLED);
}

/* Runs the command on a worker thread; returns its status, or exits on SIGINT/SIGTERM.
 * Returns -1 (message printed) when the thread cannot be started. */
static int32_t run_interruptible(const struct library *lib, const struct options *opt,
                                 const char *config, struct progress *progress,
                                 char **response)
{
    struct worker_call call;
    sigset_t stop, waiting;
    pthread_t worker;
    int fds[2];
    int err;

    if (pipe(fds) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", program_name, strerror(errno));
        return -1;
    }
    memset(&call, 0, sizeof call);
    call.lib = lib;
    call.opt = opt;
    call.config = config;
    call.progress = progress;
    call.done_fd = fds[1];

    /* Blocked here, the signals are inherited blocked by the worker (and the library's
     * threads it starts), so only this thread takes them, inside pselect. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    if ((err = pthread_sigmask(SIG_BLOCK, &stop, &waiting)) != 0) {
        fprintf(stderr, "%s: pthread_sigmask: %s\n", program_name, strerror(err));
        return -1;
    }
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGTERM);
    if ((err = pthread_create(&worker, NULL, worker_main, &call)) != 0) {
        fprintf(stderr, "%s: cannot start a thread: %s\n", program_name, strerror(err));
        return -1;
    }
    for (;;) {
        fd_set readable;
        int ready;

        if (interrupted) {
            exit_interrupted(opt->command);
        }
        FD_ZERO(&readable);
        FD_SET(fds[0], &readable);
        /* Unblocks the signals only while waiting, so none is missed between the check
         * above and the wait. */
        ready = pselect(fds[0] + 1, &readable, NULL, NULL, NULL, &waiting);
        if (ready > 0) {
            break;
        }
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, "%s: pselect: %s\n", program_name, strerror(errno));
            return -1;
        }
    }
    pthread_join(worker, NULL);
    close(fds[0]);
    close(fds[1]);
    *response = call.response;
    return call.status;
}

/* Ctrl-C during a transfer cancels it cleanly; a second Ctrl-C ends destctl at once. */
static int install_interrupt_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0) {
        fprintf(stderr, "%s: sigaction: %s\n", program_name, strerror(errno));
        return -1;
    }
    return 0;
}

static int print_response(const char *response)
{
    if (response == NULL) {
        return 0;
    }
    if (fputs(response, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write the response to standard output: %s\n",
                program_name, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    struct library lib;
    const struct command *cmd;
    struct progress progress;
    char *config;
    char *response = NULL;
    int32_t status;
    int rc;

    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        program_name = slash != NULL ? slash + 1 : argv[0];
    }
    rc = parse_options(argc, argv, &opt);
    if (rc != 0) {
        return rc;
    }
    if (opt.show_help) {
        print_usage(stdout);
        return fflush(stdout) == 0 ? 0 : EXIT_IO_ERROR;
    }
    if (opt.show_version) {
        printf("destctl %s\n", DESTCTL_VERSION);
        rc = load_library(&opt, &lib);
        if (rc != 0) {
            return rc;
        }
        printf("libb2dest %s\n", lib.version());
        return fflush(stdout) == 0 ? 0 : EXIT_IO_ERROR;
    }
    if (opt.command == NULL) {
        return usage_error("no command given", NULL);
    }
    cmd = find_command(opt.command);
    if (cmd == NULL) {
        return usage_error("unknown command", opt.command);
    }
    if (opt.arg_count < cmd->min_args || opt.arg_count > cmd->max_args) {
        char synopsis[64];
        snprintf(synopsis, sizeof synopsis, "usage: %s %s", program_name, cmd->synopsis);
        return usage_error(opt.arg_count < cmd->min_args ? "missing arguments"
                                                         : "too many arguments",
                           synopsis);
    }

    rc = build_recovery_options(&opt);
    if (rc != 0) {
        return rc;
    }
    config = load_config(&opt, &rc);
    if (config == NULL) {
        return rc;
    }
    rc = load_library(&opt, &lib);
    if (rc != 0) {
        wipe_and_free(config);
        return rc;
    }

    memset(&progress, 0, sizeof progress);
    progress.show_bar = !opt.quiet && isatty(STDERR_FILENO);
    progress.label = opt.command;
    if (opt.verbose > 0) {
        lib.set_log_callback(on_log, opt.verbose > 1 ? DEST_LOG_DEBUG : DEST_LOG_INFO,
                             &progress);
    }
    if (install_interrupt_handler() != 0) {
        wipe_and_free(config);
        return EXIT_OS_ERROR;
    }

    if (strcmp(opt.command, "upload") == 0 || strcmp(opt.command, "download") == 0 ||
        strcmp(opt.command, "restore") == 0) {
        status = run_command(&lib, &opt, config, &progress, &response);
    } else {
        status = run_interruptible(&lib, &opt, config, &progress, &response);
        if (status < 0) {
            wipe_and_free(config);
            return EXIT_OS_ERROR;
        }
    }
    finish_bar(&progress, status);

    if (opt.verbose > 0) {
        lib.set_log_callback(NULL, 0, NULL);
    }
    rc = print_response(response);
    lib.free_response(response);
    wipe_and_free(config);

    /* The library is not dlclose'd: its I/O threads live as long as the process, and
     * unloading the code under them would crash it. The process ends here anyway. */
    if (rc != 0) {
        return EXIT_IO_ERROR;
    }
    return (int)status;
}
