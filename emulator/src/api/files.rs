//! Files: b2_get_upload_url, b2_list_file_names, b2_list_file_versions, b2_hide_file,
//! b2_delete_file_version, b2_get_file_info.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{count_param, Ctx, FileIdReq, DEFAULT_LIST_COUNT, MAX_LIST_COUNT};
use crate::auth::UploadTarget;
use crate::error::{B2Error, B2Result};
use crate::names;
use crate::store::{self, FileJson, ListEntry, ListQuery};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketIdReq {
    bucket_id: String,
}

/// `{"files": [...], "nextFileName": ..., "nextFileId": ...}` (the last for versions only).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilesPage<'a> {
    files: Vec<FileJson<'a>>,
    next_file_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_file_id: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFilesReq {
    bucket_id: String,
    start_file_name: Option<String>,
    start_file_id: Option<String>,
    max_file_count: Option<u64>,
    prefix: Option<String>,
    delimiter: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HideFileReq {
    bucket_id: String,
    file_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFileVersionReq {
    file_name: String,
    file_id: String,
    #[serde(default)]
    bypass_governance: bool,
}

impl Ctx<'_> {
    pub(crate) fn get_upload_url(&self, req: BucketIdReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        let key = self.key.clone();
        let (token, url_id) = self
            .shared
            .auth
            .issue_upload(UploadTarget::Bucket(bucket.id.clone()), key);
        Ok(json!({
            "bucketId": bucket.id,
            "uploadUrl": format!("{}/b2api/v{}/b2_upload_file/{}/{}",
                self.shared.base_url, self.version, bucket.id, url_id),
            "authorizationToken": token,
        }))
    }

    pub(crate) fn list_file_names(&self, req: ListFilesReq) -> B2Result<Vec<u8>> {
        self.list_files(req, false)
    }

    pub(crate) fn list_file_versions(&self, req: ListFilesReq) -> B2Result<Vec<u8>> {
        self.list_files(req, true)
    }

    fn list_files(&self, req: ListFilesReq, all_versions: bool) -> B2Result<Vec<u8>> {
        self.key.require("listFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        let prefix = req.prefix.unwrap_or_default();
        self.key.require_list_prefix(&prefix)?;
        let max = count_param(req.max_file_count, DEFAULT_LIST_COUNT, MAX_LIST_COUNT);
        let start_seq = match (&req.start_file_id, all_versions) {
            (Some(id), true) => {
                if req.start_file_name.is_none() {
                    return Err(B2Error::bad_request("startFileId requires startFileName"));
                }
                Some(
                    store::parse_file_id(id)
                        .ok_or_else(|| B2Error::bad_request(format!("invalid startFileId {id}")))?,
                )
            }
            _ => None,
        };
        let query = ListQuery {
            prefix: &prefix,
            delimiter: req.delimiter.as_deref(),
            start_name: req.start_file_name.as_deref(),
            start_seq,
            max,
            all_versions,
        };
        let page = self.shared.store.list(&bucket.id, &query)?;
        let account_id = self.account_id();
        let readers = super::retention::readers(self.key);
        let files: Vec<FileJson<'_>> = page
            .entries
            .iter()
            .map(|e| match e {
                ListEntry::File(v) => v.json(account_id, readers),
                ListEntry::Folder(name) => FileJson::folder(account_id, &bucket.id, name),
            })
            .collect();
        let body = FilesPage {
            files,
            next_file_name: page.next_name.as_deref(),
            next_file_id: all_versions
                .then(|| page.next_seq.map(|seq| store::file_id(&bucket.id, seq))),
        };
        serde_json::to_vec(&body).map_err(|e| B2Error::internal(e.to_string()))
    }

    pub(crate) fn hide_file(&self, req: HideFileReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        names::validate_file_name(&req.file_name)?;
        self.key.require_name(&req.file_name)?;
        let v = self.shared.store.hide(&bucket.id, &req.file_name)?;
        Ok(self.file_version_json(&v))
    }

    pub(crate) fn delete_file_version(&self, req: DeleteFileVersionReq) -> B2Result<Value> {
        self.key.require("deleteFiles")?;
        // Governance gives way only to a call that asks, made with a key that may.
        let bypass = req.bypass_governance && self.key.has("bypassGovernance");
        if let Some(v) = self.shared.store.version_by_id(&req.file_id) {
            self.bucket(&v.bucket_id)?;
            self.key.require_name(&v.name)?;
        }
        let v = self
            .shared
            .store
            .delete_version(&req.file_name, &req.file_id, bypass)?;
        Ok(json!({ "fileId": v.file_id(), "fileName": v.name }))
    }

    pub(crate) fn get_file_info(&self, req: FileIdReq) -> B2Result<Value> {
        self.key.require("readFiles")?;
        let v = self
            .shared
            .store
            .version_by_id(&req.file_id)
            .ok_or_else(|| B2Error::not_found(format!("no file with fileId {}", req.file_id)))?;
        self.bucket(&v.bucket_id)?;
        self.key.require_name(&v.name)?;
        Ok(self.file_version_json(&v))
    }
}
