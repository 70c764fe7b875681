<?php

/*
 * A backup round trip from PHP through libb2dest:
 *
 *   php c_examples/php/example.php CONFIG.json LOCAL_FILE [REMOTE_PATH]
 *
 * CONFIG.json is the destination's configuration (name, account_id, application_key,
 * bucket, backup_directory, ...; for the local emulator also api_url). The library is
 * found through $B2DEST_LIB, else target/release/libb2dest.so of this repository.
 * The upload and the download show their progress on standard error; the library's
 * warnings go there too. Exits 0 when the file came back identical, 1 on a
 * B2DestException, 2 on a usage error.
 */

declare(strict_types=1);

require __DIR__ . '/B2Dest.php';

if ($argc < 3 || $argc > 4) {
    fwrite(STDERR, "usage: php {$argv[0]} CONFIG.json LOCAL_FILE [REMOTE_PATH]\n");
    exit(2);
}
[$configPath, $local] = [$argv[1], $argv[2]];
$remote = $argv[3] ?? 'php-example/' . basename($local);

$config = json_decode((string) @file_get_contents($configPath), true);
if (!is_array($config)) {
    fwrite(STDERR, "$configPath does not hold a JSON object\n");
    exit(2);
}

/**
 * A progress callable: one line on standard error that redraws itself. Returning false
 * would cancel the transfer (a B2DestException with code B2Dest::ERR_CANCELLED follows).
 */
function progress_line(string $label): callable
{
    return static function (int $done, int $total) use ($label): bool {
        $percent = $total > 0 ? intdiv(100 * $done, $total) : 0;
        fprintf(STDERR, "\r%s: %3d%% (%d of %d bytes)%s", $label, $percent, $done, $total, $done === $total ? "\n" : '');
        return true;
    };
}

try {
    // Warnings of every call (a retried part, a slow B2) on standard error.
    B2Dest::setLogger(static function (int $level, string $line): void {
        fwrite(STDERR, "[b2dest] $line\n");
    }, B2Dest::LOG_WARN);
    $dest = new B2Dest($config);
    unset($config); // the object keeps what it needs
    echo 'libb2dest ', B2Dest::version(), "\n";

    $checks = $dest->validate();
    echo "validate: ok\n";
    foreach ($checks['checks'] ?? [] as $check) {
        printf("  %-20s %s\n", $check['name'], $check['message']);
    }
    foreach ($checks['warnings'] as $warning) {
        echo "  warning: $warning\n";
    }

    $up = $dest->upload($local, $remote, progress_line('upload'));
    printf("upload: %s, %d bytes, sha1 %s\n", $up['remote_path'], $up['size'], $up['sha1']);

    $listing = $dest->list(dirname($remote) === '.' ? '' : dirname($remote));
    echo "list: {$listing['count']} file(s)\n";
    foreach ($listing['entries'] as $entry) {
        printf("  %-40s %12d  %s\n", $entry['path'], $entry['size'], date('Y-m-d H:i:s', intdiv($entry['modified_ms'], 1000)));
    }

    $usage = $dest->usage();
    printf("usage: %d bytes in %d file(s)\n", $usage['used_bytes'], $usage['files']);

    $restored = tempnam(sys_get_temp_dir(), 'b2dest-php-');
    unlink($restored); // the library creates it, renaming into place once verified
    try {
        $down = $dest->download($remote, $restored, progress_line('download'));
        $same = sha1_file($restored) === sha1_file($local);
        printf("download: %d bytes, verified %s, identical %s\n", $down['size'], var_export($down['verified'], true), $same ? 'yes' : 'NO');
    } finally {
        @unlink($restored);
    }

    $deleted = $dest->delete($remote);
    printf("delete: %d version(s), %d bytes freed\n", $deleted['deleted_versions'], $deleted['bytes_freed']);
    exit($same ? 0 : 1);
} catch (B2DestException $e) {
    // getCode() is the DEST_* status; the message never holds the application key.
    fprintf(STDERR, "%s\n", $e->getMessage());
    if ($e->isRetryable()) {
        fwrite(STDERR, "(worth retrying later)\n");
    }
    exit(1);
}
