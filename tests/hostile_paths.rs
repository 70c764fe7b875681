//! The path the host names, against a hosting customer who owns part of it: a symbolic
//! link on it is followed only where nobody but the host could have put it at that name
//! (src/local/trusted.rs). A link the customer owns, a root-owned link they renamed there,
//! and a root-owned link in a directory they own or anyone may write are refused, for a
//! restore and an upload; the host's own links (`/home -> /data/home`) are followed. These
//! give files to the customer's uid: they need root and say so when skipped.

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use common::customer::*;
use common::*;
use serde_json::json;

#[test]
fn a_link_the_customer_owns_in_the_named_path_is_not_followed() {
    if !needs_root() {
        return;
    }
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
fn a_root_owned_link_the_customer_renamed_into_the_named_path_is_not_followed() {
    if !needs_root() {
        return;
    }
    // `open_trusted` (src/local/trusted.rs) follows a symbolic link in the path the host
    // names only where nobody but the host could have put it at that name: who owns a link
    // says nothing of who chose its name, and the customer may rename any entry of a
    // directory they own, a root-owned link included. Panels leave such links in homes
    // (cPanel's `~/access-logs -> .../domlogs/<user>` is the usual example), and with
    // fs.protected_hardlinks off a customer can hard-link any root-owned link of the file
    // system (/var/run -> /run, /etc/alternatives/*) into their tree. The customer moves
    // their real `restore` away and renames the root-owned link to `restore`: neither the
    // host's restore into /home/alice/restore nor an upload of it reaches the root-only
    // directory.
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let (home, root_only) = home_and_root_only(base.path());
    std::fs::write(
        root_only.join("secret.key"),
        b"-----BEGIN PRIVATE KEY-----\n",
    )
    .unwrap();
    // The panel's own link in the home, owned by root (this test runs as root).
    symlink(&root_only, home.join("access-logs")).unwrap();
    assert_eq!(
        std::fs::symlink_metadata(home.join("access-logs"))
            .unwrap()
            .uid(),
        0
    );
    let keys = write_file(&base.path().join("scratch"), "authorized_keys", 300, 7);
    assert_eq!(upload(&cfg, &keys, "keys/authorized_keys").0, OK);

    // The customer's move: a rename in a directory they own, no ownership needed.
    std::fs::rename(home.join("access-logs"), home.join("restore")).unwrap();

    let (st, v) = download(&cfg, "keys/", &home.join("restore"));
    let written: Vec<String> = std::fs::read_dir(&root_only)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "secret.key")
        .collect();
    assert!(
        written.is_empty(),
        "the restore into {} followed the root-owned link the customer renamed there and wrote {written:?} into the root-only {} (status {st}: {v})",
        home.join("restore").display(),
        root_only.display()
    );
    let (st, v) = upload(&cfg, &home.join("restore"), "home-restore");
    let read: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .filter(|f| f.file_name.ends_with("secret.key"))
        .map(|f| f.file_name)
        .collect();
    assert!(
        read.is_empty(),
        "the upload read the root-only directory: {read:?} ({st}: {v})"
    );
}

/// A symbolic link of the host's, in a directory only the host can write, on the way to
/// the customer's home (`/home -> /data/home`, `/var/run -> /run`): followed, for a restore
/// and for an upload, relative or absolute, also below the sticky `/tmp` the test lives in.
#[test]
fn a_root_owned_link_in_a_root_only_directory_on_the_named_path_is_followed() {
    if !needs_root() {
        return;
    }
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
    if !needs_root() {
        return;
    }
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
