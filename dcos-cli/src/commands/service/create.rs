//! `dcos service create NAME --rootfs DIR --port PORT [--hosts H,...] [...] -- CMD ARGS...`.
//!
//! Nothing half-made on any host: the definition goes to every host with `validate_only`
//! first (all at once); if any refuses (or does not answer), each refusal is printed with
//! its host and the field the daemon names, and nothing is created anywhere. Then it is
//! created on every host at once; if that fails on some after others succeeded, it is
//! removed from those again (best effort, and said so).
//!
//! The hosts are `--hosts` (names, found as `--host` is for the workload commands), else the
//! selected fleet ([`crate::api::hosts`]); each host's spec carries the whole list.

use super::{list_all, print, HostService, CREATED_HEADER};
use crate::api::{self, ApiHost};
use crate::cli::{FleetArgs, ServiceCreateArgs, TlsArgs};
use crate::commands::run::container_parts;
use crate::commands::SetupError;
use crate::workload::{Answer, Fault, Session, WorkloadError};
use dcos_proto::v1 as pb;
use middlecon_client::ServicesClient;
use std::time::Duration;

/// How long past `--timeout` a create may take: the host writes the definition durably.
const CREATE_MORE: Duration = Duration::from_secs(5);
/// How long past the service's drain a removal may take: its instances are stopped (SIGTERM,
/// then SIGKILL after a grace period).
pub const STOP_MORE: Duration = Duration::from_secs(10);

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The definition `args` describe (its `hosts` still empty), or why it is bad usage.
pub fn spec(args: &ServiceCreateArgs) -> Result<pb::ServiceSpec, SetupError> {
    let (rootfs, env) =
        container_parts(&args.command, &args.rootfs, &args.container, "dcos service create ...")?;
    Ok(pb::ServiceSpec {
        name: args.name.clone(),
        rootfs,
        port: args.port.into(),
        hosts: Vec::new(),
        runtime: args.container.runtime.clone().unwrap_or_default(),
        memory_bytes: args.container.memory.unwrap_or(0),
        cpus: args.container.cpus.unwrap_or(0.0),
        env,
        command: args.command.clone(),
        min: args.min,
        max: args.max,
        idle_stop_ms: ms(args.idle_stop),
        target_inflight: args.target_inflight,
        max_age_ms: args.max_age.map_or(0, ms),
        max_requests: args.max_requests,
        drain_ms: ms(args.drain),
        prestart: args.prestart,
        start_timeout_ms: ms(args.start_timeout),
    })
}

/// The host names `--hosts` gives: comma-separated, each once.
pub fn host_names(list: &str) -> Result<Vec<String>, SetupError> {
    let mut names: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(SetupError::Usage(format!("--hosts {list:?}: an empty host name")));
        }
        if names.iter().any(|n| n == name) {
            return Err(SetupError::Usage(format!("--hosts: {name} is given twice")));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// The hosts to place the service on, named as they name themselves.
async fn placement(
    session: &Session,
    tls: &TlsArgs,
    fleet: &FleetArgs,
    args: &ServiceCreateArgs,
) -> Result<Vec<ApiHost>, WorkloadError> {
    if let Some(list) = &args.hosts {
        let hosts = api::named(tls, fleet, &args.api, &host_names(list)?).await?;
        for h in &hosts {
            session.confirm(h).await?;
        }
        return Ok(hosts);
    }
    let hosts = api::hosts(tls, fleet, &args.api).await?;
    if args.api.api.is_none() && args.api.socket.is_none() {
        return Ok(hosts);
    }
    // The one middlecon at --api or --socket is named by its address or `local`: ask it.
    let mut named = Vec::new();
    for a in list_all(session, &hosts).await {
        match a.result {
            Ok(_) => named.push(a.host),
            Err(f) => return Err(f.into_error(&a.host)),
        }
    }
    Ok(named)
}

async fn create_on_all(
    session: &Session,
    hosts: &[ApiHost],
    spec: &pb::ServiceSpec,
    validate_only: bool,
) -> Vec<Answer<pb::CreateServiceReply>> {
    let more = if validate_only { Duration::ZERO } else { CREATE_MORE };
    session
        .on_all(hosts, |h| {
            let request = pb::CreateServiceRequest { spec: Some(spec.clone()), validate_only };
            session.call(more, h, ServicesClient::new, request, |mut c, r| async move { c.create(r).await })
        })
        .await
}

/// Whether the service may exist on a host whose create got `fault`: a refusal of the
/// daemon's own (a status with its code) or a connection never made left nothing; a lost
/// answer may have.
fn in_doubt(fault: &Fault) -> bool {
    match fault {
        Fault::Connect(_) => false,
        Fault::Status(s) => dcos_proto::error_code(s) == pb::ErrorCode::Unspecified,
        Fault::Timeout(_) => true,
    }
}

/// Prints each failed answer on stderr (`dcos: CODE: HOST (ADDR): MESSAGE`); returns the
/// first one's code word.
fn print_failures<T>(answers: &[Answer<T>]) -> Option<&'static str> {
    let mut first = None;
    for a in answers {
        if let Err(f) = &a.result {
            let (code, message) = f.describe(&a.host);
            eprintln!("dcos: {code}: {message}");
            first.get_or_insert(code);
        }
    }
    first
}

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &ServiceCreateArgs) -> Result<u8, WorkloadError> {
    let mut spec = spec(args)?;
    if let Some(list) = &args.hosts {
        host_names(list)?;
    }
    let session = Session::new(tls, fleet, &args.api)?;
    let hosts = placement(&session, tls, fleet, args).await?;
    spec.hosts = hosts.iter().map(|h| h.name.clone()).collect();
    let name = spec.name.clone();

    let checked = create_on_all(&session, &hosts, &spec, true).await;
    if let Some(code) = print_failures(&checked) {
        let refused = checked.iter().filter(|a| a.result.is_err()).count();
        return Err(WorkloadError::Failed {
            code,
            message: format!(
                "service {name} refused by {refused} of {} hosts: nothing was created",
                checked.len()
            ),
        });
    }

    let made = create_on_all(&session, &hosts, &spec, false).await;
    let Some(code) = print_failures(&made) else {
        let items: Vec<HostService> = made
            .iter()
            .filter_map(|a| a.result.as_ref().ok().map(|r| (a, r)))
            .map(|(a, r)| HostService::new(&a.host.name, &r.service.clone().unwrap_or_default()))
            .collect();
        let reports: Vec<_> = made.iter().map(|a| a.report.clone()).collect();
        print(session.format, &reports, "services", &items, |_| {
            (CREATED_HEADER.to_vec(), items.iter().map(super::created_row).collect())
        });
        return Ok(crate::exit::OK);
    };
    let failed: Vec<&str> = made.iter().filter(|a| a.result.is_err()).map(|a| a.host.name.as_str()).collect();
    let message = format!(
        "service {name} was not created on {}: {}",
        failed.join(", "),
        undo(&session, &made, &spec).await
    );
    Err(WorkloadError::Failed { code, message })
}

/// Removes the service again from the hosts where it was made (or may have been), best
/// effort; says what became of it.
async fn undo(session: &Session, made: &[Answer<pb::CreateServiceReply>], spec: &pb::ServiceSpec) -> String {
    let there: Vec<ApiHost> = made
        .iter()
        .filter(|a| a.result.as_ref().err().is_none_or(in_doubt))
        .map(|a| a.host.clone())
        .collect();
    if there.is_empty() {
        return "it was made on no host".into();
    }
    let more = Duration::from_millis(spec.drain_ms) + STOP_MORE;
    let removed = session
        .on_all(&there, |h| {
            let request = pb::RemoveServiceRequest { name: spec.name.clone(), drain_ms: 0 };
            async move {
                match session
                    .call(more, h, ServicesClient::new, request, |mut c, r| async move { c.remove(r).await })
                    .await
                {
                    Ok(r) => Ok(Some(r)),
                    Err(f) if f.is_status(tonic::Code::NotFound) => Ok(None),
                    Err(f) => Err(f),
                }
            }
        })
        .await;
    let mut undone = Vec::new();
    let mut left = Vec::new();
    for a in &removed {
        match &a.result {
            Ok(Some(_)) => undone.push(a.host.name.clone()),
            Ok(None) => {}
            Err(f) => {
                let (code, message) = f.describe(&a.host);
                eprintln!("dcos: {code}: removing it again: {message}");
                left.push(a.host.name.clone());
            }
        }
    }
    let mut said = Vec::new();
    if !undone.is_empty() {
        said.push(format!("removed again from {}", undone.join(", ")));
    }
    if !left.is_empty() {
        said.push(format!("may still be on {} (remove it: dcos service rm {})", left.join(", "), spec.name));
    }
    if said.is_empty() {
        said.push("it was made on no host".into());
    }
    said.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, ServiceCommand};

    pub fn parse(argv: &[&str]) -> Result<ServiceCreateArgs, String> {
        let mut all = vec!["dcos", "service", "create"];
        all.extend_from_slice(argv);
        match Cli::try_parse_settled(all).map_err(|e| e.to_string())?.command {
            Command::Service(ServiceCommand::Create(a)) => Ok(*a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_are_the_spec_s() {
        let s = spec(&parse(&["web", "--rootfs", "/img", "--port", "8080", "--", "httpd"]).unwrap()).unwrap();
        assert_eq!((s.name.as_str(), s.rootfs.as_str(), s.port), ("web", "/img", 8080));
        assert_eq!((s.min, s.max, s.idle_stop_ms, s.target_inflight), (0, 4, 60_000, 10));
        assert_eq!((s.max_age_ms, s.max_requests, s.drain_ms, s.start_timeout_ms), (0, 0, 30_000, 10_000));
        assert_eq!((s.prestart, s.runtime.as_str(), s.memory_bytes, s.cpus), (false, "", 0, 0.0));
        assert!(s.hosts.is_empty() && s.env.is_empty());
        assert_eq!(s.command, ["httpd"]);
    }

    #[test]
    fn a_full_command_line_becomes_the_definition() {
        let line = "web --rootfs img --port 80 --hosts h0,h1 --runtime crun --memory 64M --cpus 0.5 \
                    --env A=1 --env B=x=y --min 1 --max 8 --idle-stop 0 --target-inflight 3 \
                    --max-age 1h --max-requests 1000 --drain 500ms --prestart --start-timeout 2s \
                    --api 10.0.0.1";
        let mut argv: Vec<&str> = line.split_whitespace().collect();
        argv.extend(["--", "sh", "-c", "httpd -p $PORT"]);
        let a = parse(&argv).unwrap();
        assert_eq!(host_names(a.hosts.as_deref().unwrap()).unwrap(), ["h0", "h1"]);
        assert_eq!(host_names(" h0, h1").unwrap(), ["h0", "h1"]);
        assert_eq!(a.api.api.as_deref(), Some("10.0.0.1"));
        let s = spec(&a).unwrap();
        assert!(s.rootfs.starts_with('/') && s.rootfs.ends_with("/img"), "{}", s.rootfs);
        assert_eq!((s.runtime.as_str(), s.memory_bytes, s.cpus), ("crun", 64 << 20, 0.5));
        assert_eq!(s.env.get("B").map(String::as_str), Some("x=y"));
        assert_eq!((s.min, s.max, s.idle_stop_ms, s.target_inflight), (1, 8, 0, 3));
        assert_eq!(
            (s.max_age_ms, s.max_requests, s.drain_ms, s.start_timeout_ms),
            (3_600_000, 1000, 500, 2000)
        );
        assert!(s.prestart);
        assert_eq!(s.command, ["sh", "-c", "httpd -p $PORT"]);
    }

    #[test]
    fn its_hosts_are_names_and_only_from_its_own_command_line() {
        // `service create --hosts` is the service's hosts, not the global k2i list; the
        // global one's DCOS_HOSTS is not read for it (whether set here or not: the end-to-end
        // test sets it).
        let with = |argv: &[&str]| {
            let cli = Cli::try_parse_settled(argv.iter().copied()).unwrap();
            let Command::Service(ServiceCommand::Create(a)) = cli.command else { panic!("create") };
            (a.hosts, cli.fleet.hosts)
        };
        let base = ["dcos", "service", "create", "web", "--rootfs", "/r", "--port", "1"];
        let mut argv = base.to_vec();
        argv.extend(["--hosts", "h0,h1", "--", "x"]);
        assert_eq!(with(&argv), (Some("h0,h1".into()), None));
        let mut argv = base.to_vec();
        argv.extend(["--", "x"]);
        assert_eq!(with(&argv), (None, None));
        // Before the subcommand too: on this command line --hosts means one thing.
        let mut argv = vec!["dcos", "--hosts", "h2"];
        argv.extend(&base[1..]);
        argv.extend(["--", "x"]);
        assert_eq!(with(&argv), (Some("h2".into()), None));
        // Other commands keep the global --hosts (k2i addresses).
        let cli = Cli::try_parse_settled(["dcos", "service", "ls", "--hosts", "10.0.0.1"]).unwrap();
        assert_eq!(cli.fleet.hosts.as_deref(), Some("10.0.0.1"));
        let cli = Cli::try_parse_settled(["dcos", "ps", "--hosts", "10.0.0.1"]).unwrap();
        assert_eq!(cli.fleet.hosts.as_deref(), Some("10.0.0.1"));
        // And its help says what its --hosts is.
        let mut cmd = <Cli as clap::CommandFactory>::command();
        cmd.build();
        let create = cmd.find_subcommand("service").unwrap().find_subcommand("create").unwrap();
        let hosts: Vec<_> = create.get_arguments().filter(|a| a.get_long() == Some("hosts")).collect();
        assert_eq!(hosts.len(), 1);
        assert!(hosts[0].get_help().unwrap().to_string().contains("middlecon names"));
    }

    #[test]
    fn bad_usage_is_refused_before_any_network() {
        for (argv, why) in [
            (&["web", "--port", "80", "--", "x"][..], "--rootfs"),
            (&["web", "--rootfs", "/r", "--", "x"][..], "--port"),
            (&["web", "--rootfs", "/r", "--port", "0", "--", "x"][..], "0"),
            (&["web", "--rootfs", "/r", "--port", "65536", "--", "x"][..], "65536"),
            (&["web", "--rootfs", "/r", "--port", "80", "--idle-stop", "soon", "--", "x"][..], "60s"),
            (
                &["web", "--rootfs", "/r", "--port", "80", "--start-timeout", "0", "--", "x"][..],
                "more than zero",
            ),
            (&["web", "--rootfs", "/r", "--port", "80", "--min", "-1", "--", "x"][..], "-1"),
            (&["web", "--rootfs", "/r", "--port", "80", "--env", "NOVALUE", "--", "x"][..], "K=V"),
            (
                &["web", "--rootfs", "/r", "--port", "80", "--hosts", "a", "--hosts", "b", "--", "x"][..],
                "--hosts",
            ),
            (&["--rootfs", "/r", "--port", "80", "--", "x"][..], "NAME"),
            (&["web", "--rootfs", "", "--port", "80", "--", "x"][..], "--rootfs"),
        ] {
            let e = parse(argv).unwrap_err();
            assert!(e.contains(why), "{argv:?}: {e}");
        }
        for (argv, why) in [
            (&["web", "--rootfs", "/r", "--port", "80"][..], "after --: dcos service create"),
            (
                &["web", "--rootfs", "/r", "--port", "80", "--env", "A=1", "--env", "A=2", "--", "x"][..],
                "twice",
            ),
        ] {
            let e = spec(&parse(argv).unwrap()).unwrap_err();
            assert_eq!(e.exit_status(), crate::exit::USAGE);
            assert!(e.to_string().contains(why), "{argv:?}: {e}");
        }
        for (list, why) in [("a,,b", "empty"), ("a,b,a", "a is given twice"), ("", "empty")] {
            let e = host_names(list).unwrap_err();
            assert!(e.to_string().contains(why), "{list}: {e}");
        }
    }

    #[test]
    fn only_a_lost_answer_leaves_a_create_in_doubt() {
        let refused = tonic::Status::aborted("x");
        assert!(in_doubt(&Fault::Status(refused)), "no code of the daemon's: maybe a proxy's");
        let refused =
            dcos_proto::error_status(tonic::Code::InvalidArgument, pb::ErrorCode::Invalid, "port: in use");
        assert!(!in_doubt(&Fault::Status(refused)));
        assert!(in_doubt(&Fault::Timeout(Duration::from_secs(3))));
        let e = middlecon_client::ConnectError::Timeout(
            crate::api::Endpoint::Tcp("10.0.0.1:1".parse().unwrap()),
            Duration::from_secs(1),
        );
        assert!(!in_doubt(&Fault::Connect(e)));
    }
}
