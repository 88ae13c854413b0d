//! Network for a task whose run allows it, without the host's loopback: the task keeps its own network namespace,
//! and `slirp4netns` (user-mode NAT, `--disable-host-loopback`) connects it to the outside once bwrap has made it.
//! So a task reaches other hosts but never the platform's ports on 127.0.0.1. bwrap holds the task back
//! (`--block-fd`) until the link is up, and tells its pid (`--info-fd`).

use std::{
    io::{PipeReader, PipeWriter, Read, Write},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use command_fds::{CommandFdExt, FdMapping};

use super::Identity;

/// The fd numbers bwrap gets: where it writes its child's pid, where it waits for the go-ahead, and the
/// `resolv.conf` the task sees (slirp4netns's DNS forwarder).
pub const INFO_FD: i32 = 5;
/// See [`INFO_FD`].
pub const BLOCK_FD: i32 = 6;
/// See [`INFO_FD`].
pub const RESOLV_FD: i32 = 7;

/// slirp4netns's DNS forwarder, as seen from inside.
const RESOLV_CONF: &[u8] = b"nameserver 10.0.2.3\n";

/// How long bringing the link up may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's ends of the pipes bwrap gets for networking.
#[derive(Debug)]
pub struct Link {
    info: PipeReader,
    block: PipeWriter,
}

/// Makes the pipes: the mappings go to bwrap's command, the [`Link`] to [`connect`] once it started.
pub fn pipes() -> std::io::Result<(Vec<FdMapping>, Link)> {
    let (info, info_child) = std::io::pipe()?;
    let (block_child, block) = std::io::pipe()?;
    let (resolv_child, mut resolv) = std::io::pipe()?;
    // A line, far below a pipe's buffer: the write cannot block.
    resolv.write_all(RESOLV_CONF)?;
    drop(resolv);
    let mappings = vec![
        FdMapping { parent_fd: info_child.into(), child_fd: INFO_FD },
        FdMapping { parent_fd: block_child.into(), child_fd: BLOCK_FD },
        FdMapping { parent_fd: resolv_child.into(), child_fd: RESOLV_FD },
    ];
    Ok((mappings, Link { info, block }))
}

/// Connects the sandbox bwrap announces on `link` to the outside with `slirp4netns`, then lets the task start.
/// The returned process must live as long as the task (it is killed when dropped).
pub async fn connect(link: Link, slirp4netns: PathBuf, identity: Identity) -> Result<tokio::process::Child, String> {
    let Link { info, block } = link;
    let pid = tokio::time::timeout(SETUP_TIMEOUT, tokio::task::spawn_blocking(move || child_pid(info)))
        .await
        .map_err(|_| "the sandbox did not start in time".to_owned())?
        .map_err(|e| e.to_string())??;
    let (mut ready, ready_child) = std::io::pipe().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(&slirp4netns);
    command.args(["--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd=3"]);
    if identity == Identity::UserNamespace {
        command.arg(format!("--userns-path=/proc/{pid}/ns/user"));
    }
    command
        .arg(pid.to_string())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .fd_mappings(vec![FdMapping { parent_fd: ready_child.into(), child_fd: 3 }])
        .map_err(|_| "cannot hand slirp4netns its ready pipe".to_owned())?;
    let helper = command.spawn().map_err(|e| format!("cannot start slirp4netns: {e}"))?;
    drop(command);
    let up = tokio::time::timeout(
        SETUP_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            let mut byte = [0u8; 1];
            ready.read(&mut byte).map(|n| n == 1)
        }),
    )
    .await;
    if !matches!(up, Ok(Ok(Ok(true)))) {
        return Err("slirp4netns did not bring the task's network up".to_owned());
    }
    tokio::task::spawn_blocking(move || {
        let mut block = block;
        block.write_all(b"1")
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot start the task: {e}"))?;
    Ok(helper)
}

/// The `child-pid` bwrap writes to its info fd (a small JSON object).
fn child_pid(mut info: PipeReader) -> Result<u32, String> {
    let mut text = Vec::new();
    let mut chunk = [0u8; 256];
    while !text.contains(&b'}') && text.len() < 4096 {
        match info.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("cannot read the sandbox's pid: {e}")),
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|_| "the sandbox did not say its pid".to_owned())?;
    value["child-pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| "the sandbox did not say its pid".to_owned())
}
