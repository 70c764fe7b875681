//! The library's one error type, and the one place where errors become status codes.

use crate::status::DestStatus;

/// Every failure the library can report. The message says what happened and what to do;
/// it never contains the application key or a B2 token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Permission(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    LocalIo(String),
    #[error("{0}")]
    Network(String),
    #[error("{message}")]
    Remote { message: String, retryable: bool },
    #[error("{0}")]
    Integrity(String),
    #[error(
        "the operation was cancelled by the progress callback; the file under way was not kept"
    )]
    Cancelled,
    /// A cancel that came part-way through a directory: the message says what was kept.
    #[error("the operation was cancelled by the progress callback; {0}")]
    CancelledPartway(String),
    /// A download whose bytes did not match twice, with different results each time: the
    /// damage was on the way, so a later try may well succeed.
    #[error("{0}")]
    DamagedInTransit(String),
    #[error("internal error: {0}; please report this as a bug")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The one mapping from errors to ABI status codes.
    pub fn status(&self) -> DestStatus {
        match self {
            Error::InvalidArgument(_) => DestStatus::DestErrInvalidArgument,
            Error::Config(_) => DestStatus::DestErrConfig,
            Error::Auth(_) => DestStatus::DestErrAuth,
            Error::Permission(_) => DestStatus::DestErrPermission,
            Error::NotFound(_) => DestStatus::DestErrNotFound,
            Error::Limit(_) => DestStatus::DestErrLimit,
            Error::LocalIo(_) => DestStatus::DestErrLocalIo,
            Error::Network(_) => DestStatus::DestErrNetwork,
            Error::Remote { .. } => DestStatus::DestErrRemote,
            Error::Integrity(_) => DestStatus::DestErrIntegrity,
            Error::Cancelled | Error::CancelledPartway(_) => DestStatus::DestErrCancelled,
            Error::DamagedInTransit(_) => DestStatus::DestErrIntegrity,
            Error::Internal(_) => DestStatus::DestErrInternal,
        }
    }

    /// Whether the host may simply try the same call again later.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Network(_) | Error::DamagedInTransit(_) => true,
            Error::Remote { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The same error (same status, same retryability) with `note` added to its message:
    /// what a directory operation kept or left when it stopped part-way.
    pub fn with_note(self, note: &str) -> Error {
        let add = |m: String| format!("{m}; {note}");
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(add(m)),
            Error::Config(m) => Error::Config(add(m)),
            Error::Auth(m) => Error::Auth(add(m)),
            Error::Permission(m) => Error::Permission(add(m)),
            Error::NotFound(m) => Error::NotFound(add(m)),
            Error::Limit(m) => Error::Limit(add(m)),
            Error::LocalIo(m) => Error::LocalIo(add(m)),
            Error::Network(m) => Error::Network(add(m)),
            Error::Remote { message, retryable } => Error::Remote {
                message: add(message),
                retryable,
            },
            Error::Integrity(m) => Error::Integrity(add(m)),
            Error::DamagedInTransit(m) => Error::DamagedInTransit(add(m)),
            Error::Cancelled | Error::CancelledPartway(_) => {
                Error::CancelledPartway(note.to_string())
            }
            Error::Internal(m) => Error::Internal(add(m)),
        }
    }

    pub fn local_io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Error {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "check the file's permissions for the user the backup runs as"
            }
            std::io::ErrorKind::StorageFull => "free space on the local disk",
            _ => "check the local file system",
        };
        Error::LocalIo(format!("{what} {}: {err}; {hint}", path.display()))
    }

    /// Maps an error answer of B2 (after the retry rules gave up) to the library's error.
    pub fn from_b2(call: &str, status: u16, code: &str, message: &str) -> Error {
        let detail = format!("B2 answered {call} with {status} {code}: {message}");
        match (status, code) {
            // Seen only after fresh tokens were refused too: the key itself was accepted.
            (401, "expired_auth_token") => Error::Remote {
                message: format!(
                    "{detail}; the token kept expiring although a new one was obtained each time (the Account ID and Application Key were accepted): try again later"
                ),
                retryable: true,
            },
            (401, "bad_auth_token") | (401, "bad_request") => {
                Error::Auth(format!(
                    "{detail}; check the Account ID (keyID) and Application Key of this destination"
                ))
            }
            (401, _) => Error::Permission(format!(
                "{detail}; the application key lacks the capability for {call} or is restricted to another bucket or name prefix: create a key with listFiles, readFiles, writeFiles and deleteFiles on this bucket"
            )),
            (403, c) if c.contains("cap_exceeded") => Error::Limit(format!(
                "{detail}; the B2 account reached a storage, download or transaction cap: raise it under Caps & Alerts in the Backblaze web console, or free space"
            )),
            (403, _) => Error::Permission(format!("{detail}; the account or key may not do this")),
            (404, _) | (400, "file_not_present") | (400, "no_such_file") => {
                Error::NotFound(detail)
            }
            (400, _) if message.to_ascii_lowercase().contains("sha1") => Error::Integrity(format!(
                "{detail}; the data B2 received did not match its SHA1: the upload was refused and nothing was stored, try again"
            )),
            (408 | 429, _) | (500..=599, _) => Error::Remote {
                message: format!("{detail}; B2 kept failing after the retries, try again later"),
                retryable: true,
            },
            _ => Error::Remote {
                message: format!("{detail}; B2 refused the request"),
                retryable: false,
            },
        }
    }
}
