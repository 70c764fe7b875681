//! `dest_rollback`: makes what is current under a path what was current at T. Per name,
//! the versions newer than T that may be deleted are deleted (hide markers included);
//! where a newer version is held by Object Lock, the version from T is made current again
//! by a server-side copy (b2_copy_file) carrying the destination's own retention. Nothing
//! uploaded at or before T is ever deleted. A newer version with the same content as the
//! one from T (an earlier rollback's copy) is kept, so a second rollback does nothing.

use serde_json::{json, Value};

use super::recovery::{decider_at, for_each_name, RecoveryOptions};
use super::{Destination, Report};
use crate::b2::api::{Action, FileVersion};
use crate::b2::calls::{CopyFile, DeleteFileVersion, HideFile};
use crate::b2::wire::now_ms;
use crate::config::Encryption;
use crate::error::{Error, Result};
use crate::remote_path::{relative_to, EmptyPath, RemotePath};

/// B2's largest result of one b2_copy_file.
const MAX_COPY: u64 = 5_000_000_000;

/// What is to be done with one name.
struct NamePlan {
    /// The version current at T; None: the name was hidden or absent then.
    target: Option<FileVersion>,
    /// Newer than T, in order newest first, each with what is planned for it.
    newer: Vec<(FileVersion, Plan)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    Delete,
    /// Held by Object Lock (as far as the key can read): left in place.
    Locked,
    /// Same content as the version from T, by the SHA1 B2 computed: already what T had.
    Keep,
    /// Claims the content of the version from T only by a SHA1 its uploader wrote
    /// (`large_file_sha1`, which B2 never checks: an attacker holding the key can copy the
    /// original's): kept, as an earlier rollback's copy of a large file is, but named in
    /// the report and a warning, since it may be garbage dressed as the backup.
    KeepClaimed,
}

fn same_content(a: &FileVersion, b: &FileVersion) -> Option<Plan> {
    if !a.is_stored() || a.length() != b.length() {
        return None;
    }
    match (a.sha1_by_b2(), b.sha1_by_b2()) {
        (Some(x), Some(y)) => (x == y).then_some(Plan::Keep),
        _ => (a.whole_sha1().is_some() && a.whole_sha1() == b.whole_sha1())
            .then_some(Plan::KeepClaimed),
    }
}

/// Why a name is left alone: one of its versions B2 listed in a shape the library cannot
/// fully read (no id, no time, an action it does not know), so nothing is decided on a
/// guess.
fn unreadable(versions: &[FileVersion]) -> Option<String> {
    versions.iter().find_map(|v| {
        v.unreadable().or_else(|| {
            v.upload_timestamp
                .is_none()
                .then(|| format!("{} has a version B2 gave no upload time for", v.file_name))
        })
    })
}

fn plan_name(versions: Vec<FileVersion>, t: u64, now: u64, remove_newer: bool) -> Option<NamePlan> {
    let target = match decider_at(&versions, t) {
        Some((i, true)) => Some(versions[i].clone()),
        _ if !remove_newer => return None,
        _ => None,
    };
    let mut newer: Vec<(FileVersion, Plan)> = versions
        .into_iter()
        .filter(|v| v.uploaded_ms() > t && v.action != Action::Start)
        .map(|v| {
            let plan = if let Some(keep) = target.as_ref().and_then(|t| same_content(&v, t)) {
                keep
            } else if v.lock().held(now).is_some() {
                Plan::Locked
            } else {
                Plan::Delete
            };
            (v, plan)
        })
        .collect();
    // A name to be absent that keeps a locked upload stays hidden by its newest hide
    // marker, if that is on top: deleting it only to hide again would never settle.
    if target.is_none()
        && newer
            .iter()
            .any(|(v, p)| *p == Plan::Locked && v.is_stored())
    {
        if let Some((v, p)) = newer.first_mut() {
            if v.action == Action::Hide {
                *p = Plan::Keep;
            }
        }
    }
    (!newer.is_empty()).then_some(NamePlan { target, newer })
}

/// What follows the deletes: a copy of the target, a hide, or nothing. `newest` is the
/// newest version left newer than T.
fn follow_up(target: Option<&FileVersion>, newest: Option<(&FileVersion, Plan)>) -> Option<Action> {
    match (target, newest) {
        (_, None) | (Some(_), Some((_, Plan::Keep | Plan::KeepClaimed))) => None,
        (Some(_), Some(_)) => Some(Action::Upload),
        (None, Some((v, _))) if v.is_stored() => Some(Action::Hide),
        (None, Some(_)) => None,
    }
}

struct Tally {
    actions: Vec<Value>,
    deleted: u64,
    deleted_bytes: u64,
    copied: u64,
    copied_bytes: u64,
    hidden: u64,
    locked_left: u64,
    unreadable_locks: u64,
    kept_unverified: Vec<String>,
}

pub async fn run(dest: &Destination, remote: &str, options: &RecoveryOptions) -> Result<Report> {
    dest.check_writable("roll back")?;
    let t = options.require_as_of()?;
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Allowed)?;
    let bucket = dest.bucket().await?;
    // Copies carry the destination's retention from now: a clock far from B2's would lock
    // them too long or too short, as it would an upload (checked the same way).
    if dest.object_lock().is_some() {
        super::object_lock::check_clock(dest, &bucket).await?;
    }
    let now = now_ms();
    let (mut plans, mut names) = (Vec::new(), 0u64);
    let mut skipped: Vec<String> = Vec::new();
    let odd = for_each_name(dest, &bucket.id, &path, |versions| {
        names += 1;
        match unreadable(&versions) {
            Some(why) => skipped.push(why),
            None => plans.extend(plan_name(versions, t, now, options.remove_newer_names)),
        }
        Ok(())
    })
    .await?;
    let mut tally = Tally {
        actions: Vec::new(),
        deleted: 0,
        deleted_bytes: 0,
        copied: 0,
        copied_bytes: 0,
        hidden: 0,
        locked_left: 0,
        unreadable_locks: 0,
        kept_unverified: Vec::new(),
    };
    let mut failure = None;
    for plan in plans {
        if let Err(e) = apply(dest, &bucket.id, plan, options.dry_run, now, &mut tally).await {
            failure = Some(e);
            break;
        }
        if let Err(e) = dest.client.op.check_cancelled() {
            failure = Some(e);
            break;
        }
    }
    let mut report = Report::with(json!({
        "remote_path": path.relative, "as_of_ms": t, "dry_run": options.dry_run,
        "names": names, "deleted_versions": tally.deleted, "deleted_bytes": tally.deleted_bytes,
        "copied_files": tally.copied, "copied_bytes": tally.copied_bytes,
        "hidden_files": tally.hidden, "locked_versions_left": tally.locked_left,
        "skipped_names": skipped.len(), "actions": tally.actions,
    }));
    if !skipped.is_empty() {
        report.warnings.push(format!(
            "{} name(s) were left as they are, since B2 listed a version of them that could not be fully read ({}): roll them back by hand (dest_list_versions shows them; dest_download_as_of with a file_id restores one)",
            skipped.len(),
            skipped.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if !tally.kept_unverified.is_empty() {
        report.warnings.push(format!(
            "{} newer version(s) were kept because they claim the content of the version from T by large_file_sha1, which their uploader writes and B2 never checks ({}): if this rollback did not make them, restore each (a restore checks that SHA1; a failure means it is not the backup) or restore as of T",
            tally.kept_unverified.len(),
            tally.kept_unverified.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if tally.unreadable_locks > 0 {
        report.warnings.push(format!(
            "{} newer version(s) had a retention this key may not read (no readFileRetentions): they are planned as deletes; B2 may refuse some, and the version from T is then copied instead",
            tally.unreadable_locks
        ));
    }
    odd.warn(&mut report, "they were treated by what B2 said of them");
    report.failure = failure;
    Ok(report)
}

fn relative(dest: &Destination, name: &str) -> String {
    relative_to(name, &dest.config.backup_directory).unwrap_or_else(|| name.to_string())
}

async fn apply(
    dest: &Destination,
    bucket_id: &str,
    mut plan: NamePlan,
    dry_run: bool,
    now: u64,
    tally: &mut Tally,
) -> Result<()> {
    let client = &dest.client;
    for (v, p) in plan.newer.iter_mut() {
        let entry = json!({"action": "delete", "remote_path": relative(dest, &v.file_name),
            "file_id": v.id(), "kind": v.action.as_str(), "upload_ms": v.upload_timestamp, "size": v.bytes()});
        match *p {
            Plan::Delete => {
                if v.lock().retention.is_none() && v.is_stored() {
                    tally.unreadable_locks += 1;
                }
                if !dry_run {
                    let called = client.delete_file_version(&DeleteFileVersion::of(v)).await;
                    match called.result {
                        Ok(_) | Err(Error::NotFound(_)) => {}
                        // Held although the key could not read it so.
                        Err(Error::Locked(_)) => {
                            *p = Plan::Locked;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if *p == Plan::Delete {
                    tally.deleted += 1;
                    tally.deleted_bytes += v.bytes();
                    tally.actions.push(entry.clone());
                }
            }
            Plan::KeepClaimed => {
                let mut e = entry.clone();
                e["action"] = json!("kept_unverified");
                tally.actions.push(e);
                tally.kept_unverified.push(relative(dest, &v.file_name));
            }
            Plan::Locked | Plan::Keep => {}
        }
        if *p == Plan::Locked {
            tally.locked_left += 1;
            let mut e = entry;
            e["action"] = json!("left_locked");
            e["retain_until_ms"] = json!(v
                .lock()
                .active_retention(now)
                .map(|r| r.retain_until_timestamp));
            tally.actions.push(e);
        }
    }
    let newest = plan
        .newer
        .iter()
        .find(|(_, p)| *p != Plan::Delete)
        .map(|(v, p)| (v, *p));
    match follow_up(plan.target.as_ref(), newest) {
        Some(Action::Upload) => {
            let target = plan.target.as_ref().expect("a copy has a target");
            copy(dest, target, dry_run, now, tally).await
        }
        Some(_) => {
            let (v, _) = newest.expect("a hide has a newest version");
            let mut new_id = Value::Null;
            if !dry_run {
                let hidden = client
                    .hide_file(&HideFile {
                        bucket_id,
                        file_name: &v.file_name,
                    })
                    .await?;
                new_id = json!(hidden.id());
            }
            tally.hidden += 1;
            tally.actions.push(
                json!({"action": "hide", "remote_path": relative(dest, &v.file_name),
                "hidden_file_id": v.id(), "file_id": new_id}),
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// Makes `target` current again by a server-side copy under its own name.
async fn copy(
    dest: &Destination,
    target: &FileVersion,
    dry_run: bool,
    now: u64,
    tally: &mut Tally,
) -> Result<()> {
    let client = &dest.client;
    let name = relative(dest, &target.file_name);
    if target.bytes() > MAX_COPY {
        return Err(Error::InvalidArgument(format!(
            "{name} is {} bytes: a copy over 5 GB needs b2_copy_part, which rollback does not do yet; restore it with dest_download_as_of and upload it",
            target.bytes()
        )));
    }
    let retention = dest.object_lock().map(|l| l.retention_from(now));
    let mut new_id = Value::Null;
    if !dry_run {
        // An SSE-C source is read with the destination's key; the copy is written as an
        // upload would be.
        let source_key = match (&client.encryption, target.encryption_mode()) {
            (Encryption::SseC(_), Some("SSE-C")) => client.encryption.start_json(),
            _ => None,
        };
        let copied = client
            .copy_file(&CopyFile {
                source_file_id: target.id(),
                file_name: &target.file_name,
                file_retention: retention.as_ref(),
                source_server_side_encryption: source_key,
                destination_server_side_encryption: client.encryption.start_json(),
            })
            .await?;
        new_id = json!(copied.id());
    }
    tally.copied += 1;
    tally.copied_bytes += target.bytes();
    tally.actions.push(
        json!({"action": "copy", "remote_path": name, "source_file_id": target.id(),
        "source_upload_ms": target.upload_timestamp, "file_id": new_id, "size": target.bytes(),
        "retain_until_ms": retention.map(|r| r.retain_until_timestamp)}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "0123456789abcdef0123456789abcdef01234567";

    fn upload(id: &str, at: u64, content_sha1: &str, info_sha1: Option<&str>) -> FileVersion {
        let mut v = FileVersion::new(id, "db.tar", Action::Upload, 10);
        v.upload_timestamp = Some(at);
        v.content_sha1 = Some(content_sha1.to_string());
        if let Some(s) = info_sha1 {
            v.file_info
                .insert("large_file_sha1".to_string(), s.to_string());
        }
        v
    }

    fn plan_of_newest(newer: FileVersion) -> Plan {
        let versions = vec![newer, upload("old", 100, ORIGINAL, None)];
        let plan = plan_name(versions, 150, 1_000, false).expect("a version newer than T");
        plan.newer[0].1
    }

    #[test]
    fn only_a_sha1_b2_computed_proves_a_newer_version_is_the_backup() {
        // B2's own SHA1 of the bytes: the same content, kept silently.
        assert!(matches!(
            plan_of_newest(upload("copy", 200, ORIGINAL, None)),
            Plan::Keep
        ));
        // The same SHA1 claimed only by large_file_sha1, which the uploader writes: kept
        // (an earlier rollback's copy of a large file looks so) but named as unverified.
        assert!(matches!(
            plan_of_newest(upload("forged", 200, "none", Some(ORIGINAL))),
            Plan::KeepClaimed
        ));
        assert!(matches!(
            plan_of_newest(upload(
                "forged",
                200,
                &format!("unverified:{ORIGINAL}"),
                None
            )),
            Plan::KeepClaimed
        ));
        // Other bytes, unlocked: deleted.
        assert!(matches!(
            plan_of_newest(upload("garbage", 200, &"f".repeat(40), None)),
            Plan::Delete
        ));
    }

    #[test]
    fn a_name_with_a_version_that_cannot_be_fully_read_is_left_alone() {
        let mut undated = upload("x", 200, ORIGINAL, None);
        undated.upload_timestamp = None;
        assert!(unreadable(&[undated, upload("old", 100, ORIGINAL, None)]).is_some());
        let mut odd = upload("y", 200, ORIGINAL, None);
        odd.action = Action::Other("copy".to_string());
        assert!(unreadable(&[odd]).is_some());
        assert!(unreadable(&[upload("old", 100, ORIGINAL, None)]).is_none());
    }
}
