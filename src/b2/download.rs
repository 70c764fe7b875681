//! Downloads: a file written to a temporary file beside its destination, large files as
//! concurrent ranges written in place, SHA1 checked as the ranges complete, and renamed into
//! place only once it matched.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use sha1::{Digest, Sha1};
use tokio::sync::oneshot;

use super::api::FileVersion;
use super::local_file::hex;
use super::retry::Failure;
use super::session::{failure_from_response, network_failure, timed_out, B2Client, Failed};
use crate::error::{Error, Result};

const CALL: &str = "b2_download_file_by_id";
/// At most this many ranges a file, so the bookkeeping stays small for any size.
const MAX_RANGES: u64 = 10_000;
/// Bytes gathered from the network before one write to disk.
const WRITE_CHUNK: usize = 1 << 20;

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
    pub dest: &'a Path,
    pub concurrency: usize,
    pub range_size: u64,
}

/// A temporary file that disappears unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: Arc<File>,
    persisted: bool,
}

impl TempFile {
    fn create_beside(dest: &Path) -> Result<TempFile> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::local_io("could not create the directory", &dir, &e))?;
        // The name shows whose temporary file it is, cut so the whole stays within NAME_MAX.
        let mut base: String = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        while base.len() > 200 {
            base.pop();
        }
        for _ in 0..16 {
            let path = dir.join(format!(".{base}.b2dest-{:016x}.tmp", fastrand::u64(..)));
            match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o600) // backups of other accounts: private until the host says otherwise
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file: Arc::new(file),
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::local_io(
                        "could not create a temporary file in",
                        &dir,
                        &e,
                    ))
                }
            }
        }
        Err(Error::LocalIo(format!(
            "could not create a temporary file in {}",
            dir.display()
        )))
    }

    /// Renames the verified file into place. When it replaces a file, it is flushed to disk
    /// first, so that a crash right after cannot leave neither the old copy nor the new one;
    /// a new file is left to the kernel's writeback, as other restore tools do.
    fn persist(mut self, dest: &Path) -> Result<()> {
        if std::fs::symlink_metadata(dest).is_ok() {
            self.file
                .sync_all()
                .map_err(|e| Error::local_io("could not flush", &self.path, &e))?;
        }
        std::fs::rename(&self.path, dest)
            .map_err(|e| Error::local_io("could not move the restored file to", dest, &e))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl DownloadJob<'_> {
    pub async fn run(&self) -> Result<DownloadedFile> {
        if self.dest.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is a directory; give the path of the file to write",
                self.dest.display()
            )));
        }
        let size = self.version.content_length;
        let temp = TempFile::create_beside(self.dest)?;
        temp.file
            .set_len(size)
            .map_err(|e| Error::local_io("could not size", &temp.path, &e))?;
        self.client.op.add_total(size);
        let range_size = self.range_size.max(size.div_ceil(MAX_RANGES)).max(1);
        let digest = if size <= range_size {
            self.fetch_range(&temp, 0, size, true)
                .await?
                .expect("hashed inline")
        } else {
            self.fetch_ranges(&temp, size, range_size).await?
        };
        let sha1 = hex(&digest);
        let expected = self.version.whole_sha1();
        if let Some(expected) = &expected {
            if *expected != sha1 {
                return Err(Error::Integrity(format!(
                    "the downloaded bytes of {} have SHA1 {sha1} but B2 recorded {expected}; nothing was written to {}: try again, and if it persists the copy on B2 is damaged",
                    self.version.file_name,
                    self.dest.display()
                )));
            }
        }
        self.client.op.check_cancelled()?;
        temp.persist(self.dest)?;
        Ok(DownloadedFile {
            size,
            sha1,
            verified: expected.is_some(),
        })
    }

    /// Ranges fetched `concurrency` at a time, while one task hashes them in order as each
    /// completes (reading back what the page cache still holds).
    async fn fetch_ranges(&self, temp: &TempFile, size: u64, range_size: u64) -> Result<[u8; 20]> {
        let ranges = plan_ranges(size, range_size, self.concurrency.max(1));
        let mut senders = Vec::with_capacity(ranges.len());
        let mut receivers = Vec::with_capacity(ranges.len());
        for &range in &ranges {
            let (tx, rx) = oneshot::channel::<()>();
            senders.push((range, tx));
            receivers.push((range, rx));
        }
        let fetches = stream::iter(senders.into_iter().map(|((offset, len), done)| async move {
            self.fetch_range(temp, offset, len, false).await?;
            let _ = done.send(());
            Ok::<(), Error>(())
        }))
        .buffer_unordered(self.concurrency.max(1))
        .try_collect::<()>();
        let file = temp.file.clone();
        let hashing = async move {
            let mut hasher = Sha1::new();
            for ((offset, len), rx) in receivers {
                if rx.await.is_err() {
                    return None; // a fetch failed; its error is the one to report
                }
                let f = file.clone();
                hasher = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; (4 << 20).min(len as usize)];
                    let mut pos = offset;
                    while pos < offset + len {
                        let n = (offset + len - pos).min(buf.len() as u64) as usize;
                        f.read_exact_at(&mut buf[..n], pos).ok()?;
                        hasher.update(&buf[..n]);
                        pos += n as u64;
                    }
                    Some(hasher)
                })
                .await
                .ok()??;
            }
            Some(hasher.finalize().into())
        };
        let (fetched, hashed) = tokio::join!(fetches, hashing);
        fetched?;
        hashed.ok_or_else(|| {
            Error::local_io(
                "could not read back",
                &temp.path,
                &std::io::Error::other("read failed"),
            )
        })
    }

    /// Fetches `[offset, offset+len)` into the temporary file, resuming from where a broken
    /// transfer stopped. With `hash`, also returns the SHA1 of the range.
    async fn fetch_range(
        &self,
        temp: &TempFile,
        offset: u64,
        len: u64,
        hash: bool,
    ) -> Result<Option<[u8; 20]>> {
        let client = self.client;
        let url_file_id = self.version.id().to_string();
        let written = std::sync::atomic::AtomicU64::new(0);
        let hasher = std::sync::Mutex::new(Sha1::new());
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
                let written = &written;
                let hasher = &hasher;
                async move {
                    if start >= end {
                        return Ok(());
                    }
                    let timeout = client.session.timeout;
                    let sent = tokio::time::timeout(timeout, req.send()).await;
                    let Ok(sent) = sent else {
                        return Err(timed_out(CALL, timeout));
                    };
                    let mut resp = match sent {
                        Ok(r) if r.status().is_success() => r,
                        Ok(r) => return Err(failure_from_response(CALL, r).await),
                        Err(e) => return Err(network_failure(CALL, &e)),
                    };
                    let mut pos = start;
                    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
                    loop {
                        let chunk = match tokio::time::timeout(timeout, resp.chunk()).await {
                            Ok(Ok(Some(c))) => c,
                            Ok(Ok(None)) => break,
                            Err(_) => {
                                self.flush(temp, &mut buf, &mut pos, written, hasher, hash)
                                    .await?;
                                return Err(timed_out(CALL, timeout));
                            }
                            Ok(Err(e)) => {
                                self.flush(temp, &mut buf, &mut pos, written, hasher, hash)
                                    .await?;
                                return Err(network_failure(CALL, &e));
                            }
                        };
                        if pos + (buf.len() + chunk.len()) as u64 > end {
                            return Err(Failed::fatal(Error::Remote {
                                message: "B2 sent more bytes than the range asked for".into(),
                                retryable: true,
                            }));
                        }
                        buf.extend_from_slice(&chunk);
                        if buf.len() >= WRITE_CHUNK {
                            self.flush(temp, &mut buf, &mut pos, written, hasher, hash)
                                .await?;
                        }
                    }
                    self.flush(temp, &mut buf, &mut pos, written, hasher, hash)
                        .await?;
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
            .await?;
        Ok(hash.then(|| {
            hasher
                .into_inner()
                .map(|h| h.finalize().into())
                .unwrap_or_default()
        }))
    }

    async fn flush(
        &self,
        temp: &TempFile,
        buf: &mut Vec<u8>,
        pos: &mut u64,
        written: &std::sync::atomic::AtomicU64,
        hasher: &std::sync::Mutex<Sha1>,
        hash: bool,
    ) -> std::result::Result<(), Failed> {
        if buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(buf, Vec::with_capacity(WRITE_CHUNK));
        if hash {
            if let Ok(mut h) = hasher.lock() {
                h.update(&data);
            }
        }
        let file = temp.file.clone();
        let at = *pos;
        let n = data.len() as u64;
        let path = temp.path.clone();
        tokio::task::spawn_blocking(move || file.write_all_at(&data, at))
            .await
            .map_err(|e| Failed::fatal(Error::Internal(format!("write task failed: {e}"))))?
            .map_err(|e| Failed::fatal(Error::local_io("could not write", &path, &e)))?;
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

    #[test]
    fn ranges_cover_the_file_and_start_staggered() {
        let r = plan_ranges(1000, 100, 4);
        assert_eq!(
            &r[..5],
            &[(0, 25), (25, 50), (75, 75), (150, 100), (250, 100)]
        );
        assert_eq!(r.last(), Some(&(950, 50)));
        assert!(r.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        assert_eq!(plan_ranges(10, 100, 4), vec![(0, 10)]);
        assert_eq!(plan_ranges(1000, 100, 1)[0], (0, 100));
    }
}
