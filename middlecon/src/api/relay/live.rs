//! A refreshing `dcos top` through a relay (`FanOutRequest.live_ms`): the relay watches each
//! host (k2i's `/v1/top?watch=true`: one document a sample over a connection held open)
//! and answers the next identical requests at once from the latest documents.
//!
//! - A session is one operator's (name and role) query over one list of hosts. The first
//!   request starts it and is answered once every host has sent its first document or
//!   failed, or at its deadline; later ones are answered from what the session holds.
//! - It lives while requests keep coming: until none has come for `live_ms` (at least
//!   [`LINGER`], also after a last frame's `live_ms` 0) since the last answer was sent. Then
//!   its watches are dropped, closing their connections.
//! - Each document is parsed as it arrives only as far as a merge needs ([`TopDoc`]: the
//!   host's name and where each row is), so an answer merges at once, decoding only the rows
//!   that may be among the first `limit` (`k2i_client::merge::select_raw`); a document that
//!   does not parse fails the watch (`http_error`), which is opened again.
//! - Every host has a status in every answer, never an old document passed off as new: `ok`
//!   with `age_ms` (how long ago the relay received it) while its last document is younger
//!   than the request's timeout; `timeout` once it has been silent for longer; the failure
//!   (`unreachable`, `refused`, `tls_error`, `http_error`) while its watch is down, which is
//!   retried every [`RETRY`].
//! - At most [`MAX_SESSIONS`] at once; past that a live request is answered by asking every
//!   host, as without `live_ms`.
//! - The watches run on a thread of their own ([`watch_runtime`]): a sample reaches a
//!   thousand hosts at about the same moment, and their documents then arrive together; an
//!   answer to the next frame must not queue behind them on the API's thread.

use super::{Host, TopDoc};
use k2i_client::fanout::HostReport;
use k2i_client::K2iClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Sessions a relay keeps at once.
pub const MAX_SESSIONS: usize = 8;
/// How long a session lives after its last answer went out, whatever `live_ms` (0 in a
/// last frame): ending a session closes every watch, a burst of work for the relay and its
/// hosts that would otherwise hold up the other relays' answers to the same frame; and a
/// `dcos top --once` repeated meanwhile finds the session warm.
pub const LINGER: Duration = Duration::from_millis(1500);
/// How long a host's watch waits to be opened again after it failed or ended.
pub const RETRY: Duration = Duration::from_secs(1);

/// Who asks what of whom: identical requests share a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub operator: String,
    pub role: String,
    pub query: String,
    /// Each host's name and k2i URL, in the request's order.
    pub hosts: Vec<(String, String)>,
}

/// What a session holds of one host.
enum Latest {
    /// Nothing yet.
    Waiting,
    /// Its last document (undecoded: only what a merge keeps is decoded), when the relay
    /// received it, and how long the watch took to send its first one.
    Doc { doc: Arc<TopDoc>, at: Instant, elapsed_ms: u64 },
    /// Its watch failed (or ended) and is not open again yet.
    Failed { status: &'static str, error: String, elapsed_ms: u64 },
}

/// One live query.
pub struct Session {
    latest: Mutex<Vec<Latest>>,
    /// How many hosts have had a first outcome (the first answer waits for all of them).
    settled: watch::Sender<usize>,
    /// When the last answer went out, and how long to live after it (zero: end now).
    asked: Mutex<(Instant, Duration)>,
    /// Told when `asked` changes.
    touched: Notify,
}

/// A relay's live sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<Key, Arc<Session>>>,
}

/// How one host stands in an answer: its report, and its `/v1/top` document if `ok`.
pub type Standing = (HostReport, Option<Arc<TopDoc>>);

impl Sessions {
    /// The session of `key`, started if there is none (`None` when [`MAX_SESSIONS`] are
    /// running, or no session can run): its watches ask `path` of every host with
    /// `headers`, a watch's head waited for at most `timeout`.
    pub fn session(
        self: &Arc<Self>,
        key: &Key,
        client: &K2iClient,
        path: &str,
        headers: &[(&'static str, String)],
        timeout: Duration,
    ) -> Option<(Arc<Session>, bool)> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(key) {
            return Some((s.clone(), false));
        }
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        let runtime = watch_runtime()?;
        let hosts = key.hosts.len();
        let session = Arc::new(Session {
            latest: Mutex::new((0..hosts).map(|_| Latest::Waiting).collect()),
            settled: watch::channel(0).0,
            asked: Mutex::new((Instant::now(), timeout + RETRY)),
            touched: Notify::new(),
        });
        map.insert(key.clone(), session.clone());
        let mut watches = JoinSet::new();
        for (i, (name, k2i)) in key.hosts.iter().enumerate() {
            let watch = Watch {
                session: session.clone(),
                index: i,
                client: client.clone(),
                host: Host { name: name.clone(), k2i: k2i.clone() },
                path: path.to_string(),
                headers: headers.to_vec(),
                timeout,
            };
            watches.spawn_on(watch.run(), runtime);
        }
        runtime.spawn(self.clone().reap(key.clone(), session.clone(), watches));
        Some((session, true))
    }

    /// Ends `session` (dropping its watches) once no answer has gone out for its live time.
    async fn reap(self: Arc<Self>, key: Key, session: Arc<Session>, watches: JoinSet<()>) {
        loop {
            let (at, live) = *session.asked.lock().unwrap_or_else(|e| e.into_inner());
            if at.elapsed() >= live {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at + live) => {}
                _ = session.touched.notified() => {}
            }
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &session)) {
            map.remove(&key);
        }
        drop(map);
        drop(watches);
    }

    /// The session of `key`, if one is running.
    pub fn get(&self, key: &Key) -> Option<Arc<Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }
}

/// The runtime the sessions' watches run on: one thread, started with the first session
/// and kept for the life of the process (`None` if it cannot start: then live requests ask
/// every host). A watch's client connections are opened there and served by its reactor.
fn watch_runtime() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    let start = || -> std::io::Result<tokio::runtime::Handle> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("relay-watches".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        Ok(handle)
    };
    RUNTIME
        .get_or_init(|| {
            start()
                .map_err(|e| tracing::error!("no thread for live sessions ({e}): each frame asks every host"))
                .ok()
        })
        .as_ref()
}

impl Session {
    /// Waits until every host has had a first outcome, or `deadline`.
    pub async fn first(&self, hosts: usize, deadline: Instant) {
        let mut rx = self.settled.subscribe();
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|n| *n >= hosts)).await;
    }

    /// Every host's standing now, in the key's order; a document older than `timeout` is
    /// the host's `timeout`.
    pub fn answer(&self, key: &Key, timeout: Duration) -> Vec<Standing> {
        let now = Instant::now();
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let out = key
            .hosts
            .iter()
            .zip(latest.iter())
            .map(|((name, k2i), l)| {
                let report = |status, error: Option<String>, elapsed_ms, age_ms| HostReport {
                    host: name.clone(),
                    address: k2i.clone(),
                    status,
                    error,
                    elapsed_ms,
                    via: None,
                    age_ms,
                };
                match l {
                    Latest::Waiting => {
                        (report("timeout", Some(format!("no answer within {timeout:?}")), 0, None), None)
                    }
                    Latest::Doc { at, elapsed_ms, .. } if now.duration_since(*at) > timeout => {
                        let silent = now.duration_since(*at);
                        let error =
                            format!("no new sample within {timeout:?} (the last came {silent:.1?} ago)");
                        (report("timeout", Some(error), *elapsed_ms, None), None)
                    }
                    Latest::Doc { doc, at, elapsed_ms } => {
                        let age = now.duration_since(*at).as_millis() as u64;
                        (report("ok", None, *elapsed_ms, Some(age)), Some(doc.clone()))
                    }
                    Latest::Failed { status, error, elapsed_ms } => {
                        (report(status, Some(error.clone()), *elapsed_ms, None), None)
                    }
                }
            })
            .collect();
        drop(latest);
        out
    }

    /// An answer has gone out: the session lives `live` more, at least [`LINGER`].
    pub fn answered(&self, live: Duration) {
        *self.asked.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), live.max(LINGER));
        self.touched.notify_one();
    }

    fn set(&self, index: usize, value: Latest) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let first = matches!(latest[index], Latest::Waiting);
        latest[index] = value;
        drop(latest);
        if first {
            self.settled.send_modify(|n| *n += 1);
        }
    }
}

/// One host's watch.
struct Watch {
    session: Arc<Session>,
    index: usize,
    client: K2iClient,
    host: Host,
    path: String,
    headers: Vec<(&'static str, String)>,
    timeout: Duration,
}

impl Watch {
    /// Keeps the host's latest document in the session, opening the watch again after a
    /// failure, until the session drops this task.
    async fn run(self) {
        loop {
            let started = Instant::now();
            let elapsed = || started.elapsed().as_millis() as u64;
            let failure = match self
                .client
                .lines_with(&self.host.k2i, &self.path, &self.headers, self.timeout)
                .await
            {
                Err(e) => (e.status(), e.to_string(), elapsed()),
                Ok(mut lines) => {
                    let mut first_ms = None;
                    loop {
                        match lines.next().await {
                            None => break ("unreachable", "the host ended its watch".to_string(), elapsed()),
                            Some(Err(e)) => break (e.status(), format!("the watch broke: {e}"), elapsed()),
                            Some(Ok(line)) => match TopDoc::parse(&line) {
                                Ok(doc) => {
                                    let elapsed_ms = *first_ms.get_or_insert_with(elapsed);
                                    let doc = Arc::new(doc);
                                    self.session
                                        .set(self.index, Latest::Doc { doc, at: Instant::now(), elapsed_ms });
                                }
                                Err(why) => break ("http_error", why, elapsed()),
                            },
                        }
                    }
                }
            };
            let (status, error, elapsed_ms) = failure;
            self.session.set(self.index, Latest::Failed { status, error, elapsed_ms });
            tokio::time::sleep(RETRY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(query: &str, hosts: &[&str]) -> Key {
        Key {
            operator: "olivia".into(),
            role: "viewer".into(),
            query: query.into(),
            hosts: hosts.iter().map(|h| (h.to_string(), format!("https://{h}"))).collect(),
        }
    }

    #[tokio::test]
    async fn a_host_that_refuses_is_its_failure_and_sessions_end_and_are_bounded() {
        let client = K2iClient::anonymous(Arc::new(rustls::RootCertStore::empty())).unwrap();
        let sessions = Arc::new(Sessions::default());
        // Nothing listens on port 1: the watch is refused, and that is what the answer says.
        let k = key("limit=5", &["127.0.0.1:1"]);
        let t = Duration::from_secs(2);
        let (s, new) = sessions.session(&k, &client, "/v1/top?watch=true", &[], t).unwrap();
        assert!(new);
        s.first(1, Instant::now() + t).await;
        let answer = s.answer(&k, t);
        s.answered(Duration::from_millis(200));
        assert_eq!(answer[0].0.status, "refused", "{:?}", answer[0].0);
        assert!(answer[0].0.age_ms.is_none() && answer[0].1.is_none());
        // The same request finds the same session.
        let (again, new) = sessions.session(&k, &client, "/v1/top?watch=true", &[], t).unwrap();
        assert!(!new && Arc::ptr_eq(&s, &again));
        // No request within its live time: the session ends.
        let until = Instant::now() + Duration::from_secs(5);
        while sessions.get(&k).is_some() {
            assert!(Instant::now() < until, "the session outlived its live time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // At most MAX_SESSIONS at once; past that, none (the request asks every host).
        let keys: Vec<Key> =
            (0..=MAX_SESSIONS).map(|n| key(&format!("limit={n}"), &["127.0.0.1:1"])).collect();
        for k in &keys[..MAX_SESSIONS] {
            assert!(sessions.session(k, &client, "/v1/top?watch=true", &[], t).is_some());
        }
        assert!(sessions.session(&keys[MAX_SESSIONS], &client, "/v1/top?watch=true", &[], t).is_none());
    }
}
