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
    /// A download whose bytes did not match B2's SHA1 twice, B2 reporting no damage: a
    /// later try may well succeed.
    #[error("{0}")]
    DamagedInTransit(String),
    #[error("internal error: {0}; please report this as a bug")]
    Internal(String),
    /// B2 Object Lock holds what was to be deleted (or changed).
    #[error("{0}")]
    Locked(String),
    /// B2 refused to read an SSE-C file: no customer key, or another one.
    #[error("{0}")]
    EncryptionKey(String),
    /// This machine refused the certificate of B2's server: not retryable, the message
    /// says what to fix.
    #[error("{0}")]
    Tls(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A caught panic, `where` it was caught, with its message when it has one (a panic's
    /// payload is a `&str` or a `String` unless it was raised with another value).
    pub fn from_panic(place: &str, payload: &(dyn std::any::Any + Send)) -> Error {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        Error::Internal(match message {
            Some(m) => format!("a panic was caught {place}: {m}"),
            None => format!("a panic was caught {place}"),
        })
    }

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
            Error::Tls(_) => DestStatus::DestErrTls,
            Error::Remote { .. } => DestStatus::DestErrRemote,
            Error::Integrity(_) => DestStatus::DestErrIntegrity,
            Error::Cancelled | Error::CancelledPartway(_) => DestStatus::DestErrCancelled,
            Error::DamagedInTransit(_) => DestStatus::DestErrIntegrity,
            Error::Internal(_) => DestStatus::DestErrInternal,
            Error::Locked(_) => DestStatus::DestErrLocked,
            Error::EncryptionKey(_) => DestStatus::DestErrEncryptionKey,
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
            Error::Locked(m) => Error::Locked(add(m)),
            Error::EncryptionKey(m) => Error::EncryptionKey(add(m)),
            Error::Tls(m) => Error::Tls(add(m)),
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
}
