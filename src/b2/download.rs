//! Downloads: a file written to a temporary file in its destination directory (an unnamed
//! `O_TMPFILE` where the file system has it, so a kill leaves nothing), large files as
//! concurrent ranges written in place, SHA1 checked as the ranges complete, and renamed into
//! place only once it matched. Every name is resolved relative to the handle of the
//! directory the caller opened, and no link there is followed.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::api::FileVersion;
use super::client::{B2Client, Failed};
use super::encryption::{check_readable, explain_key_refusal};
use super::http::{network_failure, read_failure, timed_out};
use super::in_order::{buffer_budget, InOrderSha1, StopOnDrop, Stopped};
use super::retry::Failure;
use crate::error::{Error, Result};
use crate::local::dir::{identity, try_lock, EntryKind};
use crate::local::file::hex;
use crate::local::Dir;
use crate::operation::LogLevel;

const CALL: &str = "b2_download_file_by_id";
/// At most this many ranges a file, so the bookkeeping stays small for any size.
const MAX_RANGES: u64 = 10_000;
/// Bytes gathered from the network before one write to disk, for each of `streams`
/// connections: 1 MiB, smaller with many connections so that what is being gathered stays
/// near 4 MiB in all (at 16 connections 1 MiB each was 16 MiB of the restore's RSS), and
/// never under 256 KiB, below which the system calls cost more than the memory saves.
fn write_chunk(streams: usize) -> usize {
    ((4 << 20) / streams.max(1)).clamp(256 << 10, 1 << 20)
}
/// Set (to anything) in tests: use the named temporary file even where `O_TMPFILE` works,
/// so that the fallback and its clean-up can be tested on any file system.
pub const NAMED_TEMP_ENV: &str = "B2DEST_TEST_NAMED_TEMP";

/// A restored file.
#[derive(Clone, Debug)]
pub struct DownloadedFile {
    pub size: u64,
    pub sha1: String,
    /// False only when B2 holds no SHA1 for the file (uploaded by another tool as a large
    /// file without `large_file_sha1`), so there was nothing to check against.
    pub verified: bool,
}

pub struct DownloadJob<'a> {
    pub client: &'a B2Client,
    pub version: &'a FileVersion,
    /// The directory the file goes into, opened once by the caller.
    pub dir: &'a Arc<Dir>,
    /// The file's name in `dir`.
    pub name: &'a OsStr,
    pub concurrency: usize,
    pub range_size: u64,
}

/// The hidden name of one of this library's temporary files for `target`:
/// `.{target}.b2dest-{16 hex}.tmp`, the target cut so the whole stays within NAME_MAX.
fn temp_name(target: &OsStr) -> OsString {
    let base = &target.as_bytes()[..target.len().min(200)];
    let mut name = Vec::with_capacity(base.len() + 32);
    name.push(b'.');
    name.extend_from_slice(base);
    name.extend_from_slice(format!(".b2dest-{:016x}.tmp", fastrand::u64(..)).as_bytes());
    OsString::from_vec(name)
}

/// Whether `name` is one of this library's temporary names for `target`.
fn is_temp_name_of(name: &[u8], target: &OsStr) -> bool {
    let base = &target.as_bytes()[..target.len().min(200)];
    let Some(rest) = name
        .strip_prefix(b".")
        .and_then(|r| r.strip_prefix(base))
        .and_then(|r| r.strip_prefix(b".b2dest-"))
        .and_then(|r| r.strip_suffix(b".tmp"))
    else {
        return false;
    };
    rest.len() == 16
        && rest
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Removes, from `dir`, the named temporary files this library left for any of `targets`
/// when a restore was killed: only regular files, only names of the pattern, and only
/// those no live restore holds (each live one keeps an `flock` on its file). Returns how
/// many went.
pub fn remove_stale_temps(dir: &Dir, targets: &HashSet<OsString>) -> usize {
    let Ok(names) = dir.names() else {
        return 0;
    };
    let mut removed = 0;
    for name in names {
        if !targets.iter().any(|t| is_temp_name_of(name.as_bytes(), t)) {
            continue;
        }
        let Ok(Some(stat)) = dir.stat_at(&name) else {
            continue;
        };
        if stat.kind != EntryKind::File {
            continue;
        }
        let Ok(file) = dir.open_any(&name) else {
            continue;
        };
        // The name must still be the file that is locked, and the lock free: its owner died.
        if identity(&file).ok() == Some((stat.dev, stat.ino))
            && try_lock(&file)
            && dir.unlink(&name).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// A temporary file that disappears unless it was renamed into place.
struct TempFile {
    dir: Arc<Dir>,
    /// Its name in `dir`: from the start for the named fallback, from `persist` on for an
    /// unnamed one.
    name: Option<OsString>,
    /// For messages.
    path: PathBuf,
    file: Arc<File>,
    /// Held around each write: concurrent writes to one file queue for its inode lock,
    /// which the kernel spins on while the holder copies (up to a whole core per waiting
    /// range, measured on a 2-core machine); waiting on this lock sleeps instead.
    write_lock: Arc<std::sync::Mutex<()>>,
    persisted: bool,
}

impl TempFile {
    fn create_in(dir: &Arc<Dir>, target: &OsStr) -> Result<TempFile> {
        let path = dir.display(target);
        if std::env::var_os(NAMED_TEMP_ENV).is_none() {
            match dir.unnamed_file() {
                Ok(file) => {
                    try_lock(&file);
                    return Ok(TempFile {
                        dir: dir.clone(),
                        name: None,
                        path,
                        file: Arc::new(file),
                        write_lock: Arc::default(),
                        persisted: false,
                    });
                }
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
        for _ in 0..16 {
            let name = temp_name(target);
            match dir.create_new(&name) {
                Ok(file) => {
                    // Held while the restore lives: the next restore removes it only unheld.
                    try_lock(&file);
                    return Ok(TempFile {
                        dir: dir.clone(),
                        path: dir.display(&name),
                        name: Some(name),
                        file: Arc::new(file),
                        write_lock: Arc::default(),
                        persisted: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::local_io(
                        "could not create a temporary file in",
                        dir.path(),
                        &e,
                    ))
                }
            }
        }
        Err(Error::LocalIo(format!(
            "could not create a temporary file in {}",
            dir.path().display()
        )))
    }

    /// Renames the verified file into place. When it replaces a file, it is flushed to disk
    /// first, so that a crash right after cannot leave neither the old copy nor the new one;
    /// a new file is left to the kernel's writeback, as other restore tools do. Returns
    /// whether it flushed.
    fn persist(mut self, target: &OsStr) -> Result<bool> {
        let dest = self.dir.display(target);
        let replaces = matches!(self.dir.stat_at(target), Ok(Some(_)));
        if replaces {
            self.file
                .sync_all()
                .map_err(|e| Error::local_io("could not flush", &self.path, &e))?;
        }
        let name = match self.name.clone() {
            Some(name) => name,
            None => self.link_hidden()?,
        };
        self.dir
            .rename(&name, target)
            .map_err(|e| Error::local_io("could not move the restored file to", &dest, &e))?;
        self.persisted = true;
        Ok(replaces)
    }

    /// Gives an unnamed file a hidden name beside the target (`linkat` cannot replace a
    /// name, `renameat` then can).
    fn link_hidden(&mut self) -> Result<OsString> {
        let target = self.path.file_name().unwrap_or_default().to_os_string();
        for _ in 0..16 {
            let name = temp_name(&target);
            match self.dir.link_unnamed(&self.file, &name) {
                Ok(()) => {
                    self.name = Some(name.clone());
                    return Ok(name);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::local_io(
                        "could not name the restored file in",
                        self.dir.path(),
                        &e,
                    ))
                }
            }
        }
        Err(Error::LocalIo(format!(
            "could not name the restored file in {}",
            self.dir.path().display()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            if let Some(name) = &self.name {
                let _ = self.dir.unlink(name);
            }
        }
    }
}

impl DownloadJob<'_> {
    pub async fn run(&self) -> Result<DownloadedFile> {
        let dest = self.dir.display(self.name);
        // Without the key the file was stored under, B2 can only refuse: ask it nothing.
        check_readable(self.version, &self.client.encryption, &dest)?;
        match self.dir.stat_at(self.name) {
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
        let size = self.version.content_length;
        self.client.op.add_total(size);
        let expected = self.version.whole_sha1();
        // A mismatch is fetched once more: bytes damaged on the way differ from one try to
        // the next, a damaged copy on B2 gives the same wrong SHA1 again.
        let mut first_mismatch: Option<String> = None;
        loop {
            let temp = TempFile::create_in(self.dir, self.name)?;
            temp.file
                .set_len(size)
                .map_err(|e| Error::local_io("could not size", &temp.path, &e))?;
            let digest = self.fetch_all(&temp, size).await.map_err(|e| {
                let dest = self.dir.display(self.name);
                explain_key_refusal(e, self.version, &self.client.encryption, &dest)
            })?;
            let sha1 = hex(&digest);
            match &expected {
                Some(expected) if *expected != sha1 => {
                    let Some(first) = &first_mismatch else {
                        self.client.op.log(
                            LogLevel::Warn,
                            format!(
                                "the downloaded bytes of {} have SHA1 {sha1} but B2 recorded {expected}; downloading it once more",
                                self.version.file_name
                            ),
                        );
                        self.client.op.sub_done(size);
                        first_mismatch = Some(sha1);
                        continue;
                    };
                    let text = format!(
                        "the downloaded bytes of {} did not match the SHA1 B2 recorded ({expected}) on two tries (SHA1 {first}, then {sha1}); nothing was written to {}",
                        self.version.file_name,
                        dest.display()
                    );
                    return Err(if *first == sha1 {
                        Error::Integrity(format!(
                            "{text}: the same wrong bytes twice, so the copy on B2 is most likely damaged; restore another backup"
                        ))
                    } else {
                        Error::DamagedInTransit(format!(
                            "{text}: different bytes each time, so they were damaged on the way: try again"
                        ))
                    });
                }
                _ => {}
            }
            self.client.op.check_cancelled()?;
            if temp.persist(self.name)? {
                self.client.op.log(
                    LogLevel::Debug,
                    format!("flushed {} to disk before replacing it", dest.display()),
                );
            }
            return Ok(DownloadedFile {
                size,
                sha1,
                verified: expected.is_some(),
            });
        }
    }

    async fn fetch_all(&self, temp: &TempFile, size: u64) -> Result<[u8; 20]> {
        let range_size = self.range_size.max(size.div_ceil(MAX_RANGES)).max(1);
        let ranges = if size <= range_size {
            vec![(0, size)]
        } else {
            plan_ranges(size, range_size, self.concurrency.max(1))
        };
        self.fetch_ranges(temp, &ranges).await
    }

    /// Ranges fetched `concurrency` at a time, while one thread hashes the file in order
    /// from the bytes as they arrive (see `in_order`).
    async fn fetch_ranges(&self, temp: &TempFile, ranges: &[(u64, u64)]) -> Result<[u8; 20]> {
        let streams = self.concurrency.clamp(1, ranges.len().max(1));
        let budget = buffer_budget(streams);
        let order = InOrderSha1::new(temp.file.clone(), ranges, budget, write_chunk(streams));
        let _stop = StopOnDrop(order.clone());
        let fetches = async {
            let order = &*order;
            let fetched = stream::iter(ranges.iter().copied().map(|(offset, len)| async move {
                self.fetch_range(temp, order, offset, len).await
            }))
            .buffer_unordered(self.concurrency.max(1))
            .try_collect::<()>()
            .await;
            if fetched.is_err() {
                order.stop();
            }
            fetched
        };
        let hasher = order.clone();
        let hashing = tokio::task::spawn_blocking(move || {
            // Should the hash panic, a range waiting for room must not wait forever.
            let _stop = StopOnDrop(hasher.clone());
            hasher.run()
        });
        let (fetched, hashed) = tokio::join!(fetches, hashing);
        let hashed =
            hashed.map_err(|e| Error::Internal(format!("the hashing task failed: {e}")))?;
        // A hash that could not read back stops the fetches: its error is the one to tell.
        if !matches!(hashed, Err(Stopped::ReadBack(_))) {
            fetched?;
        }
        match hashed {
            Ok((digest, stats)) => {
                self.client.op.log(
                    LogLevel::Debug,
                    format!(
                        "hashed {} in order: {} bytes as received, {} read back, at most {} bytes held",
                        self.version.file_name, stats.from_memory, stats.read_back, stats.peak_buffered
                    ),
                );
                Ok(digest)
            }
            Err(Stopped::ReadBack(kind)) => Err(Error::local_io(
                "could not read back",
                &temp.path,
                &std::io::Error::from(kind),
            )),
            Err(Stopped::Download) => Err(Error::Internal(
                "the in-order hash stopped although every range arrived".into(),
            )),
        }
    }

    /// Fetches `[offset, offset+len)` into the temporary file, resuming from where a broken
    /// transfer stopped, each chunk handed to the in-order hash before it is written.
    async fn fetch_range(
        &self,
        temp: &TempFile,
        order: &InOrderSha1,
        offset: u64,
        len: u64,
    ) -> Result<()> {
        let client = self.client;
        let url_file_id = self.version.id().to_string();
        let written = std::sync::atomic::AtomicU64::new(0);
        client
            .with_retries(CALL, &client.calls.clone(), |auth| {
                let url = format!("{}/b2api/v4/b2_download_file_by_id", auth.download_url);
                let done = written.load(std::sync::atomic::Ordering::Relaxed);
                let start = offset + done;
                let end = offset + len;
                let mut req = client
                    .decorate(client.http().get(url), &auth.token)
                    .query(&[("fileId", url_file_id.as_str())]);
                if len > 0 && (offset > 0 || len < self.version.content_length || done > 0) {
                    req = req.header("Range", format!("bytes={start}-{}", end - 1));
                }
                // SSE-C: the key on every request, every range included.
                let key_headers = client.encryption.download_headers(self.version);
                let customer_key_sent = !key_headers.is_empty();
                for (k, v) in key_headers {
                    req = req.header(k, v);
                }
                let written = &written;
                async move {
                    if start >= end {
                        return Ok(());
                    }
                    let timeout = client.session.timeout;
                    let sent = tokio::time::timeout(timeout, req.send()).await;
                    // Every attempt B2 may have received is billed; a refused connect is not.
                    if !matches!(&sent, Ok(Err(e)) if e.is_connect()) {
                        client.op.count_call(CALL);
                    }
                    let Ok(sent) = sent else {
                        return Err(timed_out(CALL, timeout));
                    };
                    let mut resp = match sent {
                        Ok(r) if r.status().is_success() => r,
                        Ok(r) => {
                            let failure = read_failure(CALL, r).await;
                            return Err(failure.with_customer_key(customer_key_sent).into());
                        }
                        Err(e) => return Err(network_failure(CALL, &e)),
                    };
                    let mut pos = start;
                    let mut buf = order.buffer();
                    loop {
                        let chunk = match tokio::time::timeout(timeout, resp.chunk()).await {
                            Ok(Ok(Some(c))) => c,
                            Ok(Ok(None)) => break,
                            Err(_) => {
                                self.flush(temp, order, &mut buf, &mut pos, written).await?;
                                return Err(timed_out(CALL, timeout));
                            }
                            Ok(Err(e)) => {
                                self.flush(temp, order, &mut buf, &mut pos, written).await?;
                                return Err(network_failure(CALL, &e));
                            }
                        };
                        // The limit holds the reading back, outside the stall timeout: a
                        // throttled body is not a stalled one.
                        if let Some(throttle) = &client.throttle {
                            throttle.take(chunk.len() as u64).await;
                        }
                        if pos + (buf.len() + chunk.len()) as u64 > end {
                            return Err(Failed::fatal(Error::Remote {
                                message: "B2 sent more bytes than the range asked for".into(),
                                retryable: true,
                            }));
                        }
                        // Written before it would outgrow its buffer: a grown buffer is a
                        // copy and twice the memory, for every chunk.
                        if buf.len() + chunk.len() > order.chunk() {
                            self.flush(temp, order, &mut buf, &mut pos, written).await?;
                        }
                        buf.extend_from_slice(&chunk);
                    }
                    self.flush(temp, order, &mut buf, &mut pos, written).await?;
                    if pos != end {
                        return Err(Failed {
                            failure: Failure::Transient { retry_after: None },
                            error: Error::Network(format!(
                                "the download of {} was cut off",
                                self.version.file_name
                            )),
                        });
                    }
                    Ok(())
                }
            })
            .await
    }

    async fn flush(
        &self,
        temp: &TempFile,
        order: &InOrderSha1,
        buf: &mut BytesMut,
        pos: &mut u64,
        written: &std::sync::atomic::AtomicU64,
    ) -> std::result::Result<(), Failed> {
        if buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(buf, order.buffer()).freeze();
        let at = *pos;
        if !order.offer(at, &data).await {
            // The hash could not read back, or the download is stopping: its error counts.
            return Err(Failed::fatal(Error::Cancelled));
        }
        let file = temp.file.clone();
        let n = data.len() as u64;
        let path = temp.path.clone();
        let lock = temp.write_lock.clone();
        let data = tokio::task::spawn_blocking(move || {
            let _held = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            file.write_all_at(&data, at).map(|_| data)
        })
        .await
        .map_err(|e| Failed::fatal(Error::Internal(format!("write task failed: {e}"))))?
        .map_err(|e| Failed::fatal(Error::local_io("could not write", &path, &e)))?;
        order.wrote(at, n);
        order.recycle(data);
        *pos += n;
        written.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.client.op.add_done(n);
        Ok(())
    }
}

/// The ranges of a download: `range_size` each, except that the first `streams` ranges grow
/// from 1/streams of it to all of it. Equal first ranges would start and end together, and
/// so would every wave after them, handing the in-order hasher `streams` ranges at once,
/// the last of them after the final byte arrived; staggered, ranges complete one by one
/// and the hasher keeps pace.
fn plan_ranges(size: u64, range_size: u64, streams: usize) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut offset = 0;
    let mut step = 1u64;
    while offset < size {
        let wanted = if step <= streams as u64 {
            range_size * step / streams as u64
        } else {
            range_size
        };
        let len = wanted.max(1).min(size - offset);
        ranges.push((offset, len));
        offset += len;
        step += 1;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::{plan_ranges, write_chunk};

    /// What the connections gather before writing stays near 4 MiB in all.
    #[test]
    fn write_chunks_shrink_with_more_connections_within_256_kib_to_1_mib() {
        let kib = |streams| write_chunk(streams) >> 10;
        assert_eq!([kib(0), kib(1), kib(4), kib(8)], [1024, 1024, 1024, 512]);
        assert_eq!([kib(16), kib(64)], [256, 256]);
    }

    /// The properties a plan must have, not one plan: every byte once, in order, no
    /// range empty or over the range size, within the call budget (the whole ranges plus
    /// at most one extra call a stream for the stagger).
    #[test]
    fn ranges_cover_the_file_once_within_the_call_budget() {
        for size in [1u64, 10, 99, 100, 101, 999, 1000, 4321, 100_003] {
            for range_size in [1u64, 7, 100, 1000] {
                for streams in [1usize, 2, 3, 4, 16] {
                    let r = plan_ranges(size, range_size, streams);
                    let case = format!("{size} {range_size} {streams}: {r:?}");
                    assert_eq!(r.first().map(|r| r.0), Some(0), "{case}");
                    assert!(r.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{case}");
                    assert_eq!(r.iter().map(|r| r.1).sum::<u64>(), size, "{case}");
                    assert!(r.iter().all(|r| (1..=range_size).contains(&r.1)), "{case}");
                    let budget = size.div_ceil(range_size) + streams as u64;
                    assert!(r.len() as u64 <= budget, "{case}");
                }
            }
        }
        assert!(plan_ranges(0, 100, 4).is_empty());
    }

    /// The first ranges grow, so streams started together end one by one.
    #[test]
    fn ranges_start_staggered() {
        let r = plan_ranges(1000, 100, 4);
        assert!(r[..4].windows(2).all(|w| w[0].1 < w[1].1), "{r:?}");
        assert_eq!(r[3].1, 100, "{r:?}");
    }
}
