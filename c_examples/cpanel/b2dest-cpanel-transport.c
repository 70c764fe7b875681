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
 * ID from USER (WHM's "Remote Account Username") unless the configuration file names
 * account_id. HOST is not used (the API address is B2's, or api_url in the file).
 *
 * The rest of the destination is a JSON file: $B2DEST_CPANEL_CONFIG, else the program's
 * own path with ".json" appended (so each copy or symlink of the program is one
 * destination). It holds b2dest's configuration without the key (bucket,
 * backup_directory, part size, ...), must be a regular file owned by root or the caller
 * and readable and writable by no one else (chmod 600: it may hold an SSE-C key). Exit status: 0 on success, else the DEST_* status of the
 * library (1..14), 64 usage, 66 configuration file unreadable, 78 configuration unsafe
 * or incomplete; the reason is on standard error.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
/* cPanel ends a transport that prints nothing for its timeout (30 s by default): a long
 * transfer prints a progress line this often on standard output, which put/get ignore. */
#define HEARTBEAT_SECONDS 10

static const char *program = "b2dest-cpanel-transport";
static const char *command = "";

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
        fprintf(stderr, "%s: %s: cannot open the configuration %s: %s (set B2DEST_CPANEL_CONFIG or create it)\n",
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

/* The destination's JSON: {"application_key": PASSWORD, ["account_id": USER,] ...file}. */
static char *build_config(const char *user)
{
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
    int add_user = member(open_brace, "account_id") == NULL;
    if (add_user && (user == NULL || *user == '\0')) {
        fprintf(stderr, "%s: %s: no key ID: put it in WHM's Remote Account Username field or account_id in %s\n",
                program, command, path);
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
};

static int32_t on_progress(uint64_t done, uint64_t total, void *user_data)
{
    struct heartbeat *beat = user_data;
    time_t now = time(NULL);
    if (now - beat->last >= HEARTBEAT_SECONDS) {
        beat->last = now;
        printf("progress %" PRIu64 "/%" PRIu64 "\n", done, total);
        fflush(stdout);
    }
    return 0;
}

static int transfer(const char *config, int upload, const char *local, const char *remote)
{
    struct heartbeat beat = {time(NULL)};
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
    int32_t status = dest_list(config, path, &response);
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
    if (lines == 0) {
        /* B2 has no directories: an empty one and one never written look alike. */
        printf("total 0\n");
    }
    return fflush(stdout) == 0 ? 0 : 74;
}

static int delete_command(const char *config, const char *path, int recursive)
{
    char *response = NULL;
    int32_t status;
    if (!recursive) {
        /* The library deletes a path and all below it: `delete` is for one file only. */
        status = dest_list(config, path, &response);
        if (status != DEST_OK) {
            int rc = report_failure("list", status, response);
            dest_free(response);
            return rc;
        }
        const char *entries = member(response, "entries");
        const char *first = entries != NULL ? skip_space(skip_space(entries) + 1) : NULL;
        char name[MAX_PATH_BYTES] = "";
        const char *value = first != NULL && *first == '{' ? member(first, "path") : NULL;
        if (value != NULL) {
            read_string(value, name, sizeof name);
        }
        int is_directory = member_uint(response, "count") > 0 && strcmp(name, path) != 0;
        dest_free(response);
        response = NULL;
        if (is_directory) {
            fail_message("'%s' is a directory: use rmdir", path);
            return 1;
        }
    }
    status = dest_delete(config, path, &response);
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
            "the destination in $B2DEST_CPANEL_CONFIG or %s.json.\n",
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
    const char *user = argc >= 3 + params + 2 ? argv[3 + params + 1] : NULL;
    char path[MAX_PATH_BYTES];

    if (strcmp(command, "mkdir") == 0 || strcmp(command, "chdir") == 0) {
        remote_path(cwd, param[0], path, sizeof path);
        if (command[0] == 'c') {
            printf("/%s\n", path);
        }
        return fflush(stdout) == 0 ? 0 : 74;
    }

    char *config = build_config(user);
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
