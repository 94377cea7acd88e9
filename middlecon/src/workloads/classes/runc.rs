//! runc, the reference OCI runtime: every default of [`RuntimeClass`] (the cgroup freezer,
//! signals straight to the init).

use super::RuntimeClass;

/// runc.
pub struct Runc;

impl RuntimeClass for Runc {
    fn name(&self) -> &'static str {
        "runc"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_takes_no_flags_of_its_own() {
        assert_eq!((Runc.name(), Runc.flags()), ("runc", &[][..]));
    }
}
