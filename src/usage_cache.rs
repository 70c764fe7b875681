//! The usage figures this process keeps per destination, so that a limit check does not
//! list the bucket before every upload. Held in the process state (`runtime.rs`); filled
//! and read by `ops/usage.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old a kept usage figure may be before a limit check lists the bucket again.
pub const USAGE_MAX_AGE: Duration = Duration::from_secs(300);

/// Whose figure: one backup directory of one bucket, as one account sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UsageKey {
    pub api_url: String,
    pub account_id: String,
    pub bucket_id: String,
    pub directory: String,
}

/// The usage figures this process keeps per destination, adjusted by its own uploads and
/// deletes, so that a limit check does not list the bucket every time.
#[derive(Default)]
pub struct UsageCache {
    figures: Mutex<HashMap<UsageKey, (u64, Instant)>>,
}

impl UsageCache {
    /// The figure of `key`, if one was measured within `max_age`.
    pub fn get(&self, key: &UsageKey, max_age: Duration) -> Option<u64> {
        let figures = self.figures.lock().ok()?;
        figures
            .get(key)
            .filter(|(_, measured)| measured.elapsed() <= max_age)
            .map(|(used, _)| *used)
    }

    pub fn store(&self, key: UsageKey, used_bytes: u64) {
        if let Ok(mut figures) = self.figures.lock() {
            // Figures too old to be used again only take room.
            figures.retain(|_, (_, measured)| measured.elapsed() <= USAGE_MAX_AGE);
            figures.insert(key, (used_bytes, Instant::now()));
        }
    }

    /// Adjusts the figures of every backup directory of `bucket` (as `of` sees it) that
    /// contains `object_name`.
    pub fn adjust(&self, of: &UsageKey, object_name: &str, delta: i64) {
        if let Ok(mut figures) = self.figures.lock() {
            for (key, (used, _)) in figures.iter_mut() {
                let dir = key.directory.as_str();
                let inside = dir.is_empty()
                    || object_name
                        .strip_prefix(dir)
                        .is_some_and(|r| r.starts_with('/'));
                let same_bucket = key.api_url == of.api_url
                    && key.account_id == of.account_id
                    && key.bucket_id == of.bucket_id;
                if same_bucket && inside {
                    *used = used.saturating_add_signed(delta);
                }
            }
        }
    }
}
