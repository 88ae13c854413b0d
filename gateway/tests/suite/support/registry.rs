//! A real registry per test: Debian's `docker-registry` (CNCF distribution 2.8) on a loopback port with token auth
//! pointing at the platform's token endpoint, `skopeo` to push and pull, and tiny OCI image layouts written here.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Whether `docker-registry` and `skopeo` are on the PATH; a failure without them under
/// `HIGHWIND_REQUIRE_REGISTRY=1`.
pub fn available() -> bool {
    let found =
        ["docker-registry", "skopeo"].iter().all(|tool| highwind_common::executables::find_on_path(tool).is_some());
    if !found && std::env::var("HIGHWIND_REQUIRE_REGISTRY").is_ok_and(|v| v == "1") {
        panic!("HIGHWIND_REQUIRE_REGISTRY=1 but docker-registry or skopeo is not installed");
    }
    if !found {
        eprintln!("skipped: docker-registry and skopeo are not installed (apt-get install docker-registry skopeo)");
    }
    found
}

/// Debian's statically linked busybox (`busybox-static`), the one program of the images tests build; a failure
/// without it under `HIGHWIND_REQUIRE_REGISTRY=1`.
pub fn busybox() -> Option<Vec<u8>> {
    let found = ["/usr/bin/busybox", "/bin/busybox"].iter().find_map(|path| std::fs::read(path).ok());
    let required = std::env::var("HIGHWIND_REQUIRE_REGISTRY").is_ok_and(|v| v == "1");
    assert!(found.is_some() || !required, "HIGHWIND_REQUIRE_REGISTRY=1 but busybox is not installed (busybox-static)");
    if found.is_none() {
        eprintln!("skipped: busybox is not installed (apt-get install busybox-static)");
    }
    found
}

/// A running registry.
pub struct Registry {
    child: tokio::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry that trusts `bundle` and sends clients to `realm` for tokens.
    pub async fn start(realm: &str, bundle: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yml");
        let text = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\nauth:\n  token:\n    realm: {realm}\n    service: highwind-registry\n    \
             issuer: highwind\n    rootcertbundle: {}\n",
            dir.path().join("data").display(),
            bundle.display()
        );
        std::fs::write(&config, text).unwrap();
        let (child, addr) = spawn(&config).await;
        Self { child, addr, config, _dir: dir }
    }

    /// Stops the registry and starts it again on the same storage (it rereads its certificate bundle).
    pub async fn restart(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        let (child, addr) = spawn(&self.config).await;
        self.child = child;
        self.addr = addr;
    }

    /// `GET /v2/{path}` with `token` as the bearer: the HTTP status.
    pub async fn get(&self, path: &str, token: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("http://{}/v2/{path}", self.addr))
            .bearer_auth(token)
            .header("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

async fn spawn(config: &Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new("docker-registry")
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start docker-registry");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("registry starts in time")
            .unwrap()
            .expect("registry output");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(['"', ' ']).next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the registry never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The outcome of a skopeo command: success and what it said.
pub struct Skopeo {
    pub ok: bool,
    pub output: String,
}

/// Runs `skopeo` with `args` (no signature policy, plain HTTP to the registry).
pub async fn skopeo(args: &[&str]) -> Skopeo {
    let output =
        tokio::process::Command::new("skopeo").arg("--insecure-policy").args(args).output().await.expect("run skopeo");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Skopeo { ok: output.status.success(), output: text }
}

/// Copies the image `reference` of the OCI layout `layout` to `destination` (`host/repo:tag`) with `password`.
pub async fn push(layout: &Path, reference: &str, destination: &str, password: &str, all: bool) -> Skopeo {
    let source = format!("oci:{}:{reference}", layout.display());
    let target = format!("docker://{destination}");
    let creds = format!("highwind:{password}");
    let mut args = vec!["copy", "--dest-tls-verify=false", "--dest-creds", &creds];
    if all {
        args.extend(["--all", "--preserve-digests"]);
    }
    args.extend([source.as_str(), target.as_str()]);
    skopeo(&args).await
}

/// Reads the manifest of `image` (`host/repo:tag`) with `password`.
pub async fn inspect(image: &str, password: &str) -> Skopeo {
    let creds = format!("highwind:{password}");
    let target = format!("docker://{image}");
    skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &target]).await
}

/// An OCI image layout being written.
pub struct Layout {
    pub dir: tempfile::TempDir,
    refs: Vec<serde_json::Value>,
}

/// A written blob: media type, digest and size, as descriptors name them.
#[derive(Clone)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
}

impl Descriptor {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

impl Layout {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self { dir, refs: Vec::new() }
    }

    fn blob(&self, media_type: &str, content: &[u8]) -> Descriptor {
        let hex = hex::encode(Sha256::digest(content));
        std::fs::write(self.dir.path().join("blobs/sha256").join(&hex), content).unwrap();
        Descriptor { media_type: media_type.into(), digest: format!("sha256:{hex}"), size: content.len() }
    }

    /// An image for `os/architecture[/variant]` whose one layer holds `file` with `content`.
    pub fn image(&self, platform: &str, content: &str) -> Descriptor {
        let mut parts = platform.split('/');
        let (os, architecture, variant) = (parts.next().unwrap(), parts.next().unwrap(), parts.next());
        // Already gzip-compressed, as registries expect: skopeo then pushes every blob as written here, so the
        // digests computed here are the pushed ones.
        let tar = tar_with("app/model.txt", content.as_bytes());
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        let layer = self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gzip_stored(&tar));
        let mut config = serde_json::json!({
            "architecture": architecture,
            "os": os,
            "created": "2026-01-02T03:04:05Z",
            "config": {"Cmd": ["python", "-m", "model"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        if let Some(variant) = variant {
            config["variant"] = variant.into();
        }
        let config = self.blob("application/vnd.oci.image.config.v1+json", config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.json(),
            "layers": [layer.json()],
        });
        self.blob("application/vnd.oci.image.manifest.v1+json", manifest.to_string().as_bytes())
    }

    /// An image index over `images` with their platforms.
    pub fn index(&self, images: &[(&str, Descriptor)]) -> Descriptor {
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|(platform, d)| {
                let mut parts = platform.split('/');
                let mut entry = d.json();
                entry["platform"] = serde_json::json!({"os": parts.next(), "architecture": parts.next()});
                if let Some(variant) = parts.next() {
                    entry["platform"]["variant"] = variant.into();
                }
                entry
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        self.blob("application/vnd.oci.image.index.v1+json", index.to_string().as_bytes())
    }

    /// Names `descriptor` `reference` in the layout's index.json.
    pub fn tag(&mut self, reference: &str, descriptor: &Descriptor) {
        let mut entry = descriptor.json();
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": reference});
        self.refs.push(entry);
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.refs});
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A ustar archive holding one regular file.
fn tar_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: usize| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len());
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: usize = header.iter().map(|b| usize::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    let mut archive = header.to_vec();
    archive.extend_from_slice(content);
    archive.resize(archive.len().div_ceil(512) * 512 + 1024, 0);
    archive
}

/// `data` as a gzip member of stored (uncompressed) deflate blocks: valid gzip without a compressor.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(65_535).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = u16::try_from(chunk.len()).unwrap();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
