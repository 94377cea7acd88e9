//! Which container a process belongs to, found from its cgroup path and OCI runtime state.
