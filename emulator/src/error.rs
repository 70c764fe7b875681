//! B2's error answer: `{"status":N,"code":"...","message":"..."}`.

#[derive(Debug, Clone)]
pub struct B2Error {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Seconds, sent as `Retry-After` when set.
    pub retry_after: Option<u64>,
}

impl B2Error {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        B2Error {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// A bucket id B2 does not know (deleted, or never made): B2's own code for it, which
    /// b2sdk reads as BucketIdNotFound.
    pub fn bad_bucket_id(id: &str) -> Self {
        Self::new(400, "bad_bucket_id", format!("Invalid bucketId: {id}"))
    }

    /// The key lacks a capability, or the bucket / name is outside its restriction.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    pub fn bad_auth_token(message: impl Into<String>) -> Self {
        Self::new(401, "bad_auth_token", message)
    }

    pub fn expired_auth_token() -> Self {
        Self::new(401, "expired_auth_token", "Authorization token has expired")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", message)
    }
}

impl From<std::io::Error> for B2Error {
    fn from(e: std::io::Error) -> Self {
        B2Error::internal(format!("emulator storage error: {e}"))
    }
}

pub type B2Result<T> = Result<T, B2Error>;
