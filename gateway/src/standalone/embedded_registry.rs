//! The registry `highwind standalone` runs for Docker Repo assets: Debian's `docker-registry` (CNCF distribution)
//! as a child process, storing in the data directory, trusting the platform's token keys and notifying the
//! gateway of pushes. Its configuration file (with the per-start notification secret) is its owner's only.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::io::{AsyncBufReadExt, BufReader};

/// The binary looked for on `PATH`.
pub const BINARY: &str = "docker-registry";

/// A running embedded registry.
#[derive(Debug)]
pub struct EmbeddedRegistry {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: String,
}

/// What the embedded registry needs.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    /// Its address (`127.0.0.1:5000`; port 0 picks one).
    pub listen: SocketAddr,
    /// The platform's data directory.
    pub data_dir: &'a Path,
    /// The gateway, for the token realm and notifications.
    pub gateway: SocketAddr,
    /// The token keys' bundle.
    pub bundle: &'a Path,
    /// The notification secret.
    pub secret: &'a str,
    /// The token service and issuer names.
    pub service: &'a str,
    /// See `service`.
    pub issuer: &'a str,
}

/// `docker-registry` on the server's PATH, if installed.
pub fn find() -> Option<PathBuf> {
    highwind_common::executables::find_on_path(BINARY)
}

impl EmbeddedRegistry {
    /// Writes the registry's configuration under the data directory and starts `binary` with it.
    pub async fn start(binary: &Path, setup: &Setup<'_>) -> Result<Self, String> {
        let dir = setup.data_dir.join("registry");
        std::fs::create_dir_all(dir.join("data")).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A gateway listening on every interface is reached on loopback from here.
        let mut gateway = setup.gateway;
        if gateway.ip().is_unspecified() {
            gateway.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: {listen}\n\
             auth:\n  token:\n    realm: http://{gateway}{token}\n    service: {service}\n    issuer: {issuer}\n    \
             rootcertbundle: {bundle}\n\
             notifications:\n  endpoints:\n    - name: highwind\n      url: http://{gateway}{events}\n      \
             headers:\n        X-Highwind-Registry-Secret: [\"{secret}\"]\n      timeout: 5s\n      threshold: 3\n      \
             backoff: 2s\n      ignoredmediatypes:\n        - application/octet-stream\n",
            data = dir.join("data").display(),
            listen = setup.listen,
            token = crate::registry::TOKEN_PATH,
            events = crate::registry::EVENTS_PATH,
            service = setup.service,
            issuer = setup.issuer,
            bundle = setup.bundle.display(),
            secret = setup.secret,
        );
        let path = dir.join("config.yml");
        let pid_file = dir.join("registry.pid");
        stop_leftover(&pid_file, &path);
        highwind_common::private_file::write_private(&path, config.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut child = tokio::process::Command::new(binary)
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        if let Some(pid) = child.id() {
            // A platform killed outright cannot stop its registry: the next start does (see `stop_leftover`).
            let _ = highwind_common::private_file::write_private(&pid_file, pid.to_string().as_bytes());
        }
        let stderr = child.stderr.take().ok_or("no registry output")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return Some(rest.split(['"', ' ']).next().unwrap_or_default().to_owned());
                }
                if line.contains("level=fatal") || line.contains("level=panic") {
                    tracing::error!(registry = %line, "the registry failed to start");
                    return None;
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("{} did not start listening on {}", binary.display(), setup.listen))?;
        // Its log goes on to ours (debug), so the pipe never fills.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(registry = %line);
            }
        });
        Ok(Self { child, addr })
    }

    /// Stops the registry.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Stops the registry a previous platform process started with `config` and could not stop (it was killed): the
/// process named in `pid_file`, if it still runs `docker-registry` with that configuration.
fn stop_leftover(pid_file: &Path, config: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) else { return };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return };
    let cmdline = String::from_utf8_lossy(&cmdline);
    if cmdline.contains(BINARY) && cmdline.contains(&*config.to_string_lossy()) {
        tracing::info!(pid, "stopping the registry a previous platform process left running");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
