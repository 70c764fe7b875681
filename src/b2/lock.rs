//! Object Lock as the B2 client knows it: the destination's lock policy (part of
//! `B2Settings`), a version's retention as it is sent (upload headers, `fileRetention`)
//! and read back (wrapped in `isClientAuthorizedToRead`), and a bucket's lock settings.

use serde::{Deserialize, Serialize};

/// The two retention modes: governance may be shortened or lifted by a key with
/// `bypassGovernance`; compliance by nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    Governance,
    Compliance,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "governance",
            RetentionMode::Compliance => "compliance",
        }
    }

    /// Compliance is the stronger of the two.
    pub fn strongest(self, other: RetentionMode) -> RetentionMode {
        if self == RetentionMode::Compliance || other == RetentionMode::Compliance {
            RetentionMode::Compliance
        } else {
            RetentionMode::Governance
        }
    }
}

/// What a destination with Object Lock writes and may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLockSettings {
    pub mode: RetentionMode,
    /// Every upload is locked for this many days from its start.
    pub retention_days: u32,
    /// May this destination delete (or shorten) governance-locked versions, when its key
    /// has `bypassGovernance`.
    pub bypass_governance: bool,
}

impl ObjectLockSettings {
    /// The retention of an upload that starts at `start_ms`.
    pub fn retention_from(&self, start_ms: u64) -> Retention {
        Retention {
            mode: self.mode,
            retain_until_timestamp: start_ms + u64::from(self.retention_days) * 86_400_000,
        }
    }
}

/// One version's retention, as `fileRetention` in JSON bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub mode: RetentionMode,
    /// Milliseconds since the epoch.
    pub retain_until_timestamp: u64,
}

impl Retention {
    /// The headers of `b2_upload_file` that carry it.
    pub fn headers(&self) -> [(String, String); 2] {
        [
            (
                "X-Bz-File-Retention-Mode".to_string(),
                self.mode.as_str().to_string(),
            ),
            (
                "X-Bz-File-Retention-Retain-Until-Timestamp".to_string(),
                self.retain_until_timestamp.to_string(),
            ),
        ]
    }

    /// Whether this retention holds at least as long and as strongly as `wanted`.
    pub fn covers(&self, wanted: &Retention) -> bool {
        self.retain_until_timestamp >= wanted.retain_until_timestamp
            && (self.mode == RetentionMode::Compliance || wanted.mode == RetentionMode::Governance)
    }
}

/// B2's wrapper of lock settings it shows only to keys allowed to read them.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Readable<T> {
    #[serde(default)]
    pub is_client_authorized_to_read: bool,
    #[serde(default = "Option::default")]
    pub value: Option<T>,
}

impl<T> Readable<T> {
    /// The value, or None when the key may not read it.
    pub fn readable(&self) -> Option<&Option<T>> {
        self.is_client_authorized_to_read.then_some(&self.value)
    }
}

/// `fileRetention.value` of a file version: `{"mode": null}` when none.
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct RetentionValue {
    #[serde(default)]
    pub mode: Option<RetentionMode>,
    #[serde(default)]
    pub retain_until_timestamp: Option<u64>,
}

/// `fileLockConfiguration.value` of a bucket.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BucketLockValue {
    #[serde(default)]
    pub is_file_lock_enabled: bool,
    #[serde(default)]
    pub default_retention: Option<DefaultRetention>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DefaultRetention {
    #[serde(default)]
    pub mode: Option<RetentionMode>,
    #[serde(default)]
    pub period: Option<Period>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Period {
    pub duration: u64,
    pub unit: String,
}

/// What the key may know of a bucket's Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketLock {
    /// The key lacks `readBucketRetentions` (or may not list buckets).
    Unknown,
    Off,
    /// Enabled, with the default retention new files get (mode, duration, unit).
    On(Option<(RetentionMode, u64, String)>),
}

/// A version's lock, as far as the key may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionLock {
    /// None: not readable (no `readFileRetentions`); Some(None): no retention.
    pub retention: Option<Option<Retention>>,
    /// None: not readable or never set.
    pub legal_hold: Option<bool>,
}

impl VersionLock {
    /// Whether the version is held at `now_ms` as far as the key can tell, and until when
    /// (None: a legal hold, which has no end).
    pub fn held(&self, now_ms: u64) -> Option<Option<u64>> {
        if self.legal_hold == Some(true) {
            return Some(None);
        }
        match self.retention {
            Some(Some(r)) if r.retain_until_timestamp > now_ms => {
                Some(Some(r.retain_until_timestamp))
            }
            _ => None,
        }
    }

    pub fn active_retention(&self, now_ms: u64) -> Option<Retention> {
        match self.retention {
            Some(Some(r)) if r.retain_until_timestamp > now_ms => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_covers_only_what_is_as_long_and_as_strong() {
        let gov = |t| Retention {
            mode: RetentionMode::Governance,
            retain_until_timestamp: t,
        };
        let comp = |t| Retention {
            mode: RetentionMode::Compliance,
            retain_until_timestamp: t,
        };
        assert!(comp(10).covers(&gov(10)));
        assert!(!gov(10).covers(&comp(10)));
        assert!(!comp(9).covers(&comp(10)));
        let settings = ObjectLockSettings {
            mode: RetentionMode::Compliance,
            retention_days: 2,
            bypass_governance: false,
        };
        assert_eq!(
            settings.retention_from(1000).retain_until_timestamp,
            1000 + 2 * 86_400_000
        );
    }

    #[test]
    fn wire_shapes_read_as_b2_writes_them() {
        let r: Readable<RetentionValue> = serde_json::from_str(
            r#"{"isClientAuthorizedToRead": true, "value": {"mode": "governance", "retainUntilTimestamp": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            r.readable().unwrap().unwrap().mode,
            Some(RetentionMode::Governance)
        );
        let hidden: Readable<RetentionValue> =
            serde_json::from_str(r#"{"isClientAuthorizedToRead": false, "value": null}"#).unwrap();
        assert!(hidden.readable().is_none());
    }
}
