/*
 * host_example: a minimal backup host that uses libb2dest the way a control panel does.
 *
 * It shows the whole contract of the C ABI in one place:
 *
 *   - every dest_* call takes the destination's configuration as a JSON string;
 *   - every call blocks, returns a DestStatus and stores a JSON response that the host
 *     must free exactly once with dest_free (also when the call failed);
 *   - uploads and downloads report progress through a callback on the calling thread,
 *     and the callback cancels the transfer by returning non-zero;
 *   - log lines arrive through dest_set_log_callback, also on the calling thread.
 *
 * What it does: validate the destination, (optionally) start an upload and cancel it,
 * upload LOCAL_FILE, list it, download it again, compare the copy byte for byte, delete
 * it, and check that it is gone. It exits 0 only if every step did what it should.
 *
 *   host_example [--cancel-after BYTES] CONFIG.json LOCAL_FILE [REMOTE_PATH]
 *
 * Build (see the Makefile):
 *   cc -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -Iinclude \
 *      c_examples/host_example.c -Ltarget/release -Wl,-rpath,$PWD/target/release -lb2dest
 */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b2dest.h"

#define DEFAULT_REMOTE "host-example/round-trip.dat"

/* ------------------------------------------------------------------------------------ */
/* Small helpers.                                                                        */

/* The name of a status, for messages. The numbers are fixed by the ABI. */
static const char *status_name(int32_t status)
{
    static const char *const names[] = {
        "DEST_OK",         "DEST_ERR_INVALID_ARGUMENT", "DEST_ERR_CONFIG",
        "DEST_ERR_AUTH",   "DEST_ERR_PERMISSION",       "DEST_ERR_NOT_FOUND",
        "DEST_ERR_LIMIT",  "DEST_ERR_LOCAL_IO",         "DEST_ERR_NETWORK",
        "DEST_ERR_REMOTE", "DEST_ERR_INTEGRITY",        "DEST_ERR_CANCELLED",
        "DEST_ERR_INTERNAL", "DEST_ERR_LOCKED",           "DEST_ERR_ENCRYPTION_KEY",
        "DEST_ERR_TLS",
    };
    if (status >= 0 && (size_t)status < sizeof names / sizeof names[0] && names[status]) {
        return names[status];
    }
    return "unknown status";
}

/*
 * Reads a whole-number field such as "size" from a response.
 *
 * A real host parses the response with its JSON library (json_decode, cJSON, jansson...).
 * This example keeps to the C library, so it only looks for the first `"key":` and reads
 * the number after it, which is enough for the flat fields it needs.
 */
static int json_uint(const char *json, const char *key, uint64_t *value)
{
    char pattern[64];
    const char *at;
    char *end;
    unsigned long long n;

    if (json == NULL || snprintf(pattern, sizeof pattern, "\"%s\":", key) >= (int)sizeof pattern) {
        return -1;
    }
    at = strstr(json, pattern);
    if (at == NULL) {
        return -1;
    }
    at += strlen(pattern);
    errno = 0;
    n = strtoull(at, &end, 10);
    if (end == at || errno != 0) {
        return -1;
    }
    *value = (uint64_t)n;
    return 0;
}

/* Whether the response holds `"key":"value"` (for a value that needs no JSON escaping). */
static int json_has_string(const char *json, const char *key, const char *value)
{
    size_t size = strlen(key) + strlen(value) + 8;
    char *pattern = malloc(size);
    int found;

    if (json == NULL || pattern == NULL) {
        free(pattern);
        return 0;
    }
    snprintf(pattern, size, "\"%s\":\"%s\"", key, value);
    found = strstr(json, pattern) != NULL;
    free(pattern);
    return found;
}

/* Reads a whole file into a NUL-terminated buffer; NULL on error (message printed). */
static char *read_file(const char *path)
{
    FILE *in = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (in == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t got;
        if (cap - len < 2) {
            size_t new_cap = cap == 0 ? 4096 : cap * 2;
            char *bigger = realloc(buf, new_cap);
            if (bigger == NULL) {
                fprintf(stderr, "out of memory reading %s\n", path);
                free(buf);
                fclose(in);
                return NULL;
            }
            buf = bigger;
            cap = new_cap;
        }
        got = fread(buf + len, 1, cap - len - 1, in);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        fclose(in);
        return NULL;
    }
    if (fclose(in) != 0) {
        fprintf(stderr, "cannot close %s: %s\n", path, strerror(errno));
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* 0 when both files hold the same bytes, 1 when they differ, -1 on error. */
static int compare_files(const char *a_path, const char *b_path)
{
    FILE *a = fopen(a_path, "rb");
    FILE *b = fopen(b_path, "rb");
    int result = 0;

    if (a == NULL || b == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", a == NULL ? a_path : b_path, strerror(errno));
        result = -1;
    }
    while (result == 0) {
        unsigned char buf_a[65536], buf_b[65536];
        size_t got_a = fread(buf_a, 1, sizeof buf_a, a);
        size_t got_b = fread(buf_b, 1, sizeof buf_b, b);
        if (ferror(a) || ferror(b)) {
            fprintf(stderr, "read error while comparing\n");
            result = -1;
        } else if (got_a != got_b || memcmp(buf_a, buf_b, got_a) != 0) {
            result = 1;
        } else if (got_a == 0) {
            break;
        }
    }
    if (a != NULL && fclose(a) != 0) {
        result = -1;
    }
    if (b != NULL && fclose(b) != 0) {
        result = -1;
    }
    return result;
}

/* ------------------------------------------------------------------------------------ */
/* Callbacks.                                                                            */

/* What the progress callback needs; passed to the library as user_data, untouched. */
struct progress_state {
    const char *label;
    uint64_t cancel_after; /* cancel once this many bytes moved; UINT64_MAX: never */
    int next_percent;      /* print at 0, 25, 50, 75 and 100 % */
    int cancel_requested;
};

/*
 * Runs on the thread that called dest_upload / dest_download: at the start, at most ten
 * times a second, and at the end. Returning non-zero asks the library to stop; it then
 * cleans up (nothing half-made is left on B2 or on disk) and returns DEST_ERR_CANCELLED.
 */
static int32_t on_progress(uint64_t done_bytes, uint64_t total_bytes, void *user_data)
{
    struct progress_state *state = user_data;
    int percent = total_bytes > 0 ? (int)(done_bytes * 100 / total_bytes) : 0;

    if (percent >= state->next_percent && state->next_percent <= 100) {
        printf("    %s: %3d%% (%" PRIu64 " of %" PRIu64 " bytes)\n", state->label, percent,
               done_bytes, total_bytes);
        while (state->next_percent <= percent) {
            state->next_percent += 25;
        }
    }
    if (done_bytes >= state->cancel_after) {
        if (!state->cancel_requested) {
            printf("    %s: %" PRIu64 " bytes moved, asking the library to cancel\n",
                   state->label, done_bytes);
            state->cancel_requested = 1;
        }
        return 1; /* stop */
    }
    return 0; /* go on */
}

/* Log lines of the library; the message is valid only during this call. */
static void on_log(int32_t level, const char *message, void *user_data)
{
    static const char *const levels[] = {"?", "error", "warn", "info", "debug"};
    (void)user_data;
    fprintf(stderr, "    [library %s] %s\n",
            level >= 1 && level <= 4 ? levels[level] : levels[0], message);
}

/* ------------------------------------------------------------------------------------ */
/* The steps.                                                                            */

/*
 * Checks a call's outcome: prints it, and on failure prints the response, whose
 * "error" object carries "code", "message" and "retryable". Always frees the response.
 * Returns 0 when the status is the one expected.
 */
static int finish_call(const char *step, int32_t status, int32_t expected, char *response)
{
    int ok = status == expected;

    printf("  %s: %s (%" PRId32 ")%s\n", step, status_name(status), status,
           ok ? "" : ", not what was expected");
    if (!ok) {
        fprintf(stderr, "  %s failed; response: %s\n", step,
                response != NULL ? response : "(none)");
        if (response != NULL && strstr(response, "\"retryable\":true") != NULL) {
            fprintf(stderr, "  (the library says this error is worth retrying later)\n");
        }
    }
    dest_free(response); /* every response, success or failure, exactly once */
    return ok ? 0 : -1;
}

struct run {
    const char *config;
    const char *local;
    const char *remote;
    uint64_t cancel_after;
    uint64_t size;
    char restore_dir[64];
    char restore_path[128];
};

static int step_validate(const struct run *r)
{
    char *response = NULL;
    int32_t status;

    printf("1. validate the destination\n");
    status = dest_validate(r->config, &response);
    if (status == DEST_OK && response != NULL && strstr(response, "\"warnings\":[]") == NULL) {
        /* Warnings do not fail the call; a host shows them to whoever set it up. */
        printf("  the response has warnings: %s\n", response);
    }
    return finish_call("validate", status, DEST_OK, response);
}

static int step_cancelled_upload(const struct run *r)
{
    struct progress_state progress = {"upload (to be cancelled)", r->cancel_after, 0, 0};
    char *response = NULL;
    int32_t status;

    printf("1b. upload %s and cancel after %" PRIu64 " bytes\n", r->local, r->cancel_after);
    status = dest_upload(r->config, r->local, r->remote, on_progress, &progress, &response);
    if (status == DEST_OK) {
        /* The callback runs at most ten times a second: a small file can be done first. */
        printf("  the upload finished before the callback asked to stop\n");
        return finish_call("upload", status, DEST_OK, response);
    }
    if (finish_call("cancelled upload", status, DEST_ERR_CANCELLED, response) != 0) {
        return -1;
    }
    /* A cancelled upload leaves nothing behind: listing the path finds nothing. */
    response = NULL;
    status = dest_list(r->config, r->remote, &response);
    if (status == DEST_OK && json_has_string(response, "path", r->remote)) {
        fprintf(stderr, "  a cancelled upload left %s on the destination\n", r->remote);
        dest_free(response);
        return -1;
    }
    return finish_call("list after cancel (nothing there)", status, DEST_OK, response);
}

static int step_upload(struct run *r)
{
    struct progress_state progress = {"upload", UINT64_MAX, 0, 0};
    char *response = NULL;
    int32_t status;

    printf("2. upload %s to %s\n", r->local, r->remote);
    status = dest_upload(r->config, r->local, r->remote, on_progress, &progress, &response);
    if (status == DEST_OK && json_uint(response, "size", &r->size) == 0) {
        printf("  uploaded %" PRIu64 " bytes\n", r->size);
    }
    return finish_call("upload", status, DEST_OK, response);
}

static int step_list(const struct run *r)
{
    char *response = NULL;
    uint64_t count = 0, size = 0;
    int32_t status;
    int found;

    printf("3. list %s\n", r->remote);
    status = dest_list(r->config, r->remote, &response);
    found = status == DEST_OK && json_has_string(response, "path", r->remote) &&
            json_uint(response, "count", &count) == 0 && count == 1 &&
            json_uint(response, "size", &size) == 0 && size == r->size;
    if (status == DEST_OK && !found) {
        fprintf(stderr, "  the list does not show %s with %" PRIu64 " bytes: %s\n", r->remote,
                r->size, response != NULL ? response : "(none)");
        dest_free(response);
        return -1;
    }
    if (found) {
        printf("  found %s, %" PRIu64 " bytes\n", r->remote, size);
    }
    return finish_call("list", status, DEST_OK, response);
}

static int step_download(struct run *r)
{
    struct progress_state progress = {"download", UINT64_MAX, 0, 0};
    char *response = NULL;
    int32_t status;
    int same;

    snprintf(r->restore_dir, sizeof r->restore_dir, "/tmp/host-example-XXXXXX");
    if (mkdtemp(r->restore_dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        r->restore_dir[0] = '\0';
        return -1;
    }
    snprintf(r->restore_path, sizeof r->restore_path, "%s/restored", r->restore_dir);

    printf("4. download %s to %s\n", r->remote, r->restore_path);
    status = dest_download(r->config, r->remote, r->restore_path, on_progress, &progress,
                           &response);
    if (status == DEST_OK && strstr(response, "\"verified\":true") == NULL) {
        printf("  note: the library could not verify this file's SHA1 (uploaded by another "
               "tool without one)\n");
    }
    if (finish_call("download", status, DEST_OK, response) != 0) {
        return -1;
    }
    same = compare_files(r->local, r->restore_path);
    printf("  compare: %s\n", same == 0 ? "identical" : same > 0 ? "DIFFERENT" : "error");
    return same == 0 ? 0 : -1;
}

static int step_delete(const struct run *r)
{
    char *response = NULL;
    uint64_t versions = 0;
    int32_t status;

    printf("5. delete %s\n", r->remote);
    status = dest_delete(r->config, r->remote, &response);
    if (status == DEST_OK && json_uint(response, "deleted_versions", &versions) == 0) {
        printf("  deleted %" PRIu64 " version(s)\n", versions);
    }
    if (finish_call("delete", status, DEST_OK, response) != 0) {
        return -1;
    }

    printf("6. list %s again\n", r->remote);
    response = NULL;
    status = dest_list(r->config, r->remote, &response);
    if (status == DEST_OK && json_has_string(response, "path", r->remote)) {
        fprintf(stderr, "  %s is still listed after the delete\n", r->remote);
        dest_free(response);
        return -1;
    }
    return finish_call("list (gone)", status, DEST_OK, response);
}

static void remove_restored(const struct run *r)
{
    if (r->restore_dir[0] == '\0') {
        return;
    }
    if (unlink(r->restore_path) != 0 && errno != ENOENT) {
        fprintf(stderr, "cannot remove %s: %s\n", r->restore_path, strerror(errno));
    }
    if (rmdir(r->restore_dir) != 0) {
        fprintf(stderr, "cannot remove %s: %s\n", r->restore_dir, strerror(errno));
    }
}

static int usage(const char *program)
{
    fprintf(stderr, "usage: %s [--cancel-after BYTES] CONFIG.json LOCAL_FILE [REMOTE_PATH]\n",
            program);
    return 64;
}

int main(int argc, char **argv)
{
    struct run r;
    char *config;
    int argi = 1;
    int failed;

    /* Line-buffered, so our lines and the library's log lines (stderr) interleave. */
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) {
        return 71;
    }
    memset(&r, 0, sizeof r);
    r.cancel_after = UINT64_MAX;
    if (argc > 2 && strcmp(argv[1], "--cancel-after") == 0) {
        char *end;
        errno = 0;
        r.cancel_after = strtoull(argv[2], &end, 10);
        if (end == argv[2] || *end != '\0' || errno != 0) {
            return usage(argv[0]);
        }
        argi = 3;
    }
    if (argc - argi < 2 || argc - argi > 3) {
        return usage(argv[0]);
    }
    r.local = argv[argi + 1];
    r.remote = argc - argi == 3 ? argv[argi + 2] : DEFAULT_REMOTE;

    config = read_file(argv[argi]);
    if (config == NULL) {
        return 66;
    }
    r.config = config;

    printf("libb2dest %s\n", dest_version());
    /* Log lines at INFO and more severe go to our callback for every later call. */
    dest_set_log_callback(on_log, DEST_LOG_INFO, NULL);

    failed = step_validate(&r) != 0;
    if (!failed && r.cancel_after != UINT64_MAX) {
        failed = step_cancelled_upload(&r) != 0;
    }
    failed = failed || step_upload(&r) != 0;
    failed = failed || step_list(&r) != 0;
    failed = failed || step_download(&r) != 0;
    /* Delete even when the download failed, so no test file stays behind on B2. */
    if (r.size > 0 || !failed) {
        failed = step_delete(&r) != 0 || failed;
    }
    remove_restored(&r);

    dest_set_log_callback(NULL, 0, NULL);
    free(config);
    printf("%s\n", failed ? "FAILED" : "all steps passed");
    if (fflush(stdout) != 0) {
        return 74;
    }
    return failed ? 1 : 0;
}
