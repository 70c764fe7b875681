//! The HTTP server: connection handling, routing, call counting and scripted faults.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, JsonHandler};
use crate::calls::{self, CallSpec, Handler};
use crate::control;
use crate::download;
use crate::error::B2Error;
use crate::faults::FaultAction;
use crate::http::Body;
use crate::state::Shared;
use crate::unsupported;
use crate::upload;
use crate::variants;
use crate::wan::Link;

/// How long a connection may wait for (the rest of) a request head.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping server waits for requests in progress.
const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
pub struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by a scripted fault")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` turns true, then lets open requests (held ones
/// included) finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone(), tls.clone(), shutdown.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Held requests go on now that no new connection comes: none waits for a release
    // that will never come.
    shared.faults.release_all();
    let _ = tokio::time::timeout(GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    // Small JSON answers must not wait for Nagle + delayed ACK.
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        let stream = Link::new(stream, &shared.wan);
        return serve_http(stream, shared, false, shutdown).await;
    };
    // A TLS connection starts with a handshake record (0x16). Anything else is plain
    // HTTP, which an HTTPS emulator answers for its control API only, so that test
    // harnesses (curl, the C tests) need no TLS to script faults.
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return;
    }
    let stream = Link::new(stream, &shared.wan);
    if first[0] != 0x16 {
        return serve_http(stream, shared, true, shutdown).await;
    }
    shared.tls_handshakes.fetch_add(1, Ordering::Relaxed);
    // A client that refuses the certificate closes the connection: that ends it here.
    let accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
    if let Ok(Ok(stream)) = accepted {
        serve_http(stream, shared, false, shutdown).await;
    }
}

/// Serves HTTP/1.1 on `stream`; `control_only`: plain HTTP to an HTTPS emulator.
async fn serve_http<S>(
    stream: S,
    shared: Arc<Shared>,
    control_only: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| dated(shared.clone(), req, control_only));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // The timer also closes idle keep-alive connections; a long one keeps clients
        // from racing a close after a pause in a test.
        .header_read_timeout(IDLE_CONNECTION_TIMEOUT)
        // Large reads: body chunks of up to 1 MiB for the hasher and the writer.
        .max_buf_size(1 << 20)
        // A client that half-closes after its request still gets the answer.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Where a request goes once its call is known.
enum Endpoint {
    Authorize { version: u8 },
    Json { version: u8, handler: JsonHandler },
    UploadFile { bucket_id: String, url_id: String },
    UploadPart { file_id: String, url_id: String },
    DownloadById,
    DownloadByName { bucket: String, name: String },
    Unimplemented,
}

fn classify(path: &str) -> Option<(&'static CallSpec, Endpoint)> {
    if let Some(rest) = path.strip_prefix("/file/") {
        let (bucket, name) = rest.split_once('/')?;
        return Some((
            calls::find("b2_download_file_by_name")?,
            Endpoint::DownloadByName {
                bucket: bucket.to_owned(),
                name: name.to_owned(),
            },
        ));
    }
    let rest = path.strip_prefix("/b2api/v")?;
    let (version, rest) = rest.split_once('/')?;
    let version: u8 = version.parse().ok().filter(|v| (1..=4).contains(v))?;
    let mut segments = rest.splitn(3, '/');
    let call = calls::find(segments.next()?)?;
    let first = segments.next().unwrap_or("").to_owned();
    let second = segments.next().unwrap_or("").to_owned();
    let endpoint = match call.handler {
        Handler::UploadFile => Endpoint::UploadFile {
            bucket_id: first,
            url_id: second,
        },
        Handler::UploadPart => Endpoint::UploadPart {
            file_id: first,
            url_id: second,
        },
        Handler::DownloadById => Endpoint::DownloadById,
        Handler::DownloadByName => return None,
        Handler::Unimplemented => Endpoint::Unimplemented,
        _ if !first.is_empty() => return None,
        Handler::Authorize => Endpoint::Authorize { version },
        Handler::Json(handler) => Endpoint::Json { version, handler },
    };
    Some((call, endpoint))
}

/// `route`, with the `Date` of a moved clock when a test set one (hyper dates the rest).
async fn dated(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    control_only: bool,
) -> Result<Response<Body>, DropConnection> {
    let offset = shared
        .clock_offset_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut resp = route(shared, req, control_only).await?;
    if offset != 0 {
        let now = std::time::SystemTime::now();
        let moved = if offset > 0 {
            now + Duration::from_millis(offset as u64)
        } else {
            now - Duration::from_millis(offset.unsigned_abs())
        };
        if let Ok(v) = httpdate::fmt_http_date(moved).parse() {
            resp.headers_mut().insert("date", v);
        }
    }
    Ok(resp)
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    control_only: bool,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/__emulator/") {
        return Ok(control::handle(shared, req, rest).await);
    }
    if control_only {
        let message = "this emulator serves B2 over https only (plain http: /__emulator/ only)";
        return Ok(B2Error::new(400, "bad_request", message.to_owned()).into_response());
    }
    let Some((call, endpoint)) = classify(&path) else {
        return Ok(B2Error::not_found(format!("no such endpoint {path}")).into_response());
    };
    shared.faults.count_call(call.name);
    shared.wan.delay_request().await;
    let resp = answer(shared.clone(), call, endpoint, req).await?;
    let offset = shared
        .clock_offset_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(variants::apply(
        &shared.variants,
        call.name,
        call.is_download(),
        offset,
        resp,
    )
    .await)
}

/// A counted B2 request's answer, scripted faults applied.
async fn answer(
    shared: Arc<Shared>,
    call: &'static CallSpec,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let mut corrupt = false;
    let mut lose_answer = false;
    let mut garble = false;
    let mut damage = false;
    let mut req = req;
    if let Some(action) = shared
        .faults
        .take(call.name, call.is_download(), call.is_upload())
    {
        match action {
            FaultAction::Error {
                status,
                code,
                retry_after,
                message,
            } => {
                upload::drain(&shared, req.into_body(), call.is_upload()).await;
                let message = message.unwrap_or_else(|| format!("scripted fault on {}", call.name));
                let mut error = B2Error::new(status, &code, message);
                error.retry_after = retry_after;
                return Ok(error.into_response());
            }
            FaultAction::Redirect { status, location } => {
                upload::drain(&shared, req.into_body(), call.is_upload()).await;
                return Ok(crate::http::redirect(status, &location));
            }
            FaultAction::Drop { after_bytes } => {
                upload::read_up_to(&shared, req.body_mut(), after_bytes, call.is_upload()).await;
                return Err(DropConnection);
            }
            FaultAction::Delay { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await
            }
            FaultAction::Hold => shared.faults.hold().await,
            FaultAction::Corrupt => corrupt = true,
            FaultAction::LoseAnswer => lose_answer = true,
            FaultAction::GarbleAnswer => garble = true,
            FaultAction::DamageUpload => damage = true,
        }
    }
    let resp = match endpoint {
        Endpoint::Authorize { version } => api::authorize(shared, version, req).await,
        Endpoint::Json { version, handler } => api::handle(shared, handler, version, req).await,
        Endpoint::UploadFile { bucket_id, url_id } => {
            upload::upload_file(shared, req, &bucket_id, &url_id, damage).await
        }
        Endpoint::UploadPart { file_id, url_id } => {
            upload::upload_part(shared, req, &file_id, &url_id, damage).await
        }
        Endpoint::DownloadById => download::download_by_id(&shared, req, corrupt)
            .await
            .unwrap_or_else(B2Error::into_response),
        Endpoint::DownloadByName { bucket, name } => {
            download::download_by_name(&shared, req, &bucket, &name, corrupt)
                .unwrap_or_else(B2Error::into_response)
        }
        Endpoint::Unimplemented => {
            upload::drain(&shared, req.into_body(), false).await;
            unsupported::call(call.name).into_response()
        }
    };
    if lose_answer {
        return Err(DropConnection);
    }
    if garble && resp.status().is_success() {
        return Ok(crate::http::garbled());
    }
    Ok(resp)
}
