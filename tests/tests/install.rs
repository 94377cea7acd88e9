//! The README's "Install on a fleet", followed on a fresh host: the operator's steps run here
//! (the fleet CA with `dcos certs`, the package built by `scripts/package-deb.sh` from this
//! build's binaries), the host's steps run as written inside a fresh host (a copy-on-write copy
//! of this machine's root, booted with systemd by `systemd-nspawn` in a network-namespace host
//! of a test fleet), joining a fleet whose first member is an ordinary middlecon on another
//! host. Then both daemons must answer over mTLS, under their hardened units, and the fleet
//! must list the new host. The time from `apt-get install` to both answering is printed.

use dcos_core::tls::{Identity, TlsFiles};
use dcos_tests::eventually;
use dcos_tests::netns::Fleet;
use k2i_client::K2iClient;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const README_HOST: &str = "web-1";
const README_ADDR: &str = "10.0.0.5";
const README_SEED: &str = "10.0.0.4";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The shell block after `<!-- test: NAME -->` in the README.
fn readme_block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- test: {name} -->");
    let after = readme.split_once(&marker).unwrap_or_else(|| panic!("README lacks {marker}")).1;
    let body = after.split_once("```sh\n").expect("a sh block").1;
    body.split_once("```").expect("the block's end").0.to_string()
}

/// Runs `script` with bash in `dir`, with `home` as `~` and the built binaries first on PATH.
fn run(script: &str, dir: &Path, home: &Path) {
    let bins = dcos_tests::bin("dcos").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("HOME", home)
        .env("PATH", path)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The units the fresh host boots into: the basics, then the README's host steps.
fn boot_units(upper: &Path) {
    let units = upper.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("dcos-install.service"),
        "[Unit]\nAfter=basic.target\n[Service]\nType=oneshot\nWorkingDirectory=/root\n\
         ExecStart=/bin/sh -c 'date +%%s.%%N > started; sh -ex install.sh > install.log 2>&1; echo $? > install.rc'\n",
    )
    .unwrap();
    std::fs::write(
        units.join("dcos-test.target"),
        "[Unit]\nRequires=basic.target\nWants=dcos-install.service\nAfter=basic.target\nAllowIsolate=yes\n",
    )
    .unwrap();
}

fn wall_clock() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_install_brings_a_fresh_host_into_the_fleet_under_systemd() {
    assert!(
        Command::new("systemd-nspawn").arg("--version").output().is_ok(),
        "systemd-nspawn is not installed (scripts/setup.sh installs systemd-container)"
    );
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let arch = String::from_utf8(Command::new("dpkg").arg("--print-architecture").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let deb = format!("dcos_{}_{arch}.deb", env!("CARGO_PKG_VERSION"));
    assert!(readme.contains(&deb), "the README names {deb}");

    let fleet = Fleet::new(2).expect("fleet");
    let (new, seed) = (fleet.host(0), fleet.host(1));
    let work = tempfile::Builder::new().prefix("dcos-install-").tempdir().unwrap();
    let (home, upper) = (work.path().join("home"), work.path().join("upper"));
    for d in [&home, &upper.join("root"), &work.path().join("ovl"), &work.path().join("root")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let host_steps = |text: &str| {
        text.replace(README_HOST, &new.name)
            .replace(README_ADDR, &new.addr.to_string())
            .replace(README_SEED, &seed.addr.to_string())
    };

    // The operator: the CA, the package (this build's binaries, uncompressed; or, for
    // measuring the real package, the binaries in DCOS_INSTALL_BIN_DIR, compressed), the
    // host's certificate, everything "copied" into the fresh host's /root.
    let (bins, fast) = match std::env::var("DCOS_INSTALL_BIN_DIR") {
        Ok(dir) => (dir, ""),
        Err(_) => (dcos_tests::bin("k2i").parent().unwrap().display().to_string(), " --fast"),
    };
    let out = work.path().join("deb");
    let operator = readme_block(&readme, "operator steps").replace(
        "scripts/package-deb.sh",
        &format!("scripts/package-deb.sh --bin-dir {bins}{fast} --out {}", out.display()),
    );
    run(&operator, &repo(), &home);
    let certificate = host_steps(&readme_block(&readme, "certificate steps"))
        .replace("target/deb/", &format!("{}/", out.display()))
        .replace("scp ", "cp ")
        .replace(&format!("root@{}:", new.addr), &format!("{}/", upper.join("root").display()));
    run(&certificate, &repo(), &home);
    let ca_dir = home.join("dcos-ca");

    // The fleet's first member, on host 1: an ordinary middlecon with a certificate of the CA.
    let files = |name: &str| TlsFiles {
        cert: ca_dir.join(format!("{name}.crt")),
        key: ca_dir.join(format!("{name}.key")),
        ca: ca_dir.join("ca.crt"),
    };
    run(&format!("dcos certs issue --dir ~/dcos-ca --name {} --ip {}", seed.name, seed.addr), &repo(), &home);
    let _first =
        fleet.middlecon(1, &files(&seed.name), &["--k2i", &seed.k2i_url()]).expect("middlecon on host 1");

    // The fresh host: this machine's root under a copy-on-write layer, booted with systemd,
    // running the README's host steps once booted.
    std::fs::write(upper.join("root/install.sh"), host_steps(&readme_block(&readme, "host steps"))).unwrap();
    boot_units(&upper);
    let root = work.path().join("root");
    let machine = format!("dcos-install-{}", fleet.index);
    let boot = format!(
        "mount -t overlay overlay -o lowerdir=/,upperdir={},workdir={} {} && \
         exec systemd-nspawn --quiet --register=no --keep-unit --link-journal=no --machine={machine} \
         -D {} -b -- systemd.unit=dcos-test.target",
        upper.display(),
        work.path().join("ovl").display(),
        root.display(),
        root.display()
    );
    let booted = Instant::now();
    // Inside host 0 (its network, and this machine's /sys with the cgroup mounts systemd needs;
    // `ip netns exec` would mount a fresh /sys without them), in a mount namespace of its own.
    let mut host =
        fleet.spawn_on(0, "unshare", &["--mount", "sh", "-c", &boot]).expect("systemd-nspawn starts");

    let rc = upper.join("root/install.rc");
    let installed = eventually(Duration::from_secs(60), "the host steps done", || {
        let rc = std::fs::read_to_string(&rc).ok();
        let running = host.is_running();
        async move { rc.or_else(|| (!running).then(String::new)) }
    })
    .await;
    let log = std::fs::read_to_string(upper.join("root/install.log")).unwrap_or_default();
    assert_eq!(installed.trim(), "0", "the host steps failed:\n{log}\n{}", host.stderr());
    eprintln!("the host steps:\n{log}");
    let started: f64 = std::fs::read_to_string(upper.join("root/started")).unwrap().trim().parse().unwrap();

    // Both daemons answer over mTLS: k2i with the host's name, middlecon with the fleet.
    let admin = Identity::load(&files("admin")).unwrap();
    let k2i = K2iClient::new(&admin).unwrap();
    let url = new.k2i_url();
    let summary: Value = eventually(Duration::from_secs(30), "k2i on the new host", || async {
        k2i.get_json(&url, "/v1/host", Duration::from_secs(2)).await.ok()
    })
    .await;
    assert_eq!(summary["name"], new.name.as_str());
    let api = format!("https://{}", new.api_addr());
    let want = format!("{}:7440", new.addr);
    eventually(Duration::from_secs(30), "middlecon on the new host, in the fleet with host 1", || async {
        let targets: Value = k2i.get_json(&api, "/v1/sd/k2i", Duration::from_secs(2)).await.ok()?;
        let listed: Vec<&str> = targets.as_array()?.iter().filter_map(|g| g["targets"][0].as_str()).collect();
        (listed.len() == 2 && listed.contains(&want.as_str())).then_some(())
    })
    .await;
    let answering = wall_clock() - started;
    eprintln!(
        "install to both daemons answering: {answering:.2} s (boot and install: {:?})",
        booted.elapsed()
    );

    // k2i runs as the unit says: in k2i.service, with only the capabilities to read processes.
    let k2i_unit = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "k2i"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains("/k2i.service"))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .find_map(|status| {
            status.lines().find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        });
    let (ptrace, dac_read_search) = (1u64 << 19, 1u64 << 2);
    assert_eq!(
        k2i_unit,
        Some(format!("{:016x}", ptrace | dac_read_search)),
        "k2i's bounding set under its unit"
    );

    // As the README says: the operator sees the new host through it.
    let hosts = Command::new(dcos_tests::bin("dcos"))
        .args(["hosts", "--seed", &new.addr.to_string(), "-o", "json"])
        .args(files("admin").flags())
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&hosts.stdout).unwrap_or_default();
    let states: Vec<(String, String)> = listed["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or_default().into(),
                        m["state"].as_str().unwrap_or_default().into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&new.name.as_str()) && names.contains(&seed.name.as_str()), "{states:?}");
    assert!(states.iter().all(|(_, s)| s == "alive"), "{states:?}");

    // The whole host goes (nspawn, its systemd and the daemons), then what nspawn left.
    fleet.kill_host(0);
    drop(host);
    let _ = std::fs::remove_dir(format!("/run/systemd/nspawn/propagate/{machine}"));
    eventually(Duration::from_secs(5), "nspawn's cgroups removed", || async {
        remove_payload_cgroups().then_some(())
    })
    .await;
}

/// Removes the empty cgroups `systemd-nspawn --keep-unit` left under this process's own
/// (`payload/...`, in the systemd and unified hierarchies), deepest first; whether none is left.
fn remove_payload_cgroups() -> bool {
    let mut gone = true;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for (hierarchy, mount) in [("name=systemd", "systemd"), ("", "unified")] {
        let Some(path) = own.lines().find_map(|l| l.split_once(&format!(":{hierarchy}:")).map(|x| x.1))
        else {
            continue;
        };
        let payload =
            Path::new("/sys/fs/cgroup").join(mount).join(path.trim_start_matches('/')).join("payload");
        let mut dirs = vec![];
        let mut todo = vec![payload];
        while let Some(d) = todo.pop() {
            if let Ok(entries) = std::fs::read_dir(&d) {
                todo.extend(entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
                dirs.push(d);
            }
        }
        for d in dirs.iter().rev() {
            gone &= std::fs::remove_dir(d).is_ok();
        }
    }
    gone
}
