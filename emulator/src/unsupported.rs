//! What the emulator does not do, refused in one place per feature so that a client
//! never mistakes a setting it dropped for one it honoured. Each refusal is a B2-shaped
//! 400 `unsupported` that names the call, field or header. Object Lock and server-side
//! encryption, once refused here, are implemented (`api/retention.rs`, `sse`).

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
    fn replication_is_refused_and_null_passes() {
        let with = |v: Value| {
            json!({ "replicationConfiguration": v })
                .as_object()
                .cloned()
                .unwrap()
        };
        assert!(replication_bucket(&Map::new(), "b2_update_bucket").is_ok());
        assert!(replication_bucket(&with(Value::Null), "b2_update_bucket").is_ok());
        let e = replication_bucket(
            &with(json!({"asReplicationSource": {}})),
            "b2_create_bucket",
        )
        .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "unsupported"));
        assert!(
            e.message
                .contains("replicationConfiguration in b2_create_bucket"),
            "{}",
            e.message
        );
    }
}
