//! Proto ↔ domain conversions for assets.

use highwind_common::validation::Violations;
use highwind_proto::asset::v1 as pb;

use crate::domain::{
    aliases::Alias,
    asset::{Asset, AssetDraft, AssetKind, ModelDetails, ModelFormat},
    names,
    upload::{Upload, UploadFile, UploadState},
    version::{FileEntry, Lineage, Version, VersionState},
};

pub use highwind_common::time::timestamp;

/// The wire form of an asset.
pub fn asset_to_proto(asset: &Asset) -> pb::Asset {
    pb::Asset {
        name: names::asset_name(asset.id),
        uid: asset.id.to_string(),
        kind: kind_to_proto(asset.kind) as i32,
        display_name: asset.display_name.clone(),
        description: asset.description.clone(),
        cover_image_uri: asset.cover_image_uri.clone(),
        labels: asset.labels.clone().into_iter().collect(),
        owner: asset.owner.clone(),
        create_time: Some(timestamp(asset.create_time)),
        update_time: Some(timestamp(asset.update_time)),
        archived: asset.archive_time.is_some(),
        archive_time: asset.archive_time.map(timestamp),
        etag: asset.etag(),
        latest_version: asset.latest_version.map(|n| names::version_name(asset.id, n)).unwrap_or_default(),
        total_size_bytes: i64::try_from(asset.stored_bytes).unwrap_or(i64::MAX),
        details: asset.model.as_ref().map(|m| {
            pb::asset::Details::Model(pb::ModelDetails {
                framework: m.framework.clone(),
                format: format_to_proto(m.format) as i32,
                model_card: m.model_card.clone(),
                inference_schema: m.inference_schema.clone(),
            })
        }),
    }
}

/// The client-supplied fields of `asset`; problems are recorded under `prefix` (`asset`).
pub fn draft_from_proto(asset: pb::Asset, prefix: &str, violations: &mut Violations) -> AssetDraft {
    let kind = match pb::AssetKind::try_from(asset.kind) {
        Ok(pb::AssetKind::Unspecified) => None,
        Ok(pb::AssetKind::Dataset) => Some(AssetKind::Dataset),
        Ok(pb::AssetKind::DockerRepo) => Some(AssetKind::DockerRepo),
        Ok(pb::AssetKind::Model) => Some(AssetKind::Model),
        Ok(pb::AssetKind::Pipeline) => Some(AssetKind::Pipeline),
        Err(_) => {
            violations.add(format!("{prefix}.kind"), format!("unknown kind {}", asset.kind));
            None
        }
    };
    let model = match asset.details {
        Some(pb::asset::Details::Model(m)) => {
            let format = format_from_proto(m.format).unwrap_or_else(|| {
                violations.add(format!("{prefix}.model.format"), format!("unknown format {}", m.format));
                ModelFormat::Unspecified
            });
            Some(ModelDetails {
                framework: m.framework,
                format,
                model_card: m.model_card,
                inference_schema: m.inference_schema,
            })
        }
        // Output only: the registry repository is derived, never set by clients.
        Some(pb::asset::Details::DockerRepo(_)) | None => None,
    };
    AssetDraft {
        kind,
        display_name: asset.display_name,
        description: asset.description,
        cover_image_uri: asset.cover_image_uri,
        labels: asset.labels.into_iter().collect(),
        model,
    }
}

fn kind_to_proto(kind: AssetKind) -> pb::AssetKind {
    match kind {
        AssetKind::Dataset => pb::AssetKind::Dataset,
        AssetKind::DockerRepo => pb::AssetKind::DockerRepo,
        AssetKind::Model => pb::AssetKind::Model,
        AssetKind::Pipeline => pb::AssetKind::Pipeline,
    }
}

const FORMATS: [(pb::ModelFormat, ModelFormat); 12] = [
    (pb::ModelFormat::Unspecified, ModelFormat::Unspecified),
    (pb::ModelFormat::Joblib, ModelFormat::Joblib),
    (pb::ModelFormat::Pickle, ModelFormat::Pickle),
    (pb::ModelFormat::Onnx, ModelFormat::Onnx),
    (pb::ModelFormat::Safetensors, ModelFormat::Safetensors),
    (pb::ModelFormat::Pytorch, ModelFormat::Pytorch),
    (pb::ModelFormat::TensorflowSavedModel, ModelFormat::TensorflowSavedModel),
    (pb::ModelFormat::Keras, ModelFormat::Keras),
    (pb::ModelFormat::Xgboost, ModelFormat::Xgboost),
    (pb::ModelFormat::Lightgbm, ModelFormat::Lightgbm),
    (pb::ModelFormat::Gguf, ModelFormat::Gguf),
    (pb::ModelFormat::Other, ModelFormat::Other),
];

fn format_to_proto(format: ModelFormat) -> pb::ModelFormat {
    FORMATS.iter().find(|(_, d)| *d == format).map_or(pb::ModelFormat::Unspecified, |(p, _)| *p)
}

fn format_from_proto(value: i32) -> Option<ModelFormat> {
    let format = pb::ModelFormat::try_from(value).ok()?;
    FORMATS.iter().find(|(p, _)| *p == format).map(|(_, d)| *d)
}

/// The wire form of a version, with the aliases that point at it.
pub fn version_to_proto(version: &Version, aliases: &[Alias]) -> pb::AssetVersion {
    pb::AssetVersion {
        name: names::version_name(version.asset_id, version.number),
        uid: version.id.to_string(),
        version_number: version.number,
        state: match version.state {
            VersionState::Pending => pb::VersionState::Pending,
            VersionState::Ready => pb::VersionState::Ready,
            VersionState::Failed => pb::VersionState::Failed,
        } as i32,
        files: version.files.iter().map(file_to_proto).collect(),
        manifest_digest: version.manifest_digest.clone(),
        total_size_bytes: i64::try_from(version.total_size).unwrap_or(i64::MAX),
        aliases: aliases.iter().filter(|a| a.version_number == version.number).map(|a| a.name.clone()).collect(),
        labels: version.labels.clone().into_iter().collect(),
        description: version.description.clone(),
        lineage: Some(pb::Lineage {
            source: Some(match &version.lineage {
                Lineage::Upload { upload } => pb::lineage::Source::Upload(pb::UploadSource {
                    upload: names::upload_name(version.asset_id, *upload),
                }),
                Lineage::PipelineRun { run, pipeline_version, input_versions, task, output_key, artifact_metadata } => {
                    pb::lineage::Source::PipelineRun(pb::PipelineRunSource {
                        run: run.clone(),
                        pipeline_version: pipeline_version.clone(),
                        input_versions: input_versions.clone(),
                        task: task.clone(),
                        output_key: output_key.clone(),
                        artifact_metadata: highwind_common::proto_json::struct_to_proto(artifact_metadata),
                    })
                }
                Lineage::RegistryPush { tag, pusher, .. } => {
                    pb::lineage::Source::RegistryPush(pb::RegistryPushSource {
                        tag: tag.clone(),
                        pusher: pusher.clone(),
                    })
                }
            }),
        }),
        creator: version.creator.clone(),
        create_time: Some(timestamp(version.create_time)),
        archived: version.archive_time.is_some(),
        archive_time: version.archive_time.map(timestamp),
        image: match &version.lineage {
            Lineage::RegistryPush { tag, image, .. } => Some(pb::ImageDetails {
                tag: tag.clone(),
                image_digest: version.manifest_digest.clone(),
                media_type: image.media_type.clone(),
                platforms: image.platforms.clone(),
                architecture: if image.deployable_digest.is_empty() { String::new() } else { "amd64".into() },
                deployable_digest: image.deployable_digest.clone(),
                not_deployable_reason: image.not_deployable_reason.clone(),
            }),
            _ => None,
        },
        metrics: version.metrics.clone().into_iter().collect(),
        failure_reason: String::new(),
        etag: version.etag(),
    }
}

fn file_to_proto(file: &FileEntry) -> pb::FileEntry {
    pb::FileEntry {
        path: file.path.clone(),
        size_bytes: i64::try_from(file.size).unwrap_or(i64::MAX),
        sha256: file.sha256.clone(),
    }
}

/// The wire form of a declared file with `acknowledged` bytes stored.
pub fn upload_file_to_proto(file: &UploadFile, acknowledged: u64) -> pb::UploadFile {
    pb::UploadFile {
        path: file.entry.path.clone(),
        size_bytes: i64::try_from(file.entry.size).unwrap_or(i64::MAX),
        sha256: file.entry.sha256.clone(),
        acknowledged_offset: i64::try_from(acknowledged).unwrap_or(i64::MAX),
        present: file.complete,
    }
}

/// The wire form of an upload, with each file's acknowledged offset.
pub fn upload_to_proto(upload: &Upload, progress: &[(UploadFile, u64)]) -> pb::Upload {
    pb::Upload {
        name: names::upload_name(upload.asset_id, upload.id),
        state: match upload.state {
            UploadState::Open => pb::UploadState::Open,
            UploadState::Committed => pb::UploadState::Committed,
            UploadState::Cancelled => pb::UploadState::Cancelled,
            UploadState::Expired => pb::UploadState::Expired,
        } as i32,
        files: progress.iter().map(|(file, acknowledged)| upload_file_to_proto(file, *acknowledged)).collect(),
        expire_time: Some(timestamp(upload.expire_time)),
        version: upload.version_number.map(|n| names::version_name(upload.asset_id, n)).unwrap_or_default(),
        creator: upload.creator.clone(),
        create_time: Some(timestamp(upload.create_time)),
    }
}

/// The declared files of a CreateUpload request; problems are recorded per file.
pub fn files_from_proto(files: Vec<pb::UploadFile>, violations: &mut Violations) -> Vec<FileEntry> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, file)| {
            let size = u64::try_from(file.size_bytes).unwrap_or_else(|_| {
                violations.add(format!("files[{i}].size_bytes"), "must not be negative");
                0
            });
            FileEntry { path: file.path, size, sha256: file.sha256 }
        })
        .collect()
}
