//! Buckets, file versions, unfinished large files and their parts.
//!
//! Content lives in `blobs/` (one file per upload or part, written once and never
//! modified in place); metadata lives in memory and in `journal.jsonl`, an append-only
//! log with one JSON record per mutation, replayed at start. A finished large file keeps
//! its parts' blobs as segments and is served as their concatenation (no copy at finish).

//! The store is split by concern: `model` (a version's fields), `wire` (their JSON),
//! `journal` (records and replay), `buckets` and `versions` (mutations), `listing`,
//! `seeding` (test helpers).

mod buckets;
mod journal;
mod listing;
mod locks;
mod model;
mod seeding;
mod versions;
mod wire;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{B2Error, B2Result};

use journal::{Record, State};

pub use listing::{ListEntry, ListQuery};
pub use locks::check_retention_change;
pub use model::*;
pub use wire::{FileJson, LockReaders, StoredVersion};

pub struct Store {
    root: PathBuf,
    state: Mutex<State>,
    /// Holds an exclusive flock on `root/lock` so two emulators never share a journal.
    _lock: File,
}

impl Store {
    /// Opens (or creates) the store under `root`, replaying its journal.
    pub fn open(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root.join("blobs"))?;
        let lock = journal::lock_data_dir(root)?;
        // Half-received uploads from a previous run are garbage.
        let _ = fs::remove_dir_all(root.join("tmp"));
        fs::create_dir_all(root.join("tmp"))?;
        let journal_path = root.join("journal.jsonl");
        let mut state = journal::replay(&journal_path)?;
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
}
