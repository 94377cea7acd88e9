//! Evacuation: every workload this host owns moved to live peers chosen by their load
//! ([`plan`]), a few at a time, with no central scheduler.

use super::{MigratePhase, MoveSpec, Mover, Summary};
use crate::workloads::WorkloadError;
use std::sync::Arc;

/// Picks a target for each of `names` among `candidates` (name, load; unknown load last),
/// spreading them: each goes to the candidate with the lowest load plus the workloads it
/// was already given, among those that `fits` (workload, host): that have its runtime
/// class. A workload no candidate fits goes to the best of all (its migration then says
/// what the target lacks).
pub fn plan(
    names: &[String],
    candidates: &[(String, Option<f64>)],
    fits: impl Fn(&str, &str) -> bool,
) -> Vec<(String, String)> {
    let mut given = vec![0usize; candidates.len()];
    names
        .iter()
        .filter_map(|n| {
            let fitting: Vec<usize> = (0..candidates.len()).filter(|&i| fits(n, &candidates[i].0)).collect();
            let among = if fitting.is_empty() { (0..candidates.len()).collect() } else { fitting };
            let best = among.into_iter().min_by(|&a, &b| {
                let score = |i: usize| candidates[i].1.unwrap_or(1e9) + given[i] as f64;
                score(a).total_cmp(&score(b)).then(candidates[a].0.cmp(&candidates[b].0))
            })?;
            given[best] += 1;
            Some((n.clone(), candidates[best].0.clone()))
        })
        .collect()
}

/// One workload's move in an evacuation, as it is reported: where to, how it went.
pub trait Report: Send + Sync + 'static {
    /// `name` moves to `to` in phase `phase`, `sent` of `total` bytes.
    fn progress(&self, name: &str, to: &str, phase: MigratePhase, sent: u64, total: u64);
    /// `name`'s move to `to` ended.
    fn finished(
        &self,
        name: &str,
        to: &str,
        result: Result<Summary, WorkloadError>,
    ) -> impl std::future::Future<Output = ()> + Send;
}

impl Mover {
    /// The moves that would empty this host, only to `only` if not empty: (workload,
    /// target). Refused when there are workloads and no live peer to take them.
    pub fn evacuation(&self, only: &[String]) -> Result<Vec<(String, String)>, WorkloadError> {
        let host = &self.workloads.host;
        // Service instances are not moved: the service's other hosts take their connections.
        let names: Vec<String> = self
            .workloads
            .owned()
            .into_iter()
            .filter(|n| self.workloads.get(n).is_some_and(|r| r.service.is_none()))
            .collect();
        let candidates: Vec<(String, Option<f64>)> = self
            .peers
            .live()
            .into_iter()
            .filter(|(n, _)| n != host && (only.is_empty() || only.contains(n)))
            .collect();
        if !names.is_empty() && candidates.is_empty() {
            return Err(WorkloadError::Precondition(format!(
                "no live peer of {host} can take its workloads{}",
                if only.is_empty() { String::new() } else { format!(" among {}", only.join(", ")) }
            )));
        }
        let class = |name: &str| {
            let runtime = self.workloads.get(name).map(|r| r.runtime).unwrap_or_default();
            std::path::Path::new(&runtime).file_name().map(|f| f.to_string_lossy().into_owned())
        };
        let fits = |name: &str, to: &str| match (class(name), self.peers.runtimes(to)) {
            (Some(c), Some(has)) => has.contains(&c),
            _ => true,
        };
        Ok(plan(&names, &candidates, fits))
    }

    /// Makes the moves of `plan`, `parallel` at a time, each reported to `report`.
    pub async fn evacuate(
        &self,
        plan: Vec<(String, String)>,
        parallel: usize,
        bwlimit: u64,
        live: bool,
        report: Arc<impl Report>,
    ) {
        let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut moves = tokio::task::JoinSet::new();
        for (name, to) in plan {
            let (mover, limit, report) = (self.clone(), limit.clone(), report.clone());
            moves.spawn(async move {
                let _slot = limit.acquire_owned().await;
                report.progress(&name, &to, MigratePhase::Reserve, 0, 0);
                let m = MoveSpec { name, to, bwlimit, live, runtime: String::new() };
                let (name, to) = (m.name.clone(), m.to.clone());
                let result = match mover.prepare(&m).await {
                    Ok(p) => {
                        mover
                            .execute(p, &|phase, sent, total| report.progress(&name, &to, phase, sent, total))
                            .await
                    }
                    Err(e) => Err(e),
                };
                report.finished(&name, &to, result).await;
            });
        }
        while moves.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evacuation_spreads_by_load() {
        let names: Vec<String> = (1..=5).map(|i| format!("w{i}")).collect();
        let c =
            vec![("a".to_string(), Some(0.1)), ("b".to_string(), Some(0.2)), ("busy".to_string(), Some(8.0))];
        let p = plan(&names, &c, |_, _| true);
        let to_a = p.iter().filter(|(_, t)| t == "a").count();
        let to_b = p.iter().filter(|(_, t)| t == "b").count();
        assert_eq!((to_a, to_b, p.len()), (3, 2, 5), "{p:?}");
        assert!(plan(&names, &[], |_, _| true).is_empty());
        let unknown = plan(&names[..1], &[("x".into(), None), ("y".into(), Some(3.0))], |_, _| true);
        assert_eq!(unknown[0].1, "y", "a known load beats an unknown one");
    }

    #[test]
    fn evacuation_sends_a_workload_only_where_its_runtime_class_is() {
        let names: Vec<String> = ["sandboxed", "plain"].map(String::from).to_vec();
        let c = vec![("idle".to_string(), Some(0.0)), ("busy".to_string(), Some(5.0))];
        // Only `busy` has runsc: the sandboxed workload goes there despite the load.
        let fits = |n: &str, h: &str| n != "sandboxed" || h == "busy";
        let p = plan(&names, &c, fits);
        assert_eq!(p, [("sandboxed".into(), "busy".into()), ("plain".into(), "idle".into())]);
        // Nobody has it: the best of all, whose refusal then names what it lacks.
        let p = plan(&names[..1], &c, |_, _| false);
        assert_eq!(p, [("sandboxed".to_string(), "idle".to_string())]);
    }
}
