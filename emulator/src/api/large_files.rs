//! Large files: b2_start_large_file, b2_get_upload_part_url, b2_finish_large_file,
//! b2_cancel_large_file, b2_list_unfinished_large_files, b2_list_parts.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    count_param, Ctx, FileIdReq, DEFAULT_LIST_COUNT, MAX_PART_COUNT, MAX_UNFINISHED_COUNT,
};
use crate::auth::UploadTarget;
use crate::error::{B2Error, B2Result};
use crate::names;
use crate::sse;
use crate::store;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartLargeFileReq {
    bucket_id: String,
    file_name: String,
    content_type: String,
    file_info: Option<BTreeMap<String, String>>,
    /// Fields the emulator does not know; each feature checks its own.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishLargeFileReq {
    file_id: String,
    part_sha1_array: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListUnfinishedReq {
    bucket_id: String,
    name_prefix: Option<String>,
    start_file_id: Option<String>,
    max_file_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPartsReq {
    file_id: String,
    start_part_number: Option<u32>,
    max_part_count: Option<u64>,
}

impl Ctx<'_> {
    pub(crate) fn start_large_file(&self, req: StartLargeFileReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        names::validate_file_name(&req.file_name)?;
        self.key.require_name(&req.file_name)?;
        names::validate_content_type(&req.content_type)?;
        let asked = sse::from_json(
            req.extra.get("serverSideEncryption"),
            "serverSideEncryption",
        )?;
        let sse = sse::applied(asked, bucket.default_sse.as_ref());
        let info = req.file_info.unwrap_or_default();
        names::validate_info(&req.file_name, &info)?;
        sse::check_info_size(&req.file_name, &info, sse.as_ref(), bucket.lock.enabled)?;
        let lock = super::retention::lock_from_json(&req.extra, &bucket, self.key)?;
        let content_type = names::resolve_content_type(&req.content_type, &req.file_name);
        let v = self.shared.store.start_large(
            &bucket.id,
            &req.file_name,
            &content_type,
            info,
            sse,
            lock,
        )?;
        Ok(self.file_version_json(&v))
    }

    /// The unfinished large file, if the key may write it.
    fn unfinished(&self, file_id: &str) -> B2Result<store::Version> {
        self.key.require("writeFiles")?;
        let file = self.shared.store.unfinished(file_id)?;
        self.bucket(&file.bucket_id)?;
        self.key.require_name(&file.name)?;
        Ok(file)
    }

    pub(crate) fn get_upload_part_url(&self, req: FileIdReq) -> B2Result<Value> {
        let file = self.unfinished(&req.file_id)?;
        let key = self.key.clone();
        let (token, url_id) = self
            .shared
            .auth
            .issue_upload(UploadTarget::LargeFile(file.seq), key);
        Ok(json!({
            "fileId": req.file_id,
            "uploadUrl": format!("{}/b2api/v{}/b2_upload_part/{}/{}",
                self.shared.base_url, self.version, req.file_id, url_id),
            "authorizationToken": token,
        }))
    }

    pub(crate) fn finish_large_file(&self, req: FinishLargeFileReq) -> B2Result<Value> {
        self.unfinished(&req.file_id)?;
        let v = self.shared.store.finish_large(
            &req.file_id,
            &req.part_sha1_array,
            self.shared.min_part_size,
        )?;
        Ok(self.file_version_json(&v))
    }

    pub(crate) fn cancel_large_file(&self, req: FileIdReq) -> B2Result<Value> {
        self.unfinished(&req.file_id)?;
        let v = self.shared.store.cancel_large(&req.file_id)?;
        Ok(json!({
            "fileId": v.file_id(),
            "accountId": self.account_id(),
            "bucketId": v.bucket_id,
            "fileName": v.name,
        }))
    }

    pub(crate) fn list_unfinished(&self, req: ListUnfinishedReq) -> B2Result<Value> {
        self.key.require("listFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        let prefix = req.name_prefix.unwrap_or_default();
        self.key.require_list_prefix(&prefix)?;
        let max = count_param(req.max_file_count, DEFAULT_LIST_COUNT, MAX_UNFINISHED_COUNT);
        let start_seq = match &req.start_file_id {
            Some(id) => Some(
                store::parse_file_id(id)
                    .ok_or_else(|| B2Error::bad_request(format!("invalid startFileId {id}")))?,
            ),
            None => None,
        };
        let (files, next) = self
            .shared
            .store
            .list_unfinished(&bucket.id, &prefix, start_seq, max)?;
        let files: Vec<Value> = files.iter().map(|v| self.file_version_json(v)).collect();
        Ok(json!({
            "files": files,
            "nextFileId": next.map(|seq| store::file_id(&bucket.id, seq)),
        }))
    }

    pub(crate) fn list_parts(&self, req: ListPartsReq) -> B2Result<Value> {
        let file = self.unfinished(&req.file_id)?;
        let start = req.start_part_number.unwrap_or(1).max(1);
        let max = count_param(req.max_part_count, DEFAULT_LIST_COUNT, MAX_PART_COUNT);
        let (parts, next) = self.shared.store.list_parts(file.seq, start, max)?;
        let parts: Vec<Value> = parts
            .iter()
            .map(|p| {
                json!({
                    "fileId": req.file_id,
                    "partNumber": p.number,
                    "contentLength": p.size,
                    "contentSha1": p.sha1,
                    "uploadTimestamp": p.ts,
                })
            })
            .collect();
        Ok(json!({ "parts": parts, "nextPartNumber": next }))
    }
}
