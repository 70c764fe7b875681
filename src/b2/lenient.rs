//! How every field of a B2 answer is read, the way Backblaze's own SDK reads them: a field
//! an operation does not need never fails the answer. `null`, absent and a value of an
//! unexpected type are all read as "not given" (`None`, or the type's default); what an
//! operation needs it checks itself, and names the entry when it is missing.
//!
//! Used as `#[serde(default, deserialize_with = "lenient::opt")]` (or `::or_default`,
//! `::strings`, `::list`) on every field of the answer types in `api.rs` and `lock.rs`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The value if it is there and of the right shape, else None.
pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(read(Value::deserialize(d)?))
}

/// The value if it is there and of the right shape, else the type's default.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(read(Value::deserialize(d)?).unwrap_or_default())
}

/// A map of strings (`fileInfo`): null reads as empty, and a value that is not a string
/// is kept as its JSON text rather than dropping the whole map.
pub fn strings<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let Value::Object(map) = Value::deserialize(d)? else {
        return Ok(BTreeMap::new());
    };
    Ok(map
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// A list whose entries are read one by one: an entry of an unexpected shape is left out
/// of this list only (for lists no operation counts on, like lifecycle rules and
/// capabilities; listings of files keep every entry, see `api::FileVersion`).
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let Value::Array(items) = Value::deserialize(d)? else {
        return Ok(Vec::new());
    };
    Ok(items.into_iter().filter_map(read).collect())
}

fn read<T: DeserializeOwned>(v: Value) -> Option<T> {
    if v.is_null() {
        return None;
    }
    serde_json::from_value(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq, Default)]
    struct Shape {
        #[serde(default, deserialize_with = "opt")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "or_default")]
        s: String,
        #[serde(default, deserialize_with = "strings")]
        m: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "list")]
        l: Vec<u32>,
    }

    fn shape(json: &str) -> Shape {
        serde_json::from_str(json).expect("never fails on an object")
    }

    #[test]
    fn null_absent_and_wrong_types_read_as_not_given() {
        for json in [
            r#"{}"#,
            r#"{"n": null, "s": null, "m": null, "l": null}"#,
            r#"{"n": "x", "s": 5, "m": [1], "l": {"a": 1}}"#,
        ] {
            assert_eq!(shape(json), Shape::default(), "{json}");
        }
    }

    #[test]
    fn values_of_the_right_shape_are_kept() {
        let s = shape(
            r#"{"n": 7, "s": "a", "m": {"k": "v", "n": 3, "z": null}, "l": [1, "x", 2], "extra": {"a": []}}"#,
        );
        assert_eq!(s.n, Some(7));
        assert_eq!(s.s, "a");
        assert_eq!(s.m.get("k").map(String::as_str), Some("v"));
        assert_eq!(s.m.get("n").map(String::as_str), Some("3"));
        assert!(!s.m.contains_key("z"));
        assert_eq!(s.l, vec![1, 2]);
    }
}
