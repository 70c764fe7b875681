//! One HTTP exchange with B2 and the reading of its answers: success bodies as JSON, error
//! answers and network failures as a `B2Failure` for the table in retry.rs to decide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::late::{LateAnswer, SendError};
use super::retry::B2Failure;
use super::retry::Failed;
use super::wire::{http_date_ms, now_ms};
use crate::operation::Operation;

/// One request whose answer is JSON, bounded by `timeout` in all (API answers are small).
/// Counted in `op`'s transactions unless it never reached B2.
pub async fn exchange_json<T: DeserializeOwned>(
    call: &str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
    op: &Operation,
) -> std::result::Result<T, Failed> {
    exchange_json_hearing(call, req, timeout, op).await.0
}

/// `exchange_json`, and when it timed out, the request itself, still waiting for B2's
/// answer (dropped, it is closed as before).
pub async fn exchange_json_hearing<T: DeserializeOwned>(
    call: &str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
    op: &Operation,
) -> (std::result::Result<T, Failed>, Option<LateAnswer>) {
    let counted = AtomicBool::new(false);
    let count = || {
        if !counted.swap(true, Ordering::Relaxed) {
            op.count_call(call);
        }
    };
    let mut sending = LateAnswer::spawn(req);
    let exchange = async {
        let sent = sending.answer().await;
        if !matches!(&sent, Err(SendError::Http(e)) if e.is_connect()) {
            count();
        }
        if let Some(b2_ms) = sent
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get("Date"))
            .and_then(|d| d.to_str().ok())
            .and_then(http_date_ms)
        {
            op.note_b2_clock(b2_ms as i64 - now_ms() as i64);
        }
        match sent {
            Ok(resp) if resp.status().is_success() => read_success(call, resp).await,
            Ok(resp) => Err(failure_from_response(call, resp).await),
            Err(SendError::Http(e)) => Err(network_failure(call, &e)),
            Err(SendError::Lost(e)) => Err(Failed::from(B2Failure::unanswered(
                call,
                format!("the request {call} was lost: {e}"),
                true,
            ))),
        }
    };
    let result = tokio::time::timeout(timeout, exchange).await;
    match result {
        Ok(result) => (result, None),
        Err(_) => {
            // Perhaps still connecting, perhaps received: B2 may bill it.
            count();
            (Err(timed_out(call, timeout)), Some(sending))
        }
    }
}

pub fn timed_out(call: &str, timeout: Duration) -> Failed {
    let message = format!(
        "{call} made no progress for {} s; B2 or the network stalled",
        timeout.as_secs()
    );
    Failed::from(B2Failure::unanswered(call, message, true))
}

/// A success answer's JSON. One that is cut off, or that cannot be read, is taken as a
/// lost answer: B2 acted, and did not say how, so a call that changes something is
/// settled (`settle.rs`, the upload's check for a stored version) before it is made again.
pub async fn read_success<T: DeserializeOwned>(
    call: &str,
    resp: reqwest::Response,
) -> std::result::Result<T, Failed> {
    let bytes = resp.bytes().await.map_err(|e| {
        let message = format!(
            "the answer of B2 to {call} was cut off: {}",
            error_chain(&e)
        );
        Failed::from(B2Failure::unanswered(call, message, true))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message names the field and position, never a value of the answer.
        let message = format!(
            "B2 answered {call} with a success this library cannot read ({e}); B2 may have acted on it"
        );
        Failed::from(B2Failure::unanswered(call, message, true))
    })
}

/// Reads B2's `{status, code, message}` error answer; the table decides what it means.
pub async fn failure_from_response(call: &str, resp: reqwest::Response) -> Failed {
    Failed::from(read_failure(call, resp).await)
}

/// B2's error answer, not yet decided (the caller adds what it knows of the request).
pub async fn read_failure(call: &str, resp: reqwest::Response) -> B2Failure {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header("Retry-After");
    // A `Retry-After` date is in the server's clock: read it against the answer's `Date`.
    let now_ms = header("Date")
        .as_deref()
        .and_then(http_date_ms)
        .unwrap_or_else(now_ms);
    let body = resp.bytes().await.unwrap_or_default();
    B2Failure::answered_at(call, status, &body, retry_after.as_deref(), now_ms)
}

pub fn network_failure(call: &str, e: &reqwest::Error) -> Failed {
    // A refused certificate never reached B2 and is refused again on every try.
    if let Some(refused) = super::tls::certificate_failure(call, e) {
        return Failed::fatal(refused);
    }
    let message = format!(
        "could not reach B2 for {call}: {}; check the server's network connection and the api_url",
        error_chain(e)
    );
    // A refused connect never reached B2; anything later may have.
    Failed::from(B2Failure::unanswered(call, message, !e.is_connect()))
}

/// An error with its causes, which carry the useful part (refused, reset, timed out).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
