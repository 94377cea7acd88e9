//! Test helpers: plain `Process` values to filter, sort and project.

use dcos_core::model::{ContainerRef, Process, Runtime};
use std::sync::Arc;

/// A sleeping root process `pid` running `cmd-<pid>`, with every optional field null.
pub(crate) fn proc(pid: i32) -> Process {
    let cmd: Arc<str> = format!("cmd-{pid}").into();
    Process {
        pid,
        ppid: 1,
        pgid: pid,
        sid: pid,
        user: "root".into(),
        state: 'S',
        threads: 1,
        cmd: cmd.clone(),
        cmdline: vec![cmd].into(),
        start_time: "2024-01-01T00:00:00Z".into(),
        cgroup: "/".into(),
        ..Process::default()
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
