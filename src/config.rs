//! The destination's configuration: parsed from the host's JSON, checked field by field.

use std::cell::RefCell;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

mod object_lock;
pub use object_lock::MAX_RETENTION_DAYS;

pub const DEFAULT_API_URL: &str = "https://api.backblazeb2.com";
/// Connections (parts, ranges, files) at once when the config does not say. One B2
/// connection over tens of milliseconds carries a fraction of a server's uplink, so a large
/// file needs many: 2 GiB on the benchmark's WAN model (40 ms, 50 MB/s a connection) takes
/// 14 s at 4 and 5.8 s at 16. Streaming from the file, each costs about 1 MiB.
pub const DEFAULT_CONCURRENCY: usize = 16;
const MAX_NAME_CHARS: usize = 40;
/// Below this a body would sit idle long enough between two slices for B2 to give up on
/// it (several transfers share the limit).
const MIN_BANDWIDTH: u64 = 16 * 1024;

pub use crate::b2::settings::ApplicationKey;
pub use crate::b2::settings::Encryption;
use crate::b2::B2Settings;

mod encryption;

/// One B2 destination as the host saved it: what the host's side needs (names, limits,
/// how many connections), and the account's settings the B2 client takes as they are.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    pub name: String,
    pub bucket: String,
    /// Normalised: no leading or trailing `/`; empty means the bucket's root.
    pub backup_directory: String,
    /// Percent of `quota_bytes`; 0 is off.
    pub free_disk_space_limit: u8,
    pub quota_bytes: Option<u64>,
    pub concurrency: usize,
    pub part_size_bytes: Option<u64>,
    pub read_only: bool,
    /// A directory upload fails at the first file it cannot upload, instead of skipping
    /// it and reporting it in `skipped`.
    pub strict: bool,
    /// The account, key and request bounds (`api_url`, `account_id`, `application_key`,
    /// `timeout_seconds`, `upload_retries`, `retry_initial_delay_ms`, `test_mode`,
    /// `resume_window_hours`, `encryption`, `bandwidth_limit_bytes_per_second`,
    /// `object_lock`, `ca_file`), parsed straight into the client's settings.
    pub b2: B2Settings,
}

/// The configuration and what the host should hear about it.
#[derive(Debug)]
pub struct ParsedConfig {
    pub config: DestinationConfig,
    pub warnings: Vec<String>,
}

impl DestinationConfig {
    pub fn parse(json: &str) -> Result<ParsedConfig> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            // serde's message carries a position, never the input text.
            Error::Config(format!(
                "the destination configuration is not valid JSON ({e}); send a JSON object"
            ))
        })?;
        let Value::Object(map) = value else {
            return Err(Error::Config(
                "the destination configuration must be a JSON object".into(),
            ));
        };
        let fields = Fields {
            map: &map,
            read: RefCell::new(Vec::new()),
        };

        let name = fields.required_string("name")?;
        let name_chars = name.chars().count();
        if name_chars == 0 || name_chars > MAX_NAME_CHARS {
            return Err(Error::Config(format!(
                "field \"name\" (Destination Name) must have 1 to {MAX_NAME_CHARS} characters, it has {name_chars}"
            )));
        }
        let account_id = fields.required_string("account_id")?;
        if account_id.trim().is_empty() {
            return Err(Error::Config(
                "field \"account_id\" (Account ID, the key's keyID) must not be empty".into(),
            ));
        }
        let application_key = ApplicationKey::new(fields.required_string("application_key")?);
        if application_key.expose().is_empty() {
            return Err(Error::Config(
                "field \"application_key\" (Application Key) must not be empty".into(),
            ));
        }
        let bucket = fields.required_string("bucket")?;
        check_bucket_name(&bucket)?;

        let raw_dir = fields
            .optional_string("backup_directory")?
            .unwrap_or_default();
        let backup_directory = normalise_backup_directory(&raw_dir)?;

        let free_disk_space_limit = fields
            .optional_uint("free_disk_space_limit", 0, 100)?
            .unwrap_or(0) as u8;
        let quota_bytes = fields.optional_uint("quota_bytes", 1, u64::MAX)?;
        if free_disk_space_limit > 0 && quota_bytes.is_none() {
            return Err(Error::Config(
                "field \"free_disk_space_limit\" needs \"quota_bytes\": a bucket has no fixed size, so give the size the limit is a percentage of".into(),
            ));
        }
        let upload_retries = fields.optional_uint("upload_retries", 0, 100)?.unwrap_or(3) as u32;
        let concurrency = fields
            .optional_uint("concurrency", 1, 64)?
            .unwrap_or(DEFAULT_CONCURRENCY as u64) as usize;
        let part_size_bytes =
            fields.optional_uint("part_size_bytes", 1, crate::b2::MAX_PART_SIZE)?;
        let read_only = fields.optional_bool("read_only")?.unwrap_or(false);
        let strict = fields.optional_bool("strict")?.unwrap_or(false);
        let api_url = check_api_url(
            &fields
                .optional_string("api_url")?
                .unwrap_or_else(|| DEFAULT_API_URL.into()),
        )?;
        let timeout = Duration::from_secs(
            fields
                .optional_uint("timeout_seconds", 1, 3600)?
                .unwrap_or(60),
        );
        let retry_initial_delay = Duration::from_millis(
            fields
                .optional_uint("retry_initial_delay_ms", 0, 60_000)?
                .unwrap_or(1000),
        );
        let test_mode = fields
            .optional_string("test_mode")?
            .filter(|s| !s.is_empty());
        // It travels as a header value: a line break there is a broken request, not a
        // network failure to retry.
        if test_mode
            .as_deref()
            .is_some_and(|m| reqwest::header::HeaderValue::from_str(m).is_err())
        {
            return Err(Error::Config(
                "field \"test_mode\" must be printable text on one line (it is sent as the X-Bz-Test-Mode header), e.g. \"fail_some_uploads\"".into(),
            ));
        }

        let resume_window = Duration::from_secs(
            3600 * fields
                .optional_uint("resume_window_hours", 0, 24 * 365)?
                .unwrap_or(24),
        );

        let ca_file = fields
            .optional_string("ca_file")?
            .filter(|p| !p.is_empty())
            .map(|path| {
                crate::b2::tls::ExtraRoots::load(std::path::Path::new(&path))
                    .map(std::sync::Arc::new)
                    .map_err(|why| {
                        let path: String = path.chars().take(512).collect();
                        Error::Config(format!("field \"ca_file\": the file {path} {why}"))
                    })
            })
            .transpose()?;

        let mut encryption_warnings = Vec::new();
        let encryption = encryption::parse(fields.present("encryption"), &mut encryption_warnings)?;
        let bandwidth_limit =
            bandwidth(fields.optional_uint("bandwidth_limit_bytes_per_second", 0, u64::MAX)?)?;

        let object_lock_field = fields.present("object_lock");
        // Known is what the parser above asked for: there is no second list to keep.
        let read = fields.read.borrow();
        let mut warnings: Vec<String> = map
            .keys()
            .filter(|k| !read.contains(&k.as_str()))
            .map(|k| {
                format!(
                    "unknown configuration field \"{}\" was ignored",
                    truncate_for_message(k)
                )
            })
            .collect();
        warnings.extend(encryption_warnings);
        warnings.sort();
        let object_lock = object_lock::parse(object_lock_field, &mut warnings)?;

        Ok(ParsedConfig {
            config: DestinationConfig {
                name,
                bucket,
                backup_directory,
                free_disk_space_limit,
                quota_bytes,
                concurrency,
                part_size_bytes,
                read_only,
                strict,
                b2: B2Settings {
                    api_url,
                    account_id,
                    application_key,
                    timeout,
                    upload_retries,
                    retry_initial_delay,
                    test_mode,
                    resume_window,
                    encryption,
                    bandwidth_limit,
                    object_lock,
                    extra_roots: ca_file,
                },
            },
            warnings,
        })
    }
}

/// The host's JSON object, and every key the parser asked it for: the known keys.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    read: RefCell<Vec<&'static str>>,
}

impl<'a> Fields<'a> {
    fn present(&self, key: &'static str) -> Option<&'a Value> {
        self.read.borrow_mut().push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required_string(&self, key: &'static str) -> Result<String> {
        self.optional_string(key)?
            .ok_or_else(|| Error::Config(format!("field \"{key}\" is missing; it is required")))
    }

    fn optional_string(&self, key: &'static str) -> Result<Option<String>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    fn optional_bool(&self, key: &'static str) -> Result<Option<bool>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(key, "true or false", other)),
        }
    }

    /// A whole number in `min..=max`. Hosts that keep form values as text send `"3"`,
    /// so a string holding a whole number is taken too; PHP sends `50.0` and `1e7`, so a
    /// float with no fraction is taken too.
    fn optional_uint(&self, key: &'static str, min: u64, max: u64) -> Result<Option<u64>> {
        let n = match self.present(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().and_then(whole_number)),
            Some(Value::String(s)) => {
                let s = s.trim();
                s.parse::<u64>()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().and_then(whole_number))
            }
            Some(other) => return Err(wrong_type(key, "a whole number", other)),
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Error::Config(format!(
                "field \"{key}\" must be a whole number from {min} to {max}"
            ))),
        }
    }
}

/// `bandwidth_limit_bytes_per_second`: 0 or absent is no limit; a limit so low that a
/// request would stall for minutes is refused.
fn bandwidth(limit: Option<u64>) -> Result<Option<u64>> {
    match limit {
        None | Some(0) => Ok(None),
        Some(n) if n < MIN_BANDWIDTH => Err(Error::Config(format!(
            "field \"bandwidth_limit_bytes_per_second\" is {n}: give 0 for no limit, or at least {MIN_BANDWIDTH}"
        ))),
        Some(n) => Ok(Some(n)),
    }
}

/// `f` as a whole number, when it is one a u64 holds: not negative (not even -0), no
/// fraction, not NaN or infinite.
fn whole_number(f: f64) -> Option<u64> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    (f.is_finite() && f.is_sign_positive() && f.fract() == 0.0 && f < TWO_POW_64)
        .then_some(f as u64)
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> Error {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Error::Config(format!("field \"{key}\" must be {expected}, not {kind}"))
}

fn truncate_for_message(s: &str) -> String {
    let mut out: String = s.chars().take(64).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// B2 bucket names: 6 to 50 characters of letters, digits and `-`.
fn check_bucket_name(bucket: &str) -> Result<()> {
    let ok = (6..=50).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(
            "field \"bucket\" is not a valid B2 bucket name: 6 to 50 letters, digits and '-'"
                .into(),
        ))
    }
}

fn normalise_backup_directory(raw: &str) -> Result<String> {
    if raw.starts_with('/') {
        return Err(Error::Config(
            "field \"backup_directory\" must not start with '/': give it relative to the bucket, e.g. \"backups/server1\"".into(),
        ));
    }
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    crate::remote_path::check_segments(trimmed)
        .map_err(|why| Error::Config(format!("field \"backup_directory\" {why}")))?;
    Ok(trimmed.to_string())
}

/// The key travels to this URL, so plain HTTP is allowed only to this machine.
fn check_api_url(raw: &str) -> Result<String> {
    let url = raw.trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::Config(
            "field \"api_url\" must be an http(s) URL such as https://api.backblazeb2.com".into(),
        )
    })?;
    let host_port = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() || rest.contains('@') {
        return Err(Error::Config(
            "field \"api_url\" must name a host, with no user name or password in it".into(),
        ));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(url.to_string()),
        "http" if is_loopback_host(host) => Ok(url.to_string()),
        "http" => Err(Error::Config(
            "field \"api_url\" uses http:// to a host that is not this machine: the application key would travel in clear; use https://".into(),
        )),
        _ => Err(Error::Config("field \"api_url\" must start with https://".into())),
    }
}

fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({"name":"n","account_id":"a","application_key":"SECRETKEY","bucket":"bucket-1"})
    }

    #[test]
    fn http_only_for_loopback() {
        for (url, ok) in [
            ("http://127.0.0.1:9000", true),
            ("http://localhost:1", true),
            ("http://[::1]:80/", true),
            ("http://10.0.0.1", false),
            ("http://example.com", false),
            ("https://example.com", true),
            ("ftp://x", false),
            ("http://user:pw@127.0.0.1", false),
        ] {
            assert_eq!(check_api_url(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn errors_never_echo_the_key() {
        let mut v = base();
        v["application_key"] = serde_json::json!(12);
        let err = DestinationConfig::parse(&v.to_string()).unwrap_err();
        assert!(err.to_string().contains("application_key"));
        let mut v = base();
        v["bucket"] = serde_json::json!("SECRETKEY!");
        let msg = DestinationConfig::parse(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("SECRETKEY"), "{msg}");
        let parsed = DestinationConfig::parse(&base().to_string()).unwrap();
        assert!(!format!("{parsed:?}").contains("SECRETKEY"));
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let mut v = base();
        v["encryption"] = serde_json::json!({"mode": "SSE-C", "customer_key": key});
        let parsed = DestinationConfig::parse(&v.to_string()).unwrap();
        assert!(!format!("{parsed:?}").contains(key));
        assert_eq!(parsed.config.b2.encryption.mode_name(), "SSE-C");
    }

    #[test]
    fn resume_window_defaults_to_a_day_and_may_be_zero() {
        let parsed = |extra: serde_json::Value| {
            let mut v = base();
            if let (Some(b), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            DestinationConfig::parse(&v.to_string()).map(|p| p.config.b2.resume_window)
        };
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(parsed(serde_json::json!({})).unwrap(), hours(24));
        assert_eq!(
            parsed(serde_json::json!({"resume_window_hours": 0})).unwrap(),
            hours(0)
        );
        assert_eq!(
            parsed(serde_json::json!({"resume_window_hours": "48"})).unwrap(),
            hours(48)
        );
        assert!(matches!(
            parsed(serde_json::json!({"resume_window_hours": 9000})),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn limit_needs_quota_and_numbers_accept_strings() {
        let mut v = base();
        v["free_disk_space_limit"] = serde_json::json!(80);
        assert!(matches!(
            DestinationConfig::parse(&v.to_string()),
            Err(Error::Config(_))
        ));
        v["quota_bytes"] = serde_json::json!("1000");
        let c = DestinationConfig::parse(&v.to_string()).unwrap().config;
        assert_eq!((c.free_disk_space_limit, c.quota_bytes), (80, Some(1000)));
    }

    #[test]
    fn bandwidth_zero_is_no_limit() {
        assert_eq!(bandwidth(None).unwrap(), None);
        assert_eq!(bandwidth(Some(0)).unwrap(), None);
        assert_eq!(bandwidth(Some(1_000_000)).unwrap(), Some(1_000_000));
        assert!(bandwidth(Some(100)).is_err());
    }

    #[test]
    fn a_field_is_known_when_the_parser_reads_it_and_only_then() {
        let mut v = base();
        for (k, val) in [
            ("backup_directory", serde_json::json!("d")),
            ("ca_file", serde_json::json!("")),
            ("object_lock", serde_json::Value::Null),
            ("test_mode", serde_json::json!("")),
            ("bandwidth_limit_bytes_per_second", serde_json::json!(0)),
            ("retry_initial_delay_ms", serde_json::json!(5)),
            ("uplaod_retries", serde_json::json!(2)),
        ] {
            v[k] = val;
        }
        let parsed = DestinationConfig::parse(&v.to_string()).unwrap();
        assert_eq!(
            parsed.warnings,
            vec!["unknown configuration field \"uplaod_retries\" was ignored".to_string()]
        );
        assert_eq!(parsed.config.b2.upload_retries, 3);
        assert_eq!(
            parsed.config.b2.retry_initial_delay,
            Duration::from_millis(5)
        );
    }
}
