//! Unit tests of the failure table, on B2's real error bodies.

use super::*;
use crate::b2::backoff::RetryPolicy;
use crate::status::DestStatus;

/// Error bodies as B2 sends them, `{status, code, message}`. Status and code are those
/// Backblaze documents per call (backblaze.com/apidocs: b2_upload_file, b2_upload_part,
/// b2_download_file_by_id, b2_delete_file_version, b2_list_file_names,
/// b2_authorize_account, and "Native API Error Handling and Status Codes"); the
/// messages are B2's own where users quoted them (rclone#533 and backblaze-b2#2 for the
/// SHA1 one, B2_Command_Line_Tool#523 for "Not a valid hex SHA1"), otherwise written
/// after the documented description (no decision reads them but the SHA1 one). Each
/// fixture names its source.
const BODIES: &str = include_str!("../../tests/fixtures/b2_errors/bodies.json");

/// How each body is decided: (call, retry, status the host gets, retryable).
fn expected(name: &str) -> (Failure, DestStatus, bool) {
    use DestStatus::*;
    let again = Failure::Transient { retry_after: None };
    let new_url = Failure::NewUploadUrl { retry_after: None };
    match name {
        "upload_sha1_mismatch" => (new_url, DestErrIntegrity, false),
        "part_checksum_mismatch" => (new_url, DestErrIntegrity, false),
        "upload_bad_hex_sha1" => (Failure::Fatal, DestErrRemote, false),
        "upload_expired_url_token" => (Failure::FreshUploadUrl, DestErrRemote, true),
        "upload_service_unavailable" => (new_url, DestErrRemote, true),
        "upload_request_timeout" => (new_url, DestErrRemote, true),
        "upload_storage_cap_exceeded" => (Failure::Fatal, DestErrLimit, false),
        "part_internal_error" => (new_url, DestErrRemote, true),
        "api_expired_auth_token" => (Failure::Reauthorize, DestErrRemote, true),
        "api_bad_auth_token" => (Failure::Reauthorize, DestErrAuth, false),
        "api_unauthorized" => (Failure::Fatal, DestErrPermission, false),
        "api_too_many_requests" => (
            Failure::Transient {
                retry_after: Some(Duration::from_secs(3)),
            },
            DestErrRemote,
            true,
        ),
        "api_service_unavailable" => (again, DestErrRemote, true),
        "list_bad_bucket_id" => (Failure::BucketGone, DestErrRemote, true),
        "delete_file_not_present" => (Failure::Fatal, DestErrNotFound, false),
        "delete_locked_version" => (Failure::Fatal, DestErrLocked, false),
        "download_not_found" => (Failure::Fatal, DestErrNotFound, false),
        "download_cap_exceeded" => (Failure::Fatal, DestErrLimit, false),
        "download_range_not_satisfiable" => (Failure::Fatal, DestErrRemote, false),
        "list_transaction_cap_exceeded" => (Failure::Fatal, DestErrLimit, false),
        "authorize_unauthorized" => (Failure::Fatal, DestErrAuth, false),
        "authorize_bad_auth_token" => (Failure::Fatal, DestErrAuth, false),
        "authorize_service_unavailable" => (again, DestErrRemote, true),
        "download_sse_c_key_missing_or_wrong" => (Failure::Fatal, DestErrEncryptionKey, false),
        other => panic!("no expectation for fixture {other}"),
    }
}

#[test]
fn each_real_b2_error_body_is_decided_by_the_table() {
    let fixtures: serde_json::Value = serde_json::from_str(BODIES).unwrap();
    let fixtures = fixtures.as_array().unwrap();
    assert!(fixtures.len() >= 20);
    for f in fixtures {
        let name = f["name"].as_str().unwrap();
        let call = f["call"].as_str().unwrap();
        let body = f["body"].to_string();
        let status = f["body"]["status"].as_u64().unwrap() as u16;
        let retry_after = f["retry_after"].as_str();
        let mut failure = B2Failure::answered(call, status, body.as_bytes(), retry_after);
        failure.customer_key_sent = f["customer_key_sent"].as_bool().unwrap_or(false);
        assert_eq!(failure.code, f["body"]["code"].as_str().unwrap(), "{name}");
        let (retry, error) = failure.decide();
        let (want_retry, want_status, want_retryable) = expected(name);
        assert_eq!(retry, want_retry, "{name}");
        assert_eq!(error.status(), want_status, "{name}: {error}");
        assert_eq!(error.retryable(), want_retryable, "{name}");
        let text = error.to_string();
        if !matches!(call, "b2_authorize_account") {
            assert!(
                text.contains(&format!("{status} {}", failure.code)),
                "{name}: B2's status and code reach the host: {text}"
            );
        }
    }
}

#[test]
fn no_answer_is_retried_and_told_as_network() {
    let api = B2Failure::unanswered("b2_list_file_names", "reset".into(), true);
    let (retry, error) = api.decide();
    assert_eq!(retry, Failure::Transient { retry_after: None });
    assert_eq!(error.status(), DestStatus::DestErrNetwork);
    assert!(error.retryable());
    let upload = B2Failure::unanswered("b2_upload_part", "reset".into(), false);
    assert_eq!(
        upload.decide().0,
        Failure::NewUploadUrl { retry_after: None }
    );
    // Not JSON at all (a proxy's page): B2's rules by status alone.
    let proxy = B2Failure::answered("b2_list_file_names", 502, b"<html>", None);
    assert_eq!(proxy.decide().0, Failure::Transient { retry_after: None });
}

#[test]
fn a_download_refused_without_a_customer_key_is_a_permission_error() {
    let body = br#"{"status": 403, "code": "access_denied", "message": "denied"}"#;
    let mut f = B2Failure::answered("b2_download_file_by_id", 403, body, None);
    let (_, plain) = f.decide();
    assert_eq!(plain.status(), DestStatus::DestErrPermission, "{plain}");
    assert!(
        plain
            .to_string()
            .contains("the account or key may not do this")
            && !plain.to_string().contains("SSE-C"),
        "{plain}"
    );
    f.customer_key_sent = true;
    let (_, key) = f.decide();
    assert_eq!(key.status(), DestStatus::DestErrEncryptionKey, "{key}");
}

#[test]
fn a_redirect_is_final_and_says_it_was_not_followed() {
    for status in [301, 302, 303, 307, 308] {
        for call in [
            "b2_list_file_names",
            "b2_download_file_by_id",
            "b2_upload_part",
        ] {
            let f = B2Failure::answered(call, status, b"", None);
            let (retry, error) = f.decide();
            assert_eq!(retry, Failure::Fatal, "{call} {status}");
            assert_eq!(error.status(), DestStatus::DestErrRemote, "{call} {status}");
            assert!(!error.retryable());
            let text = error.to_string();
            assert!(
                text.contains(&format!("{call} was a redirect ({status})"))
                    && text.contains("not followed"),
                "{text}"
            );
        }
    }
}

#[test]
fn back_off_grows_honours_retry_after_and_stops() {
    let p = RetryPolicy::for_uploads(3, Duration::from_secs(1));
    let d1 = p.delay(1, Duration::ZERO, None).unwrap();
    let d3 = p.delay(3, Duration::ZERO, None).unwrap();
    assert!(d1 >= Duration::from_secs(1) && d1 <= Duration::from_millis(1250));
    assert!(d3 >= Duration::from_millis(2250));
    assert!(
        p.delay(1, Duration::ZERO, Some(Duration::from_secs(7)))
            .unwrap()
            >= Duration::from_secs(7)
    );
    assert_eq!(p.delay(4, Duration::ZERO, None), None);
    assert_eq!(p.delay(1, Duration::from_secs(3600), None), None);
}

#[test]
fn back_off_is_jittered() {
    let p = RetryPolicy::for_uploads(3, Duration::from_secs(1));
    let delays: std::collections::BTreeSet<Duration> = (0..50)
        .map(|_| p.delay(1, Duration::ZERO, None).unwrap())
        .collect();
    // Fifty waits of threads that failed together: with no jitter they are all 1 s.
    assert!(delays.len() > 25, "{delays:?}");
    let spread = *delays.last().unwrap() - *delays.first().unwrap();
    assert!(spread >= Duration::from_millis(100), "{delays:?}");
}

#[test]
fn retry_after_is_read_in_seconds_or_as_an_http_date() {
    // Fri, 01 Jan 2027 00:00:00 GMT.
    let now = 1_798_761_600_000;
    assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        retry_after("Fri, 01 Jan 2027 00:01:30 GMT", now),
        Some(Duration::from_secs(90))
    );
    // A date already past: at once.
    assert_eq!(
        retry_after("Thu, 31 Dec 2026 23:59:00 GMT", now),
        Some(Duration::ZERO)
    );
    for garbage in [
        "",
        "soon",
        "-5",
        "1.5",
        "99999999999999999999999",
        "Fri, 01 Jan 2027 00:01:30",
        "Fri, 01 Foo 2027 00:01:30 GMT",
        "Friday, 01-Jan-27 00:01:30 GMT",
    ] {
        assert_eq!(retry_after(garbage, now), None, "{garbage:?}");
    }
    let body = br#"{"status": 503, "code": "service_unavailable", "message": "busy"}"#;
    let f = B2Failure::answered_at(
        "b2_upload_file",
        503,
        body,
        Some("Fri, 01 Jan 2027 00:00:05 GMT"),
        now,
    );
    assert_eq!(
        f.decide().0,
        Failure::NewUploadUrl {
            retry_after: Some(Duration::from_secs(5))
        }
    );
}

#[test]
fn a_far_retry_after_is_bounded_as_the_back_off_is() {
    let p = RetryPolicy::for_calls(Duration::from_secs(1));
    let far = retry_after("Fri, 01 Jan 2100 00:00:00 GMT", 1_798_761_600_000);
    assert_eq!(p.delay(1, Duration::ZERO, far), Some(p.max_elapsed));
    let elapsed = Duration::from_secs(60);
    assert_eq!(
        p.delay(1, elapsed, Some(Duration::from_secs(u64::MAX))),
        Some(p.max_elapsed - elapsed)
    );
}

#[test]
fn an_expired_upload_token_takes_a_new_url_at_once_and_only_the_final_failure_says_the_retries_ran_out(
) {
    let body = br#"{"status": 401, "code": "expired_auth_token", "message": "Authorization token has expired"}"#;
    for call in ["b2_upload_file", "b2_upload_part"] {
        let (retry, error) = B2Failure::answered(call, 401, body, None).decide();
        assert_eq!(retry, Failure::FreshUploadUrl, "{call}");
        assert!(!error.to_string().contains("kept"), "{error}");
        let last = gave_up(retry, error, 4).to_string();
        assert!(last.contains("upload URL's token kept expiring"), "{last}");
    }
    let (retry, _) = B2Failure::answered(
        "b2_upload_part",
        401,
        br#"{"code": "bad_auth_token"}"#,
        None,
    )
    .decide();
    assert_eq!(retry, Failure::FreshUploadUrl);
    // The account's token: a new authorization.
    let (retry, error) = B2Failure::answered("b2_list_file_names", 401, body, None).decide();
    assert_eq!(retry, Failure::Reauthorize);
    assert!(gave_up(retry, error, 4)
        .to_string()
        .contains("kept expiring"));
    // Busy: the failure says what B2 answered; only the last one says it kept failing.
    let busy = br#"{"status": 503, "code": "service_unavailable", "message": "c001 is too busy"}"#;
    let (retry, error) = B2Failure::answered("b2_upload_file", 503, busy, None).decide();
    let once = error.to_string();
    assert!(
        once.contains("503 service_unavailable") && !once.contains("kept failing"),
        "{once}"
    );
    let last = gave_up(retry, error, 4);
    assert!(last.retryable());
    assert!(
        last.to_string()
            .contains("kept failing after the retries (4 tries"),
        "{last}"
    );
    // A refusal is told as it is.
    let (retry, error) = B2Failure::answered(
        "b2_list_file_names",
        400,
        br#"{"code": "bad_request"}"#,
        None,
    )
    .decide();
    assert_eq!(
        gave_up(retry, error, 1).to_string(),
        B2Failure::answered(
            "b2_list_file_names",
            400,
            br#"{"code": "bad_request"}"#,
            None
        )
        .decide()
        .1
        .to_string()
    );
}
