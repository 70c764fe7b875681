//! The system calls the local file system is reached through: thin wrappers of `openat`,
//! `fstat`, `flock` and the like, each returning `io::Result`, and what `fstatat` says of
//! a name. No policy here: which links to follow is `trusted.rs`'s, what a directory
//! handle may do is `dir.rs`'s.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// What `fstatat` says of a name, without following a link there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryStat {
    pub kind: EntryKind,
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Link,
    /// A socket, FIFO or device.
    Other,
}

impl EntryStat {
    pub fn of(st: &libc::stat) -> EntryStat {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Link,
            _ => EntryKind::Other,
        };
        EntryStat {
            kind,
            dev: st.st_dev,
            ino: st.st_ino,
            len: st.st_size as u64,
        }
    }
}

pub(super) fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A single name: no `/`, not empty, not `.` or `..`.
pub(super) fn check_name(name: &OsStr) -> io::Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    cstr(name)
}

pub(super) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Whether an error says a link (or a non-directory) sat where a directory was expected.
pub fn is_link_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

/// The user this process acts as.
pub(super) fn euid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Directories a restore creates: root's, never writable by others whatever the umask
/// (the host gives them to the customer, as it does the files).
pub(super) const DIR_MODE: libc::mode_t = 0o755;

/// A directory this process just made gets `DIR_MODE` through its handle (`st` is its
/// stat; the new one is returned): a host's umask of 077 or a customer's default ACL would
/// otherwise make it 0700, and a 0700 directory of ours with a `.b2dest-` name (a backed-up
/// tree can hold one) looks like a restore's private directory to the next clean-up. One
/// the customer swapped in before it was opened is theirs and left as it is.
pub(super) fn made_dir_mode(fd: &OwnedFd, st: libc::stat) -> io::Result<libc::stat> {
    // SAFETY: geteuid has no preconditions.
    if st.st_uid != unsafe { libc::geteuid() } || st.st_mode & 0o7777 == DIR_MODE {
        return Ok(st);
    }
    // SAFETY: a valid descriptor.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), DIR_MODE) })?;
    fstat(fd)
}

pub(super) fn open_at(dir: libc::c_int, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a valid dirfd (or AT_FDCWD) and C string.
    let fd = cvt(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid fd and stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat filled it.
    Ok(unsafe { st.assume_init() })
}

/// Takes an exclusive `flock` without waiting: true when taken. A live restore holds one on
/// its private directory (`Dir::try_lock`), and the kernel drops it when the process dies.
pub fn try_lock(file: &File) -> bool {
    // SAFETY: a valid fd.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The device and inode of an open file.
pub fn identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}
