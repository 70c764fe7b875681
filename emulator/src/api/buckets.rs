//! b2_list_buckets, b2_create_bucket, b2_update_bucket, b2_delete_bucket.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{array_or_default, object_or_default, retention, Ctx};
use crate::error::{B2Error, B2Result};
use crate::names;
use crate::sse::{self, Sse};
use crate::store::BucketLock;
use crate::unsupported;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBucketsReq {
    account_id: String,
    bucket_id: Option<String>,
    bucket_name: Option<String>,
    bucket_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBucketReq {
    account_id: String,
    bucket_name: String,
    bucket_type: String,
    bucket_info: Option<Value>,
    cors_rules: Option<Value>,
    lifecycle_rules: Option<Value>,
    /// Fields the emulator does not know; each feature checks its own.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBucketReq {
    account_id: String,
    bucket_id: String,
    bucket_type: Option<String>,
    bucket_info: Option<Value>,
    cors_rules: Option<Value>,
    lifecycle_rules: Option<Value>,
    /// B2's name for the revision check.
    if_revision_is: Option<u64>,
    /// The emulator's older name for it, still accepted.
    if_revision_match: Option<u64>,
    /// Fields the emulator does not know; each feature checks its own.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteBucketReq {
    account_id: String,
    bucket_id: String,
}

impl Ctx<'_> {
    /// Bucket answers show Object Lock settings to keys with `readBucketRetentions`.
    fn reads_bucket_lock(&self) -> bool {
        self.key.has("readBucketRetentions")
    }

    pub(crate) fn list_buckets(&self, req: ListBucketsReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("listBuckets")?;
        if let Some(allowed) = &self.key.spec.bucket {
            let by_id = req
                .bucket_id
                .as_deref()
                .and_then(|id| self.shared.store.bucket(id));
            let names_it = req.bucket_name.as_deref() == Some(allowed.as_str())
                || by_id.is_some_and(|b| b.name == *allowed);
            if !names_it {
                return Err(B2Error::unauthorized(format!(
                    "application key is restricted to bucket {allowed}: pass its bucketId or bucketName"
                )));
            }
        }
        let types = req.bucket_types.unwrap_or_else(|| vec!["all".to_owned()]);
        let buckets: Vec<Value> = self
            .shared
            .store
            .buckets()
            .into_iter()
            .filter(|b| req.bucket_id.as_ref().is_none_or(|id| *id == b.id))
            .filter(|b| req.bucket_name.as_ref().is_none_or(|n| *n == b.name))
            .filter(|b| types.iter().any(|t| t == "all" || *t == b.kind))
            .map(|b| self.bucket_json(&b))
            .collect();
        Ok(json!({ "buckets": buckets }))
    }

    pub(crate) fn create_bucket(&self, req: CreateBucketReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("writeBuckets")?;
        if self.key.spec.bucket.is_some() {
            return Err(B2Error::unauthorized(
                "a key restricted to one bucket cannot create buckets",
            ));
        }
        names::validate_bucket_name(&req.bucket_name)?;
        names::validate_bucket_type(&req.bucket_type)?;
        refuse_unsupported_settings(&req.extra, "b2_create_bucket")?;
        let default_sse = self.default_sse_setting(&req.extra)?;
        let lock = retention::bucket_lock(&req.extra, BucketLock::default(), self.key)?
            .unwrap_or_default();
        let info = object_or_default(req.bucket_info, "bucketInfo")?;
        names::validate_bucket_info(&info)?;
        let cors = array_or_default(req.cors_rules, "corsRules")?;
        let rules = array_or_default(req.lifecycle_rules, "lifecycleRules")?;
        names::validate_lifecycle_rules(&rules)?;
        let mut meta = self.shared.store.create_bucket(
            &req.bucket_name,
            &req.bucket_type,
            info,
            rules,
            cors,
            lock,
        )?;
        if let Some(Some(sse)) = default_sse {
            meta = self.shared.store.set_default_sse(&meta.id, Some(sse))?;
        }
        Ok(self.bucket_json(&meta))
    }

    pub(crate) fn update_bucket(&self, req: UpdateBucketReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("writeBuckets")?;
        let current = self.bucket(&req.bucket_id)?;
        refuse_unsupported_settings(&req.extra, "b2_update_bucket")?;
        let default_sse = self.default_sse_setting(&req.extra)?;
        let lock = retention::bucket_lock(&req.extra, current.lock, self.key)?;
        if let Some(kind) = &req.bucket_type {
            names::validate_bucket_type(kind)?;
        }
        if let Some(rules) = &req.lifecycle_rules {
            names::validate_lifecycle_rules(rules)?;
        }
        if let Some(info) = &req.bucket_info {
            names::validate_bucket_info(info)?;
        }
        if req.cors_rules.as_ref().is_some_and(|v| !v.is_array()) {
            return Err(B2Error::bad_request("corsRules must be an array"));
        }
        let mut meta = self.shared.store.update_bucket(
            &req.bucket_id,
            req.bucket_type,
            req.bucket_info,
            req.lifecycle_rules,
            req.cors_rules,
            req.if_revision_is.or(req.if_revision_match),
            lock,
        )?;
        if let Some(sse) = default_sse {
            meta = self.shared.store.set_default_sse(&meta.id, sse)?;
        }
        Ok(self.bucket_json(&meta))
    }

    pub(crate) fn delete_bucket(&self, req: DeleteBucketReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("deleteBuckets")?;
        self.bucket(&req.bucket_id)?;
        let meta = self.shared.store.delete_bucket(&req.bucket_id)?;
        Ok(self.bucket_json(&meta))
    }

    /// A bucket as this key sees it: its default encryption only with `readBucketEncryption`.
    fn bucket_json(&self, meta: &crate::store::BucketMeta) -> Value {
        let mut v = meta.to_json(self.account_id(), self.reads_bucket_lock());
        if !self.key.has("readBucketEncryption") {
            v["defaultServerSideEncryption"] = sse::bucket_json(None, false);
        }
        v
    }

    /// `defaultServerSideEncryption` asked for, which needs `writeBucketEncryption`.
    fn default_sse_setting(&self, extra: &Map<String, Value>) -> B2Result<Option<Option<Sse>>> {
        let setting = sse::bucket_default(extra)?;
        if setting.is_some() {
            self.key.require("writeBucketEncryption")?;
        }
        Ok(setting)
    }
}

/// Bucket settings the emulator cannot honour.
fn refuse_unsupported_settings(extra: &Map<String, Value>, call: &str) -> B2Result<()> {
    unsupported::replication_bucket(extra, call)
}
