/*
 * bench/driver.c: runs ONE b2dest operation per invocation, through the C ABI, for the
 * benchmark harness (bench/bench.py). Linked directly to target/release/libb2dest.so.
 *
 *   driver upload      CONFIG_FILE LOCAL REMOTE
 *   driver download    CONFIG_FILE REMOTE LOCAL
 *   driver list        CONFIG_FILE REMOTE
 *   driver usage       CONFIG_FILE
 *   driver delete      CONFIG_FILE REMOTE
 *   driver upload-many CONFIG_FILE LOCAL_DIR REMOTE_PREFIX N
 *   driver version
 *
 * upload-many calls dest_upload once per regular file of LOCAL_DIR (sorted by name, the
 * first N), one after the other in this one process, to REMOTE_PREFIX/NAME.
 *
 * Prints the library's response JSON on stdout (for upload-many a summary object, and the
 * failing call's response on failure) and exits with the DEST_* status (0 = success).
 * Driver errors of its own exit with 64 (usage) or 66 (input unreadable). Library log
 * lines at WARN and above go to stderr.
 */

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "b2dest.h"

#define EXIT_USAGE 64
#define EXIT_NO_INPUT 66

static void log_to_stderr(int32_t level, const char *message, void *user_data)
{
    (void)user_data;
    fprintf(stderr, "b2dest[%d]: %s\n", (int)level, message);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0) {
            break;
        }
        len += n;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Prints the response (or a placeholder) and frees it. */
static void emit(char *response)
{
    if (response != NULL) {
        fputs(response, stdout);
        fputc('\n', stdout);
        dest_free(response);
    } else {
        fputs("{\"ok\":false,\"error\":{\"message\":\"no response stored\"}}\n", stdout);
    }
}

static int not_hidden(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

static int upload_many(const char *config, const char *dir, const char *prefix, long n)
{
    struct dirent **names = NULL;
    int count = scandir(dir, &names, not_hidden, alphasort);
    if (count < 0) {
        perror(dir);
        return EXIT_NO_INPUT;
    }
    int status = DEST_OK;
    long done = 0;
    size_t cap = strlen(dir) + strlen(prefix) + 512;
    char *local = malloc(cap);
    char *remote = malloc(cap);
    if (local == NULL || remote == NULL) {
        free(local);
        free(remote);
        for (int i = 0; i < count; i++) {
            free(names[i]);
        }
        free(names);
        return EXIT_NO_INPUT;
    }
    for (int i = 0; i < count && done < n; i++) {
        snprintf(local, cap, "%s/%s", dir, names[i]->d_name);
        snprintf(remote, cap, "%s/%s", prefix, names[i]->d_name);
        struct stat st;
        if (stat(local, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        char *response = NULL;
        status = dest_upload(config, local, remote, NULL, NULL, &response);
        if (status != DEST_OK) {
            fprintf(stdout, "{\"ok\":false,\"calls_done\":%ld,\"failed_file\":\"%s\",\"response\":",
                    done, names[i]->d_name);
            fputs(response != NULL ? response : "null", stdout);
            fputs("}\n", stdout);
            dest_free(response);
            break;
        }
        dest_free(response);
        done++;
    }
    if (status == DEST_OK) {
        if (done < n) {
            fprintf(stdout, "{\"ok\":false,\"calls_done\":%ld,\"error\":\"only %ld files in %s\"}\n",
                    done, done, dir);
            status = EXIT_NO_INPUT;
        } else {
            fprintf(stdout, "{\"ok\":true,\"calls_done\":%ld}\n", done);
        }
    }
    free(local);
    free(remote);
    for (int i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    return status;
}

static int usage(void)
{
    fputs("usage: driver upload CONFIG LOCAL REMOTE | download CONFIG REMOTE LOCAL |\n"
          "       list CONFIG REMOTE | usage CONFIG | delete CONFIG REMOTE |\n"
          "       upload-many CONFIG LOCAL_DIR REMOTE_PREFIX N | version\n",
          stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "version") == 0) {
        printf("%s\n", dest_version());
        return 0;
    }
    if (argc < 3) {
        return usage();
    }
    const char *op = argv[1];
    char *config = read_file(argv[2]);
    if (config == NULL) {
        return EXIT_NO_INPUT;
    }
    dest_set_log_callback(log_to_stderr, DEST_LOG_WARN, NULL);

    char *response = NULL;
    int status;
    if (strcmp(op, "upload") == 0 && argc == 5) {
        status = dest_upload(config, argv[3], argv[4], NULL, NULL, &response);
        emit(response);
    } else if (strcmp(op, "download") == 0 && argc == 5) {
        status = dest_download(config, argv[3], argv[4], NULL, NULL, &response);
        emit(response);
    } else if (strcmp(op, "list") == 0 && argc == 4) {
        status = dest_list(config, argv[3], &response);
        emit(response);
    } else if (strcmp(op, "usage") == 0 && argc == 3) {
        status = dest_usage(config, &response);
        emit(response);
    } else if (strcmp(op, "delete") == 0 && argc == 4) {
        status = dest_delete(config, argv[3], &response);
        emit(response);
    } else if (strcmp(op, "upload-many") == 0 && argc == 6) {
        char *end = NULL;
        long n = strtol(argv[5], &end, 10);
        if (end == argv[5] || *end != '\0' || n < 0) {
            free(config);
            return usage();
        }
        status = upload_many(config, argv[3], argv[4], n);
    } else {
        free(config);
        return usage();
    }
    free(config);
    fflush(stdout);
    return status;
}
