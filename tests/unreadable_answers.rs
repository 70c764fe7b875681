//! A success B2 answers with a body the library cannot read, after it acted (stored the
//! upload, started or finished the large file, deleted the version): settled like a lost
//! answer, so the host is told what B2 did and no copy is left that it was not told of.

mod common;

use b2_emulator::{Emulator, Fault, FaultAction};
use common::*;
use serde_json::json;

fn garble(emu: &Emulator, call: &str) {
    emu.inject(Fault {
        call: call.to_string(),
        count: 1,
        action: FaultAction::GarbleAnswer,
    });
}

fn stored(emu: &Emulator, name: &str) -> Vec<b2_emulator::StoredVersion> {
    emu.file_versions(BUCKET)
        .into_iter()
        .filter(|v| v.file_name == name && v.action == "upload")
        .collect()
}

#[test]
fn an_unreadable_answer_to_an_upload_stores_one_version_and_reports_it() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    for (retries, name) in [(5, "f"), (0, "g")] {
        emu.reset_counts();
        let cfg = config(&emu, json!({"upload_retries": retries}));
        let f = write_file(dir.path(), name, 5_000, retries);
        garble(&emu, "b2_upload_file");
        let (st, v) = upload(&cfg, &f, name);
        assert_eq!(st, OK, "{v}");
        let versions = stored(&emu, &format!("backups/server1/{name}"));
        assert_eq!(versions.len(), 1, "one version, the one reported: {v}");
        assert_eq!(v["file_id"], versions[0].file_id.as_str());
        assert_eq!(emu.counts().get("b2_upload_file"), 1, "not sent again");
    }
}

#[test]
fn unreadable_answers_to_starting_and_finishing_a_large_file_leave_one_file() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    for (call, name) in [("b2_start_large_file", "a"), ("b2_finish_large_file", "b")] {
        emu.reset_counts();
        let f = write_file(dir.path(), name, 3 * PART as usize + 7, 11);
        garble(&emu, call);
        let (st, v) = upload(&cfg, &f, name);
        assert_eq!(st, OK, "{call}: {v}");
        let counts = emu.counts();
        assert_eq!(counts.get(call), 1, "{call}: settled, not made again");
        assert_eq!(counts.get("b2_cancel_large_file"), 0);
        let versions = stored(&emu, &format!("backups/server1/{name}"));
        assert_eq!(versions.len(), 1, "{call}");
        assert_eq!(v["file_id"], versions[0].file_id.as_str());
        assert!(emu.unfinished_large_files(BUCKET).is_empty(), "{call}");
        let back = dir.path().join(format!("{name}.back"));
        assert_eq!(download(&cfg, name, &back).0, OK);
        assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
    }
}

#[test]
fn an_unreadable_answer_to_a_delete_still_counts_what_was_freed() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 4_000, 3);
    assert_eq!(upload(&cfg, &f, "d/f").0, OK);
    garble(&emu, "b2_delete_file_version");
    let (st, v) = delete(&cfg, "d");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["deleted_versions"], 1, "{v}");
    assert_eq!(v["bytes_freed"], 4_000, "{v}");
    assert!(emu.file_versions(BUCKET).is_empty());
}
