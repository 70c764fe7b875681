//! Conformance with a real B2 client: Debian's `rclone` (which speaks /b2api/v1/) runs
//! its usual commands against the emulator, as it would against Backblaze.
//!
//! rclone must be installed; if it is missing the test tries `apt-get install -y rclone`
//! once, and fails unless `B2DEST_SKIP_RCLONE=1`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use b2_emulator::{Config, Emulator};
use sha1::{Digest, Sha1};

const BUCKET: &str = "rclone-bucket";
/// Over rclone's default 200 MiB upload cutoff, so it is sent as a large file in
/// 96 MiB parts (rclone's default chunk size): 96 + 96 + 18 MiB.
const BIG_SIZE: usize = 210 << 20;

fn rclone_available() -> bool {
    Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Finds rclone, installing it once if needed; `false` means "skip".
fn ensure_rclone() -> bool {
    if rclone_available() {
        return true;
    }
    eprintln!("rclone not found; trying apt-get install -y rclone");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "rclone"])
        .status();
    if rclone_available() {
        return true;
    }
    if std::env::var("B2DEST_SKIP_RCLONE").as_deref() == Ok("1") {
        eprintln!("rclone is missing and B2DEST_SKIP_RCLONE=1: skipping");
        return false;
    }
    panic!("rclone is not installed (apt-get install rclone), or set B2DEST_SKIP_RCLONE=1");
}

struct Rclone<'a> {
    emulator: &'a Emulator,
    config_path: String,
}

impl Rclone<'_> {
    /// Runs rclone with an `emu:` remote made from environment variables.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("rclone")
            .args(args)
            .env("RCLONE_CONFIG", &self.config_path)
            .env("RCLONE_CONFIG_EMU_TYPE", "b2")
            .env("RCLONE_CONFIG_EMU_ACCOUNT", self.emulator.account_id())
            .env("RCLONE_CONFIG_EMU_KEY", self.emulator.application_key())
            .env("RCLONE_CONFIG_EMU_ENDPOINT", self.emulator.url())
            .output()
            .expect("rclone runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "rclone {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }
}

fn sha1_file(path: &Path) -> String {
    let data = std::fs::read(path).unwrap();
    Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `rclone lsl` / `sha1sum` lines as name -> first column.
fn by_name(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.last().unwrap().to_string(), fields[0].to_string())
        })
        .collect()
}

#[test]
fn rclone_works_against_the_emulator() {
    if !ensure_rclone() {
        return;
    }
    let emulator = Emulator::start(Config {
        buckets: vec![],
        ..Config::default()
    })
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let rc = Rclone {
        emulator: &emulator,
        config_path: work
            .path()
            .join("rclone.conf")
            .to_string_lossy()
            .into_owned(),
    };
    let local = work.path().join("src");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("small.txt"), b"hello from rclone\n".repeat(50)).unwrap();
    {
        let mut block = vec![0u8; 1 << 20];
        fastrand::Rng::with_seed(42).fill(&mut block);
        let mut f = std::io::BufWriter::new(std::fs::File::create(local.join("big.bin")).unwrap());
        for i in 0..BIG_SIZE >> 20 {
            block[0] = i as u8; // every MiB differs
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    let local_str = local.to_str().unwrap();
    let remote = format!("emu:{BUCKET}/dir");

    rc.ok(&["mkdir", &format!("emu:{BUCKET}")]);
    assert!(emulator.file_versions(BUCKET).is_empty());
    rc.ok(&["copy", local_str, &remote]);
    let counts = emulator.counts();
    assert_eq!(counts.get("b2_start_large_file"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_upload_part"), 3, "{counts:?}");
    assert_eq!(counts.get("b2_finish_large_file"), 1);
    assert_eq!(counts.get("b2_upload_file"), 1);

    let listing = by_name(&rc.ok(&["lsl", &remote]));
    assert_eq!(listing.get("small.txt").map(String::as_str), Some("900"));
    assert_eq!(listing.get("big.bin"), Some(&BIG_SIZE.to_string()));
    assert_eq!(listing.len(), 2);

    let sums = by_name(&rc.ok(&["sha1sum", &remote]));
    assert_eq!(sums["small.txt"], sha1_file(&local.join("small.txt")));
    assert_eq!(
        sums["big.bin"],
        sha1_file(&local.join("big.bin")),
        "large_file_sha1 is served"
    );

    let before = emulator.counts().bytes_sent;
    rc.ok(&["check", "--download", local_str, &remote]);
    assert!(emulator.counts().bytes_sent - before >= BIG_SIZE as u64 + 900);

    // Overwrite: B2 keeps both versions, and --b2-versions shows the old one.
    std::fs::write(local.join("small.txt"), b"second version\n").unwrap();
    rc.ok(&["copy", local_str, &remote]);
    let versions = rc.ok(&["ls", "--b2-versions", &remote]);
    let lines: Vec<&str> = versions.lines().collect();
    assert_eq!(lines.len(), 3, "{versions}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("small-v") && l.trim_start().starts_with("900 ")),
        "{versions}"
    );
    assert!(lines
        .iter()
        .any(|l| l.trim_end().ends_with(" small.txt") && l.trim_start().starts_with("15 ")));
    let small_versions = || {
        emulator
            .file_versions(BUCKET)
            .into_iter()
            .filter(|v| v.file_name == "dir/small.txt")
            .count()
    };
    assert_eq!(small_versions(), 2);

    // A hard delete removes the version itself instead of hiding the name.
    emulator.reset_counts();
    rc.ok(&[
        "deletefile",
        "--b2-hard-delete",
        &format!("{remote}/small.txt"),
    ]);
    let counts = emulator.counts();
    assert_eq!(counts.get("b2_delete_file_version"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_hide_file"), 0);
    assert_eq!(small_versions(), 1);
    assert!(emulator
        .file_versions(BUCKET)
        .iter()
        .all(|v| v.action == "upload"));

    // Purge removes every version and the bucket itself.
    rc.ok(&["purge", &format!("emu:{BUCKET}")]);
    assert!(emulator.file_versions(BUCKET).is_empty());
    let (ok, stdout, _) = rc.run(&["lsd", "emu:"]);
    assert!(ok);
    assert!(!stdout.contains(BUCKET), "{stdout}");
    assert_eq!(
        std::fs::read_dir(emulator.data_dir().join("blobs"))
            .unwrap()
            .count(),
        0
    );
}
