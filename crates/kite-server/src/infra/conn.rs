//! Limits on connections, so idle or slow clients cannot hold every file descriptor: a cap on
//! connections open at once per listener (past it new ones are closed at once, with a
//! rate-limited warning), an idle timeout (no byte moving either way for that long closes the
//! connection, whatever state HTTP is in: before the first request, between requests, on an
//! HTTP/2 connection with no stream), a header-read timeout, and HTTP/2 stream limits. And on
//! requests: a body over `MAX_BODY` is answered 413 the same way on HTTP/1.1 and HTTP/2.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A request's headers must arrive within this long of the connection being ready for them.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one HTTP/2 connection may have open at once.
const MAX_STREAMS: u32 = 100;
/// The biggest header block an HTTP/2 request may send.
const MAX_HEADER_LIST: u32 = 64 << 10;
/// At most one "cap reached" warning per this long, counting the refusals in between.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// The largest request body (axum's default limit, which the extractors also apply).
const MAX_BODY: usize = 2 << 20;
/// A body over `MAX_BODY` that is read anyway (HTTP/2, or of unknown length) is dropped up to this
/// much, so its 413 arrives.
const DRAIN_CAP: usize = 16 << 20;

#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once on each listener.
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { max_connections: 4096, idle_timeout: Duration::from_secs(60) }
    }
}

/// Sets the HTTP timeouts and HTTP/2 limits on a listener's connection builder.
pub fn tune(builder: &mut auto::Builder<TokioExecutor>) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(MAX_STREAMS).max_header_list_size(MAX_HEADER_LIST);
}

fn too_large() -> Response {
    let message = format!("The request body is larger than {} MiB.", MAX_BODY >> 20);
    crate::infra::error::ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", message).into_response()
}

/// Answers 413 to a body over `MAX_BODY` before any handler sees it (each extractor would answer
/// its own way, 400 for JSON and forms): at once over HTTP/1.1 when its length is declared (the
/// client waits on `Expect: 100-continue`, or reads the answer before sending), otherwise once
/// the body is in. A body of unknown length, and any HTTP/2 body, is read to its end first: an
/// answer sent while the client still sends ends in a reset (HTTP/2) or a broken pipe (HTTP/1.1
/// chunked, where curl then reports the `100 Continue` it saw), and the client never sees the 413.
/// Past `DRAIN_CAP` the connection or stream is cut anyway.
pub async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let h2 = request.version() == Version::HTTP_2;
    match declared {
        Some(n) if n <= MAX_BODY as u64 => next.run(request).await,
        Some(n) if !h2 || n > DRAIN_CAP as u64 => too_large(),
        _ => {
            let (parts, body) = request.into_parts();
            match collect(body).await {
                Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
                Err(refused) => refused,
            }
        }
    }
}

/// The body, if it is at most `MAX_BODY`; past that, the rest is read and dropped up to `DRAIN_CAP`.
async fn collect(mut body: Body) -> Result<Vec<u8>, Response> {
    let (mut kept, mut seen) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| crate::infra::error::ApiError::bad_request("InvalidRequestContent", "The request body could not be read.").into_response())?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= MAX_BODY {
            kept.extend_from_slice(&data);
        } else if seen > DRAIN_CAP {
            return Err(too_large());
        }
    }
    if seen > MAX_BODY {
        return Err(too_large());
    }
    Ok(kept)
}

/// The acceptor that enforces the cap and the idle timeout; innermost, so a TLS handshake
/// already holds a place and counts as activity.
#[derive(Clone)]
pub struct Limited {
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
    refusals: Arc<Refusals>,
}

#[derive(Default)]
struct Refusals {
    since_warning: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Limited {
    pub fn new(limits: ConnectionLimits) -> Limited {
        Limited { permits: Arc::new(Semaphore::new(limits.max_connections)), limits, refusals: Arc::default() }
    }

    fn refuse(&self) -> io::Error {
        let count = self.refusals.since_warning.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.refusals.last_warning.lock();
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            self.refusals.since_warning.store(0, Ordering::Relaxed);
            tracing::warn!(max_connections = self.limits.max_connections, refused = count, "connection refused: --max-connections reached");
        }
        io::Error::other("connection cap reached")
    }
}

impl<I, S> Accept<I, S> for Limited
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    type Stream = Guarded<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Guarded<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok((Guarded::new(stream, permit, self.limits.idle_timeout), service)),
            Err(_) => Err(self.refuse()),
        })
    }
}

/// A connection's stream, holding its place under the cap until dropped and failing once no
/// byte has moved for the idle timeout.
pub struct Guarded<I> {
    inner: I,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<I> Guarded<I> {
    fn new(inner: I, permit: OwnedSemaphorePermit, idle: Duration) -> Guarded<I> {
        let now = Instant::now();
        Guarded { inner, _permit: permit, idle, last_activity: now, timer: Box::pin(tokio::time::sleep_until(now + idle)) }
    }

    /// Ready with an error once the connection has been idle too long. The timer is only moved
    /// when it fires, so activity costs no timer update.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last_activity + self.idle;
            if deadline <= Instant::now() {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
            }
            self.timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(|n| *n > 0) {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(result)
            }
            // A peer that stops reading is as idle as one that stops writing.
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Binds a listener now, so a taken port fails `kite serve` at once naming its `flag`; with the
/// address it got.
pub fn bind(addr: std::net::SocketAddr, flag: &str) -> anyhow::Result<(std::net::TcpListener, std::net::SocketAddr)> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("{flag}: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Real time, scaled down: tokio's paused clock (test-util) would also slow every timer in the
    // benches, which share dev-dependencies with the tests.
    #[tokio::test]
    async fn an_idle_stream_fails_after_the_timeout_and_activity_postpones_it() {
        let idle = Duration::from_millis(500);
        let limited = Limited::new(ConnectionLimits { max_connections: 1, idle_timeout: idle });
        let (server, mut client) = tokio::io::duplex(64);
        let (mut guarded, ()) = limited.accept(server, ()).await.unwrap();
        let (second, _) = tokio::io::duplex(64);
        assert!(limited.accept(second, ()).await.is_err(), "the cap of one is taken");

        let mut buf = [0u8; 8];
        tokio::time::sleep(idle * 4 / 5).await;
        client.write_all(b"hi").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 2, "activity at 4/5 of the timeout");
        let started = Instant::now();
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(waited >= idle && waited < idle * 3, "idle counted from the last byte: {waited:?}");

        drop(guarded);
        let (third, _) = tokio::io::duplex(64);
        assert!(limited.accept(third, ()).await.is_ok(), "a closed connection frees its place");
    }
}
