//! TLS 1.3 configurations for every dcos listener and client, and the identity a peer's
//! certificate carries.
//!
//! Servers accept a connection without a client certificate at the TLS layer (so that
//! `/healthz` and the OpenAPI document stay reachable and bearer tokens can be used); any
//! certificate that *is* presented must chain to the fleet CA and be within its validity,
//! or the handshake fails. Authorization is then decided per request from
//! [`PeerIdentity`].

use crate::role::Role;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct as Dss, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Why TLS material could not be used. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key found")]
    NoKey { path: PathBuf },
    #[error("{path}: not a certificate dcos can read: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: certificate expired on {not_after}")]
    Expired { path: PathBuf, not_after: String },
    #[error("{path}: certificate not valid before {not_before}")]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("certificate has no dcos role (subject OU must be viewer, host or admin)")]
    NoRole,
    #[error(
        "{path} carries role {role}; this daemon needs a {want} certificate (dcos certs issue --role {want})"
    )]
    WrongRole { path: PathBuf, role: Role, want: Role },
    #[error("{key}: this private key does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{path}: not a revocation list dcos can use: {reason}")]
    Crl { path: PathBuf, reason: String },
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
    #[error("client verifier rejected: {0}")]
    Verifier(String),
}

/// The PEM files one party uses: its certificate chain, its key and the fleet CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TlsFiles {
    /// `--cert F --key F --ca F`: the flags that give a daemon (or `dcos`) these files.
    pub fn flags(&self) -> [&std::ffi::OsStr; 6] {
        [
            "--cert".as_ref(),
            self.cert.as_ref(),
            "--key".as_ref(),
            self.key.as_ref(),
            "--ca".as_ref(),
            self.ca.as_ref(),
        ]
    }
}

/// Loaded TLS material, checked for basic sanity.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pub roots: Arc<RootCertStore>,
    /// Who this certificate says we are.
    pub peer: PeerIdentity,
    /// The CA's revocation list, when one is used ([`Identity::with_crl`]).
    crls: Vec<CertificateRevocationListDer<'static>>,
    /// How many serials that list revokes.
    pub revoked: usize,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            peer: self.peer.clone(),
            crls: self.crls.clone(),
            revoked: self.revoked,
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub name: String,
    pub role: Role,
    /// Seconds since the epoch at which the certificate stops being valid.
    pub not_after: i64,
}

/// The crypto provider of every dcos TLS configuration (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey { path: path.into() })
}

/// Reads the fleet CA file into a root store.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).map_err(|e| TlsError::BadCertificate { path: path.into(), reason: e.to_string() })?;
    }
    Ok(Arc::new(roots))
}

impl Identity {
    /// Loads and checks `files`: the certificate must parse, carry a role and be valid now.
    pub fn load(files: &TlsFiles) -> Result<Identity, TlsError> {
        let chain = read_certs(&files.cert)?;
        let key = read_key(&files.key)?;
        let roots = load_roots(&files.ca)?;
        let peer = peer_identity(&chain[0]).map_err(|e| match e {
            TlsError::BadCertificate { reason, .. } => {
                TlsError::BadCertificate { path: files.cert.clone(), reason }
            }
            other => other,
        })?;
        check_validity(&files.cert, &chain[0], OffsetDateTime::now_utc())?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() }
            }
            other => TlsError::Config(other),
        })?;
        Ok(Identity { chain, key, roots, peer, crls: Vec::new(), revoked: 0 })
    }

    /// This identity with the revocation list in `path` (PEM, issued by the fleet CA): a
    /// revoked certificate then fails the handshake wherever this identity verifies one.
    /// The list must be signed by the CA; one that revokes this identity's own certificate
    /// is used all the same (and said so in the log).
    pub fn with_crl(mut self, path: &Path) -> Result<Identity, TlsError> {
        let bad = |reason: String| TlsError::Crl { path: path.into(), reason };
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
        let crls: Vec<_> =
            CertificateRevocationListDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
        if crls.is_empty() {
            return Err(bad("no PEM X509 CRL found".into()));
        }
        let mut revoked = 0;
        for crl in &crls {
            let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| bad(e.to_string()))?;
            revoked += parsed.iter_revoked_certificates().count();
        }
        self.crls = crls;
        self.revoked = revoked;
        // Our own certificate, checked against the list, proves it is the CA's (signed by
        // it, covering its certificates) before any peer is judged by it.
        let verifier = self.client_verifier(true).map_err(|e| bad(e.to_string()))?;
        match verifier.verify_client_cert(&self.chain[0], &self.chain[1..], UnixTime::now()) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)) => {
                tracing::error!(
                    "{}: revokes this host's own certificate ({}); peers will refuse it: issue a new one",
                    path.display(),
                    self.peer.name
                );
            }
            Err(rustls::Error::InvalidCertRevocationList(e)) => {
                return Err(bad(format!("not signed by the CA in use ({e:?})")));
            }
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownRevocationStatus)) => {
                return Err(bad("it does not cover certificates of the CA in use".into()));
            }
            _ => {}
        }
        Ok(self)
    }

    /// Whether a revocation list is in use.
    pub fn has_crl(&self) -> bool {
        !self.crls.is_empty()
    }

    /// The verifier of client certificates: chained to the fleet CA and not revoked;
    /// `require`: a client without one fails the handshake.
    pub fn client_verifier(&self, require: bool) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let mut builder = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider());
        if !self.crls.is_empty() {
            builder = builder.with_crls(self.crls.iter().cloned()).only_check_end_entity_revocation();
        }
        let builder = if require { builder } else { builder.allow_unauthenticated() };
        builder.build().map_err(|e| TlsError::Verifier(e.to_string()))
    }

    /// The verifier of server certificates: chained to the fleet CA and not revoked.
    pub fn server_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
        let mut builder = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider());
        if !self.crls.is_empty() {
            builder = builder.with_crls(self.crls.iter().cloned()).only_check_end_entity_revocation();
        }
        builder.build().map_err(|e| TlsError::Verifier(e.to_string()))
    }

    /// The certificate chain and signing key, as rustls presents them.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        Ok(Arc::new(CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider())?))
    }

    /// A 32-byte secret for `purpose`, derived from the private key (HMAC-SHA256 keyed
    /// with it): the same for every process holding this key, unknown to anyone else, and
    /// different for each purpose. middlecon's QUIC stateless-reset key is one, so a
    /// restarted daemon can end the connections its predecessor left behind.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.key.secret_der());
        let tag = ring::hmac::sign(&key, purpose.as_bytes());
        let mut secret = [0u8; 32];
        secret.copy_from_slice(tag.as_ref());
        secret
    }

    /// A server configuration: TLS 1.3 only; client certificates optional at the TLS layer
    /// but verified against the fleet CA whenever presented.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        self.build_server_config(alpn, false)
    }

    /// As [`Identity::server_config`], but a client without a certificate from the fleet CA
    /// fails the handshake (peer traffic between middlecons).
    pub fn server_config_require_client_auth(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        self.build_server_config(alpn, true)
    }

    fn build_server_config(&self, alpn: &[&[u8]], require: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = self.client_verifier(require)?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// A client configuration presenting this identity and trusting only the fleet CA.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        self.build_client_config(alpn, self.server_verifier()?)
    }

    /// As [`Identity::client_config`], noting in `seen` when each server's certificate
    /// expires.
    pub fn client_config_seeing(
        &self,
        alpn: &[&[u8]],
        seen: &SeenCertificates,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let verifier = self.server_verifier()?;
        let check = ServerCheck { current: Box::new(move || verifier.clone()), seen: Some(seen.clone()) };
        self.build_client_config(alpn, Arc::new(check))
    }

    fn build_client_config(
        &self,
        alpn: &[&[u8]],
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

/// What a handshake signature check answers (the verifiers of this crate delegate it).
type SigValid = Result<HandshakeSignatureValid, rustls::Error>;

/// When each server certificate a client verified expires (seconds since the epoch), by the
/// name the server was asked for (an IP address or a DNS name). Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct SeenCertificates(Arc<Mutex<HashMap<String, i64>>>);

impl SeenCertificates {
    /// The not-after of the certificate `server` presented, if it was seen.
    pub fn not_after(&self, server: &str) -> Option<i64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(server).copied()
    }
}

/// The server verifier of every client configuration built here: the fleet CA's (with its
/// revocation list) as `current` gives it at each handshake, noting in `seen` (if any) when
/// each verified certificate expires.
pub(crate) struct ServerCheck {
    pub current: Box<dyn Fn() -> Arc<WebPkiServerVerifier> + Send + Sync>,
    pub seen: Option<SeenCertificates>,
}

impl std::fmt::Debug for ServerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCheck").field("verifier", &(self.current)()).finish()
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            (self.current)().verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let parsed = x509_parser::parse_x509_certificate(end_entity.as_ref());
        if let (Some(seen), Ok((_, x509))) = (&self.seen, parsed) {
            let not_after = x509.validity().not_after.timestamp();
            seen.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(server_name.to_str().into_owned(), not_after);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> SigValid {
        (self.current)().verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> SigValid {
        (self.current)().verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        (self.current)().supported_verify_schemes()
    }
}

/// A client configuration with no certificate of its own (bearer tokens, health checks).
pub fn anonymous_client_config(roots: Arc<RootCertStore>) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Seconds since the epoch as an RFC 3339 time (UTC).
pub fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

fn check_validity(path: &Path, cert: &CertificateDer<'_>, now: OffsetDateTime) -> Result<(), TlsError> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::BadCertificate { path: path.into(), reason: e.to_string() })?;
    let v = x509.validity();
    let now = now.unix_timestamp();
    if now > v.not_after.timestamp() {
        return Err(TlsError::Expired { path: path.into(), not_after: rfc3339(v.not_after.timestamp()) });
    }
    if now < v.not_before.timestamp() {
        return Err(TlsError::NotYetValid {
            path: path.into(),
            not_before: rfc3339(v.not_before.timestamp()),
        });
    }
    Ok(())
}

/// Reads name (CN) and role (OU) from a certificate that TLS has already verified.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::BadCertificate { path: PathBuf::new(), reason: e.to_string() })?;
    let subject = x509.subject();
    let name =
        subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string();
    let role = subject
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .find_map(|ou| ou.parse::<Role>().ok())
        .ok_or(TlsError::NoRole)?;
    Ok(PeerIdentity { name, role, not_after: x509.validity().not_after.timestamp() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, LeafSpec};

    use crate::pki::files_in;

    #[test]
    fn identity_carries_name_and_role_and_expired_certificates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        let files = |n: &str| files_in(dir.path(), n);
        let admin = Identity::load(&files("admin")).unwrap();
        assert_eq!(admin.peer.name, "admin");
        assert_eq!(admin.peer.role, Role::Admin);
        admin.server_config(&[b"http/1.1"]).unwrap();
        admin.client_config(&[]).unwrap();

        let mut spec = LeafSpec::new("old", Role::Viewer);
        spec.not_before = OffsetDateTime::now_utc() - time::Duration::days(10);
        spec.not_after = OffsetDateTime::now_utc() - time::Duration::days(1);
        pki::issue_into_dir(dir.path(), &spec).unwrap();
        let err = Identity::load(&files("old")).unwrap_err();
        assert!(matches!(err, TlsError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("old.crt"), "{err}");
    }

    #[test]
    fn derived_secrets_follow_the_key_and_the_purpose() {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        let files = |n: &str| files_in(dir.path(), n);
        let once = Identity::load(&files("admin")).unwrap();
        let again = Identity::load(&files("admin")).unwrap();
        assert_eq!(once.derive_secret("reset"), again.derive_secret("reset"), "same key, same secret");
        assert_ne!(once.derive_secret("reset"), once.derive_secret("other"), "one secret per purpose");
        pki::issue_into_dir(dir.path(), &LeafSpec::new("other", Role::Host)).unwrap();
        let other = Identity::load(&files("other")).unwrap();
        assert_ne!(once.derive_secret("reset"), other.derive_secret("reset"), "another key, another secret");
    }

    #[test]
    fn missing_files_are_named() {
        let err = Identity::load(&TlsFiles {
            cert: "/nonexistent/x.crt".into(),
            key: "/nonexistent/x.key".into(),
            ca: "/nonexistent/ca.crt".into(),
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/x.crt"), "{err}");
    }
}
