//! Downloads: a file written to a temporary file (an unnamed `O_TMPFILE` in its destination
//! directory where the file system has it, so a kill leaves nothing; else a named one in a
//! private directory beside the target), large files as concurrent ranges written in place,
//! SHA1 checked as the ranges complete, and put in place only once it matched, never from a
//! name the directory's owner could change. Every name is resolved relative to a directory
//! handle, and no link there is followed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::api::FileVersion;
use super::chunk_pool::{Chunk, ChunkPool, NET_PIECE};
use super::client::B2Client;
use super::encryption::{check_readable, explain_key_refusal};
use super::http::{network_failure, read_failure, timed_out};
use super::in_order::{InOrderSha1, StopOnDrop, Stopped, BUDGET};
use super::retry::Failed;
use super::retry::Failure;
use crate::error::{Error, Result};
use crate::local::dir::identity_of_dir;
use crate::local::file::hex;
use crate::local::sys::{identity, is_link_error, EntryKind};
use crate::local::Dir;
use crate::operation::LogLevel;

const CALL: &str = "b2_download_file_by_id";
/// At most this many ranges a file, so the bookkeeping stays small for any size.
const MAX_RANGES: u64 = 10_000;
/// Set (to anything) in tests: use the named temporary file even where `O_TMPFILE` works,
/// so that the fallback and its clean-up can be tested on any file system.
pub const NAMED_TEMP_ENV: &str = "B2DEST_TEST_NAMED_TEMP";

/// A restored file.
#[derive(Clone, Debug)]
pub struct DownloadedFile {
    pub size: u64,
    pub sha1: String,
    /// False when B2 holds no SHA1 for the file (uploaded by another tool as a large file
    /// without `large_file_sha1`), so there was nothing to check against, and when the
    /// target was not the restored file right after it was put there (`in_place`).
    pub verified: bool,
    /// Whether the target's name held the restored file (device and inode) when checked
    /// right after the rename. The directory's owner may replace it at any moment; false
    /// says they already had.
    pub in_place: bool,
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
    /// The by-name answer the restore started with, if it did (`by_name.rs`).
    pub opening: Option<Opening>,
}

/// The answer of `b2_download_file_by_name`: its body is the file's bytes `[0, len)`, read
/// by the first try of the first range; every other request goes by the file's id.
pub struct Opening {
    answer: std::sync::Mutex<Option<reqwest::Response>>,
    len: u64,
}

impl Opening {
    pub fn new(answer: reqwest::Response, len: u64) -> Opening {
        Opening {
            answer: std::sync::Mutex::new(Some(answer)),
            len,
        }
    }

    fn take(&self) -> Option<reqwest::Response> {
        self.answer.lock().ok().and_then(|mut a| a.take())
    }
}

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
struct PrivateDir {
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
struct TempFile {
    dir: Arc<Dir>,
    /// Where the file is named `INNER`: from the start for the named fallback, from
    /// `persist` on for an unnamed one that replaces a file.
    private: Option<PrivateDir>,
    /// For messages: the target's path.
    path: PathBuf,
    file: Arc<File>,
    /// Held around each write: concurrent writes to one file queue for its inode lock,
    /// which the kernel spins on while the holder copies (up to a whole core per waiting
    /// range, measured on a 2-core machine); waiting on this lock sleeps instead. Taken
    /// before the write goes to the blocking pool, so no pool thread waits for it.
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// What `persist` did.
struct Persisted {
    /// The file it replaced was flushed first.
    flushed: bool,
    /// Right after the rename (or link), the target's name was the restored file. False
    /// when the directory's owner had already put something else there: theirs to do, but
    /// not to be reported as the verified file.
    in_place: bool,
}

impl TempFile {
    fn create_in(dir: &Arc<Dir>, target: &OsStr) -> Result<TempFile> {
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
    fn persist(mut self, target: &OsStr) -> Result<Persisted> {
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

impl DownloadJob<'_> {
    pub async fn run(&self) -> Result<DownloadedFile> {
        let dest = self.dir.display(self.name);
        // Without the key the file was stored under, B2 can only refuse: ask it nothing.
        check_readable(self.version, &self.client.encryption, &dest)?;
        // With an opening, the caller checked the target before it asked B2: what appeared
        // there since is replaced, never followed.
        if self.opening.is_none() {
            check_target(self.dir, self.name)?;
        }
        let size = match (self.version.length(), &self.version.file_id) {
            (Some(size), Some(_)) => size,
            _ => {
                return Err(Error::Remote {
                    message: format!(
                        "{}; it cannot be restored and checked without a file id and a length, so nothing was written to {}",
                        self.version.unreadable().unwrap_or_default(),
                        dest.display()
                    ),
                    retryable: false,
                })
            }
        };
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
                    // B2 reported no damage of its own (it answered both downloads), so the
                    // host may try again: the same wrong bytes twice hint at, but do not
                    // prove, a damaged copy.
                    return Err(Error::DamagedInTransit(if *first == sha1 {
                        format!(
                            "{text}: the same bytes arrived both times, although B2 reported no damage; try again, and if it keeps failing the copy on B2 may be damaged: restore another backup"
                        )
                    } else {
                        format!(
                            "{text}: different bytes each time, so they were damaged on the way: try again"
                        )
                    }));
                }
                _ => {}
            }
            self.client.op.check_cancelled()?;
            let placed = temp.persist(self.name)?;
            if placed.flushed {
                self.client.op.log(
                    LogLevel::Debug,
                    format!("flushed {} to disk before replacing it", dest.display()),
                );
            }
            if !placed.in_place {
                self.client.op.log(
                    LogLevel::Warn,
                    format!(
                        "{} was replaced by something else right after the restore put it there",
                        dest.display()
                    ),
                );
            }
            return Ok(DownloadedFile {
                size,
                sha1,
                verified: expected.is_some() && placed.in_place,
                in_place: placed.in_place,
            });
        }
    }

    async fn fetch_all(&self, temp: &TempFile, size: u64) -> Result<[u8; 20]> {
        let range_size = self.range_size.max(size.div_ceil(MAX_RANGES)).max(1);
        let streams = self.concurrency.max(1);
        let ranges = match &self.opening {
            // The first range is what the by-name request asked for; the rest as usual.
            Some(o) if o.len > 0 && o.len < size => std::iter::once((0, o.len))
                .chain(
                    plan_ranges(size - o.len, range_size, streams)
                        .into_iter()
                        .map(|(at, len)| (at + o.len, len)),
                )
                .collect(),
            Some(_) => vec![(0, size)],
            None if size <= range_size => vec![(0, size)],
            None => plan_ranges(size, range_size, streams),
        };
        self.fetch_ranges(temp, &ranges).await
    }

    /// Ranges fetched `concurrency` at a time, while the file is hashed in order from the
    /// bytes as they arrive (see `in_order`, and why this cannot hang the process).
    async fn fetch_ranges(&self, temp: &TempFile, ranges: &[(u64, u64)]) -> Result<[u8; 20]> {
        let order = InOrderSha1::new(temp.file.clone(), ranges, BUDGET, ChunkPool::shared());
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
        let (fetched, hashed) = tokio::join!(fetches, order.run());
        // A hash that failed stops the fetches: its error is the one to tell.
        if matches!(hashed, Ok(_) | Err(Stopped::Download)) {
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
            Err(Stopped::Panicked) => Err(Error::Internal("the in-order hash panicked".into())),
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
                if len > 0 && (offset > 0 || len < self.version.bytes() || done > 0) {
                    req = req.header("Range", format!("bytes={start}-{}", end - 1));
                }
                // SSE-C: the key on every request, every range included.
                let key_headers = client.encryption.download_headers(self.version);
                let customer_key_sent = !key_headers.is_empty();
                for (k, v) in key_headers {
                    req = req.header(k, v);
                }
                let written = &written;
                // The by-name answer, already counted, on the first range's first try.
                let opened = match &self.opening {
                    Some(o) if offset == 0 && done == 0 => o.take(),
                    _ => None,
                };
                async move {
                    if start >= end {
                        return Ok(());
                    }
                    let timeout = client.session.timeout;
                    let mut resp = match opened {
                        Some(r) => r,
                        None => {
                            let sent = tokio::time::timeout(timeout, req.send()).await;
                            // Every attempt B2 may have received is billed; a refused
                            // connect is not.
                            if !matches!(&sent, Ok(Err(e)) if e.is_connect()) {
                                client.op.count_call(CALL);
                            }
                            let Ok(sent) = sent else {
                                return Err(timed_out(CALL, timeout));
                            };
                            match sent {
                                Ok(r) if r.status().is_success() => r,
                                Ok(r) => {
                                    let failure = read_failure(CALL, r).await;
                                    return Err(failure
                                        .with_customer_key(customer_key_sent)
                                        .into());
                                }
                                Err(e) => return Err(network_failure(CALL, &e)),
                            }
                        }
                    };
                    let mut pos = start;
                    // One buffer of the process's pool at a time, with room for the next
                    // piece before it is read: a stream waiting for a buffer holds none of
                    // the network's bytes, and a piece is never held while its stream waits.
                    let mut buf: Option<Chunk> = None;
                    loop {
                        if buf.as_ref().is_some_and(|b| b.room() < NET_PIECE) {
                            self.flush(temp, order, &mut buf, &mut pos, written).await?;
                        }
                        if buf.is_none() {
                            buf = Some(order.pool().take().await);
                        }
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
                        let gathered = buf.as_ref().map_or(0, |b| b.len());
                        if pos + (gathered + chunk.len()) as u64 > end {
                            return Err(Failed::fatal(Error::Remote {
                                message: "B2 sent more bytes than the range asked for".into(),
                                retryable: true,
                            }));
                        }
                        // Copied at once (a piece larger than the room, which hyper does not
                        // give, would be written in two).
                        let mut data = &chunk[..];
                        while !data.is_empty() {
                            let b = match &mut buf {
                                Some(b) => b,
                                None => buf.insert(order.pool().take().await),
                            };
                            let n = data.len().min(b.room());
                            b.extend(&data[..n]);
                            data = &data[n..];
                            if b.room() == 0 {
                                self.flush(temp, order, &mut buf, &mut pos, written).await?;
                            }
                        }
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
        buf: &mut Option<Chunk>,
        pos: &mut u64,
        written: &std::sync::atomic::AtomicU64,
    ) -> std::result::Result<(), Failed> {
        let Some(data) = buf.take().filter(|b| !b.is_empty()) else {
            return Ok(());
        };
        let data = Arc::new(data);
        let at = *pos;
        if !order.offer(at, &data).await {
            // The hash could not read back, or the download is stopping: its error counts.
            return Err(Failed::fatal(Error::Cancelled));
        }
        let file = temp.file.clone();
        let n = data.len() as u64;
        let path = temp.path.clone();
        // Taken here, not on the blocking pool: a write there never waits for another.
        let held = temp.write_lock.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let _held = held;
            file.write_all_at(&data, at)
        })
        .await
        .map_err(|e| Failed::fatal(Error::Internal(format!("write task failed: {e}"))))?
        .map_err(|e| Failed::fatal(Error::local_io("could not write", &path, &e)))?;
        order.wrote(at, n);
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
    use super::{is_private_name, plan_ranges, remove_stale_temps, INNER};
    use crate::local::Dir;
    use std::ffi::OsStr;

    /// Only unlocked private directories of ours, and only our file in them, are removed:
    /// nothing the customer made or could have changed, and nothing a link points to.
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
