//! Server-side copies: b2_copy_file (a new version from a stored one, no upload) and
//! b2_copy_part (a part of an unfinished large file from a stored version). Strict as
//! the rest: unknown fields refused, metadata directive checked, Object Lock settings
//! taken as b2_start_large_file takes them, SSE-C keys checked, never ignored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::Ctx;
use crate::download::parse_range;
use crate::error::{B2Error, B2Result};
use crate::names;
use crate::sse::{self, Sse};
use crate::store::{self, Action, Segment, Version, MAX_PART_NUMBER, MAX_UPLOAD_BYTES};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyFileReq {
    source_file_id: String,
    destination_bucket_id: Option<String>,
    file_name: String,
    range: Option<String>,
    metadata_directive: Option<String>,
    content_type: Option<String>,
    file_info: Option<BTreeMap<String, String>>,
    file_retention: Option<Value>,
    legal_hold: Option<Value>,
    source_server_side_encryption: Option<Value>,
    destination_server_side_encryption: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyPartReq {
    source_file_id: String,
    large_file_id: String,
    part_number: u32,
    range: Option<String>,
    source_server_side_encryption: Option<Value>,
    destination_server_side_encryption: Option<Value>,
}

impl Ctx<'_> {
    /// The source version, if the key may read it, with its SSE-C key checked.
    fn copy_source(&self, file_id: &str, source_sse: Option<&Value>) -> B2Result<Version> {
        self.key.require("readFiles")?;
        let v = self
            .shared
            .store
            .version_by_id(file_id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid sourceFileId {file_id}")))?;
        self.bucket(&v.bucket_id)?;
        self.key.require_name(&v.name)?;
        if v.action != Action::Upload {
            return Err(B2Error::bad_request(format!(
                "sourceFileId {file_id} is a {} entry, not a file that can be copied",
                v.action.as_str()
            )));
        }
        let asked = sse::from_json(source_sse, "sourceServerSideEncryption")?;
        match (&v.sse, asked) {
            (Some(Sse::C { key_md5 }), Some(Sse::C { key_md5: given })) if *key_md5 == given => {}
            (Some(Sse::C { .. }), Some(Sse::C { .. })) => {
                return Err(B2Error::new(
                    403,
                    "access_denied",
                    "sourceServerSideEncryption: the SSE-C key does not match the source's",
                ))
            }
            (Some(Sse::C { .. }), _) => return Err(B2Error::new(
                403,
                "access_denied",
                "the source is encrypted with SSE-C: send its key in sourceServerSideEncryption",
            )),
            (_, Some(Sse::C { .. })) => {
                return Err(B2Error::bad_request(
                    "the source is not encrypted with SSE-C: send no source key",
                ))
            }
            (_, Some(Sse::B2)) => {
                return Err(B2Error::bad_request(
                    "sourceServerSideEncryption takes only SSE-C (a customer key)",
                ))
            }
            _ => {}
        }
        Ok(v)
    }

    pub(crate) fn copy_file(&self, req: CopyFileReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let source = self.copy_source(
            &req.source_file_id,
            req.source_server_side_encryption.as_ref(),
        )?;
        let bucket_id = req
            .destination_bucket_id
            .clone()
            .unwrap_or_else(|| source.bucket_id.clone());
        let bucket = self.bucket(&bucket_id)?;
        names::validate_file_name(&req.file_name)?;
        self.key.require_name(&req.file_name)?;
        let (content_type, info) = match req.metadata_directive.as_deref().unwrap_or("COPY") {
            "COPY" => {
                if req.content_type.is_some() || req.file_info.is_some() {
                    return Err(B2Error::bad_request(
                        "contentType and fileInfo must not be given with metadataDirective COPY",
                    ));
                }
                (source.content_type.clone(), source.info.clone())
            }
            "REPLACE" => {
                let ct = req.content_type.clone().ok_or_else(|| {
                    B2Error::bad_request("contentType is required with metadataDirective REPLACE")
                })?;
                names::validate_content_type(&ct)?;
                (
                    names::resolve_content_type(&ct, &req.file_name),
                    req.file_info.clone().unwrap_or_default(),
                )
            }
            other => {
                return Err(B2Error::bad_request(format!(
                    "metadataDirective must be COPY or REPLACE, not {other:?}"
                )))
            }
        };
        names::validate_info(&req.file_name, &info)?;
        let asked = sse::from_json(
            req.destination_server_side_encryption.as_ref(),
            "destinationServerSideEncryption",
        )?;
        let dest_sse = sse::applied(asked, bucket.default_sse.as_ref());
        sse::check_info_size(
            &req.file_name,
            &info,
            dest_sse.as_ref(),
            bucket.lock.enabled,
        )?;
        let mut extra = Map::new();
        for (k, v) in [
            ("fileRetention", &req.file_retention),
            ("legalHold", &req.legal_hold),
        ] {
            if let Some(v) = v {
                extra.insert(k.to_owned(), v.clone());
            }
        }
        let lock = super::retention::lock_from_json(&extra, &bucket, self.key)?;
        let (content, size, sha1) = match parse_range(req.range.as_deref(), source.size)? {
            Some(r) if !(r.first == 0 && r.last + 1 == source.size) => {
                let len = r.last - r.first + 1;
                let (blob, sha1) = self.blob_of_range(&source, r.first, len)?;
                (vec![Segment { blob, len }], len, Some(sha1))
            }
            _ => (source.content.clone(), source.size, source.sha1.clone()),
        };
        if size > MAX_UPLOAD_BYTES {
            return Err(B2Error::bad_request(
                "b2_copy_file makes files of at most 5 GB: use b2_copy_part beyond",
            ));
        }
        let v = self.shared.store.add_copy(
            &bucket.id,
            &req.file_name,
            &content_type,
            info,
            sha1,
            size,
            content,
            dest_sse,
            lock,
        )?;
        Ok(self.file_version_json(&v))
    }

    pub(crate) fn copy_part(&self, req: CopyPartReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let source = self.copy_source(
            &req.source_file_id,
            req.source_server_side_encryption.as_ref(),
        )?;
        let file = self.shared.store.unfinished(&req.large_file_id)?;
        self.bucket(&file.bucket_id)?;
        self.key.require_name(&file.name)?;
        if req.part_number == 0 || req.part_number > MAX_PART_NUMBER {
            return Err(B2Error::bad_request(format!(
                "partNumber must be 1 to {MAX_PART_NUMBER}"
            )));
        }
        // The part is written as the large file was started: same SSE-C key, or none.
        let asked = sse::from_json(
            req.destination_server_side_encryption.as_ref(),
            "destinationServerSideEncryption",
        )?;
        match (&file.sse, &asked) {
            (Some(Sse::C { key_md5 }), Some(Sse::C { key_md5: given })) if key_md5 == given => {}
            (Some(Sse::C { .. }), _) | (_, Some(Sse::C { .. })) => {
                return Err(B2Error::bad_request(
                    "destinationServerSideEncryption must carry the SSE-C key the large file was started with",
                ))
            }
            _ => {}
        }
        let (first, len) = match parse_range(req.range.as_deref(), source.size)? {
            Some(r) => (r.first, r.last - r.first + 1),
            None => (0, source.size),
        };
        if len > MAX_UPLOAD_BYTES {
            return Err(B2Error::bad_request("a part may be at most 5 GB"));
        }
        let (blob, sha1) = self.blob_of_range(&source, first, len)?;
        let part =
            self.shared
                .store
                .add_part(file.seq, req.part_number, blob, len, sha1.clone())?;
        Ok(json!({
            "fileId": req.large_file_id,
            "partNumber": part.number,
            "contentLength": part.size,
            "contentSha1": sha1,
            "uploadTimestamp": part.ts,
            "serverSideEncryption": sse::file_json(file.sse.as_ref()),
        }))
    }

    /// A new blob holding `len` bytes of `source` from `first`, and their SHA1.
    fn blob_of_range(&self, source: &Version, first: u64, len: u64) -> B2Result<(String, String)> {
        let io_err = |e: io::Error| B2Error::internal(format!("copy: {e}"));
        let temp = self.shared.store.temp_path();
        let sha1 = (|| -> io::Result<String> {
            let mut out = File::create(&temp)?;
            let mut hasher = Sha1::new();
            let (mut offset, mut left) = (first, len);
            let mut buf = vec![0u8; 1 << 20];
            for seg in &source.content {
                if left == 0 {
                    break;
                }
                if offset >= seg.len {
                    offset -= seg.len;
                    continue;
                }
                let mut f = File::open(self.shared.store.blob_path(&seg.blob))?;
                f.seek(SeekFrom::Start(offset))?;
                let mut seg_left = (seg.len - offset).min(left);
                offset = 0;
                while seg_left > 0 {
                    let n = seg_left.min(buf.len() as u64) as usize;
                    f.read_exact(&mut buf[..n])?;
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n])?;
                    seg_left -= n as u64;
                    left -= n as u64;
                }
            }
            out.sync_all()?;
            Ok(store::hex(&hasher.finalize()))
        })()
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io_err(e)
        })?;
        let blob = self.shared.store.adopt_blob(&temp).map_err(io_err)?;
        Ok((blob, sha1))
    }
}
