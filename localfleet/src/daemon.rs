//! Daemons of a local fleet: k2i and middlecon started from their binaries on 127.0.0.1
//! with free ports and a host's certificate from the fleet directory, each found ready by
//! the first line it prints (its addresses); and reading that line ([`FirstLine`]) for
//! any child process.

use crate::LocalError;
use std::io::{BufRead, Read};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a daemon may take to print its first line.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Why a child's first line did not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoLine {
    #[error("no line within {0:?}")]
    Timeout(Duration),
    #[error("its output closed before a line")]
    Closed,
}

/// A child's first line of output, read on a thread of its own ([`FirstLine::read`]) and
/// waited for with a limit ([`FirstLine::wait`]); after it, the rest is read and dropped,
/// so the child never writes into a closed pipe.
pub struct FirstLine(mpsc::Receiver<String>);

impl FirstLine {
    /// Starts reading `out` (a child's stdout).
    pub fn read(out: impl Read + Send + 'static) -> FirstLine {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(out);
            let mut line = String::new();
            if matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                let _ = tx.send(line.trim_end_matches('\n').to_string());
            }
            drop(tx);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        FirstLine(rx)
    }

    /// The line (without its newline), waiting at most `limit` for it.
    pub fn wait(self, limit: Duration) -> Result<String, NoLine> {
        self.0.recv_timeout(limit).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => NoLine::Timeout(limit),
            mpsc::RecvTimeoutError::Disconnected => NoLine::Closed,
        })
    }
}

/// `out`'s first line within `limit` ([`FirstLine`]).
pub fn first_line(out: impl Read + Send + 'static, limit: Duration) -> Result<String, NoLine> {
    FirstLine::read(out).wait(limit)
}

/// A daemon of the local fleet; killed when dropped.
pub struct LocalHost {
    pub name: String,
    /// k2i's `https://` URL, or middlecon's `quic://` peer address.
    pub url: String,
    child: Child,
}

impl LocalHost {
    /// Asks the daemon to stop (SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Starts one k2i on 127.0.0.1 (a free port) as host `name` of `dc`, with `dir/NAME.crt`,
/// and waits for it to announce its address.
///
/// With `workload` (a shell snippet) and root, the host gets its own PID namespace and
/// `/proc`, so its process table holds its k2i and its workload only, as on a real host.
pub async fn start_k2i(
    bin: &Path,
    dir: &Path,
    name: &str,
    dc: &str,
    extra: &[&str],
    workload: Option<&str>,
) -> Result<LocalHost, LocalError> {
    let mut args = vec!["--listen", "127.0.0.1:0", "--name", name, "--dc", dc];
    args.extend_from_slice(extra);
    let (child, line) = start_daemon(bin, dir, name, &args, workload).await?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .ok_or_else(|| LocalError::K2iLine { name: name.into(), line: line.clone() })?
        .to_string();
    Ok(LocalHost { name: name.to_string(), url, child })
}

/// A middlecon of the local fleet: its peer and API addresses; killed when dropped.
pub struct LocalMiddlecon {
    pub host: LocalHost,
    /// Its peer (QUIC) address.
    pub peer: String,
    /// Its gRPC API address.
    pub api: String,
}

/// Starts middlecon `name` on 127.0.0.1 (free ports for peers and API), with its socket
/// and state in `dir`, seeded with `seed` (none for the first host) and advertising `k2i`.
/// Its services are relayed by their fronts (`--service-steering relay`): the local fleet's
/// daemons share this machine's network namespace, whose NAT rules and `route_localnet`
/// they leave alone.
pub async fn start_middlecon(
    bin: &Path,
    dir: &Path,
    name: &str,
    dc: &str,
    seed: Option<&str>,
    k2i: &str,
) -> Result<LocalMiddlecon, LocalError> {
    let socket = dir.join(format!("{name}.sock"));
    let state = dir.join(format!("{name}-state"));
    let (socket, state) = (socket.to_string_lossy(), state.to_string_lossy());
    let mut args = vec!["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--name", name, "--dc", dc];
    args.extend(["--socket", &socket, "--state-dir", &state, "--k2i", k2i, "--service-steering", "relay"]);
    if let Some(seed) = seed {
        args.extend(["--seed", seed]);
    }
    let log = format!("{name}-middlecon");
    let (child, line) = start_daemon(bin, dir, &log, &args, None).await?;
    // `middlecon NAME listening on quic://ADDR api ADDR`
    let words: Vec<&str> = line.split_whitespace().collect();
    let peer = words.iter().find_map(|w| w.strip_prefix("quic://"));
    let api = words.iter().position(|w| *w == "api").and_then(|i| words.get(i + 1));
    let (Some(peer), Some(api)) = (peer, api) else {
        return Err(LocalError::MiddleconLine { name: name.into(), line });
    };
    let host = LocalHost { name: name.to_string(), url: format!("quic://{peer}"), child };
    Ok(LocalMiddlecon { host, peer: peer.to_string(), api: api.to_string() })
}

/// Starts `bin` with `args` plus the host's certificate from `dir` (logging to
/// `dir/LOG.log`), optionally in a PID namespace of its own behind `workload`, and returns
/// it with its first stdout line.
async fn start_daemon(
    bin: &Path,
    dir: &Path,
    log_name: &str,
    args: &[&str],
    workload: Option<&str>,
) -> Result<(Child, String), LocalError> {
    let name = args.iter().skip_while(|a| **a != "--name").nth(1).copied().unwrap_or(log_name);
    let log_path = dir.join(format!("{log_name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut command = match workload.filter(|_| own_pid_namespaces()) {
        Some(work) => {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c"])
                .arg(format!("{work} exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let program = bin.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut child = command
        .args(args)
        .arg("--cert")
        .arg(dir.join(format!("{name}.crt")))
        .arg("--key")
        .arg(dir.join(format!("{name}.key")))
        .arg("--ca")
        .arg(dir.join("ca.crt"))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| LocalError::Start { bin: bin.into(), source })?;
    let (name, log) = (name.to_string(), log_path);
    let Some(stdout) = child.stdout.take() else {
        return Err(LocalError::ExitedAtStart { name, program, log });
    };
    let mut lines = BufReader::new(stdout).lines();
    let line = match tokio::time::timeout(START_LIMIT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(_) => return Err(LocalError::ExitedAtStart { name, program, log }),
        Err(_) => return Err(LocalError::Silent { name, program, limit: START_LIMIT, log }),
    };
    // Keep reading, so the daemon never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, line))
}

/// Whether local hosts can have their own PID namespaces (root and `unshare` present).
fn own_pid_namespaces() -> bool {
    nix::unistd::geteuid().is_root()
        && std::process::Command::new("unshare")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sh(script: &str) -> std::process::Child {
        Command::new("sh").args(["-c", script]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap()
    }

    #[test]
    fn the_first_line_comes_and_the_rest_is_drained() {
        // Far more than a pipe holds after the first line: the child ends only if drained.
        let mut child = sh("echo 'ready at https://127.0.0.1:1'; yes | head -c 1000000");
        let line = first_line(child.stdout.take().unwrap(), Duration::from_secs(10)).unwrap();
        assert_eq!(line, "ready at https://127.0.0.1:1");
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn silence_is_a_timeout_and_an_exit_is_closed() {
        let mut quiet = sh("exec sleep 5");
        let waited = first_line(quiet.stdout.take().unwrap(), Duration::from_millis(200));
        assert_eq!(waited, Err(NoLine::Timeout(Duration::from_millis(200))));
        let _ = quiet.kill();
        let mut gone = sh("exit 3");
        assert_eq!(first_line(gone.stdout.take().unwrap(), Duration::from_secs(10)), Err(NoLine::Closed));
        let _ = (quiet.wait(), gone.wait());
    }

    #[tokio::test]
    async fn a_daemon_that_exits_at_start_is_named_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let e = start_k2i(Path::new("/bin/false"), dir.path(), "h1", "dc", &[], None).await.err().unwrap();
        let log = dir.path().join("h1.log");
        assert_eq!(e.to_string(), format!("h1: false exited at start (see {})", log.display()));
        let e = start_k2i(&dir.path().join("nope"), dir.path(), "h1", "dc", &[], None).await.err().unwrap();
        assert!(matches!(e, LocalError::Start { .. }), "{e}");
    }
}
