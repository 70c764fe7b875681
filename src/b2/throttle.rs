//! The bandwidth limit of a destination: one token bucket shared by every transfer of it in
//! the process (parts, ranges, the files of a directory, calls from several host threads),
//! so that together they stay under the limit. Bodies pass through it in small slices,
//! each waiting its turn, so a 100 MB part goes out at the limit from its first byte
//! instead of as a burst; the time a body spends waiting here is not a stall (see
//! `Paced`), so B2's request timeouts never count it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// A token bucket in its "virtual schedule" form: every transfer reserves its bytes in
/// turn, and is told when they may go. Reservations are served first come, first served,
/// and at most `burst` bytes may go ahead of the schedule.
pub struct Throttle {
    bytes_per_second: u64,
    burst: u64,
    /// When everything reserved so far will have gone at the limit.
    schedule: Mutex<Option<Instant>>,
}

impl Throttle {
    pub fn new(bytes_per_second: u64) -> Throttle {
        let rate = bytes_per_second.max(1);
        Throttle {
            bytes_per_second: rate,
            // A tenth of a second's worth, at least one slice: bursts stay small.
            burst: (rate / 10).max(slice_for(rate) as u64).min(4 << 20),
            schedule: Mutex::new(None),
        }
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// The size of the slices bodies are cut into: a fiftieth of a second's worth, within
    /// 512 bytes and 256 KiB.
    pub fn slice(&self) -> usize {
        slice_for(self.bytes_per_second)
    }

    /// Reserves `n` bytes at `now`; returns when they may go.
    fn reserve(&self, n: u64, now: Instant) -> Instant {
        let mut schedule = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        let start = schedule.map_or(now, |s| s.max(now));
        let end = start + Duration::from_secs_f64(n as f64 / self.bytes_per_second as f64);
        *schedule = Some(end);
        let ahead = Duration::from_secs_f64(self.burst as f64 / self.bytes_per_second as f64);
        end.checked_sub(ahead).unwrap_or(now).max(now)
    }

    /// Waits until `n` more bytes may go.
    pub async fn take(&self, n: u64) {
        let at = self.reserve(n, Instant::now());
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

fn slice_for(rate: u64) -> usize {
    (rate / 50).clamp(512, 256 << 10) as usize
}

/// What a paced body tells the stall detector: the bytes that got through, and whether it
/// is waiting for its turn right now (then it is not stalled, however long that lasts).
#[derive(Default)]
pub struct Pacing {
    pub passed: AtomicU64,
    pub waiting: AtomicBool,
}

impl Pacing {
    /// Whether the body moved since `last` (the `passed` seen then) or is waiting its
    /// turn; returns the `passed` to compare with next time.
    pub fn moved_since(&self, last: u64) -> (bool, u64) {
        let now = self.passed.load(Ordering::Relaxed);
        (now != last || self.waiting.load(Ordering::Relaxed), now)
    }
}

/// `body` cut into slices that each wait their turn at `throttle`.
pub fn paced<S, E>(
    body: S,
    throttle: Arc<Throttle>,
    pacing: Arc<Pacing>,
) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    let slice = throttle.slice();
    futures_util::stream::unfold(
        (body, Bytes::new(), throttle, pacing),
        move |(mut body, mut pending, throttle, pacing)| async move {
            if pending.is_empty() {
                match body.next().await? {
                    Ok(chunk) => pending = chunk,
                    Err(e) => return Some((Err(e), (body, pending, throttle, pacing))),
                }
            }
            let piece = pending.split_to(pending.len().min(slice));
            pacing.waiting.store(true, Ordering::Relaxed);
            throttle.take(piece.len() as u64).await;
            pacing.waiting.store(false, Ordering::Relaxed);
            pacing
                .passed
                .fetch_add(piece.len() as u64, Ordering::Relaxed);
            Some((Ok(piece), (body, pending, throttle, pacing)))
        },
    )
}

/// The throttles of this process, one per destination credentials and limit (as sessions
/// are per credentials): every transfer that runs at the same time under the same
/// credentials and limit shares one. Kept only while some transfer holds it.
pub struct ThrottleRegistry<K> {
    throttles: Mutex<HashMap<(K, u64), Weak<Throttle>>>,
}

impl<K> Default for ThrottleRegistry<K> {
    fn default() -> Self {
        ThrottleRegistry {
            throttles: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> ThrottleRegistry<K> {
    /// The throttle for `key` (whatever sessions are keyed by) at `bytes_per_second`; None
    /// for no limit.
    pub fn get(&self, key: K, bytes_per_second: Option<u64>) -> Option<Arc<Throttle>> {
        let rate = bytes_per_second.filter(|r| *r > 0)?;
        let mut map = self.throttles.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, t| t.strong_count() > 0);
        let entry = map.entry((key, rate)).or_default();
        if let Some(t) = entry.upgrade() {
            return Some(t);
        }
        let t = Arc::new(Throttle::new(rate));
        *entry = Arc::downgrade(&t);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_follow_the_limit_after_a_small_burst() {
        let t = Throttle::new(100_000);
        let t0 = Instant::now();
        // 10,000 bytes of burst go at once; after that each 10,000 bytes takes 0.1 s.
        assert_eq!(t.reserve(10_000, t0), t0);
        let mut last = t0;
        for _ in 0..10 {
            last = t.reserve(10_000, t0);
        }
        let waited = last - t0;
        assert!(
            (Duration::from_millis(990)..=Duration::from_millis(1010)).contains(&waited),
            "{waited:?}"
        );
        // Idle time is not saved up beyond the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(t.reserve(10_000, later), later);
        let next = t.reserve(50_000, later);
        assert!(
            next - later >= Duration::from_millis(499),
            "{:?}",
            next - later
        );
    }

    #[test]
    fn slices_and_bursts_stay_small() {
        assert_eq!(Throttle::new(1).slice(), 512);
        assert_eq!(Throttle::new(100_000).slice(), 2000);
        assert_eq!(Throttle::new(10_000_000_000).slice(), 256 << 10);
        let t = Throttle::new(100_000_000);
        assert!(t.burst <= 10_000_000, "{}", t.burst);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_takers_share_one_limit() {
        let t = Arc::new(Throttle::new(200_000));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    for _ in 0..25 {
                        t.take(1000).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // 100,000 bytes at 200,000 B/s, less the 20,000-byte burst: at least 0.4 s.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_paced_body_keeps_its_bytes_and_says_when_it_waits() {
        let t = Arc::new(Throttle::new(100_000));
        let pacing = Arc::new(Pacing::default());
        let data: Vec<u8> = (0..30_000u32).map(|i| i as u8).collect();
        let chunks = vec![
            Ok::<_, std::io::Error>(Bytes::copy_from_slice(&data[..25_000])),
            Ok(Bytes::copy_from_slice(&data[25_000..])),
        ];
        let body = paced(
            futures_util::stream::iter(chunks),
            t.clone(),
            pacing.clone(),
        );
        let watcher = pacing.clone();
        let saw_waiting = tokio::spawn(async move {
            for _ in 0..200 {
                if watcher.waiting.load(Ordering::Relaxed) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            false
        });
        let start = Instant::now();
        let pieces: Vec<Bytes> = body.map(|r| r.unwrap()).collect().await;
        assert!(pieces.iter().all(|p| p.len() <= t.slice()), "small slices");
        assert_eq!(pieces.concat(), data);
        assert_eq!(pacing.passed.load(Ordering::Relaxed), 30_000);
        // 30,000 bytes at 100,000 B/s less a 10,000-byte burst.
        assert!(start.elapsed() >= Duration::from_millis(195));
        assert!(saw_waiting.await.unwrap());
        assert!(!pacing.waiting.load(Ordering::Relaxed));
        let (moved, seen) = pacing.moved_since(0);
        assert!(moved && seen == 30_000);
        assert!(!pacing.moved_since(seen).0, "no bytes, no wait: a stall");
    }

    #[test]
    fn the_registry_shares_one_throttle_per_credentials_and_limit() {
        let r = ThrottleRegistry::<&str>::default();
        assert!(r.get("k", None).is_none());
        assert!(r.get("k", Some(0)).is_none());
        let a = r.get("k", Some(1000)).unwrap();
        let b = r.get("k", Some(1000)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &r.get("k", Some(2000)).unwrap()));
        assert!(!Arc::ptr_eq(&a, &r.get("other", Some(1000)).unwrap()));
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none(), "not kept once unused");
    }
}
