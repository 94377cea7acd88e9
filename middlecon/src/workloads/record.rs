//! What middlecon keeps on disk about each workload: `<state-dir>/workloads/<name>/workload.json`,
//! written atomically (temporary file, fsync, then an exchange with the old record), so that
//! a daemon killed at any point finds either the old record or the new one when it restarts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The record's file name inside a workload's directory.
pub const FILE: &str = "workload.json";

/// Where a workload is in its life on this host. The migration states are the ones of
/// `docs/migration.md`; the guards below are the only way code asks what is allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Being created by `Run` (bundle copied, runtime not yet asked).
    Creating,
    /// Owned by this host; the runtime's own state says whether it runs.
    Owned,
    /// Source side of a migration at `epoch` to `to`: the container is (or is about to be)
    /// frozen. `committed`: the target was asked to start it, so it may run there.
    MigratingOut { to: String, epoch: u64, committed: bool },
    /// Target side: reserved (and maybe received) for a migration from `from` at `epoch`;
    /// never started without the source's `start` for this epoch.
    /// `received`: the whole root filesystem arrived and its checksum matched.
    Incoming {
        from: String,
        epoch: u64,
        #[serde(default)]
        received: bool,
    },
}

impl Phase {
    /// Its word, for refusals: `creating`, `owned`, `migrating` or `incoming`.
    pub fn word(&self) -> &'static str {
        match self {
            Phase::Creating => "creating",
            Phase::Owned => "owned",
            Phase::MigratingOut { .. } => "migrating",
            Phase::Incoming { .. } => "incoming",
        }
    }

    pub fn can_stop(&self) -> bool {
        matches!(self, Phase::Owned)
    }

    pub fn can_migrate(&self) -> bool {
        matches!(self, Phase::Owned)
    }

    /// A `start` for `epoch` may turn this reservation into a running workload.
    pub fn can_start_incoming(&self, epoch: u64) -> bool {
        matches!(self, Phase::Incoming { epoch: e, received: true, .. } if *e == epoch)
    }

    /// A transfer for `epoch` may fill this reservation.
    pub fn can_receive(&self, epoch: u64) -> bool {
        matches!(self, Phase::Incoming { epoch: e, received: false, .. } if *e == epoch)
    }
}

/// One workload: how to run it, and where it is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The runtime as the user named it (`runc`, `crun`, `runsc` or a path).
    pub runtime: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// 0: no limit.
    #[serde(default)]
    pub memory_bytes: u64,
    /// 0: no limit.
    #[serde(default)]
    pub cpus: f64,
    /// The fencing token: raised by every migration attempt.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub started_unix_ms: i64,
    pub phase: Phase,
    /// The service it is an instance of (`crate::services`); none for a workload of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Record {
    /// A workload `name` running `command` with `runtime`, without limits or environment,
    /// being created (epoch 0).
    pub fn new(name: &str, runtime: &str, command: &[&str]) -> Record {
        Record {
            name: name.into(),
            runtime: runtime.into(),
            command: command.iter().map(|c| c.to_string()).collect(),
            env: BTreeMap::new(),
            memory_bytes: 0,
            cpus: 0.0,
            epoch: 0,
            started_unix_ms: 0,
            phase: Phase::Creating,
            service: None,
        }
    }

    /// The record in `dir`. `NotFound` also for the empty placeholder of [`Record::prepare`]:
    /// no record was ever written there.
    pub fn load(dir: &Path) -> std::io::Result<Record> {
        let bytes = std::fs::read(dir.join(FILE))?;
        if bytes.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "an empty placeholder, no record"));
        }
        serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Replaces the record in `dir` atomically and durably.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        self.write(dir, true)
    }

    /// Replaces the record in `dir` atomically, without waiting for the disk: for a record
    /// whose loss in a crash is harmless (a directory without a record is removed at the
    /// next start, see `Workloads::open`).
    pub fn save_unsynced(&self, dir: &Path) -> std::io::Result<()> {
        self.write(dir, false)
    }

    /// Makes the record last written into `dir` durable (the file and its directory entry),
    /// for one written by [`Record::save_unsynced`].
    pub fn sync(dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir.join(FILE))?.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Creates the two files saves into `dir` reuse, empty: the temporary file and a
    /// placeholder for the record (for a directory made ahead of time: see `spare`).
    pub fn prepare(dir: &Path) -> std::io::Result<()> {
        std::fs::File::create(temporary(dir))?;
        std::fs::File::create(dir.join(FILE)).map(drop)
    }

    fn write(&self, dir: &Path, durable: bool) -> std::io::Result<()> {
        let tmp = temporary(dir);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).expect("a record serializes"))?;
            if durable {
                f.sync_all()?;
            }
        }
        // Exchanged, not renamed over: the old record's file becomes the next save's temporary
        // file, so replacing a record neither allocates nor frees an inode (`spare` says why
        // that matters). Renamed where there is no record yet, or the filesystem cannot.
        let file = dir.join(FILE);
        match nix::fcntl::renameat2(None, &tmp, None, &file, nix::fcntl::RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {
                std::fs::rename(&tmp, &file)?
            }
            Err(e) => return Err(e.into()),
        }
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Where a record is written before it is exchanged (or renamed) into place.
fn temporary(dir: &Path) -> std::path::PathBuf {
    dir.join(format!(".{FILE}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_record_survives_a_round_trip_and_guards_follow_the_phase() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Record {
            name: "web".into(),
            runtime: "runc".into(),
            command: vec!["sleep".into(), "9".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            memory_bytes: 64 << 20,
            cpus: 0.5,
            epoch: 3,
            started_unix_ms: 1,
            phase: Phase::MigratingOut { to: "h2".into(), epoch: 4, committed: true },
            service: None,
        };
        r.save(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), r);
        // Replaced, then replaced again: the latest is read; the file the old one was in
        // is kept for the next save (no new inode per save).
        let first = std::fs::metadata(dir.path().join(FILE)).unwrap().ino();
        let mut next = r.clone();
        next.epoch = 4;
        next.save_unsynced(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), next);
        next.epoch = 5;
        next.save(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), next);
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).unwrap().ino(), first, "two exchanges later");
        // The placeholder a spare directory brings is no record.
        let spare = tempfile::tempdir().unwrap();
        Record::prepare(spare.path()).unwrap();
        assert_eq!(Record::load(spare.path()).unwrap_err().kind(), std::io::ErrorKind::NotFound);
        r.save(spare.path()).unwrap();
        assert_eq!(Record::load(spare.path()).unwrap(), r);
        assert!(!r.phase.can_migrate() && !r.phase.can_stop());
        r.phase = Phase::Incoming { from: "h1".into(), epoch: 4, received: false };
        assert!(r.phase.can_receive(4) && !r.phase.can_receive(5) && !r.phase.can_start_incoming(4));
        r.phase = Phase::Incoming { from: "h1".into(), epoch: 4, received: true };
        assert!(r.phase.can_start_incoming(4) && !r.phase.can_start_incoming(5) && !r.phase.can_receive(4));
        r.phase = Phase::Owned;
        assert!(r.phase.can_migrate() && r.phase.can_stop());
    }
}
