//! Runs and tasks as the v1 contract shows them. Host paths never leave the server.

use chrono::{DateTime, Utc};
use highwind_common::proto_json::{struct_to_proto, to_proto};
use highwind_proto::pipeline::v1 as pb;

use crate::runs::entities::{
    Artifact, Backend, Binding, Destination, Failure, ImageMode, ImageSource, Run, State, Task, TaskType, Values,
};

use highwind_common::time::timestamp;

/// The proto enum of `state`.
pub fn state(state: State) -> pb::RunState {
    match state {
        State::Pending => pb::RunState::Pending,
        State::Running => pb::RunState::Running,
        State::Succeeded => pb::RunState::Succeeded,
        State::Failed => pb::RunState::Failed,
        State::Canceling => pb::RunState::Canceling,
        State::Canceled => pb::RunState::Canceled,
        State::Skipped => pb::RunState::Skipped,
    }
}

fn error(failure: &Failure, run: &Run) -> pb::RunError {
    pb::RunError {
        code: failure.code,
        message: failure.message.clone(),
        reason: failure.reason.clone(),
        task: if failure.task.is_empty() { String::new() } else { format!("runs/{}/tasks/{}", run.id, failure.task) },
    }
}

fn artifact(artifact: &Artifact, run: &Run) -> pb::Artifact {
    pb::Artifact {
        key: artifact.key.clone(),
        artifact_type: artifact.artifact_type.clone(),
        uri: artifact.uri.clone(),
        metadata: struct_to_proto(&artifact.metadata),
        asset_version: artifact.asset_version.clone(),
        producer_task: if artifact.producer_task.is_empty() {
            String::new()
        } else {
            format!("runs/{}/tasks/{}", run.id, artifact.producer_task)
        },
    }
}

fn parameters(values: &Values) -> std::collections::HashMap<String, prost_types::Value> {
    values.parameters.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect()
}

fn artifacts(values: &Values, run: &Run) -> Vec<pb::Artifact> {
    values.artifacts.values().flatten().map(|a| artifact(a, run)).collect()
}

/// `task` of `run`.
pub fn task(task: &Task, run: &Run) -> pb::Task {
    pb::Task {
        name: format!("runs/{}/tasks/{}", run.id, task.path),
        uid: task.uid.to_string(),
        task_key: task.task_key.clone(),
        display_name: task.display_name.clone(),
        parent_task: if task.parent.is_empty() {
            String::new()
        } else {
            format!("runs/{}/tasks/{}", run.id, task.parent)
        },
        iteration_index: task.iteration_index,
        component: task.component.clone(),
        task_type: match task.task_type {
            TaskType::Container => pb::TaskType::Container,
            TaskType::Importer => pb::TaskType::Importer,
            TaskType::Dag => pb::TaskType::Dag,
        } as i32,
        state: state(task.state) as i32,
        state_message: task.state_message.clone(),
        create_time: task.create_time.map(timestamp),
        start_time: task.start_time.map(timestamp),
        end_time: task.end_time.map(timestamp),
        error: task.error.as_ref().map(|e| error(e, run)),
        inputs: Some(pb::Inputs { parameters: parameters(&task.inputs), artifacts: artifacts(&task.inputs, run) }),
        outputs: Some(pb::Outputs { parameters: parameters(&task.outputs), artifacts: artifacts(&task.outputs, run) }),
        attempt: task.attempt,
        cached: task.cached,
        exit_code: task.exit_code,
        backend_task_id: task.backend_task_id.clone(),
        image: task.image.as_ref().map(|image| pb::TaskImage {
            reference: image.reference.clone(),
            digest: image.digest.clone(),
            source: match image.source {
                ImageSource::Host => pb::task_image::Source::Host,
                ImageSource::Pulled => pb::task_image::Source::Pulled,
                ImageSource::Cached => pb::task_image::Source::Cached,
            } as i32,
            compressed_bytes: i64::try_from(image.compressed_bytes).unwrap_or(i64::MAX),
            unpacked_bytes: i64::try_from(image.unpacked_bytes).unwrap_or(i64::MAX),
            user: image.user.clone(),
        }),
    }
}

fn binding(binding: &Binding) -> pb::InputBinding {
    use pb::input_binding::Target;
    let target = if binding.importer_task.is_empty() {
        Target::PipelineInput(binding.pipeline_input.clone())
    } else {
        Target::ImporterTask(binding.importer_task.clone())
    };
    pb::InputBinding {
        target: Some(target),
        asset_version: binding.asset_version.clone(),
        alias: binding.alias.clone(),
    }
}

fn destination(destination: &Destination) -> pb::OutputDestination {
    use pb::output_destination::Destination as Target;
    let target = match &destination.new_asset {
        Some(new) => Target::NewAsset(pb::NewAssetSpec {
            display_name: new.display_name.clone(),
            description: new.description.clone(),
            labels: new.labels.clone().into_iter().collect(),
        }),
        None => Target::Asset(destination.asset.clone()),
    };
    pb::OutputDestination {
        task: destination.task.clone(),
        output_key: destination.output_key.clone(),
        destination: Some(target),
    }
}

/// `run`, with `tasks` when given (FULL view).
pub fn run(run: &Run, tasks: Option<&[Task]>) -> pb::Run {
    pb::Run {
        name: format!("runs/{}", run.id),
        uid: run.id.to_string(),
        display_name: run.display_name.clone(),
        description: run.description.clone(),
        pipeline_version: run.pipeline_version.clone(),
        pipeline_alias: run.pipeline_alias.clone(),
        parameters: run.parameters.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
        input_bindings: run.input_bindings.iter().map(binding).collect(),
        output_destinations: run.output_destinations.iter().map(destination).collect(),
        unbound_output_policy: run.unbound_output_policy,
        enable_caching: run.enable_caching,
        allow_network: run.allow_network,
        backend: match run.backend {
            Backend::Local => pb::RunBackend::Local,
            Backend::Kfp => pb::RunBackend::Kfp,
        } as i32,
        backend_run_id: run.backend_run_id.clone(),
        state: state(run.state) as i32,
        error: run.error.as_ref().map(|e| error(e, run)),
        tasks: tasks.map(|tasks| tasks.iter().map(|t| task(t, run)).collect()).unwrap_or_default(),
        outputs: Some(pb::Outputs { parameters: parameters(&run.outputs), artifacts: artifacts(&run.outputs, run) }),
        creator: run.creator.clone(),
        create_time: Some(timestamp(run.create_time)),
        start_time: run.start_time.map(timestamp),
        end_time: run.end_time.map(timestamp),
        update_time: Some(timestamp(run.update_time)),
        labels: run.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        attempt: run.attempt,
        image_mode: match run.image_mode {
            None => pb::ImageMode::Unspecified,
            Some(ImageMode::Auto) => pb::ImageMode::Auto,
            Some(ImageMode::Image) => pb::ImageMode::Image,
            Some(ImageMode::Host) => pb::ImageMode::Host,
        } as i32,
    }
}

/// A change as a WatchRun message.
pub fn change(change: &crate::executor::Change) -> Option<pb::WatchRunResponse> {
    use pb::watch_run_response::Change as Message;
    let message = match &change.what {
        crate::executor::Changed::Run(run_now) => Message::Run(run(run_now, None)),
        crate::executor::Changed::Task(_) => return None,
    };
    Some(pb::WatchRunResponse {
        change: Some(message),
        sequence: change.sequence,
        event_time: Some(timestamp(change.time)),
    })
}

/// A task change of `run` as a WatchRun message.
pub fn task_change(task_now: &Task, run_now: &Run, sequence: i64, time: DateTime<Utc>) -> pb::WatchRunResponse {
    pb::WatchRunResponse {
        change: Some(pb::watch_run_response::Change::Task(task(task_now, run_now))),
        sequence,
        event_time: Some(timestamp(time)),
    }
}

/// The first WatchRun message.
pub fn snapshot(run_now: &Run, tasks: &[Task]) -> pb::WatchRunResponse {
    pb::WatchRunResponse {
        change: Some(pb::watch_run_response::Change::Snapshot(run(run_now, Some(tasks)))),
        sequence: run_now.sequence,
        event_time: Some(timestamp(run_now.update_time)),
    }
}
