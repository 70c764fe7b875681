//! Object Lock as the B2 client knows it: the destination's lock policy (part of
//! `B2Settings`), a version's retention as it is sent (upload headers, `fileRetention`)
//! and read back (wrapped in `isClientAuthorizedToRead`), and a bucket's lock settings.

use serde::{Deserialize, Serialize};

use super::lenient;

/// The two retention modes: governance may be shortened or lifted by a key with
/// `bypassGovernance`; compliance by nobody. `Unknown` is a mode B2 reported that this
/// library does not know (its text is kept in `RetentionValue`): it is never sent, and a
/// version under it counts as held and not bypassable, the safe side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    Governance,
    Compliance,
    Unknown,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "governance",
            RetentionMode::Compliance => "compliance",
            RetentionMode::Unknown => "unknown",
        }
    }

    fn read(text: &str) -> RetentionMode {
        match text.to_ascii_lowercase().as_str() {
            "governance" => RetentionMode::Governance,
            "compliance" => RetentionMode::Compliance,
            _ => RetentionMode::Unknown,
        }
    }

    /// Compliance is the stronger of the two; a known mode is preferred to an unknown one,
    /// which cannot be sent.
    pub fn strongest(self, other: RetentionMode) -> RetentionMode {
        use RetentionMode::*;
        match (self, other) {
            (Compliance, _) | (_, Compliance) => Compliance,
            (Unknown, Unknown) => Unknown,
            _ => Governance,
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

    /// Whether B2 keeps a lock at least until `wanted`'s date: `covers`, or a mode this
    /// library does not know (which it never bypasses) until that date. For checks that a
    /// lock was *kept* (the validation probe, a lost answer's version), not for deciding
    /// what a delete may remove.
    pub fn kept_until(&self, wanted: &Retention) -> bool {
        self.covers(wanted)
            || (self.mode == RetentionMode::Unknown
                && self.retain_until_timestamp >= wanted.retain_until_timestamp)
    }

    /// Whether this retention holds at least as long and as strongly as `wanted`.
    pub fn covers(&self, wanted: &Retention) -> bool {
        // A mode this library does not know promises nothing it can check.
        let strong_enough = match self.mode {
            RetentionMode::Compliance => true,
            RetentionMode::Governance => wanted.mode == RetentionMode::Governance,
            RetentionMode::Unknown => false,
        };
        self.retain_until_timestamp >= wanted.retain_until_timestamp && strong_enough
    }
}

/// B2's wrapper of settings it shows only to keys allowed to read them (Object Lock,
/// default encryption).
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "T: serde::de::DeserializeOwned"))]
pub struct Readable<T> {
    /// None: B2 sent null or nothing.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub is_client_authorized_to_read: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub value: Option<T>,
}

impl<T> Readable<T> {
    /// The value, or None when the key may not read it. A flag that is null or absent is
    /// read from the value: a value B2 sent is readable, and without one nothing is known.
    pub fn readable(&self) -> Option<&Option<T>> {
        let authorized = self
            .is_client_authorized_to_read
            .unwrap_or(self.value.is_some());
        authorized.then_some(&self.value)
    }

    /// B2 said the key may not read it.
    pub fn refused(&self) -> bool {
        self.is_client_authorized_to_read == Some(false)
    }
}

/// `fileRetention.value` of a file version: `{"mode": null}` when none. A mode this
/// library does not know is kept as B2 wrote it.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetentionValue {
    #[serde(default, deserialize_with = "lenient::opt")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub retain_until_timestamp: Option<u64>,
}

impl RetentionValue {
    /// The retention it describes; None for none (no mode, or no end).
    pub fn retention(&self) -> Option<Retention> {
        Some(Retention {
            mode: RetentionMode::read(self.mode.as_deref()?),
            retain_until_timestamp: self.retain_until_timestamp?,
        })
    }
}

/// `fileLockConfiguration.value` of a bucket.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BucketLockValue {
    /// None when B2 sent null (b2sdk's simulator does for a bucket made without it).
    #[serde(default, deserialize_with = "lenient::opt")]
    pub is_file_lock_enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub default_retention: Option<DefaultRetention>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DefaultRetention {
    #[serde(default, deserialize_with = "mode")]
    pub mode: Option<RetentionMode>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub period: Option<Period>,
}

fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RetentionMode>, D::Error> {
    let text: Option<String> = lenient::opt(d)?;
    Ok(text.as_deref().map(RetentionMode::read))
}

#[derive(Deserialize, Debug, Clone)]
pub struct Period {
    #[serde(default, deserialize_with = "lenient::opt")]
    pub duration: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub unit: Option<String>,
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
            r.readable()
                .unwrap()
                .as_ref()
                .unwrap()
                .retention()
                .unwrap()
                .mode,
            RetentionMode::Governance
        );
        let hidden: Readable<RetentionValue> =
            serde_json::from_str(r#"{"isClientAuthorizedToRead": false, "value": null}"#).unwrap();
        assert!(hidden.readable().is_none());
    }
}
