//! Bucket records: create, update, delete, look up.

use serde_json::Value;

use super::journal::Record;
use super::model::BucketLock;
use super::model::{random_hex, BucketMeta, Sse};
use super::Store;
use crate::error::{B2Error, B2Result};

impl Store {
    pub fn bucket(&self, id: &str) -> Option<BucketMeta> {
        self.lock().buckets.get(id).map(|b| b.meta.clone())
    }

    pub fn bucket_by_name(&self, name: &str) -> Option<BucketMeta> {
        let state = self.lock();
        let id = state.bucket_ids.get(name)?;
        state.buckets.get(id).map(|b| b.meta.clone())
    }

    pub fn buckets(&self) -> Vec<BucketMeta> {
        let state = self.lock();
        state
            .bucket_ids
            .values()
            .filter_map(|id| state.buckets.get(id).map(|b| b.meta.clone()))
            .collect()
    }

    pub fn create_bucket(
        &self,
        name: &str,
        kind: &str,
        info: Value,
        lifecycle_rules: Value,
        cors_rules: Value,
        lock: BucketLock,
    ) -> B2Result<BucketMeta> {
        let mut state = self.lock();
        if state.bucket_ids.contains_key(name) {
            return Err(B2Error::new(
                400,
                "duplicate_bucket_name",
                format!("bucket name {name} is already in use"),
            ));
        }
        let meta = BucketMeta {
            id: random_hex(24),
            name: name.to_owned(),
            kind: kind.to_owned(),
            info,
            lifecycle_rules,
            cors_rules,
            revision: 1,
            default_sse: None,
            lock,
        };
        self.commit(&mut state, Record::Bucket(meta.clone()))?;
        Ok(meta)
    }

    /// Replaces the given settings; `if_revision` must match when set (else 409 conflict).
    #[allow(clippy::too_many_arguments)]
    pub fn update_bucket(
        &self,
        id: &str,
        kind: Option<String>,
        info: Option<Value>,
        lifecycle_rules: Option<Value>,
        cors_rules: Option<Value>,
        if_revision: Option<u64>,
        lock: Option<BucketLock>,
    ) -> B2Result<BucketMeta> {
        let mut state = self.lock();
        let mut meta = state
            .buckets
            .get(id)
            .map(|b| b.meta.clone())
            .ok_or_else(|| B2Error::bad_bucket_id(id))?;
        if let Some(rev) = if_revision {
            if rev != meta.revision {
                return Err(B2Error::new(
                    409,
                    "conflict",
                    format!(
                        "ifRevisionMatch {rev} but the bucket is at revision {}",
                        meta.revision
                    ),
                ));
            }
        }
        if let Some(kind) = kind {
            meta.kind = kind;
        }
        if let Some(info) = info {
            meta.info = info;
        }
        if let Some(rules) = lifecycle_rules {
            meta.lifecycle_rules = rules;
        }
        if let Some(rules) = cors_rules {
            meta.cors_rules = rules;
        }
        if let Some(lock) = lock {
            // Object Lock, once on, stays on (b2sdk: 400 `file_lock_conflict`).
            if meta.lock.enabled && !lock.enabled {
                return Err(B2Error::new(
                    400,
                    "file_lock_conflict",
                    "fileLockEnabled value of false is not allowed when bucket is already file lock enabled",
                ));
            }
            meta.lock = lock;
        }
        meta.revision += 1;
        self.commit(&mut state, Record::Bucket(meta.clone()))?;
        Ok(meta)
    }

    /// Sets the default encryption (SSE-B2 or none). The revision is left to the
    /// `update_bucket` of the same request.
    pub fn set_default_sse(&self, id: &str, sse: Option<Sse>) -> B2Result<BucketMeta> {
        let mut state = self.lock();
        let mut meta = state
            .buckets
            .get(id)
            .map(|b| b.meta.clone())
            .ok_or_else(|| B2Error::bad_bucket_id(id))?;
        meta.default_sse = sse;
        self.commit(&mut state, Record::Bucket(meta.clone()))?;
        Ok(meta)
    }

    pub fn delete_bucket(&self, id: &str) -> B2Result<BucketMeta> {
        let mut state = self.lock();
        let bucket = state
            .buckets
            .get(id)
            .ok_or_else(|| B2Error::bad_bucket_id(id))?;
        if !bucket.names.is_empty() {
            return Err(B2Error::bad_request(format!(
                "cannot delete non-empty bucket {}",
                bucket.meta.name
            )));
        }
        let meta = bucket.meta.clone();
        self.commit(&mut state, Record::BucketDeleted { id: id.to_owned() })?;
        Ok(meta)
    }
}
