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

/// Info names: letters, digits, '-', '_' and '.', at most 50 bytes.
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
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(B2Error::bad_request(format!(
                "invalid file info name {k:?}"
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

/// Lifecycle rules: an array of objects, each with a string `fileNamePrefix`.
pub fn validate_lifecycle_rules(rules: &serde_json::Value) -> B2Result<()> {
    let bad =
        || B2Error::bad_request("lifecycleRules must be an array of rules with fileNamePrefix");
    let rules = rules.as_array().ok_or_else(bad)?;
    for rule in rules {
        let prefix = rule.get("fileNamePrefix").ok_or_else(bad)?;
        if !prefix.is_string() {
            return Err(bad());
        }
        for field in ["daysFromHidingToDeleting", "daysFromUploadingToHiding"] {
            match rule.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(v) if v.as_u64().is_some_and(|d| d > 0) => {}
                Some(_) => {
                    return Err(B2Error::bad_request(format!(
                        "lifecycle rule {field} must be a positive integer or null"
                    )))
                }
            }
        }
    }
    Ok(())
}

pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
