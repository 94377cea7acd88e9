//! The migration fault matrix: a real fault (`kill -9` of the source's or the target's
//! middlecon, started again half a second later as a supervisor would; an iptables cut of
//! the link between them, healed after 6 s, longer than the 5 s a transfer may stall) at
//! each phase of a migration between two real
//! hosts, with real runc containers. After each cell:
//!
//! - exactly one running copy of the workload in the fleet, within the settle window
//!   (20 s) of the end of the fault, and no reservation or migration left on either host;
//! - the migration ended with a word that docs/migration.md gives for that fault and phase
//!   (`interrupted` where the source itself died: its stream ends without a last message).
//!
//! Each cell is a test of its own, so nextest runs them side by side; `scripts/fault-matrix.sh`
//! runs the matrix N times and tallies the outcomes. Disk full and two migrations at once
//! are in `workloads.rs`.

use dcos_proto::v1 as pb;
use dcos_tests::workload_mesh::{rest_of, until_step, Mesh};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    KillSource,
    KillTarget,
    CutLink,
}

/// How the migration ended, as `dcos migrate` would say it.
fn word(progress: &[pb::MigrateProgress]) -> &'static str {
    match progress.last() {
        Some(m) if m.done && m.error.is_empty() => "done",
        Some(m) if m.done => m.code().word(),
        _ => "interrupted",
    }
}

/// The words docs/migration.md's failure table gives for `fault` in `phase`.
fn allowed(fault: Fault, phase: pb::MigratePhase) -> &'static [&'static str] {
    use pb::MigratePhase::*;
    match (fault, phase) {
        // The stream dies with the source; it says nothing more.
        (Fault::KillSource, _) => &["interrupted"],
        (Fault::KillTarget | Fault::CutLink, Freeze | Copy) => &["unreachable", "transfer"],
        // The start may or may not have happened: settled (done, or resumed on the source
        // with `unreachable`), or still in doubt when the settle window ended.
        (Fault::KillTarget | Fault::CutLink, _) => &["done", "unreachable", "in_doubt", "conflict"],
    }
}

async fn cell(fault: Fault, phase: pb::MigratePhase) {
    let mut mesh = Mesh::new(2);
    mesh.add_state(16);
    mesh.run(0, "w", "exec sleep 3600").await;
    // 16 MiB at 16 MiB/s: a copy of about a second, long enough to land in.
    let mut stream = mesh.start_migration(0, "w", 1, 16 << 20).await.expect("Migrate starts");
    let mut seen = until_step(&mut stream, phase).await;
    let host = if fault == Fault::KillSource { 0 } else { 1 };
    match fault {
        Fault::CutLink => mesh.fleet.cut(0, 1).expect("cut"),
        _ => mesh.daemons[host].take().expect("daemon").kill(),
    }
    let healing = async {
        tokio::time::sleep(Duration::from_millis(if fault == Fault::CutLink { 6000 } else { 500 })).await;
        match fault {
            Fault::CutLink => mesh.fleet.uncut(0, 1).expect("uncut"),
            _ => {
                let again = mesh.start(host);
                mesh.daemons[host] = Some(again);
            }
        }
        Instant::now()
    };
    let (rest, healed) = tokio::join!(rest_of(stream), healing);
    seen.extend(rest);
    let said = word(&seen);
    let story: Vec<String> = seen
        .iter()
        .map(|m| {
            format!("{}{}", m.step().word(), if m.done { format!(" {}", m.error) } else { String::new() })
        })
        .collect();
    assert!(
        allowed(fault, phase).contains(&said),
        "{fault:?} at {phase:?}: the migration said {said}: {story:?}"
    );
    // Exactly one copy, settled, within the settle window of the fault's end.
    let (on_0, on_1) =
        dcos_tests::eventually(Duration::from_secs(25), "one running copy, nothing in flight", || async {
            let (a, b) = (mesh.list(0).await, mesh.list(1).await);
            let settled = a.iter().chain(&b).all(|w| w.status == "running") && a.len() + b.len() == 1;
            settled.then_some((a, b))
        })
        .await;
    let settled = healed.elapsed();
    assert!(settled < Duration::from_secs(21), "settled {settled:?} after the fault ended");
    let copy = if on_1.is_empty() { "source" } else { "target" };
    eprintln!(
        "fault-matrix: {fault:?} at {}: {said}; one copy, on the {copy}, {settled:.1?} after the fault",
        phase.word()
    );
    // A migration that said done runs on the target; one that failed before the start, on
    // the source.
    match said {
        "done" => assert_eq!(on_1.len(), 1, "{fault:?} at {phase:?}: done, so on the target: {on_0:?}"),
        "unreachable" | "transfer" if phase != pb::MigratePhase::Start => {
            assert_eq!(on_0.len(), 1, "{fault:?} at {phase:?}: failed before the start, so on the source")
        }
        _ => {}
    }
}

macro_rules! matrix {
    ($($name:ident: $fault:ident at $phase:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            cell(Fault::$fault, pb::MigratePhase::$phase).await;
        }
    )*};
}

matrix! {
    source_killed_at_freeze: KillSource at Freeze;
    source_killed_at_copy: KillSource at Copy;
    source_killed_at_start: KillSource at Start;
    target_killed_at_freeze: KillTarget at Freeze;
    target_killed_at_copy: KillTarget at Copy;
    target_killed_at_start: KillTarget at Start;
    link_cut_at_freeze: CutLink at Freeze;
    link_cut_at_copy: CutLink at Copy;
    link_cut_at_start: CutLink at Start;
}
