//! The HTTP server: connection handling, routing, call counting and scripted faults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, FileIdReq};
use crate::auth::Auth;
use crate::control;
use crate::download;
use crate::error::{B2Error, B2Result};
use crate::faults::{Call, FaultAction, Faults};
use crate::http::{parse_query, percent_decode_strict, Body};
use crate::store::{Action, Store};
use crate::upload;
use crate::wan::{Link, WanModel};

/// State shared by every request.
pub struct Shared {
    pub store: Store,
    pub auth: Auth,
    pub faults: Faults,
    /// `http://127.0.0.1:PORT`: the apiUrl and downloadUrl handed to clients.
    pub base_url: String,
    pub min_part_size: u64,
    pub recommended_part_size: u64,
    pub wan: WanModel,
}

/// How long a connection may wait for (the rest of) a request head.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

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

/// Accepts connections until `shutdown` turns true, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Small JSON answers must not wait for Nagle + delayed ACK.
    let _ = stream.set_nodelay(true);
    let stream = Link::new(stream, &shared.wan);
    let service = service_fn(move |req| route(shared.clone(), req));
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
    Api { version: u8 },
    UploadFile { bucket_id: String, url_id: String },
    UploadPart { file_id: String, url_id: String },
    DownloadById,
    DownloadByName { bucket: String, name: String },
}

fn classify(path: &str) -> Option<(Call, Endpoint)> {
    if let Some(rest) = path.strip_prefix("/file/") {
        let (bucket, name) = rest.split_once('/')?;
        return Some((
            Call::DownloadFileByName,
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
    let call = Call::from_name(segments.next()?)?;
    let first = segments.next().unwrap_or("").to_owned();
    let second = segments.next().unwrap_or("").to_owned();
    let endpoint = match call {
        Call::UploadFile => Endpoint::UploadFile {
            bucket_id: first,
            url_id: second,
        },
        Call::UploadPart => Endpoint::UploadPart {
            file_id: first,
            url_id: second,
        },
        Call::DownloadFileById => Endpoint::DownloadById,
        Call::DownloadFileByName => return None,
        _ if !first.is_empty() => return None,
        _ => Endpoint::Api { version },
    };
    Some((call, endpoint))
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/__emulator/") {
        return Ok(control::handle(shared, req, rest).await);
    }
    let Some((call, endpoint)) = classify(&path) else {
        return Ok(B2Error::not_found(format!("no such endpoint {path}")).into_response());
    };
    shared.faults.count_call(call);
    shared.wan.delay_request().await;
    let mut corrupt = false;
    let mut lose_answer = false;
    let mut req = req;
    if let Some(action) = shared.faults.take(call) {
        match action {
            FaultAction::Error {
                status,
                code,
                retry_after,
                message,
            } => {
                upload::drain(&shared, req.into_body(), call.is_upload()).await;
                let message =
                    message.unwrap_or_else(|| format!("scripted fault on {}", call.name()));
                let mut error = B2Error::new(status, &code, message);
                error.retry_after = retry_after;
                return Ok(error.into_response());
            }
            FaultAction::Drop { after_bytes } => {
                upload::read_up_to(&shared, req.body_mut(), after_bytes, call.is_upload()).await;
                return Err(DropConnection);
            }
            FaultAction::Delay { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await
            }
            FaultAction::Corrupt => corrupt = true,
            FaultAction::LoseAnswer => lose_answer = true,
        }
    }
    let resp = match endpoint {
        Endpoint::Api { version } => api::handle(shared, call, version, req).await,
        Endpoint::UploadFile { bucket_id, url_id } => {
            upload::upload_file(shared, req, &bucket_id, &url_id).await
        }
        Endpoint::UploadPart { file_id, url_id } => {
            upload::upload_part(shared, req, &file_id, &url_id).await
        }
        Endpoint::DownloadById => download_by_id(&shared, req, corrupt)
            .await
            .unwrap_or_else(B2Error::into_response),
        Endpoint::DownloadByName { bucket, name } => {
            download_by_name(&shared, req, &bucket, &name, corrupt)
                .unwrap_or_else(B2Error::into_response)
        }
    };
    if lose_answer {
        return Err(DropConnection);
    }
    Ok(resp)
}

fn require_get_or_head(method: &Method) -> B2Result<()> {
    if *method == Method::GET || *method == Method::HEAD {
        Ok(())
    } else {
        Err(B2Error::new(
            405,
            "method_not_allowed",
            format!("{method} is not allowed for downloads"),
        ))
    }
}

/// `GET|HEAD /file/{bucketName}/{fileName}` (both percent-encoded).
fn download_by_name(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    raw_bucket: &str,
    raw_name: &str,
    corrupt: bool,
) -> B2Result<Response<Body>> {
    require_get_or_head(req.method())?;
    let bucket_name = percent_decode_strict(raw_bucket, "bucket name")?;
    let name = percent_decode_strict(raw_name, "file name")?;
    let query = parse_query(req.uri().query())?;
    let query_token = query
        .iter()
        .find(|(k, _)| k == "Authorization")
        .map(|(_, v)| v.as_str());
    let bucket = shared
        .store
        .bucket_by_name(&bucket_name)
        .ok_or_else(|| B2Error::not_found(format!("bucket {bucket_name} does not exist")))?;
    download::authorize_download(shared, req.headers(), query_token, &bucket, &name)?;
    if let Some(e) = download::cap_exceeded(req.headers()) {
        return Err(e);
    }
    let version = shared
        .store
        .newest_visible(&bucket.id, &name)
        .ok_or_else(|| {
            B2Error::not_found(format!("file {name} not present in bucket {bucket_name}"))
        })?;
    download::respond(shared, req.method(), req.headers(), &version, corrupt)
}

/// `GET|HEAD /b2api/vN/b2_download_file_by_id?fileId=...` (POST with JSON works too).
async fn download_by_id(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    corrupt: bool,
) -> B2Result<Response<Body>> {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let query_token = parse_query(req.uri().query())?
        .into_iter()
        .find(|(k, _)| k == "Authorization")
        .map(|(_, v)| v);
    let (_, params) = api::read_params(req).await?;
    let params = match params {
        Value::Object(mut map) => {
            map.remove("Authorization");
            Value::Object(map)
        }
        other => other,
    };
    let FileIdReq { file_id } = serde_json::from_value(params)
        .map_err(|e| B2Error::bad_request(format!("bad request parameters: {e}")))?;
    let version = shared
        .store
        .version_by_id(&file_id)
        .filter(|v| v.action == Action::Upload)
        .ok_or_else(|| B2Error::not_found(format!("no file with fileId {file_id}")))?;
    let bucket = shared
        .store
        .bucket(&version.bucket_id)
        .ok_or_else(|| B2Error::not_found(format!("no file with fileId {file_id}")))?;
    download::authorize_download(
        shared,
        &headers,
        query_token.as_deref(),
        &bucket,
        &version.name,
    )?;
    if let Some(e) = download::cap_exceeded(&headers) {
        return Err(e);
    }
    let method = if method == Method::POST {
        Method::GET
    } else {
        method
    };
    download::respond(shared, &method, &headers, &version, corrupt)
}
