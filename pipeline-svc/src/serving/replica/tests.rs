//! Replicas of a busybox image (`httpd` as the server) run with the sandbox as CI runs it (the server as root):
//! side by side on one port, reachable only through their relays, unable to reach the machine's loopback, and
//! seen to exit or stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::TcpListener, os::unix::fs::symlink, path::Path, sync::Arc, time::Duration};

use super::*;

/// The sandbox with the static init, or `None` (skipped) where bubblewrap is not installed; a failure then under
/// `HIGHWIND_REQUIRE_SANDBOX=1`.
pub(crate) fn confinement(dir: &Path) -> Option<Arc<Confinement>> {
    let required = std::env::var("HIGHWIND_REQUIRE_SANDBOX").is_ok_and(|v| v == "1");
    let Some(bwrap) = highwind_common::executables::find_on_path("bwrap") else {
        assert!(!required, "HIGHWIND_REQUIRE_SANDBOX=1 but bwrap is not installed");
        eprintln!("skipped: bwrap (bubblewrap) is not installed");
        return None;
    };
    let mut confinement = Confinement::new(bwrap, &[], &[dir.to_path_buf()], 1_600_000).expect("confinement");
    confinement.install_init(&dir.join("init")).expect("the static init");
    Some(Arc::new(confinement))
}

/// An image root of Debian's static busybox and its applets; `None` (skipped) without busybox-static.
pub(crate) fn busybox_root(dir: &Path) -> Option<PathBuf> {
    let busybox = ["/usr/bin/busybox", "/bin/busybox"].iter().find_map(|path| std::fs::read(path).ok());
    let required = std::env::var("HIGHWIND_REQUIRE_SANDBOX").is_ok_and(|v| v == "1");
    let Some(busybox) = busybox else {
        assert!(!required, "HIGHWIND_REQUIRE_SANDBOX=1 but busybox is not installed (busybox-static)");
        eprintln!("skipped: busybox is not installed");
        return None;
    };
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/busybox"), busybox).unwrap();
    std::fs::set_permissions(root.join("bin/busybox"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for applet in ["sh", "httpd", "wget", "mkdir", "echo", "sleep"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    Some(root)
}

/// A replica of the busybox image running `script` with `$WHO` set, listening (if the script serves) on 8080.
pub(crate) fn spec(dir: &Path, rootfs: &Path, id: &str, who: &str, script: &str) -> ReplicaSpec {
    ReplicaSpec {
        id: id.to_owned(),
        rootfs: rootfs.to_path_buf(),
        config: ImageConfig {
            env: vec!["PATH=/bin".to_owned()],
            entrypoint: vec!["/bin/sh".to_owned(), "-c".to_owned()],
            cmd: vec!["exit 9".to_owned()],
            ..ImageConfig::default()
        },
        args: vec![script.to_owned()],
        env: vec![("WHO".to_owned(), who.to_owned())],
        port: 8080,
        dir: dir.join("replicas").join(id),
        log: dir.join("logs").join(format!("{id}.log")),
        max_log_bytes: 1 << 20,
        sockets: dir.join("sockets"),
        network: false,
        limits: TaskLimits::default(),
    }
}

/// Serves `$HOME/www` on 8080 after writing `$WHO` (and whatever `before` prints) as its readiness answer.
const SERVE: &str = "mkdir -p $HOME/www/v2/health && { echo $WHO; BEFORE; } > $HOME/www/v2/health/ready \
                     && exec httpd -f -p 127.0.0.1:8080 -h $HOME/www";

const READY: &str = "/v2/health/ready";

#[tokio::test]
async fn replicas_on_one_port_run_side_by_side_each_reached_through_its_own_relay_only() {
    let dir = tempfile::tempdir().unwrap();
    let Some(confinement) = confinement(dir.path()) else { return };
    let Some(rootfs) = busybox_root(dir.path()) else { return };
    // A port on the machine's loopback a replica must not reach.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let probe = format!(
        "wget -q -T 2 -O- http://127.0.0.1:{}/ && echo reached || echo unreachable",
        host.local_addr().unwrap().port()
    );
    let script = SERVE.replace("BEFORE", &probe);
    let mut a = Replica::start(&confinement, spec(dir.path(), &rootfs, "a-predictor-0", "a", &script)).await.unwrap();
    let mut b = Replica::start(&confinement, spec(dir.path(), &rootfs, "b-predictor-0", "b", &script)).await.unwrap();
    for replica in [&mut a, &mut b] {
        let ready = replica.until_ready(READY, Duration::from_millis(50), Duration::from_secs(20)).await;
        assert_eq!(ready, Readiness::Ready);
    }
    let (status, body) = a.get(READY).await.expect("a answers");
    assert_eq!((status, body.as_ref()), (200, &b"a\nunreachable\n"[..]), "a's own server; the host's port unreachable");
    let (_, body) = b.get(READY).await.expect("b answers");
    assert_eq!(body.as_ref(), b"b\nunreachable\n", "b's own server on the same port");
    assert!(host.accept().is_err(), "nothing reached the machine's loopback");

    // The sockets are the server's alone.
    let mode = std::fs::metadata(dir.path().join("sockets")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700);

    // Stopped: gone, and its socket refuses.
    let exit = a.stop().await;
    assert!(matches!(exit, Exit::Code(_)), "{exit:?}");
    assert!(UnixStream::connect(dir.path().join("sockets/a-predictor-0.sock")).await.is_err());
    assert_eq!(b.get(READY).await.map(|(status, _)| status), Some(200), "b is untouched");
    b.stop().await;
}

#[tokio::test]
async fn a_replica_that_exits_or_never_listens_is_seen_to() {
    let dir = tempfile::tempdir().unwrap();
    let Some(confinement) = confinement(dir.path()) else { return };
    let Some(rootfs) = busybox_root(dir.path()) else { return };
    let mut crashing =
        Replica::start(&confinement, spec(dir.path(), &rootfs, "c-0", "c", "sleep 0.3; exit 3")).await.unwrap();
    let ready = crashing.until_ready(READY, Duration::from_millis(50), Duration::from_secs(20)).await;
    assert_eq!(ready, Readiness::Exited(Exit::Code(3)), "its own status");

    let mut silent = Replica::start(&confinement, spec(dir.path(), &rootfs, "d-0", "d", "sleep 60")).await.unwrap();
    let ready = silent.until_ready(READY, Duration::from_millis(50), Duration::from_millis(600)).await;
    assert_eq!(ready, Readiness::TimedOut);
    assert!(silent.get(READY).await.is_none(), "nothing listens: the relay closes the connection");
    silent.stop().await;

    // No command at all is refused before anything starts.
    let mut empty = spec(dir.path(), &rootfs, "e-0", "e", "");
    empty.config.entrypoint.clear();
    empty.config.cmd.clear();
    empty.args.clear();
    let refused = Replica::start(&confinement, empty).await.expect_err("nothing to run");
    assert!(refused.contains("no entrypoint or command"), "{refused}");
}
