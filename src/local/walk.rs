//! The walk of a directory tree the host named for an upload, through directory handles:
//! each subdirectory opened relative to its parent's handle without following links, and
//! checked to be the one the walk saw; files handed out by name and identity, for the
//! upload to open when their turn comes.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::dir::{identity_of_dir, Dir};
use super::shown;
use super::sys::{is_link_error, EntryKind};
use crate::error::Error;
use crate::operation::Operation;
use crate::remote_path::{check_segments, RemotePath, MAX_NAME_BYTES};

pub enum WalkItem {
    /// A regular file `name` in `dir`, as the walk saw it (device, inode).
    File {
        remote: RemotePath,
        dir: Arc<Dir>,
        name: OsString,
        seen: (u64, u64),
    },
    /// A file or directory that cannot be uploaded, and why (the reason names it).
    Skip { local_path: PathBuf, reason: String },
}

/// A subdirectory still to list: the depth of its parent in `Walk::chain`, its name, its
/// `/`-path below the root, and the device and inode the walk saw.
type PendingDir = (usize, OsString, String, (u64, u64));

/// The walk of a directory tree, depth first, each directory's entries in byte order,
/// listed only when the upload reaches it. It holds a handle on the root, on the directory
/// listed last and on those of the files under way, never one per level or per file: a
/// customer's tree of any depth cannot use up the host process's open files. The parent of
/// the next directory to list is reached back through `..`, checked against the device and
/// inode the walk saw at that level (or, when a customer moved something, opened again
/// from the root, level by level, with the same check).
pub struct Walk {
    root: RemotePath,
    /// Progress: each file's size counts in the total as soon as the walk sees it.
    op: Arc<Operation>,
    root_dir: Arc<Dir>,
    /// The directory listed last.
    current: Arc<Dir>,
    /// From the root down to `current`: each level's name (empty for the root) and identity.
    chain: Vec<(OsString, (u64, u64))>,
    pending: Vec<PendingDir>,
    queue: VecDeque<WalkItem>,
    /// Entries that are neither files nor directories: skipped by design, not failures.
    pub warnings: Arc<Mutex<Vec<String>>>,
}

impl Walk {
    pub fn new(root_dir: Arc<Dir>, root: RemotePath, op: Arc<Operation>) -> Walk {
        let root_id = identity_of_dir(&root_dir).unwrap_or_default();
        let mut walk = Walk {
            root,
            op,
            root_dir: root_dir.clone(),
            current: root_dir.clone(),
            chain: vec![(OsString::new(), root_id)],
            pending: Vec::new(),
            queue: VecDeque::new(),
            warnings: Arc::default(),
        };
        walk.list(root_dir, String::new());
        walk
    }

    /// The directory at `depth` of the chain, now `current`.
    fn climb_to(&mut self, depth: usize) -> std::io::Result<Arc<Dir>> {
        while self.chain.len() > depth + 1 {
            let want = self.chain[self.chain.len() - 2].1;
            let up = self.current.parent()?;
            if identity_of_dir(&up)? != want {
                return self.descend_to(depth);
            }
            self.chain.pop();
            self.current = Arc::new(up);
        }
        Ok(self.current.clone())
    }

    /// Opens the chain down to `depth` again from the root, each level checked.
    fn descend_to(&mut self, depth: usize) -> std::io::Result<Arc<Dir>> {
        self.chain.truncate(depth + 1);
        let mut at = self.root_dir.clone();
        for (name, want) in &self.chain[1..] {
            let next = at.subdir(name)?;
            if identity_of_dir(&next)? != *want {
                return Err(std::io::Error::other(
                    "a directory above it was moved or replaced during the backup",
                ));
            }
            at = Arc::new(next);
        }
        self.current = at.clone();
        Ok(at)
    }

    fn skip(&mut self, local_path: PathBuf, reason: String) {
        self.queue.push_back(WalkItem::Skip { local_path, reason });
    }

    fn list(&mut self, dir: Arc<Dir>, prefix: String) {
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                let reason = Error::local_io("could not list", dir.path(), &e).to_string();
                return self.skip(dir.path().to_path_buf(), reason);
            }
        };
        let mut subdirs = Vec::new();
        // `dir` is `current`, the deepest of the chain.
        let depth = self.chain.len() - 1;
        for name in names {
            let path = dir.display(&name);
            // The name is the customer's: messages show it escaped.
            let shown = shown(&path);
            let Some(text) = name.to_str() else {
                let reason = format!(
                    "{shown} has a name that is not UTF-8, which B2 file names must be: rename it"
                );
                self.skip(path, reason);
                continue;
            };
            let stat = match dir.stat_at(&name) {
                Ok(Some(s)) => s,
                Ok(None) => continue, // removed since the listing: nothing to back up
                Err(e) => {
                    let reason =
                        Error::local_io("could not read", Path::new(&shown), &e).to_string();
                    self.skip(path, reason);
                    continue;
                }
            };
            if !matches!(stat.kind, EntryKind::File | EntryKind::Dir) {
                if let Ok(mut w) = self.warnings.lock() {
                    w.push(format!(
                        "{shown} is not a regular file (a link, socket or device) and was skipped"
                    ));
                }
                continue;
            }
            if let Err(why) = check_segments(text) {
                let reason = format!("{shown} cannot be uploaded: its name {why}; rename it");
                self.skip(path, reason);
                continue;
            }
            let sub = if prefix.is_empty() {
                text.to_string()
            } else {
                format!("{prefix}/{text}")
            };
            if stat.kind == EntryKind::Dir {
                // No file below fits B2's names: not walked (a handle a level, each name
                // listed and refused one by one, for a tree a customer can make any depth).
                if self.root.child(&format!("{sub}/x")).is_err() {
                    let reason = format!(
                        "{shown} is too deep: the B2 name of any file below it would be over {MAX_NAME_BYTES} bytes; nothing below it was uploaded"
                    );
                    self.skip(path, reason);
                    continue;
                }
                subdirs.push((depth, name, sub, (stat.dev, stat.ino)));
                continue;
            }
            match self.root.child(&sub) {
                Ok(remote) => {
                    self.op.add_total(stat.len);
                    self.queue.push_back(WalkItem::File {
                        remote,
                        dir: dir.clone(),
                        name,
                        seen: (stat.dev, stat.ino),
                    })
                }
                Err(e) => {
                    let reason = format!("{shown} cannot be uploaded: {e}");
                    self.skip(path, reason);
                }
            }
        }
        // Popped from the end: push in reverse so that they are listed in byte order.
        self.pending.extend(subdirs.into_iter().rev());
    }

    /// Opens a subdirectory through its parent's handle, refusing a link or another
    /// directory put in the place of the one the walk saw.
    fn open_pending(&mut self) -> bool {
        let Some((depth, name, sub, seen)) = self.pending.pop() else {
            return false;
        };
        let parent = match self.climb_to(depth) {
            Ok(p) => p,
            Err(e) => {
                let path = self.root_dir.path().join(&sub);
                let reason = Error::local_io("could not reach the directory", &path, &e);
                self.skip(path, format!("{reason}; nothing below it was uploaded"));
                return true;
            }
        };
        let path = parent.display(&name);
        let opened = parent.subdir(&name).and_then(|d| {
            let id = identity_of_dir(&d)?;
            Ok((d, id))
        });
        match opened {
            Ok((d, id)) if id == seen => {
                let d = Arc::new(d);
                self.chain.push((name, id));
                self.current = d.clone();
                self.list(d, sub)
            }
            Ok(_) => self.skip(
                path.clone(),
                format!(
                    "{} was replaced by another directory after its parent was read; nothing below it was uploaded",
                    path.display()
                ),
            ),
            Err(e) if is_link_error(&e) => self.skip(
                path.clone(),
                format!(
                    "{} became a symbolic link after its parent was read; it was not followed and nothing below it was uploaded",
                    path.display()
                ),
            ),
            Err(e) => {
                let reason = Error::local_io("could not open the directory", &path, &e);
                self.skip(path, format!("{reason}; nothing below it was uploaded"))
            }
        }
        true
    }
}

impl Iterator for Walk {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if !self.open_pending() {
                return None;
            }
        }
    }
}
