//! Object Lock in the store: the rules that decide, under the store's lock, whether a version may be
//! deleted or its retention changed. The wire shapes are in `api/retention.rs`.

use super::journal::Record;
use super::model::{now_millis, Action, BucketLock, LockMode, Retention, Version, VersionLock};
use super::Store;
use crate::error::{B2Error, B2Result};

/// B2's answer to a change or delete Object Lock forbids (b2sdk maps 403 `access_denied`
/// to its `AccessDenied`, and its simulator raises that for locked deletes).
pub fn access_denied(message: impl Into<String>) -> B2Error {
    B2Error::new(403, "access_denied", message)
}

/// Whether `v` may be deleted at `now`; `bypass`: the call asked for `bypassGovernance`
/// and its key has the capability.
pub fn check_delete(v: &Version, bypass: bool, now: u64) -> B2Result<()> {
    // An unfinished large file is not a file yet: deleting it is a cancel.
    if v.action == Action::Start {
        return Ok(());
    }
    if v.lock.legal_hold == Some(true) {
        return Err(access_denied(format!(
            "file version {} {} is under a legal hold and cannot be deleted",
            v.name,
            v.file_id()
        )));
    }
    match v.lock.active_retention(now) {
        Some(r) if r.mode == LockMode::Compliance || !bypass => Err(access_denied(format!(
            "file version {} {} is under {} retention until {} and cannot be deleted",
            v.name,
            v.file_id(),
            r.mode.as_str(),
            r.retain_until
        ))),
        _ => Ok(()),
    }
}

/// Whether the retention of `v` may become `new` at `now` (see b2_update_file_retention).
pub fn check_retention_change(
    v: &Version,
    new: Option<Retention>,
    bypass: bool,
    now: u64,
) -> B2Result<()> {
    if let Some(n) = new {
        if n.retain_until <= now {
            return Err(B2Error::bad_request(
                "retainUntilTimestamp must be in the future",
            ));
        }
    }
    let Some(cur) = v.lock.active_retention(now) else {
        return Ok(());
    };
    let shortened = match new {
        None => true,
        Some(n) => n.retain_until < cur.retain_until,
    };
    match cur.mode {
        LockMode::Compliance => {
            if shortened || new.is_some_and(|n| n.mode != LockMode::Compliance) {
                return Err(access_denied(format!(
                    "file version {} is under compliance retention until {}: it can only be extended, in compliance mode",
                    v.file_id(),
                    cur.retain_until
                )));
            }
        }
        LockMode::Governance => {
            if shortened && !bypass {
                return Err(access_denied(format!(
                    "shortening or removing the governance retention of {} needs bypassGovernance: true and the bypassGovernance capability",
                    v.file_id()
                )));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Changes a version's lock after `check` allowed it (under the store's lock, so no
    /// other change slips in between). `check` sees the version and the bucket's lock.
    pub fn change_lock(
        &self,
        file_name: &str,
        file_id: &str,
        check: impl FnOnce(&Version, &BucketLock) -> B2Result<VersionLock>,
    ) -> B2Result<Version> {
        let mut state = self.lock();
        let (seq, version) = state.named_version(file_name, file_id)?;
        let bucket_lock = state
            .buckets
            .get(&version.bucket_id)
            .map(|b| b.meta.lock)
            .unwrap_or_default();
        let lock = check(&version, &bucket_lock)?;
        self.commit(&mut state, Record::Lock { seq, lock })?;
        Ok(state.version(seq).cloned().expect("just changed"))
    }

    /// Sets the lock of the newest version of `name` (or of `file_id`) whatever the rules
    /// say: the control API's way to put a retention in the past.
    pub fn force_lock(
        &self,
        bucket_id: &str,
        name: &str,
        file_id: Option<&str>,
        lock: VersionLock,
    ) -> B2Result<Version> {
        let mut state = self.lock();
        let seq = state
            .buckets
            .get(bucket_id)
            .and_then(|b| b.names.get(name))
            .and_then(|vs| {
                vs.iter().find(|v| {
                    v.action == Action::Upload && file_id.is_none_or(|id| v.file_id() == id)
                })
            })
            .map(|v| v.seq)
            .ok_or_else(|| B2Error::not_found(format!("no file version of {name} to lock")))?;
        self.commit(&mut state, Record::Lock { seq, lock })?;
        Ok(state.version(seq).cloned().expect("just changed"))
    }
}

/// The clock the lock rules read.
pub fn now() -> u64 {
    now_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn version(lock: VersionLock) -> Version {
        Version {
            seq: 1,
            bucket_id: "b".into(),
            name: "n".into(),
            action: Action::Upload,
            size: 1,
            sha1: None,
            content_type: "x/y".into(),
            info: BTreeMap::new(),
            ts: 0,
            content: Vec::new(),
            sse: None,
            lock,
        }
    }

    fn held(mode: LockMode, until: u64) -> Version {
        version(VersionLock {
            retention: Some(Retention {
                mode,
                retain_until: until,
            }),
            legal_hold: None,
        })
    }

    #[test]
    fn deletes_give_way_only_to_expiry_or_governance_bypass() {
        let now = 1_000;
        let gov = held(LockMode::Governance, 2_000);
        let comp = held(LockMode::Compliance, 2_000);
        assert_eq!(check_delete(&gov, false, now).unwrap_err().status, 403);
        assert!(check_delete(&gov, true, now).is_ok());
        assert_eq!(
            check_delete(&comp, true, now).unwrap_err().code,
            "access_denied"
        );
        assert!(
            check_delete(&comp, false, 2_000).is_ok(),
            "expired at retain-until"
        );
        let hold = version(VersionLock {
            retention: None,
            legal_hold: Some(true),
        });
        assert!(check_delete(&hold, true, now).is_err());
        let mut start = hold.clone();
        start.action = Action::Start;
        assert!(check_delete(&start, false, now).is_ok(), "a cancel");
    }

    #[test]
    fn compliance_only_grows_and_governance_shrinks_with_bypass() {
        let now = 1_000;
        let r = |mode, until| {
            Some(Retention {
                mode,
                retain_until: until,
            })
        };
        let comp = held(LockMode::Compliance, 5_000);
        assert!(check_retention_change(&comp, r(LockMode::Compliance, 6_000), false, now).is_ok());
        assert!(check_retention_change(&comp, r(LockMode::Compliance, 4_000), true, now).is_err());
        assert!(check_retention_change(&comp, r(LockMode::Governance, 9_000), true, now).is_err());
        assert!(check_retention_change(&comp, None, true, now).is_err());
        let gov = held(LockMode::Governance, 5_000);
        assert!(check_retention_change(&gov, r(LockMode::Governance, 4_000), false, now).is_err());
        assert!(check_retention_change(&gov, r(LockMode::Governance, 4_000), true, now).is_ok());
        assert!(check_retention_change(&gov, r(LockMode::Compliance, 9_000), false, now).is_ok());
        assert!(check_retention_change(&gov, r(LockMode::Governance, 500), true, now).is_err());
    }
}
