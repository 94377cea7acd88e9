//! Asking every selected host at once ([`k2i_client::fanout`]: a bounded window, one shared
//! deadline, one [`HostReport`] per host), directly or through a relay per datacenter
//! ([`crate::relay`]).

pub use k2i_client::fanout::{Answer, Endpoint, FanOut, HostReport, DEFAULT_WINDOW};

impl Endpoint for crate::fleet::Target {
    fn name(&self) -> &str {
        &self.name
    }
    fn k2i(&self) -> &str {
        &self.k2i
    }
}

/// Raises the open-files limit to its hard maximum: a fan-out holds one socket per host.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
