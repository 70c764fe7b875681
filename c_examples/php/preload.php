<?php

/*
 * Loads libb2dest for PHP under preloading, as php-fpm needs it: with PHP's default
 * ffi.enable=preload, FFI::cdef() is refused while a request runs, and only a library
 * loaded at server start under a scope may be used (FFI::scope()). B2Dest.php uses that
 * scope, "B2DEST", whenever it exists. Two ways to load it, both with this file:
 *
 * 1. A server started as root (php-fpm's master usually is): PHP runs an opcache.preload
 *    script in a child as opcache.preload_user, where FFI::load() is refused, so PHP
 *    itself loads the scoped header, named by ffi.preload. Write it once (the packages
 *    ship it, for libb2dest.so.0, as /usr/share/b2dest/php/b2dest-ffi-preload.h):
 *
 *      php /usr/share/b2dest/php/preload.php --header [LIBRARY] > /etc/php/b2dest-ffi.h
 *
 *      ; php.ini of php-fpm (or a conf.d file), then restart it
 *      ffi.preload=/etc/php/b2dest-ffi.h
 *      opcache.enable=1
 *      opcache.preload=/usr/share/b2dest/php/preload.php
 *      opcache.preload_user=www-data
 *
 * 2. A server not started as root: preloading runs in the server's own process, where
 *    FFI::load() is allowed, and the opcache lines alone do it (no ffi.preload).
 *
 * When the scope exists already (ffi.preload) it is left as it is; when FFI::load() is
 * refused this warns and names way 1.
 *
 * The library: LIBRARY, else $B2DEST_LIB, else this repository's
 * target/release/libb2dest.so, else "libb2dest.so.0" from the system's library path (the
 * packages). The header: $B2DEST_FFI_HEADER, else this repository's
 * include/b2dest_ffi.h, else PREFIX/include/b2dest_ffi.h of the prefix this file is
 * installed in (PREFIX/share/b2dest/php). FFI::load() reads the
 * scope and the library from #define lines at the top of a header; the installed header
 * is the plain declarations (it also serves FFI::cdef()), so those lines are prepended
 * (into a temporary file for FFI::load(), removed after it).
 *
 * It also preloads B2Dest.php (beside it): under ffi.enable=preload PHP lets only
 * preloaded code call FFI's API (FFI::scope() included), so the wrapper must be preloaded
 * too. The application still requires B2Dest.php as before; PHP skips a preloaded file's
 * classes, so nothing is declared twice.
 */

declare(strict_types=1);

(static function (): void {
    $cli = PHP_SAPI === 'cli' && isset($GLOBALS['argv'][1]) && $GLOBALS['argv'][1] === '--header';
    $warn = static function (string $message) use ($cli): void {
        // A warning, not an exception: a failed preload script stops the whole server.
        if ($cli) {
            fwrite(STDERR, "preload.php: $message\n");
            exit(1);
        }
        trigger_error("b2dest preload: $message", E_USER_WARNING);
    };
    if (!$cli) {
        try {
            FFI::scope('B2DEST');
            return; // ffi.preload loaded it already
        } catch (\Throwable $e) {
            // not loaded yet
        }
    }
    $env = static function (string $name): ?string {
        $value = getenv($name);
        return is_string($value) && $value !== '' ? $value : null;
    };
    $root = dirname(__DIR__, 2);
    $library = $cli && isset($GLOBALS['argv'][2]) ? $GLOBALS['argv'][2] : $env('B2DEST_LIB');
    if ($library === null) {
        $built = $root . '/target/release/libb2dest.so';
        $library = is_file($built) ? $built : 'libb2dest.so.0';
    }
    $headerPath = $env('B2DEST_FFI_HEADER');
    if ($headerPath === null) {
        // This repository's, else the one installed with this file (PREFIX/share/b2dest/php).
        $headerPath = $root . '/include/b2dest_ffi.h';
        if (!is_file($headerPath)) {
            $headerPath = dirname(__DIR__, 3) . '/include/b2dest_ffi.h';
        }
    }
    $header = @file_get_contents($headerPath);
    if ($header === false) {
        $warn("cannot read the FFI header $headerPath (set B2DEST_FFI_HEADER)");
        return;
    }
    if (strpbrk($library, "\"\\\n") !== false) {
        $warn('the library path holds a quote, a backslash or a newline');
        return;
    }
    $scoped = "#define FFI_SCOPE \"B2DEST\"\n#define FFI_LIB \"$library\"\n" . $header;
    if ($cli) {
        echo $scoped;
        return;
    }
    $file = tempnam(sys_get_temp_dir(), 'b2dest-ffi-');
    if ($file === false) {
        $warn('cannot create a temporary file for the scoped header');
        return;
    }
    try {
        file_put_contents($file, $scoped);
        if (FFI::load($file) === null) {
            $warn("FFI::load() of $library failed");
        }
    } catch (\Throwable $e) {
        $warn("cannot load $library: " . $e->getMessage()
            . ' (a server started as root preloads as opcache.preload_user: use ffi.preload, see the top of ' . __FILE__ . ')');
    } finally {
        @unlink($file);
    }
})();

if (PHP_SAPI !== 'cli' || !isset($argv[1]) || $argv[1] !== '--header') {
    require_once __DIR__ . '/B2Dest.php';
}
