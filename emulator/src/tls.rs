//! HTTPS on request: a CA of the emulator's own (kept in the data directory, so a restart
//! keeps the CA clients were given) and a server certificate signed at each start. For the
//! client's certificate checks it can also present a certificate that must be refused:
//! from an unknown CA, expired, or for another name.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Which certificate an HTTPS emulator presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsCert {
    /// Signed by the emulator's CA, for 127.0.0.1, ::1 and localhost.
    Valid,
    /// Signed by a CA made for this start and never written anywhere: what a client sees
    /// behind a TLS-inspecting proxy whose CA it does not have.
    UnknownIssuer,
    /// Signed by the emulator's CA, but valid only in 2020.
    Expired,
    /// Signed by the emulator's CA, for `wrong-name.invalid` only.
    WrongName,
}

/// What the server needs: the acceptor, and where the CA's PEM was written.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub ca_pem_path: PathBuf,
}

const CA_NAME: &str = "b2-emulator test CA";

fn ca_params() -> io::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    Ok(params)
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("TLS set-up: {e}"))
}

/// The CA of `dir` (`tls/ca.pem`, `tls/ca-key.pem`), made on first use.
fn load_or_make_ca(dir: &Path) -> io::Result<(KeyPair, String)> {
    let tls_dir = dir.join("tls");
    let (cert_path, key_path) = (tls_dir.join("ca.pem"), tls_dir.join("ca-key.pem"));
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        if let Ok(key) = KeyPair::from_pem(&key) {
            return Ok((key, cert));
        }
    }
    std::fs::create_dir_all(&tls_dir)?;
    let key = KeyPair::generate().map_err(other)?;
    let cert = ca_params()?.self_signed(&key).map_err(other)?.pem();
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&cert_path, &cert)?;
    Ok((key, cert))
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Makes the CA (or reuses the data directory's) and the server certificate `cert` asks for.
pub fn set_up(data_dir: &Path, cert: TlsCert) -> io::Result<Tls> {
    let (ca_key, _) = load_or_make_ca(data_dir)?;
    let stranger_key;
    let (issuer_key, issuer_params) = if cert == TlsCert::UnknownIssuer {
        stranger_key = KeyPair::generate().map_err(other)?;
        let mut params = ca_params()?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "an unknown interception CA");
        (&stranger_key, params)
    } else {
        (&ca_key, ca_params()?)
    };
    let issuer = Issuer::new(issuer_params, issuer_key);

    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "b2-emulator");
    params.subject_alt_names = if cert == TlsCert::WrongName {
        vec![SanType::DnsName(
            "wrong-name.invalid".try_into().map_err(other)?,
        )]
    } else {
        vec![
            SanType::DnsName("localhost".try_into().map_err(other)?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]
    };
    let (not_before, not_after) = if cert == TlsCert::Expired {
        (
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
        )
    } else {
        (
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2099, 1, 1),
        )
    };
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate().map_err(other)?;
    let leaf = params.signed_by(&key, &issuer).map_err(other)?;

    // ring, explicitly: never the process default, which two providers would make ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_pem_path: data_dir.join("tls").join("ca.pem"),
    })
}
