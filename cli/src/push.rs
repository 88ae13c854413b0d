//! `highwind dataset|model push`: send a file or directory as a new version, resuming where an earlier run
//! stopped and skipping content the platform already holds.

use std::{io::Read, path::Path};

use bytes::Bytes;
use highwind_proto::asset::v1 as pb;
use sha2::{Digest, Sha256};

use super::{
    CliError,
    connect::{Clients, Target},
    manifest::{self, LocalFile},
    progress::Progress,
};

/// Bytes per upload frame, well under the 4 MiB message limit.
const FRAME_BYTES: usize = 2 * 1024 * 1024;

/// Which asset receives the version.
#[derive(Debug, Clone)]
pub enum PushSource {
    /// An existing asset, `assets/ID`.
    Existing(String),
    /// A new asset with this display name.
    New(String),
}

/// Pushes `path` as a new version of a `kind` asset and returns the version's name.
pub async fn push(target: &Target, kind: pb::AssetKind, into: PushSource, path: &Path) -> Result<String, CliError> {
    let root = path.to_path_buf();
    let files = tokio::task::spawn_blocking(move || manifest::scan(&root))
        .await
        .map_err(|e| CliError::Usage(e.to_string()))??;
    let fingerprint = fingerprint(&files);
    let mut clients = target.connect().await?;
    let asset = resolve_asset(&mut clients, kind, into, &fingerprint).await?;

    let mut attempt = 1;
    let upload = loop {
        let request_id = format!("cli-push-{}-{attempt}", short_hash(&format!("{}|{fingerprint}", asset.name)));
        let upload = clients
            .uploads
            .create_upload(pb::CreateUploadRequest {
                parent: asset.name.clone(),
                files: files
                    .iter()
                    .map(|f| pb::UploadFile {
                        path: f.path.clone(),
                        size_bytes: i64::try_from(f.size).unwrap_or(i64::MAX),
                        sha256: f.sha256.clone(),
                        ..Default::default()
                    })
                    .collect(),
                request_id,
                ..Default::default()
            })
            .await
            .map_err(CliError::call("opening the upload"))?
            .into_inner();
        let closed = [pb::UploadState::Cancelled as i32, pb::UploadState::Expired as i32];
        if closed.contains(&upload.state) && attempt < 10 {
            attempt += 1;
            continue;
        }
        break upload;
    };

    if upload.state == pb::UploadState::Open as i32 {
        for declared in &upload.files {
            let Some(local) = files.iter().find(|f| f.path == declared.path) else { continue };
            let done = u64::try_from(declared.acknowledged_offset).unwrap_or(0);
            if declared.present || done >= local.size {
                if declared.present && local.size > 0 {
                    Progress::start(&local.path, local.size, local.size).finish(&local.path, "skipped: already stored");
                }
                continue;
            }
            send_file(&mut clients, &upload.name, local, done).await?;
        }
    }
    let version = clients
        .uploads
        .commit_upload(pb::CommitUploadRequest { name: upload.name.clone() })
        .await
        .map_err(CliError::call("committing the version"))?
        .into_inner();
    Ok(version.name)
}

async fn resolve_asset(
    clients: &mut Clients,
    kind: pb::AssetKind,
    into: PushSource,
    fingerprint: &str,
) -> Result<pb::Asset, CliError> {
    let noun = if kind == pb::AssetKind::Model { "model" } else { "dataset" };
    match into {
        PushSource::Existing(name) => {
            let asset = clients
                .assets
                .get_asset(pb::GetAssetRequest { name: name.clone() })
                .await
                .map_err(CliError::call(format!("looking up {name}")))?
                .into_inner();
            if asset.kind != kind as i32 {
                return Err(CliError::Usage(format!("{name} is not a {noun} asset")));
            }
            Ok(asset)
        }
        PushSource::New(display_name) => {
            // The same push run again finds the asset its first run created.
            let request_id = format!("cli-new-{}", short_hash(&format!("{noun}|{display_name}|{fingerprint}")));
            let asset = pb::Asset { kind: kind as i32, display_name, ..Default::default() };
            Ok(clients
                .assets
                .create_asset(pb::CreateAssetRequest { asset: Some(asset), request_id })
                .await
                .map_err(CliError::call(format!("creating the {noun} asset")))?
                .into_inner())
        }
    }
}

async fn send_file(clients: &mut Clients, upload: &str, file: &LocalFile, from: u64) -> Result<(), CliError> {
    let progress = Progress::start(&file.path, file.size, from);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::WriteUploadRequest>(4);
    let source = file.source.clone();
    let (upload_name, path) = (upload.to_owned(), file.path.clone());
    let reported = progress.clone();
    // A dedicated thread reads the file so the async runtime never blocks on disk.
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut handle = std::fs::File::open(&source)?;
        handle.seek(SeekFrom::Start(from))?;
        let mut offset = from;
        loop {
            let mut buf = vec![0u8; FRAME_BYTES];
            let n = handle.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            let frame = pb::WriteUploadRequest {
                upload: upload_name.clone(),
                path: path.clone(),
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                data: Bytes::from(buf),
            };
            if tx.blocking_send(frame).is_err() {
                return Ok(());
            }
            reported.advance(n as u64);
            offset += n as u64;
        }
    });
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx);
    let sent = clients.uploads.write_upload(frames).await;
    reader.await.map_err(|e| CliError::Usage(e.to_string()))?.map_err(CliError::io(&file.source))?;
    sent.map_err(CliError::call(format!("uploading {}", file.path)))?;
    progress.finish(&file.path, "uploaded");
    Ok(())
}

/// A digest of the whole local manifest, so re-running the same push finds the same upload.
fn fingerprint(files: &[LocalFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(format!("{} {} {}\n", file.sha256, file.size, file.path).as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}
