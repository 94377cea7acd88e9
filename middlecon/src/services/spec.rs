//! A service's definition ([`ServiceSpec`]), how it is checked before anything is made
//! ([`ServiceSpec::check`]), and where it is kept: `<state-dir>/services/<name>.json`,
//! written atomically, read back when the daemon starts.

use crate::workloads::WorkloadError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest service name: its instances are named `<service>.<n>`, within a workload
/// name's 63 characters.
pub const NAME_MAX: usize = 40;
/// A held connection waits this long for an instance when the service does not say.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A service as defined on this host (SPEC section 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    /// The image of every instance.
    pub rootfs: PathBuf,
    /// The front's TCP port.
    pub port: u16,
    /// Every host the service is placed on.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub runtime: String,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub cpus: f64,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
    #[serde(default)]
    pub min: u32,
    pub max: u32,
    /// `None`: never stopped when idle.
    #[serde(default, with = "millis")]
    pub idle_stop: Option<Duration>,
    pub target_inflight: u32,
    #[serde(default, with = "millis")]
    pub max_age: Option<Duration>,
    /// 0: no limit.
    #[serde(default)]
    pub max_requests: u64,
    #[serde(with = "millis_required")]
    pub drain: Duration,
    #[serde(default)]
    pub prestart: bool,
    #[serde(with = "millis_required")]
    pub start_timeout: Duration,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.map_or(0, |d| d.as_millis() as u64))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok((ms > 0).then(|| Duration::from_millis(ms)))
    }
}

mod millis_required {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `[A-Za-z0-9][A-Za-z0-9_-]{0,39}`.
pub fn check_name(name: &str) -> Result<(), WorkloadError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= NAME_MAX
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(WorkloadError::Invalid(format!(
            "name: {name:?} is not 1 to {NAME_MAX} letters, digits, '_' or '-' starting with a letter or digit"
        )))
    }
}

impl ServiceSpec {
    /// Checks what can be checked without the host: the name, the command, the limits.
    /// Every refusal names its field.
    pub fn check(&self) -> Result<(), WorkloadError> {
        let invalid = |field: &str, why: String| Err(WorkloadError::Invalid(format!("{field}: {why}")));
        check_name(&self.name)?;
        if self.port == 0 {
            return invalid("port", "a TCP port from 1 to 65535 is required".into());
        }
        if self.command.first().is_none_or(|c| c.is_empty()) {
            return invalid(
                "command",
                "a command is required (dcos service create ... -- CMD ARGS...)".into(),
            );
        }
        if !self.rootfs.is_absolute() {
            return invalid(
                "rootfs",
                format!("{:?} is not an absolute path", self.rootfs.display().to_string()),
            );
        }
        if self.max == 0 {
            return invalid("max", "at least 1 instance per host".into());
        }
        if self.min > self.max {
            return invalid("min", format!("{} is more than max {}", self.min, self.max));
        }
        if self.target_inflight == 0 {
            return invalid("target_inflight", "at least 1 connection per instance".into());
        }
        if !self.cpus.is_finite() || self.cpus < 0.0 {
            return invalid("cpus", format!("{} is not a positive number", self.cpus));
        }
        if let Some(k) = self.env.keys().find(|k| k.is_empty() || k.contains('=') || *k == "PORT") {
            return invalid(
                "env",
                format!("{k:?}: not a variable name a service may set (PORT is middlecon's)"),
            );
        }
        if self.start_timeout.is_zero() {
            return invalid("start_timeout", "must be more than 0".into());
        }
        Ok(())
    }
}

/// The definitions of this host's services, one file each.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `<state_dir>/services` (created).
    pub fn open(state_dir: &Path) -> std::io::Result<Store> {
        let dir = state_dir.join("services");
        std::fs::create_dir_all(&dir)?;
        Ok(Store { dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Every definition kept; one that cannot be read is logged and skipped.
    pub fn load(&self) -> Vec<ServiceSpec> {
        let mut specs = Vec::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<ServiceSpec>(&b).map_err(|e| e.to_string()))
            {
                Ok(spec) => specs.push(spec),
                Err(e) => tracing::warn!(file = %path.display(), "service definition left alone: {e}"),
            }
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    /// Keeps `spec`, atomically and durably.
    pub fn save(&self, spec: &ServiceSpec) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.dir.join(format!(".{}.tmp", spec.name));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(spec).expect("a definition serializes"))?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.file(&spec.name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Forgets service `name`.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.file(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn spec(name: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            rootfs: "/srv/img".into(),
            port: 8080,
            hosts: vec!["h".into()],
            runtime: String::new(),
            memory_bytes: 0,
            cpus: 0.0,
            env: BTreeMap::new(),
            command: vec!["/bin/app".into()],
            min: 0,
            max: 4,
            idle_stop: Some(Duration::from_secs(60)),
            target_inflight: 10,
            max_age: None,
            max_requests: 0,
            drain: Duration::from_secs(30),
            prestart: false,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    #[test]
    fn bad_definitions_name_their_field() {
        assert!(spec("web").check().is_ok());
        let cases: Vec<(ServiceSpec, &str)> = vec![
            (spec("a.b"), "name"),
            (spec(&"x".repeat(41)), "name"),
            (ServiceSpec { port: 0, ..spec("w") }, "port"),
            (ServiceSpec { command: vec![], ..spec("w") }, "command"),
            (ServiceSpec { rootfs: "rel".into(), ..spec("w") }, "rootfs"),
            (ServiceSpec { min: 5, max: 4, ..spec("w") }, "min"),
            (ServiceSpec { max: 0, min: 0, ..spec("w") }, "max"),
            (ServiceSpec { target_inflight: 0, ..spec("w") }, "target_inflight"),
            (ServiceSpec { cpus: -1.0, ..spec("w") }, "cpus"),
            (ServiceSpec { env: [("PORT".into(), "1".into())].into(), ..spec("w") }, "env"),
        ];
        for (bad, field) in cases {
            let e = bad.check().unwrap_err();
            assert_eq!(e.code(), crate::workloads::ErrorCode::Invalid);
            assert!(e.to_string().starts_with(&format!("{field}: ")), "{field}: {e}");
        }
    }

    #[test]
    fn definitions_survive_a_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut web = spec("web");
        web.idle_stop = None;
        web.max_age = Some(Duration::from_millis(1500));
        store.save(&web).unwrap();
        store.save(&spec("api")).unwrap();
        std::fs::write(dir.path().join("services/broken.json"), "{").unwrap();
        assert_eq!(store.load(), vec![spec("api"), web]);
        store.remove("web").unwrap();
        store.remove("web").unwrap();
        assert_eq!(store.load().len(), 1);
    }
}
