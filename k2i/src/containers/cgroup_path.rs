//! Choosing, from the text of `/proc/PID/cgroup`, the one cgroup path that says which
//! container a process belongs to.
//!
//! On pure cgroup v2 there is a single `0::PATH` line. On v1 and hybrid hosts every
//! hierarchy has its own line and the paths can differ (a runtime may only place a
//! process in some controllers), so the controllers that container runtimes always
//! use come first.

/// The rank of a hierarchy line: lower is preferred. `None` for hierarchies that say
/// nothing about containers (cpuset, blkio, net_cls, ...).
fn rank(hierarchy_id: &str, controllers: &str) -> Option<u8> {
    if controllers.is_empty() {
        // `0::PATH`: the unified hierarchy (only line on pure v2, last resort on hybrid).
        return (hierarchy_id == "0").then_some(5);
    }
    let mut best: Option<u8> = None;
    for c in controllers.split(',') {
        let r = match c {
            "memory" => 1,
            "cpu" | "cpuacct" => 2,
            "pids" => 3,
            "name=systemd" => 4,
            _ => continue,
        };
        best = Some(best.map_or(r, |b| b.min(r)));
    }
    best
}

/// Picks the cgroup path that identifies the process's container, from the text of
/// `/proc/PID/cgroup`.
///
/// Order of preference: the `memory` hierarchy, then `cpu`/`cpuacct` (also when
/// co-mounted as `cpu,cpuacct`), then `pids`, then `name=systemd`, then the unified
/// `0::` line. On a pure v2 host that is simply the `0::` line. Answers `"/"` when no
/// line qualifies. Borrows from the input; allocates nothing.
pub fn pick_cgroup(proc_cgroup_text: &str) -> &str {
    let mut best: Option<(u8, &str)> = None;
    for line in proc_cgroup_text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(r) = rank(id, controllers) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        if best.is_none_or(|(b, _)| r < b) {
            best = Some((r, path));
            if r == 1 {
                break;
            }
        }
    }
    best.map_or("/", |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
12:blkio:/system.slice/docker-aa.scope
11:cpu,cpuacct:/system.slice/docker-cc.scope
10:memory:/system.slice/docker-mm.scope
9:pids:/system.slice/docker-pp.scope
1:name=systemd:/system.slice/docker-ss.scope
0::/system.slice/docker-uu.scope
";

    #[test]
    fn pure_v2_uses_the_unified_line() {
        assert_eq!(pick_cgroup("0::/system.slice/nginx.service\n"), "/system.slice/nginx.service");
        assert_eq!(pick_cgroup("0::/"), "/");
    }

    #[test]
    fn v1_prefers_memory() {
        assert_eq!(pick_cgroup(HYBRID), "/system.slice/docker-mm.scope");
    }

    #[test]
    fn v1_falls_back_in_order() {
        let no_memory: String =
            HYBRID.lines().filter(|l| !l.contains("memory")).map(|l| format!("{l}\n")).collect();
        assert_eq!(pick_cgroup(&no_memory), "/system.slice/docker-cc.scope");
        let only_late: String =
            no_memory.lines().filter(|l| !l.contains("cpu")).map(|l| format!("{l}\n")).collect();
        assert_eq!(pick_cgroup(&only_late), "/system.slice/docker-pp.scope");
        let no_pids: String =
            only_late.lines().filter(|l| !l.contains("pids")).map(|l| format!("{l}\n")).collect();
        assert_eq!(pick_cgroup(&no_pids), "/system.slice/docker-ss.scope");
        assert_eq!(pick_cgroup("12:blkio:/x\n0::/unified/one\n"), "/unified/one");
    }

    #[test]
    fn separate_cpu_and_cpuacct_lines_count_as_cpu() {
        let text = "3:cpuset:/a\n2:cpuacct:/dcos/web\n1:cpu:/dcos/web\n0::/\n";
        assert_eq!(pick_cgroup(text), "/dcos/web");
        assert_eq!(pick_cgroup("5:cpuacct,cpu:/k\n0::/u\n"), "/k");
    }

    #[test]
    fn nothing_usable_is_root() {
        assert_eq!(pick_cgroup(""), "/");
        assert_eq!(pick_cgroup("garbage\n7:cpuset:/x\n"), "/");
        assert_eq!(pick_cgroup("4:memory:\n"), "/");
    }

    #[test]
    fn paths_may_contain_colons() {
        assert_eq!(pick_cgroup("4:memory:/a:b/c\n"), "/a:b/c");
    }
}
