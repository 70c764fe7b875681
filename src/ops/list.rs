//! `dest_list`: the current files under a remote path.

use serde_json::{json, Value};

use super::{Destination, OddEntries, Report};
use crate::b2::api::FileVersion;
use crate::b2::list::{self, FileLister};
use crate::error::Result;
use crate::remote_path::{relative_to, EmptyPath, RemotePath};

pub fn entry(dest: &Destination, f: &FileVersion) -> Value {
    let mut entry = json!({
        "path": relative_to(&f.file_name, &dest.config.backup_directory).unwrap_or_else(|| f.file_name.clone()),
        "size": f.length(),
        "sha1": f.whole_sha1(),
        "modified_ms": f.modified_ms(),
        "file_id": f.id(),
        // "SSE-B2", "SSE-C" or "none"; for SSE-C, the MD5 of the key a restore needs.
        "encryption": f.encryption_mode().unwrap_or("none"),
        "customer_key_md5": f.recorded_key_md5(),
    });
    for (k, v) in super::object_lock::entry_fields(f) {
        entry[k] = v;
    }
    entry
}

/// The current files at `path`: the file itself, or everything below it, and the entries
/// B2 listed there that could not be fully read. `name_missing`: B2 already answered that
/// nothing is stored under exactly the path's name (a by-name download's 404), so only
/// what is below it is listed.
pub async fn current_files(
    dest: &Destination,
    bucket_id: &str,
    path: &RemotePath,
    name_missing: bool,
) -> Result<(Vec<FileVersion>, OddEntries)> {
    let mut odd = OddEntries::default();
    let mut files: Vec<FileVersion> = FileLister::names(bucket_id, &path.dir_prefix())
        .collect_all(&dest.client)
        .await?
        .into_iter()
        .inspect(|f| odd.note(f))
        .filter(FileVersion::is_stored)
        .collect();
    if files.is_empty() && !path.relative.is_empty() && !name_missing {
        let found = list::find_file(&dest.client, bucket_id, &path.object_name).await?;
        found.iter().for_each(|f| odd.note(f));
        files.extend(found);
    }
    Ok((files, odd))
}

/// The response's entries, written as JSON page by page as B2 sends them: nothing but the
/// response grows with the listing (a page of B2's answer at a time, not every entry).
struct Entries {
    json: String,
    count: u64,
}

impl Entries {
    fn new() -> Entries {
        Entries {
            json: String::from("["),
            count: 0,
        }
    }

    fn add(&mut self, dest: &Destination, f: &FileVersion) {
        if self.count > 0 {
            self.json.push(',');
        }
        self.json.push_str(&entry(dest, f).to_string());
        self.count += 1;
    }

    fn finish(mut self) -> (String, u64) {
        self.json.push(']');
        (self.json, self.count)
    }
}

/// B2 bills listings per 1,000 entries returned, whatever the page size: pages of this
/// size cost the same as the largest while holding a tenth of the entries at a time.
const LIST_PAGE: u32 = 1_000;

pub async fn run(dest: &Destination, remote: &str) -> Result<Report> {
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Allowed)?;
    let bucket = dest.bucket().await?;
    let client = &dest.client;
    let mut odd = OddEntries::default();
    let mut entries = Entries::new();
    let prefix = path.dir_prefix();
    let mut lister = FileLister::names(&bucket.id, &prefix).starting_at(&prefix, LIST_PAGE);
    while let Some(page) = lister.next_page(client).await? {
        for f in page.iter().filter(|f| f.file_name.starts_with(&prefix)) {
            odd.note(f);
            if f.is_stored() {
                entries.add(dest, f);
            }
        }
        client.op.check_cancelled()?;
    }
    if entries.count == 0 && !path.relative.is_empty() {
        if let Some(f) = list::find_file(client, &bucket.id, &path.object_name).await? {
            odd.note(&f);
            entries.add(dest, &f);
        }
    }
    let (json, count) = entries.finish();
    let mut report = Report::with(json!({"remote_path": path.relative, "count": count}));
    report.raw_field = Some(("entries", json));
    odd.warn(&mut report, "those taken as stored files are listed");
    Ok(report)
}
