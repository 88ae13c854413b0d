//! One KFP run's driver: submits the run once (KFP has no idempotency key, so the run's KFP display name carries
//! our run id and is looked up before any create), follows it by polling, terminates it when cancelled, asks KFP
//! to retry it after a RetryRun, and records every change like the local driver does.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::{sync::mpsc, time::Instant};
use uuid::Uuid;

use super::{
    client::{KfpClient, KfpError},
    upload, wire,
};
use crate::{
    executor::{Command, Shared, load_tasks, persist},
    runs::entities::{Failure, Run, State, Task, TaskType, now},
};

/// gRPC codes used in failures.
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const FAILED_PRECONDITION: i32 = 9;
const UNAVAILABLE: i32 = 14;

/// The KFP display name of `run`: its own name tagged with its id, so the run can be found after a crash.
pub fn kfp_display_name(run: &Run) -> String {
    format!("{} [highwind {}]", run.display_name, run.id)
}

struct KfpDriver {
    shared: Arc<Shared>,
    client: Arc<KfpClient>,
    run: Run,
    persisted: i64,
    run_changed: bool,
    /// By KFP task id.
    tasks: BTreeMap<String, Task>,
    changed: Vec<String>,
    cancel_requested: bool,
    terminate_sent: bool,
    /// Since when KFP has kept failing to answer.
    failing_since: Option<Instant>,
    delay: Duration,
}

/// What one step asks for next.
enum Next {
    /// Step again after the poll interval.
    Poll,
    /// Step again after a backoff (KFP did not answer).
    Backoff,
    /// The run has ended.
    Done,
}

/// Follows `run` (persisted; a KFP run) until it ends in KFP.
pub(crate) async fn drive(
    shared: Arc<Shared>,
    client: Arc<KfpClient>,
    run: Run,
    mut commands: mpsc::Receiver<Command>,
) {
    let stored = load_tasks(&shared, run.id).await;
    let persisted = run.sequence;
    let cancel_requested = run.state == State::Canceling;
    let mut driver = KfpDriver {
        shared,
        client,
        run,
        persisted,
        run_changed: false,
        tasks: stored.into_iter().map(|t| (t.backend_task_id.clone(), t)).collect(),
        changed: Vec::new(),
        cancel_requested,
        terminate_sent: false,
        failing_since: None,
        delay: Duration::from_millis(200),
    };
    let poll = Duration::from_millis(driver.client.config().poll_interval_ms.max(10));
    let mut commands_open = true;
    loop {
        let next = driver.step().await;
        if !driver.flush().await {
            return;
        }
        let wait = match next {
            Next::Done => return,
            Next::Poll => {
                driver.delay = Duration::from_millis(200);
                poll
            }
            Next::Backoff => {
                driver.delay = (driver.delay * 2).min(Duration::from_secs(30));
                driver.delay
            }
        };
        tokio::select! {
            command = commands.recv(), if commands_open => match command {
                Some(Command::Cancel(reply)) => {
                    let answer = driver.cancel();
                    if !driver.flush().await {
                        return;
                    }
                    let _ = reply.send(answer.map(|()| driver.run.clone()));
                }
                None => commands_open = false,
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

impl KfpDriver {
    fn cancel(&mut self) -> Result<(), crate::executor::EngineError> {
        if self.run.state.is_terminal() {
            return match self.run.state {
                State::Canceled => Ok(()),
                other => Err(crate::executor::EngineError::WrongState(other.as_str())),
            };
        }
        self.cancel_requested = true;
        if self.run.state != State::Canceling {
            self.run.state = State::Canceling;
            self.run_changed = true;
        }
        Ok(())
    }

    /// One call to KFP: submit, terminate, retry or read, whichever the run needs now.
    async fn step(&mut self) -> Next {
        let result = if self.run.backend_run_id.is_empty() {
            self.submit().await
        } else if self.cancel_requested && !self.terminate_sent {
            self.terminate().await
        } else if self.run.backend_attempt < self.run.attempt {
            self.retry().await
        } else {
            self.poll().await
        };
        match result {
            Ok(next) => {
                self.failing_since = None;
                next
            }
            Err(e) if e.is_transient() => {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                let limit = Duration::from_secs(self.client.config().give_up_after_seconds);
                tracing::warn!(run = %self.run.id, error = %e, "Kubeflow Pipelines did not answer; trying again");
                if since.elapsed() >= limit {
                    let message = format!("Kubeflow Pipelines did not answer for {}s: {e}", limit.as_secs());
                    self.end(State::Failed, Some(Failure::new(UNAVAILABLE, "BACKEND_UNAVAILABLE", message)));
                    return Next::Done;
                }
                Next::Backoff
            }
            Err(e) => {
                tracing::warn!(run = %self.run.id, error = %e, "Kubeflow Pipelines refused the run");
                self.end(State::Failed, Some(Failure::new(FAILED_PRECONDITION, "BACKEND_ERROR", e.to_string())));
                Next::Done
            }
        }
    }

    /// Finds the run in KFP by its tagged name (a create whose answer was lost may have made it) or creates it.
    async fn submit(&mut self) -> Result<Next, KfpError> {
        let name = kfp_display_name(&self.run);
        if let Some(found) = self.client.runs_named(&name).await?.into_iter().next() {
            tracing::info!(run = %self.run.id, kfp_run = %found.run_id, "found the run already submitted to KFP");
            return Ok(self.adopt(found));
        }
        if self.cancel_requested {
            self.end(State::Canceled, Some(Failure::new(CANCELLED, "CANCELED", "the run was canceled")));
            return Ok(Next::Done);
        }
        let ir = match self.shared.store.ir(self.run.id).await {
            Ok(Some(ir)) => ir,
            Ok(None) => return Err(KfpError::Config("the run's pipeline IR is missing".into())),
            Err(e) => return Err(KfpError::Unavailable(format!("reading the run's pipeline IR: {e}"))),
        };
        let config = self.client.config().clone();
        let uploaded = upload::ensure_version(
            &self.client,
            &self.run.pipeline_version,
            &self.run.display_name,
            &ir,
            self.run.enable_caching,
        )
        .await?;
        let description = if self.run.description.is_empty() {
            format!("Highwind runs/{} of {}", self.run.id, self.run.pipeline_version)
        } else {
            self.run.description.clone()
        };
        let request = wire::NewRun {
            display_name: &name,
            description: &description,
            experiment_id: &config.experiment_id,
            service_account: &config.service_account,
            pipeline_version_reference: wire::VersionReference {
                pipeline_id: &uploaded.pipeline_id,
                pipeline_version_id: &uploaded.pipeline_version_id,
            },
            runtime_config: wire::RuntimeConfig {
                parameters: &self.run.parameters,
                pipeline_root: &config.pipeline_root,
            },
        };
        let created = self.client.create_run(&request).await?;
        tracing::info!(run = %self.run.id, kfp_run = %created.run_id, "submitted to Kubeflow Pipelines");
        Ok(self.adopt(created))
    }

    fn adopt(&mut self, found: wire::Run) -> Next {
        self.run.backend_run_id = found.run_id.clone();
        self.run.backend_attempt = self.run.attempt;
        self.run_changed = true;
        self.observe(found);
        if self.run.state.is_terminal() { Next::Done } else { Next::Poll }
    }

    async fn terminate(&mut self) -> Result<Next, KfpError> {
        match self.client.terminate(&self.run.backend_run_id).await {
            Ok(()) => {
                self.terminate_sent = true;
                Ok(Next::Poll)
            }
            Err(KfpError::NotFound(_)) => {
                self.end(State::Canceled, Some(Failure::new(CANCELLED, "CANCELED", "the run was canceled")));
                Ok(Next::Done)
            }
            Err(e) => Err(e),
        }
    }

    async fn retry(&mut self) -> Result<Next, KfpError> {
        match self.client.retry(&self.run.backend_run_id).await {
            Ok(()) => {
                self.run.backend_attempt = self.run.attempt;
                self.run_changed = true;
                Ok(Next::Poll)
            }
            Err(KfpError::Refused { message, .. }) => {
                // A retry sent before a crash may have landed: then the run runs again and this is its attempt.
                let current = self.client.run(&self.run.backend_run_id).await?;
                if matches!(kfp_state(&current.state), State::Running | State::Pending) {
                    self.run.backend_attempt = self.run.attempt;
                    self.run_changed = true;
                    return Ok(Next::Poll);
                }
                let message = format!("Kubeflow Pipelines refused to retry the run: {message}");
                self.end(State::Failed, Some(Failure::new(FAILED_PRECONDITION, "BACKEND_ERROR", message)));
                Ok(Next::Done)
            }
            Err(e) => Err(e),
        }
    }

    async fn poll(&mut self) -> Result<Next, KfpError> {
        match self.client.run(&self.run.backend_run_id).await {
            Ok(found) => {
                self.observe(found);
                Ok(if self.run.state.is_terminal() { Next::Done } else { Next::Poll })
            }
            Err(KfpError::NotFound(_)) => {
                let message = format!("the KFP run {} no longer exists", self.run.backend_run_id);
                self.end(State::Failed, Some(Failure::new(UNKNOWN, "BACKEND_RUN_DELETED", message)));
                Ok(Next::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes in what KFP reports of the run and its tasks.
    fn observe(&mut self, found: wire::Run) {
        self.observe_tasks(found.run_details.map(|d| d.task_details).unwrap_or_default());
        let mut state = kfp_state(&found.state);
        // Until KFP has seen the terminate request, the run stays CANCELING here.
        if self.cancel_requested && matches!(state, State::Pending | State::Running) {
            state = State::Canceling;
        }
        if state == self.run.state {
            return;
        }
        let error = match state {
            State::Failed => Some(failure_of(found.error.as_ref(), "KFP_RUN_FAILED", "the KFP run failed")),
            State::Canceled => Some(Failure::new(CANCELLED, "CANCELED", "the run was canceled")),
            _ => None,
        };
        if state == State::Running {
            self.run.start_time.get_or_insert_with(|| time(found.created_at.as_deref()).unwrap_or_else(now));
        }
        if state.is_terminal() {
            self.run.end_time = Some(time(found.finished_at.as_deref()).unwrap_or_else(now));
        }
        self.run.state = state;
        self.run.error = error;
        self.run_changed = true;
    }

    fn observe_tasks(&mut self, details: Vec<wire::TaskDetail>) {
        let repeated = |name: &str| details.iter().filter(|d| d.display_name == name).count() > 1;
        let paths: BTreeMap<String, String> = details
            .iter()
            .map(|d| {
                let path = match self.tasks.get(&d.task_id) {
                    Some(known) => known.path.clone(),
                    None if d.display_name.is_empty() || repeated(&d.display_name) => {
                        format!("{}#{}", d.display_name, d.task_id)
                    }
                    None => d.display_name.clone(),
                };
                (d.task_id.clone(), path)
            })
            .collect();
        for detail in details {
            let state = kfp_state(&detail.state);
            let previous = self.tasks.get(&detail.task_id).cloned();
            let mut task = previous.clone().unwrap_or_else(|| Task {
                uid: Uuid::now_v7(),
                backend_task_id: detail.task_id.clone(),
                create_time: Some(time(detail.create_time.as_deref()).unwrap_or_else(now)),
                attempt: 1,
                ..Task::default()
            });
            task.path = paths.get(&detail.task_id).cloned().unwrap_or_default();
            task.task_key = detail.display_name.clone();
            task.display_name = detail.display_name.clone();
            task.parent = paths.get(&detail.parent_task_id).cloned().unwrap_or_default();
            task.task_type = if detail.child_tasks.is_empty() { TaskType::Container } else { TaskType::Dag };
            task.backend_pod = detail.pod_name.clone();
            task.state = state;
            task.start_time = time(detail.start_time.as_deref()).or(task.start_time);
            task.end_time = if state.is_terminal() { time(detail.end_time.as_deref()).or(Some(now())) } else { None };
            task.error = (state == State::Failed)
                .then(|| failure_of(detail.error.as_ref(), "TASK_FAILED", "the task failed in KFP"));
            task.state_message = match state {
                State::Running if !detail.pod_name.is_empty() => format!("running in pod {}", detail.pod_name),
                _ => String::new(),
            };
            if previous.as_ref() != Some(&task) {
                if !self.changed.contains(&detail.task_id) {
                    self.changed.push(detail.task_id.clone());
                }
                self.tasks.insert(detail.task_id, task);
            }
        }
    }

    fn end(&mut self, state: State, error: Option<Failure>) {
        self.run.state = state;
        self.run.error = error;
        self.run.end_time = Some(now());
        self.run_changed = true;
    }

    /// Persists and announces what changed; false when the run was changed by someone else (this driver stops).
    async fn flush(&mut self) -> bool {
        if !self.run_changed && self.changed.is_empty() {
            return true;
        }
        let tasks: Vec<Task> =
            std::mem::take(&mut self.changed).iter().filter_map(|id| self.tasks.get(id).cloned()).collect();
        let run_changed = std::mem::take(&mut self.run_changed);
        if persist(&self.shared, &mut self.run, tasks, run_changed, self.persisted).await {
            self.persisted = self.run.sequence;
            true
        } else {
            tracing::error!(run = %self.run.id, "the run was changed by someone else; its KFP driver stops");
            false
        }
    }
}

/// Our state for a KFP `RuntimeState` name (PAUSED counts as running; unknown names as pending).
fn kfp_state(name: &str) -> State {
    match name {
        "RUNNING" | "PAUSED" => State::Running,
        "SUCCEEDED" => State::Succeeded,
        "SKIPPED" => State::Skipped,
        "FAILED" => State::Failed,
        "CANCELING" => State::Canceling,
        "CANCELED" => State::Canceled,
        _ => State::Pending,
    }
}

fn failure_of(status: Option<&wire::RpcStatus>, reason: &str, fallback: &str) -> Failure {
    match status {
        Some(s) if !s.message.is_empty() || !s.error.is_empty() => {
            let message = if s.message.is_empty() { &s.error } else { &s.message };
            Failure::new(if s.code == 0 { UNKNOWN } else { s.code }, reason, message.clone())
        }
        _ => Failure::new(UNKNOWN, reason, fallback),
    }
}

fn time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text?).ok()?.with_timezone(&Utc);
    DateTime::from_timestamp_micros(parsed.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kfp_state_maps_and_canceled_is_terminal() {
        assert_eq!(kfp_state("CANCELED"), State::Canceled);
        assert!(kfp_state("CANCELED").is_terminal());
        assert_eq!(kfp_state("PAUSED"), State::Running);
        assert_eq!(kfp_state("RUNTIME_STATE_UNSPECIFIED"), State::Pending);
        assert_eq!(kfp_state(""), State::Pending);
        assert_eq!(kfp_state("SKIPPED"), State::Skipped);
    }

    #[test]
    fn kfp_times_are_read_to_the_microsecond() {
        let t = time(Some("2026-11-25T10:00:00.1234567Z")).expect("parses");
        assert_eq!(t.timestamp_subsec_micros(), 123_456);
        assert!(time(Some("yesterday")).is_none());
    }
}
