//! Test helpers: plain `Process` values to filter, sort and project.

use dcos_core::model::{ContainerRef, Process, Runtime};
use std::sync::Arc;

/// A sleeping root process `pid` running `cmd-<pid>`, with every optional field null.
pub(crate) fn proc(pid: i32) -> Process {
    let cmd: Arc<str> = format!("cmd-{pid}").into();
    Process {
        pid,
        tid: None,
        ppid: 1,
        pgid: pid,
        sid: pid,
        user: "root".into(),
        uid: 0,
        gid: 0,
        state: 'S',
        nice: 0,
        threads: 1,
        cmd: cmd.clone(),
        cmdline: vec![cmd].into(),
        exe: None,
        start_time: "2024-01-01T00:00:00Z".into(),
        cpu_percent: None,
        cpu_time_s: 0.0,
        mem_rss_bytes: 0,
        mem_vsz_bytes: 0,
        mem_percent: 0.0,
        io_read_bytes: None,
        io_write_bytes: None,
        tty: None,
        cgroup: "/".into(),
        container: None,
    }
}

/// A docker container reference.
pub(crate) fn container(id: &str, name: &str) -> Option<Arc<ContainerRef>> {
    Some(Arc::new(ContainerRef { id: id.into(), runtime: Runtime::Docker, name: name.into() }))
}

/// Sets the command line (and `cmd` to the first argument's basename).
pub(crate) fn with_cmdline(mut p: Process, args: &[&str]) -> Process {
    let args: Vec<Arc<str>> = args.iter().map(|&a| a.into()).collect();
    if let Some(first) = args.first() {
        p.cmd = first.rsplit('/').next().unwrap_or(first).into();
    }
    p.cmdline = args.into();
    p
}
