//! A hosting customer attacking the root-run library through the paths the host names and
//! through what the host's own tools cannot tell apart (red-team review of issue 11): links
//! the customer owns at the named path, hard links to files of other users, trees deeper
//! than any B2 name, and names that forge log lines.

mod common;

use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use serde_json::json;

const CUSTOMER: u32 = 4242;

/// A customer's home below `base`, owned by the customer, and a root-only directory beside
/// it standing for `/root/.ssh`.
fn home_and_root_only(base: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let home = base.join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
    let root_only = base.join("root-ssh");
    std::fs::create_dir_all(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    (home, root_only)
}

/// A symbolic link as the customer would plant it: owned by them.
fn plant_link(target: &Path, at: &Path) {
    symlink(target, at).unwrap();
    lchown(at, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
}

#[test]
fn a_link_the_customer_owns_in_the_named_path_is_not_followed() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let (home, root_only) = home_and_root_only(base.path());
    let keys = write_file(&base.path().join("scratch"), "authorized_keys", 300, 7);
    assert_eq!(upload(&cfg, &keys, "keys/authorized_keys").0, OK);

    // The host restores into the customer's home; the customer made the directory a link
    // to root's. Neither a single-file nor a directory restore may write there.
    plant_link(&root_only, &home.join("restore"));
    let (st, v) = download(
        &cfg,
        "keys/authorized_keys",
        &home.join("restore/authorized_keys"),
    );
    assert_eq!(st, LOCAL_IO, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&home.join("restore").display().to_string()));
    let (st, v) = download(&cfg, "keys/", &home.join("restore"));
    assert_eq!(st, LOCAL_IO, "{v}");
    // A link further up (the home itself swapped for a link) is refused as well.
    let (st, v) = download(&cfg, "keys/", &home.join("restore/deeper"));
    assert_eq!(st, LOCAL_IO, "{v}");
    assert_eq!(std::fs::read_dir(&root_only).unwrap().count(), 0);

    // A single-file upload of a name that the customer made a link to a root-only file.
    let shadow = base.path().join("root-ssh-shadow");
    std::fs::write(&shadow, b"root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
    plant_link(&shadow, &home.join("note.txt"));
    let (st, v) = upload(&cfg, &home.join("note.txt"), "note.txt");
    assert_eq!(st, LOCAL_IO, "{v}");
    let (st, v) = upload(&cfg, &home, "home");
    assert_eq!(st, OK, "{v}");
    assert!(emu
        .file_versions(BUCKET)
        .iter()
        .all(|f| !f.file_name.contains("note.txt")));

    // The host's own links (owned by root, or by the host's user) are still followed.
    let restored = base.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    symlink(&restored, base.path().join("host-link")).unwrap();
    let (st, v) = download(
        &cfg,
        "keys/authorized_keys",
        &base.path().join("host-link/sub/authorized_keys"),
    );
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        std::fs::read(restored.join("sub/authorized_keys")).unwrap(),
        content(300, 7)
    );
    let (st, v) = upload(
        &cfg,
        &base.path().join("host-link/sub/authorized_keys"),
        "k2",
    );
    assert_eq!(st, OK, "{v}");
}

#[test]
fn a_hard_link_to_another_users_file_is_not_uploaded() {
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
    // A handle held per level of depth let a customer's deep tree (a sibling at each level)
    // use up the host process's open files: the deepest directories were skipped, and the
    // host's own sockets and files would fail alongside.
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
    use b2_emulator::{Fault, FaultAction};
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("tree");
    write_file(&tree, "a/x/f1", 10, 1);
    write_file(&tree, "a/y/f2", 10, 2);
    write_file(&tree, "b/f3", 10, 3);
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 1,
        action: FaultAction::Delay { millis: 800 },
    });
    let (st, v) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while emu.counts().get("b2_upload_file") < 1 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::fs::rename(tree.join("a/x"), tree.join("x2")).unwrap();
        });
        upload(&cfg, &tree, "tree")
    });
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

/// Not a test of its own: the child process of
/// `restored_directories_are_never_world_writable`, run with a umask of 0 (as some daemons
/// set).
#[test]
#[ignore]
fn restore_child_with_umask_zero() {
    let cfg = std::env::var("B2DEST_UMASK_CHILD_CONFIG").expect("run by the umask test");
    let target = std::env::var("B2DEST_UMASK_CHILD_TARGET").unwrap();
    unsafe { libc::umask(0) };
    let (st, v) = download(&cfg, "tree/", Path::new(&target));
    println!("RESULT {st} {v}");
}

#[test]
fn restored_directories_are_never_world_writable() {
    // Root-owned directories that a restore makes inside a customer's tree: with the
    // daemon's umask 0 they were 0777, open to every other user on the host.
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    write_file(&base.path().join("tree"), "a/b/f", 10, 1);
    assert_eq!(upload(&cfg, &base.path().join("tree"), "tree").0, OK);
    let target = base.path().join("restore/new");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "restore_child_with_umask_zero",
            "--ignored",
            "--nocapture",
        ])
        .env("B2DEST_UMASK_CHILD_CONFIG", &cfg)
        .env("B2DEST_UMASK_CHILD_TARGET", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("RESULT 0 "), "{stdout}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    for dir in ["restore", "restore/new", "restore/new/a", "restore/new/a/b"] {
        assert_eq!(mode(&base.path().join(dir)), 0o755, "{dir}");
    }
    assert_eq!(mode(&base.path().join("restore/new/a/b/f")), 0o600);
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

/// A symbolic link of the host's, in a directory only the host can write, on the way to
/// the customer's home (`/home -> /data/home`, `/var/run -> /run`): followed, for a restore
/// and for an upload, relative or absolute, also below the sticky `/tmp` the test lives in.
#[test]
fn a_root_owned_link_in_a_root_only_directory_on_the_named_path_is_followed() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let data_home = base.path().join("data/home");
    std::fs::create_dir_all(&data_home).unwrap();
    for d in [base.path().join("data"), data_home.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (real_home, _) = home_and_root_only(&base.path().join("data"));
    assert_eq!(real_home, data_home.join("alice"));
    symlink("data/home", base.path().join("home")).unwrap();
    symlink(base.path().join("data"), base.path().join("run")).unwrap();
    let keys = write_file(&base.path().join("scratch"), "authorized_keys", 300, 7);
    assert_eq!(upload(&cfg, &keys, "keys/authorized_keys").0, OK);

    for (via, remote) in [("home/alice/restore", "r1"), ("run/home/alice/again", "r2")] {
        let target = base.path().join(via);
        let (st, v) = download(&cfg, "keys/", &target);
        assert_eq!(st, OK, "{via}: {v}");
        let real = real_home.join(target.file_name().unwrap());
        assert_eq!(
            std::fs::read(real.join("authorized_keys")).unwrap(),
            content(300, 7)
        );
        let (st, v) = upload(&cfg, &target.join("authorized_keys"), remote);
        assert_eq!(st, OK, "{via}: {v}");
        let (st, v) = upload(&cfg, &target, &format!("{remote}-dir"));
        assert_eq!(st, OK, "{via}: {v}");
    }
}

/// A link the host owns (root's, as a panel leaves `~/access-logs`) is still refused where a
/// customer chose its name: in a directory they own, in a directory others can write, and
/// below any such directory (a root-owned directory in their home they may have renamed).
#[test]
fn a_root_owned_link_where_a_customer_could_put_it_is_refused_for_a_restore() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let (home, root_only) = home_and_root_only(base.path());
    let keys = write_file(&base.path().join("scratch"), "authorized_keys", 300, 7);
    assert_eq!(upload(&cfg, &keys, "keys/authorized_keys").0, OK);

    // Root's link, in the customer's home (a name with a line break: escaped where the
    // refusal names it).
    symlink(&root_only, home.join("site\nx")).unwrap();
    // Root's directory, root's link, below the customer's home.
    let panel = home.join("panel");
    std::fs::create_dir(&panel).unwrap();
    std::fs::set_permissions(&panel, std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(&root_only, panel.join("logs")).unwrap();
    // Root's link in a root-owned directory everyone (or its group) may write, sticky or not.
    let mut shared = Vec::new();
    for (name, mode) in [("shared", 0o777), ("sticky", 0o1777), ("group", 0o775)] {
        let d = base.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        symlink(&root_only, d.join("logs")).unwrap();
        shared.push((d.join("logs"), "writable by its group or by everyone"));
    }
    let cases = [
        (home.join("site\nx"), "owned by user 4242"),
        (panel.join("logs"), "no link is followed past"),
    ];
    for (link, why) in cases.into_iter().chain(shared) {
        let file_target = link.join("authorized_keys");
        for (remote, target) in [
            ("keys/authorized_keys", &file_target),
            ("keys/", &link),
            ("keys/", &link.join("deeper")),
        ] {
            let (st, v) = download(&cfg, remote, target);
            assert_eq!(st, LOCAL_IO, "{}: {v}", target.display());
            let message = v["error"]["message"].as_str().unwrap();
            let shown = link.display().to_string().replace('\n', "\\x0a");
            assert!(message.contains(&shown), "{message}");
            assert!(message.contains(why), "{message}");
            assert!(message.contains("not followed"), "{message}");
        }
        let (st, v) = upload(&cfg, &file_target, "stolen");
        assert_eq!(st, LOCAL_IO, "{v}");
        assert_eq!(std::fs::read_dir(&root_only).unwrap().count(), 0);
    }
}
