//! Finding and reaching a middlecon's gRPC API: the one place the CLI does it, for `call`,
//! `query`, `hosts --seed`/`ps --seed`, the workload and the service commands.
//!
//! - Where to enter ([`entry`]: `call`, `query`, whose calls middlecon routes itself):
//!   `--api ADDR` (or `DCOS_API`), else `--seed ADDR` (or `DCOS_SEED`), else the inventory's
//!   `api` of the host named (or of its first host with one).
//! - A given host's own API ([`host`], [`named`], [`hosts`]: the workload and service
//!   commands, which act on the host whose API answers): the one `--api`, else the `api` of
//!   the members the `--seed` lists ([`members`]), else the inventory's `api` fields;
//!   [`hosts`] keeps those not dead and narrows them by `--dc` and `--label`.
//! - `--socket PATH` (or `DCOS_SOCKET`) instead of all of these: the middlecon on this machine,
//!   through its Unix socket, where no certificate is needed ([`Endpoint::Unix`]).
//! - A channel presenting the operator's certificate, or to the local socket (the
//!   `middlecon-client` crate's [`connect_to`]), its failures sorted into the per-host
//!   statuses of SPEC section 6 (`refused`, `tls_error`, `unreachable`, `timeout`); [`open`]
//!   and [`answer`] print them for `call` and `query`.

use crate::cli::{ApiArgs, FleetArgs, TlsArgs};
use crate::commands::{identity, SetupError};
use crate::exit;
use dcos_core::tls::Identity;
pub use middlecon_client::{connect_to, ConnectError, Endpoint};
use middlecon_client::{pb, Channel, DEFAULT_API_PORT};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long past the deadline `call` and `query` wait for the API's answer (the way back).
pub const GRACE: Duration = Duration::from_millis(500);

/// One middlecon to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiHost {
    /// The host's name: as selected until it answers with its own.
    pub name: String,
    pub addr: Endpoint,
    /// The name is only the user's word for whatever answers at `--api` or `--socket` (not
    /// looked up in membership or the inventory): check it before acting on the host
    /// (`Session::confirm`).
    pub assumed: bool,
}

impl ApiHost {
    /// A host whose name was found for its address (or is the address itself).
    pub fn new(name: impl Into<String>, addr: Endpoint) -> ApiHost {
        ApiHost { name: name.into(), addr, assumed: false }
    }
}

/// The local socket `--socket` names, if given.
fn socket(api: &ApiArgs) -> Option<Endpoint> {
    api.socket.clone().map(Endpoint::Unix)
}

/// `IP[:PORT]` (default port 7442); `what` names where the text came from.
pub fn parse_addr(text: &str, what: &str) -> Result<SocketAddr, SetupError> {
    let text = text.trim();
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_API_PORT))
        .map_err(|_| SetupError::Usage(format!("{what}: {text:?} is not an address like 10.0.0.5:7442")))
}

/// The `api` of `name` in the inventory at `path`.
fn inventory_api(path: &Path, name: &str) -> Result<SocketAddr, SetupError> {
    let hosts = crate::fleet::load_inventory(path)?;
    let host = hosts
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| SetupError::Usage(format!("{name} is not in {}; give --api ADDR", path.display())))?;
    let text = host.api.as_deref().ok_or_else(|| {
        SetupError::Usage(format!("{name} has no api address in {}; give --api ADDR", path.display()))
    })?;
    parse_addr(text, &format!("{}: {name}: api", path.display()))
}

/// The API to enter the fleet by: `--socket`, else `--api`, else `--seed`, else the
/// inventory's `api` of `host` (or of its first host with one when `host` is `None`).
pub fn entry(api: &ApiArgs, fleet: &FleetArgs, host: Option<&str>) -> Result<Endpoint, SetupError> {
    if let Some(local) = socket(api) {
        return Ok(local);
    }
    if let Some(a) = &api.api {
        return parse_addr(a, "--api").map(Endpoint::Tcp);
    }
    if let Some(seed) = &fleet.seed {
        return parse_addr(seed, "--seed").map(Endpoint::Tcp);
    }
    let Some(path) = &fleet.inventory else {
        return Err(SetupError::Usage(
            "which middlecon? give --api ADDR (or DCOS_API), --seed ADDR, or --inventory with an api field"
                .into(),
        ));
    };
    if let Some(name) = host {
        return inventory_api(path, name).map(Endpoint::Tcp);
    }
    let first = crate::fleet::load_inventory(path)?.into_iter().find_map(|t| t.api).ok_or_else(|| {
        SetupError::Usage(format!("no host has an api address in {}; give --api ADDR", path.display()))
    })?;
    parse_addr(&first, &format!("{}: api", path.display())).map(Endpoint::Tcp)
}

/// The API of the host named `name`: the local `--socket` or the `--api` if given, else its
/// `api` among the members `--seed` lists, else its `api` in the inventory.
pub async fn host(
    tls: &TlsArgs,
    fleet: &FleetArgs,
    api: &ApiArgs,
    name: &str,
) -> Result<ApiHost, SetupError> {
    let mut found = named(tls, fleet, api, &[name.to_string()]).await?;
    Ok(found.remove(0))
}

/// The APIs of the hosts named `names`, in that order, as [`host`] finds one (the seed is
/// asked once for all of them). With `--socket` or `--api` each name is only
/// [assumed](ApiHost::assumed).
pub async fn named(
    tls: &TlsArgs,
    fleet: &FleetArgs,
    api: &ApiArgs,
    names: &[String],
) -> Result<Vec<ApiHost>, SetupError> {
    let assumed = |addr: Endpoint| -> Vec<ApiHost> {
        names.iter().map(|n| ApiHost { assumed: true, ..ApiHost::new(n.as_str(), addr.clone()) }).collect()
    };
    if let Some(local) = socket(api) {
        return Ok(assumed(local));
    }
    if let Some(a) = &api.api {
        return Ok(assumed(Endpoint::Tcp(parse_addr(a, "--api")?)));
    }
    let mut found = Vec::with_capacity(names.len());
    if let Some(seed) = &fleet.seed {
        let (_, reply) = members(tls, fleet, seed).await?;
        for name in names {
            let member = reply.members.iter().find(|m| &m.name == name).ok_or_else(|| {
                SetupError::Usage(format!("{name} is not a member the seed {seed} lists; give --api ADDR"))
            })?;
            if member.api.is_empty() {
                return Err(SetupError::Usage(format!("member {name} has no api address; give --api ADDR")));
            }
            let addr = parse_addr(&member.api, &format!("member {name}: api"))?;
            found.push(ApiHost::new(name.as_str(), Endpoint::Tcp(addr)));
        }
    } else if let Some(path) = &fleet.inventory {
        for name in names {
            found.push(ApiHost::new(name.as_str(), Endpoint::Tcp(inventory_api(path, name)?)));
        }
    } else {
        return Err(SetupError::Usage(
            "which middlecon? give --api ADDR (or DCOS_API), --seed ADDR, or --inventory with an api field"
                .into(),
        ));
    }
    Ok(found)
}

/// Every selected host's API: the one `--socket` or `--api`; else the members `--seed`
/// lists that are not dead and have an `api`; else the inventory's hosts that have one;
/// narrowed by `--dc` and `--label`.
pub async fn hosts(tls: &TlsArgs, fleet: &FleetArgs, api: &ApiArgs) -> Result<Vec<ApiHost>, SetupError> {
    if let Some(local) = socket(api) {
        return Ok(vec![ApiHost::new("local", local)]);
    }
    if let Some(a) = &api.api {
        let addr = parse_addr(a, "--api")?;
        return Ok(vec![ApiHost::new(addr.to_string(), Endpoint::Tcp(addr))]);
    }
    let (listed, source) = if let Some(seed) = &fleet.seed {
        let (_, reply) = members(tls, fleet, seed).await?;
        let wanted = crate::fleet::parse_labels(&fleet.labels)?;
        let live = reply
            .members
            .into_iter()
            .filter(|m| m.state() != pb::MemberState::Dead)
            .filter(|m| crate::fleet::selected(&m.dc, &m.labels, fleet.dc.as_deref(), &wanted))
            .map(|m| (m.name, (!m.api.is_empty()).then_some(m.api)));
        (live.collect::<Vec<_>>(), format!("members the seed {seed} lists (live, matching --dc/--label)"))
    } else if let Some(path) = &fleet.inventory {
        let targets = crate::fleet::load_inventory(path)?;
        let targets = crate::fleet::narrow(targets, fleet.dc.as_deref(), &fleet.labels)?;
        (
            targets.into_iter().map(|t| (t.name, t.api)).collect(),
            format!("selected hosts in {}", path.display()),
        )
    } else {
        return Err(SetupError::Usage(
            "which middlecons? give --inventory FILE with api fields, --seed ADDR, or --api ADDR (or DCOS_API) \
             for one"
                .into(),
        ));
    };
    let selected = listed.len();
    let hosts: Vec<ApiHost> = listed
        .into_iter()
        .filter_map(|(name, a)| a.map(|a| (name, a)))
        .map(|(name, a)| {
            parse_addr(&a, &format!("host {name}: api")).map(|addr| ApiHost::new(name, Endpoint::Tcp(addr)))
        })
        .collect::<Result<_, _>>()?;
    if hosts.is_empty() {
        return Err(SetupError::Usage(format!(
            "none of the {selected} {source} has an api address; give --api ADDR"
        )));
    }
    Ok(hosts)
}

/// Asks the middlecon API at `seed` for its member list (`Membership.Members`) within
/// `--timeout`; returns the API address asked and the reply.
pub async fn members(
    tls: &TlsArgs,
    fleet: &FleetArgs,
    seed: &str,
) -> Result<(SocketAddr, pb::MembersReply), SetupError> {
    let addr = parse_addr(seed, "--seed")?;
    let id = identity(tls)?;
    let failed = |status, message| SetupError::Unreachable { status, message };
    let ask = async {
        let channel =
            middlecon_client::connect(addr, &id).await.map_err(|e| failed(e.status(), e.to_string()))?;
        let reply = pb::membership_client::MembershipClient::new(channel)
            .members(pb::MembersRequest {})
            .await
            .map_err(|s| failed("http_error", format!("{addr}: {}: {}", s.code(), s.message())))?;
        Ok(reply.into_inner())
    };
    match tokio::time::timeout(fleet.timeout, ask).await {
        Ok(r) => r.map(|reply| (addr, reply)),
        Err(_) => Err(failed("timeout", format!("{addr}: no answer within {:?}", fleet.timeout))),
    }
}

/// The operator's certificate if reaching `endpoint` takes one.
pub fn identity_for(tls: &TlsArgs, endpoint: &Endpoint) -> Result<Option<Identity>, SetupError> {
    if endpoint.needs_certificate() {
        identity(tls).map(Some)
    } else {
        Ok(None)
    }
}

/// For `call` and `query`: chooses the API ([`entry`]), loads the operator's certificate
/// and connects within `--timeout`. A failure is printed and becomes the exit status: 2 for
/// bad usage, 1 when the certificate does not load or the API cannot be reached (named
/// with its status: `refused`, `tls_error`, `timeout`, `unreachable`).
pub async fn open(
    tls: &TlsArgs,
    fleet: &FleetArgs,
    api: &ApiArgs,
    host: Option<&str>,
) -> Result<(Endpoint, Channel), u8> {
    let setup = (|| {
        let addr = entry(api, fleet, host)?;
        let id = identity_for(tls, &addr)?;
        Ok::<_, SetupError>((addr, id))
    })();
    let (addr, id) = setup.map_err(|e| {
        eprintln!("dcos: {e}");
        e.exit_status()
    })?;
    let connected = tokio::time::timeout(fleet.timeout, connect_to(&addr, id.as_ref()))
        .await
        .unwrap_or_else(|_| Err(ConnectError::Timeout(addr.clone(), fleet.timeout)));
    let channel = connected.map_err(|e| {
        eprintln!("dcos: {}: {e}", e.status());
        exit::FAILED
    })?;
    Ok((addr, channel))
}

/// The API's answer to `call` by `give_up`; a gRPC failure or no answer is printed and
/// becomes exit status 1.
pub async fn answer<T>(
    addr: &Endpoint,
    fleet: &FleetArgs,
    give_up: tokio::time::Instant,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, u8> {
    match tokio::time::timeout_at(give_up, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => {
            eprintln!("dcos: {addr}: {}: {}", status.code(), status.message());
            Err(exit::FAILED)
        }
        Err(_) => {
            eprintln!("dcos: deadline_exceeded: no answer from {addr} within {:?}", fleet.timeout);
            Err(exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fleet(inventory: Option<&Path>, seed: Option<&str>) -> FleetArgs {
        use clap::Parser;
        let mut cli = crate::cli::Cli::try_parse_from(["dcos", "hosts"]).unwrap();
        cli.fleet.inventory = inventory.map(Into::into);
        cli.fleet.seed = seed.map(Into::into);
        cli.fleet
    }

    fn tls() -> TlsArgs {
        TlsArgs { cert: None, key: None, ca: None }
    }

    #[test]
    fn addresses_take_the_default_port() {
        assert_eq!(parse_addr("10.0.0.5", "--api").unwrap(), "10.0.0.5:7442".parse().unwrap());
        assert_eq!(parse_addr(" 10.0.0.5:9", "--api").unwrap(), "10.0.0.5:9".parse().unwrap());
        assert_eq!(parse_addr("[::1]", "--api").unwrap(), "[::1]:7442".parse().unwrap());
        let e = parse_addr("web-1", "--seed").unwrap_err().to_string();
        assert!(e.starts_with("--seed: \"web-1\" is not an address"), "{e}");
    }

    fn inventory() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[[host]]\nname=\"a\"\nk2i=\"10.0.0.1\"\napi=\"10.0.0.1\"\n\
             [[host]]\nname=\"b\"\nk2i=\"10.0.0.2\"\n\
             [[host]]\nname=\"c\"\nk2i=\"10.0.0.3\"\napi=\"10.0.0.3:9000\"\n"
        )
        .unwrap();
        f
    }

    fn apis(api: Option<&str>, socket: Option<&str>) -> ApiArgs {
        ApiArgs { api: api.map(Into::into), socket: socket.map(Into::into) }
    }

    fn port(e: &Endpoint) -> u16 {
        match e {
            Endpoint::Tcp(a) => a.port(),
            Endpoint::Unix(p) => panic!("{} is a socket", p.display()),
        }
    }

    fn tcp(a: &str) -> Endpoint {
        Endpoint::Tcp(a.parse().unwrap())
    }

    #[test]
    fn the_entry_is_socket_then_api_then_seed_then_the_inventory() {
        let f = inventory();
        let none = apis(None, None);
        let one = apis(Some("127.0.0.1:1"), None);
        let inv = fleet(Some(f.path()), None);
        assert_eq!(port(&entry(&none, &inv, Some("c")).unwrap()), 9000);
        assert_eq!(entry(&none, &inv, None).unwrap(), tcp("10.0.0.1:7442"));
        assert!(entry(&none, &inv, Some("b")).unwrap_err().to_string().contains("no api address"));
        assert!(entry(&none, &inv, Some("z")).unwrap_err().to_string().contains("not in"));
        let seeded = fleet(Some(f.path()), Some("10.9.9.9"));
        assert_eq!(entry(&none, &seeded, Some("z")).unwrap(), tcp("10.9.9.9:7442"));
        assert_eq!(port(&entry(&one, &seeded, Some("a")).unwrap()), 1);
        let local = entry(&apis(None, Some("/run/mc.sock")), &seeded, Some("a")).unwrap();
        assert_eq!(local, Endpoint::Unix("/run/mc.sock".into()));
        assert_eq!(local.to_string(), "unix:/run/mc.sock");
        let e = entry(&none, &fleet(None, None), None).unwrap_err();
        assert_eq!(e.exit_status(), crate::exit::USAGE);
        assert!(e.to_string().contains("--api") && e.to_string().contains("--seed"), "{e}");
    }

    #[test]
    fn only_tcp_takes_a_certificate() {
        // No --cert, --key or --ca: the socket needs none, TCP says which flags to give.
        assert!(identity_for(&tls(), &Endpoint::Unix("/run/mc.sock".into())).unwrap().is_none());
        let e = identity_for(&tls(), &tcp("10.0.0.1:7442")).unwrap_err().to_string();
        assert!(e.contains("--cert"), "{e}");
    }

    #[tokio::test]
    async fn hosts_come_from_socket_api_or_the_inventory() {
        let f = inventory();
        let inv = fleet(Some(f.path()), None);
        let none = apis(None, None);
        let all = hosts(&tls(), &inv, &none).await.unwrap();
        assert_eq!(all.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(port(&all[1].addr), 9000);
        assert_eq!(port(&host(&tls(), &inv, &none, "a").await.unwrap().addr), DEFAULT_API_PORT);
        let e = host(&tls(), &inv, &none, "b").await.unwrap_err().to_string();
        assert!(e.contains("no api address"), "{e}");
        let e = host(&tls(), &inv, &none, "z").await.unwrap_err().to_string();
        assert!(e.contains("not in"), "{e}");
        let one = apis(Some("127.0.0.1:1"), None);
        assert_eq!(port(&hosts(&tls(), &inv, &one).await.unwrap()[0].addr), 1);
        assert_eq!(host(&tls(), &fleet(None, None), &one, "z").await.unwrap().name, "z");
        let local = apis(None, Some("/run/mc.sock"));
        let listed = hosts(&tls(), &inv, &local).await.unwrap();
        assert_eq!(listed, [ApiHost::new("local", Endpoint::Unix("/run/mc.sock".into()))]);
        let named = host(&tls(), &inv, &local, "b").await.unwrap();
        assert_eq!((named.addr, named.assumed), (Endpoint::Unix("/run/mc.sock".into()), true));
        assert!(host(&tls(), &inv, &one, "b").await.unwrap().assumed, "--api: whatever answers there");
        assert!(!host(&tls(), &inv, &none, "a").await.unwrap().assumed, "found in the inventory");
        let both = super::named(&tls(), &inv, &none, &["c".into(), "a".into()]).await.unwrap();
        assert_eq!(
            both.iter().map(|h| (h.name.as_str(), port(&h.addr))).collect::<Vec<_>>(),
            [("c", 9000), ("a", 7442)]
        );
        let both = super::named(&tls(), &inv, &one, &["a".into(), "z".into()]).await.unwrap();
        assert!(
            both.iter().all(|h| h.assumed && port(&h.addr) == 1),
            "--api: one middlecon, names unchecked"
        );
        let e = hosts(&tls(), &fleet(None, None), &none).await.unwrap_err().to_string();
        assert!(e.contains("--inventory") && e.contains("--seed"), "{e}");
    }
}
