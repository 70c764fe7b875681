//! TLS on every path: the operations over HTTPS with the emulator's CA given in
//! `ca_file`, a `ca_file` that cannot be used, and the certificates this machine must
//! refuse (unknown issuer, expired, wrong name), each told once, not retried. The CA given
//! by `SSL_CERT_FILE` is tested in the C host (`host_process::fork_threads_over_https`),
//! since the environment is the whole process's.

mod common;

use b2_emulator::{Emulator, TlsCert};
use common::*;
use serde_json::{json, Value};

fn https_emulator(cert: TlsCert) -> Emulator {
    let emu = emulator_with(|c| c.tls = Some(cert));
    assert!(emu.url().starts_with("https://"), "{}", emu.url());
    emu
}

/// A destination on `emu` that trusts the emulator's CA through `ca_file`.
fn https_config(emu: &Emulator, extra: Value) -> String {
    let ca = emu.ca_pem_path().expect("an HTTPS emulator writes its CA");
    let mut cfg: Value = serde_json::from_str(&config(emu, extra)).unwrap();
    cfg["ca_file"] = json!(ca.to_str().unwrap());
    cfg.to_string()
}

#[test]
fn every_operation_works_over_https_with_the_ca_in_ca_file() {
    let emu = https_emulator(TlsCert::Valid);
    let cfg = https_config(&emu, json!({"concurrency": 4}));
    let dir = tempfile::tempdir().unwrap();

    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["valid"], true, "{v}");
    assert!(
        !v["warnings"].to_string().contains("unknown"),
        "ca_file is known: {v}"
    );

    let small = write_file(dir.path(), "db.sql.gz", 12_345, 1);
    let (st, up) = upload(&cfg, &small, "day/db.sql.gz");
    assert_eq!(st, OK, "{up}");
    let large_len = 4 * PART as usize + 777;
    let large = write_file(dir.path(), "home.tar", large_len, 2);
    emu.reset_counts();
    let (st, up) = upload(&cfg, &large, "day/home.tar");
    assert_eq!(st, OK, "{up}");
    let counts = emu.counts();
    assert_eq!(counts.get("b2_upload_part"), 5, "in parts");
    assert_eq!(counts.get("b2_finish_large_file"), 1);
    assert_eq!(counts.bytes_received, large_len as u64);

    let (st, listed) = list(&cfg, "day");
    assert_eq!(st, OK, "{listed}");
    let mut sizes: Vec<u64> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["size"].as_u64().unwrap())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![12_345, large_len as u64]);

    // A restore in ranges, four at a time, each its own HTTPS request.
    emu.reset_counts();
    let back = dir.path().join("restore/home.tar");
    let (st, down) = download(&cfg, "day/home.tar", &back);
    assert_eq!(st, OK, "{down}");
    assert_eq!(down["verified"], true);
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&large).unwrap()
    );
    let counts = emu.counts();
    let ranges = counts.get("b2_download_file_by_id") + counts.get("b2_download_file_by_name");
    // At least one range a part (the first ones are staggered, so there are more).
    assert!(ranges >= 5, "in ranges: {:?}", counts.calls);
    let back_small = dir.path().join("restore/db.sql.gz");
    assert_eq!(download(&cfg, "day/db.sql.gz", &back_small).0, OK);
    assert_eq!(
        std::fs::read(&back_small).unwrap(),
        std::fs::read(&small).unwrap()
    );

    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    assert_eq!(used["used_bytes"], 12_345 + large_len as u64);
    let (st, del) = delete(&cfg, "day");
    assert_eq!(st, OK, "{del}");
    assert_eq!(del["deleted_versions"], 2);
    assert!(emu.file_versions(BUCKET).is_empty());
    let (_, used) = usage(&cfg);
    assert_eq!(used["used_bytes"], 0);
    // Pooled connections: far fewer handshakes than requests, and at least one.
    let handshakes = emu.tls_handshakes();
    assert!((1..=40).contains(&handshakes), "{handshakes} handshakes");
}

#[test]
fn without_the_ca_the_emulators_certificate_is_refused() {
    let emu = https_emulator(TlsCert::Valid);
    let (st, v) = validate(&config(&emu, json!({})));
    assert_eq!(st, TLS, "{v}");
    assert_eq!(v["error"]["retryable"], false, "{v}");
    assert!(text(&v).contains("unknown issuer"), "{v}");
    assert_eq!(emu.tls_handshakes(), 1);
}

#[test]
fn a_ca_file_that_cannot_be_used_is_a_config_error_naming_it() {
    let emu = https_emulator(TlsCert::Valid);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-bundle.pem");
    let not_pem = write_file(dir.path(), "not-a-bundle.pem", 100, 3);
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (path, why) in [
        (&missing, "cannot be read"),
        (&not_pem, "holds no certificate"),
        (&broken, "cannot be used as a root"),
    ] {
        let cfg = config(&emu, json!({"ca_file": path.to_str().unwrap()}));
        let (st, v) = validate(&cfg);
        assert_eq!(st, CONFIG, "{v}");
        let message = text(&v);
        assert!(message.contains("\"ca_file\""), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
        assert!(message.contains(why), "{message}");
    }
    assert_eq!(emu.tls_handshakes(), 0, "refused before any connection");
    assert_eq!(emu.counts().total(), 0);
}

fn text(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// One refused certificate: one handshake, no B2 call, not retryable, and a message that
/// names TLS, the host, the reason and the fix.
fn refused_once(cert: TlsCert, reason: &str, fix: &str) {
    let emu = https_emulator(cert);
    // Retries would be quick and many: a retried refusal would show in the handshakes.
    let cfg = https_config(
        &emu,
        json!({"retry_initial_delay_ms": 1, "upload_retries": 5}),
    );
    let host = emu.url().trim_start_matches("https://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1000, 4);
    for (what, (st, v)) in [
        ("validate", validate(&cfg)),
        ("upload", upload(&cfg, &f, "f")),
    ] {
        assert_eq!(st, TLS, "{what}: {v}");
        assert_eq!(v["error"]["code"], "tls", "{v}");
        assert_eq!(v["error"]["retryable"], false, "{what}: {v}");
        let message = text(&v);
        println!("{what}: {message}");
        for part in ["TLS", host.as_str(), reason, fix] {
            assert!(message.contains(part), "{what}: no {part:?} in {message}");
        }
    }
    assert_eq!(emu.tls_handshakes(), 2, "one attempt per operation");
    assert_eq!(emu.counts().total(), 0, "no B2 call got through");
}

#[test]
fn a_certificate_from_an_unknown_issuer_is_refused_once_and_says_ca_file() {
    refused_once(TlsCert::UnknownIssuer, "unknown issuer", "\"ca_file\"");
}

#[test]
fn an_expired_certificate_is_refused_once_and_says_check_the_clock() {
    refused_once(TlsCert::Expired, "expired or not yet valid", "clock");
}

#[test]
fn a_certificate_for_another_name_is_refused_once_and_says_api_url() {
    refused_once(TlsCert::WrongName, "wrong name", "\"api_url\"");
}

#[test]
fn a_restart_on_the_same_data_dir_keeps_the_ca_clients_were_given() {
    let data = tempfile::tempdir().unwrap();
    let start = || {
        emulator_with(|c| {
            c.tls = Some(TlsCert::Valid);
            c.data_dir = Some(data.path().to_path_buf());
        })
    };
    let emu = start();
    let ca = std::fs::read(emu.ca_pem_path().unwrap()).unwrap();
    let kept = data.path().join("given-ca.pem");
    std::fs::write(&kept, &ca).unwrap();
    emu.stop();
    let emu = start();
    assert_eq!(std::fs::read(emu.ca_pem_path().unwrap()).unwrap(), ca);
    let mut cfg: Value = serde_json::from_str(&config(&emu, json!({}))).unwrap();
    cfg["ca_file"] = json!(kept.to_str().unwrap());
    let (st, v) = validate(&cfg.to_string());
    assert_eq!(st, OK, "{v}");
}

#[test]
fn plain_http_to_an_https_emulator_reaches_its_control_api_only() {
    use std::io::{Read, Write};
    let emu = https_emulator(TlsCert::Valid);
    let addr = emu.url().trim_start_matches("https://").to_string();
    let ask = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(ask("/__emulator/counts").starts_with("HTTP/1.1 200"));
    let refused = ask("/b2api/v3/b2_authorize_account");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("https only"), "{refused}");
    assert_eq!(emu.tls_handshakes(), 0);
}
