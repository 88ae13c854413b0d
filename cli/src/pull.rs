//! `highwind dataset|model pull`: write a version's files into a directory, verifying every byte.

use std::{io::Write, path::Path};

use highwind_proto::asset::v1 as pb;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

use super::{CliError, connect::Target, manifest, progress::Progress};

/// Writes every file of `version` under `dir`; files already there with the right content are kept.
pub async fn pull(target: &Target, version: &str, dir: &Path) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let found = clients
        .assets
        .get_asset_version(pb::GetAssetVersionRequest { name: version.to_owned() })
        .await
        .map_err(CliError::call(format!("looking up {version}")))?
        .into_inner();
    for file in &found.files {
        let destination = manifest::destination(dir, &file.path)?;
        let size = u64::try_from(file.size_bytes).unwrap_or(0);
        if same_content(&destination, &file.sha256) {
            Progress::start(&file.path, size, size).finish(&file.path, "already there");
            continue;
        }
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(CliError::io(parent))?;
        }
        let partial = destination
            .with_file_name(format!(".{}.partial", destination.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
        let mut out = std::fs::File::create(&partial).map_err(CliError::io(&partial))?;
        let progress = Progress::start(&file.path, size, 0);
        let mut hasher = Sha256::new();
        let request =
            pb::ReadFileRequest { version: found.name.clone(), path: file.path.clone(), ..Default::default() };
        let mut frames = clients
            .uploads
            .read_file(request)
            .await
            .map_err(CliError::call(format!("downloading {}", file.path)))?
            .into_inner();
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(CliError::call(format!("downloading {}", file.path)))?;
            hasher.update(&frame.data);
            out.write_all(&frame.data).map_err(CliError::io(&partial))?;
            progress.advance(frame.data.len() as u64);
        }
        out.sync_all().map_err(CliError::io(&partial))?;
        let actual = hex::encode(hasher.finalize());
        if actual != file.sha256 {
            let _ = std::fs::remove_file(&partial);
            return Err(CliError::Corrupt { path: file.path.clone(), expected: file.sha256.clone(), actual });
        }
        std::fs::rename(&partial, &destination).map_err(CliError::io(&destination))?;
        progress.finish(&file.path, "downloaded");
    }
    Ok(())
}

fn same_content(path: &Path, sha256: &str) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).is_ok() && hex::encode(hasher.finalize()) == sha256
}
