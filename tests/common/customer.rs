//! A hosting customer for the hostile-customer tests: their uid, their home, root's files
//! beside it, links as they would plant them, and the host as a child process. Making any
//! of these needs root (`common::needs_root`).

use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The customer's uid and gid.
pub const CUSTOMER: u32 = 4242;

/// A customer's home below `base`, owned by the customer.
pub fn customer_home(base: &Path) -> PathBuf {
    let home = base.join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
    home
}

/// A customer's home below `base`, and root's 0600 file beside it standing for
/// /etc/shadow, which the customer's links point at.
pub fn home_beside_a_shadow(base: &Path) -> (PathBuf, PathBuf) {
    let outside = base.join("etc-shadow");
    std::fs::write(&outside, b"root:$6$hash:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
    (customer_home(base), outside)
}

/// A customer's home below `base`, and a root-only directory beside it standing for
/// `/root/.ssh`.
pub fn home_and_root_only(base: &Path) -> (PathBuf, PathBuf) {
    let home = customer_home(base);
    let root_only = base.join("root-ssh");
    std::fs::create_dir_all(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    (home, root_only)
}

/// A symbolic link as the customer would plant it: owned by them.
pub fn plant_link(target: &Path, at: &Path) {
    symlink(target, at).unwrap();
    lchown(at, Some(CUSTOMER), Some(CUSTOMER)).unwrap();
}

/// Runs the `#[ignore]`d test `child` of this binary as a separate process (the host), with
/// `env`; returns its exit status, its `RESULT <status> <json>` line if it printed one, and
/// its stderr. Killed (and reported as such) after `limit`.
pub fn run_child(
    child: &str,
    env: &[(&str, &str)],
    limit: Duration,
    during: impl FnOnce(),
) -> (std::process::ExitStatus, Option<(i32, Value)>, String, bool) {
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
    let mut proc = cmd.spawn().unwrap();
    during();
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = proc.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            timed_out = true;
            proc.kill().unwrap();
            break proc.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    proc.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    proc.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let result = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|x| x.1))
        .map(|l| {
            let (st, v) = l.split_once(' ').unwrap();
            (st.parse().unwrap(), serde_json::from_str(v).unwrap())
        });
    (
        status,
        result,
        format!("{stderr}\n(stdout: {stdout})"),
        timed_out,
    )
}
