//! `dest_list_versions`: every version under a remote path, newest first per name —
//! uploads, hide markers, unfinished large files — with, given `as_of_ms`, which one was
//! current then. Written into the response page by page, as `dest_list` is.

use serde_json::{json, Value};

use super::recovery::{decider_at, for_each_name, RecoveryOptions};
use super::{Destination, Report};
use crate::b2::api::FileVersion;
use crate::error::Result;
use crate::remote_path::{relative_to, EmptyPath, RemotePath};

/// One version as the response shows it.
pub fn entry(dest: &Destination, f: &FileVersion) -> Value {
    let mut entry = json!({
        "remote_path": relative_to(&f.file_name, &dest.config.backup_directory)
            .unwrap_or_else(|| f.file_name.clone()),
        "file_id": f.file_id,
        // As B2 wrote it; "" when it gave none.
        "action": f.action.as_str(),
        "upload_ms": f.upload_timestamp,
        "size": f.length(),
        "sha1": f.whole_sha1(),
    });
    for (k, v) in super::object_lock::entry_fields(f) {
        entry[k] = v;
    }
    entry
}

pub async fn run(dest: &Destination, remote: &str, options: &RecoveryOptions) -> Result<Report> {
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Allowed)?;
    let bucket = dest.bucket().await?;
    let as_of = options.as_of_ms;
    let mut json = String::from("[");
    let (mut count, mut names) = (0u64, 0u64);
    let odd = for_each_name(dest, &bucket.id, &path, |versions| {
        names += 1;
        let current = as_of.and_then(|t| decider_at(&versions, t));
        for (i, f) in versions.iter().enumerate() {
            let mut e = entry(dest, f);
            if as_of.is_some() {
                e["current_at"] = json!(current == Some((i, true)));
            }
            if count > 0 {
                json.push(',');
            }
            json.push_str(&e.to_string());
            count += 1;
        }
        Ok(())
    })
    .await?;
    json.push(']');
    let mut report = Report::with(json!({
        "remote_path": path.relative, "count": count, "names": names, "as_of_ms": as_of,
    }));
    report.raw_field = Some(("entries", json));
    odd.warn(&mut report, "they are listed as B2 described them");
    Ok(report)
}
