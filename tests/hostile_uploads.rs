//! What a hosting customer can do to a tree of theirs that the root-run library backs up,
//! through the C ABI and the emulator: a sparse file of exabytes, hard links to other
//! users' files (in the tree or named by the host), names that would forge lines in the
//! host's log, trees deeper than any B2 name or deep enough to use up open files, a
//! directory moved while the walk is in it, and sparse files billed at their full length.
//! Tests that give files to the customer's uid need root and say so when skipped; the
//! sparse-file host needs a tmpfs at /dev/shm. (What they can do during the upload, with a
//! request held at the emulator, is in tests/hostile.rs.)

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use common::customer::*;
use common::faults::{pass_then_hold, with_held_change};
use common::*;
use serde_json::json;

/// Not a test of its own: the host process of
/// `an_exabyte_sparse_file_in_the_tree_does_not_kill_the_host_process`.
#[test]
#[ignore]
fn redteam_child_upload_tree() {
    let cfg = std::env::var("REDTEAM_CHILD_CONFIG").expect("run by its parent test");
    let tree = std::env::var("REDTEAM_CHILD_TREE").unwrap();
    let (st, v) = upload(&cfg, Path::new(&tree), "tree");
    println!("RESULT {st} {v}");
}

#[test]
fn an_exabyte_sparse_file_in_the_tree_does_not_kill_the_host_process() {
    // The customer runs `truncate -s 8E bomb` in their home. XFS (the default of RHEL /
    // AlmaLinux, where most cPanel servers run), btrfs and tmpfs take it: it costs no disk.
    // tmpfs stands for XFS here (ext4 stops at 16 TiB). The file needs more than B2's
    // 10,000 parts of 5 GB and B2 takes no file over 10 TB, so the upload refuses it
    // before reading or hashing a byte, skips it, and sends the rest of the tree. The host
    // is a child process, so that an abort (say, an allocation sized by the file's
    // length) shows as a signal here instead of ending this test binary.
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let shm = Path::new("/dev/shm");
    assert!(shm.is_dir(), "this test needs a tmpfs at /dev/shm");
    let base = tempfile::tempdir_in(shm).unwrap();
    let tree = base.path().join("tree");
    write_file(&tree, "index.html", 1000, 1);
    let bomb = std::fs::File::create(tree.join("bomb")).unwrap();
    bomb.set_len(i64::MAX as u64)
        .expect("tmpfs takes a sparse file of 8 EiB");
    drop(bomb);

    let (status, result, stderr, timed_out) = run_child(
        "redteam_child_upload_tree",
        &[
            ("REDTEAM_CHILD_CONFIG", cfg.as_str()),
            ("REDTEAM_CHILD_TREE", tree.to_str().unwrap()),
        ],
        Duration::from_secs(60),
        || {},
    );
    assert!(
        status.signal().is_none(),
        "the host process was killed by signal {:?} during dest_upload of a tree holding an 8 EiB sparse file (stderr: {})",
        status.signal(),
        stderr.lines().filter(|l| l.contains("memory") || l.contains("abort")).collect::<Vec<_>>().join(" | ")
    );
    assert!(
        !timed_out,
        "dest_upload was still reading the 8 EiB file after 60 s instead of refusing it"
    );
    let (st, v) = result.unwrap_or_else(|| panic!("the host printed no result: {stderr}"));
    assert_eq!(
        st, OK,
        "the rest of the tree goes up, the bomb is skipped: {v}"
    );
    assert_eq!(v["file_count"], 1, "{v}");
    assert!(
        v["skipped"].to_string().contains("bomb"),
        "the bomb is listed as skipped: {v}"
    );
}

#[test]
fn a_named_file_that_is_a_hard_link_to_another_users_file_is_not_uploaded() {
    if !needs_root() {
        return;
    }
    // An upload skips a file with more than one hard link whose owner is not its
    // directory's owner (a customer's link to /etc/shadow where fs.protected_hardlinks is
    // off), and refuses the same file when the host names it itself: a host backing up a
    // customer's files one by one, or a database dump path inside the customer's home.
    // Root makes the link here, as the customer could on such a host.
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let home = customer_home(base.path());
    let shadow = base.path().join("shadow");
    let secret = b"root:$6$secret-hash:19000:0:99999:7:::\n".to_vec();
    std::fs::write(&shadow, &secret).unwrap();
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(&shadow, home.join("backup.sql")).unwrap();

    // The same file in a directory upload is skipped, as promised.
    let (st, v) = upload(&cfg, &home, "home");
    assert_eq!(st, OK, "{v}");
    assert!(v["skipped"].to_string().contains("backup.sql"), "{v}");

    let (st, v) = upload(&cfg, &home.join("backup.sql"), "home/backup.sql");
    let stored: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .filter(|f| f.action == "upload" && f.sha1 == sha1_hex(&secret))
        .map(|f| f.file_name)
        .collect();
    assert!(
        stored.is_empty(),
        "root's 0600 file, hard-linked into the customer's home, went to B2 as {stored:?} (status {st}: {v})"
    );
    assert_eq!(st, LOCAL_IO, "{v}");
}

#[test]
fn a_hard_link_to_another_users_file_is_not_uploaded() {
    if !needs_root() {
        return;
    }
    // With fs.protected_hardlinks=0 a customer may hard-link any file of the same file
    // system (/etc/shadow, another customer's mail) into their tree; O_NOFOLLOW does not
    // see it. Root makes the link here, as the customer could on such a host.
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let (home, _) = home_and_root_only(base.path());
    let shadow = base.path().join("shadow");
    let secret = b"root:$6$secret-hash:19000:0:99999:7:::\n".to_vec();
    std::fs::write(&shadow, &secret).unwrap();
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(&shadow, home.join("stolen")).unwrap();
    // The customer's own hard links (mail directories, git objects) are fine.
    let own = write_file(&home, "mail/cur/1", 500, 3);
    std::os::unix::fs::chown(&own, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
    std::fs::hard_link(&own, home.join("mail/cur/2")).unwrap();
    std::os::unix::fs::chown(home.join("mail"), Some(CUSTOMER), None).unwrap();
    std::os::unix::fs::chown(home.join("mail/cur"), Some(CUSTOMER), None).unwrap();
    // A root-owned file of the host's own, with a single name, in the customer's home.
    std::fs::write(home.join("quota.conf"), b"root's own").unwrap();

    let (st, v) = upload(&cfg, &home, "home");
    assert_eq!(st, OK, "{v}");
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["local_path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, vec![home.join("stolen").to_str().unwrap()], "{v}");
    let stored: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .filter(|f| f.action == "upload")
        .map(|f| f.file_name)
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored.iter().all(|n| !n.ends_with("stolen")), "{stored:?}");
    assert!(home.metadata().unwrap().uid() == CUSTOMER);

    // Named by the host itself, the same file is refused the same way; the customer's own
    // hard link is not. In a directory others can write (a shared or sticky one), even a
    // file of the directory's owner may be another user's link: refused too.
    let (st, v) = upload(&cfg, &home.join("stolen"), "named/stolen");
    assert_eq!(st, LOCAL_IO, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("hard links") && message.contains("not read"),
        "{message}"
    );
    let (st, v) = upload(&cfg, &home.join("mail/cur/2"), "named/mail");
    assert_eq!(st, OK, "{v}");
    let shared = base.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::hard_link(&shadow, shared.join("dump.sql")).unwrap();
    let (st, v) = upload(&cfg, &shared.join("dump.sql"), "named/dump.sql");
    assert_eq!(st, LOCAL_IO, "{v}");
    let (st, v) = upload(&cfg, &shared, "shared");
    assert_eq!(st, OK, "{v}");
    assert!(v["skipped"].to_string().contains("dump.sql"), "{v}");
    assert!(emu
        .file_versions(BUCKET)
        .iter()
        .all(|f| f.file_name.ends_with("named/mail") || !f.file_name.contains("named/")));
}

/// Every human-readable text of a response: the error message, warnings, skip reasons.
fn texts(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(m) = v["error"]["message"].as_str() {
        out.push(m.into());
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        out.push(w.as_str().unwrap().into());
    }
    for s in v["skipped"].as_array().into_iter().flatten() {
        out.push(s["reason"].as_str().unwrap().into());
    }
    out
}

#[test]
fn names_cannot_forge_lines_in_the_hosts_log() {
    // Hosts write messages and warnings to their logs line by line; a name holding a
    // newline must not start a line the customer wrote.
    let emu = emulator();
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("tree");
    write_file(&tree, "good", 100, 1);
    let forged = "\n2026-12-02 03:00:00 [INFO] backup of bob: OK\r\u{2028}";
    write_file(&tree, &format!("file{forged}"), 10, 2);
    write_file(&tree, &format!("dir{forged}/inner"), 10, 3);
    symlink("good", tree.join(format!("link{forged}"))).unwrap();
    let fifo = std::ffi::CString::new(
        tree.join(format!("fifo{forged}"))
            .to_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    for strict in [false, true] {
        let cfg = config(&emu, json!({ "strict": strict }));
        let (st, v) = upload(&cfg, &tree, if strict { "strict" } else { "tree" });
        assert_eq!(st, if strict { LOCAL_IO } else { OK }, "{v}");
        let all = texts(&v);
        assert!(all.len() >= 4, "{v}");
        for text in all {
            assert!(
                !text.contains(['\n', '\r', '\u{2028}']),
                "a raw line break in {text:?}"
            );
            if text.contains("tree/file") {
                assert!(text.contains("tree/file\\x0a2026-12-02"), "{text:?}");
            }
        }
    }
}

#[test]
fn a_tree_deeper_than_any_b2_name_is_not_walked_below_the_limit() {
    // Below a path longer than B2's 1024-byte names nothing can be uploaded: the walk stops
    // there with one entry, instead of descending (a directory handle held per level, and
    // every file listed and refused one by one).
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("deep");
    let mut at = tree.clone();
    for _ in 0..600 {
        at.push("d");
    }
    std::fs::create_dir_all(&at).unwrap();
    for i in 0..30 {
        std::fs::write(at.join(format!("f{i}")), b"deep").unwrap();
    }
    write_file(&tree, "top", 10, 1);
    let (st, v) = upload(&cfg, &tree, "deep");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["file_count"], 1, "{v}");
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    let path = Path::new(skipped[0]["local_path"].as_str().unwrap());
    assert!(path.is_dir(), "{v}");
    // "backups/server1/deep/" + "d/" * k + one byte exceeds 1024 from k = 502 on.
    let depth = path.strip_prefix(&tree).unwrap().components().count();
    assert_eq!(depth, 502, "{v}");
    assert!(skipped[0]["reason"]
        .as_str()
        .unwrap()
        .contains("nothing below it"));
}

/// Not a test of its own: the child process of
/// `a_deep_tree_holds_few_handles_whatever_its_depth`, run with a low open-file limit.
#[test]
#[ignore]
fn upload_child_with_few_fds() {
    let cfg = std::env::var("B2DEST_FD_CHILD_CONFIG").expect("run by the fd test");
    let tree = std::env::var("B2DEST_FD_CHILD_TREE").unwrap();
    let limit = libc::rlimit {
        rlim_cur: 128,
        rlim_max: 128,
    };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let (st, v) = upload(&cfg, Path::new(&tree), "deep");
    println!("RESULT {st} {v}");
}

#[test]
fn a_deep_tree_holds_few_handles_whatever_its_depth() {
    // A directory upload holds a handle on the root, the directory listed last and those
    // of the files under way, whatever the depth: a customer's deep tree (a sibling at each
    // level) under a limit of 128 open files goes up whole, and the host's own sockets and
    // files keep theirs.
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 2}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("deep");
    let mut at = tree.clone();
    const DEPTH: usize = 300;
    for _ in 0..DEPTH {
        write_file(&at, "e/f", 3, 1);
        at.push("d");
    }
    write_file(&at, "bottom", 3, 2);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "upload_child_with_few_fds",
            "--ignored",
            "--nocapture",
        ])
        .env("B2DEST_FD_CHILD_CONFIG", &cfg)
        .env("B2DEST_FD_CHILD_TREE", &tree)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result: {stdout}"));
    let (st, v) = line.split_once(' ').unwrap();
    let v: serde_json::Value = serde_json::from_str(v).unwrap();
    assert_eq!(st, "0", "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["file_count"], DEPTH + 1, "{v}");
}

#[test]
fn a_directory_moved_during_the_walk_does_not_lose_its_old_neighbours() {
    // The walk climbs back to a parent through `..`; a customer who moves the directory
    // being uploaded elsewhere makes `..` another directory, which the walk notices and
    // reopens the parent from the root instead.
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("tree");
    write_file(&tree, "a/x/f1", 10, 1);
    write_file(&tree, "a/y/f2", 10, 2);
    write_file(&tree, "b/f3", 10, 3);
    // Moved while the first upload is held at the emulator.
    pass_then_hold(&emu, "b2_upload_file", 0, 1);
    let moved = || std::fs::rename(tree.join("a/x"), tree.join("x2")).unwrap();
    let (st, v) = with_held_change(&emu, moved, || upload(&cfg, &tree, "tree"));
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 0, "{v}");
    let mut names: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["remote_path"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["tree/a/x/f1", "tree/a/y/f2", "tree/b/f3"], "{v}");
}

/// A customer with a small disk quota can make a sparse file of terabytes (`truncate -s
/// 10T`), which costs them nothing on disk and the host its whole length in B2. It is still
/// uploaded (databases and disk images are sparse honestly), but the admin is told.
#[test]
fn a_sparse_file_far_larger_than_its_blocks_is_flagged() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let sparse = std::fs::File::create(tree.join("huge")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    assert!(sparse.metadata().unwrap().blocks() < 64);
    let (st, v) = upload(&cfg, &tree, "tree");
    assert_eq!(st, OK, "{v}");
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("sparse")),
        "{v}"
    );
}
