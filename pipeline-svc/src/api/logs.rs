//! StreamTaskLogs: a task attempt's captured log in chunks, following it while the task runs.

use std::{pin::Pin, time::Duration};

use futures::Stream;
use highwind_common::{principal::Principal, status, validation::Violations};
use highwind_proto::pipeline::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::Status;

use super::runs::Runs;
use crate::{
    executor::Changed,
    runs::model::{Backend, TaskType},
};

/// Largest chunk sent.
const CHUNK: usize = 64 * 1024;
/// How often a followed log is looked at again while its task runs and writes nothing.
const FOLLOW_TICK: Duration = Duration::from_millis(100);

/// A stream of log chunks.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<pb::StreamTaskLogsResponse, Status>> + Send>>;

/// StreamTaskLogs.
pub async fn stream(
    runs: &Runs,
    principal: &Principal,
    request: pb::StreamTaskLogsRequest,
) -> Result<LogStream, Status> {
    let mut changes = runs.engine.subscribe();
    let (run, task) = runs.task(principal, &request.name).await?;
    if run.backend == Backend::Kfp {
        let pod = if task.backend_pod.is_empty() { "its pod".to_owned() } else { format!("pod {}", task.backend_pod) };
        return Err(status::failed_precondition(
            "logs of Kubeflow Pipelines tasks stay in the cluster",
            "KFP_LOGS",
            &[status::Precondition {
                kind: "BACKEND",
                subject: "KFP".into(),
                description: format!("read them in the KFP UI or with kubectl logs ({pod})"),
            }],
        ));
    }
    let (sender, out) = tokio::sync::mpsc::channel(8);
    if task.task_type != TaskType::Container {
        return Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)));
    }
    if request.attempt < 0 || request.attempt > task.attempt {
        return Err(status::invalid_argument(&Violations::one(
            "attempt",
            format!("the task has attempts 1 to {}", task.attempt),
        )));
    }
    let mut violations = Violations::new();
    if request.offset < 0 {
        violations.add("offset", "must not be negative");
    }
    if request.tail_bytes < 0 {
        violations.add("tail_bytes", "must not be negative");
    }
    if !violations.is_empty() {
        return Err(status::invalid_argument(&violations));
    }
    let attempt = if request.attempt == 0 { task.attempt } else { request.attempt };
    let path = runs.engine.log_path(run.id, &task, attempt);
    let length = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
    let length = i64::try_from(length).unwrap_or(i64::MAX);
    let mut offset = if request.tail_bytes > 0 { (length - request.tail_bytes).max(0) } else { request.offset };
    let mut done = task.state.is_terminal() || attempt < task.attempt || !request.follow;
    if offset > length && done {
        return Err(Status::out_of_range(format!("offset {offset} is beyond the end of the log ({length} bytes)")));
    }
    // The capture stops at the bound and adds one marker line: bytes past it are the marker's.
    let max = i64::try_from(runs.engine.max_log_bytes()).unwrap_or(i64::MAX);
    let (run_id, task_path) = (run.id, task.path.clone());
    let store = runs.store.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; CHUNK];
        let mut file = None;
        loop {
            if file.is_none() {
                // The task may have replaced its log with a FIFO or a link: open only a regular file, never waiting.
                let opening = path.clone();
                file = tokio::task::spawn_blocking(move || crate::task_files::open_regular(&opening))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(tokio::fs::File::from_std);
            }
            let mut read = 0;
            if let Some(f) = file.as_mut()
                && f.seek(std::io::SeekFrom::Start(u64::try_from(offset).unwrap_or(0))).await.is_ok()
            {
                read = f.read(&mut buffer).await.unwrap_or(0);
            }
            if read > 0 {
                let end = offset + i64::try_from(read).unwrap_or(0);
                let chunk = pb::StreamTaskLogsResponse {
                    data: buffer[..read].to_vec().into(),
                    offset,
                    attempt,
                    truncated: end > max,
                };
                offset = end;
                if sender.send(Ok(chunk)).await.is_err() {
                    return;
                }
                continue;
            }
            if done {
                return;
            }
            // Wait for the task to end or the tick; then read whatever was written meanwhile.
            let ended = tokio::time::timeout(FOLLOW_TICK, async {
                loop {
                    match changes.recv().await {
                        Ok(change) if change.run_id == run_id => {
                            if let Changed::Task(task) = &change.what
                                && task.path == task_path
                                && (task.state.is_terminal() || task.attempt != attempt)
                            {
                                return true;
                            }
                        }
                        Ok(_) => {}
                        // Changes were missed, perhaps the one that ended the task: ask the store.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            let ended = store.tasks(run_id).await.ok().and_then(|tasks| {
                                tasks
                                    .into_iter()
                                    .find(|t| t.path == task_path)
                                    .map(|t| t.state.is_terminal() || t.attempt != attempt)
                            });
                            if ended.unwrap_or(true) {
                                return true;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return true,
                    }
                }
            })
            .await;
            // The task ended: one more pass reads what it wrote last, then the stream ends.
            done = ended.unwrap_or(false);
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}
