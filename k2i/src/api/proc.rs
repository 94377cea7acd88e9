//! `/v1/proc`, `/v1/proc/{pid}`, `/v1/proc/cmd/{name}` and `/v1/top`.

use super::{json, json_bytes, query_pairs, to_json};
use crate::error::ApiError;
use crate::procfs::detail;
use crate::sampler::{Sampler, Snapshot};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use dcos_core::model::{ProcList, Process, ProcessDetail};
use dcos_query::ProcQuery;
use std::sync::Arc;

/// Up to this many rows (processes and kernel threads), a query without a filter
/// expression (`q`) is parsed and run on the async worker: there it takes less than handing
/// it to a blocking thread and back would.
const INLINE_ROWS: usize = 2048;

/// Whether the query `pairs` over `snap` may run on the async worker: no `q` (compiling
/// its regexes and running them over the table are costly) and at most [`INLINE_ROWS`]
/// rows. Anything else, and reading `/proc/PID/task` for `threads=true`, goes to a blocking
/// thread: on the async workers it would hold up every other request behind it, `/healthz`
/// included. The request stays counted in its identity's in-flight budget meanwhile.
fn plain(pairs: &[(String, String)], snap: &Snapshot) -> bool {
    pairs.iter().all(|(k, _)| k != "q") && snap.processes.len() + snap.kernel_threads.len() <= INLINE_ROWS
}

/// The `/v1/proc` document for the query `pairs`, on the worker when it is [`plain`] and
/// lists no threads, else on a blocking thread.
async fn answer_list(
    state: AppState,
    snap: Arc<Snapshot>,
    pairs: Vec<(String, String)>,
    key: String,
) -> Result<Response, ApiError> {
    if plain(&pairs, &snap) {
        let query = ProcQuery::from_query(&pairs)?;
        if !query.threads {
            return render_list(&state, &snap, &query, key);
        }
        return tokio::task::spawn_blocking(move || render_list(&state, &snap, &query, key)).await?;
    }
    tokio::task::spawn_blocking(move || {
        let query = ProcQuery::from_query(&pairs)?;
        render_list(&state, &snap, &query, key)
    })
    .await?
}

/// The processes of `snap` (kernel threads too if asked) that `query` selects, once its
/// cost on this many rows is known to be within the budget.
fn select<'s>(query: &ProcQuery, snap: &'s Snapshot) -> Result<dcos_query::Selection<'s>, ApiError> {
    let kernel = if query.kernel { &snap.kernel_threads[..] } else { &[] };
    query.check_cost(snap.processes.len() + kernel.len())?;
    Ok(query.select(snap.processes.iter().chain(kernel)))
}

/// An answer already rendered from `snap` for the same request (checked before the query is
/// parsed: a repeated query does not compile its regexes again). Thread rows are read live,
/// so never kept.
fn cached(state: &AppState, snap: &Snapshot, key: &str) -> Option<Response> {
    state.responses.get(snap.seq, key).map(json_bytes)
}

/// Runs `query` over `snap` and renders the `/v1/proc` document (blocking).
fn render_list(
    state: &AppState,
    snap: &Snapshot,
    query: &ProcQuery,
    key: String,
) -> Result<Response, ApiError> {
    let selection = select(query, snap)?;
    let mut rows: Vec<Process>;
    let chosen: Vec<&Process> = if query.threads {
        rows = Vec::new();
        for p in &selection.processes {
            rows.extend(Sampler::threads_of(&state.sampler.proc_root, p));
        }
        rows.iter().collect()
    } else {
        selection.processes
    };
    fn list<P>(state: &AppState, snap: &Snapshot, total: usize, processes: Vec<P>) -> ProcList<P> {
        ProcList {
            host: state.name.to_string(),
            dc: state.dc.to_string(),
            sampled_at: snap.sampled_at.clone(),
            total,
            processes,
        }
    }
    let body = if query.fields.is_some() {
        let projected: Vec<_> = chosen.iter().map(|p| query.project(p)).collect();
        to_json(&list(state, snap, selection.total, projected))?
    } else {
        to_json(&list(state, snap, selection.total, chosen))?
    };
    if !query.threads {
        state.responses.put(snap.seq, key, &body);
    }
    Ok(json_bytes(body))
}

/// The process table, filtered, sorted, limited and projected.
#[utoipa::path(get, path = "/v1/proc", tag = "processes",
    params(
        ("pid" = Option<String>, Query, description = "pid, or comma list"),
        ("ppid" = Option<String>, Query, description = "parent pid, or comma list"),
        ("user" = Option<String>, Query, description = "user name or uid"),
        ("cmd" = Option<String>, Query, description = "substring of the command name or command line"),
        ("container" = Option<String>, Query, description = "container id prefix, or `none`"),
        ("state" = Option<String>, Query, description = "state letters, e.g. R or RD"),
        ("q" = Option<String>, Query, description = "filter expression, e.g. `cpu > 5 and user == \"www\" and cmdline ~ \"php\"`"),
        ("sort" = Option<String>, Query, description = "field, `-` prefix for descending; comma list for ties"),
        ("limit" = Option<usize>, Query, description = "at most this many rows (total still counts all matches)"),
        ("fields" = Option<String>, Query, description = "comma list: projection"),
        ("threads" = Option<bool>, Query, description = "list threads of the matching processes"),
        ("kernel" = Option<bool>, Query, description = "include kernel threads"),
    ),
    responses(
        (status = 200, body = dcos_core::model::ProcList),
        (status = 400, description = "bad parameter or q expression (with `position`)", body = dcos_core::model::ErrorBody),
        (status = 401, body = dcos_core::model::ErrorBody)))]
pub async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let key = format!("/v1/proc?{}", raw.as_deref().unwrap_or(""));
    let snap = state.sampler.current().await;
    if let Some(answer) = cached(&state, &snap, &key) {
        return Ok(answer);
    }
    answer_list(state, snap, query_pairs(raw)?, key).await
}

/// Same as `/v1/proc?cmd={name}`.
#[utoipa::path(get, path = "/v1/proc/cmd/{name}", tag = "processes",
    params(("name" = String, Path, description = "substring of the command name or line")),
    responses((status = 200, body = dcos_core::model::ProcList), (status = 400, body = dcos_core::model::ErrorBody)))]
pub async fn by_cmd(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let key = format!("/v1/proc/cmd/{name}?{}", raw.as_deref().unwrap_or(""));
    let snap = state.sampler.current().await;
    if let Some(answer) = cached(&state, &snap, &key) {
        return Ok(answer);
    }
    let mut pairs = query_pairs(raw)?;
    pairs.push(("cmd".into(), name));
    answer_list(state, snap, pairs, key).await
}

/// One process with its open files, limits and namespaces; 404 once it is gone.
#[utoipa::path(get, path = "/v1/proc/{pid}", tag = "processes",
    params(("pid" = i32, Path, description = "process id")),
    responses((status = 200, body = dcos_core::model::ProcessDetail), (status = 404, body = dcos_core::model::ErrorBody)))]
pub async fn one(State(state): State<AppState>, Path(pid): Path<String>) -> Result<Response, ApiError> {
    let pid = canonical_pid(&pid)
        .ok_or_else(|| ApiError::bad_request("bad_pid", format!("{pid:?} is not a process id")))?;
    let root = state.sampler.proc_root.clone();
    let alive = || root.join(pid.to_string()).exists();
    let mut snap = state.sampler.current().await;
    if snap.find(pid).is_none() && alive() {
        // Started since the last sample: take a new one rather than answer 404.
        snap = state.sampler.refresh().await;
    }
    let process: Process = snap
        .find(pid)
        .filter(|_| alive())
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no process {pid} on {}", state.name)))?;
    let detail = tokio::task::spawn_blocking(move || ProcessDetail {
        fds: detail::fds(&root, pid, 4096),
        limits: detail::limits(&root, pid),
        namespaces: detail::namespaces(&root, pid),
        environ_readable: std::fs::File::open(root.join(pid.to_string()).join("environ")).is_ok(),
        process,
    })
    .await?;
    Ok(json(&detail))
}

/// A process id written as the kernel writes it: decimal digits, no sign, no leading zero,
/// above 0. `+1` and `01` are not ids (one resource, one name).
fn canonical_pid(text: &str) -> Option<i32> {
    let digits = text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    digits.then(|| text.parse().ok()).flatten().filter(|p: &i32| *p > 0)
}

/// The host summary and the top processes (default `sort=-cpu`, `limit=20`); with
/// `watch=true`, a stream of them, one a sample (see [`watch_top`]).
#[utoipa::path(get, path = "/v1/top", tag = "processes",
    params(
        ("sort" = Option<String>, Query, description = "default -cpu"),
        ("limit" = Option<usize>, Query, description = "default 20"),
        ("q" = Option<String>, Query, description = "filter expression as for /v1/proc"),
        ("watch" = Option<bool>, Query, description = "true: `application/x-ndjson`, one document a line, the first at once and then one per new sample (at most one per sample interval) until the client closes"),
    ),
    responses((status = 200, body = dcos_core::model::Top), (status = 400, body = dcos_core::model::ErrorBody)))]
pub async fn top(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let key = format!("/v1/top?{}", raw.as_deref().unwrap_or(""));
    let mut pairs = query_pairs(raw)?;
    let watch = take_watch(&mut pairs)?;
    let snap: Arc<Snapshot> = state.sampler.current().await;
    if !watch {
        if let Some(answer) = cached(&state, &snap, &key) {
            return Ok(answer);
        }
    }
    for (k, v) in [("sort", "-cpu"), ("limit", "20")] {
        if !pairs.iter().any(|(pk, _)| pk == k) {
            pairs.push((k.into(), v.into()));
        }
    }
    let first = state.clone();
    let watch_key = key.clone();
    // `/v1/top` lists no threads: a plain query runs on the worker ([`plain`]).
    let inline = plain(&pairs, &snap);
    let answer = move || {
        let query = ProcQuery::from_query(&pairs)?;
        if query.fields.is_some() || query.threads {
            return Err(ApiError::bad_request(
                "bad_query",
                "/v1/top takes neither fields nor threads; use /v1/proc",
            ));
        }
        let body = render_top(&first, &snap, &query, key)?;
        Ok((query, body))
    };
    let (query, body) = match inline {
        true => answer()?,
        false => tokio::task::spawn_blocking(answer).await??,
    };
    if !watch {
        return Ok(json_bytes(body));
    }
    Ok(watch_top(state, query, body, watch_key))
}

/// Removes `watch` from `pairs`: whether it is `true` (400 unless `true` or `false`).
fn take_watch(pairs: &mut Vec<(String, String)>) -> Result<bool, ApiError> {
    let mut watch = false;
    for (_, v) in pairs.iter().filter(|(k, _)| k == "watch") {
        watch = match v.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("watch: {other:?} is not true or false"),
                ))
            }
        };
    }
    pairs.retain(|(k, _)| k != "watch");
    Ok(watch)
}

/// The `/v1/top` document of `query` over `snap`, kept for identical requests (under `key`,
/// the request's own query string) until the next sample.
fn render_top(state: &AppState, snap: &Snapshot, query: &ProcQuery, key: String) -> Result<Bytes, ApiError> {
    if let Some(body) = state.responses.get(snap.seq, &key) {
        return Ok(body);
    }
    let selection = select(query, snap)?;
    let body = to_json(&TopRef { host: &snap.host, processes: selection.processes })?;
    state.responses.put(snap.seq, key, &body);
    Ok(body)
}

/// `/v1/top?watch=true`: `first` (the current sample's document) at once, then the
/// document of each new sample, one a line. A sample is asked for one interval after the
/// last one sent, so a watched host is sampled at its interval; a sample the sampler does
/// not take (it is stuck) sends nothing, and a client waiting for the next line sees the
/// host fall silent. The stream ends when the client closes the connection, or k2i shuts
/// down.
fn watch_top(state: AppState, query: ProcQuery, first: Bytes, key: String) -> Response {
    let interval = state.sampler.interval();
    let start = state.sampler.peek();
    let lines = futures::stream::unfold(
        (state, query, key, Some(first), start.seq, start.taken),
        move |(state, query, key, first, mut seq, mut taken)| async move {
            if let Some(body) = first {
                return Some((
                    Ok::<_, std::convert::Infallible>(line(body)),
                    (state, query, key, None, seq, taken),
                ));
            }
            let mut closing = state.closing.subscribe();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until((taken + interval + state.watch_offset).into()) => {}
                    _ = closing.wait_for(|c| *c) => return None,
                }
                let mut snap = state.sampler.current().await;
                if snap.seq <= seq {
                    snap = state.sampler.refresh().await;
                }
                if snap.seq <= seq {
                    // No new sample within the refresh's wait: ask again an interval on.
                    taken = std::time::Instant::now();
                    continue;
                }
                (seq, taken) = (snap.seq, snap.taken);
                // The query was checked on the first document; a later failure (its cost
                // on a much larger table) ends the stream.
                let body = render_top(&state, &snap, &query, key.clone()).ok()?;
                return Some((Ok(line(body)), (state, query, key, None, seq, taken)));
            }
        },
    );
    ([(CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(lines)).into_response()
}

/// `body` and a newline.
fn line(body: Bytes) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.extend_from_slice(&body);
    out.push(b'\n');
    Bytes::from(out)
}

/// `dcos_core::model::Top` by reference, so the snapshot is not copied.
#[derive(serde::Serialize)]
struct TopRef<'a> {
    host: &'a dcos_core::model::HostSummary,
    processes: Vec<&'a Process>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pid_is_canonical_decimal() {
        assert_eq!(super::canonical_pid("1"), Some(1));
        assert_eq!(super::canonical_pid("4194304"), Some(4_194_304));
        for bad in ["+1", "01", "0", "-1", "", " 1", "1 ", "1e3", "99999999999", "٣"] {
            assert_eq!(super::canonical_pid(bad), None, "{bad:?}");
        }
    }
}
