//! The library inside a real C host process: tests/c/fork_threads.c links libb2dest.so the
//! way a control panel's backup engine does and checks fork() (also while other threads
//! are inside calls), 16 threads at once, a progress callback that cancels a multipart
//! upload, one that calls back into the library, on which thread log lines arrive, and a
//! log callback that calls back into the library (issue "Reliability and security", items
//! 4 and 7). It runs natively, and again under valgrind (memcheck), which must find no
//! invalid access and no definite leak.
//!
//! The shared library is built as a host gets it (`cargo build -p b2dest --lib`, in this
//! test's target directory and profile): the copy `cargo test` builds has the
//! dev-dependencies' features unified in (tokio's parking_lot, through b2-emulator),
//! which a host never gets and which by itself breaks fork(). The emulator runs in this
//! process. Set B2DEST_SKIP_VALGRIND=1 to skip the valgrind pass.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use b2_emulator::{Config, Emulator};

const C_SOURCE: &str = "tests/c/fork_threads.c";
const STEPS: [&str; 7] = [
    "fork",
    "threads",
    "cancel",
    "reentrant",
    "log",
    "busy-fork",
    "log-reentrant",
];
/// A forked child under valgrind inherits its parent's runtime with the threads gone and
/// abandons it by design (src/runtime.rs): valgrind calls that memory definitely lost.
/// A few KB per ancestor is expected; this bounds it.
const CHILD_LEAK_LIMIT_BYTES: u64 = 256 * 1024;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ------------------------------------------------------------------------------------
// Running commands with a time limit

struct Run {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    timed_out: bool,
    elapsed: Duration,
    pid: u32,
}

impl Run {
    fn succeeded(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    fn describe(&self) -> String {
        let status = if self.timed_out {
            "killed after the time limit".to_string()
        } else {
            match self.status {
                Some(s) => s.to_string(),
                None => "no status".to_string(),
            }
        };
        format!(
            "{status} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.elapsed.as_secs_f64(),
            self.stdout,
            tail(&self.stderr, 200)
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines ...]\n"));
    }
    out.push_str(&all[start..].join("\n"));
    out
}

/// Runs `cmd` in its own process group; after `limit` the whole group is killed (a forked
/// child that hangs must not keep the test, or the pipes, open).
fn run_with_limit(cmd: &mut Command, limit: Duration) -> Result<Run, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > limit => {
                timed_out = true;
                // SAFETY: kill(2) on the process group this test created.
                unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {:?}: {e}", cmd.get_program())),
        }
    };
    // Forked children of a finished parent still hold the pipes until they exit: they have
    // their own alarms, and the group is killed if the limit passes meanwhile.
    while !(out.is_finished() && err.is_finished()) {
        if started.elapsed() > limit + Duration::from_secs(5) {
            // SAFETY: as above.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
        elapsed: started.elapsed(),
        pid,
    })
}

// ------------------------------------------------------------------------------------
// Building the library and the C program, once for both tests

struct Built {
    dir: PathBuf,
    exe: PathBuf,
}

static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();

fn built() -> &'static Built {
    match BUILT.get_or_init(build) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// The profile directory this test binary lives in (`<target>/<profile>/deps/host_process-*`)
/// and, when it is recognisably one, the target directory above it.
fn profile_and_target_dir() -> (String, Option<PathBuf>) {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(Path::parent);
    let profile = profile_dir
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let target_dir = profile_dir
        .and_then(Path::parent)
        .filter(|t| t.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf);
    (profile, target_dir)
}

/// `cargo build -p b2dest --lib` (cargo decides whether anything is stale) and the path of
/// the cdylib it reports. `cargo test` builds the library with the dev-dependencies'
/// features unified in, and not at `<target>/<profile>/libb2dest.so`: a host gets this.
fn build_library() -> Result<PathBuf, String> {
    let (profile, target_dir) = profile_and_target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(manifest_dir()).args([
        "build",
        "-p",
        "b2dest",
        "--lib",
        "--message-format=json-render-diagnostics",
    ]);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(dir) = &target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    let run = run_with_limit(&mut cmd, Duration::from_secs(900))?;
    if !run.succeeded() {
        let status = match (run.timed_out, run.status) {
            (true, _) => "killed after the time limit".to_string(),
            (false, Some(s)) => s.to_string(),
            (false, None) => "no status".to_string(),
        };
        return Err(format!(
            "`{cargo} build -p b2dest --lib` failed ({status}):\n{}",
            tail(&run.stderr, 60)
        ));
    }
    for line in run.stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "b2dest" {
            if let Some(files) = msg["filenames"].as_array() {
                if let Some(so) = files
                    .iter()
                    .filter_map(|f| f.as_str())
                    .find(|f| f.ends_with(".so"))
                {
                    eprintln!(
                        "host_process: library {so} ({})",
                        if msg["fresh"] == true {
                            "up to date"
                        } else {
                            "rebuilt"
                        }
                    );
                    return Ok(PathBuf::from(so));
                }
            }
        }
    }
    Err(format!(
        "`cargo build -p b2dest --lib` reported no libb2dest.so:\n{}",
        tail(&run.stdout, 40)
    ))
}

/// Work directories of earlier runs whose process is gone (kept for inspection until then).
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("host_process-") {
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn build() -> Result<Built, String> {
    let tmp_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_dirs(&tmp_root);
    let dir = tmp_root.join(format!("host_process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let lib_dir = dir.join("lib");
    std::fs::create_dir_all(&lib_dir).map_err(|e| format!("create {}: {e}", lib_dir.display()))?;

    let so = build_library()?;
    // A link of this very build: another `cargo build` replacing the library meanwhile
    // leaves the tested file alone.
    let tested = lib_dir.join("libb2dest.so");
    if std::fs::hard_link(&so, &tested).is_err() {
        std::fs::copy(&so, &tested)
            .map_err(|e| format!("copy {} to {}: {e}", so.display(), tested.display()))?;
    }
    // The program records the library's soname, and the loader looks for that name.
    std::os::unix::fs::symlink("libb2dest.so", lib_dir.join("libb2dest.so.0"))
        .map_err(|e| format!("link libb2dest.so.0 in {}: {e}", lib_dir.display()))?;

    let compiler = ["gcc", "cc"]
        .into_iter()
        .find(|cc| {
            Command::new(cc)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .ok_or("no C compiler: install gcc")?;
    let exe = dir.join("fork_threads");
    let mut cc = Command::new(compiler);
    cc.current_dir(manifest_dir())
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-D_GNU_SOURCE",
            "-pthread",
            "-g",
            "-O1",
            "-Iinclude",
            C_SOURCE,
            "-o",
        ])
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lb2dest")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
    let run = run_with_limit(&mut cc, Duration::from_secs(120))?;
    if !run.succeeded() {
        return Err(format!("compiling {C_SOURCE} failed ({})", run.describe()));
    }
    Ok(Built { dir, exe })
}

// ------------------------------------------------------------------------------------
// Running the C program

fn emulator() -> Emulator {
    Emulator::start(Config {
        min_part_size: 10_000,
        recommended_part_size: 100_000,
        ..Default::default()
    })
    .expect("the emulator starts")
}

fn scratch_dir(built: &Built, name: &str) -> PathBuf {
    let dir = built.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn program(built: &Built, emu: &Emulator, scratch: &Path) -> Command {
    let mut cmd = Command::new(&built.exe);
    cmd.arg(emu.url())
        .arg(scratch)
        .env("B2DEST_ACCOUNT_ID", emu.account_id())
        .env("B2DEST_APPLICATION_KEY", emu.application_key())
        .env("B2DEST_BUCKET", "b2dest-test")
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// Checks the program's own verdict: every step passed and the summary says 0 failed.
fn check_verdict(run: &Run, min_checks: u64) -> Result<(), String> {
    let mut problems = Vec::new();
    if !run.succeeded() {
        problems.push("the program did not exit 0".to_string());
    }
    for step in STEPS {
        if !run.stdout.contains(&format!("PASS: step {step} ")) {
            problems.push(format!("step {step} did not pass"));
        }
    }
    let summary = run
        .stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("fork_threads: ")?.strip_suffix(" failed"));
    match summary.and_then(|s| s.split_once(" passed, ")) {
        Some((passed, "0")) if passed.parse::<u64>().is_ok_and(|n| n >= min_checks) => {}
        Some((passed, failed)) => problems.push(format!(
            "summary: {passed} passed, {failed} failed (at least {min_checks} checks expected)"
        )),
        None => problems.push("no \"N passed, M failed\" line".to_string()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("\n"), run.describe()))
    }
}

#[test]
fn fork_threads_native() {
    let built = built();
    let emu = emulator();
    let scratch = scratch_dir(built, "native");
    let run = run_with_limit(
        &mut program(built, &emu, &scratch),
        Duration::from_secs(240),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", run.describe());
    if let Err(e) = check_verdict(&run, 1000) {
        panic!("tests/c/fork_threads.c failed natively: {e}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The same over HTTPS, the emulator's CA trusted through `SSL_CERT_FILE` (which replaces
/// the system's bundle): the environment a host sets, read by the library in this child.
#[test]
fn fork_threads_over_https() {
    let built = built();
    let emu = Emulator::start(Config {
        min_part_size: 10_000,
        recommended_part_size: 100_000,
        tls: Some(b2_emulator::TlsCert::Valid),
        ..Default::default()
    })
    .expect("the emulator starts");
    assert!(emu.url().starts_with("https://"));
    let scratch = scratch_dir(built, "https");
    let mut cmd = program(built, &emu, &scratch);
    cmd.env("SSL_CERT_FILE", emu.ca_pem_path().expect("its CA"));
    let run = run_with_limit(&mut cmd, Duration::from_secs(240)).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", run.describe());
    if let Err(e) = check_verdict(&run, 1000) {
        panic!("tests/c/fork_threads.c failed over HTTPS: {e}");
    }
    assert!(emu.tls_handshakes() > 0, "it spoke TLS");
    let _ = std::fs::remove_dir_all(&scratch);
}

// ------------------------------------------------------------------------------------
// Under valgrind

fn have_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs valgrind with apt-get when it is missing and this runs as root.
fn try_install_valgrind() -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return "not root, so apt-get was not tried".to_string();
    }
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_with_limit(&mut cmd, Duration::from_secs(300))
            .map(|r| r.succeeded())
            .unwrap_or(false)
    };
    let install = ["install", "-y", "-q", "--no-install-recommends", "valgrind"];
    if (apt(&install) || (apt(&["update", "-q"]) && apt(&install))) && have_valgrind() {
        return "installed with apt-get".to_string();
    }
    "apt-get install valgrind failed".to_string()
}

struct ValgrindLog {
    path: PathBuf,
    text: String,
    errors: Option<u64>,
    leak_records: u64,
    definitely_lost: u64,
}

fn parse_number(s: &str) -> Option<u64> {
    s.trim().replace(',', "").parse().ok()
}

fn read_valgrind_log(path: &Path) -> ValgrindLog {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut errors = None;
    let mut leak_records = 0;
    let mut definitely_lost = 0;
    for line in text.lines() {
        // "==PID== ERROR SUMMARY: 9 errors from 9 contexts ..."
        if let Some(rest) = line.split("ERROR SUMMARY: ").nth(1) {
            errors = rest.split_whitespace().next().and_then(parse_number);
        }
        if line.contains("are definitely lost in loss record") {
            leak_records += 1;
        }
        // "==PID==    definitely lost: 7,056 bytes in 13 blocks"
        if let Some(rest) = line.split("definitely lost: ").nth(1) {
            definitely_lost = rest
                .split(" bytes")
                .next()
                .and_then(parse_number)
                .unwrap_or(0);
        }
    }
    ValgrindLog {
        path: path.to_path_buf(),
        text,
        errors,
        leak_records,
        definitely_lost,
    }
}

#[test]
fn fork_threads_under_valgrind() {
    if std::env::var("B2DEST_SKIP_VALGRIND").is_ok_and(|v| v == "1") {
        eprintln!("host_process: B2DEST_SKIP_VALGRIND=1: the valgrind pass is skipped");
        return;
    }
    if !have_valgrind() {
        let why = try_install_valgrind();
        if !have_valgrind() {
            panic!(
                "valgrind is not installed ({why}): install it (apt-get install valgrind) to \
                 check libb2dest.so for invalid accesses and leaks, or set \
                 B2DEST_SKIP_VALGRIND=1 to skip this test"
            );
        }
        eprintln!("host_process: valgrind {why}");
    }
    let built = built();
    let emu = emulator();
    let scratch = scratch_dir(built, "valgrind");
    let logs = scratch_dir(built, "valgrind-logs");
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--track-fds=no",
        "--trace-children=no",
        "--num-callers=40",
    ])
    .arg(format!("--log-file={}/valgrind.%p.log", logs.display()))
    .arg(&built.exe);
    // The program's own arguments and environment, after valgrind's.
    let native = program(built, &emu, &scratch);
    cmd.args(native.get_args()).arg("--valgrind");
    for (k, v) in native.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = run_with_limit(&mut cmd, Duration::from_secs(480)).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", run.describe());

    let mut problems = Vec::new();
    if let Err(e) = check_verdict(&run, 400) {
        problems.push(format!("the program's own checks: {e}"));
    }

    let mut main_log = None;
    let mut children = Vec::new();
    for entry in std::fs::read_dir(&logs).expect("valgrind logs").flatten() {
        let log = read_valgrind_log(&entry.path());
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == format!("valgrind.{}.log", run.pid) {
            main_log = Some(log);
        } else {
            children.push(log);
        }
    }
    let mut summary = String::new();
    match &main_log {
        None => problems.push(format!(
            "no valgrind log for the main process in {}",
            logs.display()
        )),
        Some(log) => {
            summary.push_str(&format!(
                "main process: {} errors, {} bytes definitely lost\n",
                log.errors.map_or("?".into(), |e| e.to_string()),
                log.definitely_lost
            ));
            if log.errors != Some(0) {
                problems.push(format!(
                    "valgrind found errors in the main process ({}):\n{}",
                    log.path.display(),
                    log.text
                ));
            }
        }
    }
    if children.len() < 3 {
        problems.push(format!(
            "expected valgrind logs of 3 forked processes (2 children, 1 grandchild), found {}",
            children.len()
        ));
    }
    for log in &children {
        summary.push_str(&format!(
            "forked process {}: {} errors, of them {} definite-leak records ({} bytes, the abandoned runtime of its ancestors)\n",
            log.path.display(),
            log.errors.map_or("?".into(), |e| e.to_string()),
            log.leak_records,
            log.definitely_lost
        ));
        let other_errors = log.errors.map(|e| e.saturating_sub(log.leak_records));
        if other_errors != Some(0) || log.definitely_lost > CHILD_LEAK_LIMIT_BYTES {
            problems.push(format!(
                "valgrind in a forked process: {} errors besides leaks, {} bytes definitely lost (limit {CHILD_LEAK_LIMIT_BYTES}) ({}):\n{}",
                other_errors.map_or("?".into(), |e| e.to_string()),
                log.definitely_lost,
                log.path.display(),
                log.text
            ));
        }
    }
    println!("valgrind summary:\n{summary}");
    if !problems.is_empty() {
        panic!(
            "under valgrind (logs in {}):\n{}\n\n{summary}",
            logs.display(),
            problems.join("\n\n")
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_dir_all(&logs);
}
