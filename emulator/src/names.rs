//! B2's rules for file names, file info, content types and bucket names.

use std::collections::BTreeMap;

use crate::error::{B2Error, B2Result};

pub const MAX_FILE_NAME_BYTES: usize = 1024;
pub const MAX_INFO_ENTRIES: usize = 10;
/// File name plus file info (names and values) must fit in this many bytes.
pub const MAX_NAME_AND_INFO_BYTES: usize = 7000;

pub fn validate_file_name(name: &str) -> B2Result<()> {
    if name.is_empty() {
        return Err(B2Error::bad_request("file name must not be empty"));
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(B2Error::bad_request(format!(
            "file name is {} bytes; the limit is {MAX_FILE_NAME_BYTES}",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| (*c as u32) < 32 || *c == '\u{7f}') {
        return Err(B2Error::bad_request(format!(
            "file names must not contain control characters (found U+{:04X})",
            c as u32
        )));
    }
    Ok(())
}

/// The `b2-` info names B2 knows (each becomes a download header); every other name
/// starting with `b2-` is reserved.
pub const B2_INFO_NAMES: &[&str] = &[
    "b2-content-disposition",
    "b2-content-language",
    "b2-expires",
    "b2-cache-control",
    "b2-content-encoding",
];

/// The characters B2 allows in an info name besides letters and digits.
const INFO_NAME_SPECIALS: &[u8] = b"-_.`~!#$%^&*'|+";

/// Info names: letters, digits and B2's special characters, at most 50 bytes; `b2-`
/// names only from B2's list.
pub fn validate_info(file_name: &str, info: &BTreeMap<String, String>) -> B2Result<()> {
    if info.len() > MAX_INFO_ENTRIES {
        return Err(B2Error::bad_request(format!(
            "{} file info entries; the limit is {MAX_INFO_ENTRIES}",
            info.len()
        )));
    }
    let mut total = file_name.len();
    for (k, v) in info {
        let name_ok = !k.is_empty()
            && k.len() <= 50
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || INFO_NAME_SPECIALS.contains(&b));
        if !name_ok {
            return Err(B2Error::bad_request(format!(
                "invalid file info name {k:?}"
            )));
        }
        if k.to_ascii_lowercase().starts_with("b2-") && !B2_INFO_NAMES.contains(&k.as_str()) {
            return Err(B2Error::bad_request(format!(
                "file info name {k:?} is reserved: the b2- names B2 knows are {}",
                B2_INFO_NAMES.join(", ")
            )));
        }
        total += k.len() + v.len();
    }
    if total > MAX_NAME_AND_INFO_BYTES {
        return Err(B2Error::bad_request(format!(
            "file name and file info take {total} bytes; the limit is {MAX_NAME_AND_INFO_BYTES}"
        )));
    }
    Ok(())
}

pub fn validate_content_type(content_type: &str) -> B2Result<()> {
    let valid = content_type.len() <= 1024
        && match content_type.split_once('/') {
            Some((t, s)) => !t.is_empty() && !s.is_empty() && !t.contains(char::is_whitespace),
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err(B2Error::bad_request(format!(
            "invalid content type {content_type:?}"
        )))
    }
}

/// `b2/x-auto` asks B2 to pick a type from the name's extension.
pub fn resolve_content_type(content_type: &str, file_name: &str) -> String {
    if content_type != "b2/x-auto" {
        return content_type.to_owned();
    }
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    let guessed = match ext.as_deref() {
        Some("txt" | "log") => "text/plain",
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("js") => "application/javascript",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("zst") => "application/zstd",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("sql") => "application/sql",
        _ => "application/octet-stream",
    };
    guessed.to_owned()
}

/// 6 to 63 letters, digits and hyphens, not starting with "b2-".
pub fn validate_bucket_name(name: &str) -> B2Result<()> {
    let valid = (6..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.to_ascii_lowercase().starts_with("b2-");
    if valid {
        Ok(())
    } else {
        Err(B2Error::bad_request(format!(
            "invalid bucket name {name:?}: 6-63 letters, digits and '-', not starting with b2-"
        )))
    }
}

pub fn validate_bucket_type(kind: &str) -> B2Result<()> {
    match kind {
        "allPrivate" | "allPublic" => Ok(()),
        other => Err(B2Error::bad_request(format!(
            "bucketType must be allPrivate or allPublic, not {other:?}"
        ))),
    }
}

/// At most this many lifecycle rules per bucket.
pub const MAX_LIFECYCLE_RULES: usize = 100;
/// At most this many bucketInfo entries.
pub const MAX_BUCKET_INFO_ENTRIES: usize = 10;

const LIFECYCLE_DAYS: &[&str] = &[
    "daysFromHidingToDeleting",
    "daysFromUploadingToHiding",
    "daysFromStartingToCancelingUnfinishedLargeFiles",
];

/// Lifecycle rules as B2 takes them: at most 100, each with a string `fileNamePrefix`
/// and at least one positive day count, and no two rules for the same files (one
/// prefix starting with another).
pub fn validate_lifecycle_rules(rules: &serde_json::Value) -> B2Result<()> {
    let rules = rules
        .as_array()
        .ok_or_else(|| B2Error::bad_request("lifecycleRules must be an array"))?;
    if rules.len() > MAX_LIFECYCLE_RULES {
        return Err(B2Error::bad_request(format!(
            "{} lifecycle rules; a bucket may have at most {MAX_LIFECYCLE_RULES}",
            rules.len()
        )));
    }
    let mut prefixes: Vec<&str> = Vec::with_capacity(rules.len());
    for rule in rules {
        let rule = rule
            .as_object()
            .ok_or_else(|| B2Error::bad_request("each lifecycle rule must be an object"))?;
        let prefix = rule
            .get("fileNamePrefix")
            .and_then(|p| p.as_str())
            .ok_or_else(|| {
                B2Error::bad_request("each lifecycle rule needs a string fileNamePrefix")
            })?;
        if let Some(field) = rule
            .keys()
            .find(|k| *k != "fileNamePrefix" && !LIFECYCLE_DAYS.contains(&k.as_str()))
        {
            return Err(B2Error::bad_request(format!(
                "unknown lifecycle rule field {field:?}"
            )));
        }
        let mut acts = false;
        for field in LIFECYCLE_DAYS {
            match rule.get(*field) {
                None | Some(serde_json::Value::Null) => {}
                Some(v) if v.as_u64().is_some_and(|d| d > 0) => acts = true,
                Some(_) => {
                    return Err(B2Error::bad_request(format!(
                        "lifecycle rule {field} must be a positive integer or null"
                    )))
                }
            }
        }
        if !acts {
            return Err(B2Error::bad_request(format!(
                "the lifecycle rule for {prefix:?} does nothing: every day count is null"
            )));
        }
        prefixes.push(prefix);
    }
    // Sorted, a prefix of another comes right before some name that starts with it.
    prefixes.sort_unstable();
    for pair in prefixes.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(B2Error::bad_request(format!(
                "lifecycle rules for {:?} and {:?} apply to the same files",
                pair[0], pair[1]
            )));
        }
    }
    Ok(())
}

/// bucketInfo: a JSON object of at most 10 entries.
pub fn validate_bucket_info(info: &serde_json::Value) -> B2Result<()> {
    let info = info
        .as_object()
        .ok_or_else(|| B2Error::bad_request("bucketInfo must be an object"))?;
    if info.len() > MAX_BUCKET_INFO_ENTRIES {
        return Err(B2Error::bad_request(format!(
            "{} bucketInfo entries; the limit is {MAX_BUCKET_INFO_ENTRIES}",
            info.len()
        )));
    }
    Ok(())
}

pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
