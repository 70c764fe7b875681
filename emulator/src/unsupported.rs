//! What the emulator does not do, refused in one place per feature so that a client
//! never mistakes a setting it dropped for one it honoured. Each refusal is a B2-shaped
//! 400 `unsupported` that names the call, field or header. The Object Lock work replaces
//! the functions of its section with the real thing (server-side encryption is in `sse`).

use hyper::HeaderMap;
use serde_json::{Map, Value};

use crate::error::{B2Error, B2Result};

fn refuse(what: impl std::fmt::Display) -> B2Error {
    B2Error::new(
        400,
        "unsupported",
        format!("{what} is not implemented by b2-emulator"),
    )
}

/// A call of B2's native API the emulator does not serve (see `calls.rs`).
pub fn call(name: &str) -> B2Error {
    refuse(name)
}

/// Whether a JSON setting asks for anything: absent, null, `false` and `"off"` do not.
fn asks_for_something(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => s != "off",
        // `{"mode": null, ...}` is how B2 writes "none".
        Some(Value::Object(map)) => map.get("mode").is_some_and(|m| !m.is_null()),
        Some(_) => true,
    }
}

fn refuse_fields(params: &Map<String, Value>, fields: &[&str], context: &str) -> B2Result<()> {
    for field in fields {
        if asks_for_something(params.get(*field)) {
            return Err(refuse(format!("{field} in {context}")));
        }
    }
    Ok(())
}

fn refuse_headers(headers: &HeaderMap, prefixes: &[&str], allowed_off: &[&str]) -> B2Result<()> {
    for (name, value) in headers {
        let name = name.as_str();
        let Some(prefix) = prefixes.iter().find(|p| name.starts_with(*p)) else {
            continue;
        };
        let is_off = allowed_off.contains(&name)
            && value
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"));
        if !is_off {
            let shown = canonical_header(prefix);
            return Err(refuse(format!("the {shown}* header")));
        }
    }
    Ok(())
}

/// `x-bz-file-retention-` -> `X-Bz-File-Retention-`.
fn canonical_header(lower: &str) -> String {
    lower
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

// ---- Object Lock (file retention, legal hold) ----

/// `fileLockEnabled: true` and a default retention in b2_create_bucket / b2_update_bucket.
pub fn object_lock_bucket(params: &Map<String, Value>, call: &str) -> B2Result<()> {
    refuse_fields(params, &["fileLockEnabled", "defaultRetention"], call)
}

/// Retention and legal hold of a version: upload headers (`X-Bz-File-Legal-Hold: off`
/// asks for nothing and passes).
pub fn object_lock_headers(headers: &HeaderMap) -> B2Result<()> {
    refuse_headers(
        headers,
        &["x-bz-file-retention-", "x-bz-file-legal-hold"],
        &["x-bz-file-legal-hold"],
    )
}

/// `fileRetention` and `legalHold` in b2_start_large_file.
pub fn object_lock_large_file(params: &Map<String, Value>) -> B2Result<()> {
    refuse_fields(
        params,
        &["fileRetention", "legalHold"],
        "b2_start_large_file",
    )
}

// ---- Replication ----

/// `replicationConfiguration` in b2_create_bucket / b2_update_bucket.
pub fn replication_bucket(params: &Map<String, Value>, call: &str) -> B2Result<()> {
    if params
        .get("replicationConfiguration")
        .is_some_and(|v| !v.is_null())
    {
        return Err(refuse(format!("replicationConfiguration in {call}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_settings_that_ask_for_something_are_refused() {
        assert!(!asks_for_something(None));
        assert!(!asks_for_something(Some(&json!(false))));
        assert!(!asks_for_something(Some(&json!("off"))));
        assert!(!asks_for_something(Some(&json!({"mode": null}))));
        assert!(asks_for_something(Some(&json!(true))));
        assert!(asks_for_something(Some(&json!("on"))));
        assert!(asks_for_something(Some(&json!({"mode": "SSE-B2"}))));
        assert_eq!(
            canonical_header("x-bz-file-retention-"),
            "X-Bz-File-Retention-"
        );
    }
}
