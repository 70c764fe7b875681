//! The memory every restore of the process gathers downloaded bytes in: a fixed number of
//! fixed-size buffers, shared by all restores at once, so that what they hold is bounded
//! by a constant, whatever the file sizes, the `concurrency` or the number of restores.
//!
//! A range's stream takes one buffer at a time (never a second while it holds one),
//! fills it from the network, hands it to the in-order hash and writes it, then lets it go.
//! The hash may keep a buffer ahead of its position until it gets there, but only while
//! fewer than half of the buffers are kept so (`try_keep`, which never waits): the other
//! half always goes round among streams, each of which gives its buffer back after one
//! write. Waiting for a buffer is first come, first served, so every stream gets one.

use std::ops::Deref;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::BytesMut;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Bytes of one buffer: room for the largest piece the HTTP client hands over at once
/// (`NET_PIECE`) and then some, so that a piece is copied in whole as it comes and never
/// held (with the HTTP client's buffer behind it) while its stream waits.
pub const CHUNK: usize = 512 << 10;
/// The most bytes the HTTP client (hyper's read buffer) hands over in one piece.
pub const NET_PIECE: usize = 8192 + 4096 * 100;
/// Buffers in the process: 16 MiB in all. Each open connection costs about another
/// 0.5 MiB of its own (hyper's read buffer, up to `NET_PIECE`, measured), 32 MiB at the
/// largest `concurrency`, 64, which with these keeps a restore under 64 MiB. So beyond
/// 16 to 32 connections (as many buffers as the hash does not keep) it is the buffers,
/// not `concurrency`, that bound how many connections read at once.
const BUFFERS: usize = 32;

pub struct ChunkPool {
    slots: Semaphore,
    /// Buffers given back, reused: fresh ones cost a page fault per 4 KiB, and freed ones
    /// would stay in the allocator's arenas of whichever thread freed them. Never more
    /// than the slots, since a buffer is put here before its slot is released.
    free: Mutex<Vec<BytesMut>>,
    /// Buffers the in-order hashes keep ahead of their position.
    kept: AtomicUsize,
    buffers: usize,
}

/// Never freed: after `fork()` the child makes its own (slots held by the parent's
/// restores would never come back in the child), so one pool per process image.
static SHARED: AtomicPtr<(u32, ChunkPool)> = AtomicPtr::new(std::ptr::null_mut());

impl ChunkPool {
    pub fn new(buffers: usize) -> ChunkPool {
        ChunkPool {
            slots: Semaphore::new(buffers),
            free: Mutex::new(Vec::new()),
            kept: AtomicUsize::new(0),
            buffers,
        }
    }

    /// The pool of this process.
    pub fn shared() -> &'static ChunkPool {
        let pid = std::process::id();
        let current = SHARED.load(Ordering::Acquire);
        // SAFETY: every pointer stored in SHARED comes from Box::leak and is never freed.
        if let Some((owner, pool)) = unsafe { current.as_ref() } {
            if *owner == pid {
                return pool;
            }
        }
        let fresh = Box::leak(Box::new((pid, ChunkPool::new(BUFFERS))));
        match SHARED.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => &fresh.1,
            Err(winner) => {
                // SAFETY: `fresh` was leaked above and never published.
                drop(unsafe { Box::from_raw(fresh as *mut (u32, ChunkPool)) });
                // SAFETY: as above, `winner` is leaked and never freed.
                unsafe { &(*winner).1 }
            }
        }
    }

    /// An empty buffer of `CHUNK` bytes' room, once one is free.
    pub async fn take(&'static self) -> Chunk {
        // Never closed, so acquire cannot fail; a closed one would only mean no bound.
        let slot = self.slots.acquire().await.ok();
        let buf = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_else(|| BytesMut::with_capacity(CHUNK));
        Chunk {
            buf,
            pool: self,
            _slot: slot,
        }
    }

    /// Counts one more buffer kept ahead by a hash, if fewer than half are.
    pub fn try_keep(&self) -> bool {
        self.kept
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| {
                (k < self.buffers / 2).then_some(k + 1)
            })
            .is_ok()
    }

    /// One buffer kept ahead is no longer.
    pub fn unkeep(&self) {
        self.kept.fetch_sub(1, Ordering::AcqRel);
    }

    /// Buffers kept ahead now, and slots free now: for the tests.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        (
            self.kept.load(Ordering::Acquire),
            self.slots.available_permits(),
        )
    }
}

/// One buffer of the pool, given back when dropped.
pub struct Chunk {
    buf: BytesMut,
    pool: &'static ChunkPool,
    _slot: Option<SemaphorePermit<'static>>,
}

impl Chunk {
    /// Bytes it can still take.
    pub fn room(&self) -> usize {
        CHUNK.saturating_sub(self.buf.len())
    }

    /// Appends `data`, which must fit in `room`.
    pub fn extend(&mut self, data: &[u8]) {
        debug_assert!(data.len() <= self.room());
        self.buf.extend_from_slice(data);
    }
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if buf.capacity() >= CHUNK {
            if let Ok(mut free) = self.pool.free.lock() {
                free.push(buf);
            }
        }
        // The slot is released after this, with the buffer already back.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_bounded_reused_and_at_most_half_kept() {
        let pool: &'static ChunkPool = Box::leak(Box::new(ChunkPool::new(4)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut held = Vec::new();
            for _ in 0..4 {
                held.push(pool.take().await);
            }
            assert_eq!(pool.counts(), (0, 0));
            // A fifth waits until one is given back.
            let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), pool.take());
            assert!(waiting.await.is_err());
            let first = held[0].as_ptr();
            held.remove(0);
            let again = pool.take().await;
            assert_eq!(again.as_ptr(), first, "the buffer given back is reused");
            assert!(pool.try_keep() && pool.try_keep());
            assert!(!pool.try_keep(), "no more than half kept");
            pool.unkeep();
            assert!(pool.try_keep());
        });
    }
}
