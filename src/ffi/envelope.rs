//! The JSON response every operation returns: `ok`, the operation's fields, `warnings`, and
//! on failure `error: {code, message, retryable}`; and the last guard that keeps the
//! application key out of it.

use std::ffi::CString;

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::local::one_line;
use crate::ops::Report;
use crate::status::DestStatus;

/// The response before it becomes text: its fields, and a field already written as JSON.
pub(super) struct Rendered {
    pub body: Value,
    pub raw_field: Option<(&'static str, String)>,
}

pub(super) fn render(outcome: Result<Report>) -> (DestStatus, Rendered) {
    let (fields, warnings, failure, raw_field) = match outcome {
        Ok(r) => (r.fields, r.warnings, r.failure, r.raw_field),
        Err(e) => (Map::new(), Vec::new(), Some(e), None),
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
    let body = Value::Object(body);
    (status, Rendered { body, raw_field })
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
pub(super) fn to_c_string(rendered: Rendered, secrets: &[String]) -> CString {
    let mut text = rendered.body.to_string();
    if let Some((key, raw)) = rendered.raw_field {
        // `{"key":RAW,` then the other fields: the raw text, the one large part, is moved
        // within its own buffer rather than copied into a second one.
        let head = format!("{{{}:", Value::from(key));
        let rest = &text[1..];
        let mut whole = raw;
        whole.reserve_exact(head.len() + 1 + rest.len() + 1);
        whole.insert_str(0, &head);
        whole.push(',');
        whole.push_str(rest);
        text = whole;
    }
    // Belt and braces: no path through the library should put a key in a response.
    let text = redact_owned(text, secrets);
    CString::new(text).unwrap_or_else(|_| CString::new("{\"ok\":false}").unwrap_or_default())
}

/// `text` with each of `secrets` replaced by `[redacted]`: for responses and log lines
/// alike, since either may carry what B2 (or a proxy) echoed back.
pub(super) fn redact(text: &str, secrets: &[String]) -> String {
    redact_owned(text.to_string(), secrets)
}

/// As `redact`, keeping `text`'s buffer when there is nothing to replace.
fn redact_owned(mut text: String, secrets: &[String]) -> String {
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
        let rendered = Rendered {
            body,
            raw_field: None,
        };
        let text = to_c_string(rendered, &["abc-secret-key".to_string()])
            .into_string()
            .unwrap();
        assert!(!text.contains("abc-secret-key"), "{text}");
        assert!(text.contains("key [redacted] refused"), "{text}");
    }

    #[test]
    fn the_customer_key_is_redacted_too() {
        let customer = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string();
        let body = json!({"ok": false, "a": format!("k={customer}"), "b": "abc-secret-key"});
        let rendered = Rendered {
            body,
            raw_field: Some(("entries", format!("[\"{customer}\"]"))),
        };
        let text = to_c_string(rendered, &["abc-secret-key".to_string(), customer.clone()])
            .into_string()
            .unwrap();
        assert!(
            !text.contains(&customer) && !text.contains("abc-secret-key"),
            "{text}"
        );
        assert_eq!(text.matches("[redacted]").count(), 3, "{text}");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["entries"], json!(["[redacted]"]), "{text}");
    }

    #[test]
    fn a_failure_carries_its_status_and_code() {
        let (status, Rendered { body, .. }) = render(Err(crate::error::Error::Cancelled));
        assert_eq!(status, DestStatus::DestErrCancelled);
        assert_eq!(body["ok"], false);
        assert_eq!(body["error"]["code"], status.code_name());
        assert_eq!(body["warnings"], json!([]));
    }
}
