//! API calls whose answer can be lost after B2 acted on them (the connection dropped or
//! timed out once the request was sent): before acting again, find out what B2 did.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{B2Client, API_VERSION};
use super::http::exchange_json_hearing;
use super::late::LateAnswer;
use super::retry::Failed;
use super::retry::Failure;
use crate::error::{Error, Result};

/// What a call came to, and whether some attempt of it went unanswered (so B2 may have
/// acted on a request whose answer never arrived).
pub struct Called<T> {
    pub result: Result<T>,
    pub unanswered: bool,
    /// Attempts that timed out, still waiting for B2's answer (`call_settled_hearing`
    /// only): B2 may still act on them.
    pub late: Vec<LateAnswer>,
}

impl B2Client {
    /// A JSON API call, `POST {apiUrl}/b2api/v4/{call}`, under the retry rules: the one
    /// place a JSON call is built and sent is `settle` below, this without a settling step.
    pub async fn call<Req, Resp>(&self, call: &'static str, body: &Req) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        call_noting(self, call, body).await.result
    }
}

/// A JSON call under the retry rules, noting unanswered attempts.
pub async fn call_noting<Req, Resp>(
    client: &B2Client,
    call: &'static str,
    body: &Req,
) -> Called<Resp>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    call_settled(client, call, body, || async { Ok(None) }).await
}

/// `client.call`, but before any attempt that follows an unanswered one (and once more if
/// the retries run out after one), `settled` asks B2 whether that attempt took effect:
/// `Some` is taken as the call's answer, so the request is not made a second time.
pub async fn call_settled<Req, Resp, S, SFut>(
    client: &B2Client,
    call: &'static str,
    body: &Req,
    settled: S,
) -> Called<Resp>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
    S: Fn() -> SFut,
    SFut: Future<Output = Result<Option<Resp>>>,
{
    settle(client, call, body, settled, false).await
}

/// `call_settled`, keeping the attempts that timed out running (in `Called::late`), so
/// the caller can hear what B2 did with them, however late.
pub async fn call_settled_hearing<Req, Resp, S, SFut>(
    client: &B2Client,
    call: &'static str,
    body: &Req,
    settled: S,
) -> Called<Resp>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
    S: Fn() -> SFut,
    SFut: Future<Output = Result<Option<Resp>>>,
{
    settle(client, call, body, settled, true).await
}

async fn settle<Req, Resp, S, SFut>(
    client: &B2Client,
    call: &'static str,
    body: &Req,
    settled: S,
    hear_late: bool,
) -> Called<Resp>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
    S: Fn() -> SFut,
    SFut: Future<Output = Result<Option<Resp>>>,
{
    let payload = match serde_json::to_vec(body) {
        Ok(p) => p,
        Err(e) => {
            return Called {
                result: Err(Error::Internal(format!("could not encode {call}: {e}"))),
                unanswered: false,
                late: Vec::new(),
            }
        }
    };
    let unanswered = AtomicBool::new(false);
    let late: Mutex<Vec<LateAnswer>> = Mutex::default();
    let (unanswered_ref, payload, settled_ref, late_ref) = (&unanswered, &payload, &settled, &late);
    let result = client
        .with_retries(call, &client.calls.clone(), |auth| async move {
            if unanswered_ref.load(Ordering::SeqCst) {
                match settled_ref().await {
                    Ok(Some(v)) => return Ok(v),
                    Ok(None) => {}
                    Err(e) if e.retryable() => {
                        return Err(Failed {
                            failure: Failure::Transient { retry_after: None },
                            error: e,
                        })
                    }
                    // The key may not ask (no listFiles or readFiles): act again, as a
                    // client that cannot check does.
                    Err(_) => {}
                }
            }
            let req = client
                .decorate(
                    client
                        .http()
                        .post(format!("{}/b2api/{API_VERSION}/{call}", auth.api_url)),
                    &auth.token,
                )
                .header("Content-Type", "application/json")
                .body(payload.clone());
            let (answer, pending) =
                exchange_json_hearing(call, req, client.session.timeout, &client.op).await;
            if answer.as_ref().is_err_and(Failed::unanswered) {
                unanswered_ref.store(true, Ordering::SeqCst);
            }
            if let (true, Some(pending), Ok(mut l)) = (hear_late, pending, late_ref.lock()) {
                l.push(pending);
            }
            answer
        })
        .await;
    let unanswered = unanswered.load(Ordering::SeqCst);
    let result = match result {
        Err(e) if unanswered && !matches!(e, Error::Cancelled) => match settled().await {
            Ok(Some(v)) => Ok(v),
            _ => Err(e),
        },
        other => other,
    };
    let late = late.into_inner().unwrap_or_else(|e| e.into_inner());
    Called {
        result,
        unanswered,
        late,
    }
}
