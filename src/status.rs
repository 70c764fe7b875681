//! The numbered status codes every exported function returns.

/// Status codes returned by every `dest_*` function.
///
/// The numbers are part of the ABI and never change; a retired code is never reused.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestStatus {
    /// The operation succeeded.
    DestOk = 0,
    /// A pointer argument was NULL where a value is needed, a string was not UTF-8, or a
    /// remote path broke the path rules.
    DestErrInvalidArgument = 1,
    /// The configuration JSON did not parse, or a field is missing, of the wrong type or out
    /// of range. The message names the field.
    DestErrConfig = 2,
    /// B2 rejected the Account ID / Application Key.
    DestErrAuth = 3,
    /// The key lacks a capability, is restricted to another bucket or prefix, or the
    /// destination is read-only.
    DestErrPermission = 4,
    /// The bucket, the remote file or the local file does not exist.
    DestErrNotFound = 5,
    /// The free disk space limit is reached, or B2's storage cap was hit.
    DestErrLimit = 6,
    /// Reading or writing a local file failed, or a local file changed while it was read.
    DestErrLocalIo = 7,
    /// B2 could not be reached (connection refused, DNS, a TLS connection cut, timeout).
    /// A certificate this machine refused is `DEST_ERR_TLS` instead.
    DestErrNetwork = 8,
    /// B2 kept failing after the retries, or refused the request.
    DestErrRemote = 9,
    /// A checksum did not match.
    DestErrIntegrity = 10,
    /// The progress callback asked to stop.
    DestErrCancelled = 11,
    /// A bug in the library (for example a caught panic). Please report it.
    DestErrInternal = 12,
    /// Not a failure of the destination: some versions are under B2 Object Lock (a
    /// retention not yet over, or a legal hold) and B2 refuses to delete them.
    /// `dest_delete` deleted everything else it was asked to and reports what stays in
    /// `locked_versions`, `locked_bytes` and `earliest_unlock_ms` (null when a legal hold
    /// or an unreadable retention has no known end). A retention job should keep its record
    /// of the backup and try again after `earliest_unlock_ms`, not at once:
    /// `"retryable"` is false because trying again before then changes nothing.
    DestErrLocked = 13,
    /// The file is encrypted with SSE-C and the destination has no customer key, or not the
    /// one the file was uploaded with: B2 refused to read it. Nothing was written locally.
    DestErrEncryptionKey = 14,
    /// This machine refused the server's TLS certificate (unknown issuer, expired or not
    /// yet valid, issued for another name). Retrying changes nothing (`"retryable"` is
    /// false): the message names the host, the reason and the fix (a TLS-inspecting proxy:
    /// its CA in `ca_file` or `SSL_CERT_FILE`; `ca-certificates` out of date; the clock;
    /// `api_url`). Nothing was sent to B2.
    DestErrTls = 15,
}

impl DestStatus {
    /// The short name used as `error.code` in responses.
    pub fn code_name(self) -> &'static str {
        match self {
            DestStatus::DestOk => "ok",
            DestStatus::DestErrInvalidArgument => "invalid_argument",
            DestStatus::DestErrConfig => "config",
            DestStatus::DestErrAuth => "auth",
            DestStatus::DestErrPermission => "permission",
            DestStatus::DestErrNotFound => "not_found",
            DestStatus::DestErrLimit => "limit",
            DestStatus::DestErrLocalIo => "local_io",
            DestStatus::DestErrNetwork => "network",
            DestStatus::DestErrRemote => "remote",
            DestStatus::DestErrIntegrity => "integrity",
            DestStatus::DestErrCancelled => "cancelled",
            DestStatus::DestErrInternal => "internal",
            DestStatus::DestErrLocked => "locked",
            DestStatus::DestErrEncryptionKey => "encryption_key",
            DestStatus::DestErrTls => "tls",
        }
    }
}
