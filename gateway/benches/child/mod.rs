//! `highwind standalone` as a child process on a loopback port, for the benchmarks: its URL, its dev users'
//! tokens, authenticated clients and its memory.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Stdio, time::Duration};

use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

/// A running platform.
pub struct ChildPlatform {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    tokens: Vec<(String, String)>,
}

/// A client type authenticated as one user.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Adds a user's bearer token to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl ChildPlatform {
    /// Starts the platform with data in `dir`, dev users `users` and `extra` arguments, once it is ready.
    pub async fn start(dir: &Path, users: &[&str], extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_highwind"));
        command.args(["standalone", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"]).arg(dir);
        // No registry unless the benchmark asks for one where it wants it.
        if !extra.contains(&"--registry-listen") {
            command.arg("--no-registry");
        }
        for user in users {
            command.args(["--dev-user", user]);
        }
        let mut child = command
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start highwind standalone");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut tokens = Vec::new();
        while tokens.len() < users.len() {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap();
            let Some(line) = line else { break };
            if let Some((user, token)) = line.strip_prefix("dev token (").and_then(|rest| rest.split_once("): ")) {
                tokens.push((user.to_owned(), token.to_owned()));
            }
        }
        // Keep reading what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url: format!("http://127.0.0.1:{port}"), tokens }
    }

    /// A fresh connection to the gateway.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url.clone()).unwrap().tcp_nodelay(true).connect().await.unwrap()
    }

    /// The interceptor that authenticates as `user`.
    pub fn bearer(&self, user: &str) -> Bearer {
        let (_, token) = self.tokens.iter().find(|(u, _)| u == user).expect("a dev user");
        Bearer(format!("Bearer {token}").parse().unwrap())
    }

    /// The server's resident memory, bytes.
    pub fn rss(&self) -> u64 {
        self.memory("VmRSS:")
    }

    /// The server's peak resident memory so far, bytes.
    pub fn peak(&self) -> u64 {
        self.memory("VmHWM:")
    }

    fn memory(&self, field: &str) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Stops it with SIGTERM and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
    }
}
