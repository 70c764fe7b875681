//! What the store holds: buckets, file versions, parts, their ids, and what Object Lock
//! holds on them (a bucket's lock settings, each version's retention and legal hold).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::sse::Sse;

/// B2's limit for a single upload and for one part: 5 GB.
pub const MAX_UPLOAD_BYTES: u64 = 5_000_000_000;
/// B2's limit for a large file: 10 TB.
pub const MAX_LARGE_FILE_BYTES: u64 = 10_000_000_000_000;
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Upload,
    Hide,
    Start,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::Hide => "hide",
            Action::Start => "start",
        }
    }
}

/// A stretch of content: the whole of one blob file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Segment {
    pub blob: String,
    pub len: u64,
}

/// One file version: an upload, a hide marker, or an unfinished large file ("start").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    /// Global, increasing: orders versions (newest = highest) and makes the file id.
    pub seq: u64,
    pub bucket_id: String,
    pub name: String,
    pub action: Action,
    pub size: u64,
    /// `None` for large files, hide markers and unfinished files ("none" on the wire).
    pub sha1: Option<String>,
    pub content_type: String,
    pub info: BTreeMap<String, String>,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Segment>,
    /// Server-side encryption (for SSE-C only the key's MD5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<Sse>,
    /// Object Lock: retention and legal hold (see `locks.rs`).
    #[serde(default, skip_serializing_if = "VersionLock::is_none")]
    pub lock: VersionLock,
}

impl Version {
    pub fn file_id(&self) -> String {
        file_id(&self.bucket_id, self.seq)
    }

    pub fn sha1_or_none(&self) -> &str {
        self.sha1.as_deref().unwrap_or("none")
    }
}

pub fn file_id(bucket_id: &str, seq: u64) -> String {
    format!("4_z{bucket_id}_f{seq:016x}")
}

/// The sequence number inside a file id made by [`file_id`].
pub fn parse_file_id(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("4_z")?;
    let (bucket, seq_hex) = rest.rsplit_once("_f")?;
    if seq_hex.len() != 16 || bucket.is_empty() {
        return None;
    }
    u64::from_str_radix(seq_hex, 16).ok()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    pub number: u32,
    pub blob: String,
    pub size: u64,
    pub sha1: String,
    pub ts: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BucketMeta {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub info: Value,
    pub lifecycle_rules: Value,
    pub cors_rules: Value,
    pub revision: u64,
    /// `defaultServerSideEncryption`: SSE-B2 or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sse: Option<Sse>,
    /// Object Lock settings of the bucket (see `locks.rs`).
    #[serde(default, skip_serializing_if = "BucketLock::is_off")]
    pub lock: BucketLock,
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap())
        .collect()
}

/// The version a download by name or b2_list_file_names shows, if any.
pub fn visible(versions: &[Version]) -> Option<&Version> {
    versions
        .iter()
        .find(|v| v.action != Action::Start)
        .filter(|v| v.action == Action::Upload)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_round_trip() {
        let id = file_id("abc123", 42);
        assert_eq!(parse_file_id(&id), Some(42));
        assert_eq!(parse_file_id("garbage"), None);
    }
}

// -- Object Lock ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<LockMode> {
        match s {
            "governance" => Some(LockMode::Governance),
            "compliance" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A version's retention: no delete, no change before `retain_until` (ms since epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    pub retain_until: u64,
}

/// What Object Lock holds on one version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// None: never set (B2 shows `null`); `Some(false)`: set to "off".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
}

impl VersionLock {
    pub fn is_none(&self) -> bool {
        self.retention.is_none() && self.legal_hold.is_none()
    }

    /// The retention that still binds at `now`.
    pub fn active_retention(&self, now: u64) -> Option<Retention> {
        self.retention.filter(|r| r.retain_until > now)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodUnit {
    Days,
    Years,
}

/// A bucket's default retention: given to every upload that names none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub duration: u64,
    pub unit: PeriodUnit,
}

impl DefaultRetention {
    pub fn millis(&self) -> u64 {
        let day = 86_400_000u64;
        match self.unit {
            PeriodUnit::Days => self.duration.saturating_mul(day),
            PeriodUnit::Years => self.duration.saturating_mul(365 * day),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLock {
    /// Once on, never off again.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

impl BucketLock {
    pub fn is_off(&self) -> bool {
        !self.enabled && self.default_retention.is_none()
    }
}
