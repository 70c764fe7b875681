//! What each destination operation does, in terms of B2 calls. Nothing here knows of C.

pub mod delete;
pub mod download;
pub mod list;
pub mod object_lock;
pub mod protect;
pub mod recovery;
pub mod restore_as_of;
pub mod rollback;
pub mod upload;
pub mod usage;
pub mod validate;
pub mod versions;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::b2::object_lock::ObjectLockSettings;
use crate::b2::session::{Authorization, BucketInfo};
use crate::b2::B2Client;
use crate::b2::MAX_PART_SIZE;
use crate::config::DestinationConfig;
use crate::error::{Error, Result};
use crate::operation::Operation;
use crate::runtime::process_state;

/// What an operation reports: its fields, and, for a validation with a failed check, the
/// failure that decides the status while the fields still say what passed.
#[derive(Default)]
pub struct Report {
    pub fields: Map<String, Value>,
    pub warnings: Vec<String>,
    pub failure: Option<Error>,
    /// One field already written as JSON text (a listing's entries, written page by page
    /// as B2 sends them), so that nothing but the response grows with the listing.
    pub raw_field: Option<(&'static str, String)>,
}

impl Report {
    pub fn with(fields: Value) -> Report {
        match fields {
            Value::Object(fields) => Report {
                fields,
                ..Report::default()
            },
            _ => Report::default(),
        }
    }
}

/// Entries of a listing this library could not fully read (`FileVersion::unreadable`):
/// never dropped in silence, they are counted and the first few named in a warning.
#[derive(Clone, Debug, Default)]
pub struct OddEntries {
    pub count: u64,
    pub named: Vec<String>,
}

impl OddEntries {
    const NAMED: usize = 5;

    pub fn note(&mut self, v: &crate::b2::api::FileVersion) {
        if let Some(why) = v.unreadable() {
            self.count += 1;
            if self.named.len() < Self::NAMED {
                self.named.push(why);
            }
        }
    }

    /// One warning, saying what the operation did with them.
    pub fn warn(&self, report: &mut Report, done: &str) {
        if self.count == 0 {
            return;
        }
        let more = match self.count - self.named.len() as u64 {
            0 => String::new(),
            n => format!("; and {n} more"),
        };
        report.warnings.push(format!(
            "{} entr{} of B2's listing could not be fully read ({}{more}); {done}",
            self.count,
            if self.count == 1 { "y" } else { "ies" },
            self.named.join("; "),
        ));
    }
}

/// A configured destination, bound to its B2 session for one operation.
pub struct Destination {
    pub config: DestinationConfig,
    pub client: B2Client,
}

impl Destination {
    pub fn open(config: DestinationConfig, op: Arc<Operation>) -> Result<Destination> {
        let settings = config.b2.clone();
        let sessions = &process_state()?.sessions;
        let session = sessions.session_for(&settings)?;
        let throttle = sessions.throttle_for(&settings, &config.bucket);
        let client =
            B2Client::new(session, op).with_transfer_settings(settings.encryption, throttle);
        Ok(Destination { config, client })
    }

    /// Which destination the usage cache files this one's figures under: the account and
    /// the backup directory (the bucket id is added by the caller).
    pub fn usage_key(&self, bucket_id: &str) -> crate::usage_cache::UsageKey {
        crate::usage_cache::UsageKey {
            api_url: self.config.b2.api_url.clone(),
            account_id: self.config.b2.account_id.clone(),
            bucket_id: bucket_id.to_string(),
            directory: self.config.backup_directory.clone(),
        }
    }

    pub async fn bucket(&self) -> Result<BucketInfo> {
        self.client.bucket(&self.config.bucket).await
    }

    /// Uploads and deletes are refused on a restore-only destination.
    pub fn check_writable(&self, what: &str) -> Result<()> {
        if self.config.read_only {
            return Err(Error::Permission(format!(
                "this destination is read-only (restore only), so it may not {what}; clear \"read_only\" to allow it"
            )));
        }
        Ok(())
    }

    /// The part size for this destination: the configured one or B2's recommendation,
    /// checked against B2's limits.
    pub async fn part_size(&self) -> Result<u64> {
        let auth = self.client.authorization().await?;
        self.part_size_under(&auth)
    }

    /// The part size under the limits `auth` came with; `validate` asks the same, so it
    /// refuses what an upload or download would.
    pub fn part_size_under(&self, auth: &Authorization) -> Result<u64> {
        let size = self
            .config
            .part_size_bytes
            .unwrap_or(auth.recommended_part_size);
        if size < auth.min_part_size {
            return Err(Error::Config(format!(
                "field \"part_size_bytes\" is {size}, below B2's minimum part size of {}",
                auth.min_part_size
            )));
        }
        if self
            .config
            .part_size_bytes
            .is_some_and(|s| s > MAX_PART_SIZE)
        {
            return Err(Error::Config(format!(
                "field \"part_size_bytes\" is {size}, above B2's largest part of {MAX_PART_SIZE}"
            )));
        }
        Ok(size.min(MAX_PART_SIZE))
    }

    /// This destination's Object Lock policy (its own, never a shared session's).
    pub fn object_lock(&self) -> Option<ObjectLockSettings> {
        self.config.b2.object_lock
    }

    /// The prefix of every file of the backup directory.
    pub fn directory_prefix(&self) -> String {
        if self.config.backup_directory.is_empty() {
            String::new()
        } else {
            format!("{}/", self.config.backup_directory)
        }
    }
}
