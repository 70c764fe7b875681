//! One HTTP exchange with B2 and the reading of its answers: success bodies as JSON, error
//! answers and network failures as a `B2Failure` for the table in retry.rs to decide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::client::Failed;
use super::retry::B2Failure;
use crate::operation::Operation;

/// One request whose answer is JSON, bounded by `timeout` in all (API answers are small).
/// Counted in `op`'s transactions unless it never reached B2.
pub async fn exchange_json<T: DeserializeOwned>(
    call: &str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
    op: &Operation,
) -> std::result::Result<T, Failed> {
    let counted = AtomicBool::new(false);
    let count = || {
        if !counted.swap(true, Ordering::Relaxed) {
            op.count_call(call);
        }
    };
    let exchange = async {
        let sent = req.send().await;
        if sent.as_ref().map_or_else(|e| !e.is_connect(), |_| true) {
            count();
        }
        if let Some(b2_ms) = sent
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get("Date"))
            .and_then(|d| d.to_str().ok())
            .and_then(http_date_ms)
        {
            op.note_b2_clock(b2_ms as i64 - super::upload::now_ms() as i64);
        }
        match sent {
            Ok(resp) if resp.status().is_success() => read_success(call, resp).await,
            Ok(resp) => Err(failure_from_response(call, resp).await),
            Err(e) => Err(network_failure(call, &e)),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => {
            // Perhaps still connecting, perhaps received: B2 may bill it.
            count();
            Err(timed_out(call, timeout))
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
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().await.unwrap_or_default();
    B2Failure::answered(call, status, &body, retry_after.as_deref())
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

/// An HTTP `Date` (`Wed, 02 Dec 2026 07:17:00 GMT`, the only form servers send now) in
/// ms since the epoch.
pub fn http_date_ms(date: &str) -> Option<u64> {
    let mut parts = date.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next() != Some("GMT") || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_read_as_epoch_ms() {
        assert_eq!(
            super::http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            super::http_date_ms("Tue, 29 Feb 2000 01:01:00 GMT"),
            Some(951_782_400_000 + 3_660_000)
        );
        assert_eq!(
            super::http_date_ms("Fri, 01 Jan 2027 00:00:00 GMT"),
            Some(1_798_761_600_000)
        );
        assert_eq!(super::http_date_ms("yesterday"), None);
    }
}
