//! What a run's driver records: task events, cancellation, the run's end (outputs registered first) and every
//! change persisted and announced.

use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::Driver;
use crate::{
    executor::{
        EngineError, persist, process, register,
        work::{CANCELLED, Event},
    },
    runs::entities::{Direction, Failure, LineageEdge, Run, State, Task, TaskType, Values, now},
};

impl Driver {
    /// Ends the run once its root DAG has: a succeeded run first turns its Dataset and Model outputs into asset
    /// versions; failing that, it fails. What the run read is recorded for lineage either way.
    pub(super) async fn finish_run(&mut self, state: State, error: Option<Failure>, outputs: Values) {
        let inputs = self.read_versions();
        if let Err(e) = self.shared.store.record_lineage(&inputs).await {
            tracing::warn!(run = %self.run.id, error = %e, "cannot record what the run read");
        }
        if state != State::Succeeded {
            self.end_run(state, error, outputs);
            return;
        }
        let input_versions: Vec<String> = inputs.iter().map(|e| e.asset_version.clone()).collect();
        match register::outputs(&self.shared, &self.run, &mut self.tasks, outputs, &input_versions).await {
            Ok(registered) => {
                for path in registered.changed_tasks {
                    self.touch(&path);
                }
                self.end_run(State::Succeeded, None, registered.outputs);
            }
            Err(failure) => self.end_run(State::Failed, Some(failure), Values::default()),
        }
    }

    /// Every asset version the run read: bound pipeline inputs and what importers brought in.
    pub(super) fn read_versions(&self) -> Vec<LineageEdge> {
        let mut edges: Vec<LineageEdge> = self
            .run
            .input_bindings
            .iter()
            .filter(|b| !b.pipeline_input.is_empty())
            .map(|b| LineageEdge {
                run_id: self.run.id,
                asset_version: b.asset_version.clone(),
                direction: Direction::In,
                port: b.pipeline_input.clone(),
                artifact_type: self
                    .spec
                    .root
                    .as_ref()
                    .and_then(|r| r.input_definitions.artifacts.get(&b.pipeline_input))
                    .map(|d| d.artifact_type.schema_title.clone())
                    .unwrap_or_default(),
            })
            .collect();
        for task in self.tasks.values().filter(|t| t.task_type == TaskType::Importer && t.state == State::Succeeded) {
            for artifact in task.outputs.artifacts.values().flatten().filter(|a| !a.asset_version.is_empty()) {
                edges.push(LineageEdge {
                    run_id: self.run.id,
                    asset_version: artifact.asset_version.clone(),
                    direction: Direction::In,
                    port: task.path.clone(),
                    artifact_type: artifact.artifact_type.clone(),
                });
            }
        }
        edges
    }

    pub(super) fn end_run(&mut self, state: State, error: Option<Failure>, outputs: Values) {
        self.run.state = state;
        self.run.error = error;
        self.run.outputs = outputs;
        self.run.end_time = Some(now());
        self.run_changed = true;
    }

    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Started { path, attempt, message, image } => {
                if self.tasks.get(&path).is_some_and(|t| t.state.is_terminal()) {
                    return;
                }
                let time = now();
                self.update(&path, |t| {
                    t.state = State::Running;
                    t.attempt = attempt;
                    t.start_time = Some(time);
                    t.state_message = message;
                    t.exit_code = None;
                    t.image = image;
                });
            }
            Event::Waiting { path, message } => {
                if self.tasks.get(&path).is_some_and(|t| !t.state.is_terminal()) {
                    self.update(&path, |t| t.state_message = message);
                }
            }
            Event::Finished { path, outcome } => {
                self.dispatched.remove(&path);
                if self.tasks.get(&path).is_none_or(|t| t.state.is_terminal()) {
                    return;
                }
                let time = now();
                self.update(&path, |t| {
                    t.state = outcome.state;
                    t.outputs = outcome.outputs;
                    t.error = outcome.error;
                    t.exit_code = outcome.exit_code;
                    t.log_truncated = outcome.log_truncated;
                    t.end_time = Some(time);
                    if let Some(from) = outcome.cached_from {
                        t.cached = true;
                        t.start_time.get_or_insert(time);
                        t.state_message = from;
                    }
                });
            }
        }
    }

    /// Stops all work in flight: aborts it and kills its process groups.
    pub(super) fn stop_dispatched(&mut self) {
        for (_, dispatched) in self.dispatched.drain() {
            dispatched.work.abort();
            process::kill_group(dispatched.group.load(Ordering::SeqCst));
        }
    }

    /// Cancels the run: CANCELING is saved and answered first, then the work in flight is stopped, what it
    /// reported before it stopped is recorded (a task that ended keeps its state), and the rest is CANCELED.
    pub(super) async fn cancel(
        &mut self,
        reply: oneshot::Sender<Result<Run, EngineError>>,
        events: &mut mpsc::UnboundedReceiver<Event>,
    ) {
        if self.run.state.is_terminal() {
            let answer = match self.run.state {
                State::Canceled => Ok(self.run.clone()),
                other => Err(EngineError::WrongState(other.as_str())),
            };
            let _ = reply.send(answer);
            return;
        }
        self.run.state = State::Canceling;
        self.run_changed = true;
        self.flush().await;
        let _ = reply.send(Ok(self.run.clone()));
        self.stop_dispatched();
        // Work that ended before it was stopped has said so: its outcome stands.
        while let Ok(event) = events.try_recv() {
            self.on_event(event);
        }
        let open: Vec<String> =
            self.tasks.values().filter(|t| !t.state.is_terminal()).map(|t| t.path.clone()).collect();
        let failure = Failure::new(CANCELLED, "CANCELED", "the run was canceled");
        for path in open {
            self.end_task(&path, State::Canceled, "canceled", Some(failure.clone()));
        }
        self.instances.clear();
        if let Err(e) = self.shared.store.record_lineage(&self.read_versions()).await {
            tracing::warn!(run = %self.run.id, error = %e, "cannot record what the run read");
        }
        self.end_run(State::Canceled, Some(failure), Values::default());
    }

    /// Persists what changed and announces it, one sequence number per changed thing.
    pub(super) async fn flush(&mut self) {
        if !self.run_changed && self.changed.is_empty() {
            return;
        }
        self.changed_set.clear();
        let tasks: Vec<Task> =
            std::mem::take(&mut self.changed).iter().filter_map(|path| self.tasks.get(path).cloned()).collect();
        let run_changed = std::mem::take(&mut self.run_changed);
        if persist(&self.shared, &mut self.run, tasks, run_changed, self.persisted).await {
            self.persisted = self.run.sequence;
        } else {
            tracing::error!(run = %self.run.id, "the run was changed by someone else; its driver stops");
            self.stop_dispatched();
            self.run.state = State::Failed;
        }
    }
}
