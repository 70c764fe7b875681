//! What the recovery operations share (`versions`, `restore_as_of`, `rollback`): their
//! options, the listing of every version under a path one name at a time, and which
//! version of a name was current at a time T.

use serde_json::{Map, Value};

use super::{Destination, OddEntries};
use crate::b2::api::{Action, FileVersion};
use crate::b2::list::FileLister;
use crate::error::{Error, Result};
use crate::remote_path::RemotePath;

/// The options of a recovery export (`options_json`; NULL is `{}`).
#[derive(Debug, Default, Clone)]
pub struct RecoveryOptions {
    pub as_of_ms: Option<u64>,
    pub file_id: Option<String>,
    pub dry_run: bool,
    pub remove_newer_names: bool,
}

impl RecoveryOptions {
    /// Parses `options_json`, taking only the fields in `allowed`: anything else, a wrong
    /// type, a time in the future or both `as_of_ms` and `file_id` is refused, naming it.
    pub fn parse(text: Option<&str>, allowed: &[&str], now_ms: u64) -> Result<RecoveryOptions> {
        let bad = |m: String| Error::InvalidArgument(format!("options_json: {m}"));
        let map: Map<String, Value> = match text.map(str::trim) {
            None | Some("") => Map::new(),
            Some(t) => match serde_json::from_str::<Value>(t) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(bad("must be a JSON object".into())),
                Err(e) => return Err(bad(format!("is not JSON ({e})"))),
            },
        };
        let mut o = RecoveryOptions::default();
        for (k, v) in &map {
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!(
                    "field \"{k}\" is not known here (allowed: {})",
                    allowed.join(", ")
                )));
            }
            let flag = |v: &Value| {
                v.as_bool()
                    .ok_or_else(|| bad(format!("field \"{k}\" must be true or false")))
            };
            match k.as_str() {
                "as_of_ms" => {
                    let t = v.as_u64().ok_or_else(|| {
                        bad(
                            "field \"as_of_ms\" must be a whole number of milliseconds since 1970"
                                .into(),
                        )
                    })?;
                    if t > now_ms {
                        return Err(bad(format!(
                            "field \"as_of_ms\" ({t}) is in the future (now is {now_ms})"
                        )));
                    }
                    o.as_of_ms = Some(t);
                }
                "file_id" => match v.as_str() {
                    Some(id) if !id.is_empty() => o.file_id = Some(id.to_string()),
                    _ => return Err(bad("field \"file_id\" must be a non-empty string".into())),
                },
                "dry_run" => o.dry_run = flag(v)?,
                "remove_newer_names" => o.remove_newer_names = flag(v)?,
                _ => {}
            }
        }
        if o.as_of_ms.is_some() && o.file_id.is_some() {
            return Err(bad(
                "give either field \"as_of_ms\" or field \"file_id\", not both".into(),
            ));
        }
        Ok(o)
    }

    /// A restore needs `as_of_ms` or `file_id`.
    pub fn require_version_choice(&self) -> Result<()> {
        if self.as_of_ms.is_none() && self.file_id.is_none() {
            return Err(Error::InvalidArgument(
                "options_json: give field \"as_of_ms\" or field \"file_id\"".into(),
            ));
        }
        Ok(())
    }

    /// `as_of_ms`, required.
    pub fn require_as_of(&self) -> Result<u64> {
        self.as_of_ms.ok_or_else(|| {
            Error::InvalidArgument("options_json: field \"as_of_ms\" is required".into())
        })
    }
}

/// B2 bills listings per 1,000 entries returned: a page of this size costs the same as
/// the largest and holds a tenth of the entries.
const LIST_PAGE: u32 = 1_000;

/// Whether `name` is what `path` names: the file itself or something below it.
pub fn under(path: &RemotePath, name: &str) -> bool {
    let prefix = path.dir_prefix();
    if path.relative.is_empty() {
        name.starts_with(&prefix)
    } else {
        name == path.object_name || name.starts_with(&prefix)
    }
}

/// Lists every version under `path`, page by page, and hands `each` the versions of one
/// name at a time, newest first: what is held is one page and one name's versions.
pub async fn for_each_name(
    dest: &Destination,
    bucket_id: &str,
    path: &RemotePath,
    mut each: impl FnMut(Vec<FileVersion>) -> Result<()>,
) -> Result<OddEntries> {
    let client = &dest.client;
    let mut odd = OddEntries::default();
    let start = if path.relative.is_empty() {
        path.dir_prefix()
    } else {
        path.object_name.clone()
    };
    let mut lister = FileLister::versions(bucket_id, &start).starting_at(&start, LIST_PAGE);
    let mut group: Vec<FileVersion> = Vec::new();
    while let Some(page) = lister.next_page(client).await? {
        for f in page.into_iter().filter(|f| under(path, &f.file_name)) {
            odd.note(&f);
            if group.first().is_some_and(|g| g.file_name != f.file_name) {
                each(newest_first(std::mem::take(&mut group)))?;
            }
            group.push(f);
        }
        client.op.check_cancelled()?;
    }
    if !group.is_empty() {
        each(newest_first(group))?;
    }
    Ok(odd)
}

/// B2 lists a name's versions newest first; sorted again so that nothing depends on it.
fn newest_first(mut versions: Vec<FileVersion>) -> Vec<FileVersion> {
    versions.sort_by_key(|v| std::cmp::Reverse(v.uploaded_ms()));
    versions
}

/// What a name was at T, from its versions newest first: the index of the version that
/// decided it (the newest at or before T that is not an unfinished large file), and
/// whether that one is a stored file (else the name was hidden at T). None: the name did
/// not exist at T.
pub fn decider_at(versions: &[FileVersion], t: u64) -> Option<(usize, bool)> {
    versions
        .iter()
        .position(|v| v.uploaded_ms() <= t && v.action != Action::Start)
        .map(|i| (i, versions[i].is_stored()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 2_000_000_000_000;
    const ALL: &[&str] = &["as_of_ms", "file_id", "dry_run"];

    fn err(text: &str) -> String {
        RecoveryOptions::parse(Some(text), ALL, NOW)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        assert!(RecoveryOptions::parse(None, ALL, NOW)
            .unwrap()
            .as_of_ms
            .is_none());
        assert!(err("not json").contains("not JSON"));
        assert!(err("[1]").contains("JSON object"));
        assert!(err(r#"{"as_of_ms": "yesterday"}"#).contains("as_of_ms"));
        assert!(err(r#"{"as_of_ms": 3000000000000}"#).contains("future"));
        assert!(err(r#"{"as_of_ms": 1, "file_id": "x"}"#).contains("not both"));
        assert!(err(r#"{"dry_run": "yes"}"#).contains("dry_run"));
        assert!(err(r#"{"remove_newer_names": true}"#).contains("remove_newer_names"));
        let o =
            RecoveryOptions::parse(Some(r#"{"as_of_ms": 5, "dry_run": true}"#), ALL, NOW).unwrap();
        assert_eq!((o.as_of_ms, o.dry_run), (Some(5), true));
    }

    #[test]
    fn the_decider_is_the_newest_non_start_version_at_or_before_t() {
        let v = |id: &str, action: Action, ts: u64| {
            let mut f = FileVersion::new(id, "a", action, 1);
            f.upload_timestamp = Some(ts);
            f
        };
        let versions = vec![
            v("4", Action::Upload, 40),
            v("3", Action::Hide, 30),
            v("2", Action::Start, 20),
            v("1", Action::Upload, 10),
        ];
        assert_eq!(decider_at(&versions, 25), Some((3, true)));
        assert_eq!(decider_at(&versions, 30), Some((1, false)));
        assert_eq!(decider_at(&versions, 45), Some((0, true)));
        assert_eq!(decider_at(&versions, 5), None);
    }
}
