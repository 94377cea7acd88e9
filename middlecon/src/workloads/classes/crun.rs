//! crun, the OCI runtime in C: runc's command line and ways (the cgroup freezer, signals
//! straight to the init); its state file differs (`status`), which `dcos_linux::oci` reads.

use super::RuntimeClass;

/// crun.
pub struct Crun;

impl RuntimeClass for Crun {
    fn name(&self) -> &'static str {
        "crun"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crun_takes_no_flags_of_its_own() {
        assert_eq!((Crun.name(), Crun.flags()), ("crun", &[][..]));
    }
}
