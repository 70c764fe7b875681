//! One night of a destination's life through the C ABI, each step reduced to the outcome
//! that must not depend on the shape of B2's answers: statuses, counts, bytes, SHA1s, what
//! the emulator holds afterwards. Run under canonical answers and under variants, the
//! outcomes must be equal.

use std::path::Path;

use b2_emulator::{Emulator, Fault, FaultAction};
use serde_json::{json, Value};

use crate::common::lock::{protect, DAY_MS};
use crate::common::*;

/// The bucket with Object Lock (the plain journey uses `BUCKET`).
pub const LOCKED_BUCKET: &str = "other-bucket";
pub const SMALL: usize = 5_000;
/// Three parts of `PART`: a large file, downloaded in three ranges.
pub const LARGE: usize = 2 * PART as usize + 50_123;
const TREE: [(&str, usize); 3] = [("a", 1_000), ("b", 2_000), ("sub/c", 3_000)];

/// A step's outcome, and the library's response it came from (for the report).
pub struct Step {
    pub name: &'static str,
    pub outcome: Value,
    pub response: Value,
}

/// How a journey is run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The first small upload meets a 503 with `Retry-After: 1` (a date under
    /// `retry_after_date`) and must wait for it.
    pub retry_after: bool,
    /// The answers to the first small upload and to the first large file's start and
    /// finish are lost after B2 acted: the library must find out, from B2's answers, what
    /// B2 did.
    pub lost_answers: bool,
}

/// An emulator for a journey: `BUCKET` plain, `LOCKED_BUCKET` with Object Lock.
pub fn journey_emulator() -> Emulator {
    let emu = emulator();
    emu.configure_object_lock(LOCKED_BUCKET, json!({"fileLockEnabled": true}));
    // A whole-bucket rule that keeps only the last version: what the README asks for, and
    // a rule whose empty prefix a variant may drop.
    emu.update_bucket(
        BUCKET,
        None,
        Some(json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 1,
            "daysFromUploadingToHiding": null}])),
    );
    emu
}

/// The local files of a journey.
pub fn local_files(dir: &Path) {
    write_file(dir, "small.bin", SMALL, 1);
    write_file(dir, "big.bin", LARGE, 2);
    write_file(dir, "big2.bin", LARGE, 3);
    for (i, (name, len)) in TREE.iter().enumerate() {
        write_file(&dir.join("tree"), name, *len, 10 + i as u64);
    }
}

/// The library's notice that it read listing entries by guess (an unknown action taken as
/// a stored file): meant to differ under variants, so left out of the outcome.
const ODD_ENTRIES_NOTICE: &str = "of B2's listing could not be fully read";

fn step(name: &'static str, st: i32, response: Value, outcome: Value) -> Step {
    let mut outcome = outcome;
    outcome["status"] = json!(st);
    // What the host is warned of must not change either (a rule read as not applying, a
    // file not verified).
    if let Some(warnings) = response["warnings"].as_array() {
        let mut warnings: Vec<Value> = warnings
            .iter()
            .filter(|w| !w.as_str().is_some_and(|w| w.contains(ODD_ENTRIES_NOTICE)))
            .cloned()
            .collect();
        warnings.sort_by_key(|w| w.to_string());
        outcome["warnings"] = json!(warnings);
    }
    Step {
        name,
        outcome,
        response,
    }
}

fn checks(v: &Value) -> Value {
    let mut checks: Vec<Value> = v["checks"]
        .as_array()
        .map(|c| c.iter().map(|c| json!([c["name"], c["ok"]])).collect())
        .unwrap_or_default();
    checks.sort_by_key(|c| c.to_string());
    json!(checks)
}

fn picked(v: &Value, keys: &[&str]) -> Value {
    json!(keys
        .iter()
        .map(|k| (k.to_string(), v[*k].clone()))
        .collect::<serde_json::Map<_, _>>())
}

/// A listing's entries: `keys` of each, and whether its SHA1 is right where B2 told one
/// (a listing can only pass on the SHA1 B2 gives; a restore must verify all the same).
fn listed(v: &Value, keys: &[&str], dir: &Path) -> Value {
    let local: Vec<(String, String)> = local_sha1s(dir);
    let mut entries: Vec<Value> = v["entries"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    let mut out = picked(e, keys);
                    let path = e["path"].as_str().unwrap_or("");
                    let want = local.iter().find(|(name, _)| path.ends_with(name.as_str()));
                    out["sha1_right_where_told"] = json!(
                        e["sha1"].is_null() || want.is_some_and(|(_, sha1)| e["sha1"] == *sha1)
                    );
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by_key(|e| e.to_string());
    json!(entries)
}

/// Each local file's name (relative, `/`-separated) and SHA1.
fn local_sha1s(dir: &Path) -> Vec<(String, String)> {
    let mut files = vec![
        ("small.bin".to_owned(), sha1_hex(&content(SMALL, 1))),
        ("big.bin".to_owned(), sha1_hex(&content(LARGE, 2))),
    ];
    for (name, _) in TREE {
        let data = std::fs::read(dir.join("tree").join(name)).unwrap_or_default();
        files.push((format!("tree/{name}"), sha1_hex(&data)));
    }
    files
}

fn downloaded(cfg: &str, remote: &str, dir: &Path, want: &[u8]) -> (i32, Value, Value) {
    let target = dir.join(format!("restored-{}", remote.replace('/', "-")));
    let (st, v) = download(cfg, remote, &target);
    let same = std::fs::read(&target).ok().as_deref() == Some(want);
    let _ = std::fs::remove_file(&target);
    let outcome = json!({"size": v["size"], "sha1": v["sha1"], "verified": v["verified"],
        "bytes_match": same});
    (st, v, outcome)
}

/// What the emulator holds in `bucket`: every version's name, size, action, SHA1 and
/// retention mode, and the unfinished large files.
fn held(emu: &Emulator, bucket: &str) -> Value {
    let versions: Vec<Value> = emu
        .file_versions(bucket)
        .into_iter()
        .filter(|v| !v.file_name.contains(".b2dest-probe-"))
        .map(|v| json!([v.file_name, v.size, v.action, v.sha1, v.retention_mode]))
        .collect();
    json!({"versions": versions, "unfinished": emu.unfinished_large_files(bucket).len()})
}

/// The plain journey: validate, uploads (small, large, tree), list, usage, downloads
/// (ranged), an unfinished large file, usage, delete of the tree, what is left.
pub fn plain(emu: &Emulator, dir: &Path, options: Options) -> Vec<Step> {
    let cfg = config(emu, json!({"concurrency": 4}));
    let mut steps = Vec::new();
    let (st, v) = validate(&cfg);
    steps.push(step(
        "validate",
        st,
        v.clone(),
        json!({"checks": checks(&v)}),
    ));

    if options.retry_after {
        emu.inject(Fault {
            call: "b2_upload_file".into(),
            count: 1,
            action: FaultAction::Error {
                status: 503,
                code: "service_unavailable".into(),
                retry_after: Some(1),
                message: None,
            },
        });
    }
    if options.lost_answers {
        for call in [
            "b2_upload_file",
            "b2_start_large_file",
            "b2_finish_large_file",
        ] {
            emu.inject(Fault {
                call: call.into(),
                count: 1,
                action: FaultAction::LoseAnswer,
            });
        }
    }
    let (st, v) = upload(&cfg, &dir.join("small.bin"), "night/small.bin");
    let out = picked(&v, &["size", "sha1", "resumed_bytes"]);
    steps.push(step("upload small", st, v, out));
    let (st, v) = upload(&cfg, &dir.join("big.bin"), "night/big.bin");
    let out = picked(&v, &["size", "sha1", "resumed_bytes"]);
    steps.push(step("upload large", st, v, out));
    let (st, v) = upload(&cfg, &dir.join("tree"), "night/tree");
    let skipped = v["skipped"].as_array().map_or(0, Vec::len);
    let out = json!({"file_count": v["file_count"], "skipped": skipped});
    steps.push(step("upload tree", st, v, out));

    let (st, v) = list(&cfg, "night");
    let out = json!({"entries": listed(&v, &["path", "size", "encryption"], dir)});
    steps.push(step("list", st, v, out));
    let usage_keys = [
        "used_bytes",
        "files",
        "versions",
        "hide_markers",
        "unfinished_large_files",
        "cancelled_large_files",
    ];
    let (st, v) = usage(&cfg);
    let out = picked(&v, &usage_keys);
    steps.push(step("usage", st, v, out));

    let (st, v, out) = downloaded(&cfg, "night/big.bin", dir, &content(LARGE, 2));
    steps.push(step("download large (ranged)", st, v, out));
    let (st, v, out) = downloaded(&cfg, "night/small.bin", dir, &content(SMALL, 1));
    steps.push(step("download small", st, v, out));

    // An unfinished large file in the tree: its second part and every cancel fail.
    let serial = config(emu, json!({"concurrency": 1, "upload_retries": 0}));
    pass_then_fail(emu, "b2_upload_part", 1, 1, 400, "bad_request");
    pass_then_fail(emu, "b2_cancel_large_file", 0, 10, 500, "internal_error");
    let (st, v) = upload(&serial, &dir.join("big2.bin"), "night/tree/big2.bin");
    emu.clear_faults();
    let out = json!({"unfinished_on_b2": emu.unfinished_large_files(BUCKET).len()});
    steps.push(step("upload cut off", st, v, out));
    let (st, v) = usage(&cfg);
    let out = picked(&v, &usage_keys);
    steps.push(step("usage with an unfinished file", st, v, out));

    let (st, v) = delete(&cfg, "night/tree");
    let out = picked(
        &v,
        &["deleted_versions", "bytes_freed", "cancelled_large_files"],
    );
    steps.push(step("delete tree", st, v, out));
    steps.push(step("left on B2", 0, json!({}), held(emu, BUCKET)));
    steps
}

/// The Object Lock journey: validate, locked uploads (small, large), list, protect,
/// usage, a refused delete, what is left.
pub fn locked(emu: &Emulator, dir: &Path) -> Vec<Step> {
    let cfg = config(
        emu,
        json!({"bucket": LOCKED_BUCKET, "concurrency": 4,
            "object_lock": {"mode": "governance", "retention_days": 1}}),
    );
    let longer = config(
        emu,
        json!({"bucket": LOCKED_BUCKET, "concurrency": 4,
            "object_lock": {"mode": "governance", "retention_days": 2}}),
    );
    let mut steps = Vec::new();
    let (st, v) = validate(&cfg);
    steps.push(step(
        "locked: validate",
        st,
        v.clone(),
        json!({"checks": checks(&v)}),
    ));
    for (name, file, remote) in [
        ("locked: upload small", "small.bin", "locked/small.bin"),
        ("locked: upload large", "big.bin", "locked/big.bin"),
    ] {
        let (st, v) = upload(&cfg, &dir.join(file), remote);
        let stored = emu
            .file_versions(LOCKED_BUCKET)
            .into_iter()
            .find(|s| s.file_name.ends_with(remote) && s.action == "upload");
        // The date is what must match; a mode B2 names in a way the library does not
        // know (unknown_enum) may be reported as B2 named it.
        let told_as_held = stored.as_ref().is_some_and(|s| {
            v["retain_until_ms"].as_u64() == s.retain_until
                && v["retention_mode"].is_string() == s.retention_mode.is_some()
        });
        let out = json!({"size": v["size"], "sha1": v["sha1"],
            "locked": v["retention_mode"].is_string(), "told_as_held": told_as_held});
        steps.push(step(name, st, v, out));
    }
    let (st, v) = list(&cfg, "locked");
    let mut entries = listed(&v, &["path", "size", "retention_mode"], dir);
    for e in entries.as_array_mut().into_iter().flatten() {
        let locked = e["retention_mode"].is_string();
        e.as_object_mut().map(|e| e.remove("retention_mode"));
        e["locked"] = json!(locked);
    }
    let out = json!({ "entries": entries });
    steps.push(step("locked: list", st, v, out));
    let (st, v) = protect(&longer, "locked");
    let out = picked(&v, &["extended_versions", "unchanged_versions"]);
    steps.push(step("locked: protect", st, v, out));
    let (st, v) = usage(&cfg);
    let out = picked(
        &v,
        &[
            "used_bytes",
            "versions",
            "locked_versions",
            "locked_bytes",
            "lock_readable",
        ],
    );
    steps.push(step("locked: usage", st, v, out));
    let (st, v) = delete(&cfg, "locked");
    let out = picked(
        &v,
        &[
            "deleted_versions",
            "bytes_freed",
            "locked_versions",
            "locked_bytes",
        ],
    );
    steps.push(step("locked: delete refused", st, v, out));
    let mut left = held(emu, LOCKED_BUCKET);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let protected_two_days = emu
        .file_versions(LOCKED_BUCKET)
        .into_iter()
        .filter(|v| v.file_name.contains("locked/") && v.action == "upload")
        .all(|v| v.retain_until.unwrap_or(0) > now + DAY_MS + DAY_MS / 2);
    left["protected_two_days"] = json!(protected_two_days);
    steps.push(step("locked: left on B2", 0, json!({}), left));
    steps
}

/// Byte counters that variants must not change: what was uploaded and downloaded.
pub fn bytes(emu: &Emulator) -> Value {
    let c = emu.counts();
    json!({"bytes_received": c.bytes_received, "bytes_sent": c.bytes_sent})
}

/// The steps whose outcome differs from `want`'s, each with the library's error text.
pub fn differences(want: &[Step], got: &[Step]) -> Vec<String> {
    let mut out = Vec::new();
    for (w, g) in want.iter().zip(got) {
        if w.outcome != g.outcome {
            let error = g.response.get("error").map_or_else(
                || "no error".to_owned(),
                |e| format!("{} {}", e["code"], e["message"]),
            );
            out.push(format!(
                "{}: expected {}, got {} ({error})",
                g.name, w.outcome, g.outcome
            ));
        }
    }
    if want.len() != got.len() {
        out.push(format!("{} steps, expected {}", got.len(), want.len()));
    }
    out
}
