//! A daemon's TLS identity, replaced while it runs: its certificate, key, fleet CA and
//! revocation list are read again on SIGHUP and when the files change, without dropping a
//! connection.
//!
//! [`ReloadableIdentity`] holds the identity in use. The rustls configurations it builds
//! ([`ReloadableIdentity::server_config`], [`ReloadableIdentity::client_config`]) ask it at
//! every handshake for the certificate to present and the verifier to judge the peer with,
//! so a reload takes effect at the next handshake; established connections keep the
//! identity they were opened with. A reload that fails (a file unreadable, a key that does
//! not match the certificate, an expired certificate, a revocation list not signed by the
//! CA) changes nothing: the error, naming the file, is returned (and logged by
//! [`watch`]).
//!
//! Resumed TLS sessions skip certificate checks, so the server's session cache belongs to
//! the identity in use: a reload starts an empty one, and a certificate revoked since can
//! only come back through a full handshake, which refuses it. Outbound connections do not
//! resume at all.
//!
//! [`watch`] (feature `daemon`) reloads on SIGHUP and polls the files' modification times
//! every [`POLL_EVERY`]: a change is acted on once the files have stayed the same for one
//! more poll, so a certificate and its key copied one after the other are read together.

use crate::role::Role;
use crate::tls::{provider, Identity, ServerCheck, TlsError, TlsFiles};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct as Dss, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often [`watch`] looks at the files' modification times.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// Sessions a server keeps for resumption (rustls' default).
const SESSIONS: usize = 256;

/// The revocation list a daemon uses: `--crl`, or `crl.pem` beside `--ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFile {
    pub path: PathBuf,
    /// Named by `--crl`: it must exist. The default is used once it exists.
    pub required: bool,
}

impl CrlFile {
    /// `--crl` when given, else `crl.pem` in the directory of `ca`.
    pub fn new(flag: Option<PathBuf>, ca: &Path) -> CrlFile {
        match flag {
            Some(path) => CrlFile { path, required: true },
            None => CrlFile { path: ca.with_file_name("crl.pem"), required: false },
        }
    }
}

/// An identity in use, with what its handshakes need built once.
#[derive(Debug)]
pub struct Loaded {
    pub identity: Identity,
    certified: Arc<CertifiedKey>,
    optional: Arc<dyn ClientCertVerifier>,
    required: Arc<dyn ClientCertVerifier>,
    server: Arc<WebPkiServerVerifier>,
    sessions: Arc<ServerSessionMemoryCache>,
}

impl Loaded {
    fn new(identity: Identity) -> Result<Loaded, TlsError> {
        Ok(Loaded {
            certified: identity.certified_key()?,
            optional: identity.client_verifier(false)?,
            required: identity.client_verifier(true)?,
            server: identity.server_verifier()?,
            sessions: ServerSessionMemoryCache::new(SESSIONS),
            identity,
        })
    }
}

/// Where an identity is read from, and what it must be.
struct Source {
    files: TlsFiles,
    crl: Option<CrlFile>,
    role: Option<Role>,
    /// The files as they were at the last reload attempt.
    attempted: Mutex<Stamps>,
}

/// Each file's modification time, size and inode (`None`: absent).
pub type Stamps = Vec<Option<(std::time::SystemTime, u64, u64)>>;

/// A TLS identity that can be replaced while it is in use; see the module documentation.
pub struct ReloadableIdentity {
    source: Option<Source>,
    current: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for ReloadableIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableIdentity")
            .field("files", &self.source.as_ref().map(|s| &s.files))
            .field("peer", &self.current().identity.peer)
            .finish()
    }
}

impl ReloadableIdentity {
    /// Loads `files` (and the revocation list `crl`, if it is there or required); the
    /// certificate must carry `role` when one is given.
    pub fn load(files: TlsFiles, crl: Option<CrlFile>, role: Option<Role>) -> Result<Arc<Self>, TlsError> {
        let source = Source { files, crl, role, attempted: Mutex::new(Vec::new()) };
        *source.attempted.lock().unwrap_or_else(|e| e.into_inner()) = source.stamps();
        let loaded = source.read(false)?;
        Ok(Arc::new(ReloadableIdentity { source: Some(source), current: RwLock::new(Arc::new(loaded)) }))
    }

    /// An identity that is never reloaded (tools, in-process tests).
    pub fn fixed(identity: Identity) -> Result<Arc<Self>, TlsError> {
        let loaded = Loaded::new(identity)?;
        Ok(Arc::new(ReloadableIdentity { source: None, current: RwLock::new(Arc::new(loaded)) }))
    }

    /// The identity in use now.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The files (and revocation list) this identity is read from; `None` if fixed.
    pub fn files(&self) -> Option<(&TlsFiles, Option<&CrlFile>)> {
        self.source.as_ref().map(|s| (&s.files, s.crl.as_ref()))
    }

    /// Reads the files again and, if they make a usable identity, uses it from the next
    /// handshake on. On an error the identity in use stays.
    pub fn reload(&self) -> Result<Arc<Loaded>, TlsError> {
        let Some(source) = &self.source else { return Ok(self.current()) };
        *source.attempted.lock().unwrap_or_else(|e| e.into_inner()) = source.stamps();
        let had_crl = self.current().identity.has_crl();
        let loaded = Arc::new(source.read(had_crl)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded.clone();
        Ok(loaded)
    }

    /// The files' stamps now (empty if fixed).
    pub fn stamps(&self) -> Stamps {
        self.source.as_ref().map(Source::stamps).unwrap_or_default()
    }

    /// Whether `stamps` differ from the files' at the last reload attempt.
    pub fn changed_since_attempt(&self, stamps: &Stamps) -> bool {
        self.source
            .as_ref()
            .is_some_and(|s| *s.attempted.lock().unwrap_or_else(|e| e.into_inner()) != *stamps)
    }

    /// A server configuration (TLS 1.3) presenting the identity in use at each handshake;
    /// `require_client_auth`: a client without a certificate fails the handshake.
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        require_client_auth: bool,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = Arc::new(Clients { live: self.clone(), require: require_client_auth });
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Live(self.clone())));
        cfg.session_storage = Arc::new(Live(self.clone()));
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// A client configuration (TLS 1.3) presenting the identity in use, and judging servers
    /// with its CA and revocation list, at each handshake. Sessions are not resumed.
    pub fn client_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        let live = self.clone();
        let servers = move || live.current().server.clone();
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerCheck {
                current: Box::new(servers),
                seen: None,
            }))
            .with_client_cert_resolver(Arc::new(Live(self.clone())));
        cfg.resumption = rustls::client::Resumption::disabled();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

impl Source {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        let f = &self.files;
        [f.cert.as_path(), f.key.as_path(), f.ca.as_path()]
            .into_iter()
            .chain(self.crl.as_ref().map(|c| c.path.as_path()))
    }

    fn stamps(&self) -> Stamps {
        use std::os::unix::fs::MetadataExt;
        self.paths()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len(), m.ino()))
            })
            .collect()
    }

    /// The identity the files make now. A revocation list once used must stay readable:
    /// its absence is an error, not a reason to stop checking.
    fn read(&self, had_crl: bool) -> Result<Loaded, TlsError> {
        let mut identity = Identity::load(&self.files)?;
        if let Some(want) = self.role.filter(|r| *r != identity.peer.role) {
            return Err(TlsError::WrongRole {
                path: self.files.cert.clone(),
                role: identity.peer.role,
                want,
            });
        }
        if let Some(crl) = &self.crl {
            if crl.required || had_crl || crl.path.exists() {
                identity = identity.with_crl(&crl.path)?;
            }
        }
        Loaded::new(identity)
    }
}

/// The rustls hooks that ask the identity in use at each handshake.
#[derive(Debug)]
struct Live(Arc<ReloadableIdentity>);

impl ResolvesServerCert for Live {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified.clone())
    }
}

impl ResolvesClientCert for Live {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl StoresServerSessions for Live {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.current().sessions.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.current().sessions.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.current().sessions.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// What a handshake signature check answers.
type Signed = Result<HandshakeSignatureValid, rustls::Error>;

/// Client certificates judged by the identity in use (no CA names hinted: they change).
#[derive(Debug)]
struct Clients {
    live: Arc<ReloadableIdentity>,
    require: bool,
}

impl Clients {
    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        let current = self.live.current();
        if self.require {
            current.required.clone()
        } else {
            current.optional.clone()
        }
    }
}

impl ClientCertVerifier for Clients {
    fn client_auth_mandatory(&self) -> bool {
        self.require
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> Signed {
        self.verifier().verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> Signed {
        self.verifier().verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

/// What a successful reload says in the log.
pub fn describe(loaded: &Loaded, files: Option<(&TlsFiles, Option<&CrlFile>)>) -> String {
    let id = &loaded.identity;
    let cert = files.map(|(f, _)| f.cert.display().to_string()).unwrap_or_default();
    let not_after = crate::tls::rfc3339(id.peer.not_after);
    let crl = match files.and_then(|(_, c)| c) {
        Some(c) if id.has_crl() => format!("; revocation list {}: {} revoked", c.path.display(), id.revoked),
        _ => "; no revocation list".into(),
    };
    format!("{cert}: {} (role {}), valid until {not_after}{crl}", id.peer.name, id.peer.role)
}

/// Reloads `identity` on SIGHUP and when its files change (see the module documentation),
/// logging each reload and each failure, until the runtime ends. The SIGHUP handler is in
/// place when this returns. Call it inside the runtime.
#[cfg(feature = "daemon")]
pub fn watch(identity: Arc<ReloadableIdentity>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    // DCOS_TLS_POLL_MS: another polling interval (0: none, SIGHUP only). For tests.
    let poll = std::env::var("DCOS_TLS_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(POLL_EVERY);
    tokio::spawn(async move {
        let mut last = identity.stamps();
        loop {
            let why = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                _ = tokio::time::sleep(poll), if !poll.is_zero() => {
                    let now = identity.stamps();
                    let settled = now == last;
                    last = now;
                    if !(settled && identity.changed_since_attempt(&last)) {
                        continue;
                    }
                    "the files changed"
                }
            };
            match identity.reload() {
                Ok(loaded) => {
                    tracing::info!("TLS identity reloaded ({why}): {}", describe(&loaded, identity.files()))
                }
                Err(e) => tracing::error!("TLS reload ({why}) failed, the identity in use stays: {e}"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, files_in as files, LeafSpec};

    /// A fleet CA in a temporary directory with `host` and `viewer` issued.
    fn fleet() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        for (name, role) in [("host", Role::Host), ("viewer", Role::Viewer)] {
            pki::issue_into_dir(dir.path(), &LeafSpec::new(name, role)).unwrap();
        }
        dir
    }

    /// A TLS 1.3 handshake in memory between `client` and `server`: the server's verdict.
    fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Result<(), rustls::Error> {
        let name = rustls_pki_types::ServerName::try_from("host").unwrap();
        let mut c = rustls::ClientConnection::new(client, name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            let mut back = Vec::new();
            s.write_tls(&mut back).unwrap();
            c.read_tls(&mut back.as_slice()).unwrap();
            c.process_new_packets()?;
            if buf.is_empty() && back.is_empty() {
                break;
            }
        }
        Ok(())
    }

    #[test]
    fn a_revoked_client_is_refused_after_a_reload_and_the_list_keeps_every_serial() {
        let dir = fleet();
        let host = ReloadableIdentity::load(
            files(dir.path(), "host"),
            Some(CrlFile::new(None, &dir.path().join("ca.crt"))),
            Some(Role::Host),
        )
        .unwrap();
        let server = host.server_config(&[], true).unwrap();
        let viewer = Identity::load(&files(dir.path(), "viewer")).unwrap();
        handshake(viewer.client_config(&[]).unwrap(), server.clone()).expect("not revoked yet");

        let (admin_serial, _) = pki::certificate_serial(&dir.path().join("admin.crt")).unwrap();
        let first = pki::revoke_in_dir(dir.path(), &admin_serial).unwrap();
        let (serial, name) = pki::certificate_serial(&dir.path().join("viewer.crt")).unwrap();
        assert_eq!(name, "viewer");
        let second = pki::revoke_in_dir(dir.path(), &serial).unwrap();
        assert_eq!((first.number, second.number), (1, 2), "each list is numbered one more");
        assert_eq!(second.serials, 2, "the serials revoked before stay revoked");
        assert_eq!(pki::parse_serial(&second.serial.to_uppercase()).unwrap(), serial);

        handshake(viewer.client_config(&[]).unwrap(), server.clone()).expect("the list is not read yet");
        let loaded = host.reload().unwrap();
        assert_eq!(loaded.identity.revoked, 2);
        let err = handshake(viewer.client_config(&[]).unwrap(), server).unwrap_err();
        assert_eq!(err, rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
    }

    #[test]
    fn a_failed_reload_keeps_the_identity_in_use_and_names_the_file() {
        let dir = fleet();
        let live = ReloadableIdentity::load(files(dir.path(), "host"), None, Some(Role::Host)).unwrap();
        let before = live.current().identity.peer.not_after;

        // A key that is not the certificate's.
        std::fs::copy(dir.path().join("viewer.key"), dir.path().join("host.key")).unwrap();
        let err = live.reload().unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with(&dir.path().join("host.key").display().to_string()), "{err}");
        // A certificate of another role.
        std::fs::copy(dir.path().join("viewer.crt"), dir.path().join("host.crt")).unwrap();
        std::fs::copy(dir.path().join("viewer.key"), dir.path().join("host.key")).unwrap();
        let err = live.reload().unwrap_err();
        assert!(err.to_string().contains("needs a host certificate"), "{err}");
        // An expired one.
        let mut old = LeafSpec::new("host", Role::Host);
        old.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(10);
        old.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        pki::issue_into_dir(dir.path(), &old).unwrap();
        assert!(matches!(live.reload().unwrap_err(), TlsError::Expired { .. }));
        assert_eq!(live.current().identity.peer.name, "host");
        assert_eq!(live.current().identity.peer.not_after, before, "the identity in use stays");

        // A new certificate and key: in use from the next handshake.
        let mut renewed = LeafSpec::new("host", Role::Host);
        renewed.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        pki::issue_into_dir(dir.path(), &renewed).unwrap();
        assert!(live.changed_since_attempt(&live.stamps()), "the files changed since");
        live.reload().unwrap();
        assert!(!live.changed_since_attempt(&live.stamps()));
        assert!(live.current().identity.peer.not_after < before, "the renewed certificate is in use");
    }

    #[test]
    fn a_revocation_list_of_another_ca_or_a_vanished_one_is_refused() {
        let dir = fleet();
        let other = fleet();
        let (serial, _) = pki::certificate_serial(&other.path().join("viewer.crt")).unwrap();
        pki::revoke_in_dir(other.path(), &serial).unwrap();
        std::fs::copy(other.path().join(pki::CRL_FILE), dir.path().join(pki::CRL_FILE)).unwrap();
        let crl = CrlFile::new(None, &dir.path().join("ca.crt"));
        let err = ReloadableIdentity::load(files(dir.path(), "host"), Some(crl.clone()), None).unwrap_err();
        assert!(matches!(err, TlsError::Crl { .. }), "{err}");
        assert!(err.to_string().contains("crl.pem"), "{err}");

        std::fs::remove_file(dir.path().join(pki::CRL_FILE)).unwrap();
        let live = ReloadableIdentity::load(files(dir.path(), "host"), Some(crl), None).unwrap();
        assert!(!live.current().identity.has_crl(), "no list yet: none used");
        let (own, _) = pki::certificate_serial(&dir.path().join("viewer.crt")).unwrap();
        pki::revoke_in_dir(dir.path(), &own).unwrap();
        assert!(live.reload().unwrap().identity.has_crl(), "the list is used once it exists");
        std::fs::remove_file(dir.path().join(pki::CRL_FILE)).unwrap();
        let err = live.reload().unwrap_err();
        assert!(err.to_string().contains("crl.pem"), "{err}");
        assert!(live.current().identity.has_crl(), "a list once used stays in use");
    }
}
