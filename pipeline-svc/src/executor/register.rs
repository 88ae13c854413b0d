//! Turning a succeeded run's Dataset and Model outputs into asset versions: into the asset a destination names,
//! or a new asset of the run's creator (unless the run keeps unnamed outputs to itself), each committed with the
//! run as its lineage.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
};

use highwind_proto::asset::v1 as apb;
use sha2::Digest;

use super::{Shared, artifact_metrics, creator};
use crate::{
    assets::NewAsset,
    runs::entities::{Artifact, Direction, Failure, LineageEdge, Run, State, Task, TaskType, Values},
    task_files,
};

/// `google.rpc.Code` UNAVAILABLE.
const UNAVAILABLE: i32 = 14;
/// Longest display name of a new asset.
const MAX_NAME: usize = 200;

/// What registration changed.
#[derive(Debug)]
pub(super) struct Registered {
    /// The run's outputs, registered artifacts included.
    pub outputs: Values,
    /// Tasks whose outputs now name asset versions.
    pub changed_tasks: Vec<String>,
}

/// The artifact types that become asset versions, and the asset kind each needs.
pub fn kind_for(artifact_type: &str) -> Option<apb::AssetKind> {
    match artifact_type {
        "system.Dataset" => Some(apb::AssetKind::Dataset),
        "system.Model" => Some(apb::AssetKind::Model),
        _ => None,
    }
}

/// A task's path without loop iteration indices, as output destinations name tasks.
pub fn static_path(path: &str) -> String {
    path.split('.').filter(|segment| !segment.bytes().all(|b| b.is_ascii_digit())).collect::<Vec<_>>().join(".")
}

/// A key of at most 64 characters for idempotent calls, derived from `parts`.
fn request_id(parts: &[&str]) -> String {
    hex::encode(sha2::Sha256::digest(parts.join("\n").as_bytes()))
}

/// Registers every Dataset and Model output of the run's succeeded container tasks; `outputs` are the root
/// DAG's, which gain the registered versions too.
pub(super) async fn outputs(
    shared: &Shared,
    run: &Run,
    tasks: &mut BTreeMap<String, Task>,
    mut outputs: Values,
    input_versions: &[String],
) -> Result<Registered, Failure> {
    let failed = |message: String| Failure::new(UNAVAILABLE, "OUTPUT_REGISTRATION_FAILED", message);
    let principal = creator(run).ok_or_else(|| failed("the run's creator is not a principal".into()))?;
    // Root outputs name the task artifacts they come from.
    let mut root_destinations = BTreeMap::new();
    for destination in run.output_destinations.iter().filter(|d| d.task.is_empty()) {
        for artifact in outputs.artifacts.get(&destination.output_key).into_iter().flatten() {
            root_destinations.insert((artifact.producer_task.clone(), artifact.key.clone()), destination.clone());
        }
    }
    let mut edges = Vec::new();
    let mut changed_tasks = Vec::new();
    let mut registered: Vec<Artifact> = Vec::new();
    let paths: Vec<String> = tasks
        .values()
        .filter(|t| t.task_type == TaskType::Container && t.state == State::Succeeded)
        .map(|t| t.path.clone())
        .collect();
    for path in paths {
        let Some(task) = tasks.get(&path).cloned() else { continue };
        let mut artifacts = task.outputs.artifacts.clone();
        let mut changed = false;
        for (key, list) in artifacts.iter_mut() {
            for artifact in list.iter_mut() {
                let Some(kind) = kind_for(&artifact.artifact_type) else { continue };
                let destination = run
                    .output_destinations
                    .iter()
                    .find(|d| !d.task.is_empty() && d.task == static_path(&path) && &d.output_key == key)
                    .or_else(|| root_destinations.get(&(path.clone(), key.clone())))
                    .cloned();
                let asset = match destination {
                    Some(d) if !d.asset.is_empty() => d.asset,
                    Some(d) => {
                        let spec = d.new_asset.unwrap_or_default();
                        let new = NewAsset {
                            kind: kind as i32,
                            display_name: spec.display_name,
                            description: spec.description,
                            labels: spec.labels,
                        };
                        // One asset per destination: every loop iteration adds a version to it.
                        let id = request_id(&[&run.id.to_string(), &static_path(&path), key, "asset"]);
                        shared.assets.create_asset(&principal, &new, &id).await.map_err(|e| failed(e.to_string()))?
                    }
                    None if run.unbound_output_policy == apb_keep_in_run() => continue,
                    None => {
                        let mut name = format!("{} {path}/{key}", run.display_name);
                        while name.chars().count() > MAX_NAME {
                            name.pop();
                        }
                        let new = NewAsset { kind: kind as i32, display_name: name, ..NewAsset::default() };
                        let id = request_id(&[&run.id.to_string(), &path, key, "asset"]);
                        shared.assets.create_asset(&principal, &new, &id).await.map_err(|e| failed(e.to_string()))?
                    }
                };
                let root = PathBuf::from(&artifact.path);
                let files = tokio::task::spawn_blocking(move || files_of(&root))
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(|e| failed(format!("output {key:?} of task {path:?}: {e}")))?;
                let source = apb::PipelineRunSource {
                    run: format!("runs/{}", run.id),
                    pipeline_version: run.pipeline_version.clone(),
                    input_versions: input_versions.to_vec(),
                    task: path.clone(),
                    output_key: key.clone(),
                    artifact_metadata: artifact_metrics::metadata_of(artifact),
                };
                let metrics = artifact_metrics::metrics_of(tasks, &task, artifact);
                // The same task attempt's output is one version, however often registration is retried.
                let id = request_id(&[&task.uid.to_string(), &task.attempt.to_string(), key, "version"]);
                let version = shared
                    .assets
                    .store_output(&principal, &asset, &files, &id, source, metrics)
                    .await
                    .map_err(|e| failed(format!("output {key:?} of task {path:?} into {asset}: {e}")))?;
                artifact.asset_version = version.clone();
                changed = true;
                edges.push(LineageEdge {
                    run_id: run.id,
                    asset_version: version,
                    direction: Direction::Out,
                    port: format!("{path}/{key}"),
                    artifact_type: artifact.artifact_type.clone(),
                });
                registered.push(artifact.clone());
            }
        }
        if changed && let Some(task) = tasks.get_mut(&path) {
            task.outputs.artifacts = artifacts;
            changed_tasks.push(path);
        }
    }
    shared.store.record_lineage(&edges).await.map_err(|e| failed(e.to_string()))?;
    // The run's outputs show each registered version: root outputs that are one, and every other one by
    // `{task}/{key}`.
    let mut shown = HashSet::new();
    for list in outputs.artifacts.values_mut() {
        for artifact in list.iter_mut() {
            if let Some(found) =
                registered.iter().find(|r| r.producer_task == artifact.producer_task && r.key == artifact.key)
            {
                artifact.asset_version = found.asset_version.clone();
                shown.insert(found.asset_version.clone());
            }
        }
    }
    for artifact in registered.into_iter().filter(|a| !shown.contains(&a.asset_version)) {
        outputs.artifacts.entry(format!("{}/{}", artifact.producer_task, artifact.key)).or_default().push(artifact);
    }
    Ok(Registered { outputs, changed_tasks })
}

fn apb_keep_in_run() -> i32 {
    highwind_proto::pipeline::v1::UnboundOutputPolicy::KeepInRun as i32
}

/// Most files one artifact may hold (a version's limit).
const MAX_FILES: usize = 10_000;

/// The files an artifact holds: the file itself, or every file under the directory, by relative path, each with
/// where it really is (links resolved, so uploads open no link). Links to directories are not followed (a link
/// loop would never end); links to files are read as the files. Runs on a blocking thread; the walk is bounded.
fn files_of(path: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let root = path.canonicalize().map_err(|e| e.to_string())?;
    let own = root.symlink_metadata().map_err(|e| e.to_string())?.file_type();
    if own.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or("the file name is not UTF-8")?;
        return Ok(vec![(name.to_owned(), root)]);
    }
    if !own.is_dir() {
        return Err(format!("the artifact is a {}, not a regular file or directory", task_files::kind_name(own)));
    }
    let mut files = Vec::new();
    for entry in task_files::walk(&root).map_err(|e| format!("the artifact {e}"))? {
        if entry.file_type.is_dir() {
            continue;
        }
        let real = if entry.file_type.is_symlink() {
            let real = entry.path.canonicalize().map_err(|e| format!("{}: {e}", entry.path.display()))?;
            if real.is_dir() {
                return Err(format!("{} links to a directory", entry.path.display()));
            }
            real
        } else {
            entry.path.clone()
        };
        if files.len() >= MAX_FILES {
            return Err(format!("the artifact holds more than {MAX_FILES} files"));
        }
        let relative = entry.path.strip_prefix(&root).map_err(|e| e.to_string())?;
        let relative = relative.to_str().ok_or("a file name is not UTF-8")?.to_owned();
        files.push((relative, real));
    }
    if files.is_empty() {
        return Err("the artifact is an empty directory".into());
    }
    files.sort();
    Ok(files)
}
