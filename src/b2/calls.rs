//! Every B2 API call this library makes, typed: a request struct per call, naming the call
//! and the answer it gets, and one method per call on `B2Client`. Nothing outside `b2`
//! writes B2 JSON. The uploads of bodies (`b2_upload_file`, `b2_upload_part`) and the
//! download stream are in `upload/` and `download.rs`: they are not JSON calls.

use std::collections::BTreeMap;
use std::future::Future;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use super::api::{
    FileVersion, ListBucketsResponse, ListFilesResponse, ListPartsResponse, UploadUrlResponse,
};
use super::client::B2Client;
use super::encryption::{StartEncryption, KEY_MD5_INFO};
use super::object_lock::{Retention, RetentionValue};
use super::settle::{self, Called};
use super::wire::encode_name;
use crate::error::Result;

/// A JSON call of B2's native API: its name, and the shape of its answer.
pub trait B2Call: Serialize {
    const NAME: &'static str;
    type Answer: DeserializeOwned;
}

macro_rules! b2_call {
    ($request:ident, $name:literal, $answer:ty) => {
        impl B2Call for $request<'_> {
            const NAME: &'static str = $name;
            type Answer = $answer;
        }
    };
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBuckets<'a> {
    pub account_id: &'a str,
    pub bucket_name: &'a str,
}
b2_call!(ListBuckets, "b2_list_buckets", ListBucketsResponse);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetUploadUrl<'a> {
    pub bucket_id: &'a str,
}
b2_call!(GetUploadUrl, "b2_get_upload_url", UploadUrlResponse);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartLargeFile<'a> {
    pub bucket_id: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub file_info: &'a BTreeMap<String, String>,
    /// Carries the SSE-C key: the request body is never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<StartEncryption<'a>>,
    /// Object Lock from the start: never a second call that could be missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_retention: Option<&'a Retention>,
}
b2_call!(StartLargeFile, "b2_start_large_file", FileVersion);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetUploadPartUrl<'a> {
    pub file_id: &'a str,
}
b2_call!(
    GetUploadPartUrl,
    "b2_get_upload_part_url",
    UploadUrlResponse
);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishLargeFile<'a> {
    pub file_id: &'a str,
    pub part_sha1_array: Vec<&'a str>,
}
b2_call!(FinishLargeFile, "b2_finish_large_file", FileVersion);

/// B2's answer (the file's id and name) is not needed: success is what counts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelLargeFile<'a> {
    pub file_id: &'a str,
}
b2_call!(CancelLargeFile, "b2_cancel_large_file", IgnoredAny);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListUnfinishedLargeFiles<'a> {
    pub bucket_id: &'a str,
    pub name_prefix: &'a str,
    pub max_file_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_file_id: Option<&'a str>,
}
b2_call!(
    ListUnfinishedLargeFiles,
    "b2_list_unfinished_large_files",
    ListFilesResponse
);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParts<'a> {
    pub file_id: &'a str,
    pub start_part_number: u32,
    pub max_part_count: u32,
}
b2_call!(ListParts, "b2_list_parts", ListPartsResponse);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFileNames<'a> {
    pub bucket_id: &'a str,
    pub prefix: &'a str,
    pub max_file_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_file_name: Option<&'a str>,
}
b2_call!(ListFileNames, "b2_list_file_names", ListFilesResponse);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFileVersions<'a> {
    pub bucket_id: &'a str,
    pub prefix: &'a str,
    pub max_file_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_file_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_file_id: Option<&'a str>,
}
b2_call!(ListFileVersions, "b2_list_file_versions", ListFilesResponse);

/// As with a cancel, B2's answer (the id and name again) is not needed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFileVersion<'a> {
    pub file_name: &'a str,
    pub file_id: &'a str,
    /// Asks B2 to delete a governance-locked version (needs the `bypassGovernance`
    /// capability); sent only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bypass_governance: bool,
}
b2_call!(DeleteFileVersion, "b2_delete_file_version", IgnoredAny);

impl<'a> DeleteFileVersion<'a> {
    pub fn of(version: &'a FileVersion) -> DeleteFileVersion<'a> {
        DeleteFileVersion {
            file_name: &version.file_name,
            file_id: version.id(),
            bypass_governance: false,
        }
    }
}

/// Moves a version's retention (forward only, in this library: see `ops/protect.rs`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFileRetention<'a> {
    pub file_name: &'a str,
    pub file_id: &'a str,
    pub file_retention: &'a Retention,
}
b2_call!(
    UpdateFileRetention,
    "b2_update_file_retention",
    UpdateFileRetentionAnswer
);

#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFileRetentionAnswer {
    #[serde(default, deserialize_with = "super::lenient::opt")]
    file_retention: Option<RetentionValue>,
}

impl UpdateFileRetentionAnswer {
    /// The retention B2 says it holds now; a success that does not say is taken to hold
    /// what was `sent`.
    pub fn held(&self, sent: &Retention) -> Retention {
        self.file_retention
            .as_ref()
            .and_then(RetentionValue::retention)
            .unwrap_or(*sent)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetFileInfo<'a> {
    pub file_id: &'a str,
}
b2_call!(GetFileInfo, "b2_get_file_info", FileVersion);

/// A server-side copy of a stored version to a new version (rollback makes an old
/// version current again this way: no download, no upload).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyFile<'a> {
    pub source_file_id: &'a str,
    pub file_name: &'a str,
    /// Object Lock on the copy, set by the copy itself (no unprotected window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_retention: Option<&'a Retention>,
    /// The source's SSE-C key: carries the key, and the request body is never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_server_side_encryption: Option<StartEncryption<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_server_side_encryption: Option<StartEncryption<'a>>,
}
b2_call!(CopyFile, "b2_copy_file", FileVersion);

/// Adds a hide marker: the name stops being current; nothing is freed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HideFile<'a> {
    pub bucket_id: &'a str,
    pub file_name: &'a str,
}
b2_call!(HideFile, "b2_hide_file", FileVersion);

impl B2Client {
    /// Any typed call, under the retry rules.
    pub async fn send<R: B2Call>(&self, request: &R) -> Result<R::Answer> {
        self.call(R::NAME, request).await
    }

    pub async fn list_buckets(&self, request: &ListBuckets<'_>) -> Result<ListBucketsResponse> {
        self.send(request).await
    }

    pub async fn get_upload_url(&self, request: &GetUploadUrl<'_>) -> Result<UploadUrlResponse> {
        self.send(request).await
    }

    /// Before a try that follows a lost answer, `settled` looks for the file B2 may have
    /// started (see `settle::call_settled`); tries that timed out are kept running, in
    /// `Called::late`, since B2 may start a file for them still.
    pub async fn start_large_file<S, SFut>(
        &self,
        request: &StartLargeFile<'_>,
        settled: S,
    ) -> Called<FileVersion>
    where
        S: Fn() -> SFut,
        SFut: Future<Output = Result<Option<FileVersion>>>,
    {
        settle::call_settled_hearing(self, StartLargeFile::NAME, request, settled).await
    }

    pub async fn get_upload_part_url(
        &self,
        request: &GetUploadPartUrl<'_>,
    ) -> Result<UploadUrlResponse> {
        self.send(request).await
    }

    /// Before a try that follows a lost answer, `settled` asks whether the file is
    /// finished already.
    pub async fn finish_large_file<S, SFut>(
        &self,
        request: &FinishLargeFile<'_>,
        settled: S,
    ) -> Called<FileVersion>
    where
        S: Fn() -> SFut,
        SFut: Future<Output = Result<Option<FileVersion>>>,
    {
        settle::call_settled(self, FinishLargeFile::NAME, request, settled).await
    }

    /// Says whether a try went unanswered: a cancel refused on a retry may have worked.
    pub async fn cancel_large_file(&self, request: &CancelLargeFile<'_>) -> Called<IgnoredAny> {
        settle::call_noting(self, CancelLargeFile::NAME, request).await
    }

    pub async fn list_unfinished_large_files(
        &self,
        request: &ListUnfinishedLargeFiles<'_>,
    ) -> Result<ListFilesResponse> {
        self.send(request).await
    }

    pub async fn list_parts(&self, request: &ListParts<'_>) -> Result<ListPartsResponse> {
        self.send(request).await
    }

    pub async fn list_file_names(&self, request: &ListFileNames<'_>) -> Result<ListFilesResponse> {
        self.send(request).await
    }

    pub async fn list_file_versions(
        &self,
        request: &ListFileVersions<'_>,
    ) -> Result<ListFilesResponse> {
        self.send(request).await
    }

    /// Says whether a try went unanswered: a version found gone on a retry may have been
    /// deleted by the try whose answer was lost.
    pub async fn delete_file_version(&self, request: &DeleteFileVersion<'_>) -> Called<IgnoredAny> {
        settle::call_noting(self, DeleteFileVersion::NAME, request).await
    }

    pub async fn get_file_info(&self, request: &GetFileInfo<'_>) -> Result<FileVersion> {
        self.send(request).await
    }

    pub async fn copy_file(&self, request: &CopyFile<'_>) -> Result<FileVersion> {
        self.send(request).await
    }

    pub async fn hide_file(&self, request: &HideFile<'_>) -> Result<FileVersion> {
        self.send(request).await
    }

    pub async fn update_file_retention(
        &self,
        request: &UpdateFileRetention<'_>,
    ) -> Result<UpdateFileRetentionAnswer> {
        self.send(request).await
    }
}

/// The fields of `b2_upload_file` other than the body (which `upload/` streams, its SHA1
/// at the end); they travel as headers.
pub struct UploadFile<'a> {
    pub file_name: &'a str,
    pub src_last_modified_millis: i64,
    /// The MD5 of the SSE-C key, recorded in the file info (the key itself travels in the
    /// encryption headers, `Encryption::upload_headers`).
    pub customer_key_md5: Option<&'a str>,
    /// Object Lock, in the upload itself.
    pub retention: Option<&'a Retention>,
}

impl UploadFile<'_> {
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            (
                "X-Bz-Info-src_last_modified_millis".to_string(),
                self.src_last_modified_millis.to_string(),
            ),
            ("X-Bz-File-Name".to_string(), encode_name(self.file_name)),
        ];
        if let Some(md5) = self.customer_key_md5 {
            headers.push((format!("X-Bz-Info-{KEY_MD5_INFO}"), encode_name(md5)));
        }
        headers.extend(self.retention.into_iter().flat_map(Retention::headers));
        headers
    }
}

/// The fields of `b2_upload_part` other than the body.
pub struct UploadPart {
    pub part_number: u32,
}

impl UploadPart {
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![("X-Bz-Part-Number".to_string(), self.part_number.to_string())]
    }
}
