//! TLS as the client sees it: the extra roots a destination trusts besides the system's
//! (`ca_file`), and a certificate refused by this machine told as its own outcome. A
//! refused certificate is never retried: the same certificate would be refused again,
//! and what fixes it (a proxy's CA, the system's CA bundle, the clock, the URL) is the
//! admin's to do.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::CertificateError;
use sha1::{Digest, Sha1};

use crate::error::Error;

/// A PEM bundle is kilobytes (Debian's whole system bundle is about 200 KB); a path to
/// something far larger is a mistake, not a bundle.
const MAX_BUNDLE_BYTES: u64 = 16 << 20;

/// Certificates trusted in addition to the system's roots.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtraRoots {
    pub path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
    /// Of the certificates: what tells two bundles apart for the shared HTTP clients.
    pub digest: [u8; 20],
}

impl fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExtraRoots({}, {} certificates)",
            self.path.display(),
            self.certs.len()
        )
    }
}

impl ExtraRoots {
    /// Reads the PEM bundle at `path`; the error says why it cannot be used.
    pub fn load(path: &Path) -> Result<ExtraRoots, String> {
        // The host names it; only the host's own links on the way are followed, as for
        // any path the host names (an admin may keep it where a customer could plant one).
        let opened =
            crate::local::trusted::open_trusted(path, crate::local::trusted::Want::Any, false)
                .map_err(|e| format!("cannot be read: {e}"))?;
        let file = std::fs::File::from(opened.fd);
        if !file
            .metadata()
            .map_err(|e| format!("cannot be read: {e}"))?
            .is_file()
        {
            return Err("is not a regular file".to_string());
        }
        let mut bytes = Vec::new();
        file.take(MAX_BUNDLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(format!(
                "is larger than {} MiB, not a PEM bundle of certificates",
                MAX_BUNDLE_BYTES >> 20
            ));
        }
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("holds a malformed PEM block ({e:?})"))?;
        if certs.is_empty() {
            return Err(
                "holds no certificate: give a PEM file with one or more \"-----BEGIN CERTIFICATE-----\" blocks".into(),
            );
        }
        // As the HTTP client will take them: a block that is no CA certificate is named now.
        let mut store = rustls::RootCertStore::empty();
        let mut digest = Sha1::new();
        for (i, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| {
                format!(
                    "holds a certificate (number {}) that cannot be used as a root: {e}",
                    i + 1
                )
            })?;
            digest.update((cert.len() as u64).to_be_bytes());
            digest.update(cert.as_ref());
        }
        Ok(ExtraRoots {
            path: path.to_path_buf(),
            certs,
            digest: digest.finalize().into(),
        })
    }
}

/// A certificate this machine refused, found in `e`'s causes, as the host is told it:
/// the host, the reason and the fix. None for every other failure.
pub fn certificate_failure(call: &str, e: &reqwest::Error) -> Option<Error> {
    let refused = find_certificate_error(e)?;
    let host = e
        .url()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| "B2".into());
    let (reason, fix) = explain(refused);
    Some(Error::Tls(format!(
        "TLS: the certificate of {host} was refused for {call}: {reason}; {fix}. Not retried: the same certificate would be refused again"
    )))
}

const PROXY_FIX: &str = "if a TLS-inspecting proxy or firewall sits between this server and B2, trust its CA certificate with the destination's \"ca_file\" (or SSL_CERT_FILE); otherwise the system's CA certificates may be out of date: update them (the ca-certificates package)";

fn explain(refused: &CertificateError) -> (String, &'static str) {
    use CertificateError as C;
    match refused {
        C::UnknownIssuer => (
            "it is signed by an unknown certificate authority (unknown issuer)".into(),
            PROXY_FIX,
        ),
        C::Expired | C::ExpiredContext { .. } => (
            "it has expired, or this server's clock is ahead (expired or not yet valid)".into(),
            "check this server's clock (date -u; enable NTP); if the clock is right, a TLS-inspecting proxy may be presenting an outdated certificate",
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            "it is not valid yet, or this server's clock is behind (expired or not yet valid)".into(),
            "check this server's clock (date -u; enable NTP)",
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            "it is for another name (wrong name)".into(),
            "check the destination's \"api_url\" (B2's is https://api.backblazeb2.com); a TLS-inspecting proxy may also present a certificate for the wrong name, then trust its CA with \"ca_file\"",
        ),
        other => (format!("{other:?}"), PROXY_FIX),
    }
}

/// The rustls certificate error among `e`'s causes. An `io::Error` hides the error it
/// wraps from `source()` (it answers that error's own source), so it is opened by hand.
fn find_certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CertificateError> {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(c);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = find_certificate_error(inner) {
                return Some(found);
            }
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_error_is_found_inside_an_io_error() {
        let rustls_err = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let outer = std::io::Error::other(io);
        assert_eq!(
            find_certificate_error(&outer),
            Some(&CertificateError::UnknownIssuer)
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(find_certificate_error(&plain), None);
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(ExtraRoots::load(&path)
            .unwrap_err()
            .contains("no certificate"));
        assert!(ExtraRoots::load(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot be read"));
    }
}
