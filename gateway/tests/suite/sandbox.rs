//! The task sandbox, attacked from inside a task: a task cannot undo its confinement, read the platform's data or
//! another run's files, reach the host's loopback, or outgrow its limits; the same with the server running as root
//! (as CI does) and as an ordinary user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::pipeline::v1 as pb;

use crate::support::{
    Platform,
    runs::{create, probe_run, run_of, sandbox_available, state, string_output, task, text, watch},
};

/// What the attacker ran from a task: unmount the hiding layers, read the secret, remount the host writable and
/// write to it, make a namespace of their own.
fn escape_script(data: &str) -> String {
    format!(
        r#"out="$0"; exec > "$out" 2>&1
echo "uid $(id -u)"
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
umount -l {data}/runs; echo "umount runs: $?"
umount -l {data}; echo "umount data: $?"
cat {data}/secrets.json; echo "cat secrets: $?"
echo "data holds: $(ls -A {data})"
mount -o remount,rw,bind /; echo "remount root: $?"
mount -o remount,rw,bind /usr; echo "remount usr: $?"
touch /usr/highwind-escaped; echo "write host: $?"
unshare -r true; echo "unshare: $?"
"#
    )
}

/// Runs [`escape_script`] as alice on `platform` and checks that every step failed and nothing leaked.
async fn every_escape_fails(platform: &Platform, run: pb::Run) {
    let secret = std::fs::read_to_string(platform.dir.path().join("secrets.json")).expect("the platform's secret");
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let said = string_output(&task(&run, "probe").outputs, "said");
    let line = |prefix: &str| {
        said.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {said}")).to_owned()
    };
    assert_ne!(line("uid "), "uid 0", "tasks never run as root: {said}");
    for caps in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(line(caps).ends_with("0000000000000000"), "no capabilities at all: {said}");
    }
    assert!(line("NoNewPrivs:").ends_with('1'), "{said}");
    assert!(line("Seccomp:").ends_with('2'), "a seccomp filter is in force: {said}");
    // The task's directory is mounted under the neutral root: the platform's data directory is not there at all.
    assert_eq!(line("data holds:").trim_end(), "data holds:", "nothing of the platform's data directory: {said}");
    for step in ["umount runs", "umount data", "cat secrets", "remount root", "remount usr", "write host"] {
        assert_ne!(line(step), format!("{step}: 0"), "{step} must fail: {said}");
    }
    assert_ne!(line("unshare"), "unshare: 0", "no new namespaces: {said}");
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    for value in secret.as_object().unwrap().values().filter_map(|v| v.as_str()).filter(|v| v.len() > 8) {
        assert!(!said.contains(value), "the platform's secret never reaches a task: {said}");
    }
    assert!(!std::path::Path::new("/usr/highwind-escaped").exists(), "the host stays unwritten");
}

#[tokio::test]
async fn a_task_can_neither_undo_its_sandbox_nor_reach_the_platform_data() {
    if !sandbox_available() {
        return;
    }
    let platform = Platform::start().await;
    let data = platform.dir.path().canonicalize().unwrap().display().to_string();
    let run = probe_run(&platform, "alice", &escape_script(&data), false).await;
    every_escape_fails(&platform, run).await;
    platform.stop().await;
}

/// Set in the copy of this test binary that runs as an ordinary user.
const AS_ORDINARY_USER: &str = "HIGHWIND_SANDBOX_TEST_AS_ORDINARY_USER";
/// The uid and gid that copy runs as (`nobody`).
const ORDINARY_UID: &str = "65534";

#[tokio::test]
async fn a_server_running_as_an_ordinary_user_confines_its_tasks_the_same_way() {
    if std::env::var_os(AS_ORDINARY_USER).is_some() {
        return ordinary_user_half().await;
    }
    if !sandbox_available() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: already an ordinary user, which the test above covers");
        return;
    }
    // The test binary sits in a directory only root reads: a copy that nobody may run runs this test again.
    let work = tempfile::tempdir().unwrap();
    let binary = work.path().join("sandbox-test");
    std::fs::copy(std::env::current_exe().unwrap(), &binary).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_as_nobody = || {
        let output = std::process::Command::new("setpriv")
            .args(["--reuid", ORDINARY_UID, "--regid", ORDINARY_UID, "--clear-groups", "--inh-caps=-all"])
            .arg(&binary)
            .args([
                "--exact",
                "sandbox::a_server_running_as_an_ordinary_user_confines_its_tasks_the_same_way",
                "--nocapture",
            ])
            .env(AS_ORDINARY_USER, "1")
            .env_remove("HIGHWIND_TEST_KFP_VENV")
            .env_remove("HIGHWIND_REQUIRE_KFP")
            .env("HOME", work.path())
            .current_dir(work.path())
            .output()
            .expect("run the copy as nobody");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output, said)
    };
    // Other tests of this binary fork while the copy is written: a child between its fork and its exec still holds
    // the copy open for writing, and exec then fails with ETXTBSY until that child has exec'd. Wait that out.
    let mut attempt = 0;
    let (output, said) = loop {
        let (output, said) = run_as_nobody();
        attempt += 1;
        if output.status.success() || !said.contains("Text file busy") || attempt == 50 {
            break (output, said);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(output.status.success(), "as an ordinary user: {said}");
    assert!(said.contains("1 passed"), "the ordinary user's half ran: {said}");
}

/// The platform started by an ordinary user, attacked from a task as the root server's is.
async fn ordinary_user_half() {
    assert!(!nix::unistd::geteuid().is_root(), "this half runs as an ordinary user");
    // The system's PATH: a tool directory under root's home is no ordinary user's to bind.
    let platform = Platform::builder().configure(|options| options.task_path = String::new()).start().await;
    let asset = platform.create_asset("alice", highwind_proto::asset::v1::AssetKind::Pipeline).await;
    let probe = crate::support::runs::sample("j_shell_probe.yaml");
    let version = platform.commit_files("alice", &asset, &[("pipeline.yaml", probe)]).await.expect("commit");
    let data = platform.dir.path().canonicalize().unwrap().display().to_string();
    let run = run_of(&version.name, &[("script", text(&escape_script(&data)))]);
    let created = create(&platform, "alice", run).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    every_escape_fails(&platform, run).await;
    platform.stop().await;
}

#[tokio::test]
async fn a_task_cannot_read_another_runs_files_and_sees_only_the_hosts_system_directories() {
    if !sandbox_available() {
        return;
    }
    let platform = Platform::start().await;
    let first = probe_run(&platform, "bob", r#"echo "bob's private words" > "$0"; echo kept > mine"#, false).await;
    assert_eq!(state(&first), pb::RunState::Succeeded, "{:?}", first.error);
    let run_dir = platform.dir.path().join("runs").join(first.name.trim_start_matches("runs/"));
    let bobs_file = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("mine"))
        .find(|p| p.exists())
        .expect("bob's task wrote into its directory");
    std::fs::write(platform.shared.path().join("note"), "shared").unwrap();
    let script = format!(
        r#"out="$0"; exec > "$out" 2>&1
cat {bobs}; echo "other run: $?"
ls {runs}; echo "runs dir: $?"
ls /root /home; echo "homes: $?"
cat /etc/hostname > /dev/null; echo "system: $?"
cat {shared}/note; echo
touch {shared}/written; echo "write shared: $?"
"#,
        bobs = bobs_file.display(),
        runs = run_dir.display(),
        shared = platform.shared.path().display(),
    );
    let run = probe_run(&platform, "alice", &script, false).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let said = string_output(&task(&run, "probe").outputs, "said");
    assert!(!said.contains("private words") && !said.contains("kept"), "{said}");
    for step in ["other run", "runs dir", "homes", "write shared"] {
        assert!(!said.contains(&format!("{step}: 0")), "{step} must fail: {said}");
    }
    assert!(
        said.contains("system: 0") && said.contains("shared\n"),
        "tools and the shared directory stay readable: {said}"
    );
    platform.stop().await;
}

/// A non-loopback address of this machine, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let output = std::process::Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse().ok())
        .find(|a: &std::net::IpAddr| a.is_ipv4())
}

#[tokio::test]
async fn a_task_has_no_network_unless_its_run_allows_it_and_never_the_hosts_loopback() {
    if !sandbox_available() {
        return;
    }
    if highwind_common::executables::find_on_path("slirp4netns").is_none() {
        let required = std::env::var("HIGHWIND_REQUIRE_SANDBOX").is_ok_and(|v| v == "1");
        assert!(!required, "HIGHWIND_REQUIRE_SANDBOX=1 but slirp4netns is not installed");
        eprintln!("skipped: slirp4netns is not installed");
        return;
    }
    let platform = Platform::start().await;
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gateway_port = platform.standalone.addr.port();
    let outside = outside_address();
    let connect = |host: String, port: u16| {
        format!(
            r#"python3 -c 'import socket; socket.create_connection(("{host}", {port}), 3)' 2>/dev/null; echo "{host}:{port} $?" >> "$0""#
        )
    };
    let mut script = format!("{}; {}", connect("127.0.0.1".into(), port), connect("127.0.0.1".into(), gateway_port));
    if let Some(outside) = outside {
        script = format!("{script}; {}", connect(outside.to_string(), port));
    }
    // Names resolve through slirp4netns's forwarder, which the task's own uid must be able to read.
    script = format!(r#"{script}; grep -q '^nameserver 10.0.2.3$' /etc/resolv.conf; echo "resolver $?" >> "$0""#);
    let closed = probe_run(&platform, "alice", &script, false).await;
    let said = string_output(&task(&closed, "probe").outputs, "said");
    assert!(said.lines().all(|l| !l.ends_with(" 0")), "no network unless the run allows it: {said}");

    let open = probe_run(&platform, "alice", &script, true).await;
    assert_eq!(state(&open), pb::RunState::Succeeded, "{:?}", open.error);
    let said = string_output(&task(&open, "probe").outputs, "said");
    assert!(said.contains(&format!("127.0.0.1:{port} 1")), "the host's loopback stays out of reach: {said}");
    assert!(said.contains(&format!("127.0.0.1:{gateway_port} 1")), "the platform's ports too: {said}");
    assert!(said.contains("resolver 0"), "the task reads the resolver it is given: {said}");
    match outside {
        Some(outside) => assert!(said.contains(&format!("{outside}:{port} 0")), "other hosts are reachable: {said}"),
        None => eprintln!("this machine has no address but loopback: the reachable half is not checked"),
    }
    platform.stop().await;
}

#[tokio::test]
async fn a_task_over_its_limits_is_stopped_and_says_which() {
    if !sandbox_available() {
        return;
    }
    let platform = Platform::start().await;
    let hog = probe_run(&platform, "alice", "python3 -c 'bytearray(8 << 30)'", false).await;
    assert_eq!(state(&hog), pb::RunState::Failed);
    let error = task(&hog, "probe").error.clone().expect("why");
    assert_eq!(error.reason, "MEMORY_LIMIT", "{error:?}");
    assert!(error.message.contains("memory limit of 4096 MiB"), "{error:?}");

    let forks = r#"python3 -c '
import os, sys, time
started = 0
try:
    for _ in range(600):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        started += 1
except OSError:
    pass
open(sys.argv[1], "w").write(f"started {started}")
' "$0""#;
    let run = probe_run(&platform, "alice", forks, false).await;
    let said = string_output(&task(&run, "probe").outputs, "said");
    let started: usize = said.trim().trim_start_matches("started ").parse().expect("a count");
    if nix::unistd::geteuid().is_root() {
        assert!(started < 600, "the process limit holds (512 per task): {said}");
    }
    platform.stop().await;
}

/// A shared library that, wherever it is loaded, appends the loading program's uid to the file `HW_MARK` names.
const MARKING_LIBRARY: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
    const char *path = getenv("HW_MARK");
    if (!path) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0) return;
    dprintf(fd, "loaded as uid %d\n", (int)getuid());
    close(fd);
}
"#;

/// The one-step probe pipeline with `env` set on its container, as `task.set_env_variable` compiles it.
fn probe_with_env(env: &[(&str, &str)]) -> Vec<u8> {
    let ir = String::from_utf8(crate::support::runs::sample("j_shell_probe.yaml")).unwrap();
    let mut block = String::from("        env:\n");
    for (name, value) in env {
        block.push_str(&format!("        - name: {name}\n          value: '{value}'\n"));
    }
    let image = "        image: alpine:3.20\n";
    assert!(ir.contains(image));
    ir.replace(image, &format!("{block}{image}")).into_bytes()
}

#[tokio::test]
async fn a_pipelines_environment_reaches_only_its_task_never_the_programs_that_confine_it() {
    if !sandbox_available() {
        return;
    }
    let Some(cc) = highwind_common::executables::find_on_path("cc") else {
        assert!(std::env::var_os("CI").is_none(), "CI needs a C compiler for this test");
        eprintln!("skipped: no C compiler");
        return;
    };
    // What an attacker prepares: a library whose constructor runs in every program that loads it.
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(outside.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let source = outside.path().join("mark.c");
    std::fs::write(&source, MARKING_LIBRARY).unwrap();
    let library = outside.path().join("mark.so");
    let built =
        std::process::Command::new(cc).args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).status().unwrap();
    assert!(built.success(), "cc could not build the library");
    let marks = outside.path().join("marks");
    let (library, marks) = (library.display().to_string(), marks.display().to_string());

    let platform = Platform::start().await;
    let asset = platform.create_asset("alice", highwind_proto::asset::v1::AssetKind::Pipeline).await;
    let ir = probe_with_env(&[("LD_PRELOAD", &library), ("HW_MARK", &marks), ("GREETING", "hello from the IR")]);
    let version = platform.commit_files("alice", &asset, &[("pipeline.yaml", ir)]).await.expect("commit");
    let script = r#"echo "greeting=$GREETING preload=$LD_PRELOAD" > "$0""#;
    let run = run_of(&format!("{asset}/versions/{}", version.version_number), &[("script", text(script))]);
    let created = create(&platform, "alice", run).await.expect("create");
    let run = watch(&platform, "alice", &created.name).await.1;

    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let said = string_output(&task(&run, "probe").outputs, "said");
    assert_eq!(said.trim(), format!("greeting=hello from the IR preload={library}"), "the task gets its environment");
    let marked = std::fs::read_to_string(&marks).unwrap_or_default();
    assert!(marked.is_empty(), "no program outside the task's confinement loaded the pipeline's library: {marked}");
    platform.stop().await;
}
