//! The local file system as a root-run backup must see it: every path below the directory
//! the host names belongs to a possibly hostile customer, so names are resolved once,
//! relative to directory handles, and links are never followed.

pub mod dir;
pub mod file;
pub mod sys;
pub mod temp;
pub mod trusted;
pub mod walk;

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

pub use dir::Dir;

use crate::error::{Error, Result};

/// What the path the host named for an upload turned out to be, opened once.
pub enum Named {
    File(file::LocalFile),
    Dir(Dir),
}

/// Opens the path the host named, once (following links in it: the host's own), and tells a
/// file from a directory by the open handle, so nothing can be swapped in between.
pub fn open_named(path: &Path) -> Result<Named> {
    // Only the host's own links are followed; O_NONBLOCK: a FIFO there must not hang it.
    let trusted::Opened { fd, dir } = trusted::open_trusted(path, trusted::Want::Any, false)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!(
                "the local path {} does not exist; check the path the backup gave",
                path.display()
            )),
            _ => Error::local_io("could not open", path, &e),
        })?;
    let opened = File::from(fd);
    let meta = opened
        .metadata()
        .map_err(|e| Error::local_io("could not read", path, &e))?;
    if meta.is_dir() {
        return Ok(Named::Dir(Dir::from_fd(
            OwnedFd::from(opened),
            path.to_path_buf(),
        )));
    }
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is neither a regular file nor a directory",
            path.display()
        )));
    }
    // The same hard-link check as the walk's, against the directory the file was found in.
    Ok(Named::File(file::LocalFile::from_open_in(
        opened,
        path.to_path_buf(),
        dir,
    )?))
}

/// Opens (creating where missing) each directory of the `/`-separated `sub_dirs` below
/// `root`, one level at a time; a link at any level is refused, naming the path.
pub fn make_dirs_below(root: &Arc<Dir>, sub_dirs: &str) -> Result<Arc<Dir>> {
    let mut at = root.clone();
    for segment in sub_dirs.split('/').filter(|s| !s.is_empty()) {
        let name = OsStr::new(segment);
        let next = at.make_subdir(name).map_err(|e| {
            let path = at.display(name);
            if sys::is_link_error(&e) {
                link_refused(&path)
            } else {
                Error::local_io("could not create the directory", &path, &e)
            }
        })?;
        at = Arc::new(next);
    }
    Ok(at)
}

/// The error for a link (or a non-directory) found where a restore needs a directory.
pub fn link_refused(path: &std::path::Path) -> Error {
    Error::LocalIo(format!(
        "{} is a symbolic link or not a directory; a restore does not follow links below its target directory: remove it or restore elsewhere",
        path.display()
    ))
}

/// A local path for a message: control characters and Unicode line breaks escaped
/// (`\x0a`), so that a customer's file name cannot start a forged line in the host's log.
/// Response fields that are data (`local_path`) keep the name itself.
pub fn shown(path: &Path) -> String {
    one_line(&path.to_string_lossy())
}

/// `text` with control characters and Unicode line breaks (U+0085, U+2028, U+2029)
/// escaped: every message and log line passes through it on its way to the host, since
/// file names (a customer's) and B2's words can reach any of them.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c as u32 {
            0..=31 | 127 => out.push_str(&format!("\\x{:02x}", c as u32)),
            0x85 | 0x2028 | 0x2029 => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}
