//! Restores write through a temporary file that nobody else can reach: made in a private
//! directory of this library's own beside the target (or unnamed, with `O_TMPFILE`),
//! renamed onto the target only once its SHA1 matched, and cleaned up after a killed
//! restore (`remove_stale_temps`). Only directory handles are used (`Dir`): no path is
//! resolved twice, no link followed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::dir::{identity_of_dir, Dir};
use super::sys::{identity, is_link_error, EntryKind};
use crate::error::{Error, Result};

/// Set (to anything) in tests: use the named temporary file even where `O_TMPFILE` works,
/// so that the fallback and its clean-up can be tested on any file system.
pub const NAMED_TEMP_ENV: &str = "B2DEST_TEST_NAMED_TEMP";

/// A private directory's name: `.b2dest-{16 hex}`.
fn private_name() -> OsString {
    OsString::from(format!(".b2dest-{:016x}", fastrand::u64(..)))
}

/// Whether `name` has the pattern of `private_name`.
fn is_private_name(name: &[u8]) -> bool {
    name.strip_prefix(b".b2dest-").is_some_and(|rest| {
        rest.len() == 16
            && rest
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    })
}

/// The name of the temporary file inside its private directory (there is one file in each).
const INNER: &str = "restoring.b2dest.tmp";

/// Removes, from `dir`, the private directories this library left there when a restore was
/// killed, and the temporary file in them. Only names of the pattern, opened without
/// following a link, and only directories owned by this process's user and open to nobody
/// else (`Dir::open_private`), so that their content can only be this library's: a
/// customer's directory or link of that name is left alone. Only those no live restore holds
/// (each keeps an `flock` on its private directory); inside, only `INNER`, a regular file;
/// the directory itself only while it still is the one checked, and only once empty
/// (`Dir::remove_dir_if`). Returns how many directories went.
pub fn remove_stale_temps(dir: &Dir) -> usize {
    let Ok(names) = dir.names() else {
        return 0;
    };
    let mut removed = 0;
    for name in names {
        if !is_private_name(name.as_bytes()) {
            continue;
        }
        let Ok(private) = dir.open_private(&name) else {
            continue;
        };
        // Held by a live restore (or by another clean-up): left alone. Free: the restore that
        // made it died.
        if !private.try_lock() {
            continue;
        }
        let inner = OsStr::new(INNER);
        if matches!(private.stat_at(inner), Ok(Some(s)) if s.kind == EntryKind::File) {
            let _ = private.unlink(inner);
        }
        let Ok(id) = identity_of_dir(&private) else {
            continue;
        };
        if dir.remove_dir_if(&name, id).unwrap_or(false) {
            removed += 1;
        }
    }
    removed
}

/// A directory of this library's own beside the target, `0700`, locked while it lives, and
/// removed (with the file in it) when dropped. The customer who owns the directory holding
/// it can rename it there, or remove it once empty, but cannot change what is in it: the
/// temporary file is named and renamed only relative to this handle, so nothing the
/// customer can rename is ever the source of the rename onto the target.
pub struct PrivateDir {
    parent: Arc<Dir>,
    /// Its name in `parent` when it was made: for the removal only, which checks it.
    name: OsString,
    dir: Dir,
    id: (u64, u64),
}

impl PrivateDir {
    fn create(parent: &Arc<Dir>) -> Result<PrivateDir> {
        let failed = |e: &std::io::Error| {
            Error::local_io("could not create a private directory in", parent.path(), e)
        };
        let mut last = None;
        for _ in 0..16 {
            let name = private_name();
            match parent.make_private_dir(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(failed(&e)),
            }
            // Opened by name once more, and the customer may have swapped the name in
            // between: `open_private` takes only a private directory of ours (a link or a
            // directory of theirs fails, and ours, moved away, is left: empty and harmless).
            // Such a swap is tried again with another name; any other failure is told.
            let dir = match parent.open_private(&name) {
                Ok(dir) => dir,
                Err(e)
                    if is_link_error(&e)
                        || matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                        ) =>
                {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(failed(&e)),
            };
            // Locked before use, and still linked once locked: the clean-up of another
            // restore may have taken it for a leftover between `mkdirat` and here (it then
            // removes it; this one starts over).
            if !dir.try_lock() || dir.is_removed().unwrap_or(true) {
                continue;
            }
            let id = identity_of_dir(&dir).map_err(|e| failed(&e))?;
            return Ok(PrivateDir {
                parent: parent.clone(),
                name,
                dir,
                id,
            });
        }
        Err(match last {
            Some(e) => failed(&e),
            None => Error::LocalIo(format!(
                "could not create a private directory in {}",
                parent.path().display()
            )),
        })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Nothing once the file was renamed into place; the file otherwise (a failure, a
        // cancel, a panic). Then the directory, by name, only if it still is this one.
        let _ = self.dir.unlink(OsStr::new(INNER));
        let _ = self.parent.remove_dir_if(&self.name, self.id);
    }
}

/// A temporary file that disappears unless it was put in place: an unnamed one has no name
/// to leave, a named one goes with its private directory.
pub struct TempFile {
    dir: Arc<Dir>,
    /// Where the file is named `INNER`: from the start for the named fallback, from
    /// `persist` on for an unnamed one that replaces a file.
    private: Option<PrivateDir>,
    /// For messages: the target's path.
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Held around each write: concurrent writes to one file queue for its inode lock,
    /// which the kernel spins on while the holder copies (up to a whole core per waiting
    /// range, measured on a 2-core machine); waiting on this lock sleeps instead. Taken
    /// before the write goes to the blocking pool, so no pool thread waits for it.
    pub write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// What `persist` did.
pub struct Persisted {
    /// The file it replaced was flushed first.
    pub flushed: bool,
    /// Right after the rename (or link), the target's name was the restored file. False
    /// when the directory's owner had already put something else there: theirs to do, but
    /// not to be reported as the verified file.
    pub in_place: bool,
}

impl TempFile {
    pub fn create_in(dir: &Arc<Dir>, target: &OsStr) -> Result<TempFile> {
        let path = dir.display(target);
        let temp = |private, file| TempFile {
            dir: dir.clone(),
            private,
            path: path.clone(),
            file: Arc::new(file),
            write_lock: Arc::default(),
        };
        if std::env::var_os(NAMED_TEMP_ENV).is_none() {
            // Unnamed, in the target's directory: nothing there to swap, and a kill leaves
            // nothing. Its private directory, if it needs one, exists only during `persist`.
            match dir.unnamed_file() {
                Ok(file) => return Ok(temp(None, file)),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
                    ) => {}
                Err(e) => {
                    return Err(Error::local_io(
                        "could not create a temporary file in",
                        dir.path(),
                        &e,
                    ))
                }
            }
        }
        // Named: inside a private directory, for the whole download (a killed restore leaves
        // it, locked no more, for the next restore's `remove_stale_temps`).
        let private = PrivateDir::create(dir)?;
        let file = private
            .dir
            .create_new(OsStr::new(INNER))
            .map_err(|e| Error::local_io("could not create a temporary file in", dir.path(), &e))?;
        Ok(temp(Some(private), file))
    }

    /// Puts the verified file at `target`. When it replaces a file, it is flushed to disk
    /// first, so that a crash right after cannot leave neither the old copy nor the new one;
    /// a new file is left to the kernel's writeback, as other restore tools do.
    ///
    /// Never from a name the customer can change: an unnamed file where nothing is at the
    /// target is linked straight to it (`linkat` creates the name or fails, never replaces);
    /// otherwise the file is renamed from its private directory's handle onto the target
    /// (`renameat` replaces a link there, never follows it).
    pub fn persist(mut self, target: &OsStr) -> Result<Persisted> {
        let dest = self.dir.display(target);
        let moved =
            |e: &std::io::Error| Error::local_io("could not move the restored file to", &dest, e);
        let mut replaces = matches!(self.dir.stat_at(target), Ok(Some(_)));
        if self.private.is_none() && !replaces {
            match self.dir.link_unnamed(&self.file, target) {
                Ok(()) => {
                    return Ok(Persisted {
                        flushed: false,
                        in_place: self.is_at(target),
                    })
                }
                // Something came to the target meanwhile: replaced as below.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => replaces = true,
                Err(e) => return Err(moved(&e)),
            }
        }
        if replaces {
            self.file
                .sync_all()
                .map_err(|e| Error::local_io("could not flush", &self.path, &e))?;
        }
        let private = match self.private.take() {
            Some(private) => private,
            None => {
                let private = PrivateDir::create(&self.dir)?;
                private
                    .dir
                    .link_unnamed(&self.file, OsStr::new(INNER))
                    .map_err(|e| {
                        Error::local_io("could not name the restored file in", self.dir.path(), &e)
                    })?;
                private
            }
        };
        private
            .dir
            .rename_into(OsStr::new(INNER), &self.dir, target)
            .map_err(|e| moved(&e))?;
        // Dropped here: the now empty directory goes.
        drop(private);
        Ok(Persisted {
            flushed: replaces,
            in_place: self.is_at(target),
        })
    }

    /// Whether `target` is this file (device and inode), not following a link there.
    fn is_at(&self, target: &OsStr) -> bool {
        match (self.dir.stat_at(target), identity(&self.file)) {
            (Ok(Some(s)), Ok(id)) => s.kind == EntryKind::File && (s.dev, s.ino) == id,
            _ => false,
        }
    }
}

/// Refuses a target that is a directory or a link (a restore neither replaces nor follows
/// one that is there from the start).
pub fn check_target(dir: &Dir, name: &OsStr) -> Result<()> {
    let dest = dir.display(name);
    match dir.stat_at(name) {
        Ok(Some(s)) if s.kind == EntryKind::Dir => {
            return Err(Error::InvalidArgument(format!(
                "{} is a directory; give the path of the file to write",
                dest.display()
            )))
        }
        Ok(Some(s)) if s.kind == EntryKind::Link => {
            return Err(Error::LocalIo(format!(
                "{} is a symbolic link; a restore does not replace or follow links below its target: remove it or restore elsewhere",
                dest.display()
            )))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_private_name, remove_stale_temps, INNER};
    use crate::local::Dir;
    use std::ffi::OsStr;

    #[test]
    fn only_unlocked_private_directories_of_ours_are_removed_as_leftovers() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_named(tmp.path()).unwrap();
        let p = |n: &str| tmp.path().join(n);
        let (stale, live, theirs) = (
            ".b2dest-00000000000000aa",
            ".b2dest-00000000000000bb",
            ".b2dest-00000000000000cc",
        );
        for name in [stale, live] {
            root.make_private_dir(OsStr::new(name)).unwrap();
            std::fs::write(p(name).join(INNER), b"partial").unwrap();
        }
        let held = root.open_private(OsStr::new(live)).unwrap();
        assert!(held.try_lock());
        // The customer's: a directory (with a file of the inner name), a link, a file.
        std::fs::create_dir(p(theirs)).unwrap();
        std::fs::set_permissions(p(theirs), PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::write(p(theirs).join(INNER), b"theirs").unwrap();
        let chowned = std::os::unix::fs::chown(p(theirs), Some(4242), None).is_ok();
        std::os::unix::fs::symlink(p(stale), p(".b2dest-00000000000000dd")).unwrap();
        std::fs::write(p(".b2dest-00000000000000ee"), b"x").unwrap();
        // Ours, but not of the pattern.
        root.make_private_dir(OsStr::new(".b2dest-keep")).unwrap();

        assert_eq!(remove_stale_temps(&root), 1);
        assert!(!p(stale).exists());
        assert!(p(live).join(INNER).exists());
        if chowned {
            assert!(p(theirs).join(INNER).exists());
        }
        assert!(p(".b2dest-00000000000000dd").symlink_metadata().is_ok());
        assert!(p(".b2dest-00000000000000ee").exists());
        assert!(p(".b2dest-keep").exists());
        drop(held);
        assert_eq!(remove_stale_temps(&root), 1, "no longer held");
        assert!(!p(live).exists());
    }

    #[test]
    fn private_names_are_exactly_the_pattern() {
        assert!(is_private_name(b".b2dest-0123456789abcdef"));
        for bad in [
            &b".b2dest-0123456789abcde"[..],
            b".b2dest-0123456789abcdef0",
            b".b2dest-0123456789ABCDEF",
            b"b2dest-0123456789abcdef",
            b".f.b2dest-0123456789abcdef.tmp",
        ] {
            assert!(!is_private_name(bad), "{bad:?}");
        }
    }
}
