//! `dcos run --host H --name N --rootfs DIR [...] -- CMD ARGS...`: `Workloads.Run` on H's
//! API (or on the local middlecon's `--socket`, which refuses the run if it is not H). The
//! name, the command and the environment are checked here before any network; `--rootfs` is
//! made absolute (it names a directory on H).

use crate::cli::{ContainerArgs, FleetArgs, RunArgs, TlsArgs};
use crate::commands::SetupError;
use crate::workload::{print_acted_on, Session, WorkloadError, WorkloadItem};
use dcos_proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::Path;

/// What `run` and `service create` check alike before any network: a command after `--`
/// (`usage` shows where), the root filesystem made absolute (it names a directory on the
/// host) and each `--env` given once. Returns the rootfs and the environment.
pub fn container_parts(
    command: &[String],
    rootfs: &Path,
    container: &ContainerArgs,
    usage: &str,
) -> Result<(String, BTreeMap<String, String>), SetupError> {
    let bad = |m: String| SetupError::Usage(m);
    if command.first().is_none_or(|c| c.is_empty()) {
        return Err(bad(format!("give the command to run after --: {usage} -- CMD ARGS...")));
    }
    if rootfs.as_os_str().is_empty() {
        return Err(bad("--rootfs: give the directory of the root filesystem".into()));
    }
    let absolute =
        std::path::absolute(rootfs).map_err(|e| bad(format!("--rootfs {}: {e}", rootfs.display())))?;
    let absolute = absolute
        .to_str()
        .ok_or_else(|| bad(format!("--rootfs {}: not UTF-8", absolute.display())))?
        .to_string();
    let mut vars = BTreeMap::new();
    for (k, v) in &container.env {
        if vars.insert(k.clone(), v.clone()).is_some() {
            return Err(bad(format!("--env {k} is given twice")));
        }
    }
    Ok((absolute, vars))
}

/// The request `args` describe, or why it is bad usage.
pub fn request(args: &RunArgs) -> Result<pb::RunRequest, SetupError> {
    let (rootfs, env) = container_parts(&args.command, &args.rootfs, &args.container, "dcos run ...")?;
    Ok(pb::RunRequest {
        host: args.host.clone().unwrap_or_default(),
        name: args.name.clone(),
        rootfs,
        runtime: args.container.runtime.clone().unwrap_or_default(),
        memory_bytes: args.container.memory.unwrap_or(0),
        cpus: args.container.cpus.unwrap_or(0.0),
        env,
        command: args.command.clone(),
    })
}

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &RunArgs) -> Result<u8, WorkloadError> {
    let request = request(args)?;
    // clap asks for --host unless --socket is there; a --socket from DCOS_SOCKET that gave
    // way to --api leaves the host to be named still.
    if args.host.is_none() && args.api.socket.is_none() {
        return Err(SetupError::Usage("--host: give the host to run on (its middlecon name)".into()).into());
    }
    let name = args.host.as_deref().unwrap_or("local");
    let host = crate::api::host(tls, fleet, &args.api, name).await?;
    let session = Session::new(tls, fleet, &args.api)?;
    let reply = session
        // Copying the root filesystem into the bundle takes as long as it takes.
        .unary(std::time::Duration::from_secs(60), &host, request, |mut c, r| async move { c.run(r).await })
        .await
        .map_err(|f| f.into_error(&host))?;
    let workload = reply.workload.ok_or_else(|| WorkloadError::Failed {
        code: "internal",
        message: format!("{} ({}) answered without the workload", host.name, host.addr),
    })?;
    let shown = if workload.host.is_empty() { host.name.as_str() } else { workload.host.as_str() };
    print_acted_on(session.format, &[WorkloadItem::new(&workload, shown)]);
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<RunArgs, String> {
        let mut all = vec!["dcos", "run"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).map_err(|e| e.to_string())?.command {
            Command::Run(a) => Ok(a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_full_command_line_becomes_the_request() {
        let a = parse(&[
            "--host",
            "h0",
            "--name",
            "web",
            "--rootfs",
            "rootfs",
            "--memory",
            "64M",
            "--cpus",
            "0.5",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--runtime",
            "crun",
            "--",
            "sleep",
            "--1000",
        ])
        .unwrap();
        let r = request(&a).unwrap();
        assert_eq!(r.memory_bytes, 64 << 20);
        assert_eq!(r.cpus, 0.5);
        assert_eq!(r.env.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(r.command, ["sleep", "--1000"]);
        assert_eq!(r.runtime, "crun");
        assert!(r.rootfs.starts_with('/') && r.rootfs.ends_with("/rootfs"), "{}", r.rootfs);
        let bare = request(&parse(&["--host", "h", "--name", "w", "--rootfs", "/r", "--", "true"]).unwrap())
            .unwrap();
        assert_eq!(
            (bare.rootfs.as_str(), bare.memory_bytes, bare.cpus, bare.runtime.as_str()),
            ("/r", 0, 0.0, "")
        );
    }

    #[test]
    fn bad_usage_is_refused_before_any_network() {
        for (argv, why) in [
            (&["--host", "h", "--name=-bad", "--rootfs", "/r", "--", "x"][..], "start with"),
            (&["--host", "h", "--name", "a b", "--rootfs", "/r", "--", "x"][..], "' '"),
            (
                &["--host", "h", "--name", "w", "--rootfs", "/r", "--memory", "lots", "--", "x"][..],
                "not a size",
            ),
            (&["--host", "h", "--name", "w", "--rootfs", "/r", "--cpus=-1", "--", "x"][..], "cores"),
            (&["--host", "h", "--name", "w", "--rootfs", "/r", "--env", "NOVALUE", "--", "x"][..], "K=V"),
            (
                &["--host", "h", "--name", "w", "--rootfs", "/r", "--env", "=v", "--", "x"][..],
                "variable name",
            ),
            (&["--name", "w", "--rootfs", "/r", "--", "x"][..], "--host"),
            (&["--host", "h", "--name", "w", "--rootfs", "", "--", "x"][..], "--rootfs"),
        ] {
            let e = parse(argv).unwrap_err();
            assert!(e.contains(why), "{argv:?}: {e}");
        }
        for (argv, why) in [
            (&["--host", "h", "--name", "w", "--rootfs", "/r"][..], "after --"),
            (&["--host", "h", "--name", "w", "--rootfs", "/r", "--", ""][..], "after --"),
            (
                &["--host", "h", "--name", "w", "--rootfs", "/r", "--env", "A=1", "--env", "A=2", "--", "x"]
                    [..],
                "twice",
            ),
        ] {
            let e = request(&parse(argv).unwrap()).unwrap_err();
            assert_eq!(e.exit_status(), crate::exit::USAGE);
            assert!(e.to_string().contains(why), "{argv:?}: {e}");
        }
    }
}
