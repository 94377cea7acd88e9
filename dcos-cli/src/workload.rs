//! What the commands on middlecon's API share: a [`Session`] (identity, deadline, format),
//! unary calls of any of its gRPC services bounded by `--timeout` ([`Session::call`], given
//! the service's client; [`Session::unary`] for `Workloads`: the workload commands `run`,
//! `workloads`, `stop`, `migrate`, `evacuate`), one call on
//! every host at once ([`Session::on_all`]), the code words for gRPC statuses; and for the
//! workload commands `List` across the selected hosts, finding the one host that has a
//! workload, and the workload rows and JSON items.

use crate::api::{self, ApiHost, ConnectError};
use crate::cli::{ApiArgs, FleetArgs, Format, TlsArgs};
use crate::commands::{identity, SetupError};
use crate::fanout::HostReport;
use crate::{output, table};
use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use pb::workloads_client::WorkloadsClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A failed workload or service command: bad usage or setup (exit 2 or 1), or a failed
/// operation (exit 1) named by a code word scripts can match (`not_found`, `conflict`, ...).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{code}: {message}")]
    Failed { code: &'static str, message: String },
}

impl WorkloadError {
    pub fn exit_status(&self) -> u8 {
        match self {
            WorkloadError::Setup(e) => e.exit_status(),
            WorkloadError::Failed { .. } => crate::exit::FAILED,
        }
    }
}

/// The code word of a gRPC status from the `Workloads` or `Services` service (the status
/// list above `service Workloads` in the proto).
pub fn code_word(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Aborted => "conflict",
        AlreadyExists => "exists",
        NotFound => "not_found",
        ResourceExhausted => "no_space",
        FailedPrecondition => "precondition",
        Unavailable => "unreachable",
        PermissionDenied | Unauthenticated => "permission_denied",
        InvalidArgument | OutOfRange => "invalid",
        DeadlineExceeded => "deadline_exceeded",
        Unimplemented => "unimplemented",
        Cancelled => "interrupted",
        Ok | Unknown | Internal | DataLoss => "internal",
    }
}

/// A `Workloads` or `Services` status as a code word and its message: the daemon's own code (the status
/// details' [`pb::ErrorCode`]) when it carries one, else the gRPC code's ([`code_word`]).
pub fn status_parts(s: &tonic::Status) -> (&'static str, &str) {
    match dcos_proto::error_code(s) {
        pb::ErrorCode::Unspecified => (code_word(s.code()), s.message()),
        code => (code.word(), s.message()),
    }
}

/// Why one call to one host got no answer.
#[derive(Debug)]
pub enum Fault {
    Connect(ConnectError),
    Status(tonic::Status),
    Timeout(Duration),
}

impl Fault {
    /// The per-host status of SPEC section 6.
    pub fn host_status(&self) -> &'static str {
        match self {
            Fault::Connect(c) => c.status(),
            Fault::Status(s) => match s.code() {
                tonic::Code::Unavailable => "unreachable",
                tonic::Code::DeadlineExceeded => "timeout",
                _ => "http_error",
            },
            Fault::Timeout(_) => "timeout",
        }
    }

    /// For the `error` of a host's report (its `status` says the kind).
    pub fn message(&self) -> String {
        match self {
            Fault::Connect(c) => c.to_string(),
            Fault::Status(s) => {
                let (code, message) = status_parts(s);
                format!("{code}: {message}")
            }
            Fault::Timeout(t) => format!("no answer within {t:?}"),
        }
    }

    /// Its code word and a message naming the host.
    pub fn describe(&self, host: &ApiHost) -> (&'static str, String) {
        match self {
            Fault::Connect(c) => (c.status(), c.to_string()),
            Fault::Status(s) => {
                let (code, message) = status_parts(s);
                (code, format!("{} ({}): {message}", host.name, host.addr))
            }
            Fault::Timeout(t) => {
                ("timeout", format!("no answer from {} ({}) within {t:?}", host.name, host.addr))
            }
        }
    }

    /// As a command's failure, naming the host.
    pub fn into_error(self, host: &ApiHost) -> WorkloadError {
        let (code, message) = self.describe(host);
        WorkloadError::Failed { code, message }
    }

    /// The daemon's answer is a status with this gRPC code.
    pub fn is_status(&self, code: tonic::Code) -> bool {
        matches!(self, Fault::Status(s) if s.code() == code)
    }
}

/// A reply that names the host that gave it (its `host` field).
pub trait AnsweredBy {
    /// The answering host's own name; empty when it did not say.
    fn answered_by(&self) -> &str;
}

macro_rules! answered_by {
    ($($reply:ty),*) => {$(
        impl AnsweredBy for $reply {
            fn answered_by(&self) -> &str {
                &self.host
            }
        }
    )*};
}

answered_by!(
    pb::ListReply,
    pb::ListServicesReply,
    pb::ShowServiceReply,
    pb::CreateServiceReply,
    pb::RemoveServiceReply
);

impl<T: AnsweredBy> AnsweredBy for Option<T> {
    fn answered_by(&self) -> &str {
        self.as_ref().map_or("", T::answered_by)
    }
}

/// One host's answer to a call made on every host at once ([`Session::on_all`]).
pub struct Answer<T> {
    /// Named as the host named itself once it answered.
    pub host: ApiHost,
    /// `ok`, or why it did not answer (a refusal is `http_error` with its code word).
    pub report: HostReport,
    pub result: Result<T, Fault>,
}

/// What every workload command starts from.
pub struct Session {
    /// The operator's certificate; `None` when every host is reached on the local socket.
    pub identity: Option<Identity>,
    /// Bounds each unary call (connecting included).
    pub timeout: Duration,
    pub format: Format,
}

/// One host's `List`.
pub struct Listed {
    /// Named as the host named itself once it answered.
    pub host: ApiHost,
    pub report: HostReport,
    pub workloads: Vec<pb::Workload>,
}

impl Session {
    /// With `--socket` every host is the local one, reached with no certificate.
    pub fn new(tls: &TlsArgs, fleet: &FleetArgs, api: &ApiArgs) -> Result<Session, SetupError> {
        let identity = if api.socket.is_some() { None } else { Some(identity(tls)?) };
        Ok(Session { identity, timeout: fleet.timeout, format: fleet.output })
    }

    /// A channel to `host`'s API, connected before `deadline`.
    pub async fn channel(&self, host: &ApiHost, deadline: Instant) -> Result<Channel, Fault> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, api::connect_to(&host.addr, self.identity.as_ref())).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => Err(Fault::Connect(e)),
            Err(_) => Err(Fault::Timeout(self.timeout)),
        }
    }

    /// A `Workloads` client of `host`'s API, connected before `deadline`.
    pub async fn client(&self, host: &ApiHost, deadline: Instant) -> Result<WorkloadsClient<Channel>, Fault> {
        self.channel(host, deadline).await.map(WorkloadsClient::new)
    }

    /// One unary call to `host`, connecting included, within `--timeout` plus `more` (zero
    /// for an answer; `Run` copies a root filesystem, `Stop` gives the container a grace
    /// period). `call` gets the client (`client` of the channel) and a request carrying the
    /// time left (so the daemon knows the deadline too).
    pub async fn call<C, Q, T, F, Fut>(
        &self,
        more: Duration,
        host: &ApiHost,
        client: fn(Channel) -> C,
        message: Q,
        call: F,
    ) -> Result<T, Fault>
    where
        F: FnOnce(C, tonic::Request<Q>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let budget = self.timeout + more;
        let deadline = Instant::now() + budget;
        let work = async {
            let channel = self.channel(host, deadline).await?;
            let mut request = tonic::Request::new(message);
            request.set_timeout(
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
            );
            call(client(channel), request).await.map(tonic::Response::into_inner).map_err(Fault::Status)
        };
        tokio::time::timeout(budget, work).await.unwrap_or(Err(Fault::Timeout(budget)))
    }

    /// [`Session::call`] on the `Workloads` service.
    pub async fn unary<Q, T, F, Fut>(
        &self,
        more: Duration,
        host: &ApiHost,
        message: Q,
        call: F,
    ) -> Result<T, Fault>
    where
        F: FnOnce(WorkloadsClient<Channel>, tonic::Request<Q>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(more, host, WorkloadsClient::new, message, call).await
    }

    /// `ask` on every host at once; one [`Answer`] per host, in the order given, each host
    /// renamed as its reply names it.
    pub async fn on_all<'a, T, F, Fut>(&self, hosts: &'a [ApiHost], ask: F) -> Vec<Answer<T>>
    where
        T: AnsweredBy,
        F: Fn(&'a ApiHost) -> Fut,
        Fut: Future<Output = Result<T, Fault>>,
    {
        let asks = hosts.iter().map(|h| {
            let asked = ask(h);
            async move {
                let started = Instant::now();
                let result = asked.await;
                let elapsed_ms = started.elapsed().as_millis() as u64;
                let mut host = h.clone();
                let (status, error) = match &result {
                    Ok(reply) => {
                        if !reply.answered_by().is_empty() {
                            host.name = reply.answered_by().to_string();
                        }
                        ("ok", None)
                    }
                    Err(f) => (f.host_status(), Some(f.message())),
                };
                let report = HostReport {
                    host: host.name.clone(),
                    address: h.addr.to_string(),
                    status,
                    error,
                    elapsed_ms,
                    via: None,
                    age_ms: None,
                };
                Answer { host, report, result }
            }
        });
        futures::future::join_all(asks).await
    }

    /// Checks that `host`, if its name was only [assumed](ApiHost::assumed), is the host
    /// that answers there (its `List` names itself), before a command acts on it: a
    /// `--host`, `--from` or `evacuate HOST` that is not the middlecon at `--api` or
    /// `--socket` is refused (`invalid`) with nothing done.
    pub async fn confirm(&self, host: &ApiHost) -> Result<(), WorkloadError> {
        if !host.assumed {
            return Ok(());
        }
        let reply = self
            .unary(Duration::ZERO, host, pb::ListRequest {}, |mut c, r| async move { c.list(r).await })
            .await
            .map_err(|f| f.into_error(host))?;
        if reply.host == host.name {
            return Ok(());
        }
        Err(WorkloadError::Failed {
            code: "invalid",
            message: format!(
                "the middlecon at {} is host {}, not {:?}: nothing was done",
                host.addr, reply.host, host.name
            ),
        })
    }

    /// `List` on every host at once; one [`Listed`] per host, in the order given.
    pub async fn list_all(&self, hosts: &[ApiHost]) -> Vec<Listed> {
        let answers = self
            .on_all(hosts, |h| {
                self.unary(Duration::ZERO, h, pb::ListRequest {}, |mut c, r| async move { c.list(r).await })
            })
            .await;
        answers
            .into_iter()
            .map(|a| Listed {
                host: a.host,
                report: a.report,
                workloads: a.result.map(|r| r.workloads).unwrap_or_default(),
            })
            .collect()
    }

    /// The host that has workload `name`: `given` (the command's `flag`, `--host` or
    /// `--from`) through [`api::host`], else the one host among [`api::hosts`] whose `List`
    /// shows it ([`Session::locate`]).
    pub async fn find(
        &self,
        tls: &TlsArgs,
        fleet: &FleetArgs,
        apis: &ApiArgs,
        name: &str,
        given: Option<&str>,
        flag: &str,
    ) -> Result<ApiHost, WorkloadError> {
        match given {
            Some(h) => {
                let host = api::host(tls, fleet, apis, h).await?;
                self.confirm(&host).await?;
                Ok(host)
            }
            None => {
                let hosts = api::hosts(tls, fleet, apis).await?;
                Ok(self.locate(name, &hosts, flag).await?.0)
            }
        }
    }

    /// The one host among `hosts` that has workload `name` (a copy that is only `incoming`,
    /// the far end of a migration, does not count when another host has it too). Hosts that
    /// did not answer are named on stderr. `flag` is the option that picks a host by hand.
    pub async fn locate(
        &self,
        name: &str,
        hosts: &[ApiHost],
        flag: &str,
    ) -> Result<(ApiHost, pb::Workload), WorkloadError> {
        let listed = self.list_all(hosts).await;
        let reports: Vec<HostReport> = listed.iter().map(|l| l.report.clone()).collect();
        output::finish(&reports);
        let mut found: Vec<(ApiHost, pb::Workload)> = listed
            .into_iter()
            .flat_map(|l| {
                let host = l.host;
                l.workloads.into_iter().filter(|w| w.name == name).map(move |w| (host.clone(), w))
            })
            .collect();
        if found.len() > 1 {
            found.retain(|(_, w)| w.status != "incoming");
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => {
                let silent = reports.iter().filter(|r| !r.ok()).count();
                let message = if silent == 0 {
                    format!("no workload {name} in the fleet")
                } else {
                    format!(
                        "no workload {name} in the fleet ({silent} of {} hosts did not answer)",
                        reports.len()
                    )
                };
                Err(WorkloadError::Failed { code: "not_found", message })
            }
            _ => {
                let on: Vec<&str> = found.iter().map(|(h, _)| h.name.as_str()).collect();
                Err(WorkloadError::Failed {
                    code: "ambiguous",
                    message: format!("workload {name} is on {}: give {flag} HOST", on.join(", ")),
                })
            }
        }
    }
}

/// A workload as printed in `-o json`: `{"host", "name", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadItem {
    pub host: String,
    pub name: String,
    pub runtime: String,
    pub status: String,
    pub pid: Option<u32>,
    pub epoch: u64,
    pub command: Vec<String>,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub env: BTreeMap<String, String>,
    pub started_unix_ms: Option<i64>,
}

impl WorkloadItem {
    /// `answered_by` names the host when the workload itself does not.
    pub fn new(w: &pb::Workload, answered_by: &str) -> WorkloadItem {
        WorkloadItem {
            host: if w.host.is_empty() { answered_by.to_string() } else { w.host.clone() },
            name: w.name.clone(),
            runtime: w.runtime.clone(),
            status: w.status.clone(),
            pid: (w.pid != 0).then_some(w.pid),
            epoch: w.epoch,
            command: w.command.clone(),
            memory_bytes: (w.memory_bytes != 0).then_some(w.memory_bytes),
            cpus: (w.cpus != 0.0).then_some(w.cpus),
            env: w.env.clone(),
            started_unix_ms: (w.started_unix_ms != 0).then_some(w.started_unix_ms),
        }
    }

    /// NAME HOST RUNTIME STATUS PID.
    pub fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.host.clone(),
            dash(&self.runtime),
            dash(&self.status),
            self.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        ]
    }

    /// [`Self::row`], then EPOCH (wide: MEMORY CPUS STARTED) and COMMAND.
    pub fn list_row(&self, wide: bool) -> Vec<String> {
        let mut row = self.row();
        row.push(self.epoch.to_string());
        let command = self.command.join(" ");
        if wide {
            row.push(self.memory_bytes.map(table::human_bytes).unwrap_or_else(|| "-".into()));
            row.push(self.cpus.map(|c| format!("{c}")).unwrap_or_else(|| "-".into()));
            row.push(self.started_unix_ms.map(rfc3339).unwrap_or_else(|| "-".into()));
            row.push(command);
        } else {
            row.push(command.chars().take(COMMAND_WIDTH).collect());
        }
        row
    }
}

/// How much of a command a table shows (`-o wide`: all of it).
pub const COMMAND_WIDTH: usize = 60;
pub const HEADER: [&str; 5] = ["NAME", "HOST", "RUNTIME", "STATUS", "PID"];
pub const LIST_HEADER: [&str; 7] = ["NAME", "HOST", "RUNTIME", "STATUS", "PID", "EPOCH", "COMMAND"];
pub const LIST_HEADER_WIDE: [&str; 10] =
    ["NAME", "HOST", "RUNTIME", "STATUS", "PID", "EPOCH", "MEMORY", "CPUS", "STARTED", "COMMAND"];

pub fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

pub fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(unix_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix_ms.to_string())
}

/// Prints the workloads one command acted on (`run`, `stop`): a table NAME HOST RUNTIME
/// STATUS PID, `{"workloads": [...]}` or one line each.
pub fn print_acted_on(format: Format, items: &[WorkloadItem]) {
    match format {
        Format::Json => output::print_line(&serde_json::json!({ "workloads": items })),
        Format::Ndjson => items.iter().for_each(output::print_line),
        Format::Table | Format::Wide => {
            let rows: Vec<Vec<String>> = items.iter().map(WorkloadItem::row).collect();
            print!("{}", table::render(&HEADER, &rows));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> pb::Workload {
        pb::Workload {
            name: "web".into(),
            host: "".into(),
            runtime: "runc".into(),
            status: "running".into(),
            pid: 4242,
            started_unix_ms: 1_700_000_000_000,
            command: vec!["sleep".into(), "1000".into()],
            memory_bytes: 64 << 20,
            cpus: 0.5,
            env: [("A".to_string(), "1".to_string())].into(),
            epoch: 2,
            service: String::new(),
        }
    }

    #[test]
    fn statuses_map_to_code_words() {
        use tonic::Code;
        let cases = [
            (Code::Aborted, "conflict"),
            (Code::AlreadyExists, "exists"),
            (Code::NotFound, "not_found"),
            (Code::ResourceExhausted, "no_space"),
            (Code::FailedPrecondition, "precondition"),
            (Code::Unavailable, "unreachable"),
            (Code::PermissionDenied, "permission_denied"),
            (Code::InvalidArgument, "invalid"),
            (Code::Unimplemented, "unimplemented"),
            (Code::Internal, "internal"),
        ];
        for (code, word) in cases {
            assert_eq!(code_word(code), word, "{code:?}");
        }
        // The daemon's own code, from the status details, is more precise than the gRPC code.
        let s =
            dcos_proto::error_status(Code::FailedPrecondition, pb::ErrorCode::NoRuntime, "runc not found");
        assert_eq!(status_parts(&s), ("no_runtime", "runc not found"));
        // Without one (a proxy, the transport), the gRPC code's word; the message is not read.
        let s = tonic::Status::aborted("in_doubt: thing");
        assert_eq!(status_parts(&s), ("conflict", "in_doubt: thing"));
        let f = Fault::Status(tonic::Status::not_found("no workload web"));
        assert_eq!(f.host_status(), "http_error");
        let host = ApiHost::new("h0", crate::api::Endpoint::Tcp("10.0.0.1:7442".parse().unwrap()));
        let e = f.into_error(&host);
        assert_eq!(e.to_string(), "not_found: h0 (10.0.0.1:7442): no workload web");
        assert_eq!(e.exit_status(), crate::exit::FAILED);
        assert_eq!(Fault::Status(tonic::Status::unavailable("x")).host_status(), "unreachable");
        assert_eq!(Fault::Timeout(Duration::from_secs(3)).host_status(), "timeout");
    }

    #[test]
    fn items_and_rows() {
        let item = WorkloadItem::new(&workload(), "h0");
        assert_eq!(item.host, "h0");
        assert_eq!(item.row(), ["web", "h0", "runc", "running", "4242"]);
        assert_eq!(item.list_row(false), ["web", "h0", "runc", "running", "4242", "2", "sleep 1000"]);
        let wide = item.list_row(true);
        assert_eq!(wide.len(), LIST_HEADER_WIDE.len());
        assert_eq!(&wide[6..9], ["64M", "0.5", "2023-11-14T22:13:20Z"]);
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "host",
                "name",
                "runtime",
                "status",
                "pid",
                "epoch",
                "command",
                "memory_bytes",
                "cpus",
                "env",
                "started_unix_ms"
            ]
        );
        let bare = pb::Workload { name: "x".into(), host: "h1".into(), ..Default::default() };
        let v = serde_json::to_value(WorkloadItem::new(&bare, "h0")).unwrap();
        assert_eq!(v["host"], "h1");
        assert!(v["pid"].is_null() && v["memory_bytes"].is_null() && v["cpus"].is_null());
        assert_eq!(WorkloadItem::new(&bare, "h0").row(), ["x", "h1", "-", "-", "-"]);
        let long = pb::Workload { command: vec!["x".repeat(100)], ..bare };
        assert_eq!(WorkloadItem::new(&long, "h").list_row(false)[6].len(), COMMAND_WIDTH);
    }
}
