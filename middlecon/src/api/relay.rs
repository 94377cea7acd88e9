//! The `Relay` gRPC service (SPEC section 8): one middlecon per datacenter fans a read out to
//! the k2i of its datacenter for an operator, and streams back one answer per host.
//!
//! - Who: every role may ask (these are reads); the caller is the operator of the API
//!   connection's certificate (the local socket counts as `admin`). The relay asks k2i with
//!   its own `host` certificate and the on-behalf-of headers naming the operator and role
//!   ([`dcos_core::role::ON_BEHALF_OF_HEADER`]): k2i answers with the operator's rights,
//!   never the host's, refuses writes on relayed requests, and logs both names.
//! - What: only the reads of [`Read`] (`GET /v1/proc`, `/v1/top`, `/v1/containers`); the
//!   request names no path and no method, so there is no write to relay.
//! - How: one pooled HTTPS client for the daemon's life, so the connections to the
//!   datacenter's k2i stay open between requests; the fan-out of the CLI
//!   ([`k2i_client::fanout`]) with its shared deadline; the CLI's merge
//!   ([`k2i_client::merge`]) for `--sort`/`--limit`, so a relayed table is the direct one.
//!   A limited `ps` asks each host for a few rows first and only the hosts that may hold
//!   more of the table for all of them (`first_round`).
//! - Streaming: failures go out at once; answers too when nothing is merged (no limit,
//!   containers), the bodies passed on unparsed; merged answers once every host has answered
//!   or timed out. When the caller goes away, the requests still out are dropped.
//! - A refreshing `top` (`live_ms`): answered from the hosts' watched documents ([`live`]).

mod live;

use crate::access::Caller;
use dcos_core::model::ProcList;
use dcos_core::reload::ReloadableIdentity;
use dcos_core::role::{ON_BEHALF_OF_HEADER, ON_BEHALF_OF_ROLE_HEADER};
use dcos_proto::v1 as pb;
use dcos_query::{ProcQuery, SortKey};
use futures::StreamExt;
use k2i_client::fanout::{Bytes, Endpoint, FanOut, HostReport, Read};
use k2i_client::{merge, K2iClient};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The deadline of a request that gives none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest deadline a request may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// A reply message carries bodies up to about this many bytes (one host's may be larger).
const REPLY_BYTES: usize = 1 << 20;
/// How long the connections to k2i wait idle for the next request (k2i keeps a `host`
/// certificate's connection open for two minutes).
const POOL_IDLE: Duration = Duration::from_secs(110);
/// `/v1/top`'s limit when the query gives none (k2i's own default).
const TOP_DEFAULT_LIMIT: usize = 20;

/// Serves `Relay` with the daemon's `host` identity.
#[derive(Clone)]
pub struct RelayApi {
    client: K2iClient,
    /// The watches of live sessions hold their connections for the session's life: a pool of
    /// their own, so the connections kept for the other requests stay free for them.
    watch_client: K2iClient,
    sessions: Arc<live::Sessions>,
}

impl RelayApi {
    /// With the daemon's identity in use (a reload applies to the next connection).
    pub fn new(identity: &Arc<ReloadableIdentity>) -> Result<RelayApi, dcos_core::tls::TlsError> {
        let tls = (*identity.client_config(&[])?).clone();
        let client = K2iClient::with_config(tls.clone(), POOL_IDLE);
        let watch_client = K2iClient::with_config(tls, POOL_IDLE);
        Ok(RelayApi { client, watch_client, sessions: Arc::default() })
    }
}

/// A host of the request.
#[derive(Clone)]
struct Host {
    name: String,
    k2i: String,
}

impl Endpoint for Host {
    fn name(&self) -> &str {
        &self.name
    }
    fn k2i(&self) -> &str {
        &self.k2i
    }
}

/// How the answers are merged before they go back.
enum Merge {
    /// Passed on as they come.
    None,
    /// `/v1/proc` with a limit: the first `limit` by `sort`, hosts asked first for `first`
    /// rows each ([`first_round`]).
    Processes { sort: Vec<SortKey>, limit: usize, first: usize },
    /// `/v1/top`: the fleet's first `limit` by `sort`.
    Top { sort: Vec<SortKey>, limit: usize },
}

/// Percent-decodes one query-string component (`+` is a space).
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| format!("bad escape in {s:?}"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The query string as decoded pairs; only URL-safe characters are accepted.
fn pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-._~%&=+,".contains(c);
    if let Some(c) = query.chars().find(|c| !safe(*c)) {
        return Err(format!("the query may not hold {c:?} (percent-encode it)"));
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// The rows each of `hosts` hosts is asked for first when the operator wants the first
/// `limit` of their merged table: an eighth of `limit` (at least two), not all of it. A host
/// whose every row is among the merged first `limit` while it holds more is asked again for
/// `limit` ([`relay_list`]), so the table is the same; at most eight hosts are, since each
/// has given at least an eighth of the table. When the first rows of all hosts would not
/// fill the table, every host would be asked again: all of `limit` at once then. The rows
/// no one keeps are then neither rendered by the hosts nor sent nor read.
fn first_round(limit: usize, hosts: usize) -> usize {
    let first = limit.div_ceil(8).max(2);
    if first >= limit || hosts.saturating_mul(first) <= limit {
        limit
    } else {
        first
    }
}

/// `query` (a query string, checked by [`pairs`]) with its `limit` set to `limit`.
fn with_limit(query: &str, limit: usize) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match decode(p.split_once('=').map_or(p, |(k, _)| k)).as_deref() {
            Ok("limit") => format!("limit={limit}"),
            _ => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What to ask and how to merge, checked before any host is asked.
fn plan(kind: pb::FanOutKind, query: &str, hosts: usize) -> Result<(Read, Merge), String> {
    let pairs = pairs(query)?;
    let refs = || pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    match kind {
        pb::FanOutKind::Processes => {
            let q = ProcQuery::from_pairs(refs()).map_err(|e| format!("{}: {}", e.parameter, e.message))?;
            let merge = match q.limit {
                // Thread rows are not what the limit counts: every host gives all it has.
                Some(limit) if q.threads => Merge::Processes { sort: q.sort, limit, first: limit },
                Some(limit) => Merge::Processes { sort: q.sort, limit, first: first_round(limit, hosts) },
                None => Merge::None,
            };
            Ok((Read::Processes, merge))
        }
        pb::FanOutKind::Top => {
            let mut sort = dcos_query::parse_sort("-cpu").map_err(|e| e.message)?;
            let mut limit = TOP_DEFAULT_LIMIT;
            for (k, v) in refs() {
                match k {
                    "sort" => sort = dcos_query::parse_sort(v).map_err(|e| format!("sort: {}", e.message))?,
                    "limit" => limit = v.parse().map_err(|_| format!("limit: {v:?} is not a number"))?,
                    _ => {}
                }
            }
            Ok((Read::Top, Merge::Top { sort, limit }))
        }
        pb::FanOutKind::Containers => Ok((Read::Containers, Merge::None)),
        pb::FanOutKind::Unspecified => Err("kind: say what to read (processes, top or containers)".into()),
    }
}

fn report_pb(index: usize, r: &HostReport, body: Vec<u8>) -> pb::HostAnswer {
    pb::HostAnswer {
        index: index as u32,
        host: r.host.clone(),
        address: r.address.clone(),
        status: r.status.to_string(),
        error: r.error.clone().unwrap_or_default(),
        elapsed_ms: r.elapsed_ms,
        body,
        age_ms: r.age_ms,
    }
}

/// Sends `answers` in messages of about [`REPLY_BYTES`]; false once the caller is gone.
async fn send(tx: &mpsc::Sender<Result<pb::FanOutReply, Status>>, answers: Vec<pb::HostAnswer>) -> bool {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for a in answers {
        bytes += a.body.len() + 64;
        batch.push(a);
        if bytes >= REPLY_BYTES {
            if tx.send(Ok(pb::FanOutReply { answers: std::mem::take(&mut batch) })).await.is_err() {
                return false;
            }
            bytes = 0;
        }
    }
    batch.is_empty() || tx.send(Ok(pb::FanOutReply { answers: batch })).await.is_ok()
}

/// Runs one fan-out, sending what is final as it is (a limited `/v1/proc` goes through
/// [`relay_list`] instead).
async fn relay(
    fan: FanOut,
    hosts: Vec<Host>,
    path: String,
    merge: Merge,
    tx: mpsc::Sender<Result<pb::FanOutReply, Status>>,
) {
    let mut answers = fan.get_raw(&hosts, |_| path.clone()).ready_chunks(256);
    let mut kept: Vec<(usize, HostReport, Bytes)> = Vec::new();
    while let Some(chunk) = answers.next().await {
        let mut now = Vec::new();
        for a in chunk {
            match (&merge, a.value) {
                (Merge::None, value) => {
                    now.push(report_pb(a.target, &a.report, value.map(|b| b.to_vec()).unwrap_or_default()))
                }
                (_, Some(body)) => kept.push((a.target, a.report, body)),
                (_, None) => now.push(report_pb(a.target, &a.report, Vec::new())),
            }
        }
        if !send(&tx, now).await {
            return;
        }
    }
    let merged = match merge {
        Merge::None | Merge::Processes { .. } => return,
        Merge::Top { sort, limit } => {
            let docs =
                kept.into_iter().map(|(i, r, body)| (i, r, TopDoc::parse(&body).map(Arc::new))).collect();
            merged_tops(docs, &sort, limit)
        }
    };
    send(&tx, merged).await;
}

/// `report` as the host's `http_error` for `why` (its answer is not what k2i sends).
fn bad(index: usize, mut report: HostReport, why: String) -> pb::HostAnswer {
    report.status = "http_error";
    report.error = Some(why);
    report_pb(index, &report, Vec::new())
}

/// A `/v1/top` answer, its rows left in JSON.
#[derive(serde::Deserialize)]
struct RawTop<'a> {
    #[serde(borrow)]
    host: &'a RawValue,
    #[serde(borrow)]
    processes: Vec<&'a RawValue>,
}

/// The one field of a host summary the merge needs.
#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

/// A `/v1/top` document parsed as far as a merge needs: the host's name, and where its
/// summary and each process row are in its text (a live session parses each document once,
/// as it arrives, so an answer only merges).
pub struct TopDoc {
    text: String,
    name: String,
    host: std::ops::Range<usize>,
    rows: Vec<std::ops::Range<usize>>,
}

impl TopDoc {
    /// `body` parsed; why not, if it is not a `/v1/top` document.
    pub fn parse(body: &[u8]) -> Result<TopDoc, String> {
        let text = String::from_utf8(body.to_vec()).map_err(|e| format!("bad answer: {e}"))?;
        let (name, host, rows) = {
            let raw: RawTop = serde_json::from_str(&text).map_err(|e| format!("bad answer: {e}"))?;
            let name =
                serde_json::from_str::<Named>(raw.host.get()).map_err(|e| format!("bad answer: {e}"))?.name;
            let span = |r: &RawValue| {
                let start = r.get().as_ptr() as usize - text.as_ptr() as usize;
                start..start + r.get().len()
            };
            (name, span(raw.host), raw.processes.iter().map(|r| span(r)).collect())
        };
        Ok(TopDoc { text, name, host, rows })
    }

    fn rows(&self) -> Vec<&str> {
        self.rows.iter().map(|r| &self.text[r.clone()]).collect()
    }

    /// The document with only the rows `keep` says.
    fn with_rows(&self, keep: &[bool]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.host.len() + 32);
        out.extend_from_slice(b"{\"host\":");
        out.extend_from_slice(self.text[self.host.clone()].as_bytes());
        out.extend_from_slice(b",\"processes\":[");
        let kept = self.rows.iter().zip(keep).filter(|(_, k)| **k).map(|(r, _)| &self.text[r.clone()]);
        for (n, row) in kept.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(row.as_bytes());
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// The `/v1/top` answers (`index`, report, document) with each host's summary and those of
/// its processes among the fleet's first `limit` by `sort`; rows pass on as k2i wrote them.
fn merged_tops(
    answers: Vec<(usize, HostReport, Result<Arc<TopDoc>, String>)>,
    sort: &[SortKey],
    limit: usize,
) -> Vec<pb::HostAnswer> {
    let mut out = Vec::new();
    let mut docs = Vec::new();
    for (i, report, doc) in answers {
        match doc {
            Ok(doc) => docs.push((i, report, doc)),
            Err(why) => out.push(bad(i, report, why)),
        }
    }
    let rows: Vec<(&str, Vec<&str>)> = docs.iter().map(|(_, _, d)| (d.name.as_str(), d.rows())).collect();
    let keep = merge::select_raw(&rows, sort, limit);
    for ((i, report, doc), keep) in docs.iter().zip(keep) {
        match keep {
            Ok(keep) => out.push(report_pb(*i, report, doc.with_rows(&keep))),
            Err(why) => out.push(bad(*i, report.clone(), why)),
        }
    }
    out
}

/// A limited `/v1/proc` fan-out: every host asked for `first` rows, then those that may hold
/// more of the first `limit` asked again for `limit` ([`merged_lists`]), until none may
/// (a host failing in a later round takes its rows out, which may call on another). Failures
/// are sent as they come, the merged answers at the end; elapsed times add up the rounds.
async fn relay_list(
    mut fan: FanOut,
    hosts: Vec<Host>,
    query: String,
    (sort, limit, first): (Vec<SortKey>, usize, usize),
    tx: mpsc::Sender<Result<pb::FanOutReply, Status>>,
) {
    fan.began = Some(std::time::Instant::now());
    let mut answered: Vec<Option<(HostReport, Bytes, usize)>> = hosts.iter().map(|_| None).collect();
    let mut spent = vec![0; hosts.len()];
    let (mut ask, mut rows): (Vec<usize>, usize) = ((0..hosts.len()).collect(), first);
    while !ask.is_empty() {
        // `ask` is ascending: all of them (the first round) is every host as listed, with no copy.
        let again: Vec<Host>;
        let targets = match ask.len() == hosts.len() {
            true => &hosts[..],
            false => {
                again = ask.iter().map(|&i| hosts[i].clone()).collect();
                &again[..]
            }
        };
        let path = Read::Processes.path(&with_limit(&query, rows));
        let mut answers = fan.get_raw(targets, |_| path.clone()).ready_chunks(256);
        while let Some(chunk) = answers.next().await {
            let mut failed = Vec::new();
            for mut a in chunk {
                let i = ask[a.target];
                spent[i] += a.report.elapsed_ms;
                a.report.elapsed_ms = spent[i];
                answered[i] = match a.value {
                    Some(body) => Some((a.report, body, rows)),
                    None => {
                        failed.push(report_pb(i, &a.report, Vec::new()));
                        None
                    }
                };
            }
            if !send(&tx, failed).await {
                return;
            }
        }
        drop(answers);
        match merged_lists(&answered, &sort, limit) {
            Ok(merged) => {
                send(&tx, merged).await;
                return;
            }
            Err(again) => (ask, rows) = (again, limit),
        }
    }
}

/// The `/v1/proc` answers (report, body, rows asked) with only the rows among the first
/// `limit` by `sort`, decoding only the rows that may be ([`merge::select_raw`]); rows pass
/// on as k2i wrote them. `Err`: the hosts that were asked for fewer than `limit` rows, hold
/// more and had every row taken, so their next rows may belong too.
fn merged_lists(
    answered: &[Option<(HostReport, Bytes, usize)>],
    sort: &[SortKey],
    limit: usize,
) -> Result<Vec<pb::HostAnswer>, Vec<usize>> {
    let mut out = Vec::new();
    let mut lists = Vec::new();
    for (i, (report, body, asked)) in answered.iter().enumerate().filter_map(|(i, a)| Some((i, a.as_ref()?)))
    {
        match serde_json::from_slice::<ProcList<&RawValue>>(body) {
            Ok(list) => lists.push((i, report, list, *asked)),
            Err(e) => out.push(bad(i, report.clone(), format!("bad answer: {e}"))),
        }
    }
    let rows: Vec<(&str, Vec<&str>)> = lists
        .iter()
        .map(|(_, _, l, _)| (l.host.as_str(), l.processes.iter().map(|r| r.get()).collect()))
        .collect();
    let keep = merge::select_raw(&rows, sort, limit);
    let again: Vec<usize> = lists
        .iter()
        .zip(&keep)
        .filter(|((_, _, list, asked), keep)| {
            let all_taken = keep.as_ref().is_ok_and(|k| k.iter().all(|t| *t));
            *asked < limit && list.total > list.processes.len() && all_taken
        })
        .map(|((i, ..), _)| *i)
        .collect();
    if !again.is_empty() {
        return Err(again);
    }
    for ((i, report, mut list, _), keep) in lists.into_iter().zip(keep) {
        match keep {
            Ok(keep) => {
                let mut flags = keep.into_iter();
                list.processes.retain(|_| flags.next().unwrap_or(false));
                out.push(report_pb(i, report, serde_json::to_vec(&list).unwrap_or_default()));
            }
            Err(why) => out.push(bad(i, report.clone(), why)),
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::relay_server::Relay for RelayApi {
    type FanOutStream = ReceiverStream<Result<pb::FanOutReply, Status>>;

    async fn fan_out(
        &self,
        request: Request<pb::FanOutRequest>,
    ) -> Result<Response<Self::FanOutStream>, Status> {
        let arrived = tokio::time::Instant::now();
        let caller = Caller::of(&request);
        let role = caller.role();
        if !role.can_read() {
            return Err(Status::permission_denied(format!("{} may not read", caller.describe())));
        }
        let req = request.into_inner();
        let (read, merge) =
            plan(req.kind(), &req.query, req.hosts.len()).map_err(Status::invalid_argument)?;
        let timeout = match req.timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_TIMEOUT),
        };
        let hosts: Vec<Host> = req.hosts.into_iter().map(|h| Host { name: h.name, k2i: h.k2i }).collect();
        if let Some(bad) = hosts.iter().find(|h| !h.k2i.starts_with("https://")) {
            return Err(Status::invalid_argument(format!(
                "{}: k2i {:?} is not an https:// URL",
                bad.name, bad.k2i
            )));
        }
        tracing::debug!(operator = %caller.describe(), ?read, hosts = hosts.len(), "relaying");
        let mut fan = FanOut::new(self.client.clone(), timeout);
        fan.headers = vec![
            (ON_BEHALF_OF_HEADER, caller.name.clone()),
            (ON_BEHALF_OF_ROLE_HEADER, role.as_str().into()),
        ];
        let (tx, rx) = mpsc::channel(16);
        if let Merge::Top { sort, limit } = &merge {
            let key = live::Key {
                operator: caller.name.clone(),
                role: role.as_str().into(),
                query: req.query.clone(),
                hosts: hosts.iter().map(|h| (h.name.clone(), h.k2i.clone())).collect(),
            };
            let live = Duration::from_millis(req.live_ms.into()).min(MAX_TIMEOUT);
            let watch_path =
                format!("{}&watch=true", Read::Top.path(&req.query)).replacen("/v1/top&", "/v1/top?", 1);
            let session = match live.is_zero() {
                true => self.sessions.get(&key).map(|s| (s, false)),
                false => self.sessions.session(&key, &self.watch_client, &watch_path, &fan.headers, timeout),
            };
            if let Some((session, new)) = session {
                let (sort, limit) = (sort.clone(), *limit);
                let deadline = tokio::time::Instant::now() + timeout;
                tokio::spawn(async move {
                    if new {
                        session.first(key.hosts.len(), deadline).await;
                    }
                    let (mut now, mut ok) = (Vec::new(), Vec::new());
                    for (i, (report, doc)) in session.answer(&key, timeout).into_iter().enumerate() {
                        match doc {
                            Some(doc) => ok.push((i, report, Ok(doc))),
                            None => now.push(report_pb(i, &report, Vec::new())),
                        }
                    }
                    now.extend(merged_tops(ok, &sort, limit));
                    let hosts = now.len();
                    send(&tx, now).await;
                    tracing::debug!(hosts, "a live top answered in {:?}", arrived.elapsed());
                    drop(tx);
                    session.answered(live);
                });
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
        }
        let path = read.path(&req.query);
        tokio::spawn(async move {
            // The caller gone: stop asking.
            let closed = tx.clone();
            let asking = async {
                match merge {
                    Merge::Processes { sort, limit, first } => {
                        relay_list(fan, hosts, req.query, (sort, limit, first), tx).await
                    }
                    merge => relay(fan, hosts, path, merge, tx).await,
                }
            };
            tokio::select! {
                _ = asking => {}
                _ = closed.closed() => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::model::Process;

    #[test]
    fn queries_decode_and_are_checked_before_anyone_is_asked() {
        assert_eq!(
            pairs("q=cpu%20%3E%201&sort=-cpu&limit=20").unwrap(),
            [("q".into(), "cpu > 1".into()), ("sort".into(), "-cpu".into()), ("limit".into(), "20".into())]
        );
        assert!(pairs("a=b#c").is_err() && pairs("a=%zz").is_err() && pairs("x=/../").is_err());
        assert!(matches!(
            plan(pb::FanOutKind::Processes, "sort=-cpu&limit=5", 100),
            Ok((Read::Processes, Merge::Processes { limit: 5, first: 2, .. }))
        ));
        assert!(matches!(plan(pb::FanOutKind::Processes, "user=www", 1), Ok((Read::Processes, Merge::None))));
        assert!(plan(pb::FanOutKind::Processes, "q=cpu%20%3E", 1).is_err());
        assert!(plan(pb::FanOutKind::Top, "sort=nosuchfield", 1).is_err());
        assert!(plan(pb::FanOutKind::Unspecified, "", 1).is_err());
    }

    #[test]
    fn hosts_are_first_asked_for_a_few_rows_with_the_rest_of_the_query_kept() {
        assert_eq!(first_round(20, 1000), 3);
        assert_eq!(first_round(1000, 50), 125);
        assert_eq!(first_round(3, 2), 2);
        assert_eq!(first_round(20, 6), 20, "the first rows would not fill the table");
        assert_eq!(first_round(1, 1000), 1);
        assert!(matches!(
            plan(pb::FanOutKind::Processes, "limit=5&threads=true", 100),
            Ok((_, Merge::Processes { limit: 5, first: 5, .. }))
        ));
        assert_eq!(with_limit("sort=-cpu&limit=20&q=cpu%20%3E%201", 2), "sort=-cpu&limit=2&q=cpu%20%3E%201");
        assert_eq!(with_limit("%6Cimit=20&user=www", 3), "limit=3&user=www");
    }

    /// `host`'s answer to a `-cpu` query: rows of the given CPU percentages (sorted, as k2i
    /// sends them), `total` matches in all, asked for `asked` rows.
    fn answer(host: &str, cpu: &[f64], total: usize, asked: usize) -> Option<(HostReport, Bytes, usize)> {
        let processes: Vec<Process> = cpu
            .iter()
            .enumerate()
            .map(|(pid, cpu)| Process { pid: pid as i32 + 1, cpu_percent: Some(*cpu), ..Process::default() })
            .collect();
        let list =
            ProcList { host: host.into(), dc: "dc".into(), sampled_at: String::new(), total, processes };
        let report = HostReport {
            host: host.into(),
            address: String::new(),
            status: "ok",
            error: None,
            elapsed_ms: 1,
            via: None,
            age_ms: None,
        };
        Some((report, serde_json::to_vec(&list).unwrap().into(), asked))
    }

    fn kept(answers: &[pb::HostAnswer]) -> Vec<(u32, usize)> {
        let mut kept: Vec<(u32, usize)> = answers
            .iter()
            .map(|a| (a.index, serde_json::from_slice::<ProcList>(&a.body).unwrap().processes.len()))
            .collect();
        kept.sort();
        kept
    }

    #[test]
    fn a_host_whose_every_row_is_taken_is_asked_again_unless_it_has_no_more() {
        let sort = dcos_query::parse_sort("-cpu").unwrap();
        // Host a's two rows are the first two of three; it has 10 more: ask it again.
        let mut answered = vec![answer("a", &[90.0, 80.0], 12, 2), answer("b", &[70.0, 1.0], 5, 2)];
        assert_eq!(merged_lists(&answered, &sort, 3).unwrap_err(), [0]);
        // Asked again for 3: its third row beats b's first.
        answered[0] = answer("a", &[90.0, 80.0, 75.0], 12, 3);
        assert_eq!(kept(&merged_lists(&answered, &sort, 3).unwrap()), [(0, 3), (1, 0)]);
        // A host with no more rows, or one asked for the whole limit, is not asked again.
        let answered = vec![answer("a", &[90.0, 80.0], 2, 2), answer("b", &[70.0, 1.0], 5, 2)];
        assert_eq!(kept(&merged_lists(&answered, &sort, 3).unwrap()), [(0, 2), (1, 1)]);
        let answered = vec![answer("a", &[90.0, 80.0, 75.0], 9, 3), None];
        assert_eq!(kept(&merged_lists(&answered, &sort, 3).unwrap()), [(0, 3)]);
        // A host failing leaves room another host's next rows may take.
        let answered = vec![None, answer("b", &[70.0, 1.0], 5, 2)];
        assert_eq!(merged_lists(&answered, &sort, 3).unwrap_err(), [1]);
    }
}
