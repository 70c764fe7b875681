//! What a session keeps between calls, and the calls that fill it: each bucket looked up
//! once (`b2_list_buckets`), and a pool of upload URLs (`b2_get_upload_url`) that uploads
//! take and give back. The data lives in the session (`session.rs`); this layer stands on
//! the typed calls (`calls.rs`).

use super::calls::{GetUploadUrl, ListBuckets};
use super::client::B2Client;
use super::session::{take_fresh, BucketInfo, UploadTarget};
use crate::error::{Error, Result};

impl B2Client {
    /// The bucket's id (and, when the key may list buckets, its type and lifecycle rules),
    /// looked up once per session (one lookup at a time: the others wait for it and take
    /// its answer). Ids do not change while the session lives.
    pub async fn bucket(&self, name: &str) -> Result<BucketInfo> {
        let known = || {
            self.session
                .buckets
                .lock()
                .ok()
                .and_then(|m| m.get(name).cloned())
        };
        if let Some(b) = known() {
            return Ok(b);
        }
        let _one_at_a_time = self
            .op
            .or_cancel(async { Ok(self.session.bucket_lookup.lock().await) })
            .await?;
        if let Some(b) = known() {
            return Ok(b);
        }
        self.bucket_now(name).await
    }

    /// The bucket as B2 has it now, for checks of its type and lifecycle rules.
    pub async fn bucket_now(&self, name: &str) -> Result<BucketInfo> {
        let auth = self.authorization().await?;
        let restricted_id = auth.allowed.buckets.as_ref().and_then(|list| {
            list.iter()
                .find(|b| b.name.as_deref() == Some(name))
                .map(|b| b.id.clone())
        });
        if let Some(list) = &auth.allowed.buckets {
            if restricted_id.is_none() {
                let names: Vec<&str> = list.iter().filter_map(|b| b.name.as_deref()).collect();
                return Err(Error::Permission(format!(
                    "the application key is restricted to bucket(s) {} and may not use bucket \"{name}\": use a key for this bucket",
                    names.join(", ")
                )));
            }
        }
        let info = if auth.has_capability("listBuckets") {
            let found = self
                .list_buckets(&ListBuckets {
                    account_id: &auth.account_id,
                    bucket_name: name,
                })
                .await?;
            let bucket = found
                .buckets
                .into_iter()
                .find(|b| b.bucket_name == name)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "bucket \"{name}\" does not exist in this B2 account: check the bucket name, or create it"
                    ))
                })?;
            BucketInfo {
                id: bucket.bucket_id.clone(),
                name: name.to_string(),
                details: Some(bucket),
            }
        } else if let Some(id) = restricted_id {
            BucketInfo {
                id,
                name: name.to_string(),
                details: None,
            }
        } else {
            return Err(Error::Permission(format!(
                "the application key may not list buckets, so bucket \"{name}\" cannot be found: give the key the listBuckets capability or restrict it to this bucket"
            )));
        };
        if let Ok(mut m) = self.session.buckets.lock() {
            m.insert(name.to_string(), info.clone());
        }
        Ok(info)
    }

    /// An upload URL nobody else is using: a pooled one, or a new one from B2.
    pub async fn take_upload_target(&self, bucket_id: &str) -> Result<UploadTarget> {
        let pooled = self
            .session
            .upload_targets
            .lock()
            .ok()
            .and_then(|mut m| m.get_mut(bucket_id).and_then(take_fresh));
        if let Some(t) = pooled {
            return Ok(t);
        }
        let got = self.get_upload_url(&GetUploadUrl { bucket_id }).await?;
        Ok(UploadTarget::new(got))
    }

    /// After `expired`'s token was refused as expired: the pooled URLs no newer go too.
    pub fn drop_expired_upload_targets(&self, bucket_id: &str, expired: &UploadTarget) {
        if let Ok(mut m) = self.session.upload_targets.lock() {
            if let Some(pool) = m.get_mut(bucket_id) {
                UploadTarget::drop_older_than(pool, expired);
            }
        }
    }

    /// Gives back an upload URL whose last upload succeeded, for the next upload.
    pub fn return_upload_target(&self, bucket_id: &str, target: UploadTarget) {
        if let Ok(mut m) = self.session.upload_targets.lock() {
            let pool = m.entry(bucket_id.to_string()).or_default();
            if pool.len() < 64 {
                pool.push(target);
            }
        }
    }
}
