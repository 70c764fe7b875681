//! The append-only journal: one record per mutation, replayed at start into the
//! in-memory state; and the data directory's lock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{Action, BucketMeta, Part, Segment, Version};

pub(super) struct Bucket {
    pub(super) meta: BucketMeta,
    /// Versions of each name, newest (highest seq) first.
    pub(super) names: BTreeMap<String, Vec<Version>>,
    pub(super) unfinished: BTreeSet<(String, Reverse<u64>)>,
}

/// One journal line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Record {
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
    /// A version's Object Lock retention and legal hold set.
    Lock {
        seq: u64,
        lock: super::model::VersionLock,
    },
    /// A version's content swapped (integrity tests corrupt a stored file this way).
    Replaced {
        seq: u64,
        content: Vec<Segment>,
    },
}

#[derive(Default)]
pub(super) struct State {
    pub(super) buckets: HashMap<String, Bucket>,
    /// name -> id, sorted by name for b2_list_buckets.
    pub(super) bucket_ids: BTreeMap<String, String>,
    /// seq -> (bucket id, file name) for every live version.
    pub(super) locations: HashMap<u64, (String, String)>,
    pub(super) parts: HashMap<u64, BTreeMap<u32, Part>>,
    pub(super) blob_refs: HashMap<String, u32>,
    pub(super) next_seq: u64,
    pub(super) journal: Option<File>,
}

/// Reads every record of the journal at `path` (if any) into a fresh state.
pub(super) fn replay(path: &Path) -> io::Result<State> {
    let mut state = State {
        next_seq: 1,
        ..State::default()
    };
    if path.exists() {
        let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
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
    Ok(state)
}

pub(super) fn lock_data_dir(root: &Path) -> io::Result<File> {
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

impl State {
    pub(super) fn version(&self, seq: u64) -> Option<&Version> {
        let (bucket_id, name) = self.locations.get(&seq)?;
        self.buckets
            .get(bucket_id)?
            .names
            .get(name)?
            .iter()
            .find(|v| v.seq == seq)
    }

    /// The version `file_id` if it is still there under `file_name`; otherwise B2's
    /// `file_not_present`.
    pub(super) fn named_version(
        &self,
        file_name: &str,
        file_id: &str,
    ) -> crate::error::B2Result<(u64, Version)> {
        let missing = || {
            crate::error::B2Error::new(
                400,
                "file_not_present",
                format!("file not present: {file_name} {file_id}"),
            )
        };
        let seq = super::model::parse_file_id(file_id).ok_or_else(missing)?;
        let version = self
            .version(seq)
            .filter(|v| v.file_id() == file_id && v.name == file_name)
            .cloned()
            .ok_or_else(missing)?;
        Ok((seq, version))
    }

    pub(super) fn version_mut(&mut self, seq: u64) -> Option<&mut Version> {
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
    pub(super) fn apply(&mut self, rec: Record) -> Vec<String> {
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
                        sse: None,
                        lock: Default::default(),
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
            Record::Lock { seq, lock } => {
                if let Some(v) = self.version_mut(seq) {
                    v.lock = lock;
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
    use crate::store::model::Sse;
    use crate::store::model::{BucketLock, LockMode, Retention, VersionLock};

    #[test]
    fn journals_written_before_encryption_and_object_lock_still_load() {
        let bucket = r#"{"op":"bucket","id":"b1","name":"n","kind":"allPrivate","info":{},"lifecycle_rules":[],"cors_rules":[],"revision":1}"#;
        let Record::Bucket(meta) = serde_json::from_str(bucket).unwrap() else {
            panic!("not a bucket record");
        };
        assert_eq!((meta.default_sse, meta.lock), (None, BucketLock::default()));
        let version = r#"{"op":"version","seq":3,"bucket_id":"b1","name":"f","action":"upload","size":1,"sha1":"x","content_type":"a/b","info":{},"ts":5}"#;
        let Record::Version(v) = serde_json::from_str(version).unwrap() else {
            panic!("not a version record");
        };
        assert_eq!((v.sse, v.lock), (None, VersionLock::default()));
    }

    #[test]
    fn a_version_keeps_its_encryption_and_its_lock_through_the_journal() {
        let lock = VersionLock {
            retention: Some(Retention {
                mode: LockMode::Compliance,
                retain_until: 42,
            }),
            legal_hold: Some(true),
        };
        let sse = Sse::C {
            key_md5: "bWQ1".to_owned(),
        };
        let v = Version {
            seq: 3,
            bucket_id: "b1".into(),
            name: "f".into(),
            action: Action::Upload,
            size: 1,
            sha1: None,
            content_type: "a/b".into(),
            info: BTreeMap::new(),
            ts: 5,
            content: Vec::new(),
            sse: Some(sse.clone()),
            lock,
        };
        let line = serde_json::to_string(&Record::Version(v)).unwrap();
        let Record::Version(back) = serde_json::from_str(&line).unwrap() else {
            panic!("not a version record: {line}");
        };
        assert_eq!((back.sse, back.lock), (Some(sse), lock), "{line}");
    }
}
