<?php

/*
 * Tests of c_examples/php/B2Dest.php against a running b2-emulator.
 *
 *   B2_EMULATOR_URL=http://127.0.0.1:PORT B2DEST_LIB=target/release/libb2dest.so \
 *     php tests/php/run_tests.php
 *
 * Optional: B2_EMULATOR_ACCOUNT_ID (emu-account), B2_EMULATOR_APPLICATION_KEY
 * (emu-application-key), B2_EMULATOR_BUCKET (b2dest-test). Plain PHP, no PHPUnit; ends
 * with "N passed, M failed" and exits 1 when anything failed. tests/shell/run.sh starts
 * an emulator and runs this file.
 */

declare(strict_types=1);

// Record arguments in traces, whatever php.ini says: the secret checks then see the worst case.
ini_set('zend.exception_ignore_args', '0');
error_reporting(E_ALL);

require dirname(__DIR__, 2) . '/c_examples/php/B2Dest.php';

final class TestFailure extends Exception
{
}

function check(bool $condition, string $what): void
{
    if (!$condition) {
        throw new TestFailure($what);
    }
}

function env(string $name, ?string $default = null): string
{
    $value = getenv($name);
    if (!is_string($value) || $value === '') {
        if ($default === null) {
            fwrite(STDERR, "run_tests.php: set $name (see the comment at the top)\n");
            exit(2);
        }
        return $default;
    }
    return $value;
}

/** Runs $call, which must throw a B2DestException with status $code; returns it. */
function expect_failure(callable $call, int $code, string $codeName): B2DestException
{
    try {
        $call();
    } catch (B2DestException $e) {
        check(
            $e->getCode() === $code,
            "expected status $code ($codeName), got {$e->getCode()}: {$e->getMessage()}"
        );
        check($e->getErrorCode() === $codeName, "expected error code $codeName, got {$e->getErrorCode()}");
        check($e->getErrorMessage() !== '', 'the error message is empty');
        return $e;
    }
    throw new TestFailure("expected a B2DestException with status $code ($codeName), the call succeeded");
}

/** Every textual form of an exception a host might log. */
function renderings(Throwable $e): array
{
    ob_start();
    var_dump($e);
    $dump = (string) ob_get_clean();
    return [
        'getMessage()' => $e->getMessage(),
        '__toString()' => (string) $e,
        'getTraceAsString()' => $e->getTraceAsString(),
        'print_r(getTrace())' => print_r($e->getTrace(), true),
        'var_export(getTrace())' => var_export($e->getTrace(), true),
        'json_encode(getTrace())' => (string) json_encode($e->getTrace(), JSON_PARTIAL_OUTPUT_ON_ERROR),
        'var_dump(exception)' => $dump,
    ];
}

function check_no_secret(Throwable $e, string $secret): void
{
    foreach (renderings($e) as $form => $text) {
        check(!str_contains($text, $secret), "the application key appears in $form");
    }
}

function random_file(string $path, int $size): void
{
    check(file_put_contents($path, random_bytes($size)) === $size, "cannot write $path");
}

function remove_tree(string $path): void
{
    if (is_dir($path) && !is_link($path)) {
        foreach (scandir($path) ?: [] as $name) {
            if ($name !== '.' && $name !== '..') {
                remove_tree("$path/$name");
            }
        }
        rmdir($path);
    } elseif (file_exists($path) || is_link($path)) {
        unlink($path);
    }
}


/** A call to the emulator's control API (faults, stored versions); the decoded answer. */
function emu(string $method, string $path, ?array $body = null): array
{
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => "Content-Type: application/json\r\n",
        'content' => $body === null ? '' : json_encode($body),
        'ignore_errors' => true,
        'timeout' => 10,
    ]]);
    $text = file_get_contents(env('B2_EMULATOR_URL') . '/__emulator/' . $path, false, $context);
    $answer = is_string($text) ? json_decode($text, true) : null;
    check(is_array($answer), "the emulator's answer to $method $path is not JSON: " . var_export($text, true));
    return $answer;
}

/** The stored versions (or, with $unfinished, the unfinished large files) under $prefix. */
function stored_under(string $bucket, string $prefix, bool $unfinished = false): array
{
    $all = emu('GET', ($unfinished ? 'unfinished/' : 'versions/') . $bucket);
    return array_values(array_filter($all, fn (array $v): bool => str_starts_with($v['file_name'], $prefix)));
}

/** The resident set size of this process in kB (what the C side allocates shows here). */
function rss_kb(): int
{
    $status = (string) @file_get_contents('/proc/self/status');
    return preg_match('/^VmRSS:\s+(\d+)/m', $status, $m) === 1 ? (int) $m[1] : 0;
}

/** Slows each of the first $count calls of $call down, so a transfer is seen moving. */
function slow_down(string $call, int $count, int $millis): void
{
    emu('POST', 'faults', ['call' => $call, 'count' => $count, 'action' => 'delay', 'millis' => $millis]);
}

// ------------------------------------------------------------------------------------
// Set-up

$url = env('B2_EMULATOR_URL');
env('B2DEST_LIB'); // B2Dest::load() reads it
$accountId = env('B2_EMULATOR_ACCOUNT_ID', 'emu-account');
$applicationKey = env('B2_EMULATOR_APPLICATION_KEY', 'emu-application-key');
$bucket = env('B2_EMULATOR_BUCKET', 'b2dest-test');
$directory = 'php-tests-' . bin2hex(random_bytes(4));

$base = [
    'name' => 'PHP tests',
    'account_id' => $accountId,
    'application_key' => $applicationKey,
    'bucket' => $bucket,
    'backup_directory' => $directory,
    'api_url' => $url,
    'retry_initial_delay_ms' => 10,
    'timeout_seconds' => 30,
];
// A distinctive wrong key, to search for in every rendering of the exception.
$wrongSecret = 'WRONG-SECRET-' . bin2hex(random_bytes(8));

$work = sys_get_temp_dir() . '/b2dest-php-tests-' . bin2hex(random_bytes(4));
check(mkdir($work, 0700), "cannot create $work");
random_file("$work/file.bin", 150_000);
random_file("$work/big.bin", 3_000_000); // three parts of 1 MB
random_file("$work/small.bin", 1_000);
mkdir("$work/tree/sub", 0700, true);
random_file("$work/tree/a.txt", 1_000);
random_file("$work/tree/sub/b.bin", 20_000);

$dest = new B2Dest($base);
// Parts of 1 MB sent one at a time: a 3 MB transfer moves in observable steps.
$stepwise = new B2Dest(['part_size_bytes' => 1_000_000, 'concurrency' => 1] + $base);
$passed = 0;
$failed = 0;
$tests = [];

// ------------------------------------------------------------------------------------
// The tests, in order: later ones use what earlier ones stored.

// B2DEST_EXPECT_SCOPE=1 (set when run under preloading): the library must come from the
// preloaded FFI scope, not FFI::cdef().
$tests['loaded from the FFI scope when preloaded, by FFI::cdef() otherwise'] = function (): void {
    $expected = getenv('B2DEST_EXPECT_SCOPE') === '1';
    check(B2Dest::loadedFromScope() === $expected, 'loadedFromScope() is ' . var_export(B2Dest::loadedFromScope(), true));
};

$tests['version'] = function (): void {
    check(preg_match('/^\d+\.\d+\.\d+/', B2Dest::version()) === 1, 'version is not x.y.z: ' . B2Dest::version());
};

$tests['validate'] = function () use ($dest): void {
    $r = $dest->validate();
    check($r['ok'] === true, 'ok is not true');
    check(is_array($r['checks']) && count($r['checks']) > 0, 'no checks');
    foreach ($r['checks'] as $c) {
        check($c['ok'] === true, "check {$c['name']} failed: {$c['message']}");
    }
    check(is_array($r['warnings']), 'no warnings array');
};

$tests['upload a file'] = function () use ($dest, $work): void {
    $r = $dest->upload("$work/file.bin", 'backups/file.bin');
    check($r['ok'] === true, 'ok is not true');
    check($r['size'] === 150_000, "size is {$r['size']}");
    check($r['sha1'] === sha1_file("$work/file.bin"), 'sha1 differs');
    check($r['remote_path'] === 'backups/file.bin', "remote_path is {$r['remote_path']}");
};

$tests['upload a directory'] = function () use ($dest, $work): void {
    $r = $dest->upload("$work/tree", 'tree');
    check($r['file_count'] === 2, "file_count is {$r['file_count']}");
    check($r['size'] === 21_000, "size is {$r['size']}");
};

$tests['upload reports progress while the bytes move'] = function () use ($stepwise, $work): void {
    $calls = [];
    slow_down('b2_upload_part', 3, 300);
    $r = $stepwise->upload("$work/big.bin", 'progress/big.bin', function (int $done, int $total) use (&$calls): bool {
        $calls[] = [$done, $total];
        return true;
    });
    emu('DELETE', 'faults');
    check($r['size'] === 3_000_000, "size is {$r['size']}");
    check(count($calls) >= 3, 'progress was called ' . count($calls) . ' times');
    $between = array_filter($calls, fn (array $c): bool => $c[0] > 0 && $c[0] < $c[1]);
    check(count($between) >= 1, 'no progress call with 0 < done < total: ' . json_encode($calls));
    check(end($calls) === [3_000_000, 3_000_000], 'the last call is not done == total: ' . json_encode(end($calls)));
    $dones = array_column($calls, 0);
    $sorted = $dones;
    sort($sorted);
    check($dones === $sorted, 'done went backwards: ' . json_encode($dones));
};

$tests['download reports progress while the bytes move'] = function () use ($stepwise, $work): void {
    $calls = [];
    slow_down('b2_download_file_by_id', 3, 300);
    $r = $stepwise->download('progress/big.bin', "$work/restored/big.bin", function (int $done, int $total) use (&$calls): bool {
        $calls[] = [$done, $total];
        return true;
    });
    emu('DELETE', 'faults');
    check($r['verified'] === true, 'not verified');
    check(sha1_file("$work/restored/big.bin") === sha1_file("$work/big.bin"), 'restored file differs');
    $between = array_filter($calls, fn (array $c): bool => $c[0] > 0 && $c[0] < $c[1]);
    check(count($between) >= 1, 'no progress call with 0 < done < total: ' . json_encode($calls));
};

$tests['a log callable receives the lines of its call, then the logger is back'] = function () use ($dest, $work): void {
    $mine = [];
    $global = [];
    B2Dest::setLogger(function (int $level, string $message) use (&$global): void {
        $global[] = $message;
    }, B2Dest::LOG_DEBUG);
    try {
        $dest->upload("$work/small.bin", 'logs/small.bin', null, function (int $level, string $message) use (&$mine): void {
            check($level >= B2Dest::LOG_ERROR && $level <= B2Dest::LOG_DEBUG, "level $level");
            $mine[] = $message;
        }, B2Dest::LOG_DEBUG);
        check(count($mine) > 0, 'the per-call log callable got no line');
        check($global === [], 'the process-wide logger got lines of a call that had its own');
        $dest->upload("$work/small.bin", 'logs/again.bin');
        check(count($global) > 0, 'the process-wide logger was not restored after the call');
    } finally {
        B2Dest::setLogger(null);
    }
    $after = count($global);
    $dest->upload("$work/small.bin", 'logs/again.bin');
    check(count($global) === $after, 'setLogger(null) did not remove the logger');
};

$tests['cancel from progress: cancelled (11), nothing left on B2'] = function () use ($stepwise, $work, $bucket, $directory): void {
    slow_down('b2_upload_part', 3, 300);
    $calls = 0;
    $stopOnceMoving = function (int $done, int $total) use (&$calls): bool {
        $calls++;
        return $done === 0; // go on until bytes have moved, then stop
    };
    expect_failure(fn () => $stepwise->upload("$work/big.bin", 'cancel/big.bin', $stopOnceMoving), B2Dest::ERR_CANCELLED, 'cancelled');
    emu('DELETE', 'faults');
    check($calls >= 2, "progress was called $calls times");
    check(stored_under($bucket, "$directory/cancel/") === [], 'a cancelled upload left versions: ' . json_encode(stored_under($bucket, "$directory/cancel/")));
    check(stored_under($bucket, "$directory/cancel/", true) === [], 'a cancelled upload left an unfinished large file');

    slow_down('b2_download_file_by_id', 3, 300);
    expect_failure(fn () => $stepwise->download('progress/big.bin', "$work/cancelled.bin", fn (int $done, int $total): bool => $done === 0), B2Dest::ERR_CANCELLED, 'cancelled');
    emu('DELETE', 'faults');
    check(!file_exists("$work/cancelled.bin"), 'a cancelled download left a file');
    check(glob("$work/.cancelled.bin*") === [], 'a cancelled download left a temporary file');
};

$tests['a throwing progress callable: its exception, after the call, nothing left'] = function () use ($stepwise, $dest, $work, $bucket, $directory, $applicationKey): void {
    slow_down('b2_upload_part', 3, 300);
    $thrown = null;
    try {
        // Made inside the callable, so its trace holds the frames of the library's call.
        $stepwise->upload("$work/big.bin", 'throw/big.bin', function (int $done) use (&$thrown): bool {
            if ($done > 0) {
                throw $thrown = new DomainException('thrown by the progress callable');
            }
            return true;
        });
        throw new TestFailure('the upload succeeded although its callable threw');
    } catch (DomainException $e) {
        check($e === $thrown, 'another exception came back: ' . $e->getMessage());
        check(str_contains(print_r($e->getTrace(), true), 'dest_upload'), 'the trace does not show the library call');
        check_no_secret($e, $applicationKey);
    } finally {
        emu('DELETE', 'faults');
    }
    check(stored_under($bucket, "$directory/throw/") === [], 'the upload whose callable threw left versions');
    check(stored_under($bucket, "$directory/throw/", true) === [], 'the upload whose callable threw left an unfinished large file');
    // The wrapper is in a clean state afterwards: the next call works, without the callable.
    check($dest->upload("$work/small.bin", 'throw/after.bin')['size'] === 1_000, 'the next upload failed');
    $dest->delete('throw');
};

$tests['a throwing log callable: its exception, after the call, nothing left'] = function () use ($stepwise, $dest, $work, $bucket, $directory): void {
    slow_down('b2_upload_part', 3, 300);
    try {
        $stepwise->upload("$work/big.bin", 'log-throw/big.bin', null, function (int $level, string $message): void {
            throw new LengthException('thrown by the log callable');
        }, B2Dest::LOG_DEBUG);
        throw new TestFailure('the upload succeeded although its log callable threw');
    } catch (LengthException $e) {
        check($e->getMessage() === 'thrown by the log callable', 'another exception came back');
    } finally {
        emu('DELETE', 'faults');
    }
    check(stored_under($bucket, "$directory/log-throw/") === [], 'the upload whose log callable threw left versions');
    check(stored_under($bucket, "$directory/log-throw/", true) === [], 'the upload whose log callable threw left an unfinished large file');
    check($dest->list('logs')['count'] === 2, 'the wrapper does not work after a throwing log callable');
};

$tests['a thousand calls with callables in one process do not leak'] = function () use ($dest, $work): void {
    $progress = static fn (int $done, int $total): bool => true;
    $log = static function (int $level, string $message): void {
    };
    $round = function (int $i) use ($dest, $work, $progress, $log): void {
        if ($i % 2 === 0) {
            $dest->upload("$work/small.bin", 'leak/small.bin', $progress, $log, B2Dest::LOG_DEBUG);
        } else {
            $dest->download('leak/small.bin', "$work/restored/leak.bin", $progress, $log, B2Dest::LOG_DEBUG);
        }
    };
    for ($i = 0; $i < 100; $i++) { // warm up: caches, the library's runtime and pools
        $round($i);
    }
    gc_collect_cycles();
    $memory = memory_get_usage();
    $rss = rss_kb();
    for ($i = 0; $i < 1000; $i++) {
        $round($i);
    }
    gc_collect_cycles();
    $memoryGrowth = memory_get_usage() - $memory;
    $rssGrowth = rss_kb() - $rss;
    echo "     1000 calls: PHP memory +$memoryGrowth bytes, RSS +$rssGrowth kB\n";
    // A C callback made per call costs PHP's FFI over 150 bytes each, kept to the end.
    check($memoryGrowth < 32 * 1024, "PHP memory grew by $memoryGrowth bytes over 1000 calls");
    check($rssGrowth < 8 * 1024, "the resident set grew by $rssGrowth kB over 1000 calls");
    $dest->delete('leak');
};

$tests['clean up the transfer tests'] = function () use ($dest): void {
    foreach (['progress', 'logs', 'cancel'] as $path) {
        $dest->delete($path);
    }
};

$tests['list everything'] = function () use ($dest): void {
    $r = $dest->list();
    $paths = array_column($r['entries'], 'path');
    sort($paths);
    check($paths === ['backups/file.bin', 'tree/a.txt', 'tree/sub/b.bin'], 'paths: ' . implode(', ', $paths));
    check($r['count'] === 3, "count is {$r['count']}");
};

$tests['list a directory'] = function () use ($dest): void {
    $r = $dest->list('tree');
    check($r['count'] === 2, "count is {$r['count']}");
};

$tests['usage'] = function () use ($dest): void {
    $r = $dest->usage();
    check($r['used_bytes'] === 171_000, "used_bytes is {$r['used_bytes']}");
    check($r['files'] === 3, "files is {$r['files']}");
};

$tests['download a file'] = function () use ($dest, $work): void {
    $r = $dest->download('backups/file.bin', "$work/restored/file.bin");
    check($r['verified'] === true, 'not verified');
    check(sha1_file("$work/restored/file.bin") === sha1_file("$work/file.bin"), 'restored file differs');
};

$tests['download a directory'] = function () use ($dest, $work): void {
    $r = $dest->download('tree', "$work/restored/tree");
    check($r['file_count'] === 2, "file_count is {$r['file_count']}");
    foreach (['a.txt', 'sub/b.bin'] as $f) {
        check(sha1_file("$work/restored/tree/$f") === sha1_file("$work/tree/$f"), "restored $f differs");
    }
};

$tests['download what is not there: not_found (5)'] = function () use ($dest, $work): void {
    expect_failure(fn () => $dest->download('no/such/file', "$work/nothing"), B2Dest::ERR_NOT_FOUND, 'not_found');
    check(!file_exists("$work/nothing"), 'a failed download left a file');
};

$tests['a path with a NUL byte: invalid_argument (1)'] = function () use ($dest): void {
    expect_failure(fn () => $dest->list("a\0b"), B2Dest::ERR_INVALID_ARGUMENT, 'invalid_argument');
};

$tests['delete'] = function () use ($dest): void {
    $r = $dest->delete('backups/file.bin');
    check($r['deleted_versions'] === 1, "deleted_versions is {$r['deleted_versions']}");
    check($r['bytes_freed'] === 150_000, "bytes_freed is {$r['bytes_freed']}");
    $r = $dest->delete('tree');
    check($r['deleted_versions'] === 2, "deleted_versions is {$r['deleted_versions']}");
    check($dest->list()['count'] === 0, 'files are left after the deletes');
    check($dest->usage()['used_bytes'] === 0, 'usage is not 0 after the deletes');
};

$tests['bad configuration: config (2)'] = function () use ($base): void {
    $config = $base;
    unset($config['bucket']);
    $e = expect_failure(fn () => (new B2Dest($config))->validate(), B2Dest::ERR_CONFIG, 'config');
    check(str_contains($e->getErrorMessage(), 'bucket'), 'the message does not name the field: ' . $e->getErrorMessage());
    $config = $base;
    $config['concurrency'] = 1000;
    expect_failure(fn () => (new B2Dest($config))->usage(), B2Dest::ERR_CONFIG, 'config');
};

// The wrong-key objects are made here, outside any closure, so that the test code's own
// closures do not carry the key into the traces this test searches.
$config = $base;
$config['application_key'] = $wrongSecret;
$wrongKeyDest = new B2Dest($config);
$config['bucket'] = ['not', 'a', 'string'];
$config['quota_bytes'] = NAN; // json_encode refuses it: the constructor throws
$unencodable = null;
try {
    new B2Dest($config);
} catch (B2DestException $e) {
    $unencodable = $e;
}
unset($config);

$tests['wrong key: auth (3)'] = function () use ($wrongKeyDest): void {
    $e = expect_failure(fn () => $wrongKeyDest->validate(), B2Dest::ERR_AUTH, 'auth');
    check($e->isRetryable() === false, 'a rejected key is marked retryable');
    check(($e->getResponse()['ok'] ?? null) === false, 'the response is not kept');
    expect_failure(fn () => $wrongKeyDest->list(), B2Dest::ERR_AUTH, 'auth');
};

$tests['the key never appears in an exception'] = function () use ($wrongKeyDest, $wrongSecret, $unencodable): void {
    foreach (['validate', 'list', 'usage'] as $op) {
        try {
            $wrongKeyDest->$op();
            throw new TestFailure("$op succeeded with a wrong key");
        } catch (B2DestException $e) {
            check_no_secret($e, $wrongSecret);
        }
    }
    try {
        $wrongKeyDest->upload('/nonexistent/file', 'x');
        throw new TestFailure('upload succeeded with a wrong key');
    } catch (B2DestException $e) {
        check_no_secret($e, $wrongSecret);
    }
    check($unencodable instanceof B2DestException, 'an unencodable configuration did not throw');
    check($unencodable->getCode() === B2Dest::ERR_CONFIG, 'an unencodable configuration is not ERR_CONFIG');
    check_no_secret($unencodable, $wrongSecret);
};

$tests['the key never appears in a dump of the object'] = function () use ($wrongKeyDest, $wrongSecret): void {
    ob_start();
    var_dump($wrongKeyDest);
    $dump = (string) ob_get_clean();
    foreach ([
        'var_dump' => $dump,
        'print_r' => print_r($wrongKeyDest, true),
        'var_export' => var_export($wrongKeyDest, true),
        '(array)' => print_r((array) $wrongKeyDest, true),
        'get_object_vars' => print_r(get_object_vars($wrongKeyDest), true),
        'json_encode' => (string) json_encode($wrongKeyDest),
    ] as $form => $text) {
        check(!str_contains($text, $wrongSecret), "the application key appears in $form");
    }
    check(str_contains($dump, '[redacted]'), 'var_dump does not show the redacted configuration');
    try {
        serialize($wrongKeyDest);
        throw new TestFailure('a B2Dest was serialized');
    } catch (LogicException $e) {
        check(!str_contains((string) $e, $wrongSecret), 'the serialize refusal shows the key');
    }
};

$tests['read-only destination: permission (4)'] = function () use ($base, $work): void {
    $dest = new B2Dest(['read_only' => true] + $base);
    check($dest->list()['ok'] === true, 'a read-only destination cannot list');
    expect_failure(fn () => $dest->upload("$work/file.bin", 'ro/file.bin'), B2Dest::ERR_PERMISSION, 'permission');
    expect_failure(fn () => $dest->delete('ro/file.bin'), B2Dest::ERR_PERMISSION, 'permission');
};

$tests['SSE-C round trip; without the key: encryption_key (14), nothing written'] = function () use ($base, $bucket, $directory, $work): void {
    $key = base64_encode(random_bytes(32));
    $md5 = base64_encode(md5(base64_decode($key), true));
    $sse = new B2Dest(['encryption' => ['mode' => 'SSE-C', 'customer_key' => $key]] + $base);
    $v = $sse->validate();
    check($v['encryption']['mode'] === 'SSE-C' && $v['encryption']['customer_key_md5'] === $md5, 'validate does not report SSE-C');
    $sse->upload("$work/file.bin", 'sse/file.bin');
    $stored = stored_under($bucket, "$directory/sse/");
    check(
        ($stored[0]['encryption'] ?? null) == ['mode' => 'SSE-C', 'key_md5' => $md5],
        'not stored SSE-C under this key: ' . json_encode($stored)
    );
    $entry = $sse->list('sse')['entries'][0];
    check($entry['encryption'] === 'SSE-C' && $entry['customer_key_md5'] === $md5, 'list does not show the mode');
    $sse->download('sse/file.bin', "$work/sse.back");
    check(sha1_file("$work/sse.back") === sha1_file("$work/file.bin"), 'the SSE-C restore differs');
    $plain = new B2Dest($base);
    $e = expect_failure(fn () => $plain->download('sse/file.bin', "$work/sse.nokey"), B2Dest::ERR_ENCRYPTION_KEY, 'encryption_key');
    check(!file_exists("$work/sse.nokey"), 'a restore without the key wrote a file');
    check(str_contains($e->getErrorMessage(), $md5), 'the message does not name the MD5 the file needs');
    $other = new B2Dest(['encryption' => ['mode' => 'SSE-C', 'customer_key' => base64_encode(random_bytes(32))]] + $base);
    expect_failure(fn () => $other->download('sse/file.bin', "$work/sse.wrong"), B2Dest::ERR_ENCRYPTION_KEY, 'encryption_key');
    foreach (renderings($e) as $form => $text) {
        check(!str_contains($text, $key), "the customer key appears in $form");
    }
    $sse->delete('sse');
};

$tests['bandwidth limit: 300 kB at 150 kB/s takes at least 1.8 s'] = function () use ($base, $work): void {
    $slow = new B2Dest(['bandwidth_limit_bytes_per_second' => 150_000] + $base);
    random_file("$work/300k.bin", 300_000);
    $start = microtime(true);
    $slow->upload("$work/300k.bin", 'bw/300k.bin');
    $took = microtime(true) - $start;
    check($took >= 1.8, "the upload took only $took s");
    $slow->delete('bw');
};
$lockedBucket = getenv('B2_EMULATOR_LOCKED_BUCKET');
if (is_string($lockedBucket) && $lockedBucket !== '') {
    $tests['Object Lock: a locked backup refuses deletion (13), protect extends it'] = function () use ($base, $work, $lockedBucket, $directory): void {
        $locked = new B2Dest(['bucket' => $lockedBucket,
            'object_lock' => ['mode' => 'compliance', 'retention_days' => 1]] + $base);
        $up = $locked->upload("$work/small.bin", 'locked/small.bin');
        check($up['retention_mode'] === 'compliance', 'no retention in the upload answer');
        $e = expect_failure(fn () => $locked->delete('locked'), B2Dest::ERR_LOCKED, 'locked');
        $r = $e->getResponse();
        check($r['locked_versions'] === 1 && $r['deleted_versions'] === 0, 'locked counts: ' . json_encode($r));
        check($r['earliest_unlock_ms'] === $up['retain_until_ms'], 'earliest_unlock_ms is not the retention');
        check(count(stored_under($lockedBucket, "$directory/locked/")) === 1, 'the locked backup is gone');
        $longer = new B2Dest(['bucket' => $lockedBucket,
            'object_lock' => ['mode' => 'compliance', 'retention_days' => 3]] + $base);
        $p = $longer->protect('locked');
        check($p['extended_versions'] === 1, 'protect: ' . json_encode($p));
        check($p['retain_until_ms'] > $up['retain_until_ms'], 'protect did not move the retention forward');
    };
    $tests['Recovery: versions, downloadAsOf and rollback get a backup back from locked garbage'] = function () use ($base, $work, $lockedBucket): void {
        // Its own directory each run: the suite runs these tests twice (php-cli, then
        // preloaded) against one emulator, and locked versions stay.
        $dir = 'php-recovery-' . bin2hex(random_bytes(4));
        $own = new B2Dest(['bucket' => $lockedBucket, 'backup_directory' => $dir,
            'object_lock' => ['mode' => 'governance', 'retention_days' => 1]] + $base);
        $attacker = new B2Dest(['bucket' => $lockedBucket, 'backup_directory' => $dir,
            'object_lock' => ['mode' => 'compliance', 'retention_days' => 2]] + $base);
        $own->upload("$work/small.bin", 'db.bin');
        usleep(20_000);
        $t = (int) floor(microtime(true) * 1000);
        usleep(20_000);
        file_put_contents("$work/garbage.bin", 'garbage');
        $attacker->upload("$work/garbage.bin", 'db.bin');
        $v = $own->versions('db.bin', ['as_of_ms' => $t]);
        check(array_column($v['entries'], 'current_at') === [false, true], 'versions: ' . json_encode($v));
        $own->downloadAsOf('db.bin', "$work/asof.bin", ['as_of_ms' => $t]);
        check(sha1_file("$work/asof.bin") === sha1_file("$work/small.bin"), 'downloadAsOf is not the backup');
        $dry = $own->rollback('', ['as_of_ms' => $t, 'dry_run' => true]);
        check($dry['copied_files'] === 1 && $dry['dry_run'] === true, 'dry run: ' . json_encode($dry));
        $r = $own->rollback('', ['as_of_ms' => $t]);
        check($r['copied_files'] === 1, 'rollback: ' . json_encode($r));
        $own->download('db.bin', "$work/rolled.bin");
        check(sha1_file("$work/rolled.bin") === sha1_file("$work/small.bin"), 'after rollback the backup is not current');
        expect_failure(fn () => $own->rollback('', ['as_of_ms' => 'yesterday']), B2Dest::ERR_INVALID_ARGUMENT, 'invalid_argument');
    };
}

// ------------------------------------------------------------------------------------

foreach ($tests as $name => $test) {
    try {
        $test();
        $passed++;
        echo "ok   $name\n";
    } catch (Throwable $e) {
        $failed++;
        echo "FAIL $name: ", get_class($e), ': ', $e->getMessage(), "\n";
    }
}

// Best effort: leave nothing behind on the emulator.
try {
    foreach (['backups', 'tree', 'ro', 'progress', 'logs', 'cancel', 'throw', 'log-throw', 'leak'] as $path) {
        $dest->delete($path);
    }
} catch (B2DestException $e) {
    echo "cleanup: {$e->getMessage()}\n";
}
remove_tree($work);

echo "$passed passed, $failed failed\n";
exit($failed === 0 ? 0 : 1);
