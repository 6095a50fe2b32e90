//! The SII simulator as a process of its own (`dte-gateway sii-sim`), on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use super::{bin, repo};

pub struct SimProcess {
    child: Child,
    pub base: String,
}

impl SimProcess {
    pub fn start(args: &[&str]) -> SimProcess {
        Self::start_on(0, args)
    }

    pub fn start_on(port: u16, args: &[&str]) -> SimProcess {
        let mut child = bin()
            .args(["sii-sim", "--port", &port.to_string(), "--trust-test-authority"])
            .arg(repo("certs/test-authority.pem"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sii-sim");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|r| r.split_whitespace().next())
            .map(String::from)
            .expect("sii-sim address");
        std::thread::spawn(move || for _ in reader.lines() {});
        SimProcess { child, base }
    }

    pub async fn counters(&self) -> serde_json::Value {
        reqwest::get(format!("{}/sim/counters", self.base)).await.expect("counters").json().await.expect("json")
    }
}

impl SimProcess {
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
