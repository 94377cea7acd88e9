//! The fleet CA and the certificates it issues (SPEC section 2).
//!
//! A certificate names its holder in the subject CN and carries the holder's role in the
//! subject OU (`viewer`, `host` or `admin`), so the certificate alone is the identity.
//! Every leaf is valid for both server and client authentication: hosts are both.
//!
//! The CA also keeps a revocation list, `crl.pem` beside `ca.crt` ([`revoke_in_dir`]): an
//! X.509 CRL signed by the CA, which daemons check every certificate against.

use crate::role::Role;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What can go wrong creating or issuing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; refusing to overwrite a CA (remove it first)")]
    Exists { path: PathBuf },
    #[error("invalid certificate name {0:?}: use letters, digits, '-', '_' and '.'")]
    BadName(String),
    #[error("invalid DNS name {0:?}")]
    BadDns(String),
    #[error("the CA in {dir} is unusable: {reason}")]
    BadCa { dir: PathBuf, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{0:?} is not a serial number in hex (e.g. 3A:0F:91 or 3a0f91)")]
    BadSerial(String),
}

/// Subject organization of every dcos certificate.
pub const ORGANIZATION: &str = "dcos";

/// Validity of what `issue` writes unless told otherwise.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::days(365);
const CA_VALIDITY: Duration = Duration::days(3650);

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// The fleet CA, in memory.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate as PEM, as written to `ca.crt`.
    pub cert_pem: String,
}

/// What a new leaf certificate says.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub name: String,
    pub role: Role,
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl LeafSpec {
    /// A leaf valid from now for [`DEFAULT_LEAF_VALIDITY`].
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            name: name.into(),
            role,
            ips: Vec::new(),
            dns: Vec::new(),
            not_before: now - Duration::minutes(5),
            not_after: now + DEFAULT_LEAF_VALIDITY,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

fn subject(cn: &str, ou: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, cn);
    dn
}

impl Ca {
    /// A new CA with a fresh P-256 key.
    pub fn generate() -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject("dcos fleet CA", "ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + CA_VALIDITY;
        let key = KeyPair::generate()?;
        let cert_pem = params.clone().self_signed(&key)?.pem();
        Ok(Ca { params, key, cert_pem })
    }

    /// The CA kept in `dir` (`ca.crt`, `ca.key`).
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let bad = |reason: String| PkiError::BadCa { dir: dir.to_path_buf(), reason };
        let cert_pem = read(&dir.join("ca.crt"))?;
        let key_pem = read(&dir.join("ca.key"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(format!("ca.key: {e}")))?;
        let params =
            CertificateParams::from_ca_cert_pem(&cert_pem).map_err(|e| bad(format!("ca.crt: {e}")))?;
        Ok(Ca { params, key, cert_pem })
    }

    /// The CA's private key as PEM, as written to `ca.key`.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Signs a new leaf certificate for `spec`.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Pem, PkiError> {
        if !valid_name(&spec.name) {
            return Err(PkiError::BadName(spec.name.clone()));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&spec.name, spec.role.as_str());
        let mut sans = Vec::new();
        let mut dns_names: Vec<&str> = spec.dns.iter().map(String::as_str).collect();
        if !spec.name.contains('_') && !dns_names.contains(&spec.name.as_str()) {
            dns_names.insert(0, &spec.name);
        }
        for d in dns_names {
            let name = d.to_string().try_into().map_err(|_| PkiError::BadDns(d.to_string()))?;
            sans.push(SanType::DnsName(name));
        }
        sans.extend(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let issuer = self.params.clone().self_signed(&self.key)?;
        let cert = params.signed_by(&key, &issuer, &self.key)?;
        Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_path_buf(), source })
}

/// Writes a public file (certificate), mode 0644.
pub fn write_public(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_mode(path, contents, 0o644)
}

/// Writes a private key, mode 0600 from the moment it exists.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_mode(path, contents, 0o600)
}

fn write_mode(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let mut f =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// `dcos certs init`: a new CA and an admin certificate in `dir`. Refuses to replace a CA.
pub fn init_dir(dir: &Path) -> Result<Ca, PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.to_path_buf(), source })?;
    let ca_key = dir.join("ca.key");
    if ca_key.exists() {
        return Err(PkiError::Exists { path: ca_key });
    }
    let ca = Ca::generate()?;
    write_secret(&ca_key, &ca.key_pem())?;
    write_public(&dir.join("ca.crt"), &ca.cert_pem)?;
    let admin = ca.issue(&LeafSpec::new("admin", Role::Admin))?;
    write_secret(&dir.join("admin.key"), &admin.key)?;
    write_public(&dir.join("admin.crt"), &admin.cert)?;
    Ok(ca)
}

/// The revocation list's file in the CA's directory (and, by default, beside `--ca`).
pub const CRL_FILE: &str = "crl.pem";
/// How long a revocation list says it is current (daemons use it past that too).
const CRL_VALIDITY: Duration = Duration::days(365);

/// What [`revoke_in_dir`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub path: PathBuf,
    /// The serial revoked, in hex.
    pub serial: String,
    /// Every serial the list now revokes.
    pub serials: usize,
    /// The list's CRL number.
    pub number: u64,
    /// The serial was revoked already (the list is written again all the same).
    pub already: bool,
}

/// A serial number in hex, with or without colons or `0x`: its bytes, leading zeros cut.
pub fn parse_serial(text: &str) -> Result<Vec<u8>, PkiError> {
    let bad = || PkiError::BadSerial(text.to_string());
    let mut digits: String = text.trim().trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
    if digits.is_empty() {
        return Err(bad());
    }
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    let bytes = hex::decode(&digits).map_err(|_| bad())?;
    Ok(canonical_serial(&bytes))
}

fn canonical_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

/// The serial number of the PEM certificate in `path`, and its holder's name (CN).
pub fn certificate_serial(path: &Path) -> Result<(Vec<u8>, String), PkiError> {
    let bad = |reason: String| PkiError::Unreadable { path: path.to_path_buf(), reason };
    let der = CertificateDer::from_pem_file(path).map_err(|e| bad(format!("no PEM certificate: {e}")))?;
    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let name = x509.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default();
    Ok((canonical_serial(x509.raw_serial()), name.to_string()))
}

/// `dcos certs revoke`: `serial` added to `crl.pem` in `dir`, a new list signed by the CA
/// there, keeping every serial revoked before and numbered one more than the last.
pub fn revoke_in_dir(dir: &Path, serial: &[u8]) -> Result<Revoked, PkiError> {
    let ca = Ca::load(dir)?;
    let path = dir.join(CRL_FILE);
    let (mut revoked, last) = read_crl(&path)?;
    let serial = canonical_serial(serial);
    let already = revoked.iter().any(|r| r.serial_number.as_ref() == serial.as_slice());
    let now = OffsetDateTime::now_utc();
    if !already {
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: now,
            reason_code: None,
            invalidity_date: None,
        });
    }
    let number = last + 1;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + CRL_VALIDITY,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let serials = params.revoked_certs.len();
    let issuer = ca.params.clone().self_signed(&ca.key)?;
    let crl = params.signed_by(&issuer, &ca.key)?;
    write_public(&path, &crl.pem()?)?;
    Ok(Revoked { path, serial: hex::encode(&serial), serials, number, already })
}

/// The revoked serials (with their revocation times) and the CRL number of the list in
/// `path`; none and 0 if there is no list yet.
fn read_crl(path: &Path) -> Result<(Vec<RevokedCertParams>, u64), PkiError> {
    let bad = |reason: String| PkiError::Unreadable { path: path.to_path_buf(), reason };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => return Err(PkiError::Io { path: path.to_path_buf(), source }),
    };
    let der =
        CertificateRevocationListDer::from_pem_slice(&bytes).map_err(|e| bad(format!("no PEM CRL: {e}")))?;
    let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(&canonical_serial(r.raw_serial())),
            revocation_time: OffsetDateTime::from_unix_timestamp(r.revocation_date.timestamp())
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
            reason_code: None,
            invalidity_date: None,
        })
        .collect();
    let number = crl.crl_number().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    Ok((revoked, number))
}

/// The files [`init_dir`] and [`issue_into_dir`] write for `name` in `dir`, with the CA's.
pub fn files_in(dir: &Path, name: &str) -> crate::tls::TlsFiles {
    crate::tls::TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        ca: dir.join("ca.crt"),
    }
}

/// `dcos certs issue`: `NAME.crt` and `NAME.key` in `dir`, signed by the CA there.
pub fn issue_into_dir(dir: &Path, spec: &LeafSpec) -> Result<(PathBuf, PathBuf), PkiError> {
    let ca = Ca::load(dir)?;
    let pem = ca.issue(spec)?;
    let cert = dir.join(format!("{}.crt", spec.name));
    let key = dir.join(format!("{}.key", spec.name));
    write_secret(&key, &pem.key)?;
    write_public(&cert, &pem.cert)?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_four_files_with_private_keys_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path()).unwrap();
        for (f, mode) in [("ca.crt", 0o644), ("ca.key", 0o600), ("admin.crt", 0o644), ("admin.key", 0o600)] {
            let m = fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, mode, "{f}");
        }
        assert!(matches!(init_dir(dir.path()), Err(PkiError::Exists { .. })));
    }

    #[test]
    fn issue_rejects_names_that_would_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path()).unwrap();
        for bad in ["../x", "a/b", "", ".hidden"] {
            let err = issue_into_dir(dir.path(), &LeafSpec::new(bad, Role::Host)).unwrap_err();
            assert!(matches!(err, PkiError::BadName(_)), "{bad}: {err}");
        }
    }
}
