//! Reaching middlecon's gRPC API: which address (`--api`, else the host's `api` in the
//! inventory), a channel presenting the operator's certificate, and connection failures
//! sorted into the per-host statuses of SPEC section 6 (`refused`, `tls_error`,
//! `unreachable`, `timeout`).

use crate::cli::{ApiArgs, FleetArgs};
use crate::commands::SetupError;
use dcos_core::tls::Identity;
use std::net::SocketAddr;

/// The default port of the gRPC API.
pub const DEFAULT_PORT: u16 = 7442;

/// One middlecon to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiHost {
    /// The host's name: as selected until it answers with its own.
    pub name: String,
    pub addr: SocketAddr,
}

/// `IP[:PORT]` (default port 7442).
pub fn parse_addr(text: &str) -> Result<SocketAddr, SetupError> {
    let text = text.trim();
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| SetupError::Usage(format!("--api: {text:?} is not an address like 10.0.0.5:7442")))
}

/// The API of the host named `name`: `--api` if given, else its `api` in the inventory.
pub fn host(name: &str, fleet: &FleetArgs, api: &ApiArgs) -> Result<ApiHost, SetupError> {
    let text = match (&api.api, &fleet.inventory) {
        (Some(a), _) => a.clone(),
        (None, Some(path)) => {
            let hosts = crate::fleet::load_inventory(path)?;
            let host = hosts.iter().find(|t| t.name == name).ok_or_else(|| {
                SetupError::Usage(format!("{name} is not in {}; give --api ADDR", path.display()))
            })?;
            host.api.clone().ok_or_else(|| {
                SetupError::Usage(format!("{name} has no api address in {}; give --api ADDR", path.display()))
            })?
        }
        (None, None) => {
            return Err(SetupError::Usage(
                "which middlecon? give --api ADDR (or DCOS_API), or --inventory with an api field".into(),
            ))
        }
    };
    Ok(ApiHost { name: name.to_string(), addr: parse_addr(&text)? })
}

/// Every selected host's API: the one `--api`, else the inventory's hosts (narrowed by
/// `--dc`/`--label`) that have an `api` address.
pub fn hosts(fleet: &FleetArgs, api: &ApiArgs) -> Result<Vec<ApiHost>, SetupError> {
    if let Some(a) = &api.api {
        let addr = parse_addr(a)?;
        return Ok(vec![ApiHost { name: addr.to_string(), addr }]);
    }
    let Some(path) = &fleet.inventory else {
        return Err(SetupError::Usage(
            "which middlecons? give --inventory FILE with api fields, or --api ADDR (or DCOS_API) for one"
                .into(),
        ));
    };
    let targets =
        crate::fleet::narrow(crate::fleet::load_inventory(path)?, fleet.dc.as_deref(), &fleet.labels)?;
    let selected = targets.len();
    let hosts: Vec<ApiHost> = targets
        .into_iter()
        .filter_map(|t| t.api.map(|a| (t.name, a)))
        .map(|(name, a)| {
            parse_addr(&a).map(|addr| ApiHost { name: name.clone(), addr }).map_err(|_| {
                SetupError::Usage(format!("host {name}: api {a:?} is not an address like 10.0.0.5:7442"))
            })
        })
        .collect::<Result<_, _>>()?;
    if hosts.is_empty() {
        return Err(SetupError::Usage(format!(
            "none of the {selected} selected hosts has an api address in the inventory; give --api ADDR"
        )));
    }
    Ok(hosts)
}

/// Why no channel could be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// `refused`, `tls_error`, `timeout` or `unreachable`.
    pub status: &'static str,
    pub message: String,
}

/// A channel to the API at `addr` with the operator's certificate.
pub async fn connect(
    addr: SocketAddr,
    identity: &Identity,
) -> Result<tonic::transport::Channel, ConnectError> {
    middlecon::api::connect(addr, identity).await.map_err(|e| ConnectError {
        status: connect_status(&e),
        message: format!("cannot reach the middlecon API at {e}"),
    })
}

/// Sorts a connection failure's text (its whole chain of causes) into a per-host status.
pub fn connect_status(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("connection refused") {
        "refused"
    } else if ["certificate", "alert", "tls", "handshake"].iter().any(|w| e.contains(w)) {
        "tls_error"
    } else if e.contains("timed out") || e.contains("elapsed") {
        "timeout"
    } else {
        "unreachable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fleet(inventory: Option<&std::path::Path>) -> FleetArgs {
        use clap::Parser;
        let mut cli = crate::cli::Cli::try_parse_from(["dcos", "hosts"]).unwrap();
        cli.fleet.inventory = inventory.map(Into::into);
        cli.fleet
    }

    #[test]
    fn addresses_take_the_default_port() {
        assert_eq!(parse_addr("10.0.0.5").unwrap(), "10.0.0.5:7442".parse().unwrap());
        assert_eq!(parse_addr("10.0.0.5:9").unwrap(), "10.0.0.5:9".parse().unwrap());
        assert_eq!(parse_addr("[::1]").unwrap(), "[::1]:7442".parse().unwrap());
        assert!(parse_addr("web-1").unwrap_err().to_string().contains("not an address"));
    }

    #[test]
    fn hosts_come_from_api_or_the_inventory() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[[host]]\nname=\"a\"\nk2i=\"10.0.0.1\"\napi=\"10.0.0.1\"\n\
             [[host]]\nname=\"b\"\nk2i=\"10.0.0.2\"\n\
             [[host]]\nname=\"c\"\nk2i=\"10.0.0.3\"\napi=\"10.0.0.3:9000\"\n"
        )
        .unwrap();
        let inv = fleet(Some(f.path()));
        let none = ApiArgs { api: None };
        let all = hosts(&inv, &none).unwrap();
        assert_eq!(all.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(all[1].addr.port(), 9000);
        assert_eq!(host("a", &inv, &none).unwrap().addr.port(), DEFAULT_PORT);
        assert!(host("b", &inv, &none).unwrap_err().to_string().contains("no api address"));
        assert!(host("z", &inv, &none).unwrap_err().to_string().contains("not in"));
        let one = ApiArgs { api: Some("127.0.0.1:1".into()) };
        assert_eq!(hosts(&inv, &one).unwrap()[0].addr.port(), 1);
        assert_eq!(host("z", &fleet(None), &one).unwrap().name, "z");
        assert!(hosts(&fleet(None), &none).unwrap_err().to_string().contains("--inventory"));
    }

    #[test]
    fn connection_failures_are_sorted() {
        assert_eq!(
            connect_status("1.2.3.4:7442: transport error: Connection refused (os error 111)"),
            "refused"
        );
        assert_eq!(connect_status("x: invalid peer certificate: UnknownIssuer"), "tls_error");
        assert_eq!(connect_status("x: received fatal alert: UnknownCA"), "tls_error");
        assert_eq!(connect_status("x: transport error: timed out"), "timeout");
        assert_eq!(connect_status("x: No route to host"), "unreachable");
    }
}
