//! The `encryption` field: absent (the bucket's default applies), `{"mode": "SSE-B2"}`, or
//! `{"mode": "SSE-C", "customer_key": "<base64 of 32 bytes>"}`; and
//! `bandwidth_limit_bytes_per_second`. No message here ever shows the customer key.

use serde_json::Value;

use crate::b2::settings::{CustomerKey, Encryption};
use crate::error::{Error, Result};

const KNOWN: &[&str] = &["mode", "customer_key"];

/// Parses `encryption`; unknown fields inside it are warnings, like unknown top-level ones.
pub fn parse(value: Option<&Value>, warnings: &mut Vec<String>) -> Result<Encryption> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Encryption::BucketDefault),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Error::Config(
                "field \"encryption\" must be an object such as {\"mode\": \"SSE-B2\"} or {\"mode\": \"SSE-C\", \"customer_key\": \"<base64 of 32 bytes>\"}; leave it out to use the bucket's default".into(),
            ))
        }
    };
    for key in map.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        let shown: String = key.chars().take(64).filter(|c| !c.is_control()).collect();
        warnings.push(format!(
            "unknown configuration field \"encryption.{shown}\" was ignored"
        ));
    }
    let mode = match map.get("mode") {
        Some(Value::String(m)) => m.trim().to_ascii_uppercase(),
        _ => {
            return Err(Error::Config(
                "field \"encryption.mode\" must be \"SSE-B2\" or \"SSE-C\"".into(),
            ))
        }
    };
    let key = map.get("customer_key").filter(|v| !v.is_null());
    match (mode.as_str(), key) {
        ("SSE-B2", None) => Ok(Encryption::SseB2),
        ("SSE-B2", Some(_)) => Err(Error::Config(
            "field \"encryption.customer_key\" is only for \"mode\": \"SSE-C\"; with SSE-B2, B2 holds the keys".into(),
        )),
        ("SSE-C", Some(Value::String(text))) => CustomerKey::from_base64(text)
            .map(Encryption::SseC)
            .map_err(|why| {
                Error::Config(format!(
                    "field \"encryption.customer_key\" {why}: give the base64 of a 32-byte (256-bit) key, e.g. from `openssl rand -base64 32`"
                ))
            }),
        ("SSE-C", Some(_)) => Err(Error::Config(
            "field \"encryption.customer_key\" must be a string: the base64 of a 32-byte key"
                .into(),
        )),
        ("SSE-C", None) => Err(Error::Config(
            "field \"encryption.customer_key\" is missing: SSE-C needs the base64 of a 32-byte key, which you keep (B2 never stores it)".into(),
        )),
        _ => Err(Error::Config(
            "field \"encryption.mode\" must be \"SSE-B2\" or \"SSE-C\"".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn parsed(v: Value) -> Result<Encryption> {
        parse(Some(&v), &mut Vec::new())
    }

    #[test]
    fn modes_and_keys() {
        assert_eq!(
            parse(None, &mut Vec::new()).unwrap(),
            Encryption::BucketDefault
        );
        assert_eq!(
            parsed(json!({"mode": "SSE-B2"})).unwrap(),
            Encryption::SseB2
        );
        assert_eq!(
            parsed(json!({"mode": "sse-b2"})).unwrap(),
            Encryption::SseB2
        );
        let c = parsed(json!({"mode": "SSE-C", "customer_key": KEY})).unwrap();
        assert_eq!(c.key_md5(), Some("hRasmdxgYDKV3nvbahU1MA=="));
        for bad in [
            json!("SSE-C"),
            json!({"mode": "AES"}),
            json!({}),
            json!({"mode": "SSE-C"}),
            json!({"mode": "SSE-C", "customer_key": 5}),
            json!({"mode": "SSE-B2", "customer_key": KEY}),
        ] {
            assert!(
                matches!(parsed(bad.clone()), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_key_is_named_never_shown() {
        let secretish = "c2VjcmV0LWJ1dC10b28tc2hvcnQ="; // 21 bytes
        for key in [secretish, "!!!not-base64-SECRETVALUE!!!"] {
            let msg = parsed(json!({"mode": "SSE-C", "customer_key": key}))
                .unwrap_err()
                .to_string();
            assert!(msg.contains("encryption.customer_key"), "{msg}");
            assert!(!msg.contains(key) && !msg.contains("SECRETVALUE"), "{msg}");
        }
        let mut warnings = Vec::new();
        parse(Some(&json!({"mode": "SSE-B2", "extra": 1})), &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1);
    }
}
