//! File versions: uploads, hide markers, large files and their parts, deletions.

use std::collections::BTreeMap;

use super::journal::Record;
use super::model::VersionLock;
use super::model::*;
use super::Store;
use crate::error::{B2Error, B2Result};

impl Store {
    /// Records a verified upload whose content is already in `blob` (removed again when
    /// the bucket is gone).
    #[allow(clippy::too_many_arguments)]
    pub fn add_upload(
        &self,
        bucket_id: &str,
        name: &str,
        content_type: &str,
        info: BTreeMap<String, String>,
        sha1: Option<String>,
        size: u64,
        blob: String,
        sse: Option<Sse>,
        lock: VersionLock,
    ) -> B2Result<Version> {
        let content = vec![Segment {
            blob: blob.clone(),
            len: size,
        }];
        let added = self.add_copy(
            bucket_id,
            name,
            content_type,
            info,
            sha1,
            size,
            content,
            sse,
            lock,
        );
        if added.is_err() && self.bucket(bucket_id).is_none() {
            self.remove_blobs(vec![blob]);
        }
        added
    }

    /// Records a version made of `content`: an upload's blob, or for a server-side copy
    /// the source's segments (shared, counted once more) or a new blob holding a range
    /// of them.
    #[allow(clippy::too_many_arguments)]
    pub fn add_copy(
        &self,
        bucket_id: &str,
        name: &str,
        content_type: &str,
        info: BTreeMap<String, String>,
        sha1: Option<String>,
        size: u64,
        content: Vec<Segment>,
        sse: Option<Sse>,
        lock: VersionLock,
    ) -> B2Result<Version> {
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket_id) {
            return Err(B2Error::bad_bucket_id(bucket_id));
        }
        let version = Version {
            seq: state.next_seq,
            bucket_id: bucket_id.to_owned(),
            name: name.to_owned(),
            action: Action::Upload,
            size,
            sha1,
            content_type: content_type.to_owned(),
            info,
            ts: now_millis(),
            content,
            sse,
            lock,
        };
        self.commit(&mut state, Record::Version(version.clone()))?;
        Ok(version)
    }

    pub fn hide(&self, bucket_id: &str, name: &str) -> B2Result<Version> {
        let mut state = self.lock();
        let bucket = state
            .buckets
            .get(bucket_id)
            .ok_or_else(|| B2Error::bad_bucket_id(bucket_id))?;
        let newest = bucket
            .names
            .get(name)
            .and_then(|vs| vs.iter().find(|v| v.action != Action::Start));
        match newest {
            None => {
                return Err(B2Error::new(
                    400,
                    "no_such_file",
                    format!("no file named {name}"),
                ))
            }
            Some(v) if v.action == Action::Hide => {
                return Err(B2Error::new(
                    400,
                    "already_hidden",
                    format!("{name} is already hidden"),
                ))
            }
            Some(_) => {}
        }
        let version = Version {
            seq: state.next_seq,
            bucket_id: bucket_id.to_owned(),
            name: name.to_owned(),
            action: Action::Hide,
            size: 0,
            sha1: None,
            content_type: "application/x-bz-hide-marker".to_owned(),
            info: BTreeMap::new(),
            ts: now_millis(),
            content: Vec::new(),
            sse: None,
            lock: VersionLock::default(),
        };
        self.commit(&mut state, Record::Version(version.clone()))?;
        Ok(version)
    }

    pub fn start_large(
        &self,
        bucket_id: &str,
        name: &str,
        content_type: &str,
        info: BTreeMap<String, String>,
        sse: Option<Sse>,
        lock: VersionLock,
    ) -> B2Result<Version> {
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket_id) {
            return Err(B2Error::bad_bucket_id(bucket_id));
        }
        let version = Version {
            seq: state.next_seq,
            bucket_id: bucket_id.to_owned(),
            name: name.to_owned(),
            action: Action::Start,
            size: 0,
            sha1: None,
            content_type: content_type.to_owned(),
            info,
            ts: now_millis(),
            content: Vec::new(),
            sse,
            lock,
        };
        self.commit(&mut state, Record::Version(version.clone()))?;
        Ok(version)
    }

    /// Any live version by sequence number.
    pub fn version(&self, seq: u64) -> Option<Version> {
        let state = self.lock();
        state.version(seq).cloned()
    }

    /// The unfinished large file with this file id, or 400 as B2 answers.
    pub fn unfinished(&self, file_id: &str) -> B2Result<Version> {
        let seq = parse_file_id(file_id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid fileId {file_id}")))?;
        match self.version(seq) {
            Some(v) if v.action == Action::Start && v.file_id() == file_id => Ok(v),
            _ => Err(B2Error::bad_request(format!(
                "no unfinished large file with fileId {file_id}"
            ))),
        }
    }

    /// Any live version by file id.
    pub fn version_by_id(&self, file_id: &str) -> Option<Version> {
        let seq = parse_file_id(file_id)?;
        self.version(seq).filter(|v| v.file_id() == file_id)
    }

    /// What a download by name serves: the newest upload, unless a hide marker is newer.
    pub fn newest_visible(&self, bucket_id: &str, name: &str) -> Option<Version> {
        let state = self.lock();
        let versions = state.buckets.get(bucket_id)?.names.get(name)?;
        visible(versions).cloned()
    }

    /// Records a verified part (replacing an earlier part with the same number).
    pub fn add_part(
        &self,
        seq: u64,
        number: u32,
        blob: String,
        size: u64,
        sha1: String,
    ) -> B2Result<Part> {
        let mut state = self.lock();
        if !state.parts.contains_key(&seq) {
            drop(state);
            self.remove_blobs(vec![blob]);
            return Err(B2Error::bad_request(
                "the large file was finished or cancelled during the part upload",
            ));
        }
        let part = Part {
            number,
            blob,
            size,
            sha1,
            ts: now_millis(),
        };
        self.commit(
            &mut state,
            Record::Part {
                seq,
                part: part.clone(),
            },
        )?;
        Ok(part)
    }

    /// Checks the parts against `part_sha1s` (part-number order) and B2's size rules,
    /// then makes the large file an upload.
    pub fn finish_large(
        &self,
        file_id: &str,
        part_sha1s: &[String],
        min_part_size: u64,
    ) -> B2Result<Version> {
        let seq = parse_file_id(file_id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid fileId {file_id}")))?;
        let mut state = self.lock();
        let is_unfinished = state
            .version(seq)
            .is_some_and(|v| v.action == Action::Start && v.file_id() == file_id);
        if !is_unfinished {
            return Err(B2Error::bad_request(format!(
                "no unfinished large file with fileId {file_id} (already finished or cancelled?)"
            )));
        }
        let parts = state.parts.get(&seq).cloned().unwrap_or_default();
        if part_sha1s.len() < 2 {
            return Err(B2Error::bad_request(
                "a large file must have at least 2 parts",
            ));
        }
        let mut total = 0u64;
        for (i, sha1) in part_sha1s.iter().enumerate() {
            let number = i as u32 + 1;
            let part = parts.get(&number).ok_or_else(|| {
                B2Error::bad_request(format!("part number {number} has not been uploaded"))
            })?;
            if !part.sha1.eq_ignore_ascii_case(sha1) {
                return Err(B2Error::bad_request(format!(
                    "partSha1Array[{i}] is {sha1} but part {number} has SHA1 {}",
                    part.sha1
                )));
            }
            let is_last = i + 1 == part_sha1s.len();
            if !is_last && part.size < min_part_size {
                return Err(B2Error::bad_request(format!(
                    "part {number} is {} bytes; every part but the last must be at least {min_part_size}",
                    part.size
                )));
            }
            total += part.size;
        }
        if let Some(extra) = parts.keys().find(|n| **n as usize > part_sha1s.len()) {
            return Err(B2Error::bad_request(format!(
                "part {extra} was uploaded but is not in partSha1Array"
            )));
        }
        if total > MAX_LARGE_FILE_BYTES {
            return Err(B2Error::bad_request("a large file may be at most 10 TB"));
        }
        self.commit(&mut state, Record::Finished { seq })?;
        Ok(state.version(seq).cloned().expect("just finished"))
    }

    pub fn cancel_large(&self, file_id: &str) -> B2Result<Version> {
        let version = self.unfinished(file_id)?;
        let mut state = self.lock();
        if !state.parts.contains_key(&version.seq) {
            return Err(B2Error::bad_request(format!(
                "no unfinished large file with fileId {file_id}"
            )));
        }
        self.commit(&mut state, Record::Removed { seq: version.seq })?;
        Ok(version)
    }

    /// Deletes exactly one version (an unfinished large file is cancelled), unless Object
    /// Lock holds it; `bypass_governance`: asked for, and the key has the capability.
    pub fn delete_version(
        &self,
        file_name: &str,
        file_id: &str,
        bypass_governance: bool,
    ) -> B2Result<Version> {
        let mut state = self.lock();
        let (seq, version) = state.named_version(file_name, file_id)?;
        super::locks::check_delete(&version, bypass_governance, super::locks::now())?;
        self.commit(&mut state, Record::Removed { seq })?;
        Ok(version)
    }
}
