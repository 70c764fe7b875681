//! Recovery after a takeover, through the C ABI against the emulator: locked backups, an
//! attacker holding the destination's own key (garbage over one, garbage locked in
//! compliance over another, a third hidden, deletes refused), then `dest_list_versions`,
//! `dest_download_as_of` and `dest_rollback` get the originals back. What B2 holds is read
//! from the emulator itself.

mod common;

use std::path::Path;

use b2_emulator::Emulator;
use common::lock::*;
use common::recovery::*;
use common::*;
use serde_json::{json, Value};

const LARGE: usize = 3 * PART as usize + 77;

fn pause() {
    // Upload timestamps are in ms: T must fall strictly between the backup and the attack.
    std::thread::sleep(std::time::Duration::from_millis(15));
}

/// Every version B2 holds, as (name, id).
fn held(emu: &Emulator) -> Vec<(String, String)> {
    emu.file_versions(BUCKET)
        .into_iter()
        .map(|v| (v.file_name, v.file_id))
        .collect()
}

struct Attacked {
    emu: Emulator,
    cfg: String,
    t: u64,
    /// The tree as backed up: (name below site/, bytes, file id).
    originals: Vec<(&'static str, Vec<u8>, String)>,
    _dir: tempfile::TempDir,
}

/// Locked backups of a tree (small files and a large one), then the attack.
fn attacked() -> Attacked {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"object_lock": {"mode": "governance", "retention_days": 30}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let files: [(&str, usize, u64); 4] = [
        ("index.html", 2_000, 1),
        ("db.sql", 3_000, 2),
        ("archive.tar", LARGE, 3),
        ("notes.txt", 500, 4),
    ];
    for (name, len, seed) in files {
        write_file(&site, name, len, seed);
    }
    let (st, up) = upload(&cfg, &site, "site");
    assert_eq!(st, OK, "{up}");
    let originals = files
        .iter()
        .map(|(name, len, seed)| {
            let v = stored(&emu, &format!("site/{name}"));
            (*name, content(*len, *seed), v.file_id)
        })
        .collect();
    pause();
    let t = now_ms();
    pause();
    // The attacker, with the destination's own key: garbage over db.sql (unlocked)...
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"zeros zeros zeros").unwrap();
    let plain = config(&emu, json!({}));
    assert_eq!(upload(&plain, &junk, "site/db.sql").0, OK);
    // ...garbage locked in compliance over the large archive...
    let compliance = config(
        &emu,
        json!({"object_lock": {"mode": "compliance", "retention_days": 3000}}),
    );
    assert_eq!(upload(&compliance, &junk, "site/archive.tar").0, OK);
    // ...index.html hidden, and a new name planted.
    let (status, v) = raw_b2_call(
        &emu,
        "b2_hide_file",
        json!({"bucketId": "?", "fileName": format!("{DIR}site/index.html")}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(upload(&plain, &junk, "site/evil.php").0, OK);
    // Deleting the backups is refused.
    let a = Attacked {
        emu,
        cfg,
        t,
        originals,
        _dir: dir,
    };
    for (name, _, id) in &a.originals {
        let (status, v) = raw_b2_call(
            &a.emu,
            "b2_delete_file_version",
            json!({"fileName": format!("{DIR}site/{name}"), "fileId": id}),
        );
        assert_eq!(status, 403, "{name}: {v}");
    }
    a
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expected_tree(a: &Attacked) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = a
        .originals
        .iter()
        .map(|(n, b, _)| (n.to_string(), b.clone()))
        .collect();
    out.sort();
    out
}

#[test]
fn versions_show_the_attack_and_what_was_current_before_it() {
    let a = attacked();
    let (st, v) = versions(&a.cfg, "site", Some(&format!("{{\"as_of_ms\": {}}}", a.t)));
    assert_eq!(st, OK, "{v}");
    let entries = v["entries"].as_array().unwrap();
    // notes 1, index 2 (hide + upload), db 2, archive 2, evil 1.
    assert_eq!(
        (v["count"].as_u64(), v["names"].as_u64()),
        (Some(8), Some(5))
    );
    let of = |name: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| e["remote_path"] == format!("site/{name}"))
            .collect()
    };
    let index = of("index.html");
    assert_eq!(index[0]["action"], "hide");
    assert_eq!(index[0]["current_at"], false);
    assert_eq!(index[1]["action"], "upload");
    assert_eq!(index[1]["current_at"], true);
    for (name, bytes, id) in &a.originals {
        let current: Vec<&Value> = of(name)
            .into_iter()
            .filter(|e| e["current_at"] == true)
            .collect();
        assert_eq!(current.len(), 1, "{name}");
        assert_eq!(current[0]["file_id"], json!(id), "{name}");
        assert_eq!(current[0]["sha1"], json!(sha1_hex(bytes)), "{name}");
        assert_eq!(current[0]["retention_mode"], "governance", "{name}");
    }
    let archive = of("archive.tar");
    assert_eq!(archive[0]["retention_mode"], "compliance");
    assert!(archive[0]["upload_ms"].as_u64().unwrap() > a.t);
    assert_eq!(of("evil.php")[0]["current_at"], false);
    // Without as_of_ms there is no current_at.
    let (st, plain) = versions(&a.cfg, "site", None);
    assert_eq!(st, OK);
    assert!(plain["entries"][0].get("current_at").is_none());
    assert_eq!(plain["count"], 8);
}

#[test]
fn restore_as_of_before_the_attack_returns_the_exact_bytes() {
    let a = attacked();
    let out = tempfile::tempdir().unwrap();
    // A plain restore gets the attacker's tree.
    let (st, plain) = download(&a.cfg, "site/", &out.path().join("now"));
    assert_eq!(st, OK, "{plain}");
    assert_ne!(read_tree(&out.path().join("now")), expected_tree(&a));
    a.emu.reset_counts();
    let options = format!("{{\"as_of_ms\": {}}}", a.t);
    let target = out.path().join("then");
    let (st, v) = restore(&a.cfg, "site", &target, Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(read_tree(&target), expected_tree(&a));
    assert_eq!(v["file_count"], 4);
    assert_eq!(
        (v["hidden_at_as_of"].as_u64(), v["absent_at_as_of"].as_u64()),
        (Some(0), Some(1))
    );
    for f in v["files"].as_array().unwrap() {
        let (_, _, id) = a
            .originals
            .iter()
            .find(|(n, _, _)| f["path"] == *n)
            .unwrap();
        assert_eq!(f["file_id"], json!(id), "{f}");
        assert_eq!(f["verified"], true);
    }
    let counts = a.emu.counts();
    assert_eq!(counts.get("b2_list_file_versions"), 1);
    assert_eq!(counts.get("b2_list_file_names"), 0);
    // One file as of T lands at the path given.
    let one = out.path().join("db.sql");
    let (st, v) = restore(&a.cfg, "site/db.sql", &one, Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(std::fs::read(&one).unwrap(), a.originals[1].1);
    assert_eq!(v["file_id"], json!(a.originals[1].2));
    // By file id: that version, whatever is current.
    let by_id = out.path().join("archive-by-id");
    let (st, v) = restore(
        &a.cfg,
        "site",
        &by_id,
        Some(&format!("{{\"file_id\": \"{}\"}}", a.originals[2].2)),
    );
    assert_eq!(st, OK, "{v}");
    assert_eq!(std::fs::read(&by_id).unwrap(), a.originals[2].1);
    assert_eq!(v["remote_path"], "site/archive.tar");
    // A time before anything was stored restores nothing.
    let (st, v) = restore(
        &a.cfg,
        "site",
        &out.path().join("never"),
        Some("{\"as_of_ms\": 1}"),
    );
    assert_eq!(st, NOT_FOUND, "{v}");
}

#[test]
fn rollback_puts_the_originals_back_by_delete_and_by_copy_and_only_once() {
    let a = attacked();
    let before = held(&a.emu);
    let options = format!("{{\"as_of_ms\": {}, \"dry_run\": true}}", a.t);
    a.emu.reset_counts();
    let (st, dry) = rollback(&a.cfg, "site", Some(&options));
    assert_eq!(st, OK, "{dry}");
    assert_eq!(held(&a.emu), before, "a dry run changes nothing");
    let counts = a.emu.counts();
    for call in ["b2_delete_file_version", "b2_copy_file", "b2_hide_file"] {
        assert_eq!(counts.get(call), 0, "{call}");
    }
    assert_eq!(dry["deleted_versions"], 2, "{dry}"); // db.sql's garbage, index's hide marker
    assert_eq!(dry["copied_files"], 1, "{dry}"); // the archive, under compliance garbage
    assert_eq!(dry["copied_bytes"], LARGE as u64);
    assert_eq!(dry["locked_versions_left"], 1);

    a.emu.reset_counts();
    let (st, done) = rollback(&a.cfg, "site", Some(&format!("{{\"as_of_ms\": {}}}", a.t)));
    assert_eq!(st, OK, "{done}");
    for k in [
        "deleted_versions",
        "copied_files",
        "copied_bytes",
        "locked_versions_left",
    ] {
        assert_eq!(done[k], dry[k], "{k}: the dry run said what was done");
    }
    let counts = a.emu.counts();
    assert_eq!(counts.get("b2_delete_file_version"), 2);
    assert_eq!(counts.get("b2_copy_file"), 1);
    assert_eq!(counts.get("b2_hide_file"), 0);
    assert_eq!(counts.get("b2_download_file_by_id"), 0, "no egress");
    assert_eq!(
        counts.get("b2_upload_file") + counts.get("b2_upload_part"),
        0
    );
    // The copy carries the destination's own retention.
    let copy = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["action"] == "copy")
        .unwrap();
    let stored_copy = a
        .emu
        .file_versions(BUCKET)
        .into_iter()
        .find(|v| v.file_id == copy["file_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored_copy.retention_mode.as_deref(), Some("governance"));
    assert!(stored_copy.retain_until.unwrap() > now_ms() + 29 * DAY_MS);
    // Nothing uploaded at or before T is gone.
    let after = held(&a.emu);
    for (_, _, id) in &a.originals {
        assert!(after.iter().any(|(_, i)| i == id), "{id} kept");
    }
    // A plain restore is the backup again (evil.php, a name new since T, is left alone).
    let out = tempfile::tempdir().unwrap();
    let (st, v) = download(&a.cfg, "site/", out.path());
    assert_eq!(st, OK, "{v}");
    let mut got = read_tree(out.path());
    got.retain(|(n, _)| n != "evil.php");
    assert_eq!(got, expected_tree(&a));
    assert!(out.path().join("evil.php").exists());

    // Once more: nothing to do.
    a.emu.reset_counts();
    let (st, again) = rollback(&a.cfg, "site", Some(&format!("{{\"as_of_ms\": {}}}", a.t)));
    assert_eq!(st, OK, "{again}");
    assert_eq!(
        (
            again["deleted_versions"].as_u64(),
            again["copied_files"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    let counts = a.emu.counts();
    assert_eq!(
        counts.get("b2_delete_file_version") + counts.get("b2_copy_file"),
        0
    );

    // Names new since T go only when asked.
    let (st, v) = rollback(
        &a.cfg,
        "site",
        Some(&format!(
            "{{\"as_of_ms\": {}, \"remove_newer_names\": true}}",
            a.t
        )),
    );
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["deleted_versions"], 1, "{v}");
    assert!(!held(&a.emu).iter().any(|(n, _)| n.ends_with("evil.php")));
}

#[test]
fn an_sse_c_backup_is_restored_as_of_and_copied_back_with_its_key() {
    let emu = locked_emulator();
    let sse = json!({"mode": "SSE-C", "customer_key": CUSTOMER_KEYS[0]});
    let cfg = config(
        &emu,
        json!({"encryption": sse, "object_lock": {"mode": "governance", "retention_days": 30}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "secret.db", 4_000, 9);
    assert_eq!(upload(&cfg, &f, "enc/secret.db").0, OK);
    pause();
    let t = now_ms();
    pause();
    let junk = write_file(dir.path(), "junk", 100, 10);
    let attacker = config(
        &emu,
        json!({"encryption": sse, "object_lock": {"mode": "compliance", "retention_days": 3000}}),
    );
    assert_eq!(upload(&attacker, &junk, "enc/secret.db").0, OK);
    let options = format!("{{\"as_of_ms\": {t}}}");
    let out = dir.path().join("restored");
    let (st, v) = restore(&cfg, "enc/secret.db", &out, Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(std::fs::read(&out).unwrap(), content(4_000, 9));
    emu.reset_counts();
    let (st, v) = rollback(&cfg, "enc", Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        (v["copied_files"].as_u64(), v["deleted_versions"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(emu.counts().get("b2_copy_file"), 1);
    let copy = emu
        .file_versions(BUCKET)
        .into_iter()
        .find(|s| s.file_id == v["actions"][1]["file_id"].as_str().unwrap_or(""))
        .unwrap_or_else(|| panic!("the copy is stored: {v}"));
    assert!(
        matches!(copy.encryption, Some(b2_emulator::Sse::C { .. })),
        "{copy:?}"
    );
    let back = dir.path().join("back");
    let (st, v) = download(&cfg, "enc/secret.db", &back);
    assert_eq!(st, OK, "{v}");
    assert_eq!(std::fs::read(&back).unwrap(), content(4_000, 9));
}

#[test]
fn remove_newer_names_deletes_or_hides_what_did_not_exist_at_t() {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"object_lock": {"mode": "governance", "retention_days": 30}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let keep = write_file(dir.path(), "keep", 300, 1);
    assert_eq!(upload(&cfg, &keep, "d/keep").0, OK);
    pause();
    let t = now_ms();
    pause();
    let junk = write_file(dir.path(), "junk", 100, 2);
    let compliance = config(
        &emu,
        json!({"object_lock": {"mode": "compliance", "retention_days": 3000}}),
    );
    assert_eq!(upload(&compliance, &junk, "d/planted-locked").0, OK);
    assert_eq!(upload(&config(&emu, json!({})), &junk, "d/planted").0, OK);
    let options = format!("{{\"as_of_ms\": {t}}}");
    let (st, v) = rollback(&cfg, "d", Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        v["actions"],
        json!([]),
        "names new since T are left alone: {v}"
    );
    emu.reset_counts();
    let options = format!("{{\"as_of_ms\": {t}, \"remove_newer_names\": true}}");
    let (st, v) = rollback(&cfg, "d", Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        (
            v["deleted_versions"].as_u64(),
            v["hidden_files"].as_u64(),
            v["locked_versions_left"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{v}"
    );
    let counts = emu.counts();
    assert_eq!(
        (
            counts.get("b2_delete_file_version"),
            counts.get("b2_hide_file")
        ),
        (1, 1)
    );
    let (st, listed) = list(&cfg, "d");
    assert_eq!(st, OK);
    let paths: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["d/keep"], "{listed}");
    // Once more: the hidden name stays hidden, nothing is done.
    emu.reset_counts();
    let (st, v) = rollback(&cfg, "d", Some(&options));
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        emu.counts().get("b2_hide_file") + emu.counts().get("b2_delete_file_version"),
        0,
        "{v}"
    );
}

#[test]
fn versions_page_through_b2_a_thousand_at_a_time() {
    let emu = emulator();
    emu.seed_files(BUCKET, "backups/server1/many/f", 2_500, 1);
    let cfg = config(&emu, json!({}));
    emu.reset_counts();
    let (st, v) = versions(&cfg, "many", Some("{\"as_of_ms\": 1}"));
    assert_eq!(st, OK);
    assert_eq!(
        (v["count"].as_u64(), v["names"].as_u64()),
        (Some(2_500), Some(2_500))
    );
    assert_eq!(v["entries"].as_array().unwrap().len(), 2_500);
    assert_eq!(emu.counts().get("b2_list_file_versions"), 3);
    assert_eq!(emu.counts().total(), 5, "authorize, bucket, three pages");
}
