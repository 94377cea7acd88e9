//! What every benchmark's report shares: the `--out` and `--note` options
//! ([`ReportArgs`], flattened into each benchmark's own), progress lines on stderr
//! ([`progress`]), and the finished report printed and written ([`ReportArgs::emit`]).

use anyhow::{Context, Result};
use std::path::PathBuf;

/// `--out FILE` and `--note TEXT`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A line for the report's header, e.g. which commit was measured.
    #[arg(long)]
    pub note: Option<String>,
}

impl ReportArgs {
    /// Prints `report` on stdout and writes it to `--out`, if given.
    pub fn emit(&self, report: &str) -> Result<()> {
        println!("{report}");
        match &self.out {
            Some(path) => std::fs::write(path, report).with_context(|| format!("writing {}", path.display())),
            None => Ok(()),
        }
    }
}

/// A progress line of `tool` on stderr.
pub fn progress(tool: &str, msg: &str) {
    eprintln!("[{tool}] {msg}");
}
