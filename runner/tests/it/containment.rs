//! Containment, played as the attacker: what a job's code tries, and what it must not get.
//! Privileges, raw sockets, the disk, other builds' networks, link-local addresses and caches.
//! The engine tests run against the real Docker engine; under CI=true a missing engine fails.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::util::*;
use slipway_pipelines::plan::{Context, EventType};
use slipway_runner::docker::DockerExecutor;
use slipway_runner::docker::requests::job_requests;
use slipway_runner::fake::FakeExecutor;
use slipway_runner::{BuildInfo, BuildResult, JobResult, Owner, Runner};

fn fork_pr(repo: &str, base: &str, number: u64) -> Context {
    Context {
        event: EventType::PullRequest,
        pull_request: Some(number),
        head_repo: Some("eve/app".into()),
        fork: true,
        ..context(repo, base)
    }
}

fn build() -> BuildInfo {
    BuildInfo {
        id: "b9".into(),
        number: 9,
    }
}

const CACHED: &str = "image: \"{busybox}\"\ncache:\n  directories: [vendor/bundle]\nscript: true\n";

#[test]
fn a_fork_saves_only_into_its_own_cache_and_reads_its_base_read_only() {
    let runner = Runner::new(FakeExecutor::new(|_| Default::default()), options());
    let plan = plan(CACHED, &fork_pr("acme/app", "main", 9));
    let job = &plan.stages[0].jobs[0];
    let base = Owner::Branch("main".into());
    let p = runner
        .prepare(&plan, job, &build(), None, Some(base))
        .unwrap();
    let volumes = &p.spec.volumes;
    assert_eq!(volumes.len(), 2, "{volumes:#?}");
    assert!(!volumes[0].read_only, "its own cache is written");
    assert!(
        volumes[0]
            .labels
            .contains(&("dev.slipway.cache.pull_request".into(), "9".into())),
        "{volumes:#?}"
    );
    assert!(volumes[1].read_only, "the base branch's cache is read-only");
    let push = plan_for_push(&runner, "main");
    assert_eq!(
        volumes[1].volume, push,
        "the fallback is the base branch's cache"
    );
    assert_ne!(volumes[0].volume, push, "a fork never writes the branch's");
    let notices = p.notices.join("\n");
    assert!(
        notices.contains("restoring the cache of branch main (read-only for this build); saving into the cache of pull request #9 from eve/app"),
        "{notices}"
    );
}

/// The writable cache volume of a push build of `branch`.
fn plan_for_push(runner: &Runner, branch: &str) -> String {
    let plan = plan(CACHED, &context("acme/app", branch));
    let p = runner
        .prepare(&plan, &plan.stages[0].jobs[0], &build(), None, None)
        .unwrap();
    assert_eq!(p.spec.volumes.len(), 1);
    assert!(!p.spec.volumes[0].read_only);
    p.spec.volumes[0].volume.clone()
}

#[test]
fn a_push_never_mounts_a_pull_requests_cache_even_when_asked_to() {
    let runner = Runner::new(FakeExecutor::new(|_| Default::default()), options());
    let plan = plan(CACHED, &context("acme/app", "main"));
    let pr = Owner::PullRequest {
        number: 9,
        head_repo: Some("eve/app".into()),
    };
    let p = runner
        .prepare(&plan, &plan.stages[0].jobs[0], &build(), None, Some(pr))
        .unwrap();
    assert_eq!(p.spec.volumes.len(), 1, "{:#?}", p.spec.volumes);
    assert!(p.notices.join("\n").contains("nothing is cached yet"));
}

#[test]
fn a_forks_containers_get_their_own_network_no_new_privileges_and_few_capabilities() {
    let runner = Runner::new(FakeExecutor::new(|_| Default::default()), options());
    let fork = plan(
        "image: \"{busybox}\"\nscript: true\n",
        &fork_pr("acme/app", "main", 3),
    );
    let p = runner
        .prepare(&fork, &fork.stages[0].jobs[0], &build(), None, None)
        .unwrap();
    let req = job_requests(&p.spec, "/var/run/docker.sock", None);
    let net = req.network.expect("a network of its own");
    let bridge = &net.options.as_ref().unwrap()["com.docker.network.bridge.name"];
    assert!(bridge.starts_with("slw"), "{bridge}");
    let host = req.job.1.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some(net.name.as_str()));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert!(!host.cap_add.unwrap().contains(&"NET_RAW".to_string()));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_string()])
    );

    let trusted = plan(
        "image: \"{busybox}\"\nscript: true\n",
        &context("acme/app", "main"),
    );
    let p = runner
        .prepare(&trusted, &trusted.stages[0].jobs[0], &build(), None, None)
        .unwrap();
    assert!(
        job_requests(&p.spec, "/var/run/docker.sock", None)
            .network
            .is_none()
    );
}

/// `CapEff` of the job's shell, from its log.
fn cap_eff(log: &str) -> u64 {
    let hex = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {log}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

#[tokio::test]
async fn a_job_gains_no_privileges_has_no_raw_sockets_and_still_installs_packages_as_root() {
    let Some(exec) = engine(&[&debian()]).await else {
        return;
    };
    // What a CI job does as root: install a package (dpkg writes /usr, /etc and /var/lib/dpkg,
    // chowns and chmods), edit /etc, and switch users as sudo would.
    let plan = plan(
        r#"
image: "{debian}"
script:
  - grep -E '^(NoNewPrivs|CapEff)' /proc/self/status
  - mkdir -p pkg/DEBIAN pkg/usr/share/probe pkg/etc && echo data > pkg/usr/share/probe/file && echo conf > pkg/etc/probe.conf
  - |
    printf 'Package: slipway-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: probe\n' > pkg/DEBIAN/control
  - dpkg-deb --root-owner-group --build pkg probe.deb >/dev/null && dpkg -i probe.deb
  - |
    dpkg -s slipway-probe | grep -q 'Status: install ok installed'
  - chown nobody:nogroup /usr/share/probe/file && chmod 4755 /usr/share/probe/file && echo ownership-ok
  - echo 'extra' >> /etc/probe.conf && echo etc-ok
  - su nobody -s /bin/sh -c 'id -u'
"#,
        &context("acme/app", "main"),
    );
    let ran = run(exec, options(), &plan, None, None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    let caps = cap_eff(log);
    const NET_RAW: u64 = 1 << 13;
    const MKNOD: u64 = 1 << 27;
    const CHOWN: u64 = 1;
    const SETUID: u64 = 1 << 7;
    assert_eq!(caps & NET_RAW, 0, "NET_RAW in {caps:#x}");
    assert_eq!(caps & MKNOD, 0, "MKNOD in {caps:#x}");
    assert_eq!(caps & (CHOWN | SETUID), CHOWN | SETUID, "{caps:#x}");
    assert!(
        log.contains("ownership-ok") && log.contains("etc-ok"),
        "{log}"
    );
    assert!(log.contains("65534"), "su to nobody: {log}");
}

#[tokio::test]
async fn a_job_writing_past_its_disk_limit_is_stopped_and_errored() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    if exec.disk_quota().await {
        missing("a storage driver without quotas (this engine caps disks itself)");
        return;
    }
    let mut opts = options();
    opts.limits.disk_bytes = 16 << 20;
    opts.disk_check_interval = Duration::from_millis(300);
    let filler = "image: \"{busybox}\"\nscript:\n  - dd if=/dev/zero of=/fill bs=1M count=48 2>/dev/null\n  - sleep 30\n  - echo not-stopped\n";
    // A job alone in its container, and a fork's, whose containers are counted together.
    for ctx in [context("acme/app", "main"), fork_pr("acme/app", "main", 6)] {
        let over = plan(filler, &ctx);
        let started = std::time::Instant::now();
        let ran = run(exec.clone(), opts.clone(), &over, None, None).await;
        let log = ran.expect_job(JobResult::Errored, &[]);
        assert!(
            log.contains("over its disk limit of 16.0 MiB"),
            "the reason: {log}"
        );
        assert!(!log.contains("not-stopped"), "{log}");
        assert!(started.elapsed() < Duration::from_secs(25), "stopped late");
    }

    // Under the limit nothing happens.
    let under = plan(
        "image: \"{busybox}\"\nscript:\n  - dd if=/dev/zero of=/fill bs=1M count=4 2>/dev/null\n  - sleep 1\n",
        &context("acme/app", "main"),
    );
    let ran = run(exec, opts, &under, None, None).await;
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{}", ran.log(1));
}

/// The default route's gateway a job prints from `/proc/net/route` (hex, little-endian).
fn gateway(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("gateway="))
        .unwrap_or_else(|| panic!("no gateway in {log}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn fork_jobs_share_no_network_with_each_other_nor_with_trusted_jobs() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let script = "image: \"{busybox}\"\nenv:\n  - A=1\n  - A=2\nscript:\n  - awk '$2 == \"00000000\" { print \"gateway=\" $3 }' /proc/net/route\n";
    let fork = run(
        exec.clone(),
        options(),
        &plan(script, &fork_pr("acme/app", "main", 4)),
        None,
        None,
    )
    .await;
    assert_eq!(fork.outcome.result, BuildResult::Passed, "{}", fork.log(1));
    fork.assert_log_contains(1, "network of their own");
    let trusted = run(
        exec,
        options(),
        &plan(script, &context("acme/app", "main")),
        None,
        None,
    )
    .await;
    let (f1, f2, t1) = (
        gateway(fork.log(1)),
        gateway(fork.log(2)),
        gateway(trusted.log(1)),
    );
    assert_ne!(f1, f2, "two fork jobs on one network");
    assert_ne!(f1, t1, "a fork job on the trusted jobs' network");
    assert_eq!(
        t1,
        gateway(trusted.log(2)),
        "trusted jobs keep the default bridge"
    );
}

/// Runs a command, returning whether it succeeded and its output.
fn sh(args: &[&str]) -> (bool, String) {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// A link-local web server in a network namespace of its own, routed from this machine, as a
/// cloud metadata service would be. Removed on drop.
struct LinkLocalServer {
    ns: String,
    veth: String,
    server: std::process::Child,
    addr: String,
    www: std::path::PathBuf,
}

impl LinkLocalServer {
    fn start() -> Option<LinkLocalServer> {
        let id = std::process::id();
        let ns = format!("slwll{id}");
        let veth = format!("vll{}", id % 100_000);
        let peer = format!("{veth}n");
        let octet = 10 + id % 60 * 4;
        let (host_ip, ns_ip) = (format!("169.254.{octet}.1"), format!("169.254.{octet}.2"));
        if !sh(&["ip", "netns", "add", &ns]).0 {
            return None;
        }
        let exec = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", ns.as_str()];
            full.extend_from_slice(args);
            sh(&full)
        };
        let steps: Vec<(bool, String)> = vec![
            sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer,
            ]),
            sh(&["ip", "link", "set", &peer, "netns", &ns]),
            sh(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &veth]),
            sh(&["ip", "link", "set", &veth, "up"]),
            exec(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &peer]),
            exec(&["ip", "link", "set", &peer, "up"]),
            exec(&["ip", "link", "set", "lo", "up"]),
            exec(&["ip", "route", "add", "default", "via", &host_ip]),
        ];
        let www = std::env::temp_dir().join(format!("slipway-link-local-{id}"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "metadata-credentials\n").unwrap();
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "busybox", "httpd", "-f"])
            .args(["-p", &format!("{ns_ip}:8081"), "-h"])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("busybox for the link-local server");
        let me = LinkLocalServer {
            ns,
            veth,
            server,
            addr: format!("{ns_ip}:8081"),
            www,
        };
        for (ok, out) in steps {
            assert!(ok, "setting up the namespace: {out}");
        }
        Some(me)
    }
}

impl Drop for LinkLocalServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        sh(&["ip", "link", "del", &self.veth]);
        sh(&["ip", "netns", "del", &self.ns]);
        let _ = std::fs::remove_dir_all(&self.www);
    }
}

#[tokio::test]
async fn link_local_addresses_are_refused_to_jobs_trusted_or_not() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let report = tokio::task::spawn_blocking(|| slipway_runner::netguard::install(&[]))
        .await
        .unwrap();
    if !report.not_enforced.is_empty() {
        missing(&format!(
            "the rights to install packet-filter rules: {:?}",
            report.not_enforced
        ));
        return;
    }
    let Some(server) = LinkLocalServer::start() else {
        // No rights to make a namespace: the rule's presence is all that can be checked.
        let (ok, out) = sh(&["iptables", "-w", "-S", "SLIPWAY-JOBS"]);
        assert!(ok && out.contains("169.254.0.0/16"), "{out}");
        return;
    };
    // Reachable from this machine, and from a container on a network that is not a job's:
    // so whatever refuses the jobs is the rule.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&server.addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the link-local server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ip, port) = server.addr.split_once(':').unwrap();
    let get = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port} | grep -q metadata-credentials"
    );
    assert_plain_container_reaches("control", &get);
    assert_jobs_are_refused(exec, &get, 5).await;
}

/// Fails unless `get`, a shell command, succeeds in a container on a network that is not a job's
/// (so that whatever refuses the jobs is the rule, not the host).
fn assert_plain_container_reaches(tag: &str, get: &str) {
    let control_net = format!("slipway-test-{tag}-{}", std::process::id());
    assert!(sh(&["docker", "network", "create", &control_net]).0);
    let control = sh(&[
        "docker",
        "run",
        "--rm",
        "--network",
        &control_net,
        &busybox(),
        "sh",
        "-c",
        get,
    ]);
    sh(&["docker", "network", "rm", &control_net]);
    assert!(control.0, "a plain container is refused: {}", control.1);
}

/// Fails unless `get` is refused to a fork's pull request job (number `pr`) and to a trusted job.
async fn assert_jobs_are_refused(exec: Arc<DockerExecutor>, get: &str, pr: u64) {
    let probe = format!(
        "image: \"{{busybox}}\"\nlanguage: shell\nscript:\n  - |\n    if {get}; then echo REACHED; else echo REFUSED; fi\n"
    );
    for ctx in [fork_pr("acme/app", "main", pr), context("acme/app", "main")] {
        let ran = run(exec.clone(), options(), &plan(&probe, &ctx), None, None).await;
        let log = ran.log(1);
        let said = |word: &str| log.lines().any(|l| l.trim() == word);
        assert!(
            said("REFUSED") && !said("REACHED"),
            "fork={}: {log}",
            ctx.fork
        );
    }
}

#[test]
fn services_and_the_namespace_holder_are_hardened_like_the_job() {
    let runner = Runner::new(FakeExecutor::new(|_| Default::default()), options());
    let plan = plan(
        "image: \"{busybox}\"\nservices: [redis]\nscript: true\n",
        &context("acme/app", "main"),
    );
    let p = runner
        .prepare(&plan, &plan.stages[0].jobs[0], &build(), None, None)
        .unwrap();
    let req = job_requests(&p.spec, "/var/run/docker.sock", None);
    for (_, body) in req.services.iter().chain(req.netns.iter()) {
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    }
}

/// Deletes a port rule [`slipway_runner::netguard::install`] added, so the test leaves none.
struct PortRule(u16);

impl Drop for PortRule {
    fn drop(&mut self) {
        let port = self.0.to_string();
        for tool in ["iptables", "ip6tables"] {
            sh(&[
                tool,
                "-w",
                "-D",
                slipway_runner::netguard::HOST_CHAIN,
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "REJECT",
            ]);
        }
    }
}

#[tokio::test]
async fn the_servers_own_port_is_refused_to_jobs_but_not_to_other_containers() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    // A server listening beyond loopback, as `slipway serve --listen 0.0.0.0:PORT` does.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            use std::io::Write as _;
            let _ = conn.write_all(b"server-secret\n");
        }
    });
    let report = tokio::task::spawn_blocking(move || slipway_runner::netguard::install(&[port]))
        .await
        .unwrap();
    let _rule = PortRule(port);
    if !report.not_enforced.is_empty() {
        missing(&format!(
            "the rights to install packet-filter rules: {:?}",
            report.not_enforced
        ));
        return;
    }
    let get = format!(
        "nc -w 5 $(ip route | awk '/default/ {{print $3}}') {port} | grep -q server-secret"
    );
    assert_plain_container_reaches("port", &get);
    assert_jobs_are_refused(exec, &get, 7).await;
}
