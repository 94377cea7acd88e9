//! The source side of a migration: [`Mover::prepare`] checks and claims the workload and has
//! the target reserve room; [`Mover::execute`] freezes, copies, has the target start it and
//! deletes it here. Any failure before the target was asked to start it resumes the
//! workload here; a lost answer to `start` is settled before anything is decided.

use super::{decode, Attempt, MigratePhase, MoveSpec, Mover, Progress, Received, Reserve, Summary, Verdict};
use crate::workloads::record::Phase;
use crate::workloads::runtime::RuntimeError;
use crate::workloads::{bundle, classes, rootfs, ContainerStatus, Record, WorkloadError};
use std::time::Instant;

/// A migration whose target has reserved room ([`Mover::prepare`]).
pub struct Prepared {
    pub name: String,
    pub to: String,
    epoch: u64,
    runtime: String,
    bytes_estimate: u64,
    bwlimit: u64,
    reserve_ms: u64,
}

impl Prepared {
    fn attempt(&self) -> Attempt {
        Attempt { name: self.name.clone(), epoch: self.epoch }
    }
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

impl Mover {
    /// Puts `name` back into `Owned` after a failed attempt at `epoch` (the epoch stays
    /// used) and, if `resume`, thaws the container.
    pub(super) async fn undo(&self, name: &str, epoch: u64, resume: bool) {
        let w = &self.workloads;
        if resume {
            if let Some(r) = w.get(name) {
                if let Err(e) = w.containers().thaw(name, &r.runtime).await {
                    tracing::error!(workload = %name, "resuming after a failed migration: {e}");
                }
            }
        }
        let next = w.update(name, |cur| {
            let mut r = cur.cloned().ok_or_else(|| WorkloadError::Io("record vanished".into()))?;
            r.phase = Phase::Owned;
            r.epoch = r.epoch.max(epoch);
            Ok((Some(r.clone()), r))
        });
        if let Ok(r) = next {
            if let Err(e) = w.save(&r).await {
                tracing::error!(workload = %name, "saving after a failed migration: {e}");
            }
        }
    }

    /// Checks and claims workload `m.name` for a migration to `m.to` and has the target
    /// reserve room. On error nothing has changed (the workload runs on here).
    pub async fn prepare(&self, m: &MoveSpec) -> Result<Prepared, WorkloadError> {
        let w = &self.workloads;
        if m.live {
            return Err(live_refusal(&w.host).await);
        }
        if m.to.is_empty() {
            return Err(WorkloadError::Invalid("a target host is required (--to HOST)".into()));
        }
        if m.to == w.host {
            return Err(WorkloadError::Invalid(format!("{} is already on {}", m.name, w.host)));
        }
        self.peers.check(&m.to)?;
        let class = self.target_class(m)?;
        let (name, to, host) = (m.name.clone(), m.to.clone(), w.host.clone());
        let (record, epoch) = w.update(&name, |cur| match cur {
            None => Err(WorkloadError::NotFound { name: name.clone(), host: host.clone() }),
            Some(Record { service: Some(service), .. }) => Err(WorkloadError::Precondition(format!(
                "{name} is an instance of service {service}: instances are renewed, not moved \
                 (the service's fronts on other hosts take its connections)"
            ))),
            Some(r) => match &r.phase {
                Phase::MigratingOut { to: t, epoch, .. } => Err(WorkloadError::Conflict(format!(
                    "{name} is already migrating from {host} to {t} (epoch {epoch})"
                ))),
                p if !p.can_migrate() => {
                    Err(WorkloadError::Conflict(format!("{name} cannot move now ({})", p.word())))
                }
                _ => {
                    let epoch = r.epoch + 1;
                    let mut next = r.clone();
                    next.phase = Phase::MigratingOut { to: to.clone(), epoch, committed: false };
                    Ok((Some(next), (r.clone(), epoch)))
                }
            },
        })?;
        let started = Instant::now();
        let reserved = async {
            match w.container_status(&record) {
                ContainerStatus::Running(_) => {}
                other => {
                    return Err(WorkloadError::Precondition(format!(
                        "{name} is not running on {host} ({})",
                        other.word()
                    )))
                }
            }
            if !rootfs::readable(&w.workload_dir(&name)) {
                return Err(WorkloadError::Precondition(format!(
                    "the root filesystem of {name} is an overlay this middlecon does not see mounted \
                     (restarted in another mount namespace?): restart middlecon where the workload was started"
                )));
            }
            let (bytes, entries) = bundle::tree_size(&w.rootfs(&name));
            let estimate = bytes + entries * 1024 + 1024;
            let mut sent = record.clone();
            if !m.runtime.is_empty() {
                sent.runtime = m.runtime.clone();
            }
            let reserve = Reserve { record: sent, epoch, from: host.clone(), bytes: estimate };
            self.ask(&to, super::RESERVE, &reserve, self.timings.reserve_wait).await?;
            Ok(estimate)
        }
        .await;
        tracing::debug!(workload = %name, %to, class, "runtime class on the target");
        match reserved {
            Ok(bytes_estimate) => Ok(Prepared {
                name,
                to,
                epoch,
                runtime: record.runtime,
                bytes_estimate,
                bwlimit: m.bwlimit,
                reserve_ms: ms(started),
            }),
            Err(e) => {
                self.undo(&m.name, epoch, false).await;
                Err(e)
            }
        }
    }

    /// The runtime class workload `m.name` is to run with on `m.to` (`m.runtime`, else the
    /// one it has), checked against the classes the target gossips: a class it lacks is
    /// refused here, naming the class and the host, before anything is claimed or sent. A
    /// target whose classes are not known yet checks for itself when it reserves.
    fn target_class(&self, m: &MoveSpec) -> Result<String, WorkloadError> {
        let class = if m.runtime.is_empty() {
            match self.workloads.get(&m.name) {
                Some(r) => std::path::Path::new(&r.runtime)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                None => return Ok(String::new()),
            }
        } else {
            match classes::named(&m.runtime) {
                Some(c) => c.name().to_string(),
                None => {
                    return Err(WorkloadError::Invalid(format!(
                        "runtime {:?} is not a runtime class ({}): a migration names the class to run {} with on {}",
                        m.runtime,
                        classes::names(),
                        m.name,
                        m.to
                    )))
                }
            }
        };
        match self.peers.runtimes(&m.to) {
            Some(has) if !has.contains(&class) => Err(WorkloadError::NoRuntime(RuntimeError::Missing {
                name: class,
                host: m.to.clone(),
                has: has.join(", "),
            })),
            _ => Ok(class),
        }
    }

    /// Freezes, copies, starts on the target, deletes here; on any failure before the
    /// target started it, the workload is resumed here.
    pub async fn execute(&self, p: Prepared, progress: &Progress<'_>) -> Result<Summary, WorkloadError> {
        let w = &self.workloads;
        let mut summary = Summary { epoch: p.epoch, ..Summary::default() };
        let mut took = |phase: MigratePhase, ms: u64| summary.phase_ms.insert(phase.word().into(), ms);
        took(MigratePhase::Reserve, p.reserve_ms);
        let record = w.get(&p.name).ok_or_else(|| WorkloadError::Io("record vanished".into()))?;

        // Durable before the freeze: a restart finds the attempt and undoes it.
        if let Err(e) = w.save(&record).await {
            self.abandon(&p, false).await;
            return Err(e);
        }
        progress(MigratePhase::Freeze, 0, p.bytes_estimate);
        let t = Instant::now();
        if let Err(e) = w.containers().freeze(&p.name, &p.runtime, self.timings.freeze_wait).await {
            self.abandon(&p, false).await;
            return Err(e);
        }
        let frozen = Instant::now();
        took(MigratePhase::Freeze, ms(t));

        progress(MigratePhase::Copy, 0, p.bytes_estimate);
        let t = Instant::now();
        let total = p.bytes_estimate;
        let sent = self
            .peers
            .send_tree(
                &p.to,
                super::encode(&p.attempt()),
                w.rootfs(&p.name),
                p.bwlimit,
                self.timings.stall,
                &|n| progress(MigratePhase::Copy, n, total.max(n)),
            )
            .await;
        let bytes = match sent {
            Ok(b) => b,
            Err(e) => {
                self.abandon(&p, true).await;
                return Err(e);
            }
        };
        took(MigratePhase::Copy, ms(t));

        progress(MigratePhase::Start, bytes, bytes);
        let t = Instant::now();
        let committed = w.update(&p.name, |cur| {
            let mut r = cur.cloned().ok_or_else(|| WorkloadError::Io("record vanished".into()))?;
            r.phase = Phase::MigratingOut { to: p.to.clone(), epoch: p.epoch, committed: true };
            Ok((Some(r.clone()), r))
        })?;
        if let Err(e) = w.save(&committed).await {
            self.abandon(&p, true).await;
            return Err(e);
        }
        let attempt = p.attempt();
        let asked = self.ask(&p.to, super::START, &attempt, self.timings.start_wait);
        let heard = || progress(MigratePhase::Start, bytes, bytes);
        match self.while_live(&p.to, asked, &heard).await {
            Ok(_) => {}
            Err(WorkloadError::Unreachable(why)) => {
                // The start may or may not have happened: ask until we know.
                let settling = || progress(MigratePhase::Settle, bytes, bytes);
                match self.settle_patiently(&p.to, &p.attempt(), &settling).await {
                    Some(Verdict::Started) => {}
                    Some(Verdict::Aborted) => {
                        self.undo(&p.name, p.epoch, true).await;
                        return Err(WorkloadError::Unreachable(format!("starting on {}: {why}", p.to)));
                    }
                    None => {
                        tokio::spawn(super::recovery::recover_one(self.clone(), p.name.clone()));
                        return Err(WorkloadError::InDoubt(format!(
                            "{} was asked to start {} but did not answer ({why}); it stays frozen here until {} answers",
                            p.to, p.name, p.to
                        )));
                    }
                }
            }
            Err(e) => {
                // The target refused or failed to start it, and dropped its copy.
                self.undo(&p.name, p.epoch, true).await;
                return Err(e);
            }
        }
        let downtime_ms = ms(frozen);
        took(MigratePhase::Start, ms(t));

        progress(MigratePhase::Delete, bytes, bytes);
        let t = Instant::now();
        w.discard(&committed).await;
        took(MigratePhase::Delete, ms(t));
        summary.bytes = bytes;
        summary.downtime_ms = downtime_ms;
        tracing::info!(workload = %p.name, to = %p.to, epoch = p.epoch, bytes, downtime_ms, "migrated");
        Ok(summary)
    }

    /// Ends an attempt that never asked the target to start: the target cannot run it, so
    /// the workload resumes here; the target is told to drop its reservation (best effort:
    /// it also drops it by itself when the transfer fails or the reservation idles).
    async fn abandon(&self, p: &Prepared, resume: bool) {
        self.undo(&p.name, p.epoch, resume).await;
        let _ = self.ask(&p.to, super::SETTLE, &p.attempt(), self.timings.settle_wait).await;
    }

    /// Asks `to` once whether `attempt` was started there.
    pub(super) async fn settle_once(&self, to: &str, attempt: &Attempt) -> Result<Verdict, WorkloadError> {
        self.peers.check(to)?;
        let bytes = self.ask(to, super::SETTLE, attempt, self.timings.settle_wait).await?;
        decode(super::SETTLE, &bytes)
    }

    /// Waits for `call` to `to`, checking every [`Timings::settle_every`](super::Timings)
    /// that `to` is still a live member: a killed host is declared dead by the membership
    /// long before a call to it times out, and then the wait ends as
    /// [`WorkloadError::Unreachable`]. `tick` is called at each check, so that the
    /// operator's stream keeps hearing from the migration.
    async fn while_live<T>(
        &self,
        to: &str,
        call: impl std::future::Future<Output = Result<T, WorkloadError>>,
        tick: &(dyn Fn() + Send + Sync),
    ) -> Result<T, WorkloadError> {
        tokio::pin!(call);
        loop {
            tokio::select! {
                answer = &mut call => return answer,
                _ = tokio::time::sleep(self.timings.settle_every) => {
                    self.peers.check(to)?;
                    tick();
                }
            }
        }
    }

    /// Asks `to` until it answers, for at most [`Timings::settle_patience`](super::Timings),
    /// calling `tick` before each question.
    async fn settle_patiently(
        &self,
        to: &str,
        attempt: &Attempt,
        tick: &(dyn Fn() + Send + Sync),
    ) -> Option<Verdict> {
        let until = Instant::now() + self.timings.settle_patience;
        while Instant::now() < until {
            tick();
            match self.settle_once(to, attempt).await {
                Ok(v) => return Some(v),
                Err(e) => tracing::debug!(workload = %attempt.name, "settle: {e}"),
            }
            tokio::time::sleep(self.timings.settle_every).await;
        }
        None
    }
}

/// What the target's `transfer` answered: the bytes it received.
pub(super) fn received(payload: &[u8]) -> Result<u64, WorkloadError> {
    decode::<Received>(super::TRANSFER, payload).map(|r| r.bytes)
}

/// Why `--mode live` is refused here: CRIU must pass `criu check` on both hosts, and this
/// build does not checkpoint and restore yet.
async fn live_refusal(host: &str) -> WorkloadError {
    let check = tokio::process::Command::new("criu").arg("check").output().await;
    let why = match check {
        Err(e) => format!("criu is not installed on {host} ({e})"),
        Ok(o) if !o.status.success() => format!(
            "`criu check` fails on {host}: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("no output").trim()
        ),
        Ok(_) => format!("criu passes on {host}, but this build of middlecon migrates cold only"),
    };
    WorkloadError::Precondition(format!("live migration is not available: {why}; use --mode cold"))
}
