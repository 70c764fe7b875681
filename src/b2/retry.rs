//! Where a B2 failure is decided. Every answer of B2 that is not a success (and every
//! request that got no answer) becomes one `B2Failure`; one table, `RULES`, says both how it
//! is retried and what the host is told. Nothing else in the library classifies B2 answers.

use std::time::Duration;

use super::backoff::retry_after;
use crate::error::Error;

/// What kind of request failed: the table has rules for some kinds only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// `b2_authorize_account`: a refusal here is the key itself, never a stale token.
    Authorize,
    /// `b2_upload_file` and `b2_upload_part`, sent to an upload URL with its own token.
    /// Every upload body of this library carries the SHA1 of the bytes read from the file.
    Upload,
    /// `b2_download_file_by_id` and `b2_download_file_by_name`.
    Download,
    /// Every other call.
    Api,
}

impl CallKind {
    pub fn of(call: &str) -> CallKind {
        match call {
            "b2_authorize_account" => CallKind::Authorize,
            "b2_upload_file" | "b2_upload_part" => CallKind::Upload,
            "b2_download_file_by_id" | "b2_download_file_by_name" => CallKind::Download,
            _ => CallKind::Api,
        }
    }
}

/// One failed request, as B2 (or the network) gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct B2Failure {
    pub call: String,
    /// None: no answer (connection refused or reset, timeout, answer cut off).
    pub http_status: Option<u16>,
    /// B2's `code`, empty when there was no answer or no JSON body.
    pub code: String,
    /// B2's `message` (at most 500 characters), or what went wrong on the way. B2's
    /// messages carry no secrets; the network's are built here without any.
    pub message: String,
    pub retry_after: Option<Duration>,
    /// No answer, but the whole request had gone out: B2 may have acted on it.
    pub sent_in_full: bool,
    /// The request carried an SSE-C customer key (a download of an SSE-C file), so a
    /// refusal may be of that key.
    pub customer_key_sent: bool,
}

impl B2Failure {
    /// A request that got no answer; `message` says what happened on the way.
    pub fn unanswered(call: &str, message: String, sent_in_full: bool) -> B2Failure {
        B2Failure {
            call: call.to_string(),
            http_status: None,
            code: String::new(),
            message,
            retry_after: None,
            sent_in_full,
            customer_key_sent: false,
        }
    }

    /// An error answer: its status, its `{status, code, message}` body (as bytes, perhaps
    /// not JSON) and its `Retry-After` header, a date in it read against this machine's
    /// clock.
    pub fn answered(
        call: &str,
        status: u16,
        body: &[u8],
        retry_after_header: Option<&str>,
    ) -> B2Failure {
        let now_ms = super::wire::now_ms();
        B2Failure::answered_at(call, status, body, retry_after_header, now_ms)
    }

    /// `answered`, with `now_ms` the answer's own time (its `Date`, when it has one: a
    /// `Retry-After` date is in the server's clock).
    pub fn answered_at(
        call: &str,
        status: u16,
        body: &[u8],
        retry_after_header: Option<&str>,
        now_ms: u64,
    ) -> B2Failure {
        let body: super::api::ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        B2Failure {
            call: call.to_string(),
            http_status: Some(status),
            code: body.code,
            message: body.message.chars().take(500).collect(),
            retry_after: retry_after_header.and_then(|v| retry_after(v, now_ms)),
            sent_in_full: true,
            customer_key_sent: false,
        }
    }

    /// Says whether the request carried an SSE-C customer key.
    pub fn with_customer_key(mut self, sent: bool) -> B2Failure {
        self.customer_key_sent = sent;
        self
    }

    /// The rule of the table that applies, and what it comes to.
    pub fn decide(&self) -> (Failure, Error) {
        let kind = CallKind::of(&self.call);
        let rule = RULES
            .iter()
            .find(|r| r.applies(kind, self))
            .unwrap_or(&FALLBACK);
        let failure = match rule.retry {
            Retry::SameUrl => Failure::Transient {
                retry_after: self.retry_after,
            },
            Retry::NewUploadUrl => Failure::NewUploadUrl {
                retry_after: self.retry_after,
            },
            Retry::FreshUploadUrl => Failure::FreshUploadUrl,
            Retry::Reauthorize => Failure::Reauthorize,
            Retry::BucketGone => Failure::BucketGone,
            Retry::Never => Failure::Fatal,
        };
        (failure, rule.tell(self))
    }
}

/// How a failed request is treated by `B2Client::with_retries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Back off, then send it again to the same URL.
    Transient { retry_after: Option<Duration> },
    /// Back off, then send it again to a new upload URL: B2 says a failed upload URL may
    /// be busy or broken (the upload code never reuses the URL of a failed attempt).
    NewUploadUrl { retry_after: Option<Duration> },
    /// The upload URL's own token expired (or was refused): a new upload URL at once, with
    /// no back-off and not counted against the retries (a few times in a row at most; then
    /// as `NewUploadUrl`). Only the account token's expiry re-authorizes.
    FreshUploadUrl,
    /// The account token expired or was refused: authorize once more, then try again.
    Reauthorize,
    /// B2 does not know the bucket id this process looked up (the bucket was deleted, or
    /// deleted and made again under its name): the session forgets its bucket lookups, so
    /// that the host's next try looks the bucket up anew; this request is not sent again.
    BucketGone,
    /// No point trying again.
    Fatal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    SameUrl,
    NewUploadUrl,
    FreshUploadUrl,
    Reauthorize,
    BucketGone,
    Never,
}

/// The error the host gets once the retries are over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Told {
    Auth,
    Locked,
    Permission,
    NotFound,
    Limit,
    Network,
    Integrity,
    EncryptionKey,
    Remote { retryable: bool },
}

#[derive(Clone, Copy)]
enum Calls {
    Any,
    Only(CallKind),
    /// These calls by name.
    Named(&'static [&'static str]),
}

#[derive(Clone, Copy)]
enum Status {
    /// No answer at all.
    None,
    Is(u16),
    Range(u16, u16),
}

#[derive(Clone, Copy)]
enum Code {
    Any,
    Is(&'static str),
    /// `storage_cap_exceeded`, `download_cap_exceeded`, `transaction_cap_exceeded`, ...
    EndsWith(&'static str),
    /// 400 `bad_request` whose message says the body did not match its SHA1 (see
    /// `sha1_mismatch`).
    Sha1Mismatch,
    /// This code, of a request that carried an SSE-C customer key.
    WithCustomerKey(&'static str),
}

/// What the host reads: B2's answer and a hint of what to do, or only the hint.
#[derive(Clone, Copy)]
enum Says {
    Detail(&'static str),
    Only(&'static str),
}

struct Rule {
    calls: Calls,
    status: Status,
    code: Code,
    retry: Retry,
    told: Told,
    says: Says,
}

const CHECK_KEY: &str = "check the Account ID (keyID) and Application Key of this destination";

/// First match wins. B2's rules (b2-notes.md, "Errors and retries"): no answer, 408, 429
/// and 5xx are retried after a back-off (uploads on a new URL); 401 `expired_auth_token` /
/// `bad_auth_token` re-authorize (an upload URL's own token: a new URL at once);
/// everything else is final. What a rule says is what happened, true of every attempt:
/// `gave_up` adds what the host reads once the retries are over.
const RULES: &[Rule] = &[
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::None,
        code: Code::Any,
        retry: Retry::NewUploadUrl,
        told: Told::Network,
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Any,
        status: Status::None,
        code: Code::Any,
        retry: Retry::SameUrl,
        told: Told::Network,
        says: Says::Detail(""),
    },
    // B2 never redirects an API call, an upload or a download: a 3xx comes from something
    // in between (a proxy, a hijacked address). The client follows no redirect, since one
    // would carry the request's headers (the SSE-C key among them) to another host.
    Rule {
        calls: Calls::Any,
        status: Status::Range(300, 399),
        code: Code::Any,
        retry: Retry::Never,
        told: Told::Remote { retryable: false },
        says: Says::Only("the answer to {call} was a redirect ({status}), which B2 never sends: something between this server and B2 (a proxy, a wrong api_url) answered instead; it was not followed, so no key or token went elsewhere: check api_url and this server's network path to B2"),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(403),
        code: Code::EndsWith("cap_exceeded"),
        retry: Retry::Never,
        told: Told::Limit,
        says: Says::Detail("the B2 account reached a storage, download or transaction cap: raise it under Caps & Alerts in the Backblaze web console, or free space"),
    },
    // A refusal at authorization is the key itself, never a stale token.
    Rule {
        calls: Calls::Only(CallKind::Authorize),
        status: Status::Range(401, 403),
        code: Code::Any,
        retry: Retry::Never,
        told: Told::Auth,
        says: Says::Only("B2 rejected the Account ID (keyID) and Application Key: check both in the destination settings, and that the key was not deleted"),
    },
    // An upload URL's token is its own: a new URL at once, not a new account token.
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::Is(401),
        code: Code::Is("expired_auth_token"),
        retry: Retry::FreshUploadUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail("the upload URL's token expired"),
    },
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::Is(401),
        code: Code::Is("bad_auth_token"),
        retry: Retry::FreshUploadUrl,
        told: Told::Auth,
        says: Says::Detail(CHECK_KEY),
    },
    // Seen by the host only after fresh tokens were refused too (`gave_up` says so).
    Rule {
        calls: Calls::Any,
        status: Status::Is(401),
        code: Code::Is("expired_auth_token"),
        retry: Retry::Reauthorize,
        told: Told::Remote { retryable: true },
        says: Says::Detail("the account's token expired"),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(401),
        code: Code::Is("bad_auth_token"),
        retry: Retry::Reauthorize,
        told: Told::Auth,
        says: Says::Detail(CHECK_KEY),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(401),
        code: Code::Is("bad_request"),
        retry: Retry::Never,
        told: Told::Auth,
        says: Says::Detail(CHECK_KEY),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(401),
        code: Code::Any,
        retry: Retry::Never,
        told: Told::Permission,
        says: Says::Detail("the application key lacks the capability for {call} or is restricted to another bucket or name prefix: create a key with listFiles, readFiles, writeFiles and deleteFiles on this bucket"),
    },
    // What B2 answers a download of an SSE-C file with another customer key (b2sdk reads
    // this answer of a download as its SSECKeyError). Without a key sent (a file that is
    // not SSE-C) it is a plain refusal, below; a download of an SSE-C file with no key
    // configured is refused before it is sent.
    Rule {
        calls: Calls::Only(CallKind::Download),
        status: Status::Is(403),
        code: Code::WithCustomerKey("access_denied"),
        retry: Retry::Never,
        told: Told::EncryptionKey,
        says: Says::Detail("the file is encrypted with SSE-C and this destination has no customer key, or not the one the file was uploaded with: set \"encryption\": {\"mode\": \"SSE-C\", \"customer_key\": ...} to the key the backup was made with (without it nobody can read the file)"),
    },
    // Object Lock: a version under retention or legal hold, or a retention that may not
    // be shortened (b2sdk maps 403 `access_denied` to AccessDenied for exactly these).
    Rule {
        calls: Calls::Named(&["b2_delete_file_version", "b2_update_file_retention"]),
        status: Status::Is(403),
        code: Code::Is("access_denied"),
        retry: Retry::Never,
        told: Told::Locked,
        says: Says::Detail("B2 Object Lock holds this file version (a retention not yet over, or a legal hold)"),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(403),
        code: Code::Any,
        retry: Retry::Never,
        told: Told::Permission,
        says: Says::Detail("the account or key may not do this"),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(404),
        code: Code::Any,
        retry: Retry::Never,
        told: Told::NotFound,
        says: Says::Detail(""),
    },
    // b2sdk reads 400 `bad_bucket_id` as BucketIdNotFound.
    Rule {
        calls: Calls::Any,
        status: Status::Is(400),
        code: Code::Is("bad_bucket_id"),
        retry: Retry::BucketGone,
        told: Told::Remote { retryable: true },
        says: Says::Detail("the bucket was deleted or made again since this process looked it up; try again: the next try looks the bucket up anew (if the bucket is gone, create it or change the destination's bucket)"),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(400),
        code: Code::Is("file_not_present"),
        retry: Retry::Never,
        told: Told::NotFound,
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(400),
        code: Code::Is("no_such_file"),
        retry: Retry::Never,
        told: Told::NotFound,
        says: Says::Detail(""),
    },
    // An upload's 400 that says its SHA1 did not match: the body was hashed as it was read,
    // so unless the file changed (the upload code checks, and fails plainly if it did) the
    // bytes were damaged on the way, and a new URL fixes that.
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::Is(400),
        code: Code::Sha1Mismatch,
        retry: Retry::NewUploadUrl,
        told: Told::Integrity,
        says: Says::Detail("the data B2 received did not match its SHA1: the upload was refused and nothing was stored, try again"),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(400),
        code: Code::Sha1Mismatch,
        retry: Retry::Never,
        told: Told::Integrity,
        says: Says::Detail("the data B2 received did not match its SHA1: the upload was refused and nothing was stored, try again"),
    },
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::Is(408),
        code: Code::Any,
        retry: Retry::NewUploadUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::Is(429),
        code: Code::Any,
        retry: Retry::NewUploadUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Only(CallKind::Upload),
        status: Status::Range(500, 599),
        code: Code::Any,
        retry: Retry::NewUploadUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(408),
        code: Code::Any,
        retry: Retry::SameUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Is(429),
        code: Code::Any,
        retry: Retry::SameUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail(""),
    },
    Rule {
        calls: Calls::Any,
        status: Status::Range(500, 599),
        code: Code::Any,
        retry: Retry::SameUrl,
        told: Told::Remote { retryable: true },
        says: Says::Detail(""),
    },
];

const FALLBACK: Rule = Rule {
    calls: Calls::Any,
    status: Status::Range(0, u16::MAX),
    code: Code::Any,
    retry: Retry::Never,
    told: Told::Remote { retryable: false },
    says: Says::Detail("B2 refused the request"),
};

impl Rule {
    fn applies(&self, kind: CallKind, f: &B2Failure) -> bool {
        let calls = match self.calls {
            Calls::Any => true,
            Calls::Only(k) => k == kind,
            Calls::Named(names) => names.contains(&f.call.as_str()),
        };
        let status = match (self.status, f.http_status) {
            (Status::None, None) => true,
            (Status::Is(s), Some(got)) => s == got,
            (Status::Range(lo, hi), Some(got)) => (lo..=hi).contains(&got),
            _ => false,
        };
        let code = match self.code {
            Code::Any => true,
            Code::Is(c) => f.code == c,
            Code::EndsWith(c) => f.code.ends_with(c),
            Code::Sha1Mismatch => sha1_mismatch(f),
            Code::WithCustomerKey(c) => f.customer_key_sent && f.code == c,
        };
        calls && status && code
    }

    fn tell(&self, f: &B2Failure) -> Error {
        let message = match (self.says, f.http_status) {
            (Says::Only(text), status) => text.replace("{call}", &f.call).replace(
                "{status}",
                &status.map(|s| s.to_string()).unwrap_or_default(),
            ),
            (Says::Detail(_), None) => f.message.clone(),
            (Says::Detail(hint), Some(status)) => {
                let detail = format!(
                    "B2 answered {} with {status} {}: {}",
                    f.call, f.code, f.message
                );
                if hint.is_empty() {
                    detail
                } else {
                    format!("{detail}; {}", hint.replace("{call}", &f.call))
                }
            }
        };
        match self.told {
            Told::Auth => Error::Auth(message),
            Told::Locked => Error::Locked(message),
            Told::Permission => Error::Permission(message),
            Told::NotFound => Error::NotFound(message),
            Told::Limit => Error::Limit(message),
            Told::Network => Error::Network(message),
            Told::Integrity => Error::Integrity(message),
            Told::EncryptionKey => Error::EncryptionKey(message),
            Told::Remote { retryable } => Error::Remote { message, retryable },
        }
    }
}

/// B2 has no code of its own for "the body did not match its SHA1": it answers 400
/// `bad_request` with "Sha1 did not match data received" (rclone#533, backblaze-b2#2) or,
/// lately, "Checksum did not match data received" (B2_Command_Line_Tool#539), the same
/// code as for a malformed request such as "Not a valid hex SHA1" (#523), which must not
/// be sent again. This is the one place that reads B2's words, because B2 gives nothing
/// else to tell the two apart; the older test for "sha1" anywhere in the message took
/// that malformed header for damage on the way.
fn sha1_mismatch(f: &B2Failure) -> bool {
    f.code == "bad_request"
        && f.message
            .to_ascii_lowercase()
            .contains("did not match data received")
}

/// What the host reads once `with_retries` gives up on `failure` after `tries` counted
/// tries: the last attempt's error, and that it kept happening. A retry's log line has
/// the error alone.
pub fn gave_up(failure: Failure, error: Error, tries: u32) -> Error {
    const ACCEPTED: &str = "(the Account ID and Application Key were accepted): try again later";
    let note = match (failure, &error) {
        (Failure::Fatal | Failure::BucketGone, _) | (_, Error::Auth(_)) => return error,
        (Failure::FreshUploadUrl, _) => format!(
            "the upload URL's token kept expiring although a new upload URL was obtained each time {ACCEPTED}"
        ),
        (Failure::Reauthorize, _) => {
            format!("the token kept expiring although a new one was obtained each time {ACCEPTED}")
        }
        (_, Error::Remote { .. }) => {
            format!("B2 kept failing after the retries ({} in all), try again later", tries_text(tries))
        }
        (_, Error::Network(_)) => format!("still no answer after {}", tries_text(tries)),
        _ => format!("the same after {}", tries_text(tries)),
    };
    error.with_note(&note)
}

fn tries_text(tries: u32) -> String {
    match tries {
        1 => "1 try".to_string(),
        n => format!("{n} tries"),
    }
}

/// A request that failed, and how the retry rules treat it.
pub struct Failed {
    pub failure: Failure,
    pub error: Error,
}

impl From<B2Failure> for Failed {
    fn from(b2: B2Failure) -> Failed {
        let (failure, error) = b2.decide();
        Failed { failure, error }
    }
}

impl Failed {
    /// Whether the request got no answer, so B2 may have acted on it: the table tells
    /// every unanswered failure, and only those, as `Error::Network`.
    pub fn unanswered(&self) -> bool {
        matches!(self.error, Error::Network(_))
    }

    pub fn fatal(error: Error) -> Failed {
        Failed {
            failure: Failure::Fatal,
            error,
        }
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
