//! Directories a restore makes keep 0755 whatever the host's umask or a customer's default
//! ACL, so that one with a `.b2dest-` name (a backed-up tree can hold one) is never taken
//! for a restore's private directory by the next clean-up, which would delete the files
//! restored into it. Found by a second red-team review; both tests failed before the fix.
//! They need root (the home is given to the customer's uid).
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

const CUSTOMER: u32 = 4242;

/// A customer's home below `base`, owned by the customer.
fn customer_home(base: &Path) -> PathBuf {
    let home = base.join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
    home
}

/// Runs the `#[ignore]`d test `child` of this binary as a separate process (the host), with
/// `env`; returns its `RESULT <status> <json>` line and its output.
fn run_child(child: &str, env: &[(&str, &str)]) -> (Option<(i32, Value)>, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        child,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let result = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|x| x.1))
        .map(|l| {
            let (st, v) = l.split_once(' ').unwrap();
            (st.parse().unwrap(), serde_json::from_str(v).unwrap())
        });
    (
        result,
        format!(
            "{}\n(stdout: {stdout})",
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// ---------------------------------------------------------------------------------------
// 3. With a strict umask, a directory the restore makes looks like a leftover of its own.
// ---------------------------------------------------------------------------------------

/// Not a test of its own: the host process of
/// `with_a_strict_umask_a_restored_directory_is_not_taken_for_a_leftover`, run with the
/// umask a root daemon often has.
#[test]
#[ignore]
fn restore_dir_modes_child_with_umask_077() {
    let cfg = std::env::var("REVIEW2_CHILD_CONFIG").expect("run by its parent test");
    let target = std::env::var("REVIEW2_CHILD_TARGET").unwrap();
    // SAFETY: umask cannot fail; this process is the test's child alone.
    unsafe { libc::umask(0o077) };
    let (st, v) = download(&cfg, "tree/", Path::new(&target));
    println!("RESULT {st} {v}");
}

#[test]
fn with_a_strict_umask_a_restored_directory_is_not_taken_for_a_leftover() {
    // The README says "Directories a restore creates are 0755 whatever the umask"; they are
    // made with mkdirat(0755) and nothing else (`Dir::make_subdir`, DIR_MODE in
    // src/local/dir.rs), so a host with umask 077 gets root-owned 0700 directories: exactly
    // what `open_private` takes for a private directory of the library. A directory of the
    // backed-up tree named `.b2dest-<16 hex>` (any customer can make one; it is backed up
    // like any other) is then, once restored, removed by the leftover clean-up of its
    // parent (`remove_stale_temps`) together with a restored file in it named
    // `restoring.b2dest.tmp`: reported restored and verified, gone from disk. With
    // concurrency the clean-up can also rmdir it (empty while its file is an unnamed
    // O_TMPFILE) under the restore that is writing into it.
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("src/tree");
    let leftover_like = ".b2dest-0123456789abcdef";
    write_file(&tree.join(leftover_like), "restoring.b2dest.tmp", 700, 1);
    write_file(&tree, "index.html", 300, 2);
    let (st, v) = upload(&cfg, &tree, "tree");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["file_count"], 2, "{v}");
    let home = customer_home(base.path());
    let target = home.join("restore");

    let (result, output) = run_child(
        "restore_dir_modes_child_with_umask_077",
        &[
            ("REVIEW2_CHILD_CONFIG", cfg.as_str()),
            ("REVIEW2_CHILD_TARGET", target.to_str().unwrap()),
        ],
    );
    let (st, v) = result.unwrap_or_else(|| panic!("the host printed no result: {output}"));
    assert_eq!(st, OK, "{v}");
    let restored = target.join(leftover_like).join("restoring.b2dest.tmp");
    let listed: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} verified={}", f["path"], f["verified"]))
        .collect();
    assert!(
        restored.is_file(),
        "the restore reported {listed:?} but {} is gone: its 0700 directory (umask 077) was taken for a leftover private directory and removed by the clean-up",
        restored.display()
    );
    let mode = std::fs::metadata(target.join(leftover_like))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(
        mode, 0o755,
        "README: restored directories are 0755 whatever the umask"
    );
}

/// The customer's `setfacl -d -m g::---,o::--- DIR` on a directory they own: a default ACL
/// with no named entry, so that what is made in it gets no group or other bits, whatever
/// the mode asked for and the umask (written as the kernel's xattr, no setfacl needed).
fn set_default_acl_owner_only(dir: &Path) {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 0), (0x20, 0)] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and a buffer of its length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"system.posix_acl_default".as_ptr(),
            acl.as_ptr().cast(),
            acl.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}

#[test]
fn a_restored_directory_under_the_customers_default_acl_is_not_taken_for_a_leftover() {
    // The same without any help from the host: the customer puts a default ACL without
    // named entries on their own directory (any owner may). A default ACL replaces the
    // umask, and its group and other entries (none) are what new directories get: the
    // restore's mkdirat(0755) makes root-owned 0700 directories, which `open_private` takes
    // for the library's own. The customer's backed-up `.b2dest-<16 hex>/restoring.b2dest.tmp`
    // is restored, reported verified, then removed by the clean-up of its parent.
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("src/tree");
    let leftover_like = ".b2dest-0123456789abcdef";
    write_file(&tree.join(leftover_like), "restoring.b2dest.tmp", 700, 1);
    write_file(&tree, "index.html", 300, 2);
    let (st, v) = upload(&cfg, &tree, "tree");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["file_count"], 2, "{v}");
    let home = customer_home(base.path());
    let target = home.join("restore");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
    set_default_acl_owner_only(&target);

    let (st, v) = download(&cfg, "tree/", &target);
    assert_eq!(st, OK, "{v}");
    let restored = target.join(leftover_like).join("restoring.b2dest.tmp");
    let listed: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} verified={}", f["path"], f["verified"]))
        .collect();
    assert!(
        restored.is_file(),
        "the restore reported {listed:?} but {} is gone: the directory it made (0700 under the customer's default ACL) was taken for a leftover private directory and removed by the clean-up",
        restored.display()
    );
}
