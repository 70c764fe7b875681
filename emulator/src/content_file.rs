//! Writing received content to disk fast.
//!
//! Big bodies are written with O_DIRECT in large aligned blocks by two flusher threads:
//! on the virtual machines the emulator runs on, copying into fresh page-cache pages costs
//! more CPU than SHA1 itself (~400 MB/s), while direct writes go to the device at 1-2 GB/s
//! each and leave the CPU to hashing and the socket. Two writes in flight keep the device
//! busy while the next block is being filled. Small bodies, the unaligned tail, and
//! filesystems without O_DIRECT (tmpfs) use ordinary buffered writes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Size of each direct write (and of each aligned staging buffer).
const DIRECT_BLOCK: usize = 8 << 20;
/// Bodies at least this big are written directly. Smaller ones stay in the page cache,
/// where a download right after the upload finds them without touching the device.
const DIRECT_THRESHOLD: u64 = 64 << 20;
/// O_DIRECT wants buffer address, length and file offset aligned to the device's
/// logical block size; 4096 covers every common device.
const ALIGN: usize = 4096;
/// Direct writes in flight at once, and staging buffers (one more, being filled).
const FLUSHERS: usize = 2;
const BUFFERS: usize = FLUSHERS + 1;

/// A heap buffer with a `DIRECT_BLOCK`-long window aligned to `ALIGN`.
struct AlignedBlock {
    mem: Vec<u8>,
    start: usize,
}

impl AlignedBlock {
    fn new() -> AlignedBlock {
        let mem = vec![0u8; DIRECT_BLOCK + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        AlignedBlock { mem, start }
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + DIRECT_BLOCK]
    }
}

/// A full block to write at `offset`.
struct Job {
    block: AlignedBlock,
    offset: u64,
}

struct Direct {
    current: AlignedBlock,
    filled: usize,
    /// Offset of `current` in the file.
    offset: u64,
    jobs: Option<SyncSender<Job>>,
    free: Receiver<AlignedBlock>,
    flushers: Vec<JoinHandle<io::Result<()>>>,
}

enum Mode {
    Direct(Direct),
    Buffered(io::BufWriter<File>),
}

/// Writes a body's content to a file, choosing direct or buffered I/O by expected size.
pub struct ContentWriter {
    path: PathBuf,
    mode: Mode,
    written: u64,
}

impl ContentWriter {
    pub fn create(path: &Path, expected_len: u64) -> io::Result<ContentWriter> {
        Self::with_direct_io(path, expected_len >= DIRECT_THRESHOLD)
    }

    fn with_direct_io(path: &Path, direct: bool) -> io::Result<ContentWriter> {
        let mode = match direct.then(|| open_direct(path)) {
            Some(Ok(file)) => Mode::Direct(start_flushers(path, file)?),
            _ => Mode::Buffered(buffered(File::create(path)?)),
        };
        Ok(ContentWriter {
            path: path.to_owned(),
            mode,
            written: 0,
        })
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.written += data.len() as u64;
        match &mut self.mode {
            Mode::Buffered(w) => w.write_all(data),
            Mode::Direct(d) => {
                while !data.is_empty() {
                    let n = (DIRECT_BLOCK - d.filled).min(data.len());
                    d.current.window()[d.filled..d.filled + n].copy_from_slice(&data[..n]);
                    d.filled += n;
                    data = &data[n..];
                    if d.filled == DIRECT_BLOCK {
                        d.send_current()?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Waits for the direct writes, then writes the unaligned tail through the page cache.
    /// Returns the number of bytes written.
    pub fn finish(self) -> io::Result<u64> {
        match self.mode {
            Mode::Buffered(mut w) => w.flush()?,
            Mode::Direct(mut d) => {
                d.jobs = None; // flushers stop after the queued blocks
                for flusher in d.flushers.drain(..) {
                    flusher
                        .join()
                        .map_err(|_| io::Error::other("flusher thread panicked"))??;
                }
                let file = OpenOptions::new().write(true).open(&self.path)?;
                let tail = &d.current.window()[..d.filled];
                file.write_all_at(tail, d.offset)?;
                file.set_len(d.offset + tail.len() as u64)?;
            }
        }
        Ok(self.written)
    }
}

impl Direct {
    /// Queues the full current block and takes a free one (waiting if all are in flight).
    fn send_current(&mut self) -> io::Result<()> {
        let next = self
            .free
            .recv()
            .map_err(|_| io::Error::other("direct-write flushers stopped"))?;
        let block = std::mem::replace(&mut self.current, next);
        let job = Job {
            block,
            offset: self.offset,
        };
        self.offset += DIRECT_BLOCK as u64;
        self.filled = 0;
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(io::Error::other("direct-write flushers stopped")),
        }
    }
}

fn start_flushers(path: &Path, file: File) -> io::Result<Direct> {
    let file = Arc::new(file);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(FLUSHERS);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (free_tx, free_rx) = mpsc::sync_channel::<AlignedBlock>(BUFFERS);
    for _ in 0..BUFFERS - 1 {
        free_tx
            .send(AlignedBlock::new())
            .expect("the channel has room");
    }
    let mut flushers = Vec::with_capacity(FLUSHERS);
    for _ in 0..FLUSHERS {
        let (file, job_rx, free_tx, path) = (
            file.clone(),
            job_rx.clone(),
            free_tx.clone(),
            path.to_owned(),
        );
        let flusher = std::thread::Builder::new()
            .name("b2-emulator-flush".to_owned())
            .spawn(move || -> io::Result<()> {
                loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(mut job) = job else { return Ok(()) };
                    let window = job.block.window();
                    if file.write_all_at(window, job.offset).is_err() {
                        // Direct I/O refused (odd device or filesystem): write it buffered.
                        OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .write_all_at(window, job.offset)?;
                    }
                    let _ = free_tx.send(job.block);
                }
            })?;
        flushers.push(flusher);
    }
    Ok(Direct {
        current: AlignedBlock::new(),
        filled: 0,
        offset: 0,
        jobs: Some(job_tx),
        free: free_rx,
        flushers,
    })
}

fn buffered(file: File) -> io::BufWriter<File> {
    io::BufWriter::with_capacity(1 << 20, file)
}

fn open_direct(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize, chunk: usize, direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut data = vec![0u8; len];
        fastrand::Rng::with_seed(len as u64).fill(&mut data);
        let mut w = ContentWriter::with_direct_io(&path, direct).unwrap();
        for piece in data.chunks(chunk) {
            w.write(piece).unwrap();
        }
        assert_eq!(w.finish().unwrap(), len as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn buffered_and_direct_writes_round_trip() {
        round_trip(0, 10, false);
        round_trip(1000, 7, false);
        round_trip(0, 10, true);
        round_trip(1000, 7, true);
        round_trip(DIRECT_BLOCK, 65_536, true);
        round_trip(5 * DIRECT_BLOCK + 12_345, 400_000, true);
    }
}
