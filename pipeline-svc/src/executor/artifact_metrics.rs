//! What a registered Dataset or Model carries besides its files: the metadata its task set on it, and the metrics
//! logged about it — by its own task, or by a task that read it (an evaluation step) — to `Output[Metrics]`
//! artifacts, as KFP components log them (`metrics.log_metric(name, value)` sets `metadata[name]`).

use std::collections::{BTreeMap, HashMap};

use crate::runs::entities::{Artifact, State, Task, TaskType};

/// Most metrics a version carries (asset-svc's limit).
pub const MAX_METRICS: usize = 256;
/// Most bytes of metadata, as JSON, a version keeps (asset-svc's limit).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest metric name (a label key).
const MAX_NAME: usize = 63;

/// The metrics of `artifact`, output of `producer`: finite numbers logged to the `system.Metrics` outputs of
/// `producer`, then of the succeeded tasks that took `artifact` as an input, in path order; the first to log a
/// name wins. Names become label keys (lowercase, `[a-z0-9_-]`, starting with a letter): `Val Loss` is `val_loss`.
pub fn metrics_of(tasks: &BTreeMap<String, Task>, producer: &Task, artifact: &Artifact) -> HashMap<String, f64> {
    let readers = tasks.values().filter(|t| {
        t.path != producer.path
            && t.task_type == TaskType::Container
            && t.state == State::Succeeded
            && t.inputs
                .artifacts
                .values()
                .flatten()
                .any(|input| input.producer_task == producer.path && input.key == artifact.key)
    });
    let mut metrics = HashMap::new();
    for task in std::iter::once(producer).chain(readers) {
        let logged = task.outputs.artifacts.values().flatten().filter(|a| a.artifact_type == "system.Metrics");
        for (name, value) in logged.flat_map(|a| a.metadata.iter()) {
            let (Some(name), Some(value)) = (metric_name(name), value.as_f64().filter(|v| v.is_finite())) else {
                continue;
            };
            if metrics.len() < MAX_METRICS || metrics.contains_key(&name) {
                metrics.entry(name).or_insert(value);
            }
        }
    }
    metrics
}

/// `artifact`'s metadata as a version keeps it, unless it is larger than [`MAX_METADATA_BYTES`].
pub fn metadata_of(artifact: &Artifact) -> Option<prost_types::Struct> {
    let size = serde_json::to_vec(&artifact.metadata).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        tracing::warn!(artifact = %artifact.key, size, "artifact metadata too large to keep with its version");
        return None;
    }
    highwind_common::proto_json::struct_to_proto(&artifact.metadata)
}

/// A logged metric's name as a label key, or `None` when nothing of it is left.
fn metric_name(logged: &str) -> Option<String> {
    let mut name: String = logged
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '_' })
        .collect();
    if name.trim_matches('_').is_empty() {
        return None;
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "m_");
    }
    name.truncate(MAX_NAME);
    Some(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::runs::entities::Values;

    fn artifact(key: &str, artifact_type: &str, producer: &str, metadata: serde_json::Value) -> Artifact {
        Artifact {
            key: key.into(),
            artifact_type: artifact_type.into(),
            producer_task: producer.into(),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
            ..Artifact::default()
        }
    }

    fn task(path: &str, inputs: Vec<Artifact>, outputs: Vec<Artifact>) -> Task {
        let values = |list: Vec<Artifact>| Values {
            artifacts: list.into_iter().map(|a| (a.key.clone(), vec![a])).collect(),
            ..Values::default()
        };
        Task {
            path: path.into(),
            task_type: TaskType::Container,
            state: State::Succeeded,
            inputs: values(inputs),
            outputs: values(outputs),
            ..Task::default()
        }
    }

    #[test]
    fn a_models_metrics_come_from_its_task_then_from_the_tasks_that_evaluated_it() {
        let model = artifact("model", "system.Model", "train", json!({"framework": "sklearn"}));
        let train = task(
            "train",
            vec![],
            vec![model.clone(), artifact("train_metrics", "system.Metrics", "train", json!({"Train Loss": 0.2}))],
        );
        let evaluate = task(
            "evaluate",
            vec![model.clone()],
            vec![artifact(
                "m",
                "system.Metrics",
                "evaluate",
                json!({"accuracy": 0.93, "train_loss": 9.0, "note": "x"}),
            )],
        );
        let unrelated =
            task("other", vec![], vec![artifact("m", "system.Metrics", "other", json!({"unrelated": 1.0}))]);
        let tasks: BTreeMap<String, Task> =
            [train.clone(), evaluate, unrelated].into_iter().map(|t| (t.path.clone(), t)).collect();
        let metrics = metrics_of(&tasks, &train, &model);
        assert_eq!(metrics, HashMap::from([("train_loss".to_owned(), 0.2), ("accuracy".to_owned(), 0.93)]));
        assert_eq!(metadata_of(&model).map(|m| m.fields.len()), Some(1));
    }

    #[test]
    fn metric_names_become_label_keys() {
        assert_eq!(metric_name("rmse").as_deref(), Some("rmse"));
        assert_eq!(metric_name("Val Loss").as_deref(), Some("val_loss"));
        assert_eq!(metric_name("1st-score").as_deref(), Some("m_1st-score"));
        assert_eq!(metric_name("__").as_deref(), None);
        assert_eq!(metric_name(&"x".repeat(100)).map(|n| n.len()), Some(MAX_NAME));
    }
}
