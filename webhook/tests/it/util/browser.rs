//! Headless Chromium driven over the DevTools protocol, and an executor whose jobs write their
//! log lines when the test says: what the browser tests share.

use async_trait::async_trait;
use serde_json::{Value, json};
use slipway_runner::{JobEvent, JobOutcome, JobResult};
use slipway_webhook::job_runner::{JobRun, JobRunner};
use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How long any one thing the test waits for may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn chromium() -> Option<String> {
    let bin = std::env::var("SLIPWAY_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    if Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(bin);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "headless Chromium ({bin}) is missing: install Debian's chromium (scripts/install-test-deps.sh) \
             and set SLIPWAY_TEST_CHROMIUM (scripts/services.sh env)"
        );
    }
    eprintln!("skipped: headless Chromium ({bin}) not found; set SLIPWAY_TEST_CHROMIUM");
    None
}

/// Gates a job's script waits at until the test opens them.
#[derive(Default)]
pub struct Gates {
    open: Mutex<HashSet<String>>,
    changed: Notify,
}

impl Gates {
    pub fn open(&self, name: &str) {
        self.open.lock().unwrap().insert(name.to_string());
        self.changed.notify_waiters();
    }

    pub async fn wait(&self, name: &str) {
        loop {
            let changed = self.changed.notified();
            if self.open.lock().unwrap().contains(name) {
                return;
            }
            changed.await;
        }
    }
}

/// Runs each command of a job's phases as an instruction, so the test decides when each line is
/// written: `echo TEXT` writes a line, `part TEXT` writes TEXT as one chunk without a newline
/// (`\e` standing for ESC), `lines N` writes N numbered lines, `gate NAME` waits until the test
/// opens NAME; any other command is written as a line.
pub struct GatedJobRunner {
    pub gates: std::sync::Arc<Gates>,
}

#[async_trait]
impl JobRunner for GatedJobRunner {
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let out = |text: String| JobEvent::Log(text.into_bytes().into());
        for phase in &job.job.phases {
            let started = Instant::now();
            let _ = events.send(JobEvent::PhaseStarted(phase.name)).await;
            for cmd in &phase.commands {
                let (op, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
                match op {
                    "echo" => {
                        let _ = events.send(out(format!("{arg}\n"))).await;
                    }
                    "part" => {
                        let _ = events.send(out(arg.replace("\\e", "\u{1b}"))).await;
                    }
                    "lines" => {
                        for i in 0..arg.parse::<usize>().unwrap() {
                            let _ = events.send(out(format!("filler line {i}\n"))).await;
                        }
                    }
                    "gate" => {
                        tokio::select! {
                            _ = self.gates.wait(arg) => {}
                            _ = cancel.cancelled() => {
                                return JobOutcome::ended(&job.job, JobResult::Canceled, None);
                            }
                        }
                    }
                    // The planner's default commands (`install` of the language).
                    _ => {
                        let _ = events.send(out(format!("{cmd}\n"))).await;
                    }
                }
            }
            let _ = events
                .send(JobEvent::PhaseFinished {
                    phase: phase.name,
                    duration: started.elapsed(),
                })
                .await;
        }
        JobOutcome::ended(&job.job, JobResult::Passed, None)
    }
}

/// Headless Chromium with a DevTools connection to one page.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: tungstenite::WebSocket<TcpStream>,
    session: String,
    next_id: u64,
}

impl Browser {
    pub fn launch(bin: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1000,600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (port, path) = devtools_port(profile.path(), &mut child);
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .unwrap_or_else(|e| panic!("DevTools connection: {e}"));
        let mut b = Browser {
            child,
            _profile: profile,
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends one command (to the page once attached) and returns its result; events that arrive
    /// meanwhile are skipped.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "no answer to {method}");
            let reply = match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => t,
                Ok(_) => continue,
                Err(e) => panic!("DevTools connection lost during {method}: {e}"),
            };
            let v: Value = serde_json::from_str(reply.as_str()).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
        self.wait_for("document.readyState === 'complete'", "the page to load");
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls until `expr` is true in the page (with the page's text in the failure message).
    pub fn wait_for(&mut self, expr: &str, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        while self.eval(expr) != json!(true) {
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("waited in vain for {what} ({expr}); the page shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port and browser path Chromium writes to `DevToolsActivePort` in its profile once it listens.
fn devtools_port(profile: &Path, child: &mut Child) -> (u16, String) {
    let file: PathBuf = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some((port, path)) = text.split_once('\n')
            && let Ok(port) = port.trim().parse()
            && path.trim().starts_with("/devtools/browser/")
        {
            return (port, path.trim().to_string());
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromium exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "chromium never wrote {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
