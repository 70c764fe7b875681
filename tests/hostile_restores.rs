//! What a hosting customer can do to a directory of theirs that the root-run library
//! restores into, through the C ABI and the emulator: swap the restore's temporary file
//! (named, or the default unnamed one) for a link of theirs, make a restored directory look
//! like a leftover private directory of the library's (a strict umask, a default ACL), or
//! hope for directories open to everyone under a daemon's umask 0. Tests that give files to
//! the customer's uid need root and say so when skipped. (Links planted during a restore
//! at every level, and a killed restore, are in tests/hostile.rs; links on the path the
//! host names, in tests/hostile_paths.rs.)

mod common;

use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::customer::*;
use common::faults::{await_held, pass_then_hold};
use common::*;
use serde_json::{json, Value};

/// Not a test of its own: the host process of
/// `a_temporary_file_the_customer_swaps_during_a_restore_is_not_renamed_into_place`.
#[test]
#[ignore]
fn redteam_child_restore() {
    let cfg = std::env::var("REDTEAM_CHILD_CONFIG").expect("run by its parent test");
    let remote = std::env::var("REDTEAM_CHILD_REMOTE").unwrap();
    let target = std::env::var("REDTEAM_CHILD_TARGET").unwrap();
    let (st, v) = download(&cfg, &remote, Path::new(&target));
    println!("RESULT {st} {v}");
}

fn temp_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".b2dest-") && n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_temporary_file_the_customer_swaps_during_a_restore_is_not_renamed_into_place() {
    if !needs_root() {
        return;
    }
    // Where the file system has no O_TMPFILE (NFS, CIFS; forced here with the library's own
    // test switch B2DEST_TEST_NAMED_TEMP), a restore writes its temporary file in a private
    // directory of the library's beside the target and renames it into place through that
    // directory's handle. The customer owns the directory holding the target: while the
    // download is held at the emulator they rename what the library made there away and
    // put a symbolic link of their own (to /etc/shadow, say) under its name. The swap
    // reaches only the private directory's name: the target is the restored file, root's.
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    // Two ranges: the second, by id, is held while the temporary exists (the first comes
    // with the by-name answer that says the file's size).
    let src = write_file(
        &base.path().join("src"),
        "wp-config.php",
        PART as usize + 5000,
        3,
    );
    assert_eq!(upload(&cfg, &src, "site/wp-config.php").0, OK);
    let (home, outside) = home_beside_a_shadow(base.path());
    let target = home.join("wp-config.php");

    pass_then_hold(&emu, "b2_download_file_by_id", 0, 1);
    let home_for_swap = home.clone();
    let outside_for_swap = outside.clone();
    let (status, result, stderr, _) = run_child(
        "redteam_child_restore",
        &[
            ("REDTEAM_CHILD_CONFIG", cfg.as_str()),
            ("REDTEAM_CHILD_REMOTE", "site/wp-config.php"),
            ("REDTEAM_CHILD_TARGET", target.to_str().unwrap()),
            ("B2DEST_TEST_NAMED_TEMP", "1"),
        ],
        Duration::from_secs(60),
        || {
            // The customer's move, made while the download is held.
            await_held(&emu, 1);
            // Whatever the library made beside the target (the private directory).
            let temps: Vec<String> = std::fs::read_dir(&home_for_swap)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".b2dest-"))
                .collect();
            assert_eq!(temps.len(), 1, "the restore's temporary: {temps:?}");
            let temp = home_for_swap.join(&temps[0]);
            std::fs::rename(&temp, home_for_swap.join("stash")).unwrap();
            symlink(&outside_for_swap, &temp).unwrap();
            lchown(&temp, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
            assert_eq!(emu.release(1), 1);
        },
    );
    assert!(status.signal().is_none(), "{stderr}");
    let (st, v) = result.unwrap_or_else(|| panic!("the host printed no result: {stderr}"));
    let meta = std::fs::symlink_metadata(&target);
    let planted = meta.as_ref().is_ok_and(|m| m.file_type().is_symlink());
    assert!(
        !(st == OK && planted),
        "the restore answered OK ({v}) but {} is now the customer's symbolic link to {}, renamed into place from the temporary file's name",
        target.display(),
        std::fs::read_link(&target).map(|p| p.display().to_string()).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        b"root:$6$hash:19000:0:99999:7:::\n",
        "the file the customer's link points to is untouched"
    );
    if st == OK {
        let m = meta.unwrap();
        assert!(m.is_file(), "{v}");
        assert_eq!(
            std::fs::read(&target).unwrap(),
            content(PART as usize + 5000, 3),
            "{v}"
        );
        assert_eq!(m.uid(), 0, "{v}");
        assert_eq!(v["verified"], true, "{v}");
    } else {
        assert!(
            !planted,
            "a failed restore left the customer's link at the target: {v}"
        );
    }
    assert!(
        temp_names(&home).is_empty(),
        "no temporary file is left named beside the target: {:?}",
        temp_names(&home)
    );
}

#[test]
fn the_default_unnamed_temporary_is_not_swapped_between_link_and_rename() {
    if !needs_root() {
        return;
    }
    // The default path (O_TMPFILE): the verified unnamed file is given a name only inside
    // the restore's private directory, and put in place through handles. The customer
    // watches their directory with inotify and, as a `.b2dest-` name appears, swaps a
    // symbolic link of their own in with one `renameat2(RENAME_EXCHANGE)`: no restore may
    // answer OK with their link at the target. A stress test: bounded to 1,000 restores or
    // 10 s.
    use std::ffi::CString;
    use std::sync::atomic::{AtomicBool, Ordering};
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let src = write_file(&base.path().join("src"), "f", 2000, 3);
    assert_eq!(upload(&cfg, &src, "f").0, OK);
    let (home, outside) = home_beside_a_shadow(base.path());
    let target = home.join("f");
    let stop = AtomicBool::new(false);
    let found = std::thread::scope(|s| {
        let (home2, outside2, stop) = (home.clone(), outside.clone(), &stop);
        // The customer's watcher: spins on a non-blocking inotify descriptor.
        s.spawn(move || unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            let hp = CString::new(home2.to_str().unwrap()).unwrap();
            assert!(libc::inotify_add_watch(fd, hp.as_ptr(), libc::IN_CREATE) >= 0);
            let dfd = libc::open(hp.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            let to = CString::new(outside2.to_str().unwrap()).unwrap();
            let mut buf = [0u8; 4096];
            let mut made = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    continue;
                }
                let mut off = 0usize;
                while off < n as usize {
                    let ev = &*(buf.as_ptr().add(off) as *const libc::inotify_event);
                    let name_at = buf
                        .as_ptr()
                        .add(off + std::mem::size_of::<libc::inotify_event>());
                    off += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
                    if ev.len == 0 {
                        continue;
                    }
                    let name = std::ffi::CStr::from_ptr(name_at.cast());
                    // Every name the library makes beside the target (its private
                    // directory).
                    if !name.to_bytes().windows(7).any(|w| w == b"b2dest-") {
                        continue;
                    }
                    made += 1;
                    let link = CString::new(format!(".planted{made}")).unwrap();
                    libc::symlinkat(to.as_ptr(), dfd, link.as_ptr());
                    libc::renameat2(
                        dfd,
                        link.as_ptr(),
                        dfd,
                        name.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    );
                }
            }
        });
        let start = Instant::now();
        let mut found = None;
        for attempt in 1..=1000 {
            if start.elapsed() > Duration::from_secs(10) {
                break;
            }
            // Every other restore replaces the file the last one left: both ways of putting a
            // file in place (a new name, a replaced one) face the watcher.
            if attempt % 2 == 1 {
                let _ = std::fs::remove_file(&target);
            }
            let (st, v) = download(&cfg, "f", &target);
            let planted =
                std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink());
            if st == OK && planted {
                found = Some((attempt, v));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        found
    });
    if let Some((attempt, v)) = found {
        panic!(
            "restore {attempt} answered OK ({v}) but {} is the customer's symbolic link to {}",
            target.display(),
            outside.display()
        );
    }
}

// Directories a restore makes are 0755 through their handle, whatever the umask or a
// default ACL: so a backed-up directory named like a restore's private directory
// (`.b2dest-<16 hex>`; a private one is 0700 and the library's) is never taken for a
// leftover by the next restore's clean-up, and what was restored into it stays.
const LEFTOVER_LIKE: &str = ".b2dest-0123456789abcdef";

/// A backed-up tree `tree` holding a directory with a leftover's name and a file in it
/// with the library's temporary name; returns the restore target in a customer's home.
fn tree_with_a_leftover_like_directory(cfg: &str, base: &Path) -> PathBuf {
    let tree = base.join("src/tree");
    write_file(&tree.join(LEFTOVER_LIKE), "restoring.b2dest.tmp", 700, 1);
    write_file(&tree, "index.html", 300, 2);
    let (st, v) = upload(cfg, &tree, "tree");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["file_count"], 2, "{v}");
    customer_home(base).join("restore")
}

/// The restore answered OK, and what it restored inside the leftover-like directory is
/// still there, in a 0755 directory.
fn assert_restored_and_kept(st: i32, v: &Value, target: &Path, how: &str) {
    assert_eq!(st, OK, "{v}");
    let restored = target.join(LEFTOVER_LIKE).join("restoring.b2dest.tmp");
    assert!(
        restored.is_file(),
        "the restore reported {} but {} is gone: the directory it made ({how}) was taken for a leftover private directory and removed by the clean-up",
        v["files"],
        restored.display()
    );
    let mode = std::fs::metadata(target.join(LEFTOVER_LIKE))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755, "{how}: restored directories are 0755");
}

/// Not a test of its own: the host process of
/// `with_a_strict_umask_a_restored_directory_is_not_taken_for_a_leftover`, run with the
/// umask a root daemon often has.
#[test]
#[ignore]
fn redteam_child_restore_with_umask_077() {
    let cfg = std::env::var("REDTEAM_CHILD_CONFIG").expect("run by its parent test");
    let target = std::env::var("REDTEAM_CHILD_TARGET").unwrap();
    // SAFETY: umask cannot fail; this process is the test's child alone.
    unsafe { libc::umask(0o077) };
    let (st, v) = download(&cfg, "tree/", Path::new(&target));
    println!("RESULT {st} {v}");
}

#[test]
fn with_a_strict_umask_a_restored_directory_is_not_taken_for_a_leftover() {
    if !needs_root() {
        return;
    }
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let target = tree_with_a_leftover_like_directory(&cfg, base.path());
    let (_, result, stderr, _) = run_child(
        "redteam_child_restore_with_umask_077",
        &[
            ("REDTEAM_CHILD_CONFIG", cfg.as_str()),
            ("REDTEAM_CHILD_TARGET", target.to_str().unwrap()),
        ],
        Duration::from_secs(60),
        || {},
    );
    let (st, v) = result.unwrap_or_else(|| panic!("the host printed no result: {stderr}"));
    assert_restored_and_kept(st, &v, &target, "umask 077");
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
    if !needs_root() {
        return;
    }
    // No help from the host needed: any owner may put a default ACL on their directory,
    // and it replaces the umask for what is made in it.
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let base = tempfile::tempdir().unwrap();
    let target = tree_with_a_leftover_like_directory(&cfg, base.path());
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
    set_default_acl_owner_only(&target);
    let (st, v) = download(&cfg, "tree/", &target);
    assert_restored_and_kept(st, &v, &target, "the customer's default ACL");
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
    // Root-owned directories that a restore makes inside a customer's tree are 0755
    // (fchmod through their handle) even under a daemon's umask 0: never open to every
    // other user on the host. Files are 0600.
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
