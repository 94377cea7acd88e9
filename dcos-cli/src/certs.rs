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
