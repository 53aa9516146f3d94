//! TLS for Ferrovirt's remote API, as Incus does it: every daemon and every
//! CLI has a self-signed certificate; peers trust each other by the SHA-256
//! fingerprint of the certificate, not through a CA. The server asks every
//! client for a certificate (mutual TLS) and the daemon decides, per
//! request, whether that fingerprint is trusted; clients pin the server's
//! fingerprint.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

pub use rustls;
pub use time::{self, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("{path} holds no usable {what}")]
    Parse { path: String, what: &'static str },
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
    cert: CertificateDer<'static>,
}

impl Identity {
    /// Loads `dir/NAME.crt` and `dir/NAME.key`, creating them (self-signed,
    /// valid for 10 years) on first use.
    pub fn load_or_create(dir: &Path, name: &str, common_name: &str) -> Result<Self, TlsError> {
        let crt = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TlsError::Io { path, source }
        };
        if !crt.exists() || !key.exists() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let id = Self::self_signed(
                common_name,
                rcgen::date_time_ymd(1975, 1, 1),
                rcgen::date_time_ymd(2036, 1, 1),
            )?;
            write_private(&key, &id.key_pem).map_err(io(&key))?;
            std::fs::write(&crt, &id.cert_pem).map_err(io(&crt))?;
        }
        let cert_pem = std::fs::read_to_string(&crt).map_err(io(&crt))?;
        let key_pem = std::fs::read_to_string(&key).map_err(io(&key))?;
        Self::from_pem(&cert_pem, &key_pem, &crt.display().to_string())
    }

    /// A new self-signed identity valid from `not_before` to `not_after`.
    pub fn self_signed(
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Self, TlsError> {
        let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let mut params =
            rcgen::CertificateParams::new(vec![common_name.to_owned()]).map_err(generate)?;
        params.not_before = not_before;
        params.not_after = not_after;
        let kp = rcgen::KeyPair::generate().map_err(generate)?;
        let cert = params.self_signed(&kp).map_err(generate)?;
        Self::from_pem(&cert.pem(), &kp.serialize_pem(), common_name)
    }

    fn from_pem(cert_pem: &str, key_pem: &str, origin: &str) -> Result<Self, TlsError> {
        let cert = pem_der(cert_pem, "CERTIFICATE").ok_or_else(|| TlsError::Parse {
            path: origin.to_owned(),
            what: "certificate",
        })?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert: CertificateDer::from(cert),
        })
    }

    /// SHA-256 of the certificate, hex: how peers name and trust it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let der = pem_der(&self.key_pem, "PRIVATE KEY").ok_or(TlsError::Parse {
            path: "the private key".into(),
            what: "PKCS#8 private key",
        })?;
        Ok(PrivateKeyDer::Pkcs8(der.into()))
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Decodes the first PEM block labelled `label`.
fn pem_der(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let b64: String = text[start..stop].split_whitespace().collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// When a certificate is valid (its notBefore and notAfter), as unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// The validity period of a DER certificate; `None` if it does not parse.
    pub fn of(cert: &[u8]) -> Option<Self> {
        let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
        let v = c.validity();
        Some(Self {
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
        })
    }

    /// Why the certificate is not valid at unix time `now`, if it is not.
    pub fn problem_at(&self, now: i64) -> Option<String> {
        let date = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t)
                .map(|d| d.date().to_string())
                .unwrap_or_else(|_| t.to_string())
        };
        if now > self.not_after {
            Some(format!("expired on {}", date(self.not_after)))
        } else if now < self.not_before {
            Some(format!("is not valid before {}", date(self.not_before)))
        } else {
            None
        }
    }
}

/// SHA-256 hex of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Makes ring the process's default rustls provider (HTTP clients built
/// without an explicit TLS config need one). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server side: present `id`, require a client certificate of any issuer
/// (its fingerprint is checked per request by the daemon).
pub fn server_config(id: &Identity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AnyClientCert(Signatures(provider))))
        .with_single_cert(vec![id.cert.clone()], id.key()?)?;
    Ok(cfg)
}

/// A client config that trusts nothing, for HTTP clients that never speak
/// TLS (the local unix socket): it spares them loading the system's CA store.
pub fn unused_client_config() -> Result<rustls::ClientConfig, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Client side: present `id`, accept only the server whose certificate has
/// fingerprint `server_fingerprint`.
pub fn client_config(
    id: &Identity,
    server_fingerprint: &str,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer {
            fingerprint: server_fingerprint.to_lowercase(),
            signatures: Signatures(provider),
        }))
        .with_client_auth_cert(vec![id.cert.clone()], id.key()?)?;
    Ok(cfg)
}

/// Handshake signature checks shared by both verifiers.
#[derive(Debug)]
struct Signatures(Arc<CryptoProvider>);

impl Signatures {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct AnyClientCert(Signatures);

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Trust is decided by fingerprint after the handshake; the
        // handshake signature below still proves the client holds the key.
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

#[derive(Debug)]
struct PinnedServer {
    fingerprint: String,
    signatures: Signatures,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if got == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate {got} is not the pinned {}",
                self.fingerprint
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_persist_and_configs_build() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path(), "server", "host-a").unwrap();
        let again = Identity::load_or_create(dir.path(), "server", "host-a").unwrap();
        assert_eq!(a.fingerprint(), again.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        let b = Identity::load_or_create(dir.path(), "client", "cli").unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        server_config(&a).unwrap();
        client_config(&b, &a.fingerprint()).unwrap();
    }

    #[test]
    fn validity_says_when_a_certificate_expired() {
        let day = time::Duration::days(1);
        let now = OffsetDateTime::now_utc();
        let old = Identity::self_signed("old", now - day * 10, now - day).unwrap();
        let v = Validity::of(&old.cert).unwrap();
        let problem = v.problem_at(now.unix_timestamp()).unwrap();
        assert!(problem.starts_with("expired on "), "{problem}");
        let early = Identity::self_signed("early", now + day, now + day * 2).unwrap();
        let problem = Validity::of(&early.cert)
            .unwrap()
            .problem_at(now.unix_timestamp())
            .unwrap();
        assert!(problem.starts_with("is not valid before "), "{problem}");
        let dir = tempfile::tempdir().unwrap();
        let fresh = Identity::load_or_create(dir.path(), "c", "cli").unwrap();
        assert_eq!(
            Validity::of(&fresh.cert)
                .unwrap()
                .problem_at(now.unix_timestamp()),
            None
        );
    }
}
