//! `dcos certs` and `dcos tokens`: thin wrappers over `dcos_core::pki` and `tokens`.

use crate::cli::{CertsCommand, TokensCommand};
use anyhow::{Context, Result};
use dcos_core::pki::{self, LeafSpec};
use std::io::Write;

pub fn run(cmd: CertsCommand) -> Result<()> {
    match cmd {
        CertsCommand::Init { dir } => {
            pki::init_dir(&dir)?;
            println!("wrote {0}/ca.crt, {0}/ca.key, {0}/admin.crt, {0}/admin.key", dir.display());
            println!("keep ca.key offline; issue host certificates with `dcos certs issue --dir {} --name HOST --ip ADDR`", dir.display());
        }
        CertsCommand::Issue { dir, name, role, ip, dns, days } => {
            let mut spec = LeafSpec::new(name, role);
            spec.ips = ip;
            spec.dns = dns;
            spec.not_after = spec.not_before + time_days(days);
            let (cert, key) = pki::issue_into_dir(&dir, &spec)?;
            println!("wrote {} and {} (role {role}, valid {days} days)", cert.display(), key.display());
        }
        CertsCommand::Revoke { dir, serial, cert } => {
            let (serial, name) = match (serial, cert) {
                (Some(hex), _) => (pki::parse_serial(&hex)?, None),
                (None, Some(path)) => {
                    let (serial, name) = pki::certificate_serial(&path)?;
                    (serial, Some(name))
                }
                (None, None) => unreachable!("clap requires --serial or CERT.pem"),
            };
            let r = pki::revoke_in_dir(&dir, &serial)?;
            let who = name.map(|n| format!(" ({n})")).unwrap_or_default();
            let was = if r.already { " (it was revoked already)" } else { "" };
            println!(
                "revoked serial {}{who}{was}: wrote {} (CRL number {}, {} revoked)",
                r.serial,
                r.path.display(),
                r.number,
                r.serials
            );
            println!("daemons reading it pick it up within seconds (or at once on SIGHUP)");
        }
    }
    Ok(())
}

fn time_days(days: u32) -> ::time::Duration {
    ::time::Duration::days(i64::from(days))
}

pub fn run_tokens(cmd: TokensCommand) -> Result<()> {
    match cmd {
        TokensCommand::New { file, role, name } => {
            let token = dcos_core::tokens::generate().context("reading /dev/urandom")?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            writeln!(f, "{} {role} {name}", dcos_core::tokens::hash_hex(&token))
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!("appended its hash to {}; the token itself is shown only now:", file.display());
            println!("{token}");
        }
    }
    Ok(())
}
