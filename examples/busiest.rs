//! The five busiest processes across a few k2i hosts, from your own code.
//!
//! ```sh
//! export DCOS_CERT=admin.crt DCOS_KEY=admin.key DCOS_CA=ca.crt
//! cargo run -p dcos-examples --example busiest -- https://10.0.0.5:7440 https://10.0.0.6:7440
//! ```
//!
//! Each host is asked for its own top five (`/v1/top?limit=5`), concurrently; the answers
//! are merged here, so no host ever sends its whole table.

use anyhow::{bail, Context, Result};
use dcos_core::model::Top;
use dcos_core::tls::{Identity, TlsFiles};
use k2i_client::K2iClient;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<()> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        bail!("usage: busiest URL... (with DCOS_CERT, DCOS_KEY, DCOS_CA set)");
    }
    let var = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set"));
    let identity = Identity::load(&TlsFiles {
        cert: var("DCOS_CERT")?.into(),
        key: var("DCOS_KEY")?.into(),
        ca: var("DCOS_CA")?.into(),
    })?;
    let client = K2iClient::new(&identity)?;
    let answers = futures::future::join_all(urls.iter().map(|url| {
        let client = client.clone();
        async move { (url, client.get_json::<Top>(url, "/v1/top?limit=5", Duration::from_secs(3)).await) }
    }))
    .await;
    let mut rows = Vec::new();
    for (url, answer) in answers {
        match answer {
            Ok(top) => rows.extend(top.processes.into_iter().map(|p| (top.host.name.clone(), p))),
            Err(e) => eprintln!("{url}: {} ({e})", e.status()),
        }
    }
    rows.sort_by(|a, b| b.1.cpu_percent.unwrap_or(0.0).total_cmp(&a.1.cpu_percent.unwrap_or(0.0)));
    for (host, p) in rows.iter().take(5) {
        println!("{host:<16} {:>7} {:>6.1}% {}", p.pid, p.cpu_percent.unwrap_or(0.0), p.cmd);
    }
    Ok(())
}
