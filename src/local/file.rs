//! Local files as uploads read them: opened once (relative to the walk's directory handle),
//! read by range, hashed, and watched for changes while they are read.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::sync::{mpsc, oneshot};

use super::dir::Dir;
use super::trusted::Holder;
use crate::error::{Error, Result};
use crate::operation::Operation;

/// Bytes read per system call and sent per body chunk. A connection holds about four of
/// them (read ahead, queued, being sent): at 1 MiB, 16 connections took the upload from
/// 29 to 65 MiB; at 256 KiB, 25 MiB, for the same CPU.
const CHUNK: usize = 256 << 10;
/// Bytes read per system call by the hashing pass and when a range is hashed again. Not
/// the body chunk: freed, buffers of this size lift glibc's mmap threshold above the body
/// chunks, which then reuse heap memory (with 1 MiB here the sending pass took 33k page
/// faults a GiB instead of 10k).
const HASH_CHUNK: usize = 4 << 20;
/// Chunks in flight between the two hashing threads of the first pass.
const PASS_BUFFERS: usize = 3;

/// What identifies a file's content without reading it: any write changes `ctime`, which
/// nobody can set back, so a file that kept its identity was not written in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    pub len: u64,
    pub mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    pub fn modified_millis(&self) -> i64 {
        (self.mtime_ns / 1_000_000) as i64
    }
}

/// A regular file opened for upload.
pub struct LocalFile {
    pub path: PathBuf,
    file: Arc<File>,
    pub identity: FileIdentity,
    /// Bytes the file occupies on disk (`st_blocks` × 512): far below its length, it is sparse.
    allocated: u64,
}

impl LocalFile {
    /// Opens a file of the library's own (validate's probe, in its private scratch
    /// directory) by its path, links followed: never for a path in a customer's tree, which
    /// goes through `open_named` or the walk's `open_in`.
    pub fn open(path: &Path) -> Result<LocalFile> {
        // O_NONBLOCK: a FIFO there must not hang the backup.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound(format!(
                    "the local file {} does not exist; check the path the backup gave",
                    path.display()
                )),
                _ => Error::local_io("could not open", path, &e),
            })?;
        LocalFile::from_open(file, path.to_path_buf())
    }

    /// Opens `name` in `dir` without following a link, and only if it is still the file
    /// (device and inode) the walk saw there.
    pub fn open_in(dir: &Dir, name: &OsStr, seen: (u64, u64)) -> Result<LocalFile> {
        let path = dir.display(name);
        let file = dir.open_file(name).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::LocalIo(format!(
                    "{} became a symbolic link after the directory was read; it was not followed",
                    path.display()
                ))
            } else {
                Error::local_io("could not open", &path, &e)
            }
        })?;
        let holder = dir
            .holder()
            .map_err(|e| Error::local_io("could not read the metadata of", dir.path(), &e))?;
        let local = LocalFile::from_open_in(file, path, holder)?;
        if (local.identity.dev, local.identity.ino) != seen {
            return Err(Error::LocalIo(format!(
                "{} was replaced by another file after the directory was read; it was not read",
                local.path.display()
            )));
        }
        Ok(local)
    }

    /// `from_open` for a file found in the directory `dir` (by the walk, or at the end of a
    /// path the host named), refusing what may be a second name for another user's file:
    /// with fs.protected_hardlinks off, a customer can link any file of the file system
    /// (/etc/shadow) into a directory they can write, and no `O_NOFOLLOW` sees it. A file
    /// with more than one link is read only when its owner owns the directory and nobody
    /// else may add names there. The one place of this rule, for both paths.
    pub(crate) fn from_open_in(file: File, path: PathBuf, dir: Holder) -> Result<LocalFile> {
        let meta = file
            .metadata()
            .map_err(|e| Error::local_io("could not read the metadata of", &path, &e))?;
        if meta.is_file() && meta.nlink() > 1 && (meta.uid() != dir.owner || dir.writable_by_others)
        {
            let whose = if dir.writable_by_others {
                format!(
                    "a directory owned by user {} that others can write",
                    dir.owner
                )
            } else {
                format!("a directory owned by user {}", dir.owner)
            };
            return Err(Error::LocalIo(format!(
                "{} is one of {} hard links to a file owned by user {} in {whose}: it may be another user's file linked into this tree, so it was not read; back it up by a path where it has a single name, or from its owner's own directory",
                super::shown(&path),
                meta.nlink(),
                meta.uid(),
            )));
        }
        LocalFile::from_open(file, path)
    }

    pub(crate) fn from_open(file: File, path: PathBuf) -> Result<LocalFile> {
        let meta = file
            .metadata()
            .map_err(|e| Error::local_io("could not read the metadata of", &path, &e))?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file or directory",
                path.display()
            )));
        }
        Ok(LocalFile {
            path,
            file: Arc::new(file),
            identity: FileIdentity::of(&meta),
            allocated: meta.blocks().saturating_mul(512),
        })
    }

    /// A warning for a file much longer than the disk space it takes: a customer can make
    /// terabytes that cost them nothing (`truncate -s 10T`), and every hole is uploaded and
    /// billed as zeros. Only a warning: database files and disk images are sparse honestly.
    pub fn sparse_warning(&self) -> Option<String> {
        const MIN_LEN: u64 = 16 << 20;
        let len = self.size();
        (len >= MIN_LEN && self.allocated.saturating_mul(4) < len).then(|| {
            format!(
                "{} is sparse: {len} bytes long but only {} bytes on disk; its holes are uploaded as zeros and billed at its full length",
                super::shown(&self.path),
                self.allocated
            )
        })
    }

    pub fn size(&self) -> u64 {
        self.identity.len
    }

    /// Fails when the file was written, truncated or grown since it was opened. The open
    /// file is what was read, so its own `fstat` is what counts: the name is not looked up
    /// again (another file may be put there; what was uploaded is still this one).
    pub fn check_unchanged(&self) -> Result<()> {
        match self.file.metadata().map(|m| FileIdentity::of(&m)) {
            Ok(now) if now == self.identity => Ok(()),
            _ => Err(self.changed_error()),
        }
    }

    pub fn changed_error(&self) -> Error {
        Error::LocalIo(format!(
            "the local file {} changed while it was being uploaded, so the copy on B2 would not match any state of it; nothing was kept on B2: upload it again once it is no longer being written",
            self.path.display()
        ))
    }

    /// One sequential pass over the whole file: its SHA1 and the SHA1 of each `part_size`
    /// part, from the same reads. The whole-file hash runs on the reading thread, the
    /// parts' on a second one, each chunk handed over once the first is done with it, so
    /// the pass takes one SHA1's time on two cores.
    pub async fn sha1_with_parts(&self, part_size: u64, op: Arc<Operation>) -> Result<FileHashes> {
        let file = self.file.clone();
        let path = self.path.clone();
        let size = self.size();
        let part_size = part_size.max(1);
        let mut changed = Some(self.changed_error());
        let hashes = tokio::task::spawn_blocking(move || -> Result<FileHashes> {
            let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, bool)>(PASS_BUFFERS);
            let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
            std::thread::scope(|scope| {
                let parts = scope.spawn(move || {
                    // Never an allocation sized by a length the customer controls.
                    let parts_needed = size.div_ceil(part_size).min(crate::b2::MAX_PARTS);
                    let mut parts = Vec::with_capacity(parts_needed as usize);
                    let mut sha = Sha1::new();
                    for (buf, ends_part) in full_rx {
                        sha.update(&buf);
                        if ends_part {
                            parts.push(sha.finalize_reset().into());
                        }
                        let _ = free_tx.send(buf);
                    }
                    parts
                });
                let mut whole = Sha1::new();
                let mut made = 0;
                let mut pos = 0u64;
                while pos < size {
                    op.check_cancelled()?;
                    let part_end = (pos / part_size + 1) * part_size;
                    let n = (size.min(part_end) - pos).min(HASH_CHUNK as u64) as usize;
                    let mut buf = match free_rx.try_recv() {
                        Ok(buf) => buf,
                        Err(_) if made < PASS_BUFFERS + 1 => {
                            made += 1;
                            Vec::with_capacity(HASH_CHUNK)
                        }
                        Err(_) => free_rx.recv().map_err(|_| {
                            Error::Internal("the part hashing thread ended early".into())
                        })?,
                    };
                    buf.resize(n, 0);
                    file.read_exact_at(&mut buf, pos).map_err(|e| {
                        match changed.take() {
                            // Shorter than when it was opened: truncated under us.
                            Some(changed) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                changed
                            }
                            _ => Error::local_io("could not read", &path, &e),
                        }
                    })?;
                    whole.update(&buf);
                    pos += n as u64;
                    let ends_part = pos == part_end || pos == size;
                    if full_tx.send((buf, ends_part)).is_err() {
                        break;
                    }
                }
                drop(full_tx);
                let parts = parts
                    .join()
                    .map_err(|_| Error::Internal("the part hashing thread failed".into()))?;
                Ok(FileHashes {
                    whole: whole.finalize().into(),
                    parts,
                })
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("the hashing task failed: {e}")))??;
        self.check_unchanged()?;
        Ok(hashes)
    }

    /// SHA1 of one range, read again: tells a part B2 refused because the file changed.
    pub async fn range_sha1(&self, offset: u64, len: u64, op: Arc<Operation>) -> Result<[u8; 20]> {
        self.hash_range(offset, len, Some(op)).await
    }

    async fn hash_range(
        &self,
        offset: u64,
        len: u64,
        op: Option<Arc<Operation>>,
    ) -> Result<[u8; 20]> {
        let file = self.file.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> Result<[u8; 20]> {
            let mut hasher = Sha1::new();
            let mut buf = vec![0u8; (HASH_CHUNK as u64).min(len).max(1) as usize];
            let mut pos = offset;
            while pos < offset + len {
                if let Some(op) = &op {
                    op.check_cancelled()?;
                }
                let n = (offset + len - pos).min(buf.len() as u64) as usize;
                file.read_exact_at(&mut buf[..n], pos)
                    .map_err(|e| Error::local_io("could not read", &path, &e))?;
                hasher.update(&buf[..n]);
                pos += n as u64;
            }
            Ok(hasher.finalize().into())
        })
        .await
        .map_err(|e| Error::Internal(format!("the hashing task failed: {e}")))?
    }

    /// Streams `len` bytes from `offset` as an upload body, read one chunk ahead of the
    /// network. With the range's SHA1 `known` (from the first pass), the body is the bytes
    /// alone and nothing is hashed: B2 checks them against that SHA1, so a file that
    /// changed since is refused. Without it each chunk is hashed as it is read and the 40
    /// hex digits follow (B2's `hex_digits_at_end`). Memory: a few chunks, whatever the
    /// range size. Each read (and its hash) is one step on the blocking pool that waits for
    /// nothing else; the waiting for the network is done by an async task, so a body the
    /// network is slow to take holds no pool thread (issue 22).
    pub fn stream_range(
        &self,
        offset: u64,
        len: u64,
        known: Option<[u8; 20]>,
        op: Arc<Operation>,
    ) -> RangeStream {
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(2);
        let (digest_tx, digest_rx) = oneshot::channel();
        let file = self.file.clone();
        let identity = self.identity;
        let read = Arc::new(AtomicU64::new(0));
        let read_by_task = read.clone();
        tokio::spawn(async move {
            let mut hasher = known.is_none().then(Sha1::new);
            let mut pos = offset;
            let end = offset + len;
            while pos < end {
                let n = (end - pos).min(CHUNK as u64) as usize;
                let reader = file.clone();
                let step = tokio::task::spawn_blocking(move || {
                    let mut buf = BytesMut::zeroed(n);
                    let got = reader.read_exact_at(&mut buf, pos);
                    if let (Ok(()), Some(hasher)) = (&got, &mut hasher) {
                        hasher.update(&buf);
                    }
                    (got.map(|()| buf), hasher)
                })
                .await;
                let (got, back) = step
                    .unwrap_or_else(|_| (Err(std::io::Error::other("the read task failed")), None));
                hasher = back;
                let buf = match got {
                    Ok(buf) => buf,
                    Err(e) => {
                        let _ = digest_tx.send(Err(e.kind()));
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if tx.send(Ok(buf.freeze())).await.is_err() {
                    return; // the request was dropped
                }
                op.add_done(n as u64);
                read_by_task.fetch_add(n as u64, Ordering::Relaxed);
                pos += n as u64;
            }
            match (hasher, known) {
                (Some(hasher), _) => {
                    // The trailing digest makes B2 complete the upload: a file written
                    // while it was read fails the body instead, so B2 never stores (nor
                    // locks) a mix of two states. (A known SHA1 is checked by B2 itself.)
                    if !file
                        .metadata()
                        .is_ok_and(|m| FileIdentity::of(&m) == identity)
                    {
                        let _ = digest_tx.send(Err(std::io::ErrorKind::UnexpectedEof));
                        let _ = tx
                            .send(Err(std::io::Error::other("the file changed")))
                            .await;
                        return;
                    }
                    let digest: [u8; 20] = hasher.finalize().into();
                    let _ = digest_tx.send(Ok(digest));
                    let _ = tx.send(Ok(Bytes::from(hex(&digest).into_bytes()))).await;
                }
                (None, Some(digest)) => {
                    let _ = digest_tx.send(Ok(digest));
                }
                (None, None) => unreachable!("a hasher unless the SHA1 is known"),
            }
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        RangeStream {
            body: Some(Box::pin(body)),
            content_length: if known.is_some() { len } else { len + 40 },
            sha1_header: known.map_or_else(|| "hex_digits_at_end".to_string(), |d| hex(&d)),
            digest: digest_rx,
            read,
        }
    }
}

/// What one read of a file gives a large upload.
pub struct FileHashes {
    pub whole: [u8; 20],
    /// The SHA1 of each part, in order.
    pub parts: Vec<[u8; 20]>,
}

/// An upload body and, once it has been read to the end, the SHA1 it carried.
/// The chunks of an upload body as they are read.
pub type Chunks =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

pub struct RangeStream {
    pub body: Option<Chunks>,
    pub content_length: u64,
    /// The value of `X-Bz-Content-Sha1` for this body.
    pub sha1_header: String,
    digest: oneshot::Receiver<std::result::Result<[u8; 20], std::io::ErrorKind>>,
    /// Bytes handed to the request so far (and counted as progress).
    pub read: Arc<AtomicU64>,
}

/// How reading the range ended.
pub enum RangeOutcome {
    Read([u8; 20]),
    /// The local file failed or ended early: it changed or broke under us.
    LocalFailure(std::io::ErrorKind),
    /// The request stopped reading before the end.
    Abandoned,
}

impl RangeStream {
    pub async fn outcome(self) -> RangeOutcome {
        match self.digest.await {
            Ok(Ok(d)) => RangeOutcome::Read(d),
            Ok(Err(kind)) => RangeOutcome::LocalFailure(kind),
            Err(_) => RangeOutcome::Abandoned,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The one read gives what hashing the whole file and each part on its own gives, for
    /// parts that do not line up with the read chunks and a short last part.
    #[test]
    fn one_read_gives_the_whole_and_every_part_sha1() {
        let data: Vec<u8> = (0..(5 * CHUNK + 12_345))
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&data, 0).unwrap();
        let local = LocalFile::from_open(file, PathBuf::from("test")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        for part_size in [
            CHUNK as u64 + 1,
            2 * CHUNK as u64,
            3_000_000,
            data.len() as u64,
        ] {
            let got = rt
                .block_on(local.sha1_with_parts(part_size, Arc::new(Operation::new())))
                .unwrap();
            let want: [u8; 20] = Sha1::digest(&data).into();
            assert_eq!(got.whole, want, "{part_size}");
            let parts: Vec<[u8; 20]> = data
                .chunks(part_size as usize)
                .map(|p| Sha1::digest(p).into())
                .collect();
            assert_eq!(got.parts, parts, "{part_size}");
        }
    }
}
