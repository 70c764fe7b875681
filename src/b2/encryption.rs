//! Server-side encryption of what this client stores: the bucket's default, SSE-B2 (B2's
//! keys) or SSE-C (the customer's key, which B2 never stores). What each request must
//! carry: SSE-B2 on an upload and a large-file start; the SSE-C key on every upload, every
//! part, every large-file start and every download (ranged ones included).
//!
//! The customer key is a secret like the application key: `CustomerKey` never shows it in
//! `Debug`, the header values that carry it are marked sensitive, and what may be shown is
//! its MD5 (base64, as B2 takes it), by which an admin tells keys apart.

use std::fmt;

use base64::Engine;
use md5::{Digest, Md5};
use reqwest::header::HeaderValue;
use serde::Serialize;

use super::api::FileVersion;
use crate::error::Error;

const ALGORITHM: &str = "AES256";
/// The file info in which this library records the MD5 of the SSE-C key a file was
/// uploaded with, so a resume never mixes keys in one file and `dest_list` can say which
/// key each backup needs. (B2 keeps the MD5 too, but shows it only on a download.)
pub const KEY_MD5_INFO: &str = "b2dest_sse_c_key_md5";

/// An SSE-C customer key: 32 bytes, kept as the base64 B2 takes.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    base64: String,
    md5: String,
}

impl CustomerKey {
    /// Parses the base64 of a 32-byte key. The error says what is wrong, never the key.
    pub fn from_base64(text: &str) -> Result<CustomerKey, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "is not valid base64".to_string())?;
        if raw.len() != 32 {
            return Err(format!(
                "decodes to {} bytes; an SSE-C key is 32 bytes (256 bits)",
                raw.len()
            ));
        }
        Ok(CustomerKey {
            base64: base64::engine::general_purpose::STANDARD.encode(&raw),
            md5: base64::engine::general_purpose::STANDARD.encode(Md5::digest(&raw)),
        })
    }

    /// The key itself, for the one header and JSON field that carry it (and for the last
    /// guard that redacts it from responses).
    pub fn expose_base64(&self) -> &str {
        &self.base64
    }

    /// Its MD5, base64: safe to show.
    pub fn md5(&self) -> &str {
        &self.md5
    }
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerKey(<redacted>, md5 {})", self.md5)
    }
}

/// How new files are encrypted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    /// Nothing asked for: the bucket's default encryption applies.
    #[default]
    BucketDefault,
    SseB2,
    SseC(CustomerKey),
}

/// `serverSideEncryption` of b2_start_large_file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartEncryption<'a> {
    mode: &'static str,
    algorithm: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_key_md5: Option<&'a str>,
}

fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

impl Encryption {
    /// What `dest_validate` and responses call it.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Encryption::BucketDefault => "bucket_default",
            Encryption::SseB2 => "SSE-B2",
            Encryption::SseC(_) => "SSE-C",
        }
    }

    pub fn key_md5(&self) -> Option<&str> {
        match self {
            Encryption::SseC(k) => Some(k.md5()),
            _ => None,
        }
    }

    fn customer_key_headers(key: &CustomerKey) -> Vec<(&'static str, HeaderValue)> {
        [
            (
                "X-Bz-Server-Side-Encryption-Customer-Algorithm",
                HeaderValue::from_static(ALGORITHM),
            ),
            (
                "X-Bz-Server-Side-Encryption-Customer-Key",
                sensitive(key.expose_base64()).unwrap_or(HeaderValue::from_static("")),
            ),
            (
                "X-Bz-Server-Side-Encryption-Customer-Key-Md5",
                sensitive(key.md5()).unwrap_or(HeaderValue::from_static("")),
            ),
        ]
        .into()
    }

    /// Headers of `b2_upload_file`.
    pub fn upload_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        match self {
            Encryption::BucketDefault => Vec::new(),
            Encryption::SseB2 => vec![(
                "X-Bz-Server-Side-Encryption",
                HeaderValue::from_static(ALGORITHM),
            )],
            Encryption::SseC(key) => Self::customer_key_headers(key),
        }
    }

    /// Headers of `b2_upload_part`: the SSE-C key on every part (SSE-B2 was decided when the
    /// file was started).
    pub fn part_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        match self {
            Encryption::SseC(key) => Self::customer_key_headers(key),
            _ => Vec::new(),
        }
    }

    /// Headers of a download of `file`: the customer key when the file is SSE-C (a key sent
    /// for a file that has none is refused, so files uploaded before SSE-C was configured
    /// still restore).
    pub fn download_headers(&self, file: &FileVersion) -> Vec<(&'static str, HeaderValue)> {
        match (self, file.encryption_mode()) {
            (Encryption::SseC(key), Some("SSE-C")) => Self::customer_key_headers(key),
            _ => Vec::new(),
        }
    }

    /// Headers of a download by name, before the file's mode is known: the customer key
    /// whenever this destination has one.
    pub fn by_name_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        match self {
            Encryption::SseC(key) => Self::customer_key_headers(key),
            _ => Vec::new(),
        }
    }

    /// `serverSideEncryption` of `b2_start_large_file`.
    pub fn start_json(&self) -> Option<StartEncryption<'_>> {
        match self {
            Encryption::BucketDefault => None,
            Encryption::SseB2 => Some(StartEncryption {
                mode: "SSE-B2",
                algorithm: ALGORITHM,
                customer_key: None,
                customer_key_md5: None,
            }),
            Encryption::SseC(key) => Some(StartEncryption {
                mode: "SSE-C",
                algorithm: ALGORITHM,
                customer_key: Some(key.expose_base64()),
                customer_key_md5: Some(key.md5()),
            }),
        }
    }

    /// The file info recording the key's MD5, for SSE-C.
    pub fn file_info(&self) -> Option<(String, String)> {
        self.key_md5()
            .map(|md5| (KEY_MD5_INFO.to_string(), md5.to_string()))
    }

    /// Whether `file` is what this setting writes, so an unfinished large file may take
    /// parts under it (or a stored version stands for an upload under it): SSE-C with this
    /// very key (never another key, never a file B2 encrypts otherwise); SSE-B2 only an
    /// SSE-B2 file; the bucket default anything but an SSE-C file.
    pub fn matches(&self, file: &FileVersion) -> bool {
        let mode = file.encryption_mode();
        match self {
            Encryption::SseC(key) => {
                mode == Some("SSE-C")
                    && file.file_info.get(KEY_MD5_INFO).map(String::as_str) == Some(key.md5())
            }
            Encryption::SseB2 => mode == Some("SSE-B2"),
            Encryption::BucketDefault => mode != Some("SSE-C"),
        }
    }
}

impl FileVersion {
    /// `"SSE-B2"`, `"SSE-C"`, or None for a file B2 does not encrypt.
    pub fn encryption_mode(&self) -> Option<&str> {
        self.server_side_encryption
            .as_ref()
            .and_then(|e| e.mode.as_deref())
            .filter(|m| !m.is_empty() && *m != "none")
    }

    /// The MD5 of the SSE-C key this library recorded at upload, if any.
    pub fn recorded_key_md5(&self) -> Option<&str> {
        self.file_info.get(KEY_MD5_INFO).map(String::as_str)
    }
}

/// Which key `file` needs (by the MD5 recorded at upload) and which this destination has.
fn needs_and_has(file: &FileVersion, encryption: &Encryption) -> String {
    let needs = match file.recorded_key_md5() {
        Some(md5) => format!("{} needs the SSE-C key whose MD5 is {md5}", file.file_name),
        None => format!("{} is encrypted with an SSE-C key", file.file_name),
    };
    let has = match encryption.key_md5() {
        Some(md5) => format!("this destination's customer_key has MD5 {md5}"),
        None => "this destination has no customer_key".to_string(),
    };
    format!("{needs}; {has}")
}

/// B2 refused to read `file` for its customer key: says which key the file needs, which
/// one this destination has, and that nothing was written to `dest`. (The table tells a
/// refusal as a key problem only when a key was sent, so only for an SSE-C file.)
pub fn explain_key_refusal(
    e: Error,
    file: &FileVersion,
    encryption: &Encryption,
    dest: &std::path::Path,
) -> Error {
    if !matches!(e, Error::EncryptionKey(_)) || file.encryption_mode() != Some("SSE-C") {
        return e;
    }
    let found = needs_and_has(file, encryption);
    e.with_note(&format!(
        "{found}; nothing was written to {}",
        dest.display()
    ))
}

/// Refuses, before any request, the download of an SSE-C file that cannot succeed: no
/// customer key configured, or one whose MD5 is not the one recorded at upload.
pub fn check_readable(
    file: &FileVersion,
    encryption: &Encryption,
    dest: &std::path::Path,
) -> Result<(), Error> {
    if file.encryption_mode() != Some("SSE-C") {
        return Ok(());
    }
    let refused = match (encryption.key_md5(), file.recorded_key_md5()) {
        (None, _) => true,
        (Some(has), Some(needs)) => has != needs,
        (Some(_), None) => false, // not recorded (another tool's upload): B2 will tell
    };
    if !refused {
        return Ok(());
    }
    Err(Error::EncryptionKey(format!(
        "{}: set \"encryption\": {{\"mode\": \"SSE-C\", \"customer_key\": ...}} to the key the backup was made with (without it nobody can read the file); nothing was downloaded or written to {}",
        needs_and_has(file, encryption),
        dest.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn file(mode: Option<&str>, md5: Option<&str>) -> FileVersion {
        let mut info = std::collections::BTreeMap::new();
        if let Some(m) = md5 {
            info.insert(KEY_MD5_INFO.to_string(), m.to_string());
        }
        FileVersion {
            file_info: info,
            server_side_encryption: mode.map(|m| crate::b2::api::FileEncryption {
                mode: Some(m.into()),
                algorithm: Some("AES256".into()),
            }),
            ..FileVersion::new("id", "f", crate::b2::api::Action::Upload, 0)
        }
    }

    #[test]
    fn the_key_is_checked_and_never_shown() {
        let key = CustomerKey::from_base64(KEY).unwrap();
        assert_eq!(key.md5(), "hRasmdxgYDKV3nvbahU1MA==");
        let shown = format!("{:?}", Encryption::SseC(key.clone()));
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains(key.md5()), "{shown}");
        let err = CustomerKey::from_base64("not base64!").unwrap_err();
        assert!(!err.contains("not base64!"));
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(CustomerKey::from_base64(&short)
            .unwrap_err()
            .contains("16 bytes"));
        let headers = Encryption::SseC(key).upload_headers();
        assert_eq!(headers.len(), 3);
        assert!(headers[1].1.is_sensitive());
        assert!(!format!("{headers:?}").contains(KEY));
    }

    #[test]
    fn each_request_carries_what_its_mode_needs() {
        let key = CustomerKey::from_base64(KEY).unwrap();
        let c = Encryption::SseC(key.clone());
        assert!(Encryption::BucketDefault.upload_headers().is_empty());
        assert_eq!(
            Encryption::SseB2.upload_headers()[0].0,
            "X-Bz-Server-Side-Encryption"
        );
        assert!(Encryption::SseB2.part_headers().is_empty());
        assert_eq!(c.part_headers().len(), 3);
        assert_eq!(c.download_headers(&file(Some("SSE-C"), None)).len(), 3);
        assert!(c.download_headers(&file(None, None)).is_empty());
        assert!(c.download_headers(&file(Some("SSE-B2"), None)).is_empty());
        let start = serde_json::to_value(c.start_json()).unwrap();
        assert_eq!(start["mode"], "SSE-C");
        assert_eq!(start["customerKeyMd5"], key.md5());
        assert!(Encryption::BucketDefault.start_json().is_none());
    }

    #[test]
    fn a_download_that_cannot_succeed_is_refused_before_it_is_sent() {
        let key = CustomerKey::from_base64(KEY).unwrap();
        let other =
            CustomerKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        let dest = std::path::Path::new("/restore/f");
        let c = Encryption::SseC(key.clone());
        let recorded = file(Some("SSE-C"), Some(key.md5()));
        assert!(check_readable(&recorded, &c, dest).is_ok());
        assert!(check_readable(&file(Some("SSE-C"), None), &c, dest).is_ok());
        assert!(check_readable(&file(None, Some(other.md5())), &c, dest).is_ok());
        assert!(check_readable(&file(Some("SSE-B2"), None), &Encryption::SseB2, dest).is_ok());
        for (enc, has) in [
            (Encryption::SseC(other.clone()), other.md5().to_string()),
            (Encryption::BucketDefault, "no customer_key".to_string()),
        ] {
            let e = check_readable(&recorded, &enc, dest).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, Error::EncryptionKey(_)), "{text}");
            assert!(text.contains(key.md5()) && text.contains(&has), "{text}");
            assert!(!text.contains(KEY), "{text}");
        }
        let no_key = check_readable(&file(Some("SSE-C"), None), &Encryption::SseB2, dest);
        assert!(matches!(no_key, Err(Error::EncryptionKey(_))));
    }

    #[test]
    fn a_resume_never_mixes_keys_or_modes() {
        let key = CustomerKey::from_base64(KEY).unwrap();
        let other =
            CustomerKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        let c = Encryption::SseC(key.clone());
        assert!(c.matches(&file(Some("SSE-C"), Some(key.md5()))));
        assert!(!c.matches(&file(Some("SSE-C"), Some(other.md5()))));
        assert!(!c.matches(&file(Some("SSE-C"), None)));
        assert!(!c.matches(&file(None, None)));
        assert!(!Encryption::BucketDefault.matches(&file(Some("SSE-C"), Some(key.md5()))));
        assert!(Encryption::BucketDefault.matches(&file(Some("SSE-B2"), None)));
        assert!(Encryption::SseB2.matches(&file(Some("SSE-B2"), None)));
        assert!(!Encryption::SseB2.matches(&file(None, None)));
    }
}
