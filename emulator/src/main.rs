//! `b2-emulator`: runs the emulator until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use b2_emulator::{Config, Emulator, KeySpec, Sse, TlsCert, VariantRule, WanModel};
use clap::Parser;

/// A strict local Backblaze B2 native-API server.
///
/// Prints `B2_EMULATOR_URL=http://HOST:PORT` (https with --tls) as the first line on
/// stdout once it is listening (and the CA written), then serves until SIGINT or SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "b2-emulator", version)]
struct Args {
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory holding the journal and file content; kept across restarts.
    /// Without it a temp dir is used and removed at exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The master key's keyID (also the account id).
    #[arg(long, default_value = "emu-account")]
    account_id: String,
    /// The master key's secret.
    #[arg(long, default_value = "emu-application-key")]
    application_key: String,
    /// A bucket to create (allPrivate) if missing; repeatable. Default: b2dest-test.
    #[arg(long = "bucket", value_name = "NAME")]
    buckets: Vec<String>,
    /// An extra key, repeatable: KEYID:APPKEY:CAP1,CAP2[:BUCKET[:PREFIX]]
    /// (an empty BUCKET means all buckets).
    #[arg(long = "key", value_name = "SPEC", value_parser = parse_key)]
    keys: Vec<KeySpec>,
    /// Object Lock on a bucket (created if missing), repeatable: BUCKET, or
    /// BUCKET:MODE:DAYS for a default retention too (MODE governance or compliance).
    #[arg(long = "object-lock", value_name = "SPEC", value_parser = parse_object_lock)]
    object_lock: Vec<(String, serde_json::Value)>,
    /// absoluteMinimumPartSize: smallest part but the last.
    #[arg(long, default_value_t = 5_000_000)]
    min_part_size: u64,
    /// recommendedPartSize reported by b2_authorize_account.
    #[arg(long, default_value_t = 100_000_000)]
    recommended_part_size: u64,
    /// Lifetime of account and upload tokens, in seconds.
    #[arg(long, default_value_t = 86_400)]
    token_lifetime_secs: u64,
    /// WAN model: milliseconds added before every B2 request is handled.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// WAN model: cap per connection and direction, in MB/s (1 MB = 1,000,000 bytes);
    /// fractions allowed. Default: unlimited.
    #[arg(long, value_name = "MB_PER_S", value_parser = parse_bandwidth)]
    bandwidth_mb_per_s: Option<f64>,
    /// Default encryption of the --bucket buckets: SSE-B2 (B2's own keys) or none
    /// (leaves them as they are when not given).
    #[arg(long, value_name = "MODE", value_parser = parse_bucket_encryption)]
    bucket_encryption: Option<BucketEncryption>,
    /// Answer in other shapes real servers send, repeatable: [CALL=]VARIANT,...[@SEED],
    /// VARIANT one of null, absent, extra, unknown_enum, v1_size, retry_after_date.
    #[arg(long = "answer-variants", value_name = "SPEC")]
    answer_variants: Vec<VariantRule>,
    /// Serve HTTPS (the URLs handed out are https), with a certificate for 127.0.0.1, ::1
    /// and localhost signed by the emulator's own CA, kept in DATA_DIR/tls/ca.pem.
    #[arg(long)]
    tls: bool,
    /// With --tls: also write the CA's PEM here, for clients to trust (ca_file,
    /// SSL_CERT_FILE, rclone --ca-cert).
    #[arg(long, value_name = "PATH", requires = "tls")]
    ca_out: Option<PathBuf>,
    /// With --tls, for testing clients' certificate checks: present a certificate that
    /// must be refused: unknown-issuer, expired or wrong-name (default: valid).
    #[arg(long, value_name = "KIND", requires = "tls", value_parser = parse_tls_cert)]
    tls_cert: Option<TlsCert>,
}

fn parse_tls_cert(text: &str) -> Result<TlsCert, String> {
    match text {
        "valid" => Ok(TlsCert::Valid),
        "unknown-issuer" => Ok(TlsCert::UnknownIssuer),
        "expired" => Ok(TlsCert::Expired),
        "wrong-name" => Ok(TlsCert::WrongName),
        _ => Err("expected valid, unknown-issuer, expired or wrong-name".to_owned()),
    }
}

#[derive(Clone, Copy, Debug)]
struct BucketEncryption(bool);

fn parse_bucket_encryption(text: &str) -> Result<BucketEncryption, String> {
    match text {
        "SSE-B2" => Ok(BucketEncryption(true)),
        "none" => Ok(BucketEncryption(false)),
        _ => Err("expected SSE-B2 or none (SSE-C cannot be a bucket's default)".to_owned()),
    }
}

fn parse_bandwidth(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive number of MB/s".to_owned()),
    }
}

fn parse_key(spec: &str) -> Result<KeySpec, String> {
    let mut fields = spec.splitn(5, ':');
    let key_id = fields.next().filter(|s| !s.is_empty());
    let application_key = fields.next().filter(|s| !s.is_empty());
    let (Some(key_id), Some(application_key)) = (key_id, application_key) else {
        return Err("expected KEYID:APPKEY:CAP1,CAP2[:BUCKET[:PREFIX]]".to_owned());
    };
    let capabilities = fields
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let bucket = fields.next().filter(|s| !s.is_empty()).map(str::to_owned);
    let name_prefix = fields.next().filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(KeySpec {
        key_id: key_id.to_owned(),
        application_key: application_key.to_owned(),
        capabilities,
        bucket,
        name_prefix,
    })
}

/// `BUCKET` or `BUCKET:MODE:DAYS` -> the bucket and its b2_update_bucket settings.
fn parse_object_lock(spec: &str) -> Result<(String, serde_json::Value), String> {
    let mut fields = spec.split(':');
    let bucket = fields.next().filter(|s| !s.is_empty());
    let Some(bucket) = bucket else {
        return Err("expected BUCKET or BUCKET:MODE:DAYS".to_owned());
    };
    let settings = match (fields.next(), fields.next(), fields.next()) {
        (None, None, None) => serde_json::json!({"fileLockEnabled": true}),
        (Some(mode @ ("governance" | "compliance")), Some(days), None) => {
            let days: u64 = days
                .parse()
                .map_err(|_| format!("DAYS must be a whole number, not {days:?}"))?;
            serde_json::json!({"fileLockEnabled": true, "defaultRetention":
                {"mode": mode, "period": {"duration": days, "unit": "days"}}})
        }
        _ => {
            return Err(
                "expected BUCKET or BUCKET:MODE:DAYS (MODE governance or compliance)".to_owned(),
            )
        }
    };
    Ok((bucket.to_owned(), settings))
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if !args.object_lock.is_empty() && args.buckets.is_empty() {
        args.buckets = Config::default().buckets;
    }
    for (bucket, _) in &args.object_lock {
        if !args.buckets.contains(bucket) {
            args.buckets.push(bucket.clone());
        }
    }
    let object_lock = std::mem::take(&mut args.object_lock);
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        account_id: args.account_id,
        application_key: args.application_key,
        buckets: if args.buckets.is_empty() {
            Config::default().buckets
        } else {
            args.buckets
        },
        keys: args.keys,
        min_part_size: args.min_part_size,
        recommended_part_size: args.recommended_part_size,
        token_lifetime: Duration::from_secs(args.token_lifetime_secs),
        wan: WanModel {
            latency: Duration::from_millis(args.latency_ms),
            bandwidth_bytes_per_sec: args.bandwidth_mb_per_s.map(|mb| ((mb * 1e6) as u64).max(1)),
        },
        bucket_encryption: args
            .bucket_encryption
            .map(|BucketEncryption(on)| on.then_some(Sse::B2)),
        variants: args.answer_variants,
        tls: args.tls.then(|| args.tls_cert.unwrap_or(TlsCert::Valid)),
    };
    let wan = config.wan;
    // Signal handlers go in before the URL is printed, so a parent that stops us as soon
    // as it has read the URL still gets a clean stop.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("b2-emulator: cannot install signal handlers: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let emulator = match Emulator::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("b2-emulator: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for (bucket, settings) in object_lock {
        if let Err(e) = emulator.try_configure_object_lock(&bucket, settings) {
            eprintln!("b2-emulator: --object-lock {bucket}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if let (Some(out), Some(ca)) = (&args.ca_out, emulator.ca_pem_path()) {
        if let Err(e) = std::fs::copy(ca, out) {
            eprintln!("b2-emulator: --ca-out {}: {e}", out.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "B2_EMULATOR_URL={}", emulator.url());
        let _ = out.flush();
    }
    eprintln!(
        "b2-emulator: serving {} (data dir {})",
        emulator.url(),
        emulator.data_dir().display()
    );
    if !wan.is_off() {
        eprintln!("b2-emulator: WAN model {wan:?}");
    }
    signals.wait();
    emulator.stop();
    std::process::ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, listened to on a small runtime of their own.
struct Signals {
    runtime: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (term, int) = runtime.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })?;
        Ok(Signals { runtime, term, int })
    }

    fn wait(mut self) {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_bucket_encryption, parse_key};

    #[test]
    fn bucket_encryption_is_sse_b2_or_none() {
        assert!(parse_bucket_encryption("SSE-B2").unwrap().0);
        assert!(!parse_bucket_encryption("none").unwrap().0);
        assert!(parse_bucket_encryption("SSE-C").is_err());
    }

    #[test]
    fn object_lock_specs() {
        let (b, s) = super::parse_object_lock("locked-bkt:compliance:7").unwrap();
        assert_eq!(b, "locked-bkt");
        assert_eq!(s["defaultRetention"]["period"]["duration"], 7);
        let (_, s) = super::parse_object_lock("locked-bkt").unwrap();
        assert_eq!(s["fileLockEnabled"], true);
        assert!(super::parse_object_lock("b:forever:7").is_err());
        assert!(super::parse_object_lock("b:governance:x").is_err());
    }

    #[test]
    fn key_specs() {
        let k = parse_key("id:secret:listFiles,readFiles:bkt:pre/fix").unwrap();
        assert_eq!(k.capabilities, ["listFiles", "readFiles"]);
        assert_eq!(k.bucket.as_deref(), Some("bkt"));
        assert_eq!(k.name_prefix.as_deref(), Some("pre/fix"));
        let k = parse_key("id:secret:writeFiles::p").unwrap();
        assert_eq!(k.bucket, None);
        assert_eq!(k.name_prefix.as_deref(), Some("p"));
        assert!(parse_key("id").is_err());
    }
}
