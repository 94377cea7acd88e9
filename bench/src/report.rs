//! What every benchmark's report shares: the `--out` and `--note` options
//! ([`ReportArgs`], flattened into each benchmark's own), progress lines on stderr
//! ([`progress`]), the finished report printed and written ([`ReportArgs::emit`]), and a
//! mode's outcome as the process's exit code ([`exit_code`]).

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

/// A mode's outcome as the exit code: an error is printed on stderr after `what`.
pub fn exit_code(what: &str, result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A report header's last two lines: the load average at the start (`load_start`) and now,
/// the seconds since `started`, and the command line that ran the benchmark.
pub fn closing_lines(load_start: &str, started: std::time::Instant) -> String {
    format!(
        "- load average at the start: {load_start}; at the end: {}; {:.0} s in all\n- command: `{}`\n\n",
        crate::probe::loadavg(),
        started.elapsed().as_secs_f64(),
        std::env::args().collect::<Vec<_>>().join(" ")
    )
}
