//! The whole-file SHA1 of a download whose ranges arrive at once: one thread hashes the
//! file in order from the bytes as they are received, so that normally nothing is read
//! back. The range that holds the next byte to hash is hashed as it arrives; ranges ahead
//! of it keep their chunks in a bounded buffer until the hash reaches them. A chunk ahead
//! that finds the buffer full is only written, and hashed later by reading it back: making
//! its download wait instead would leave one connection of `concurrency` working, which
//! on a real link is a restore several times slower.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

/// Bytes of received chunks kept in memory for the hash of one file, all its ranges
/// together: 6 MiB a connection up to 24 MiB at 4 connections, then 1 MiB less for each
/// connection beyond 4 (down to 8 MiB), because each holds about that much of its own (the
/// HTTP read buffer, a write under way), and with many ranges ahead of the hash most bytes
/// are read back whatever the budget (86% at 16 connections with 24 MiB). A restore of
/// several files at once gives each its share of the connections, so the operation keeps
/// about the same.
pub fn buffer_budget(streams: usize) -> usize {
    match streams.max(1) {
        streams @ 1..=4 => streams * (6 << 20),
        streams => (24usize << 20)
            .saturating_sub((streams - 4) << 20)
            .max(8 << 20),
    }
}
/// Bytes read back per system call when a chunk was not kept.
const READ_BACK_CHUNK: usize = 1 << 20;
/// Free chunk buffers kept for reuse: fresh ones cost a page fault per 4 KiB, and freed
/// ones stay in the allocator's arenas of whichever thread freed them.
const POOL: usize = 8;

/// What the hash did, for the log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Bytes hashed from the chunks as received.
    pub from_memory: u64,
    /// Bytes that had to be read back from the file.
    pub read_back: u64,
    /// Most bytes held in the buffer at once.
    pub peak_buffered: usize,
}

pub struct InOrderSha1 {
    state: Mutex<State>,
    /// Wakes the hashing thread: a chunk came, a write landed, or the download ended.
    arrived: Condvar,
    /// Wakes the range being hashed when it waits for room in the buffer.
    room: Notify,
    file: Arc<File>,
    budget: usize,
    /// The part of the budget only chunks in line may use, so that they always find room
    /// whatever the ranges ahead hold.
    head_reserve: usize,
    chunk: usize,
    pool: Mutex<Vec<BytesMut>>,
}

struct State {
    /// Bytes hashed so far: the hash covers `[0, next)`.
    next: u64,
    size: u64,
    /// The ranges of the download, in file order, how far each was received and how far
    /// it is written.
    ranges: Vec<(u64, u64)>,
    received_to: Vec<u64>,
    written_to: Vec<u64>,
    /// The first range not received in full: its chunks are next in line for the hash.
    first_open: usize,
    /// Received chunks not hashed yet, by file offset.
    kept: BTreeMap<u64, Bytes>,
    kept_bytes: usize,
    /// Set when the download failed or was dropped, or the hash could not read back.
    stopped: bool,
    read_back_failed: bool,
    stats: HashStats,
}

impl State {
    fn received(&mut self, range: usize, to: u64) {
        self.received_to[range] = to;
        while self.first_open < self.ranges.len() {
            let (start, len) = self.ranges[self.first_open];
            if self.received_to[self.first_open] < start + len {
                break;
            }
            self.first_open += 1;
        }
    }

    fn range_of(&self, offset: u64) -> usize {
        self.ranges
            .partition_point(|r| r.0 <= offset)
            .saturating_sub(1)
    }
}

/// Why the hash stopped without a digest.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The download stopped first: its own error is the one to report.
    Download,
    ReadBack(std::io::ErrorKind),
}

impl InOrderSha1 {
    /// For a download of `ranges` (in file order, covering the file) into `file`, received
    /// in chunks of about `chunk` bytes.
    pub fn new(
        file: Arc<File>,
        ranges: &[(u64, u64)],
        budget: usize,
        chunk: usize,
    ) -> Arc<InOrderSha1> {
        let size = ranges.last().map(|r| r.0 + r.1).unwrap_or(0);
        Arc::new(InOrderSha1 {
            state: Mutex::new(State {
                next: 0,
                size,
                ranges: ranges.to_vec(),
                received_to: ranges.iter().map(|r| r.0).collect(),
                written_to: ranges.iter().map(|r| r.0).collect(),
                first_open: 0,
                kept: BTreeMap::new(),
                kept_bytes: 0,
                stopped: false,
                read_back_failed: false,
                stats: HashStats::default(),
            }),
            arrived: Condvar::new(),
            room: Notify::new(),
            file,
            budget: budget.max(2 * chunk),
            head_reserve: budget.max(2 * chunk) / 3,
            chunk,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Bytes a range gathers before it hands them over and writes them.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// An empty buffer for the next chunk, reused when one is free.
    pub fn buffer(&self) -> BytesMut {
        let reused = self.pool.lock().ok().and_then(|mut p| p.pop());
        reused.unwrap_or_else(|| BytesMut::with_capacity(self.chunk))
    }

    /// Gives a chunk's buffer back once nothing else holds it (the writer and the hash
    /// each hand theirs in; the last one's is kept).
    pub fn recycle(&self, chunk: Bytes) {
        if let Ok(mut buf) = chunk.try_into_mut() {
            buf.clear();
            if let Ok(mut pool) = self.pool.lock() {
                if pool.len() < POOL {
                    pool.push(buf);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands over the chunk received at `offset`, before it is written. A chunk with every
    /// byte before it received waits here while the buffer is full (the hash is then what
    /// bounds the download, and it needs nothing else to get there); a chunk behind a gap
    /// never waits. False when the hash stopped.
    pub async fn offer(&self, offset: u64, data: &Bytes) -> bool {
        let len = data.len();
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut st = self.lock();
                if st.stopped || st.read_back_failed {
                    return false;
                }
                let range = st.range_of(offset);
                let head = range <= st.first_open;
                let limit = if head {
                    self.budget
                } else {
                    self.budget - self.head_reserve
                };
                // The very next bytes are always taken: the hash waits for nothing else.
                if st.kept_bytes + len <= limit || offset == st.next {
                    st.received(range, offset + len as u64);
                    st.kept_bytes += len;
                    st.stats.peak_buffered = st.stats.peak_buffered.max(st.kept_bytes);
                    st.kept.insert(offset, data.clone());
                    drop(st);
                    self.arrived.notify_one();
                    return true;
                }
                if !head {
                    st.received(range, offset + len as u64);
                    return true; // written only; read back when the hash gets there
                }
            }
            room.await;
        }
    }

    /// The chunk at `[offset, offset + len)` is written to the file.
    pub fn wrote(&self, offset: u64, len: u64) {
        let mut st = self.lock();
        let i = st.range_of(offset);
        st.written_to[i] = st.written_to[i].max(offset + len);
        drop(st);
        self.arrived.notify_one();
    }

    /// The download failed or was dropped: the hashing thread ends.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.arrived.notify_all();
        self.room.notify_waiters();
    }

    /// Hashes the whole file in order; runs on a blocking thread until the last byte is
    /// hashed or the download stops.
    pub fn run(&self) -> Result<([u8; 20], HashStats), Stopped> {
        let mut sha = Sha1::new();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let mut st = self.lock();
            let work = loop {
                if st.next >= st.size {
                    return Ok((sha.finalize().into(), st.stats));
                }
                if st.stopped {
                    return Err(Stopped::Download);
                }
                let next = st.next;
                if let Some(chunk) = st.kept.remove(&next) {
                    st.kept_bytes -= chunk.len();
                    st.next += chunk.len() as u64;
                    st.stats.from_memory += chunk.len() as u64;
                    break Ok(chunk);
                }
                // Written but not kept: read back up to the next chunk kept.
                let written_to = st.written_to[st.range_of(next)];
                if written_to > next {
                    let kept_at = st.kept.range(next..).next().map_or(u64::MAX, |(o, _)| *o);
                    let end = written_to.min(kept_at).min(next + READ_BACK_CHUNK as u64);
                    break Err((next, (end - next) as usize));
                }
                st = self.arrived.wait(st).unwrap_or_else(|p| p.into_inner());
            };
            drop(st);
            match work {
                Ok(chunk) => {
                    self.room.notify_waiters();
                    sha.update(&chunk);
                    self.recycle(chunk);
                }
                Err((at, n)) => {
                    buf.resize(n, 0);
                    if let Err(e) = self.file.read_exact_at(&mut buf, at) {
                        self.lock().read_back_failed = true;
                        self.room.notify_waiters();
                        return Err(Stopped::ReadBack(e.kind()));
                    }
                    sha.update(&buf);
                    let mut st = self.lock();
                    st.next = at + n as u64;
                    st.stats.read_back += n as u64;
                }
            }
        }
    }
}

/// Stops the hash when dropped: a download that fails, or whose future is dropped, must
/// not leave the hashing thread waiting.
pub struct StopOnDrop(pub Arc<InOrderSha1>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(data: &[u8]) -> Arc<File> {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(data, 0).unwrap();
        Arc::new(f)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Feeds the ranges' chunks interleaved the way concurrent streams deliver them (one
    /// chunk of each range in turn), with the hash on its own thread.
    fn feed(budget: usize, ranges: &[(u64, u64)], chunk: usize, all: &[u8]) -> HashStats {
        let file = file_of(all);
        let hash = InOrderSha1::new(file, ranges, budget, chunk);
        let h = hash.clone();
        let thread = std::thread::spawn(move || h.run());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut pos: Vec<u64> = ranges.iter().map(|r| r.0).collect();
            loop {
                let mut any = false;
                for (i, &(start, len)) in ranges.iter().enumerate() {
                    if pos[i] < start + len {
                        any = true;
                        let n = chunk.min((start + len - pos[i]) as usize);
                        let at = pos[i] as usize;
                        let bytes = Bytes::copy_from_slice(&all[at..at + n]);
                        assert!(hash.offer(pos[i], &bytes).await);
                        hash.wrote(pos[i], n as u64);
                        pos[i] += n as u64;
                    }
                }
                if !any {
                    break;
                }
            }
        });
        let (digest, stats) = thread.join().unwrap().unwrap();
        let want: [u8; 20] = Sha1::digest(all).into();
        assert_eq!(digest, want);
        assert_eq!(stats.from_memory + stats.read_back, all.len() as u64);
        assert!(
            stats.peak_buffered <= budget.max(2 * chunk) + chunk,
            "{stats:?}"
        );
        stats
    }

    #[test]
    fn ranges_that_fit_the_buffer_are_never_read_back() {
        let all = data(4 << 20);
        let ranges = [(0, 1 << 20), (1 << 20, 1 << 20), (2 << 20, 2 << 20)];
        let stats = feed(buffer_budget(3), &ranges, 64 << 10, &all);
        assert_eq!(stats.read_back, 0, "{stats:?}");
    }

    #[test]
    fn ranges_ahead_of_a_full_buffer_are_read_back_and_the_digest_holds() {
        let all = data(48 << 20);
        let ranges = [(0, 16 << 20), (16 << 20, 16 << 20), (32 << 20, 16 << 20)];
        let stats = feed(8 << 20, &ranges, 1 << 20, &all);
        assert!(stats.read_back > 0, "{stats:?}");
        assert!(stats.from_memory > 0, "{stats:?}");
    }

    /// What a restore holds for the hash stays within 24 MiB at any concurrency, and
    /// shrinks past 4 connections as their own buffers grow (a restore at 16 fits 64 MiB).
    #[test]
    fn the_budget_peaks_at_four_connections_and_never_drops_below_8_mib() {
        let mib = |streams| buffer_budget(streams) >> 20;
        assert_eq!([mib(0), mib(1), mib(2), mib(4)], [6, 6, 12, 24]);
        assert_eq!([mib(5), mib(16), mib(20), mib(64)], [23, 12, 8, 8]);
        for streams in 4..64 {
            assert!(
                buffer_budget(streams + 1) <= buffer_budget(streams),
                "{streams}"
            );
        }
    }

    #[test]
    fn a_stopped_download_ends_the_hash() {
        let all = data(1 << 20);
        let hash = InOrderSha1::new(file_of(&all), &[(0, 1 << 20)], buffer_budget(1), 1 << 20);
        let h = hash.clone();
        let thread = std::thread::spawn(move || h.run());
        drop(StopOnDrop(hash.clone()));
        assert_eq!(thread.join().unwrap().unwrap_err(), Stopped::Download);
    }

    #[test]
    fn an_empty_file_hashes_to_the_empty_sha1() {
        let hash = InOrderSha1::new(file_of(b""), &[], buffer_budget(1), 1 << 20);
        let (digest, _) = hash.run().unwrap();
        assert_eq!(digest, <[u8; 20]>::from(Sha1::digest(b"")));
    }
}
