<?php

declare(strict_types=1);

/**
 * Thrown when a b2dest operation fails.
 *
 * getCode() is the library's DEST_* status (see the B2Dest::ERR_* constants, e.g. 3 for a
 * rejected key), getErrorCode() its short name ("auth"), getErrorMessage() the library's
 * message, isRetryable() whether trying again later may help, and getResponse() the whole
 * decoded response. When the library itself cannot be loaded, getCode() is
 * B2Dest::UNAVAILABLE (-1) and getErrorCode() "unavailable".
 *
 * Neither the message nor the trace ever holds the application key: the library never
 * puts it in a message, B2Dest removes it again if it ever did, and no function that
 * receives the configuration is on the stack when an exception is made (the
 * constructor's parameter is marked #[\SensitiveParameter]).
 */
class B2DestException extends RuntimeException
{
    private string $errorCode;
    private string $errorMessage;
    private bool $retryable;
    /** @var array<string, mixed> */
    private array $response;

    /**
     * @param array<string, mixed> $response
     */
    public function __construct(
        string $operation,
        int $status,
        string $errorCode,
        string $errorMessage,
        bool $retryable = false,
        array $response = []
    ) {
        parent::__construct(
            sprintf('b2dest %s failed (%s, status %d): %s', $operation, $errorCode, $status, $errorMessage),
            $status
        );
        $this->errorCode = $errorCode;
        $this->errorMessage = $errorMessage;
        $this->retryable = $retryable;
        $this->response = $response;
    }

    /** The short name of the status, e.g. "auth", "not_found", "limit". */
    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    /** The library's message, written for the person who set up the destination. */
    public function getErrorMessage(): string
    {
        return $this->errorMessage;
    }

    /** Whether the same call may succeed later (network trouble, B2 busy). */
    public function isRetryable(): bool
    {
        return $this->retryable;
    }

    /** @return array<string, mixed> The whole decoded response ("ok", "warnings", "error"...). */
    public function getResponse(): array
    {
        return $this->response;
    }
}

/**
 * A Backblaze B2 backup destination, through libb2dest and PHP's FFI extension.
 *
 *     $dest = new B2Dest([
 *         'name' => 'Offsite', 'account_id' => '...', 'application_key' => '...',
 *         'bucket' => 'my-backups', 'backup_directory' => 'server1',
 *     ]);
 *     $dest->validate();
 *     $r = $dest->upload('/backups/home.tar.gz', 'daily/home.tar.gz');   // ['size' => ..., 'sha1' => ...]
 *     foreach ($dest->list('daily')['entries'] as $e) { echo $e['path'], "\n"; }
 *
 * Every method blocks until B2 answered, returns the library's decoded response as an
 * array ("ok", "warnings" and the operation's fields, see include/b2dest.h), and throws a
 * B2DestException on failure. Calls are independent: each one takes the configuration
 * again, so an object is cheap and may be kept or made per request.
 *
 * Loading: the library is loaded once per request (static). When it was loaded at server
 * start under the FFI scope "B2DEST" (ffi.preload, or preload.php beside this file), that
 * scope is used (FFI::scope()): this is how it runs under php-fpm with PHP's default
 * ffi.enable=preload, which lets only preloaded code use FFI, so preload.php preloads
 * this file too (see its top). Otherwise it is
 * FFI::cdef() over include/b2dest_ffi.h, allowed under php-cli or with ffi.enable=1; the
 * paths come from the arguments of B2Dest::load() or the constructor, else the
 * environment variables B2DEST_LIB and B2DEST_FFI_HEADER, else this repository's
 * target/release/libb2dest.so and include/b2dest_ffi.h (installed: PREFIX/include
 * beside PREFIX/share/b2dest/php), else "libb2dest.so.0" on the system's library path.
 *
 * Progress, cancel and logs: upload() and download() take an optional progress callable
 * `function (int $done, int $total): bool` (return false to cancel: the call then throws
 * a B2DestException with code ERR_CANCELLED and B2 keeps nothing of it) and an optional
 * log callable `function (int $level, string $message): void` (LOG_ERROR .. LOG_DEBUG).
 * The library runs both on the calling thread, inside the call, so they are ordinary PHP
 * calls. setLogger() installs a log callable for every call of the process; a per-call
 * log callable replaces it for that call only and the previous one is restored after.
 * A callable that throws does not unwind through the library: the exception is caught,
 * the operation is cancelled, and the exception is rethrown once the call has returned.
 * The C callbacks are made once per process (PHP's FFI keeps every closure it turns into
 * a C function pointer until the request ends, so one per call would grow without bound).
 *
 * Secrets: the configuration (with the application key) is kept outside the object's
 * properties (a private static WeakMap) and never passed on as a PHP function argument
 * (the library gets it as an untyped pointer to a C copy, wiped after the call), so it is
 * in no exception trace, not even of an exception a callable throws while the library is
 * on the stack; var_export()/(array) of the object show nothing,
 * var_dump()/print_r() show the key as "[redacted]", and the object cannot be serialized.
 */
final class B2Dest
{
    public const OK = 0;
    public const ERR_INVALID_ARGUMENT = 1;
    public const ERR_CONFIG = 2;
    public const ERR_AUTH = 3;
    public const ERR_PERMISSION = 4;
    public const ERR_NOT_FOUND = 5;
    public const ERR_LIMIT = 6;
    public const ERR_LOCAL_IO = 7;
    public const ERR_NETWORK = 8;
    public const ERR_REMOTE = 9;
    public const ERR_INTEGRITY = 10;
    public const ERR_CANCELLED = 11;
    public const ERR_INTERNAL = 12;
    /** B2 Object Lock kept some versions of a delete; the rest was deleted. */
    public const ERR_LOCKED = 13;
    /** An SSE-C file and no customer key, or not the one it was uploaded with. */
    public const ERR_ENCRYPTION_KEY = 14;
    /** This machine refused the server's TLS certificate; retrying changes nothing. */
    public const ERR_TLS = 15;
    /** Not a library status: the library or PHP's FFI extension could not be loaded. */
    public const UNAVAILABLE = -1;

    /** Log levels (DestLogLevel), most severe first. */
    public const LOG_ERROR = 1;
    public const LOG_WARN = 2;
    public const LOG_INFO = 3;
    public const LOG_DEBUG = 4;

    private const CODE_NAMES = [
        0 => 'ok', 1 => 'invalid_argument', 2 => 'config', 3 => 'auth', 4 => 'permission',
        5 => 'not_found', 6 => 'limit', 7 => 'local_io', 8 => 'network', 9 => 'remote',
        10 => 'integrity', 11 => 'cancelled', 12 => 'internal', 13 => 'locked', 14 => 'encryption_key',
    ];

    private static ?FFI $ffi = null;
    private static bool $fromScope = false;

    /**
     * The two C callbacks, each made once per process from a static closure that hands the
     * call to the callable of the running operation below.
     */
    private static ?FFI\CData $progressTrampoline = null;
    private static ?FFI\CData $logTrampoline = null;

    /** @var (callable(int, int): mixed)|null The running operation's progress callable. */
    private static $activeProgress = null;
    /** @var (callable(int, string): mixed)|null The running operation's log callable. */
    private static $activeLog = null;
    /** @var (callable(int, string): mixed)|null setLogger()'s callable. */
    private static $logger = null;
    private static int $loggerLevel = self::LOG_INFO;
    /** The library's current log level, as last set through dest_set_log_callback. */
    private static int $installedLevel = 0;
    /** The first exception a callable of the running operation threw. */
    private static ?\Throwable $pending = null;

    /**
     * Each object's configuration JSON and application key, kept outside the object, so
     * that var_export(), (array) casts, get_object_vars() and error reporters that walk an
     * object's properties (say, of a B2Dest found in a trace's arguments) see nothing.
     *
     * @var \WeakMap<B2Dest, array{json: string, key: string}>|null
     */
    private static ?\WeakMap $secrets = null;

    /**
     * @param array<string, mixed> $config The destination's configuration: name,
     *     account_id, application_key, bucket, backup_directory, quota_bytes, ...
     * @param string|null $libraryPath Path of libb2dest.so (used on the first load only).
     * @throws B2DestException when the configuration cannot be encoded as JSON (ERR_CONFIG)
     *     or the library cannot be loaded (UNAVAILABLE).
     */
    public function __construct(#[\SensitiveParameter] array $config, ?string $libraryPath = null)
    {
        $key = $config['application_key'] ?? '';
        $json = json_encode($config, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION);
        if ($json === false) {
            // json_last_error_msg() names the problem, never the value.
            throw new B2DestException(
                'configure',
                self::ERR_CONFIG,
                'config',
                'the configuration cannot be encoded as JSON: ' . json_last_error_msg()
            );
        }
        self::load($libraryPath);
        self::$secrets ??= new \WeakMap();
        self::$secrets[$this] = ['json' => $json, 'key' => is_string($key) ? $key : ''];
    }

    /**
     * Loads the library once per process; later calls do nothing.
     *
     * @throws B2DestException with code UNAVAILABLE when FFI or the library is missing.
     */
    public static function load(?string $libraryPath = null, ?string $headerPath = null): void
    {
        if (self::$ffi !== null) {
            return;
        }
        if (!extension_loaded('ffi')) {
            throw self::unavailable('PHP\'s FFI extension is not loaded: install or enable it (extension=ffi)');
        }
        $ffi = self::preloaded();
        $fromScope = $ffi !== null;
        if ($fromScope) {
            $libraryPath = 'the library preloaded as FFI scope ' . self::FFI_SCOPE;
        } else {
            $root = dirname(__DIR__, 2);
            $headerPath ??= self::env('B2DEST_FFI_HEADER') ?? self::defaultHeader($root);
            $libraryPath ??= self::env('B2DEST_LIB');
            if ($libraryPath === null) {
                $built = $root . '/target/release/libb2dest.so';
                $libraryPath = is_file($built) ? $built : 'libb2dest.so.0';
            }
            $header = @file_get_contents($headerPath);
            if ($header === false) {
                throw self::unavailable("cannot read the FFI header $headerPath; set B2DEST_FFI_HEADER");
            }
        }
        try {
            $ffi ??= FFI::cdef($header, $libraryPath);
            // Assigned through a pointer, the closure becomes a C function pointer once.
            $progress = $ffi->new('dest_progress_fn');
            FFI::addr($progress)[0] = static fn ($done, $total, $userData): int => self::onProgress((int) $done, (int) $total);
            $log = $ffi->new('dest_log_fn');
            FFI::addr($log)[0] = static function ($level, $message, $userData): void {
                self::onLog((int) $level, $message);
            };
        } catch (\Throwable $e) {
            throw self::unavailable("cannot load $libraryPath: " . $e->getMessage()
                . ' (under ffi.enable=preload, as php-fpm runs, only preloaded code may use FFI: preload the library and this file as the top of preload.php beside it says; B2DEST_LIB names the library)');
        }
        self::$ffi = $ffi;
        self::$fromScope = $fromScope;
        self::$progressTrampoline = $progress;
        self::$logTrampoline = $log;
    }

    /** Whether the library is the one preloaded under FFI_SCOPE (else FFI::cdef()). */
    public static function loadedFromScope(): bool
    {
        self::load();
        return self::$fromScope;
    }

    /** The FFI scope preload.php declares (FFI_SCOPE in the header it loads). */
    public const FFI_SCOPE = 'B2DEST';

    /** The library preload.php loaded at server start, or null when there is none. */
    private static function preloaded(): ?FFI
    {
        try {
            return FFI::scope(self::FFI_SCOPE);
        } catch (\FFI\Exception $e) {
            return null; // no preloading, or it did not load the library
        }
    }

    /** This repository's header, else the one installed with this file (PREFIX/share/b2dest/php). */
    private static function defaultHeader(string $root): string
    {
        $inTree = $root . '/include/b2dest_ffi.h';
        $installed = dirname(__DIR__, 3) . '/include/b2dest_ffi.h';
        return is_file($inTree) || !is_file($installed) ? $inTree : $installed;
    }

    /**
     * Sets (or, with null, removes) the receiver of the library's log lines for every
     * call of this process: `function (int $level, string $message): void`, called with
     * lines at $maxLevel and more severe (LOG_ERROR 1 .. LOG_DEBUG 4). A log callable
     * given to upload() or download() takes its place for that call.
     */
    public static function setLogger(?callable $log, int $maxLevel = self::LOG_INFO): void
    {
        self::load();
        self::$logger = $log;
        self::$loggerLevel = $maxLevel;
        self::installLog($log === null ? 0 : $maxLevel);
    }

    /** The library's version, e.g. "0.1.0". */
    public static function version(): string
    {
        self::load();
        // FFI returns a `const char *` result as a PHP string (a copy); nothing to free.
        return (string) self::$ffi->dest_version();
    }

    /**
     * Checks the key, its capabilities, the bucket and the backup directory, and writes,
     * reads back and deletes a probe file.
     *
     * @return array<string, mixed> "checks" => [["name", "ok", "message"], ...], "warnings"
     */
    public function validate(): array
    {
        return $this->call('validate', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_validate($config, $out));
    }

    /**
     * Uploads a file or a directory tree to $remote inside the backup directory.
     *
     * @param (callable(int, int): bool)|null $progress called with (bytes done, bytes in
     *     all) on this thread, at the start, up to ten times a second and at the end;
     *     return false to cancel (then ERR_CANCELLED, and nothing is left on B2)
     * @param (callable(int, string): void)|null $log receives this call's log lines at
     *     $logLevel and more severe, instead of setLogger()'s callable
     * @return array<string, mixed> "remote_path", "size", "sha1", "file_id" (a directory: "files")
     * @throws B2DestException, or whatever a callable threw (after the call has ended)
     */
    public function upload(
        string $local,
        string $remote,
        ?callable $progress = null,
        ?callable $log = null,
        int $logLevel = self::LOG_INFO
    ): array {
        self::checkPaths($local, $remote);
        return $this->call(
            'upload',
            static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_upload($config, $local, $remote, $callback, null, $out),
            $progress,
            $log,
            $logLevel
        );
    }

    /**
     * Restores $remote (a file or a directory tree) to $local; a file appears only once its
     * SHA1 matched.
     *
     * @param (callable(int, int): bool)|null $progress as for upload(); a cancelled
     *     download leaves nothing at $local
     * @param (callable(int, string): void)|null $log as for upload()
     * @return array<string, mixed> "size", "sha1", "verified" (a directory: "files")
     * @throws B2DestException, or whatever a callable threw (after the call has ended)
     */
    public function download(
        string $remote,
        string $local,
        ?callable $progress = null,
        ?callable $log = null,
        int $logLevel = self::LOG_INFO
    ): array {
        self::checkPaths($local, $remote);
        return $this->call(
            'download',
            static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_download($config, $remote, $local, $callback, null, $out),
            $progress,
            $log,
            $logLevel
        );
    }

    /**
     * One call of the library, with this call's callables in place of the running ones
     * (restored after, so a callable may itself use B2Dest). $invoke gets the
     * configuration, the progress callback (or null) and where the response goes, and
     * returns the status.
     *
     * @param callable(FFI\CData, ?FFI\CData, FFI\CData): int $invoke
     * @return array<string, mixed>
     */
    private function call(string $operation, callable $invoke, ?callable $progress = null, ?callable $log = null, int $logLevel = self::LOG_INFO): array
    {
        $savedProgress = self::$activeProgress;
        $savedLog = self::$activeLog;
        $savedPending = self::$pending;
        $savedLevel = self::$installedLevel;
        self::$activeProgress = $progress;
        self::$activeLog = $log ?? self::$logger;
        self::$pending = null;
        if ($log !== null) {
            self::installLog($logLevel);
        }
        // The progress callback also carries the cancel when a log callable threw.
        $callback = $progress !== null || self::$activeLog !== null ? self::$progressTrampoline : null;
        // The configuration and the response slot go to the library as untyped pointers:
        // a callable's exception is made while the library is on the stack, and its trace
        // keeps these arguments. A void* shows an address, never the key, and rendering it
        // later (print_r, var_dump of the trace) reads no memory freed since.
        $json = $this->config();
        $length = strlen($json);
        // Through the instance: under ffi.enable=preload the static FFI::new() and FFI::cast()
        // are refused outside preloading, the methods of a loaded scope are not.
        $copy = self::$ffi->new('char[' . ($length + 1) . ']');
        FFI::memcpy($copy, $json, $length);
        unset($json);
        $out = self::$ffi->new('char*');
        try {
            $status = $invoke(self::$ffi->cast('void*', FFI::addr($copy)), $callback, self::$ffi->cast('void*', FFI::addr($out)));
            $thrown = self::$pending;
        } finally {
            FFI::memset($copy, 0, $length);
            self::$activeProgress = $savedProgress;
            self::$activeLog = $savedLog;
            self::$pending = $savedPending;
            if ($log !== null) {
                self::installLog($savedLevel);
            }
        }
        if ($thrown !== null) {
            self::freeResponse($out);
            throw $thrown;
        }
        return $this->finish($operation, $status, $out);
    }

    /** Runs in the library's callback: never lets an exception reach the C frames. */
    private static function onProgress(int $done, int $total): int
    {
        if (self::$pending !== null) {
            return 1;
        }
        $progress = self::$activeProgress;
        if ($progress === null) {
            return 0;
        }
        try {
            return $progress($done, $total) === false ? 1 : 0;
        } catch (\Throwable $e) {
            self::$pending = $e;
            return 1;
        }
    }

    /** @param FFI\CData|string|null $message */
    private static function onLog(int $level, $message): void
    {
        $log = self::$activeLog;
        if ($log === null || self::$pending !== null) {
            return;
        }
        try {
            $text = $message instanceof FFI\CData ? FFI::string($message) : (string) $message;
            $log($level, $text);
        } catch (\Throwable $e) {
            // The next progress callback cancels the operation.
            self::$pending = $e;
        }
    }

    /** Points the library's process-wide log callback at the trampoline, or removes it (0). */
    private static function installLog(int $level): void
    {
        if ($level === self::$installedLevel) {
            return;
        }
        self::$ffi->dest_set_log_callback($level > 0 ? self::$logTrampoline : null, max($level, 0), null);
        self::$installedLevel = $level;
    }

    /**
     * Lists the current files under $remote ('' for the whole backup directory).
     *
     * @return array<string, mixed> "count", "entries" => [["path", "size", "sha1", "modified_ms", "file_id"], ...]
     */
    public function list(string $remote = ''): array
    {
        self::checkPaths($remote);
        return $this->call('list', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_list($config, $remote, $out));
    }

    /**
     * The space the backup directory uses on B2.
     *
     * @return array<string, mixed> "used_bytes", "files", "versions", "limit_reached", and with
     *     quota_bytes set "total_bytes", "free_bytes", "used_percent"
     */
    public function usage(): array
    {
        return $this->call('usage', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_usage($config, $out));
    }

    /**
     * Deletes every version of $remote and of everything under it. Versions B2 Object Lock
     * holds stay: the exception then has code ERR_LOCKED and its response says
     * "locked_versions", "locked_bytes" and "earliest_unlock_ms" (try again after that).
     *
     * @return array<string, mixed> "deleted_versions", "bytes_freed"
     */
    public function delete(string $remote): array
    {
        self::checkPaths($remote);
        return $this->call('delete', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_delete($config, $remote, $out));
    }

    /**
     * Extends the Object Lock retention of every stored version under $remote ('' for
     * the whole backup directory) to now + object_lock.retention_days; never shortens.
     *
     * @return array<string, mixed> "extended_versions", "unchanged_versions", "retain_until_ms"
     */
    public function protect(string $remote = ''): array
    {
        if ($remote !== '') {
            self::checkPaths($remote);
        }
        return $this->call('protect', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_protect($config, $remote, $out));
    }

    /** var_dump() and print_r() show the configuration without the key. */
    public function __debugInfo(): array
    {
        $config = json_decode(self::$secrets[$this]['json'] ?? 'null', true);
        if (is_array($config) && array_key_exists('application_key', $config)) {
            $config['application_key'] = '[redacted]';
        }
        return ['config' => $config];
    }

    /** Not clonable: a clone would have no configuration (it lives outside the object). */
    private function __clone()
    {
    }

    /** @return never */
    public function __serialize(): array
    {
        throw new \LogicException('a B2Dest holds an application key and cannot be serialized');
    }

    /**
     * Copies the response out of C memory, always frees it, and turns a failure into an
     * exception. Receives only the status and the response pointer, so the configuration is
     * in no trace.
     *
     * @return array<string, mixed>
     */
    private function finish(string $operation, int $status, FFI\CData $out): array
    {
        try {
            $text = FFI::isNull($out) ? null : FFI::string($out);
        } finally {
            self::freeResponse($out);
        }
        $response = $text === null ? null : json_decode($text, true);
        if (!is_array($response)) {
            throw new B2DestException(
                $operation,
                $status === self::OK ? self::ERR_INTERNAL : $status,
                'internal',
                'the library returned no readable response (status ' . $status . ')'
            );
        }
        if ($status === self::OK) {
            return $response;
        }
        $error = is_array($response['error'] ?? null) ? $response['error'] : [];
        $message = is_string($error['message'] ?? null) ? $error['message'] : 'no message';
        $key = self::$secrets[$this]['key'] ?? '';
        if (strlen($key) >= 4 && str_contains($message, $key)) {
            // Belt and braces: the library never puts the key in a message.
            $message = str_replace($key, '[redacted]', $message);
            $response['error']['message'] = $message;
        }
        throw new B2DestException(
            $operation,
            $status,
            is_string($error['code'] ?? null) ? $error['code'] : (self::CODE_NAMES[$status] ?? 'unknown'),
            $message,
            ($error['retryable'] ?? false) === true,
            $response
        );
    }

    private static function freeResponse(FFI\CData $out): void
    {
        self::$ffi->dest_free($out);
    }

    /** The configuration JSON; a string no function receives as an argument. */
    private function config(): string
    {
        $secret = self::$secrets[$this] ?? null;
        if ($secret === null) {
            // Only an object made without its constructor (reflection, unserialize) gets here.
            throw new B2DestException('call', self::ERR_CONFIG, 'config', 'this B2Dest was not constructed with a configuration');
        }
        return $secret['json'];
    }

    /** C strings end at a NUL byte: refuse paths that would be cut short. */
    private static function checkPaths(string ...$paths): void
    {
        foreach ($paths as $path) {
            if (str_contains($path, "\0")) {
                throw new B2DestException(
                    'call',
                    self::ERR_INVALID_ARGUMENT,
                    'invalid_argument',
                    'a path contains a NUL byte'
                );
            }
        }
    }

    private static function unavailable(string $message): B2DestException
    {
        return new B2DestException('load', self::UNAVAILABLE, 'unavailable', $message);
    }

    private static function env(string $name): ?string
    {
        $value = getenv($name);
        return is_string($value) && $value !== '' ? $value : null;
    }

    // ---- Recovery (README: "Recovering after a compromise"); $options as options_json.

    /** Every version under $remote; ['as_of_ms' => T] marks "current_at". @return array<string, mixed> */
    public function versions(string $remote = '', array $options = []): array
    {
        $json = json_encode((object) $options, JSON_THROW_ON_ERROR);
        self::checkPaths($remote, $json);
        return $this->call('versions', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_list_versions($config, $remote, $json, $out));
    }

    /** Restores as of ['as_of_ms' => T] or one ['file_id' => ID]; progress and log as download(). @return array<string, mixed> */
    public function downloadAsOf(string $remote, string $local, array $options, ?callable $progress = null, ?callable $log = null, int $logLevel = self::LOG_INFO): array
    {
        $json = json_encode((object) $options, JSON_THROW_ON_ERROR);
        self::checkPaths($remote, $local, $json);
        return $this->call('download_as_of', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_download_as_of($config, $remote, $local, $json, $callback, null, $out), $progress, $log, $logLevel);
    }

    /** Makes current what was current at ['as_of_ms' => T, 'dry_run' => bool, 'remove_newer_names' => bool]. @return array<string, mixed> */
    public function rollback(string $remote, array $options): array
    {
        $json = json_encode((object) $options, JSON_THROW_ON_ERROR);
        self::checkPaths($remote, $json);
        return $this->call('rollback', static fn (FFI\CData $config, ?FFI\CData $callback, FFI\CData $out): int => self::$ffi->dest_rollback($config, $remote, $json, $out));
    }
}
