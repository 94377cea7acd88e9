//! `dcos ui` (SPEC section 9): the fleet in a browser, served on the operator's own machine
//! with the operator's identity. Nothing runs in the fleet for it: this process asks the
//! hosts' k2i and middlecon as the other commands do, and the page asks this process.
//!
//! - The page (`index.html`, `app.js`, `app.css`) is compiled into the binary; no CDN.
//! - Its JSON, all built from the other commands' parts: `/api/fleet` (every host's summary
//!   and the fleet's top processes through `/v1/top`, every container), `/api/host/{name}`
//!   (one host's process table), `/api/workloads` and `/api/services` (every middlecon's
//!   `List`), `/api/migrations` (those started here, with their progress, plus any workload a
//!   host reports `migrating` or `incoming`), `/api/me` (the operator's name and role), and
//!   `POST /api/migrate` (`{name, to}`; the admin role only, as the daemons require).
//! - Only this machine's browser may use it: the first line printed is the URL with a secret
//!   made for this run; opening it sets a cookie (`HttpOnly`, `SameSite=Strict`) that every
//!   `/api` request must carry. Requests whose `Host` is not the listening address (DNS
//!   rebinding) are refused, and so is a `POST` from another origin or not in JSON.

use crate::api::ApiHost;
use crate::cli::{ApiArgs, FleetArgs, Mode, TlsArgs, UiArgs};
use crate::commands::{self, Context, SetupError};
use crate::fanout::HostReport;
use crate::fleet::Target;
use crate::migration::{self, Migration, STALL};
use crate::output::with_host;
use crate::workload::{Session, WorkloadError, WorkloadItem};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dcos_core::model::{ContainerList, HostSummary};
use dcos_core::Role;
use dcos_proto::v1 as pb;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
/// The cookie that carries this run's secret.
const COOKIE: &str = "dcos_ui";
/// How long a member list from `--seed` is reused before it is asked again.
const TARGETS_FOR: Duration = Duration::from_secs(5);

/// What the handlers share.
struct Ui {
    tls: TlsArgs,
    fleet: FleetArgs,
    ctx: Mutex<(Instant, Context)>,
    session: Session,
    name: String,
    role: Role,
    secret: String,
    /// `Host` headers accepted: the listening address, and `localhost` on its port.
    hosts: [String; 2],
    top: usize,
    /// A host's name as it answered -> its k2i URL.
    k2i: Mutex<HashMap<String, String>>,
    migrations: Mutex<Vec<Arc<Mutex<Migration>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Serves the page on `args.listen` until Ctrl-C or SIGTERM.
pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &UiArgs) -> Result<u8, WorkloadError> {
    let ctx = Context::new(tls, fleet).await?;
    let identity = commands::identity(tls)?;
    let session = Session::new(tls, fleet, &ApiArgs { api: None, socket: None })?;
    let secret = dcos_core::tokens::generate().map_err(|e| SetupError::Tls(format!("a secret: {e}")))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| SetupError::Usage(format!("--listen {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(|e| SetupError::Usage(e.to_string()))?;
    let ui = Arc::new(Ui {
        tls: tls.clone(),
        fleet: fleet.clone(),
        ctx: Mutex::new((Instant::now(), ctx)),
        session,
        name: identity.peer.name.clone(),
        role: identity.peer.role,
        secret,
        hosts: [addr.to_string(), format!("localhost:{}", addr.port())],
        top: args.top.clamp(1, 1000),
        k2i: Mutex::default(),
        migrations: Mutex::default(),
    });
    println!("dcos ui: open http://{addr}/?token={}", ui.secret);
    eprintln!("dcos ui: serving the fleet as {} ({}); Ctrl-C stops it", ui.name, ui.role);
    let app = router(ui);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| SetupError::Usage(format!("serving: {e}")))?;
    Ok(crate::exit::OK)
}

fn router(ui: Arc<Ui>) -> Router {
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/fleet", get(fleet))
        .route("/api/host/{name}", get(host))
        .route("/api/workloads", get(workloads))
        .route("/api/services", get(services))
        .route("/api/migrations", get(migrations))
        .route("/api/migrate", post(migrate))
        .layer(middleware::from_fn_with_state(ui.clone(), guard));
    let text = |kind: &'static str, body: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, kind)], body) })
    };
    Router::new()
        .route("/", get(index))
        .route("/app.js", text("text/javascript; charset=utf-8", APP_JS))
        .route("/app.css", text("text/css; charset=utf-8", APP_CSS))
        .merge(api)
        .with_state(ui)
}

fn has_cookie(ui: &Ui, headers: &HeaderMap) -> bool {
    let want = format!("{COOKIE}={}", ui.secret);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(';').any(|c| c.trim() == want))
}

/// The page; opened with this run's `?token=`, it also sets the cookie the API wants.
async fn index(
    State(ui): State<Arc<Ui>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let page = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX);
    if q.get("token") == Some(&ui.secret) {
        let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", ui.secret);
        return ([(header::SET_COOKIE, cookie)], page).into_response();
    }
    if has_cookie(&ui, &headers) {
        return page.into_response();
    }
    let text = "open the URL `dcos ui` printed (it carries this run's secret)";
    (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// Every `/api` request: from this machine's page (its `Host`, the cookie; a `POST` from the
/// page's own origin, in JSON).
async fn guard(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !ui.hosts.iter().any(|h| h == host) {
        return error(StatusCode::FORBIDDEN, format!("Host {host:?} is not this page's"));
    }
    if !has_cookie(&ui, headers) {
        return error(StatusCode::UNAUTHORIZED, "open the URL `dcos ui` printed");
    }
    if req.method() == Method::POST {
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        if origin != format!("http://{host}") || !json {
            return error(StatusCode::FORBIDDEN, "changes come from this page only, as JSON");
        }
    }
    next.run(req).await
}

async fn me(State(ui): State<Arc<Ui>>) -> Json<Value> {
    Json(json!({ "name": ui.name, "role": ui.role.to_string(), "admin": ui.role == Role::Admin }))
}

/// The selected hosts' k2i, asked again through `--seed` every [`TARGETS_FOR`].
async fn context(ui: &Ui) -> Context {
    let (at, current) = {
        let c = lock(&ui.ctx);
        (
            c.0,
            Context {
                targets: c.1.targets.clone(),
                fanout: c.1.fanout.clone(),
                format: c.1.format,
                relays: c.1.relays.clone(),
            },
        )
    };
    if ui.fleet.seed.is_none() || at.elapsed() < TARGETS_FOR {
        return current;
    }
    match commands::select_targets(&ui.tls, &ui.fleet).await {
        Ok(targets) => {
            let mut c = lock(&ui.ctx);
            c.0 = Instant::now();
            c.1.targets = targets.clone();
            Context { targets, ..current }
        }
        Err(_) => current,
    }
}

fn reports_json(reports: &[HostReport]) -> Value {
    serde_json::to_value(reports).unwrap_or_default()
}

/// Every host's summary, the fleet's top processes and every container, asked at once.
async fn fleet(State(ui): State<Arc<Ui>>) -> Json<Value> {
    let ctx = context(&ui).await;
    let sort = dcos_query::parse_sort("-cpu").unwrap_or_default();
    let started = Instant::now();
    let (frame, containers) = tokio::join!(
        commands::top::fetch(&ctx, &sort, "-cpu", ui.top, std::time::Duration::ZERO),
        ctx.all_answers::<ContainerList>(k2i_client::fanout::Read::Containers, "")
    );
    {
        let mut k2i = lock(&ui.k2i);
        for r in frame.reports.iter().filter(|r| r.ok()) {
            k2i.insert(r.host.clone(), r.address.clone());
        }
    }
    let hosts: Vec<Value> =
        frame.hosts.iter().map(|(n, h): &(String, HostSummary)| with_host(n, h)).collect();
    let processes: Vec<Value> = frame.processes.iter().map(|(n, p)| with_host(n, p)).collect();
    let containers: Vec<Value> = containers
        .into_iter()
        .filter_map(|a| a.value)
        .flat_map(|l| l.containers.iter().map(|c| with_host(&l.host, c)).collect::<Vec<_>>())
        .collect();
    Json(json!({
        "hosts": reports_json(&frame.reports),
        "summaries": hosts,
        "processes": processes,
        "containers": containers,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
}

/// One host's process table (by the name it answered with).
async fn host(State(ui): State<Arc<Ui>>, Path(name): Path<String>) -> Response {
    let Some(url) = lock(&ui.k2i).get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no host {name:?} answered"));
    };
    let ctx = context(&ui).await;
    let target =
        Target { name: name.clone(), dc: String::new(), labels: Default::default(), k2i: url, api: None };
    let answer = ctx.fanout.get_all::<Value>(&[target], |_| "/v1/proc?sort=-cpu&limit=300".into()).await;
    match answer.into_iter().next() {
        Some(a) if a.value.is_some() => Json(a.value.unwrap_or_default()).into_response(),
        Some(a) => error(StatusCode::BAD_GATEWAY, format!("{name}: {}", a.report.error.unwrap_or_default())),
        None => error(StatusCode::NOT_FOUND, name),
    }
}

async fn api_hosts(ui: &Ui) -> Result<Vec<ApiHost>, Response> {
    crate::api::hosts(&ui.tls, &ui.fleet, &ApiArgs { api: None, socket: None })
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

async fn workloads(State(ui): State<Arc<Ui>>) -> Response {
    let hosts = match api_hosts(&ui).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let listed = ui.session.list_all(&hosts).await;
    let reports: Vec<HostReport> = listed.iter().map(|l| l.report.clone()).collect();
    let items: Vec<WorkloadItem> =
        listed.iter().flat_map(|l| l.workloads.iter().map(|w| WorkloadItem::new(w, &l.host.name))).collect();
    Json(json!({ "hosts": reports_json(&reports), "workloads": items })).into_response()
}

async fn services(State(ui): State<Arc<Ui>>) -> Response {
    let hosts = match api_hosts(&ui).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let answers = commands::service::list_all(&ui.session, &hosts).await;
    let reports: Vec<HostReport> = answers.iter().map(|a| a.report.clone()).collect();
    let items = commands::service::ls::summarize(&answers);
    Json(json!({ "hosts": reports_json(&reports), "services": items })).into_response()
}

fn migration_json(m: &Migration) -> Value {
    json!({
        "workload": m.workload, "from": m.from, "to": m.to, "status": m.status,
        "phase": m.phase, "bytes_sent": m.bytes_sent, "bytes_total": m.bytes_total,
        "downtime_ms": m.downtime_ms, "elapsed_ms": m.elapsed_ms, "epoch": m.epoch,
        "error": m.error, "error_code": m.error_code,
    })
}

async fn migrations(State(ui): State<Arc<Ui>>) -> Json<Value> {
    let list: Vec<Value> = lock(&ui.migrations).iter().rev().map(|m| migration_json(&lock(m))).collect();
    Json(json!({ "migrations": list }))
}

#[derive(serde::Deserialize)]
struct MigrateBody {
    name: String,
    to: String,
}

/// Starts moving a workload (admin only); its progress shows in `/api/migrations`.
async fn migrate(State(ui): State<Arc<Ui>>, Json(body): Json<MigrateBody>) -> Response {
    if ui.role != Role::Admin {
        return error(
            StatusCode::FORBIDDEN,
            format!("{} has the {} role; migrating needs admin", ui.name, ui.role),
        );
    }
    let hosts = match api_hosts(&ui).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let from = match ui.session.locate(&body.name, &hosts, "a source host").await {
        Ok((from, _)) => from,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if from.name == body.to {
        return error(StatusCode::BAD_REQUEST, format!("{} is already on {}", body.name, body.to));
    }
    let view = Arc::new(Mutex::new(Migration::new(&body.name, &from.name, &body.to, Mode::Cold.as_str())));
    lock(&ui.migrations).push(view.clone());
    let started = migration_json(&lock(&view));
    tokio::spawn(follow(ui, from, body, view));
    (StatusCode::ACCEPTED, Json(json!({ "migration": started }))).into_response()
}

/// Runs one migration from `from`, its progress applied to `view` as it comes.
async fn follow(ui: Arc<Ui>, from: ApiHost, body: MigrateBody, view: Arc<Mutex<Migration>>) {
    let fail = |code: &str, message: String| lock(&view).fail(code, message);
    let mut client = match ui.session.client(&from, Instant::now() + ui.session.timeout).await {
        Ok(c) => c,
        Err(f) => {
            let (code, message) = f.describe(&from);
            return fail(code, message);
        }
    };
    let request = pb::MigrateRequest {
        name: body.name,
        to: body.to,
        mode: migration::mode(Mode::Cold),
        bwlimit: 0,
        runtime: String::new(),
    };
    let mut stream = match migration::open(client.migrate(request), STALL).await {
        Ok(s) => s,
        Err(migration::End::Status(s)) => {
            let (code, message) = crate::workload::status_parts(&s);
            return fail(code, message.to_string());
        }
        Err(_) => return fail("stalled", format!("no answer for {}s", STALL.as_secs())),
    };
    loop {
        match tokio::time::timeout(STALL, stream.next()).await {
            Ok(Some(Ok(p))) => {
                let mut m = lock(&view);
                m.apply(&p);
                if m.finished() {
                    return;
                }
            }
            Ok(Some(Err(s))) => {
                let (code, message) = crate::workload::status_parts(&s);
                return fail("interrupted", format!("{code}: {message}"));
            }
            Ok(None) => return fail("interrupted", "the stream ended before the migration finished".into()),
            Err(_) => return fail("stalled", format!("no progress for {}s", STALL.as_secs())),
        }
    }
}
