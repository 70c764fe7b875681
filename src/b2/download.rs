//! Downloads: a file fetched as concurrent ranges (the first from `b2_download_file_by_name`
//! when the restore began there, the rest by id), written in place into a temporary file
//! (`local/temp.rs`: unnamed or in a private directory, never a name the directory's owner
//! could change), SHA1 checked as the ranges complete, and put in place only once it
//! matched.

use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
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
use crate::local::file::hex;
use crate::local::temp::{check_target, TempFile};
use crate::local::Dir;
use crate::operation::LogLevel;

const CALL: &str = "b2_download_file_by_id";
/// At most this many ranges a file, so the bookkeeping stays small for any size.
const MAX_RANGES: u64 = 10_000;

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
    use super::plan_ranges;

    /// Only unlocked private directories of ours, and only our file in them, are removed:
    /// nothing the customer made or could have changed, and nothing a link points to.
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
