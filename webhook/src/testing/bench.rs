//! What the store and ingestion benchmarks share: a database of their own on the test PostgreSQL
//! server, the CPU time of processes (this one, a server, the database's backends) read from
//! `/proc`, and a bounded load generator of signed deliveries over loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_postgres::NoTls;

/// The test PostgreSQL server (`SLIPWAY_TEST_POSTGRES`, see `scripts/services.sh`); `None` when
/// unset, which fails under `CI=true`.
pub fn test_postgres() -> Option<String> {
    match std::env::var("SLIPWAY_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("SLIPWAY_TEST_POSTGRES is not set (CI=true): run scripts/services.sh start")
        }
        _ => None,
    }
}

/// `base` with its database replaced by `database` (its query string kept).
pub fn with_database(base: &str, database: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let host_start = head.find("://").map_or(0, |i| i + 3);
    let host_end = head[host_start..]
        .find('/')
        .map_or(head.len(), |i| host_start + i);
    let mut url = format!("{}/{database}", &head[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A database created for one run and dropped after it, so that every run starts empty and
/// runs never see each other's rows.
#[derive(Debug)]
pub struct FreshDatabase {
    /// The database's name.
    pub name: String,
    /// A URL reaching it (the server's URL with this database).
    pub url: String,
    base: String,
}

impl FreshDatabase {
    /// Creates `<prefix>_<random>` on the server `base` points at.
    pub async fn create(base: &str, prefix: &str) -> FreshDatabase {
        let mut raw = [0u8; 6];
        getrandom::fill(&mut raw).expect("random name");
        let name = format!("{prefix}_{}", hex::encode(raw));
        let (client, conn) = tokio_postgres::connect(base, NoTls)
            .await
            .unwrap_or_else(|e| panic!("the PostgreSQL server at SLIPWAY_TEST_POSTGRES: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        FreshDatabase {
            url: with_database(base, &name),
            name,
            base: base.to_string(),
        }
    }

    /// Drops the database, ending any connection still open to it.
    pub async fn drop_now(self) {
        if let Ok((client, conn)) = tokio_postgres::connect(&self.base, NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }

    /// The process ids of the server's backends connected to this database now.
    pub async fn backends(&self) -> Vec<u32> {
        let Ok((client, conn)) = tokio_postgres::connect(&self.base, NoTls).await else {
            return Vec::new();
        };
        tokio::spawn(conn);
        client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| u32::try_from(r.get::<_, i32>(0)).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The CPU time the backends connected to this database have used (those that ended
    /// meanwhile are not counted: sample while the pools are open).
    pub async fn backends_cpu(&self) -> Vec<(u32, Duration)> {
        self.backends()
            .await
            .into_iter()
            .filter_map(|pid| cpu_of(&pid.to_string()).map(|t| (pid, t)))
            .collect()
    }
}

/// Clock ticks per second of `/proc/*/stat`'s times.
fn ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// User plus system CPU time of process `pid` (`"self"` for this one), all its threads, from
/// `/proc/<pid>/stat`; `None` once it is gone.
pub fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / ticks_per_second()))
}

/// The sum of the CPU times in `after` minus what the same processes had used in `before`
/// (a process new in `after` counts whole).
pub fn cpu_delta(before: &[(u32, Duration)], after: &[(u32, Duration)]) -> Duration {
    after
        .iter()
        .map(|(pid, t)| {
            let was = before
                .iter()
                .find(|(p, _)| p == pid)
                .map_or(Duration::ZERO, |b| b.1);
            t.saturating_sub(was)
        })
        .sum()
}

/// The machine's load averages (1, 5, 15 minutes), `?` when `/proc/loadavg` cannot be read.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The machine's load averages (1, 5, 15 minutes) and its number of processors.
pub fn machine_load() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("load average {} on {cpus} processors", load_average())
}

/// The `p`-quantile (0..=1, nearest rank) of sorted milliseconds.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Prints how many lines `name` measured and their p50, p90, p99 and maximum latency (ms);
/// returns the p99.
#[allow(
    clippy::print_stdout,
    reason = "for benchmarks, which print their figures"
)]
pub fn report_latencies(name: &str, mut ms: Vec<f64>) -> f64 {
    assert!(!ms.is_empty(), "{name}: no lines measured");
    ms.sort_by(f64::total_cmp);
    let p99 = percentile(&ms, 0.99);
    println!(
        "{name}: {} lines, p50 {:.1} ms, p90 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        ms[ms.len() - 1]
    );
    p99
}

/// The `p`-quantile (0..=1) of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1000.0
}

/// Push deliveries with ids `prefix-0..n`, signed with `secret`, as raw HTTP/1.1 requests to
/// `/webhooks/github`: 50 branches, so each delivery also supersedes its branch's last build. Each
/// body names its delivery: the server takes a body it has seen under another id for a replay.
pub fn signed_pushes(secret: &[u8], prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"ref":"refs/heads/b{}","before":"{:040x}","after":"{:040x}","deleted":false,"head_commit":{{"message":"bench push {prefix}-{}"}},"sender":{{"login":"dev"}},"repository":{{"full_name":"bench/repo","clone_url":"file:///nowhere"}}}}"#,
                i % 50,
                i,
                i + 1,
                i
            );
            let sig = crate::signature::sign(secret, body.as_bytes());
            format!(
                "POST /webhooks/github HTTP/1.1\r\nHost: b\r\nUser-Agent: GitHub-Hookshot/bench\r\n\
                 X-GitHub-Event: push\r\nX-GitHub-Delivery: {prefix}-{i}\r\nX-Hub-Signature-256: {sig}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect()
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Load {
    /// Each answered request's time from being written to the end of its response, sorted.
    pub latency: Vec<Duration>,
    /// Answers that were not 2xx, by status.
    pub failures: Vec<u16>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl Load {
    /// Answered requests per second.
    pub fn rate(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// p50, p90, p99 and the maximum.
    pub fn summary(&self) -> String {
        let l = &self.latency;
        format!(
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            quantile_ms(l, 0.5),
            quantile_ms(l, 0.9),
            quantile_ms(l, 0.99),
            quantile_ms(l, 1.0)
        )
    }
}

/// Sends one request on a keep-alive connection and reads its whole answer (the server sends a
/// Content-Length); the status.
pub async fn send_one(stream: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(status)
}

/// A closed loop: `concurrency` keep-alive connections, each sending its next request as soon as
/// the last is answered, until every request was sent or `limit` is over.
pub async fn closed_loop(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
    limit: Duration,
) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + limit;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, requests) = (next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let socket = TcpStream::connect(addr).await.expect("connect");
            socket.set_nodelay(true).expect("nodelay");
            let mut s = BufReader::new(socket);
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests.len() || Instant::now() > deadline {
                    return seen;
                }
                let t = Instant::now();
                let status = send_one(&mut s, &requests[i]).await.unwrap_or(0);
                seen.push((status, t.elapsed()));
            }
        }));
    }
    let mut load = Load::default();
    for t in tasks {
        for (status, took) in t.await.expect("load task") {
            if (200..300).contains(&status) {
                load.latency.push(took);
            } else {
                load.failures.push(status);
            }
        }
    }
    load.elapsed = started.elapsed();
    load.latency.sort();
    load
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_options_kept() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5433/slipway", "b_1"),
            "postgres://u@127.0.0.1:5433/b_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/slipway?options=-c%20x%3D1", "b_1"),
            "postgres://u:p@h/b_1?options=-c%20x%3D1"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "b_1"),
            "postgres://u@h:1/b_1"
        );
    }

    #[test]
    fn this_process_has_used_some_cpu_and_a_missing_one_none() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_of("self").is_some_and(|t| t > Duration::ZERO));
        assert_eq!(cpu_of("999999999"), None);
    }
}
