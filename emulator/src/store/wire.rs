//! The JSON B2 uses for file versions and buckets (what clients read back).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{Action, BucketMeta, Version};
use super::model::{PeriodUnit, VersionLock};

impl Version {
    /// The JSON B2 uses for a file version in every call that returns one, as the caller's
    /// key may read it.
    pub fn to_json(&self, account_id: &str, readers: LockReaders) -> Value {
        serde_json::to_value(self.json(account_id, readers)).unwrap_or_default()
    }

    /// The same, as a borrowing serializable struct (listings serialize thousands).
    pub fn json<'a>(&'a self, account_id: &'a str, readers: LockReaders) -> FileJson<'a> {
        let shown = self.action != Action::Hide;
        FileJson {
            account_id,
            action: self.action.as_str(),
            bucket_id: &self.bucket_id,
            content_length: self.size,
            size: self.size,
            content_sha1: Some(self.sha1_or_none()),
            content_type: Some(&self.content_type),
            file_id: Some(self.file_id()),
            file_info: Some(&self.info),
            file_name: &self.name,
            upload_timestamp: self.ts,
            file_retention: shown.then(|| retention_json(&self.lock, readers.retention)),
            legal_hold: shown.then(|| legal_hold_json(&self.lock, readers.legal_hold)),
            server_side_encryption: shown.then(|| crate::sse::file_json(self.sse.as_ref())),
        }
    }
}

/// A file version (or a folder of a delimited listing) on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileJson<'a> {
    account_id: &'a str,
    action: &'static str,
    bucket_id: &'a str,
    content_length: u64,
    /// v1's name for contentLength (rclone reads it).
    size: u64,
    content_sha1: Option<&'a str>,
    content_type: Option<&'a str>,
    file_id: Option<String>,
    file_info: Option<&'a BTreeMap<String, String>>,
    file_name: &'a str,
    upload_timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_retention: Option<Readable<Option<RetentionValue>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legal_hold: Option<Readable<Option<&'static str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_side_encryption: Option<crate::sse::SseJson>,
}

impl<'a> FileJson<'a> {
    /// A folder entry of a listing with a delimiter.
    pub fn folder(account_id: &'a str, bucket_id: &'a str, name: &'a str) -> FileJson<'a> {
        FileJson {
            account_id,
            action: "folder",
            bucket_id,
            content_length: 0,
            size: 0,
            content_sha1: None,
            content_type: None,
            file_id: None,
            file_info: None,
            file_name: name,
            upload_timestamp: 0,
            file_retention: None,
            legal_hold: None,
            server_side_encryption: None,
        }
    }
}

/// `{"isClientAuthorizedToRead": true, "value": ...}`, B2's wrapper for lock settings.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Readable<T> {
    is_client_authorized_to_read: bool,
    value: T,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct RetentionValue {
    mode: Option<&'static str>,
    retain_until_timestamp: Option<u64>,
}

/// What a key may read of Object Lock: `readFileRetentions`, `readFileLegalHolds`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LockReaders {
    pub retention: bool,
    pub legal_hold: bool,
}

/// Without the capability: `{"isClientAuthorizedToRead": false, "value": null}`.
fn retention_json(lock: &VersionLock, may_read: bool) -> Readable<Option<RetentionValue>> {
    Readable {
        is_client_authorized_to_read: may_read,
        value: may_read.then(|| RetentionValue {
            mode: lock.retention.map(|r| r.mode.as_str()),
            retain_until_timestamp: lock.retention.map(|r| r.retain_until),
        }),
    }
}

fn legal_hold_json(lock: &VersionLock, may_read: bool) -> Readable<Option<&'static str>> {
    Readable {
        is_client_authorized_to_read: may_read,
        value: match (may_read, lock.legal_hold) {
            (true, Some(true)) => Some("on"),
            (true, Some(false)) => Some("off"),
            _ => None,
        },
    }
}

impl BucketMeta {
    /// `can_read_lock`: the key has `readBucketRetentions`.
    pub fn to_json(&self, account_id: &str, can_read_lock: bool) -> Value {
        let lock = if can_read_lock {
            json!({"isClientAuthorizedToRead": true, "value": {
                "defaultRetention": match self.lock.default_retention {
                    Some(d) => json!({"mode": d.mode.as_str(), "period": {
                        "duration": d.duration,
                        "unit": match d.unit { PeriodUnit::Days => "days", PeriodUnit::Years => "years" },
                    }}),
                    None => json!({"mode": null, "period": null}),
                },
                "isFileLockEnabled": self.lock.enabled,
            }})
        } else {
            json!({"isClientAuthorizedToRead": false, "value": null})
        };
        json!({
            "accountId": account_id,
            "bucketId": self.id,
            "bucketName": self.name,
            "bucketType": self.kind,
            "bucketInfo": self.info,
            "corsRules": self.cors_rules,
            "lifecycleRules": self.lifecycle_rules,
            "revision": self.revision,
            "options": ["s3"],
            "defaultServerSideEncryption": crate::sse::bucket_json(self.default_sse.as_ref(), true),
            "fileLockConfiguration": lock,
            "replicationConfiguration": {"isClientAuthorizedToRead": true, "value": null},
        })
    }
}

/// A stored file version as tests see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredVersion {
    pub file_name: String,
    pub file_id: String,
    /// "upload", "hide" or "start" (an unfinished large file).
    pub action: String,
    pub size: u64,
    /// "none" for large files, hide markers and unfinished files.
    pub sha1: String,
    pub file_info: BTreeMap<String, String>,
    pub upload_timestamp: u64,
    /// Server-side encryption: for SSE-C, the customer key's MD5 (all B2 keeps of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<super::model::Sse>,
    /// Object Lock: "governance" or "compliance", and until when (ms); legal hold.
    #[serde(default)]
    pub retention_mode: Option<String>,
    #[serde(default)]
    pub retain_until: Option<u64>,
    #[serde(default)]
    pub legal_hold: Option<bool>,
}
