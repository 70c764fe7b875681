//! Buckets, file versions, unfinished large files and their parts.
//!
//! Content lives in `blobs/` (one file per upload or part, written once and never
//! modified in place); metadata lives in memory and in `journal.jsonl`, an append-only
//! log with one JSON record per mutation, replayed at start. A finished large file keeps
//! its parts' blobs as segments and is served as their concatenation (no copy at finish).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::error::{B2Error, B2Result};

/// B2's limit for a single upload and for one part: 5 GB.
pub const MAX_UPLOAD_BYTES: u64 = 5_000_000_000;
/// B2's limit for a large file: 10 TB.
pub const MAX_LARGE_FILE_BYTES: u64 = 10_000_000_000_000;
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Upload,
    Hide,
    Start,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::Hide => "hide",
            Action::Start => "start",
        }
    }
}

/// A stretch of content: the whole of one blob file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Segment {
    pub blob: String,
    pub len: u64,
}

/// One file version: an upload, a hide marker, or an unfinished large file ("start").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    /// Global, increasing: orders versions (newest = highest) and makes the file id.
    pub seq: u64,
    pub bucket_id: String,
    pub name: String,
    pub action: Action,
    pub size: u64,
    /// `None` for large files, hide markers and unfinished files ("none" on the wire).
    pub sha1: Option<String>,
    pub content_type: String,
    pub info: BTreeMap<String, String>,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Segment>,
}

impl Version {
    pub fn file_id(&self) -> String {
        file_id(&self.bucket_id, self.seq)
    }

    pub fn sha1_or_none(&self) -> &str {
        self.sha1.as_deref().unwrap_or("none")
    }

    /// The JSON B2 uses for a file version in every call that returns one.
    pub fn to_json(&self, account_id: &str) -> Value {
        serde_json::to_value(self.json(account_id)).unwrap_or_default()
    }

    /// The same, as a borrowing serializable struct (listings serialize thousands).
    pub fn json<'a>(&'a self, account_id: &'a str) -> FileJson<'a> {
        let locks = (self.action != Action::Hide).then_some(LockSettings::NONE);
        FileJson {
            account_id,
            action: self.action.as_str(),
            bucket_id: &self.bucket_id,
            content_length: self.size,
            size: self.size,
            content_sha1: Some(self.sha1_or_none()),
            content_type: Some(&self.content_type),
            file_id: Some(self.file_id()),
            file_info: Some(&self.info),
            file_name: &self.name,
            upload_timestamp: self.ts,
            file_retention: locks.map(|l| l.0),
            legal_hold: locks.map(|l| l.1),
            server_side_encryption: locks.map(|l| l.2),
        }
    }
}

/// A file version (or a folder of a delimited listing) on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileJson<'a> {
    account_id: &'a str,
    action: &'static str,
    bucket_id: &'a str,
    content_length: u64,
    /// v1's name for contentLength (rclone reads it).
    size: u64,
    content_sha1: Option<&'a str>,
    content_type: Option<&'a str>,
    file_id: Option<String>,
    file_info: Option<&'a BTreeMap<String, String>>,
    file_name: &'a str,
    upload_timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_retention: Option<Readable<RetentionValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legal_hold: Option<Readable<Option<()>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_side_encryption: Option<Encryption>,
}

impl<'a> FileJson<'a> {
    /// A folder entry of a listing with a delimiter.
    pub fn folder(account_id: &'a str, bucket_id: &'a str, name: &'a str) -> FileJson<'a> {
        FileJson {
            account_id,
            action: "folder",
            bucket_id,
            content_length: 0,
            size: 0,
            content_sha1: None,
            content_type: None,
            file_id: None,
            file_info: None,
            file_name: name,
            upload_timestamp: 0,
            file_retention: None,
            legal_hold: None,
            server_side_encryption: None,
        }
    }
}

/// `{"isClientAuthorizedToRead": true, "value": ...}`, B2's wrapper for lock settings.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Readable<T> {
    is_client_authorized_to_read: bool,
    value: T,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct RetentionValue {
    mode: Option<()>,
    retain_until_timestamp: Option<u64>,
}

#[derive(Serialize, Clone, Copy)]
struct Encryption {
    algorithm: Option<()>,
    mode: Option<()>,
}

/// No object lock, no legal hold, no server-side encryption.
#[derive(Clone, Copy)]
struct LockSettings(Readable<RetentionValue>, Readable<Option<()>>, Encryption);

impl LockSettings {
    const NONE: LockSettings = LockSettings(
        Readable {
            is_client_authorized_to_read: true,
            value: RetentionValue {
                mode: None,
                retain_until_timestamp: None,
            },
        },
        Readable {
            is_client_authorized_to_read: true,
            value: None,
        },
        Encryption {
            algorithm: None,
            mode: None,
        },
    );
}

pub fn file_id(bucket_id: &str, seq: u64) -> String {
    format!("4_z{bucket_id}_f{seq:016x}")
}

/// The sequence number inside a file id made by [`file_id`].
pub fn parse_file_id(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("4_z")?;
    let (bucket, seq_hex) = rest.rsplit_once("_f")?;
    if seq_hex.len() != 16 || bucket.is_empty() {
        return None;
    }
    u64::from_str_radix(seq_hex, 16).ok()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    pub number: u32,
    pub blob: String,
    pub size: u64,
    pub sha1: String,
    pub ts: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BucketMeta {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub info: Value,
    pub lifecycle_rules: Value,
    pub cors_rules: Value,
    pub revision: u64,
}

impl BucketMeta {
    pub fn to_json(&self, account_id: &str) -> Value {
        json!({
            "accountId": account_id,
            "bucketId": self.id,
            "bucketName": self.name,
            "bucketType": self.kind,
            "bucketInfo": self.info,
            "corsRules": self.cors_rules,
            "lifecycleRules": self.lifecycle_rules,
            "revision": self.revision,
            "options": ["s3"],
            "defaultServerSideEncryption": {"isClientAuthorizedToRead": true,
                "value": {"algorithm": null, "mode": null}},
            "fileLockConfiguration": {"isClientAuthorizedToRead": true,
                "value": {"defaultRetention": {"mode": null, "period": null},
                          "isFileLockEnabled": false}},
            "replicationConfiguration": {"isClientAuthorizedToRead": true, "value": null},
        })
    }
}

struct Bucket {
    meta: BucketMeta,
    /// Versions of each name, newest (highest seq) first.
    names: BTreeMap<String, Vec<Version>>,
    unfinished: BTreeSet<(String, Reverse<u64>)>,
}

/// One journal line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    /// A bucket created, or its settings replaced.
    Bucket(BucketMeta),
    BucketDeleted {
        id: String,
    },
    Version(Version),
    Part {
        seq: u64,
        part: Part,
    },
    /// An unfinished large file becomes an upload made of its parts, in order.
    Finished {
        seq: u64,
    },
    /// A version deleted, or an unfinished large file cancelled.
    Removed {
        seq: u64,
    },
    /// `count` files `{prefix}{i:08}` sharing one blob (see `Emulator::seed_files`).
    Seeded {
        bucket_id: String,
        prefix: String,
        count: u64,
        size: u64,
        blob: String,
        sha1: String,
        first_seq: u64,
        ts: u64,
    },
    /// An unfinished large file and its parts made to look `millis` older (tests of what
    /// becomes of abandoned uploads; no time passes in tests).
    Backdated {
        seq: u64,
        millis: u64,
    },
    /// A version's content swapped (integrity tests corrupt a stored file this way).
    Replaced {
        seq: u64,
        content: Vec<Segment>,
    },
}

/// An entry of a file listing.
pub enum ListEntry {
    File(Version),
    Folder(String),
}

pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub start_name: Option<&'a str>,
    pub start_seq: Option<u64>,
    pub max: usize,
    /// true: b2_list_file_versions; false: b2_list_file_names.
    pub all_versions: bool,
}

pub struct ListPage {
    pub entries: Vec<ListEntry>,
    pub next_name: Option<String>,
    pub next_seq: Option<u64>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    /// name -> id, sorted by name for b2_list_buckets.
    bucket_ids: BTreeMap<String, String>,
    /// seq -> (bucket id, file name) for every live version.
    locations: HashMap<u64, (String, String)>,
    parts: HashMap<u64, BTreeMap<u32, Part>>,
    blob_refs: HashMap<String, u32>,
    next_seq: u64,
    journal: Option<File>,
}

pub struct Store {
    root: PathBuf,
    state: Mutex<State>,
    /// Holds an exclusive flock on `root/lock` so two emulators never share a journal.
    _lock: File,
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap())
        .collect()
}

impl Store {
    /// Opens (or creates) the store under `root`, replaying its journal.
    pub fn open(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root.join("blobs"))?;
        let lock = lock_data_dir(root)?;
        // Half-received uploads from a previous run are garbage.
        let _ = fs::remove_dir_all(root.join("tmp"));
        fs::create_dir_all(root.join("tmp"))?;
        let journal_path = root.join("journal.jsonl");
        let mut state = State {
            next_seq: 1,
            ..State::default()
        };
        if journal_path.exists() {
            let reader = BufReader::with_capacity(1 << 20, File::open(&journal_path)?);
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(&line) {
                    Ok(rec) => {
                        state.apply(rec);
                    }
                    // A torn last line after a crash; anything else is reported but skipped.
                    Err(e) => eprintln!("b2-emulator: journal line {} skipped: {e}", n + 1),
                }
            }
        }
        // Blobs nobody references (an upload cut off between rename and journal write).
        for entry in fs::read_dir(root.join("blobs"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !state.blob_refs.contains_key(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        state.journal = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&journal_path)?,
        );
        Ok(Store {
            root: root.to_owned(),
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn blob_path(&self, blob: &str) -> PathBuf {
        self.root.join("blobs").join(blob)
    }

    /// A fresh path for receiving an upload before it is verified.
    pub fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(random_hex(24))
    }

    /// Moves a verified temp file into the blob area, returning its blob name.
    pub fn adopt_blob(&self, temp: &Path) -> io::Result<String> {
        let blob = random_hex(32);
        fs::rename(temp, self.blob_path(&blob))?;
        Ok(blob)
    }

    fn remove_blobs(&self, blobs: Vec<String>) {
        for blob in blobs {
            let _ = fs::remove_file(self.blob_path(&blob));
        }
    }

    /// Journals `rec`, applies it, and deletes the blobs it freed.
    fn commit(&self, state: &mut MutexGuard<'_, State>, rec: Record) -> B2Result<()> {
        let mut line = serde_json::to_vec(&rec).map_err(|e| B2Error::internal(e.to_string()))?;
        line.push(b'\n');
        state
            .journal
            .as_mut()
            .expect("journal is open after load")
            .write_all(&line)?;
        let freed = state.apply(rec);
        self.remove_blobs(freed);
        Ok(())
    }

    // ---- buckets ----

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
        };
        self.commit(&mut state, Record::Bucket(meta.clone()))?;
        Ok(meta)
    }

    /// Replaces the given settings; `if_revision` must match when set (else 409 conflict).
    pub fn update_bucket(
        &self,
        id: &str,
        kind: Option<String>,
        info: Option<Value>,
        lifecycle_rules: Option<Value>,
        cors_rules: Option<Value>,
        if_revision: Option<u64>,
    ) -> B2Result<BucketMeta> {
        let mut state = self.lock();
        let mut meta = state
            .buckets
            .get(id)
            .map(|b| b.meta.clone())
            .ok_or_else(|| B2Error::bad_request(format!("invalid bucketId {id}")))?;
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
        meta.revision += 1;
        self.commit(&mut state, Record::Bucket(meta.clone()))?;
        Ok(meta)
    }

    pub fn delete_bucket(&self, id: &str) -> B2Result<BucketMeta> {
        let mut state = self.lock();
        let bucket = state
            .buckets
            .get(id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid bucketId {id}")))?;
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

    // ---- versions ----

    /// Records a verified upload whose content is already in `blob`.
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
    ) -> B2Result<Version> {
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket_id) {
            drop(state);
            self.remove_blobs(vec![blob]);
            return Err(B2Error::bad_request(format!(
                "invalid bucketId {bucket_id}"
            )));
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
            content: vec![Segment { blob, len: size }],
        };
        self.commit(&mut state, Record::Version(version.clone()))?;
        Ok(version)
    }

    pub fn hide(&self, bucket_id: &str, name: &str) -> B2Result<Version> {
        let mut state = self.lock();
        let bucket = state
            .buckets
            .get(bucket_id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid bucketId {bucket_id}")))?;
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
    ) -> B2Result<Version> {
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket_id) {
            return Err(B2Error::bad_request(format!(
                "invalid bucketId {bucket_id}"
            )));
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

    /// Deletes exactly one version (an unfinished large file is cancelled).
    pub fn delete_version(&self, file_name: &str, file_id: &str) -> B2Result<Version> {
        let missing = || {
            B2Error::new(
                400,
                "file_not_present",
                format!("file not present: {file_name} {file_id}"),
            )
        };
        let seq = parse_file_id(file_id).ok_or_else(missing)?;
        let mut state = self.lock();
        let version = state
            .version(seq)
            .filter(|v| v.file_id() == file_id && v.name == file_name)
            .cloned()
            .ok_or_else(missing)?;
        self.commit(&mut state, Record::Removed { seq })?;
        Ok(version)
    }

    // ---- listings ----

    pub fn list(&self, bucket_id: &str, q: &ListQuery<'_>) -> B2Result<ListPage> {
        let state = self.lock();
        let bucket = state
            .buckets
            .get(bucket_id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid bucketId {bucket_id}")))?;
        Ok(list_bucket(&bucket.names, q))
    }

    /// Unfinished large files by name (newest first within a name), from `start_seq`.
    pub fn list_unfinished(
        &self,
        bucket_id: &str,
        prefix: &str,
        start_seq: Option<u64>,
        max: usize,
    ) -> B2Result<(Vec<Version>, Option<u64>)> {
        let state = self.lock();
        let bucket = state
            .buckets
            .get(bucket_id)
            .ok_or_else(|| B2Error::bad_request(format!("invalid bucketId {bucket_id}")))?;
        let lower = match start_seq {
            Some(seq) => {
                let (_, name) = state
                    .locations
                    .get(&seq)
                    .ok_or_else(|| B2Error::bad_request("invalid startFileId"))?;
                (name.clone(), Reverse(seq))
            }
            None => (prefix.to_owned(), Reverse(u64::MAX)),
        };
        let mut files = Vec::new();
        let mut next = None;
        for (name, Reverse(seq)) in bucket.unfinished.range(lower..) {
            if !name.starts_with(prefix) {
                if name.as_str() > prefix {
                    break;
                }
                continue;
            }
            if files.len() == max {
                next = Some(*seq);
                break;
            }
            if let Some(v) = state.version(*seq) {
                files.push(v.clone());
            }
        }
        Ok((files, next))
    }

    /// Parts of an unfinished large file from `start`, and the next part number.
    pub fn list_parts(
        &self,
        seq: u64,
        start: u32,
        max: usize,
    ) -> B2Result<(Vec<Part>, Option<u32>)> {
        let state = self.lock();
        let parts = state
            .parts
            .get(&seq)
            .ok_or_else(|| B2Error::bad_request("no unfinished large file with this fileId"))?;
        let mut iter = parts.range(start..);
        let page: Vec<Part> = iter.by_ref().take(max).map(|(_, p)| p.clone()).collect();
        let next = iter.next().map(|(n, _)| *n);
        Ok((page, next))
    }

    /// Every version of a bucket (hide markers and unfinished large files included), B2 order.
    pub fn all_versions(&self, bucket_id: &str) -> Vec<Version> {
        let state = self.lock();
        state
            .buckets
            .get(bucket_id)
            .map(|b| b.names.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    // ---- test helpers ----

    /// Creates `count` files `{prefix}{i:08}` of `size` bytes, all sharing one blob.
    pub fn seed(&self, bucket_id: &str, prefix: &str, count: u64, size: u64) -> B2Result<()> {
        let temp = self.temp_path();
        let sha1 = write_pattern_file(&temp, size)?;
        let blob = self.adopt_blob(&temp)?;
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket_id) {
            return Err(B2Error::bad_request(format!(
                "invalid bucketId {bucket_id}"
            )));
        }
        let first_seq = state.next_seq;
        self.commit(
            &mut state,
            Record::Seeded {
                bucket_id: bucket_id.to_owned(),
                prefix: prefix.to_owned(),
                count,
                size,
                blob,
                sha1,
                first_seq,
                ts: now_millis(),
            },
        )
    }

    /// Makes the unfinished large files of `name` and their parts `millis` older; returns
    /// how many there were.
    pub fn backdate_unfinished(&self, bucket_id: &str, name: &str, millis: u64) -> B2Result<u64> {
        let mut state = self.lock();
        let seqs: Vec<u64> = state
            .buckets
            .get(bucket_id)
            .map(|b| {
                b.unfinished
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, Reverse(seq))| *seq)
                    .collect()
            })
            .unwrap_or_default();
        for &seq in &seqs {
            self.commit(&mut state, Record::Backdated { seq, millis })?;
        }
        Ok(seqs.len() as u64)
    }

    /// Gives the newest upload of `name` a copy of its content with one byte flipped,
    /// keeping the recorded SHA1.
    pub fn corrupt(&self, bucket_id: &str, name: &str) -> B2Result<()> {
        let version = self
            .newest_visible(bucket_id, name)
            .ok_or_else(|| B2Error::not_found(format!("no visible file {name}")))?;
        let Some(index) = version.content.iter().position(|s| s.len > 0) else {
            return Ok(()); // nothing to flip in an empty file
        };
        let segment = &version.content[index];
        let mut bytes = fs::read(self.blob_path(&segment.blob))?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let temp = self.temp_path();
        fs::write(&temp, &bytes)?;
        let blob = self.adopt_blob(&temp)?;
        let mut content = version.content.clone();
        content[index] = Segment {
            blob,
            len: segment.len,
        };
        let mut state = self.lock();
        self.commit(
            &mut state,
            Record::Replaced {
                seq: version.seq,
                content,
            },
        )
    }
}

fn lock_data_dir(root: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("lock"))?;
    // SAFETY: flock only reads the descriptor, which `lock` keeps open.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another b2-emulator", root.display()),
        ));
    }
    Ok(lock)
}

/// The version a download by name or b2_list_file_names shows, if any.
fn visible(versions: &[Version]) -> Option<&Version> {
    versions
        .iter()
        .find(|v| v.action != Action::Start)
        .filter(|v| v.action == Action::Upload)
}

/// The smallest string greater than every string starting with `s`.
fn prefix_successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(nc) = char::from_u32(next) {
            chars.push(nc);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn list_bucket(names: &BTreeMap<String, Vec<Version>>, q: &ListQuery<'_>) -> ListPage {
    let mut page = ListPage {
        entries: Vec::new(),
        next_name: None,
        next_seq: None,
    };
    let start = match q.start_name {
        Some(s) if s > q.prefix => s,
        _ => q.prefix,
    };
    let mut lower: Bound<String> = Bound::Included(start.to_owned());
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    while let Some((name, versions)) = names
        .range::<str, _>((lower.as_ref().map(|s| s.as_str()), Bound::Unbounded))
        .next()
    {
        if !name.starts_with(q.prefix) {
            break;
        }
        if let Some(d) = delimiter {
            if let Some(pos) = name[q.prefix.len()..].find(d) {
                let folder = &name[..q.prefix.len() + pos + d.len()];
                let after = prefix_successor(folder);
                let upper = match &after {
                    Some(a) => Bound::Excluded(a.as_str()),
                    None => Bound::Unbounded,
                };
                let shown = q.all_versions
                    || names
                        .range::<str, _>((Bound::Included(folder), upper))
                        .any(|(_, vs)| visible(vs).is_some());
                if shown {
                    if page.entries.len() == q.max {
                        page.next_name = Some(folder.to_owned());
                        return page;
                    }
                    page.entries.push(ListEntry::Folder(folder.to_owned()));
                }
                match after {
                    Some(a) => lower = Bound::Included(a),
                    None => break,
                }
                continue;
            }
        }
        if q.all_versions {
            let from_seq = match (q.start_seq, q.start_name) {
                (Some(seq), Some(start)) if start == name => seq,
                _ => u64::MAX,
            };
            for v in versions.iter().filter(|v| v.seq <= from_seq) {
                if page.entries.len() == q.max {
                    page.next_name = Some(name.clone());
                    page.next_seq = Some(v.seq);
                    return page;
                }
                page.entries.push(ListEntry::File(v.clone()));
            }
        } else if let Some(v) = visible(versions) {
            if page.entries.len() == q.max {
                page.next_name = Some(name.clone());
                return page;
            }
            page.entries.push(ListEntry::File(v.clone()));
        }
        lower = Bound::Excluded(name.clone());
    }
    page
}

/// Writes `size` bytes of a fixed pseudo-random pattern, returning their SHA1 (hex).
fn write_pattern_file(path: &Path, size: u64) -> io::Result<String> {
    let mut block = vec![0u8; 1 << 20];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    rng.fill(&mut block);
    let mut file = io::BufWriter::new(File::create(path)?);
    let mut hasher = Sha1::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        hasher.update(&block[..n]);
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

impl State {
    fn version(&self, seq: u64) -> Option<&Version> {
        let (bucket_id, name) = self.locations.get(&seq)?;
        self.buckets
            .get(bucket_id)?
            .names
            .get(name)?
            .iter()
            .find(|v| v.seq == seq)
    }

    fn version_mut(&mut self, seq: u64) -> Option<&mut Version> {
        let (bucket_id, name) = self.locations.get(&seq)?;
        self.buckets
            .get_mut(bucket_id)?
            .names
            .get_mut(name)?
            .iter_mut()
            .find(|v| v.seq == seq)
    }

    fn add_ref(&mut self, blob: &str) {
        *self.blob_refs.entry(blob.to_owned()).or_insert(0) += 1;
    }

    fn drop_ref(&mut self, blob: &str, freed: &mut Vec<String>) {
        if let Some(n) = self.blob_refs.get_mut(blob) {
            *n -= 1;
            if *n == 0 {
                self.blob_refs.remove(blob);
                freed.push(blob.to_owned());
            }
        }
    }

    fn insert_version(&mut self, v: Version) {
        let Some(bucket) = self.buckets.get_mut(&v.bucket_id) else {
            return;
        };
        self.next_seq = self.next_seq.max(v.seq + 1);
        if v.action == Action::Start {
            bucket.unfinished.insert((v.name.clone(), Reverse(v.seq)));
            self.parts.entry(v.seq).or_default();
        }
        self.locations
            .insert(v.seq, (v.bucket_id.clone(), v.name.clone()));
        let versions = bucket.names.entry(v.name.clone()).or_default();
        // Newest first; appends at the front in the common case.
        let at = versions.partition_point(|x| x.seq > v.seq);
        let blobs: Vec<String> = v.content.iter().map(|s| s.blob.clone()).collect();
        versions.insert(at, v);
        for blob in blobs {
            self.add_ref(&blob);
        }
    }

    /// Applies one record; returns the blobs no longer referenced.
    fn apply(&mut self, rec: Record) -> Vec<String> {
        let mut freed = Vec::new();
        match rec {
            Record::Bucket(meta) => {
                self.bucket_ids.insert(meta.name.clone(), meta.id.clone());
                match self.buckets.get_mut(&meta.id) {
                    Some(bucket) => bucket.meta = meta,
                    None => {
                        self.buckets.insert(
                            meta.id.clone(),
                            Bucket {
                                meta,
                                names: BTreeMap::new(),
                                unfinished: BTreeSet::new(),
                            },
                        );
                    }
                }
            }
            Record::BucketDeleted { id } => {
                if let Some(bucket) = self.buckets.remove(&id) {
                    self.bucket_ids.remove(&bucket.meta.name);
                    for v in bucket.names.into_values().flatten() {
                        self.locations.remove(&v.seq);
                        for s in &v.content {
                            self.drop_ref(&s.blob, &mut freed);
                        }
                        if let Some(parts) = self.parts.remove(&v.seq) {
                            for p in parts.values() {
                                self.drop_ref(&p.blob, &mut freed);
                            }
                        }
                    }
                }
            }
            Record::Version(v) => self.insert_version(v),
            Record::Part { seq, part } => {
                if self.parts.contains_key(&seq) {
                    self.add_ref(&part.blob);
                    let old = self
                        .parts
                        .get_mut(&seq)
                        .and_then(|parts| parts.insert(part.number, part));
                    if let Some(old) = old {
                        self.drop_ref(&old.blob, &mut freed);
                    }
                }
            }
            Record::Finished { seq } => {
                // The parts' blob references move to the file's segments unchanged.
                let parts = self.parts.remove(&seq).unwrap_or_default();
                if let Some(v) = self.version_mut(seq) {
                    v.action = Action::Upload;
                    v.size = parts.values().map(|p| p.size).sum();
                    v.sha1 = None;
                    v.content = parts
                        .into_values()
                        .map(|p| Segment {
                            blob: p.blob,
                            len: p.size,
                        })
                        .collect();
                    let key = (v.name.clone(), Reverse(seq));
                    let bucket_id = v.bucket_id.clone();
                    if let Some(bucket) = self.buckets.get_mut(&bucket_id) {
                        bucket.unfinished.remove(&key);
                    }
                }
            }
            Record::Removed { seq } => {
                if let Some((bucket_id, name)) = self.locations.remove(&seq) {
                    let mut removed = None;
                    if let Some(bucket) = self.buckets.get_mut(&bucket_id) {
                        if let Some(versions) = bucket.names.get_mut(&name) {
                            if let Some(i) = versions.iter().position(|v| v.seq == seq) {
                                removed = Some(versions.remove(i));
                            }
                            if versions.is_empty() {
                                bucket.names.remove(&name);
                            }
                        }
                        bucket.unfinished.remove(&(name, Reverse(seq)));
                    }
                    if let Some(v) = removed {
                        for s in &v.content {
                            self.drop_ref(&s.blob, &mut freed);
                        }
                    }
                    if let Some(parts) = self.parts.remove(&seq) {
                        for p in parts.values() {
                            self.drop_ref(&p.blob, &mut freed);
                        }
                    }
                }
            }
            Record::Seeded {
                bucket_id,
                prefix,
                count,
                size,
                blob,
                sha1,
                first_seq,
                ts,
            } => {
                for i in 0..count {
                    self.insert_version(Version {
                        seq: first_seq + i,
                        bucket_id: bucket_id.clone(),
                        name: format!("{prefix}{i:08}"),
                        action: Action::Upload,
                        size,
                        sha1: Some(sha1.clone()),
                        content_type: "application/octet-stream".to_owned(),
                        info: BTreeMap::new(),
                        ts,
                        content: vec![Segment {
                            blob: blob.clone(),
                            len: size,
                        }],
                    });
                }
            }
            Record::Backdated { seq, millis } => {
                if let Some(v) = self.version_mut(seq) {
                    v.ts = v.ts.saturating_sub(millis);
                }
                for p in self
                    .parts
                    .get_mut(&seq)
                    .into_iter()
                    .flat_map(|p| p.values_mut())
                {
                    p.ts = p.ts.saturating_sub(millis);
                }
            }
            Record::Replaced { seq, content } => {
                let new_blobs: Vec<String> = content.iter().map(|s| s.blob.clone()).collect();
                let old = self
                    .version_mut(seq)
                    .map(|v| std::mem::replace(&mut v.content, content));
                if let Some(old) = old {
                    for blob in new_blobs {
                        self.add_ref(&blob);
                    }
                    for s in old {
                        self.drop_ref(&s.blob, &mut freed);
                    }
                }
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_a_folder() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("\u{d7ff}").as_deref(), Some("\u{e000}"));
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn file_ids_round_trip() {
        let id = file_id("abc123", 42);
        assert_eq!(parse_file_id(&id), Some(42));
        assert_eq!(parse_file_id("garbage"), None);
    }
}
