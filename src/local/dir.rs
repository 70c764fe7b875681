//! Directory handles: every name below a directory the host named is resolved relative to
//! an open handle on its parent, never followed when it is a link, and never by path again.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::sys::{
    check_name, cvt, euid, fstat, made_dir_mode, open_at, EntryKind, EntryStat, DIR_MODE,
};
use super::trusted::{open_trusted, Holder, Want};

/// An open directory, and the path it had when it was opened (for messages only: nothing
/// is ever opened through it again).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory the host named, following only the host's own links in it (a
    /// `/home` on a symbolic link): see `open_trusted`.
    pub fn open_named(path: &Path) -> io::Result<Dir> {
        Ok(Dir {
            fd: open_trusted(path, Want::Dir, false)?.fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory the host named as `open_named` does, creating the missing levels
    /// on the way, each relative to its parent's handle.
    pub fn open_or_create_named(path: &Path) -> io::Result<Dir> {
        Ok(Dir {
            fd: open_trusted(path, Want::Dir, true)?.fd,
            path: path.to_path_buf(),
        })
    }

    /// A directory already open (as the host's named path turned out to be).
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who can put names in this directory.
    pub fn holder(&self) -> io::Result<Holder> {
        Ok(Holder::of(&fstat(&self.fd)?))
    }

    /// The path of `name` in this directory, for messages.
    pub fn display(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the subdirectory `name`; a link there fails with ELOOP or ENOTDIR.
    pub fn subdir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = self.open_at(
            &check_name(name)?,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Opens this directory's parent (`..`): whatever directory holds it now, which the
    /// caller checks.
    pub fn parent(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: open_at(
                self.fd.as_raw_fd(),
                c"..",
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            )?,
            path: self.path.parent().unwrap_or(&self.path).to_path_buf(),
        })
    }

    /// Creates the subdirectory `name` unless it exists, then opens it as `subdir` does.
    pub fn make_subdir(&self, name: &OsStr) -> io::Result<Dir> {
        let c = check_name(name)?;
        // SAFETY: a valid dirfd and C string.
        let made = cvt(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), DIR_MODE) });
        let made = match made {
            Ok(_) => true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
            Err(e) => return Err(e),
        };
        let dir = self.subdir(name)?;
        if made {
            made_dir_mode(&dir.fd, fstat(&dir.fd)?)?;
        }
        Ok(dir)
    }

    /// Opens the regular file `name` for reading: never through a link, never blocking on
    /// a FIFO, and only if it is a regular file once open.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let file = self.open_any(name)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    /// What is at `name`, without following a link; None when nothing is.
    pub fn stat_at(&self, name: &OsStr) -> io::Result<Option<EntryStat>> {
        let c = check_name(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid dirfd, C string and stat buffer.
        let r = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
        // SAFETY: fstatat filled it.
        Ok(Some(EntryStat::of(unsafe { &st.assume_init() })))
    }

    /// The names in this directory (without `.` and `..`), sorted bytewise.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        // fdopendir takes ownership of its fd: give it a duplicate, rewound.
        // SAFETY: a valid fd.
        let dup = cvt(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: dup is ours; on failure we close it.
        let stream = unsafe { libc::fdopendir(dup) };
        if stream.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: still ours.
            unsafe { libc::close(dup) };
            return Err(e);
        }
        // SAFETY: a valid stream.
        unsafe { libc::rewinddir(stream) };
        let mut names = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; readdir on our own stream.
            unsafe { *libc::__errno_location() = 0 };
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let errno = io::Error::last_os_error();
                break match errno.raw_os_error() {
                    Some(0) | None => Ok(()),
                    _ => Err(errno),
                };
            }
            // SAFETY: readdir returned a valid entry with a NUL-terminated name.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        };
        // SAFETY: closes the stream and its dup.
        unsafe { libc::closedir(stream) };
        result?;
        names.sort();
        Ok(names)
    }

    /// An unnamed file in this directory (`O_TMPFILE`), mode 0600: a kill leaves nothing.
    /// Fails with EOPNOTSUPP, EISDIR or EINVAL where the file system cannot.
    pub fn unnamed_file(&self) -> io::Result<File> {
        let fd = self.open_at(c".", libc::O_TMPFILE | libc::O_RDWR, 0o600)?;
        Ok(File::from(fd))
    }

    /// Creates the new regular file `name`, mode 0600, read-write, refusing any existing
    /// name (a link included).
    pub fn create_new(&self, name: &OsStr) -> io::Result<File> {
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = self.open_at(&check_name(name)?, flags, 0o600)?;
        Ok(File::from(fd))
    }

    /// Gives the unnamed file `file` the new name `name` here (fails if the name exists).
    pub fn link_unnamed(&self, file: &File, name: &OsStr) -> io::Result<()> {
        let c = check_name(name)?;
        let proc_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: valid fds and C strings.
        let by_proc = cvt(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr(),
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        });
        match by_proc {
            Ok(_) => Ok(()),
            // No /proc mounted: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, which root has.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // SAFETY: valid fds and C strings.
                cvt(unsafe {
                    libc::linkat(
                        file.as_raw_fd(),
                        c"".as_ptr(),
                        self.fd.as_raw_fd(),
                        c.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                })
                .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Renames `from` to `to`, both in this directory; replaces `to` (a link there is
    /// replaced, never followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (check_name(from)?, check_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid fds and C strings.
        cvt(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) }).map(|_| ())
    }

    /// Renames `from` in this directory to `to` in `dest`; replaces `to` (a link there is
    /// replaced, never followed).
    pub fn rename_into(&self, from: &OsStr, dest: &Dir, to: &OsStr) -> io::Result<()> {
        let (f, t) = (check_name(from)?, check_name(to)?);
        // SAFETY: valid fds and C strings.
        cvt(unsafe {
            libc::renameat(
                self.fd.as_raw_fd(),
                f.as_ptr(),
                dest.fd.as_raw_fd(),
                t.as_ptr(),
            )
        })
        .map(|_| ())
    }

    /// Creates the new directory `name`, mode `0700` (less with a strict umask): fails if the
    /// name exists, a link included. Open it with `open_private`, which checks that what is
    /// at the name by then is still it.
    pub fn make_private_dir(&self, name: &OsStr) -> io::Result<()> {
        let c = check_name(name)?;
        // SAFETY: a valid dirfd and C string.
        cvt(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o700) }).map(|_| ())
    }

    /// Opens the subdirectory `name` only if it is private to this process's user: a
    /// directory (not a link), owned by that user, with no permission for group or others.
    /// Its owner could have put nothing in it and nobody else can, so what is in it stays
    /// what this process made there, whoever owns the directory that holds it and whatever
    /// they rename. A default ACL of the parent cannot open it either: the mode's group bits
    /// are its ACL mask, and 0 there leaves every named entry without effect.
    pub fn open_private(&self, name: &OsStr) -> io::Result<Dir> {
        let sub = self.subdir(name)?;
        let st = sub.fstat()?;
        if st.st_uid != euid() || st.st_mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a private directory of this process (owner {}, mode {:o})",
                    sub.path.display(),
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(sub)
    }

    /// Takes an exclusive `flock` on this directory without waiting: see `try_lock`.
    pub fn try_lock(&self) -> bool {
        // SAFETY: a valid fd.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }

    /// Whether this directory was removed since it was opened (no link left to it).
    pub fn is_removed(&self) -> io::Result<bool> {
        Ok(self.fstat()?.st_nlink == 0)
    }

    /// Removes the empty subdirectory `name` if it still is the directory `id` (device and
    /// inode) an instant before; true when it went. What is at a name in a directory the
    /// customer owns can change between any two calls: the check keeps this from removing
    /// whatever they put there except in that instant, and even then `rmdir` removes only an
    /// empty directory, never a link's target nor anything with content.
    pub fn remove_dir_if(&self, name: &OsStr, id: (u64, u64)) -> io::Result<bool> {
        match self.stat_at(name)? {
            Some(s) if s.kind == EntryKind::Dir && (s.dev, s.ino) == id => {}
            _ => return Ok(false),
        }
        let c = check_name(name)?;
        // SAFETY: a valid dirfd and C string.
        cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })?;
        Ok(true)
    }

    fn fstat(&self) -> io::Result<libc::stat> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid fd and stat buffer.
        cvt(unsafe { libc::fstat(self.fd.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstat filled it.
        Ok(unsafe { st.assume_init() })
    }

    /// Removes the file `name` (not a directory).
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let c = check_name(name)?;
        // SAFETY: a valid dirfd and C string.
        cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
    }

    /// Opens `name` for reading without following a link or blocking, whatever its type.
    pub fn open_any(&self, name: &OsStr) -> io::Result<File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let fd = self.open_at(&check_name(name)?, flags, 0)?;
        Ok(File::from(fd))
    }

    /// The one `openat` relative to this handle (always close-on-exec); `mode` matters only
    /// with `O_CREAT` or `O_TMPFILE`.
    fn open_at(&self, name: &CStr, flags: libc::c_int, mode: libc::c_uint) -> io::Result<OwnedFd> {
        // SAFETY: a valid dirfd and C string.
        let fd = cvt(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode,
            )
        })?;
        // SAFETY: a fresh fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The device and inode of an open directory.
pub fn identity_of_dir(dir: &Dir) -> io::Result<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid fd and stat buffer.
    cvt(unsafe { libc::fstat(dir.fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat filled it.
    let st = unsafe { st.assume_init() };
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;
    use crate::local::sys::{is_link_error, try_lock};

    #[test]
    fn links_are_refused_at_every_step() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_named(tmp.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("dirlink")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), tmp.path().join("filelink"))
            .unwrap();
        let e = root.subdir(OsStr::new("dirlink")).unwrap_err();
        assert!(is_link_error(&e), "{e}");
        let e = root.make_subdir(OsStr::new("dirlink")).unwrap_err();
        assert!(is_link_error(&e), "{e}");
        let e = root.open_file(OsStr::new("filelink")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(root.create_new(OsStr::new("filelink")).is_err());
        assert_eq!(
            root.stat_at(OsStr::new("filelink")).unwrap().unwrap().kind,
            EntryKind::Link
        );
        assert!(root.stat_at(OsStr::new("none")).unwrap().is_none());
        for bad in ["", ".", "..", "a/b"] {
            assert!(root.subdir(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_dirs_names_and_renames_stay_relative_to_the_handle() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_or_create_named(&tmp.path().join("a/b")).unwrap();
        let sub = root.make_subdir(OsStr::new("c")).unwrap();
        std::fs::write(tmp.path().join("a/b/c/f"), b"data").unwrap();
        assert_eq!(sub.names().unwrap(), vec![OsString::from("f")]);
        assert_eq!(root.names().unwrap(), vec![OsString::from("c")]);
        // The handle keeps pointing at the directory it opened, wherever it is moved.
        std::fs::rename(tmp.path().join("a/b/c"), tmp.path().join("moved")).unwrap();
        std::fs::create_dir(tmp.path().join("a/b/c")).unwrap();
        let mut f = sub.open_file(OsStr::new("f")).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "data");
        let made = sub.create_new(OsStr::new("g")).unwrap();
        assert!(sub.create_new(OsStr::new("g")).is_err());
        drop(made);
        sub.rename(OsStr::new("g"), OsStr::new("h")).unwrap();
        assert!(tmp.path().join("moved/h").exists());
        sub.unlink(OsStr::new("h")).unwrap();
        assert!(!tmp.path().join("moved/h").exists());
        // A FIFO neither blocks nor counts as a file.
        let fifo = CString::new(tmp.path().join("moved/fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(sub.open_file(OsStr::new("fifo")).is_err());
    }

    #[test]
    fn only_a_private_directory_of_ours_opens_as_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_named(tmp.path()).unwrap();
        root.make_private_dir(OsStr::new("mine")).unwrap();
        assert!(root.make_private_dir(OsStr::new("mine")).is_err());
        let mine = root.open_private(OsStr::new("mine")).unwrap();
        assert!(mine.try_lock());
        assert!(!root.open_private(OsStr::new("mine")).unwrap().try_lock());
        let id = identity_of_dir(&mine).unwrap();
        // A link, a directory others may enter, or one of another user's: refused.
        std::os::unix::fs::symlink("mine", tmp.path().join("link")).unwrap();
        assert!(root.open_private(OsStr::new("link")).is_err());
        std::fs::create_dir(tmp.path().join("open")).unwrap();
        std::fs::set_permissions(tmp.path().join("open"), PermissionsExt::from_mode(0o750))
            .unwrap();
        assert!(root.open_private(OsStr::new("open")).is_err());
        std::fs::create_dir(tmp.path().join("theirs")).unwrap();
        std::fs::set_permissions(tmp.path().join("theirs"), PermissionsExt::from_mode(0o700))
            .unwrap();
        if std::os::unix::fs::chown(tmp.path().join("theirs"), Some(4242), None).is_ok() {
            let e = root.open_private(OsStr::new("theirs")).unwrap_err();
            assert!(e.to_string().contains("owner 4242"), "{e}");
        }
        // Removed by name only while the name is still that directory.
        std::fs::rename(tmp.path().join("mine"), tmp.path().join("moved")).unwrap();
        std::fs::create_dir(tmp.path().join("mine")).unwrap();
        assert!(!root.remove_dir_if(OsStr::new("mine"), id).unwrap());
        assert!(tmp.path().join("mine").is_dir());
        assert!(root.remove_dir_if(OsStr::new("moved"), id).unwrap());
        assert!(mine.is_removed().unwrap());
    }

    #[test]
    fn an_unnamed_file_gets_a_name_only_when_linked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_named(tmp.path()).unwrap();
        let Ok(file) = root.unnamed_file() else {
            return; // the file system has no O_TMPFILE: the named fallback covers it
        };
        std::io::Write::write_all(&mut &file, b"x").unwrap();
        assert!(root.names().unwrap().is_empty());
        assert!(try_lock(&file));
        root.link_unnamed(&file, OsStr::new("named")).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("named")).unwrap(), b"x");
        assert!(root.link_unnamed(&file, OsStr::new("named")).is_err());
    }
}
