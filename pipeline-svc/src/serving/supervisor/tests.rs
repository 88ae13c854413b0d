//! A component's replicas kept running: ready ones share the calls, a replica that exits is started again after a
//! backoff and the condition says why it is not ready, one that keeps failing is in `CrashLoopBackOff`, and
//! stopping ends them all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use super::*;
use crate::serving::replica::tests::{busybox_root, confinement};

fn component(dir: &Path, rootfs: &Path, replicas: u32, script: &str) -> Component {
    Component {
        condition: "PredictorReady",
        replica: crate::serving::replica::tests::spec(dir, rootfs, "p", "p", script),
        replicas,
        ready_path: "/v2/health/ready".to_owned(),
        startup_timeout: Duration::from_secs(20),
        probe_every: Duration::from_millis(50),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    }
}

/// Waits until `status` satisfies `wanted` (at most 30 s); the status then.
async fn until(
    status: &mut watch::Receiver<ComponentStatus>,
    wanted: impl Fn(&ComponentStatus) -> bool,
) -> ComponentStatus {
    let found = tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| wanted(s))).await;
    found.expect("in time").expect("the supervisor publishes").clone()
}

const SERVE: &str = "mkdir -p $HOME/www/v2/health && echo ok > $HOME/www/v2/health/ready \
                     && exec httpd -f -p 127.0.0.1:8080 -h $HOME/www";

#[tokio::test]
async fn ready_replicas_share_the_calls_and_stopping_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let Some(confinement) = confinement(dir.path()) else { return };
    let Some(rootfs) = busybox_root(dir.path()) else { return };
    let supervisor = Supervisor::start(confinement, component(dir.path(), &rootfs, 2, SERVE));
    let mut status = supervisor.status();
    let ready = until(&mut status, |s| s.ready == 2).await;
    assert_eq!(ready.condition.status, ConditionStatus::True);
    assert_eq!((ready.condition.kind, ready.wanted, ready.restarts), ("PredictorReady", 2, 0));
    for _ in 0..4 {
        assert!(supervisor.connect().await.is_some(), "a ready replica takes the call");
    }
    let sockets = dir.path().join("sockets");
    assert_eq!(std::fs::read_dir(&sockets).unwrap().count(), 2, "one relay per replica");
    supervisor.stop().await;
    for entry in std::fs::read_dir(&sockets).unwrap() {
        assert!(std::os::unix::net::UnixStream::connect(entry.unwrap().path()).is_err(), "nothing answers");
    }
}

#[tokio::test]
async fn a_replica_that_exits_is_started_again_and_one_that_keeps_failing_is_in_a_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let Some(confinement) = confinement(dir.path()) else { return };
    let Some(rootfs) = busybox_root(dir.path()) else { return };
    // Serves for a second, then exits: ready, then not, then ready again.
    let serve_then_exit = "mkdir -p $HOME/www/v2/health && echo ok > $HOME/www/v2/health/ready \
                           && httpd -p 127.0.0.1:8080 -h $HOME/www && sleep 1 && exit 4";
    let supervisor = Supervisor::start(confinement.clone(), component(dir.path(), &rootfs, 1, serve_then_exit));
    let mut status = supervisor.status();
    until(&mut status, |s| s.ready == 1).await;
    let down = until(&mut status, |s| s.ready == 0).await;
    assert_eq!(down.condition.status, ConditionStatus::False);
    assert_eq!(down.condition.reason, "Exited");
    assert!(down.condition.message.contains("status 4"), "{:?}", down.condition);
    let again = until(&mut status, |s| s.ready == 1 && s.restarts >= 1).await;
    assert_eq!(again.condition.status, ConditionStatus::True, "started again after its backoff");
    supervisor.stop().await;

    let failing = Supervisor::start(confinement, component(dir.path().join("f").as_path(), &rootfs, 1, "exit 3"));
    let mut status = failing.status();
    let looping = until(&mut status, |s| s.condition.reason == "CrashLoopBackOff").await;
    assert_eq!(looping.condition.status, ConditionStatus::False);
    assert!(looping.restarts >= 3 && looping.condition.message.contains("status 3"), "{looping:?}");
    assert!(failing.connect().await.is_none(), "no replica is ready to take a call");
    failing.stop().await;
}
