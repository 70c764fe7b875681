//! The rewriting of one JSON answer into a variant shape. It changes how an answer says
//! things, never what it says: the same files, sizes, SHA1s, ids and locks. A field is
//! made null or dropped only where B2 or b2sdk's simulator leaves it so and the answer
//! still means the same (a lock flag that is off, a retention with no mode, a legal hold
//! that is off), or where the field is one B2 may simply not tell ("not told" is not "none").

use serde_json::{Map, Value};

use super::{Variant, VariantSet};

/// A small deterministic generator (splitmix64): the emulator needs no real randomness,
/// only choices a seed repeats.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[(self.next() % from.len() as u64) as usize]
    }
}

/// Fields B2 may leave null or out of an answer without meaning anything else ("not
/// told"): b2sdk reads each as optional. Lock flags and values are handled apart, since
/// there null can mean "no lock" or "not readable".
const NOT_TOLD: &[&str] = &[
    "uploadTimestamp",
    "contentSha1",
    "serverSideEncryption",
    "bucketInfo",
    "corsRules",
    "options",
    "replicationConfiguration",
    "replicationStatus",
    "bucketType",
    "namePrefix",
    "applicationKeyExpirationTimestamp",
    "s3ApiUrl",
];

/// Maps whose keys are the customer's (file info, bucket info): nothing is added to them.
const USER_MAPS: &[&str] = &["fileInfo", "bucketInfo"];

/// Values of open enums that B2 (or a B2-compatible server) may send tomorrow.
const UNKNOWN_RETENTION_MODES: &[&str] = &["unknown-mode", "legal"];
const UNKNOWN_BUCKET_TYPES: &[&str] = &["snapshot", "restricted", "shared"];
const UNKNOWN_ALGORITHMS: &[&str] = &["AES256-GCM", "ChaCha20"];
const UNKNOWN_CAPABILITIES: &[&str] = &["readBucketNotifications", "writeBucketLogging"];
const UNKNOWN_OPTIONS: &[&str] = &["s3v2", "quantum"];

/// The calls whose entries are listing entries (v1 names them with `size`).
const LISTINGS: &[&str] = &[
    "b2_list_file_names",
    "b2_list_file_versions",
    "b2_list_unfinished_large_files",
];

/// Rewrites `answer`, the JSON answer of `call`, into the shapes of `set`.
pub fn rewrite(call: &str, answer: &mut Value, set: VariantSet, rng: &mut Rng) {
    let listing = LISTINGS.contains(&call);
    walk(answer, set, listing, rng);
}

fn walk(value: &mut Value, set: VariantSet, listing: bool, rng: &mut Rng) {
    match value {
        Value::Array(items) => {
            for item in items {
                walk(item, set, listing, rng);
            }
        }
        Value::Object(map) => {
            rewrite_object(map, set, listing, rng);
            for (key, child) in map.iter_mut() {
                if !USER_MAPS.contains(&key.as_str()) {
                    walk(child, set, listing, rng);
                }
            }
            if set.has(Variant::Extra) {
                add_extra(map, rng);
            }
        }
        _ => {}
    }
}

/// How a field that may go is taken away: made null or dropped, as the set allows.
enum Gone {
    Null,
    Absent,
}

fn gone(set: VariantSet, rng: &mut Rng) -> Option<Gone> {
    match (set.has(Variant::Null), set.has(Variant::Absent)) {
        (true, true) if rng.coin() => Some(Gone::Null),
        (true, true) | (false, true) => Some(Gone::Absent),
        (true, false) => Some(Gone::Null),
        (false, false) => None,
    }
}

fn take_away(map: &mut Map<String, Value>, key: &str, how: &Gone) {
    match how {
        Gone::Null => {
            map.insert(key.to_owned(), Value::Null);
        }
        Gone::Absent => {
            map.remove(key);
        }
    }
}

fn rewrite_object(map: &mut Map<String, Value>, set: VariantSet, listing: bool, rng: &mut Rng) {
    if set.has(Variant::UnknownEnum) {
        unknown_enums(map, rng);
    }
    if set.has(Variant::V1Size) && listing && map.contains_key("size") {
        map.remove("contentLength");
    }
    if !(set.has(Variant::Null) || set.has(Variant::Absent)) {
        return;
    }
    for key in NOT_TOLD {
        if map.contains_key(*key) {
            if let Some(how) = gone(set, rng) {
                take_away(map, key, &how);
            }
        }
    }
    let empty_prefix = map.get("fileNamePrefix").and_then(Value::as_str) == Some("");
    if empty_prefix && map.contains_key("daysFromUploadingToHiding") {
        // A lifecycle rule for the whole bucket: b2sdk reads a missing prefix as "".
        if let Some(how) = gone(set, rng) {
            take_away(map, "fileNamePrefix", &how);
        }
    }
    // Null reads as "no rules" only where there are none (the rules mean something), and
    // as "no file info" only where there is none (b2sdk reads a null fileInfo as {}; the
    // info a client stored is what it stored, never dropped).
    if map
        .get("lifecycleRules")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        if let Some(how) = gone(set, rng) {
            take_away(map, "lifecycleRules", &how);
        }
    }
    if map
        .get("fileInfo")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        if let Some(how) = gone(set, rng) {
            take_away(map, "fileInfo", &how);
        }
    }
    if map.get("isFileLockEnabled") == Some(&Value::Bool(false)) {
        // b2sdk's simulator answers null for a bucket made without the flag.
        if let Some(how) = gone(set, rng) {
            take_away(map, "isFileLockEnabled", &how);
        }
    }
    if map
        .get("defaultRetention")
        .is_some_and(|d| d.is_null() || d.get("mode").is_some_and(Value::is_null))
    {
        // No default retention: `{"mode": null}`, its period null or out, or no object.
        if let Some(Value::Object(d)) = map.get_mut("defaultRetention") {
            if let Some(how) = gone(set, rng) {
                take_away(d, "period", &how);
            }
        }
        if rng.coin() {
            if let Some(how) = gone(set, rng) {
                take_away(map, "defaultRetention", &how);
            }
        }
    }
    readable(map, set, rng);
}

/// `{"isClientAuthorizedToRead", "value"}`: the flag may go where the value is there
/// (the value itself shows it was readable); the value may go where it says nothing
/// (no retention mode, legal hold off) and the key may read it.
fn readable(map: &mut Map<String, Value>, set: VariantSet, rng: &mut Rng) {
    let Some(flag) = map.get("isClientAuthorizedToRead").and_then(Value::as_bool) else {
        return;
    };
    let Some(value) = map.get("value") else {
        return;
    };
    let says_nothing = match value {
        Value::Null => true,
        Value::String(s) => s == "off",
        Value::Object(v) => v.get("mode").is_some_and(Value::is_null),
        _ => false,
    };
    if flag && says_nothing && !value.is_null() {
        if let Some(how) = gone(set, rng) {
            take_away(map, "value", &how);
        }
    } else if flag && !value.is_null() {
        if let Some(how) = gone(set, rng) {
            take_away(map, "isClientAuthorizedToRead", &how);
        }
    }
}

fn unknown_enums(map: &mut Map<String, Value>, rng: &mut Rng) {
    // A stored version whose action is one the client does not know ("copy"), or none:
    // with its fileId and length it is still a stored version.
    if map.get("action").and_then(Value::as_str) == Some("upload") && map.contains_key("fileId") {
        if rng.coin() {
            map.insert("action".to_owned(), Value::from("copy"));
        } else {
            map.remove("action");
        }
    }
    let is_retention = map.contains_key("retainUntilTimestamp") || map.contains_key("period");
    if is_retention && map.get("mode").is_some_and(Value::is_string) {
        let mode = *rng.pick(UNKNOWN_RETENTION_MODES);
        map.insert("mode".to_owned(), Value::from(mode));
    }
    if map.get("bucketType").is_some_and(Value::is_string) {
        let kind = *rng.pick(UNKNOWN_BUCKET_TYPES);
        map.insert("bucketType".to_owned(), Value::from(kind));
    }
    if map.get("algorithm").is_some_and(Value::is_string) {
        let algorithm = *rng.pick(UNKNOWN_ALGORITHMS);
        map.insert("algorithm".to_owned(), Value::from(algorithm));
    }
    if let Some(Value::Array(caps)) = map.get_mut("capabilities") {
        caps.push(Value::from(*rng.pick(UNKNOWN_CAPABILITIES)));
    }
    if let Some(Value::Array(options)) = map.get_mut("options") {
        options.push(Value::from(*rng.pick(UNKNOWN_OPTIONS)));
    }
}

/// One or two fields no client knows, of any JSON type.
fn add_extra(map: &mut Map<String, Value>, rng: &mut Rng) {
    let count = 1 + rng.next() % 2;
    for i in 0..count {
        let value = match rng.next() % 6 {
            0 => Value::Null,
            1 => Value::from("emulator-extra"),
            2 => Value::from(rng.next() % 1_000_000),
            3 => Value::Bool(rng.coin()),
            4 => serde_json::json!({"nested": {"deeper": [1, "two", null]}}),
            _ => serde_json::json!([{"unknown": true}, "x", 3.5]),
        };
        map.insert(format!("emuExtraField{i}"), value);
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
