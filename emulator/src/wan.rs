//! A WAN model for benchmarks: added latency per request and a bandwidth cap per
//! connection, so that loopback behaves a little like the way to a real B2 data centre.
//!
//! The latency is paid once per B2 request, before it is handled (one round trip: the
//! request's way there and the answer's way back). The bandwidth cap applies to each
//! connection and each direction on its own, as a pacer on the accepted socket: every
//! read or write of n bytes pushes the next one back by n / rate.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Off by default (no latency, no cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WanModel {
    /// Added before every B2 request is handled (control requests are not delayed).
    pub latency: Duration,
    /// Bytes per second per connection, in each direction; `None`: unlimited.
    pub bandwidth_bytes_per_sec: Option<u64>,
}

impl WanModel {
    pub fn is_off(&self) -> bool {
        self.latency.is_zero() && self.bandwidth_bytes_per_sec.is_none()
    }

    /// The per-request delay.
    pub async fn delay_request(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

/// How far behind its schedule a pacer may catch up at full speed.
const CATCH_UP: Duration = Duration::from_millis(20);

/// One direction's pacer: when the next byte may move, and how many may move at once.
struct Pacer {
    bytes_per_sec: u64,
    /// Small enough that a cap is smooth (about 10 ms of traffic), large enough that a
    /// 50 MB/s connection does not wake up more than a few hundred times a second.
    chunk: usize,
    next: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Pacer {
    fn new(bytes_per_sec: u64) -> Pacer {
        let bytes_per_sec = bytes_per_sec.max(1);
        Pacer {
            bytes_per_sec,
            chunk: (bytes_per_sec / 100).clamp(1024, 256 * 1024) as usize,
            next: Instant::now(),
            sleep: None,
        }
    }

    /// Ready once the bytes already moved have been paid for.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.next > Instant::now() {
            let next = self.next;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
            sleep.as_mut().reset(next);
            ready!(sleep.as_mut().poll(cx));
        }
        Poll::Ready(())
    }

    fn moved(&mut self, n: usize) {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        // A wake-up that came late (a busy machine) is made up for, up to CATCH_UP; a
        // connection idle for longer starts afresh instead of sending a burst.
        let now = Instant::now();
        let from = if self.next + CATCH_UP < now {
            now
        } else {
            self.next
        };
        self.next = from + cost;
    }
}

/// A socket paced to the model's bandwidth (a plain pass-through when there is no cap).
pub struct Link<S> {
    inner: S,
    read: Option<Pacer>,
    write: Option<Pacer>,
    scratch: Vec<u8>,
}

impl<S> Link<S> {
    pub fn new(inner: S, model: &WanModel) -> Link<S> {
        let pacer = || model.bandwidth_bytes_per_sec.map(Pacer::new);
        Link {
            inner,
            read: pacer(),
            write: pacer(),
            scratch: Vec::new(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Link<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(pacer) = this.read.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        ready!(pacer.poll_ready(cx));
        let before = buf.filled().len();
        if buf.remaining() <= pacer.chunk {
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        } else {
            // Reading at most one chunk without unsafe: through a scratch buffer.
            this.scratch.resize(pacer.chunk, 0);
            let mut limited = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
            buf.put_slice(limited.filled());
        }
        pacer.moved(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Link<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(pacer) = this.write.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        };
        ready!(pacer.poll_ready(cx));
        let limit = data.len().min(pacer.chunk);
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..limit]))?;
        pacer.moved(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.write.is_none() {
            return Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }

    // Paced writes go one chunk at a time, so hyper should flatten its buffers for us.
    fn is_write_vectored(&self) -> bool {
        self.write.is_none() && self.inner.is_write_vectored()
    }
}
