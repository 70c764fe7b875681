//! The whole-file SHA1 of a download whose ranges arrive at once, hashed in order from the
//! bytes as they are received, so that normally nothing is read back. The range that holds
//! the next byte to hash is hashed as it arrives; ranges ahead of it keep their chunks
//! until the hash reaches them, within a budget of the restore and half of the process's
//! chunk buffers (`chunk_pool`). A chunk ahead that finds no room is only written, and
//! hashed later by reading it back: making its download wait instead would leave one
//! connection of `concurrency` working, which on a real link is a restore several times
//! slower.
//!
//! Why no restore, nor many at once, can hang the process (issue 22). Tokio's blocking
//! pool is capped (`runtime.rs`) and shared by every operation of the process; when a
//! thread of it waits for work that needs another of its threads, enough such waits
//! together wait for ever. So here no closure on that pool waits for anything but the CPU
//! and the local disk: a step of hashing of bytes already in memory, a read back of bytes
//! already written, a write (its file's lock is taken, asynchronously, before the write is
//! queued), an upload's read of one chunk. Each ends by itself; a full pool only queues.
//! All the waiting is asynchronous and holds no pool thread:
//! - the hash (`run`, a future of the download's own task) waits for the bytes at its
//!   position to be handed over or written;
//! - a range's stream waits for the network, for a chunk buffer (`chunk_pool`: it holds
//!   none while it waits, and at least half the buffers are held only by streams, each of
//!   which gives its buffer back after one write), for its file's write lock (held by a
//!   write under way), and, when its chunk is next in line, for room in this restore's
//!   budget. That room is made by the hash alone, and the hash needs nothing from the
//!   waiting chunk: the bytes before it are kept, written, or being written.
//!
//! No wait is for a waiter, so there is no cycle of them.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};

use sha1::{Digest, Sha1};
use tokio::sync::Notify;

use super::chunk_pool::{Chunk, ChunkPool};

/// Bytes of received chunks one restore keeps for its hash: a constant, not a share of
/// each connection, so that memory does not grow with `concurrency` (with many ranges
/// ahead of the hash, most of their bytes are read back whatever the budget: 86% at 16
/// connections with 24 MiB). The process's pool bounds all restores together: half of
/// it, 8 MiB, is the most they keep.
pub const BUDGET: usize = 8 << 20;
/// Bytes hashed, or read back, in one step on the blocking pool.
const STEP: usize = 4 << 20;
/// Bytes read back per system call when a chunk was not kept.
const READ_BACK_CHUNK: usize = 256 << 10;

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
    /// Wakes the hash: a chunk came, a write landed, or the download ended.
    arrived: Notify,
    /// Wakes the range being hashed when it waits for room in the budget.
    room: Notify,
    file: Arc<File>,
    pool: &'static ChunkPool,
    budget: usize,
    /// The part of the budget only chunks in line may use, so that they always find room
    /// whatever the ranges ahead hold.
    head_reserve: usize,
}

/// A chunk the hash holds until it gets there; `counted` when it is one of the pool's
/// kept buffers (a chunk at the hash's position is taken without counting: it is hashed
/// next, waiting for nothing).
struct Kept {
    chunk: Arc<Chunk>,
    counted: bool,
}

struct State {
    /// Bytes hashed (or taken to be hashed) so far: the hash covers `[0, next)`.
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
    kept: BTreeMap<u64, Kept>,
    kept_bytes: usize,
    /// Set when the download failed or was dropped, or the hash failed.
    stopped: bool,
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
    /// A step of the hash panicked.
    Panicked,
}

/// One step of the hash, done on the blocking pool.
enum Step {
    Hash(Vec<Kept>),
    ReadBack(u64, usize),
}

impl InOrderSha1 {
    /// For a download of `ranges` (in file order, covering the file) into `file`, its
    /// chunks from `pool`.
    pub fn new(
        file: Arc<File>,
        ranges: &[(u64, u64)],
        budget: usize,
        pool: &'static ChunkPool,
    ) -> Arc<InOrderSha1> {
        let size = ranges.last().map(|r| r.0 + r.1).unwrap_or(0);
        let budget = budget.max(2 * super::chunk_pool::CHUNK);
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
                stats: HashStats::default(),
            }),
            arrived: Notify::new(),
            room: Notify::new(),
            file,
            pool,
            budget,
            head_reserve: budget / 3,
        })
    }

    pub fn pool(&self) -> &'static ChunkPool {
        self.pool
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands over the chunk received at `offset`, before it is written. A chunk with every
    /// byte before it received waits here while this restore's budget is full (the hash
    /// is then what bounds the download, and it needs nothing else to get there); a chunk
    /// behind a gap never waits, nor does any chunk for the process's pool. False when the
    /// hash stopped.
    pub async fn offer(&self, offset: u64, chunk: &Arc<Chunk>) -> bool {
        let len = chunk.len();
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut st = self.lock();
                if st.stopped {
                    return false;
                }
                let range = st.range_of(offset);
                let head = range <= st.first_open;
                let limit = if head {
                    self.budget
                } else {
                    self.budget - self.head_reserve
                };
                let fits = st.kept_bytes + len <= limit;
                // The very next bytes are always taken: the hash waits for nothing else.
                let at_next = offset == st.next;
                let counted = !at_next && fits && self.pool.try_keep();
                if at_next || counted {
                    st.received(range, offset + len as u64);
                    st.kept_bytes += len;
                    st.stats.peak_buffered = st.stats.peak_buffered.max(st.kept_bytes);
                    let chunk = chunk.clone();
                    st.kept.insert(offset, Kept { chunk, counted });
                    drop(st);
                    self.arrived.notify_one();
                    return true;
                }
                if !head || fits {
                    // Behind a gap, or the process's kept share is full: written only,
                    // read back when the hash gets there.
                    st.received(range, offset + len as u64);
                    return true;
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

    /// The download failed or was dropped, or the hash failed: both sides end.
    pub fn stop(&self) {
        let mut st = self.lock();
        st.stopped = true;
        let kept = std::mem::take(&mut st.kept);
        drop(st);
        self.release(kept.into_values());
        self.arrived.notify_one();
        self.room.notify_waiters();
    }

    fn release(&self, kept: impl IntoIterator<Item = Kept>) {
        for k in kept {
            if k.counted {
                self.pool.unkeep();
            }
        }
    }

    /// Hashes the whole file in order, until the last byte is hashed or the download
    /// stops. Waits asynchronously; each step of work goes to the blocking pool only once
    /// its bytes are there (see the module's comment).
    pub async fn run(&self) -> Result<([u8; 20], HashStats), Stopped> {
        let outcome = self.hash().await;
        if outcome.is_err() {
            self.stop();
        }
        outcome
    }

    async fn hash(&self) -> Result<([u8; 20], HashStats), Stopped> {
        let mut sha = Sha1::new();
        let mut scratch: Vec<u8> = Vec::new();
        loop {
            let arrived = self.arrived.notified();
            let step = {
                let mut st = self.lock();
                if st.next >= st.size {
                    return Ok((sha.finalize().into(), st.stats));
                }
                if st.stopped {
                    return Err(Stopped::Download);
                }
                self.next_step(&mut st)
            };
            let Some(step) = step else {
                arrived.await;
                continue;
            };
            match step {
                Step::Hash(chunks) => {
                    self.room.notify_waiters();
                    let hashed = tokio::task::spawn_blocking(move || {
                        for k in &chunks {
                            sha.update(&k.chunk[..]);
                        }
                        (sha, chunks)
                    })
                    .await;
                    let Ok((back, chunks)) = hashed else {
                        return Err(Stopped::Panicked);
                    };
                    sha = back;
                    self.release(chunks);
                }
                Step::ReadBack(at, n) => {
                    let file = self.file.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        let mut done = 0;
                        while done < n {
                            let len = (n - done).min(READ_BACK_CHUNK);
                            scratch.resize(len, 0);
                            if let Err(e) = file.read_exact_at(&mut scratch, at + done as u64) {
                                return (sha, scratch, Err(e.kind()));
                            }
                            sha.update(&scratch);
                            done += len;
                        }
                        (sha, scratch, Ok(()))
                    })
                    .await;
                    let Ok((back, buf, result)) = read else {
                        return Err(Stopped::Panicked);
                    };
                    (sha, scratch) = (back, buf);
                    result.map_err(Stopped::ReadBack)?;
                    let mut st = self.lock();
                    st.next = at + n as u64;
                    st.stats.read_back += n as u64;
                    drop(st);
                    // A chunk waiting for room may be the very next one now.
                    self.room.notify_waiters();
                }
            }
        }
    }

    /// What the hash can do now: the chunks kept from its position on (taken out, and the
    /// position moved past them), or bytes written but not kept to read back.
    fn next_step(&self, st: &mut State) -> Option<Step> {
        let mut chunks = Vec::new();
        let mut bytes = 0;
        while bytes < STEP {
            let next = st.next;
            let Some(k) = st.kept.remove(&next) else {
                break;
            };
            let len = k.chunk.len();
            st.kept_bytes -= len;
            st.next += len as u64;
            st.stats.from_memory += len as u64;
            bytes += len;
            chunks.push(k);
        }
        if !chunks.is_empty() {
            return Some(Step::Hash(chunks));
        }
        // Written but not kept: read back up to the next chunk kept.
        let next = st.next;
        let written_to = st.written_to[st.range_of(next)];
        if written_to > next {
            let kept_at = st.kept.range(next..).next().map_or(u64::MAX, |(o, _)| *o);
            let end = written_to.min(kept_at).min(next + STEP as u64);
            return Some(Step::ReadBack(next, (end - next) as usize));
        }
        None
    }
}

/// Stops the hash when dropped: a download that fails, or whose future is dropped, must
/// not leave the hash waiting.
pub struct StopOnDrop(pub Arc<InOrderSha1>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::super::chunk_pool::CHUNK;
    use super::*;
    use bytes::Bytes;

    fn file_of(data: &[u8]) -> Arc<File> {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(data, 0).unwrap();
        Arc::new(f)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn pool(buffers: usize) -> &'static ChunkPool {
        Box::leak(Box::new(ChunkPool::new(buffers)))
    }

    /// Feeds the ranges' chunks interleaved the way concurrent streams deliver them (one
    /// chunk of each range in turn), each written on the blocking pool, the hash beside.
    async fn feed(hash: &InOrderSha1, ranges: &[(u64, u64)], all: Arc<Vec<u8>>) {
        let mut pos: Vec<u64> = ranges.iter().map(|r| r.0).collect();
        loop {
            let mut any = false;
            for (i, &(start, len)) in ranges.iter().enumerate() {
                if pos[i] < start + len {
                    any = true;
                    let n = CHUNK.min((start + len - pos[i]) as usize);
                    let at = pos[i] as usize;
                    let mut chunk = hash.pool().take().await;
                    chunk.extend(&all[at..at + n]);
                    let chunk = Arc::new(chunk);
                    assert!(hash.offer(pos[i], &chunk).await);
                    // The file holds the bytes already: the write is only a system call.
                    let file = hash.file.clone();
                    let bytes = Bytes::copy_from_slice(&chunk[..]);
                    tokio::task::spawn_blocking(move || file.write_all_at(&bytes, at as u64))
                        .await
                        .unwrap()
                        .unwrap();
                    hash.wrote(pos[i], n as u64);
                    pos[i] += n as u64;
                }
            }
            if !any {
                break;
            }
        }
    }

    fn check(all: &[u8], got: Result<([u8; 20], HashStats), Stopped>) -> HashStats {
        let (digest, stats) = got.unwrap();
        let want: [u8; 20] = Sha1::digest(all).into();
        assert_eq!(digest, want);
        assert_eq!(stats.from_memory + stats.read_back, all.len() as u64);
        stats
    }

    fn hash_one(budget: usize, ranges: &[(u64, u64)], all: Vec<u8>) -> HashStats {
        let all = Arc::new(all);
        let pool = pool(64);
        let hash = InOrderSha1::new(file_of(&all), ranges, budget, pool);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (_, got) =
            rt.block_on(async { tokio::join!(feed(&hash, ranges, all.clone()), hash.run()) });
        let stats = check(&all, got);
        assert!(stats.peak_buffered <= budget + CHUNK, "{stats:?}");
        assert_eq!(pool.counts(), (0, 64), "every buffer given back");
        stats
    }

    #[test]
    fn ranges_that_fit_the_budget_are_never_read_back() {
        let ranges = [(0, 1 << 20), (1 << 20, 1 << 20), (2 << 20, 2 << 20)];
        let stats = hash_one(BUDGET, &ranges, data(4 << 20));
        assert_eq!(stats.read_back, 0, "{stats:?}");
    }

    #[test]
    fn ranges_ahead_of_a_full_budget_are_read_back_and_the_digest_holds() {
        let ranges = [(0, 16 << 20), (16 << 20, 16 << 20), (32 << 20, 16 << 20)];
        let stats = hash_one(8 << 20, &ranges, data(48 << 20));
        assert!(stats.read_back > 0, "{stats:?}");
        assert!(stats.from_memory > 0, "{stats:?}");
    }

    /// The construction of issue 22: sixteen restores at once, on a blocking pool of ONE
    /// thread and a chunk pool smaller than their streams, all end. A hash that held a
    /// pool thread while waiting for its writes (as before) would hang here.
    #[test]
    fn many_hashes_share_one_blocking_thread_and_a_small_pool_without_waiting_on_each_other() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let pool = pool(8);
        let all = Arc::new(data(6 << 20));
        let ranges = [(0, 1 << 20), (1 << 20, 2 << 20), (3 << 20, 3 << 20)];
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let all = all.clone();
                rt.spawn(async move {
                    let hash = InOrderSha1::new(file_of(&all), &ranges, 2 << 20, pool);
                    let (_, got) = tokio::join!(feed(&hash, &ranges, all.clone()), hash.run());
                    got
                })
            })
            .collect();
        for t in tasks {
            check(&all, rt.block_on(t).unwrap());
        }
        assert_eq!(pool.counts(), (0, 8), "every buffer given back");
    }

    #[test]
    fn a_stopped_download_ends_the_hash() {
        let all = data(1 << 20);
        let hash = InOrderSha1::new(file_of(&all), &[(0, 1 << 20)], BUDGET, pool(4));
        drop(StopOnDrop(hash.clone()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(hash.run()).unwrap_err(), Stopped::Download);
    }

    #[test]
    fn an_empty_file_hashes_to_the_empty_sha1() {
        let hash = InOrderSha1::new(file_of(b""), &[], BUDGET, pool(4));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (digest, _) = rt.block_on(hash.run()).unwrap();
        assert_eq!(digest, <[u8; 20]>::from(Sha1::digest(b"")));
    }
}
