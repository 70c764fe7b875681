//! The `object_lock` field: `{"mode", "retention_days", "bypass_governance"}`, checked
//! here against what B2 would refuse, so the host hears it naming the field.

use serde_json::Value;

use crate::b2::object_lock::{ObjectLockSettings, RetentionMode};
use crate::error::{Error, Result};

/// B2 supports retention periods of 1 to 3,000 days (Backblaze's Object Lock page).
pub const MAX_RETENTION_DAYS: u64 = 3_000;

const KNOWN: &[&str] = &["mode", "retention_days", "bypass_governance"];

/// None when the field is absent or null: no lock, exactly as without it.
pub fn parse(
    value: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<ObjectLockSettings>> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Error::Config(
                "field \"object_lock\" must be an object such as {\"mode\": \"governance\", \"retention_days\": 30}".into(),
            ))
        }
    };
    let mode = match map.get("mode") {
        Some(Value::String(m)) if m == "governance" => RetentionMode::Governance,
        Some(Value::String(m)) if m == "compliance" => RetentionMode::Compliance,
        None | Some(Value::Null) => {
            return Err(Error::Config(
                "field \"object_lock.mode\" is missing; it is \"governance\" or \"compliance\""
                    .into(),
            ))
        }
        Some(_) => {
            return Err(Error::Config(
                "field \"object_lock.mode\" must be \"governance\" or \"compliance\"".into(),
            ))
        }
    };
    let days = match map.get("retention_days") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e12)
                .map(|f| f as u64)
        }),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    let retention_days = match days {
        Some(d) if (1..=MAX_RETENTION_DAYS).contains(&d) => d as u32,
        _ => {
            return Err(Error::Config(format!(
                "field \"object_lock.retention_days\" must be a whole number of days from 1 to {MAX_RETENTION_DAYS} (B2's range)"
            )))
        }
    };
    let bypass_governance = match map.get("bypass_governance") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Error::Config(
                "field \"object_lock.bypass_governance\" must be true or false".into(),
            ))
        }
    };
    if bypass_governance && mode == RetentionMode::Compliance {
        warnings.push(
            "\"object_lock.bypass_governance\" has no effect in compliance mode: nobody can delete a compliance-locked backup before its retention ends".into(),
        );
    }
    for key in map.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        let shown: String = key.chars().take(64).filter(|c| !c.is_control()).collect();
        warnings.push(format!(
            "unknown configuration field \"object_lock.{shown}\" was ignored"
        ));
    }
    Ok(Some(ObjectLockSettings {
        mode,
        retention_days,
        bypass_governance,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(v: Value) -> Result<Option<ObjectLockSettings>> {
        parse(Some(&v), &mut Vec::new())
    }

    #[test]
    fn what_b2_would_refuse_is_refused_naming_the_field() {
        for (bad, field) in [
            (json!("yes"), "object_lock"),
            (json!({"retention_days": 3}), "object_lock.mode"),
            (
                json!({"mode": "legal", "retention_days": 3}),
                "object_lock.mode",
            ),
            (json!({"mode": "governance"}), "object_lock.retention_days"),
            (
                json!({"mode": "governance", "retention_days": 0}),
                "object_lock.retention_days",
            ),
            (
                json!({"mode": "governance", "retention_days": 1.5}),
                "object_lock.retention_days",
            ),
            (
                json!({"mode": "governance", "retention_days": 3001}),
                "object_lock.retention_days",
            ),
            (
                json!({"mode": "governance", "retention_days": -2}),
                "object_lock.retention_days",
            ),
            (
                json!({"mode": "governance", "retention_days": 2, "bypass_governance": "yes"}),
                "object_lock.bypass_governance",
            ),
        ] {
            let e = parsed(bad.clone()).unwrap_err();
            assert!(e.to_string().contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn absent_is_no_lock_and_numbers_may_be_text() {
        assert_eq!(parse(None, &mut Vec::new()).unwrap(), None);
        assert_eq!(parsed(Value::Null).unwrap(), None);
        let got = parsed(json!({"mode": "compliance", "retention_days": "30"})).unwrap();
        assert_eq!(
            got,
            Some(ObjectLockSettings {
                mode: RetentionMode::Compliance,
                retention_days: 30,
                bypass_governance: false
            })
        );
        let mut warnings = Vec::new();
        parse(
            Some(&json!({"mode": "compliance", "retention_days": 3000, "bypass_governance": true, "x": 1})),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
