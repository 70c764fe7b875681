//! Opening a path the host named: which of its symbolic links are the host's own and may
//! be followed, and which a customer could have planted and must not (`open_trusted`).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::sys::{cvt, fstat, is_link_error, made_dir_mode, open_at, DIR_MODE};

/// What the last component of a named path must be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Dir,
    /// A directory or anything else (opened without blocking; the caller checks its type).
    Any,
}

/// Whether `uid` is the host's own user: root or this process's user.
pub(super) fn trusted_owner(uid: libc::uid_t) -> bool {
    // SAFETY: geteuid cannot fail.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

/// Why nobody but the host can change what the names in a directory lead to, or None with
/// the reason someone else can: it is owned by root or this process's user and writable by
/// nobody else. No exception for the sticky bit: in `/tmp` anyone may add a name, a
/// hard link to a root-owned symbolic link included.
pub(super) fn not_host_only(st: &libc::stat) -> Option<String> {
    if !trusted_owner(st.st_uid) {
        Some(format!("is owned by user {}", st.st_uid))
    } else if st.st_mode & (libc::S_IWGRP | libc::S_IWOTH) != 0 {
        Some(format!(
            "is writable by its group or by everyone (mode {:o})",
            st.st_mode & 0o7777
        ))
    } else {
        None
    }
}

/// The path as resolved so far, escaped for a message.
fn shown(path: &Path) -> String {
    super::shown(path)
}

/// Who can put names in a directory: its owner, and others too when its group or everyone
/// may write it (sticky or not: the sticky bit stops removing, not adding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    pub owner: libc::uid_t,
    pub writable_by_others: bool,
}

impl Holder {
    pub(super) fn of(st: &libc::stat) -> Holder {
        Holder {
            owner: st.st_uid,
            writable_by_others: st.st_mode & (libc::S_IWGRP | libc::S_IWOTH) != 0,
        }
    }
}

/// The path the host named, opened; and who could put names in the directory its last
/// component was found in (after links), for the hard-link check of a named file.
#[derive(Debug)]
pub struct Opened {
    pub fd: OwnedFd,
    pub dir: Holder,
}

/// Opens a path the host named one component at a time, each relative to the handle of the
/// one before and with `O_NOFOLLOW`. The named path often lies inside a customer's tree
/// (`/home/alice/public_html`): a plain `open` would follow a link they put there, to
/// `/root/.ssh` for a restore or `/etc/shadow` for an upload.
///
/// A symbolic link is followed only when its *name* is the host's: who owns the link says
/// nothing of who put it at that name, since a customer may rename any entry of a directory
/// they own (a panel's root-owned `~/access-logs` renamed to `~/restore`) or hard-link a
/// root-owned link in where `fs.protected_hardlinks` is off. So a link is followed only when
/// it is owned by the host's user, the directory holding it is `not_host_only`-clean, and no
/// directory before it on the way was one a customer could have chosen or swapped: once the
/// resolution enters a directory through a name that someone else could change (found in a
/// directory that another user owns or that its group or everyone can write), no more links
/// are followed at all, since a customer can move a root-owned directory holding a root-owned
/// link within their home. A root-owned entry of a sticky directory (`/tmp/x`) is still the
/// host's: the sticky bit keeps others from renaming or removing it, and nobody can hard-link
/// a directory or move one into a new parent without write access to it. The kernel's
/// `protected_symlinks` reasons the same way. With `create`, missing directories are made on
/// the way (`Want::Dir` only), and judged as if found there.
pub fn open_trusted(path: &Path, want: Want, create: bool) -> io::Result<Opened> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let start = |absolute: bool| {
        let from = if absolute { c"/" } else { c"." };
        open_at(libc::AT_FDCWD, from, libc::O_RDONLY | libc::O_DIRECTORY)
    };
    let split = |b: &[u8]| -> Vec<Vec<u8>> {
        b.split(|&c| c == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut at = start(bytes[0] == b'/')?;
    // The root and the working directory are the host's.
    let mut at_st = fstat(&at)?;
    // Set once `at` was reached through a name someone other than the host could change,
    // with the path and why; it is never cleared (`..` included: a swapped directory's
    // parent is wherever the customer moved it).
    let mut chosen_by_others: Option<String> = None;
    let mut todo: std::collections::VecDeque<Vec<u8>> = split(bytes).into();
    let mut shown_path = PathBuf::from(if bytes[0] == b'/' { "/" } else { "" });
    let mut links_followed = 0;
    let mut just_made = false;
    let mut dir = Holder::of(&at_st);
    while let Some(component) = todo.pop_front() {
        let dir_needed = !todo.is_empty() || want == Want::Dir;
        let name = CString::new(component.clone())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        if dir_needed {
            flags |= libc::O_DIRECTORY;
        }
        let opened = open_at(at.as_raw_fd(), &name, flags);
        let made_before = std::mem::take(&mut just_made);
        match opened {
            Ok(fd) => {
                let mut st = fstat(&fd)?;
                if made_before {
                    st = made_dir_mode(&fd, st)?;
                }
                if chosen_by_others.is_none() && component != b".." {
                    let why = not_host_only(&at_st);
                    // In a sticky directory others cannot rename or remove the host's entries.
                    let sticky_kept = at_st.st_mode & libc::S_ISVTX != 0
                        && trusted_owner(at_st.st_uid)
                        && trusted_owner(st.st_uid);
                    if let Some(why) = why.filter(|_| !sticky_kept) {
                        chosen_by_others = Some(format!("{} {why}", shown(&shown_path)));
                    }
                }
                dir = Holder::of(&at_st);
                at = fd;
                at_st = st;
                shown_path.push(OsStr::from_bytes(&component));
            }
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && create
                    && dir_needed
                    && !made_before
                    && component != b".." =>
            {
                // SAFETY: a valid dirfd and C string.
                let made = cvt(unsafe { libc::mkdirat(at.as_raw_fd(), name.as_ptr(), DIR_MODE) });
                match made {
                    Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                    _ => {}
                }
                // Opened on the next round like any other level: whatever is there by then
                // (a link planted meanwhile included) is judged the same way.
                just_made = true;
                todo.push_front(component);
            }
            Err(e) if is_link_error(&e) => {
                let link = open_at(at.as_raw_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW)?;
                let st = fstat(&link)?;
                if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    return Err(e);
                }
                let dir_shown = shown(&shown_path);
                shown_path.push(OsStr::from_bytes(&component));
                let refused = |why: String| {
                    io::Error::other(format!(
                        "{} is a symbolic link and was not followed: {why}, so a customer may have planted or renamed it there; name the real path (where the link leads) instead",
                        shown(&shown_path)
                    ))
                };
                if !trusted_owner(st.st_uid) {
                    return Err(refused(format!(
                        "it is owned by user {}, neither root nor the user the backup runs as",
                        st.st_uid
                    )));
                }
                if let Some(why) = &chosen_by_others {
                    return Err(refused(format!(
                        "it lies below {why}, and no link is followed past such a directory"
                    )));
                }
                if let Some(why) = not_host_only(&at_st) {
                    return Err(refused(format!(
                        "the directory {dir_shown} holding it {why}"
                    )));
                }
                links_followed += 1;
                if links_followed > 40 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
                // SAFETY: a valid O_PATH fd of a link, the empty path, and a buffer of its size.
                let n = unsafe {
                    libc::readlinkat(
                        link.as_raw_fd(),
                        c"".as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                let target = &buf[..n as usize];
                // Messages name the path as resolved, not the link's name with its target.
                shown_path.pop();
                if target.first() == Some(&b'/') {
                    at = start(true)?;
                    at_st = fstat(&at)?;
                    shown_path = PathBuf::from("/");
                }
                for c in split(target).into_iter().rev() {
                    todo.push_front(c);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Opened { fd: at, dir })
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::local::Dir;

    #[test]
    fn named_paths_follow_only_the_hosts_own_links() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("real/sub")).unwrap();
        std::fs::write(tmp.path().join("real/sub/f"), b"x").unwrap();
        // Relative, absolute, chained and `..` through a link: resolved as the kernel would.
        std::os::unix::fs::symlink("real", tmp.path().join("rel")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("rel/sub"), tmp.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../sub", tmp.path().join("real/sub/up")).unwrap();
        for p in ["rel/sub", "abs", "abs/up/up", "abs/../sub", "./rel//sub/"] {
            let d = Dir::open_named(&tmp.path().join(p)).unwrap();
            assert_eq!(d.names().unwrap().len(), 2, "{p}");
        }
        let f = open_trusted(&tmp.path().join("abs/f"), Want::Any, false).unwrap();
        assert!(File::from(f.fd).metadata().unwrap().is_file());
        assert!(Dir::open_named(&tmp.path().join("abs/f")).is_err());
        std::os::unix::fs::symlink("loop", tmp.path().join("loop")).unwrap();
        assert!(Dir::open_named(&tmp.path().join("loop")).is_err());
        let made = Dir::open_or_create_named(&tmp.path().join("abs/new/deeper")).unwrap();
        assert!(made.names().unwrap().is_empty());
        assert!(tmp.path().join("real/sub/new/deeper").is_dir());
        // A link owned by another user is refused, at any level.
        let other = tmp.path().join("planted");
        std::os::unix::fs::symlink("real", &other).unwrap();
        if std::os::unix::fs::lchown(&other, Some(4242), Some(4242)).is_ok() {
            for p in ["planted", "planted/sub", "planted/sub/f"] {
                let e = open_trusted(&tmp.path().join(p), Want::Any, true).unwrap_err();
                assert!(e.to_string().contains("owned by user 4242"), "{e}");
            }
        }
    }
}
