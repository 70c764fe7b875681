//! `dest_validate`: every check a hosting admin needs before trusting the destination.

mod object_lock;

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::{usage, Destination, Report};
use crate::b2::calls::DeleteFileVersion;
use crate::b2::download::DownloadJob;
use crate::b2::list::{self, FileLister};
use crate::b2::session::BucketInfo;
use crate::b2::upload::UploadJob;
use crate::error::{Error, Result};
use crate::local::file::LocalFile;

const NEEDED_CAPABILITIES: &[&str] = &["listFiles", "readFiles", "writeFiles", "deleteFiles"];
const READ_ONLY_CAPABILITIES: &[&str] = &["listFiles", "readFiles"];

struct Checks {
    list: Vec<Value>,
    failure: Option<Error>,
}

impl Checks {
    fn pass(&mut self, name: &str, message: impl Into<String>) {
        self.list
            .push(json!({"name": name, "ok": true, "message": message.into()}));
    }

    fn fail(&mut self, name: &str, error: Error) {
        self.list
            .push(json!({"name": name, "ok": false, "message": error.to_string()}));
        self.failure.get_or_insert(error);
    }
}

pub async fn run(dest: &Destination) -> Result<Report> {
    let mut checks = Checks {
        list: Vec::new(),
        failure: None,
    };
    let mut warnings = Vec::new();
    let bucket = run_checks(dest, &mut checks, &mut warnings).await?;
    let encryption = encryption_report(dest, bucket.as_ref());
    if let Some(bucket) = bucket {
        if dest.config.free_disk_space_limit > 0 {
            match usage::measure(dest, &bucket.id).await {
                Ok(u) if usage::limit_reached(dest, u.used_bytes) => warnings.push(format!(
                    "the free disk space limit is already reached ({} bytes used of {}): backups will be refused until old ones are deleted",
                    u.used_bytes,
                    dest.config.quota_bytes.unwrap_or(0)
                )),
                Ok(_) => {}
                Err(e) => warnings.push(format!("could not measure the space used: {e}")),
            }
        }
    }
    let ok = checks.failure.is_none();
    Ok(Report {
        fields: json!({"valid": ok, "checks": checks.list, "encryption": encryption})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        warnings,
        failure: checks.failure,
        ..Report::default()
    })
}

/// Runs the checks in order; a check that fails stops the ones that depend on it.
async fn run_checks(
    dest: &Destination,
    checks: &mut Checks,
    warnings: &mut Vec<String>,
) -> Result<Option<BucketInfo>> {
    let client = &dest.client;
    let auth = match client.authorization().await {
        Ok(a) => a,
        Err(e @ (Error::Cancelled | Error::Internal(_))) => return Err(e),
        Err(e) => {
            checks.fail("authorize", e);
            return Ok(None);
        }
    };
    checks.pass(
        "authorize",
        "B2 accepted the Account ID and Application Key",
    );

    let needed = if dest.config.read_only {
        READ_ONLY_CAPABILITIES
    } else {
        NEEDED_CAPABILITIES
    };
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| !auth.has_capability(c))
        .collect();
    let lock_caps = object_lock::capabilities(dest, &auth, checks);
    if missing.is_empty() {
        checks.pass("capabilities", format!("the key has {}", needed.join(", ")));
    } else {
        checks.fail(
            "capabilities",
            Error::Permission(format!(
                "the application key lacks the capabilities {}: create a key with {} on this bucket",
                missing.join(", "),
                needed.join(", ")
            )),
        );
    }

    let mut access_ok = true;
    if let Some(buckets) = &auth.allowed.buckets {
        if !buckets
            .iter()
            .any(|b| b.name.as_deref() == Some(dest.config.bucket.as_str()))
        {
            access_ok = false;
            let names: Vec<&str> = buckets.iter().filter_map(|b| b.name.as_deref()).collect();
            checks.fail(
                "bucket_access",
                Error::Permission(format!(
                    "the application key is restricted to bucket(s) {} and may not use bucket \"{}\": use a key for this bucket",
                    names.join(", "),
                    dest.config.bucket
                )),
            );
        }
    }
    if let Some(prefix) = auth
        .allowed
        .name_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let dir = dest.directory_prefix();
        if !dir.starts_with(prefix) {
            access_ok = false;
            checks.fail(
                "bucket_access",
                Error::Permission(format!(
                    "the application key is restricted to file names starting with \"{prefix}\", but the backup directory is \"{}\": set the Backup Directory inside \"{prefix}\" or use another key",
                    dest.config.backup_directory
                )),
            );
        }
    }
    if access_ok {
        checks.pass(
            "bucket_access",
            "the key may use this bucket and backup directory",
        );
    } else {
        return Ok(None);
    }

    let bucket = match client.bucket_now(&dest.config.bucket).await {
        Ok(b) => b,
        Err(e @ (Error::Cancelled | Error::Internal(_))) => return Err(e),
        Err(e) => {
            checks.fail("bucket_exists", e);
            return Ok(None);
        }
    };
    checks.pass(
        "bucket_exists",
        format!("bucket \"{}\" exists", bucket.name),
    );
    bucket_warnings(dest, &bucket, warnings);
    let bucket_lock = object_lock::bucket(dest, &bucket, checks, warnings);

    if !missing.is_empty() || !lock_caps || checks.failure.is_some() {
        return Ok(Some(bucket));
    }
    // Settings an upload or download would refuse fail here, before anything is sent.
    if let Err(e) = dest.part_size_under(&auth) {
        checks.fail("probe", e);
        return Ok(Some(bucket));
    }
    if dest.config.read_only {
        match FileLister::names(&bucket.id, &dest.directory_prefix())
            .starting_at(&dest.directory_prefix(), 1)
            .next_page(client)
            .await
        {
            Ok(_) => checks.pass(
                "probe",
                "listing the backup directory works (read-only destination: nothing was written)",
            ),
            Err(e @ Error::Cancelled) => return Err(e),
            Err(e) => checks.fail("probe", e),
        }
        return Ok(Some(bucket));
    }
    let retention = object_lock::probe_retention(dest, &bucket_lock, &auth);
    match probe(dest, &bucket, retention).await {
        Ok(None) => checks.pass(
            "probe",
            match dest.client.encryption.key_md5() {
                Some(md5) => format!("a probe file was written with SSE-C (customer key MD5 {md5}), read back identical with that key and deleted"),
                None => format!(
                    "a probe file was written ({}), read back identical and deleted",
                    match dest.client.encryption.mode_name() {
                        "SSE-B2" => "encrypted with SSE-B2",
                        _ => "with the bucket's default encryption",
                    }
                ),
            },
        ),
        Ok(Some(r)) => checks.pass(
            "probe",
            format!(
                "a probe file was written with {} retention until {} ms, B2 holds it and refused to delete it; it is left locked for that minute and the next validate removes it",
                r.mode.as_str(),
                r.retain_until_timestamp
            ),
        ),
        Err(e @ Error::Cancelled) => return Err(e),
        Err(e) => checks.fail("probe", e),
    }
    Ok(Some(bucket))
}

/// How this destination's files are encrypted: the configured mode, the customer key's
/// MD5 (never the key), and the bucket's own default (`unknown` when the key may not read
/// it, or the bucket could not be looked up).
fn encryption_report(dest: &Destination, bucket: Option<&BucketInfo>) -> Value {
    let bucket_default = bucket
        .and_then(|b| b.details.as_ref())
        .and_then(|d| d.default_encryption())
        .unwrap_or("unknown");
    json!({
        "mode": dest.client.encryption.mode_name(),
        "customer_key_md5": dest.client.encryption.key_md5(),
        "bucket_default": bucket_default,
    })
}

fn bucket_warnings(dest: &Destination, bucket: &BucketInfo, warnings: &mut Vec<String>) {
    let Some(details) = &bucket.details else {
        warnings.push("the key may not list buckets, so the bucket's privacy and lifecycle settings could not be checked".into());
        return;
    };
    if details.bucket_type == "allPublic" {
        warnings.push(format!(
            "bucket \"{}\" is public: anyone who knows a file's name can download your backups; make it private",
            bucket.name
        ));
    }
    let dir = dest.directory_prefix();
    let applies = |prefix: &str| dir.starts_with(prefix);
    let keeps_last_only = details
        .lifecycle_rules
        .iter()
        .any(|r| applies(&r.file_name_prefix) && r.days_from_hiding_to_deleting.is_some());
    if !keeps_last_only {
        warnings.push(format!(
            "bucket \"{}\" keeps all versions of each file: a backup replaced or hidden outside this plugin keeps costing storage; set its lifecycle settings to \"Keep only the last version\"",
            bucket.name
        ));
    }
    if let Some(days) = details
        .lifecycle_rules
        .iter()
        .filter(|r| applies(&r.file_name_prefix))
        .find_map(|r| r.days_from_uploading_to_hiding)
    {
        warnings.push(format!(
            "a lifecycle rule of bucket \"{}\" hides files {days} days after upload: backups older than that will disappear",
            bucket.name
        ));
    }
}

/// Writes a small file under the backup directory, reads it back, compares, deletes it.
/// With a retention, B2 must hold it and refuse the delete: the probe stays for its
/// minute (the answer is that retention), and earlier probes whose minute is over go.
async fn probe(
    dest: &Destination,
    bucket: &BucketInfo,
    retention: Option<crate::b2::object_lock::Retention>,
) -> Result<Option<crate::b2::object_lock::Retention>> {
    let client = &dest.client;
    if retention.is_some() {
        object_lock::sweep_old_probes(dest, bucket).await?;
    }
    let scratch = tempfile_dir()?;
    let token = format!("{:016x}", fastrand::u64(..));
    let content = format!("b2dest validation probe {token}\n").repeat(64);
    let local = scratch.path.join("probe");
    std::fs::write(&local, &content).map_err(|e| Error::local_io("could not write", &local, &e))?;
    let name = format!(
        "{}{}{token}",
        dest.directory_prefix(),
        object_lock::PROBE_PREFIX
    );
    let file = LocalFile::open(&local)?;
    let slots = Arc::new(Semaphore::new(1));
    let uploaded = UploadJob {
        client,
        bucket_id: &bucket.id,
        object_name: &name,
        file: &file,
        slots: &slots,
        concurrency: 1,
        part_size: crate::b2::MAX_PART_SIZE,
        resume_window: dest.client.session.resume_window,
        retention,
        kept: None,
    }
    .run()
    .await;
    let checked = match uploaded {
        Ok(_) => {
            read_back(
                dest,
                bucket,
                &name,
                &scratch.path.join("back"),
                content.as_bytes(),
                retention.as_ref(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let cleaned = delete_all_versions(dest, bucket, &name).await;
    checked?;
    match (cleaned?, retention) {
        (true, Some(r)) => Ok(Some(r)),
        (false, None) => Ok(None),
        (true, None) => Err(Error::Locked(format!(
            "the probe file {name} was written without a retention, yet B2 refused to delete it: the bucket locks new files (a default retention or legal hold); set \"object_lock\" on this destination"
        ))),
        (false, Some(r)) => Err(Error::Remote {
            message: format!(
                "the probe file was written with {} retention until {}, yet B2 deleted it at once: the lock is not being kept",
                r.mode.as_str(),
                r.retain_until_timestamp
            ),
            retryable: false,
        }),
    }
}

async fn read_back(
    dest: &Destination,
    bucket: &BucketInfo,
    name: &str,
    local: &std::path::Path,
    expected: &[u8],
    retention: Option<&crate::b2::object_lock::Retention>,
) -> Result<()> {
    let version = list::find_file(&dest.client, &bucket.id, name)
        .await?
        .ok_or_else(|| Error::Remote {
            message: "the probe file was uploaded but B2 does not list it".into(),
            retryable: true,
        })?;
    if let Some(wanted) = retention {
        object_lock::check_probe_retention(&version, wanted)?;
    }
    // The library's own private scratch directory, named once.
    let scratch = local.parent().unwrap_or(std::path::Path::new("."));
    let dir = std::sync::Arc::new(
        crate::local::Dir::open_named(scratch)
            .map_err(|e| Error::local_io("could not open", scratch, &e))?,
    );
    DownloadJob {
        client: &dest.client,
        version: &version,
        dir: &dir,
        name: local.file_name().unwrap_or_default(),
        concurrency: 1,
        range_size: u64::MAX,
        opening: None,
    }
    .run()
    .await?;
    let back = std::fs::read(local).map_err(|e| Error::local_io("could not read", local, &e))?;
    if back != expected {
        return Err(Error::Integrity(
            "the probe file read back from B2 differs from what was written".into(),
        ));
    }
    Ok(())
}

/// Deletes every version of `name`; true when Object Lock kept one.
async fn delete_all_versions(dest: &Destination, bucket: &BucketInfo, name: &str) -> Result<bool> {
    let client = dest.client.detached();
    let versions = FileLister::versions(&bucket.id, name)
        .starting_at(name, 100)
        .collect_all(&client)
        .await?;
    let mut held = false;
    for v in versions.iter().filter(|v| v.file_name == name) {
        match client
            .delete_file_version(&DeleteFileVersion::of(v))
            .await
            .result
        {
            Ok(_) => {}
            Err(Error::Locked(_)) => held = true,
            Err(e) => {
                return Err(Error::Permission(format!(
                    "the probe file could not be deleted ({e}); the key needs deleteFiles"
                )))
            }
        }
    }
    Ok(held)
}

/// A private scratch directory removed when dropped.
struct ScratchDir {
    path: std::path::PathBuf,
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempfile_dir() -> Result<ScratchDir> {
    let path = std::env::temp_dir().join(format!(
        "b2dest-probe-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    // 0700 whatever the umask, and never an existing name (a random one in a sticky temp
    // directory): nobody but this user can plant a link in it while the probe runs.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&path)
        .map_err(|e| Error::local_io("could not create", &path, &e))?;
    Ok(ScratchDir { path })
}
