//! The JSON response every operation returns: `ok`, the operation's fields, `warnings`, and
//! on failure `error: {code, message, retryable}`; and the last guard that keeps the
//! application key out of it.

use std::ffi::CString;

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::local::one_line;
use crate::ops::Report;
use crate::status::DestStatus;

pub(super) fn render(outcome: Result<Report>) -> (DestStatus, Value) {
    let (fields, warnings, failure) = match outcome {
        Ok(r) => (r.fields, r.warnings, r.failure),
        Err(e) => (Map::new(), Vec::new(), Some(e)),
    };
    let mut body = Map::new();
    body.insert("ok".into(), failure.is_none().into());
    let mut fields = Value::Object(fields);
    one_line_messages(&mut fields);
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    let warnings: Vec<String> = warnings.iter().map(|w| one_line(w)).collect();
    body.insert("warnings".into(), warnings.into());
    let status = match &failure {
        None => DestStatus::DestOk,
        Some(e) => {
            body.insert(
                "error".into(),
                json!({"code": e.status().code_name(), "message": one_line(&e.to_string()), "retryable": e.retryable()}),
            );
            e.status()
        }
    };
    (status, Value::Object(body))
}

/// Every `reason` and `message` below `value` (a skipped file's reason, a failed file's
/// error) made one line, as the error and the warnings are; data fields keep their bytes.
fn one_line_messages(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "reason" || key == "message" => {
                        *text = one_line(text);
                    }
                    _ => one_line_messages(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(one_line_messages),
        _ => {}
    }
}

/// The response as the C string handed to the host, with each of `secrets` (the
/// application key, the SSE-C customer key, the B2 tokens) replaced wherever it appears.
pub(super) fn to_c_string(body: &Value, secrets: &[String]) -> CString {
    // Belt and braces: no path through the library should put a key in a response.
    let text = redact(&body.to_string(), secrets);
    CString::new(text).unwrap_or_else(|_| CString::new("{\"ok\":false}").unwrap_or_default())
}

/// `text` with each of `secrets` replaced by `[redacted]`: for responses and log lines
/// alike, since either may carry what B2 (or a proxy) echoed back.
pub(super) fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for key in secrets.iter().filter(|k| k.len() >= 4) {
        if text.contains(key.as_str()) {
            text = text.replace(key.as_str(), "[redacted]");
        }
        // JSON escapes a '/' of base64 nowhere, but a key could still appear escaped.
        let escaped = serde_json::to_string(key).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != key && text.contains(escaped) {
            text = text.replace(escaped, "[redacted]");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_redacted_wherever_it_appears() {
        let body = json!({"ok": false, "error": {"message": "key abc-secret-key refused"}});
        let text = to_c_string(&body, &["abc-secret-key".to_string()])
            .into_string()
            .unwrap();
        assert!(!text.contains("abc-secret-key"), "{text}");
        assert!(text.contains("key [redacted] refused"), "{text}");
    }

    #[test]
    fn the_customer_key_is_redacted_too() {
        let customer = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string();
        let body = json!({"ok": false, "a": format!("k={customer}"), "b": "abc-secret-key"});
        let text = to_c_string(&body, &["abc-secret-key".to_string(), customer.clone()])
            .into_string()
            .unwrap();
        assert!(
            !text.contains(&customer) && !text.contains("abc-secret-key"),
            "{text}"
        );
        assert_eq!(text.matches("[redacted]").count(), 2, "{text}");
    }

    #[test]
    fn a_failure_carries_its_status_and_code() {
        let (status, body) = render(Err(crate::error::Error::Cancelled));
        assert_eq!(status, DestStatus::DestErrCancelled);
        assert_eq!(body["ok"], false);
        assert_eq!(body["error"]["code"], status.code_name());
        assert_eq!(body["warnings"], json!([]));
    }
}
