//! Remote paths: what the host names, checked against B2's file-name rules and kept inside
//! the backup directory.

use crate::error::{Error, Result};

/// B2's limit on a whole file name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// The older per-segment limit that b2sdk still enforces.
const MAX_SEGMENT_BYTES: usize = 250;

/// A path the host gave, resolved to a B2 file name inside the backup directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePath {
    /// As the host gave it, without a trailing `/`; empty for the whole backup directory.
    pub relative: String,
    /// The B2 file name: `backup_directory/relative`.
    pub object_name: String,
}

/// Whether the path may be empty (meaning the whole backup directory).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EmptyPath {
    Allowed,
    Refused,
}

impl RemotePath {
    /// Checks `raw` and joins it to `backup_directory` (already normalised by the config).
    /// A trailing `/` names a directory and is dropped, except where `keep_file_rules` says
    /// the path must name a file.
    pub fn resolve(raw: &str, backup_directory: &str, empty: EmptyPath) -> Result<RemotePath> {
        let relative = raw.strip_suffix('/').unwrap_or(raw);
        if relative.is_empty() {
            if empty == EmptyPath::Refused || !raw.is_empty() {
                return Err(Error::InvalidArgument(
                    "the remote path is empty; name a file or directory inside the backup directory".into(),
                ));
            }
            return Ok(RemotePath {
                relative: String::new(),
                object_name: backup_directory.to_string(),
            });
        }
        if relative.starts_with('/') {
            return Err(Error::InvalidArgument(
                "the remote path must be relative to the backup directory; remove the leading '/'"
                    .into(),
            ));
        }
        check_segments(relative)
            .map_err(|why| Error::InvalidArgument(format!("the remote path {why}")))?;
        let object_name = if backup_directory.is_empty() {
            relative.to_string()
        } else {
            format!("{backup_directory}/{relative}")
        };
        if object_name.len() > MAX_NAME_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the remote path is too long: joined to the backup directory it has {} bytes, B2 allows {MAX_NAME_BYTES}",
                object_name.len()
            )));
        }
        Ok(RemotePath {
            relative: relative.to_string(),
            object_name,
        })
    }

    /// The prefix under which this path's directory contents live.
    pub fn dir_prefix(&self) -> String {
        if self.object_name.is_empty() {
            String::new()
        } else {
            format!("{}/", self.object_name)
        }
    }

    /// The B2 file name of `sub` (a `/`-separated path) inside this directory.
    pub fn child(&self, sub: &str) -> Result<RemotePath> {
        let joined = if self.relative.is_empty() {
            sub.to_string()
        } else {
            format!("{}/{sub}", self.relative)
        };
        let dir = self
            .object_name
            .strip_suffix(&self.relative)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        RemotePath::resolve(&joined, &dir, EmptyPath::Refused)
    }
}

/// Relative path of `object_name` below `backup_directory`, or None when outside it.
pub fn relative_to(object_name: &str, backup_directory: &str) -> Option<String> {
    if backup_directory.is_empty() {
        return Some(object_name.to_string());
    }
    object_name
        .strip_prefix(backup_directory)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_string)
}

/// Checks a `/`-separated relative path against B2's rules (and the older ones b2sdk keeps).
/// The error completes a sentence: "the remote path …".
pub fn check_segments(path: &str) -> std::result::Result<(), String> {
    if path.len() > MAX_NAME_BYTES {
        return Err(format!("is over B2's {MAX_NAME_BYTES} bytes"));
    }
    if let Some(c) = path.chars().find(|c| (*c as u32) < 32 || *c as u32 == 127) {
        return Err(format!(
            "contains the control character U+{:04X}; B2 file names may not",
            c as u32
        ));
    }
    if path.contains('\\') {
        return Err("contains a backslash; use '/' between directories".into());
    }
    if path.starts_with('/') {
        return Err("must not start with '/'".into());
    }
    if path.ends_with('/') {
        return Err("must not end with '/'".into());
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("contains '//' (an empty directory name)".into()),
            "." | ".." => {
                return Err(format!(
                    "contains a '{segment}' segment; paths must stay inside the backup directory"
                ))
            }
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(format!("has a segment over {MAX_SEGMENT_BYTES} bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_refuses() {
        let p = RemotePath::resolve("a/b.tar", "backups", EmptyPath::Refused).unwrap();
        assert_eq!(p.object_name, "backups/a/b.tar");
        assert_eq!(p.dir_prefix(), "backups/a/b.tar/");
        assert_eq!(p.child("c/d").unwrap().object_name, "backups/a/b.tar/c/d");
        let root = RemotePath::resolve("", "backups", EmptyPath::Allowed).unwrap();
        assert_eq!(root.dir_prefix(), "backups/");
        assert_eq!(root.child("x").unwrap().object_name, "backups/x");
        let bare = RemotePath::resolve("", "", EmptyPath::Allowed).unwrap();
        assert_eq!(bare.dir_prefix(), "");
        for bad in [
            "", "/a", "a//b", "../a", "a/../b", "a\\b", "a\u{1}b", "a/./b", "/",
        ] {
            assert!(
                RemotePath::resolve(bad, "d", EmptyPath::Refused).is_err(),
                "{bad:?}"
            );
        }
        assert!(RemotePath::resolve(&"x".repeat(1020), "dir", EmptyPath::Refused).is_err());
        assert_eq!(
            relative_to("backups/a/b", "backups").as_deref(),
            Some("a/b")
        );
        assert_eq!(relative_to("backupsX/a", "backups"), None);
    }
}
