//! Exactly one version per upload, however slow B2 is to answer. Every attempt of a small
//! upload carries its own id in the file info (`b2dest_attempt`: the upload's random
//! family, a dot, the attempt's number; a large file's start carries it too); a request
//! given up for a stall after its whole body went out is not dropped but heard out
//! (`LateAnswer`), and once the upload is settled every other version (or started large
//! file) an attempt of the same upload made is removed.

use std::time::Duration;

use super::retention::delete_version;
use super::unfinished::cancel_large_file;
use super::UploadJob;
use crate::b2::api::FileVersion;
use crate::b2::late::LateAnswer;
use crate::b2::list::{self, FileLister};
use crate::error::Result;
use crate::operation::LogLevel;

/// The file info key that names the attempt that stored a version.
pub(super) const ATTEMPT_INFO: &str = "b2dest_attempt";

/// How long after it was sent a stalled attempt's answer is waited for, once the upload
/// has settled: B2 may hold its whole body and store it still. A request that B2 never
/// answers (a link gone dead after the body went into the socket) costs this wait.
pub(super) const LATE_ANSWER_WAIT: Duration = Duration::from_secs(5 * 60);

/// A new upload's attempt family: random, so no other upload (here or elsewhere) shares it.
pub(super) fn new_family() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The id of attempt `n` of `family`.
pub(super) fn attempt_id(family: &str, n: u32) -> String {
    format!("{family}.{n}")
}

/// Whether `version` was stored by an attempt of `family`.
pub(super) fn of_family(version: &FileVersion, family: &str) -> bool {
    version
        .file_info
        .get(ATTEMPT_INFO)
        .and_then(|id| id.split_once('.'))
        .is_some_and(|(f, _)| f == family)
}

/// Versions of a name listed to find those of one attempt family: more than a name ever
/// gets from one upload's attempts.
const FAMILY_PAGE: u32 = 100;

/// The stored versions of the job's name that attempts of `family` made, newest first.
pub(super) async fn family_versions(job: &UploadJob<'_>, family: &str) -> Result<Vec<FileVersion>> {
    let name = job.object_name;
    let mut lister = FileLister::versions(job.bucket_id, name).starting_at(name, FAMILY_PAGE);
    let page = lister.next_page(job.client).await?.unwrap_or_default();
    Ok(page
        .into_iter()
        .filter(|v| v.file_name == name && v.is_stored() && of_family(v, family))
        .collect())
}

/// Removes every version of the upload's other attempts, so that the name holds the one
/// it kept and no more: `late`, the ones stalled attempts said they stored when heard out,
/// and any B2 lists. One B2 refuses to delete (Object Lock) is told in the response.
pub(super) async fn remove_other_attempts(
    job: &UploadJob<'_>,
    family: &str,
    kept: &FileVersion,
    late: Vec<FileVersion>,
) {
    let listed = match family_versions(job, family).await {
        Ok(listed) => listed,
        Err(e) => {
            job.client.op.log(
                LogLevel::Warn,
                format!(
                    "could not list {} to remove copies that attempts whose answer was lost may have stored: {e}",
                    job.object_name
                ),
            );
            Vec::new()
        }
    };
    let mut removed: Vec<String> = vec![kept.id().to_string()];
    for other in late.into_iter().chain(listed) {
        if other.file_id.is_none() || removed.iter().any(|id| id == other.id()) {
            continue;
        }
        removed.push(other.id().to_string());
        job.client.op.log(
            LogLevel::Info,
            format!(
                "removing a second copy of {} (version {}) stored by an earlier attempt of this upload whose answer was lost or came late",
                job.object_name,
                other.id()
            ),
        );
        if let Some(mut refused) = delete_version(job.client, &other).await {
            refused.duplicate = true;
            job.kept(refused);
        }
    }
}

/// The large files a start's attempts made, heard out from `late` (starts that timed out,
/// still waiting for B2's answer) or listed, all but `ours`, are cancelled: a start B2
/// carried out after the client gave up on it must not stay behind.
pub(super) async fn cancel_other_starts(
    job: &UploadJob<'_>,
    family: &str,
    ours: Option<&str>,
    late: Vec<LateAnswer>,
) {
    let client = job.client;
    let mut others: Vec<String> = Vec::new();
    for pending in late {
        if let Ok(Some(started)) = pending
            .heard_out::<FileVersion>(&client.op, LATE_ANSWER_WAIT)
            .await
        {
            others.extend(started.file_id);
        }
    }
    match list::unfinished_large_files(client, job.bucket_id, job.object_name).await {
        Ok(listed) => others.extend(
            listed
                .iter()
                .filter(|f| of_family(f, family))
                .filter_map(|f| f.file_id.clone()),
        ),
        Err(e) => client.op.log(
            LogLevel::Warn,
            format!(
                "could not list the unfinished uploads of {} for files a lost start may have made: {e}",
                job.object_name
            ),
        ),
    }
    others.sort();
    others.dedup();
    for id in others.iter().filter(|id| Some(id.as_str()) != ours) {
        client.op.log(
            LogLevel::Info,
            format!(
                "cancelling a second large file of {} ({id}) that a start whose answer was lost or came late made",
                job.object_name
            ),
        );
        if let Err(e) =
            cancel_large_file(&client.detached(), job.bucket_id, id, job.object_name).await
        {
            client.op.log(
                LogLevel::Warn,
                format!(
                    "could not cancel the second large file of {} ({id}): {e}; a usage or delete after the resume window cancels it",
                    job.object_name
                ),
            );
        }
    }
}
