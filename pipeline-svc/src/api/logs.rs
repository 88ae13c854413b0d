//! StreamTaskLogs: a task attempt's captured log in chunks, following it while the task runs.

use std::{path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::pipeline::v1 as pb;
use tokio::{
    io::{AsyncReadExt, AsyncSeekExt},
    sync::{broadcast, mpsc},
};
use tonic::Status;
use uuid::Uuid;

use super::runs::Runs;
use crate::{
    error::Error,
    executor::{Change, Changed},
    runs::entities::{Backend, Task, TaskType},
    store::RunRepository,
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
) -> Result<LogStream, Error> {
    let changes = runs.engine.subscribe();
    let (run, task) = runs.task(principal, &request.name).await?;
    if run.backend == Backend::Kfp {
        return Err(Error::LogsInKfp { pod: task.backend_pod });
    }
    let (sender, out) = mpsc::channel(8);
    if task.task_type != TaskType::Container {
        return Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)));
    }
    let attempt = attempt(&request, &task)?;
    let path = runs.engine.log_path(run.id, &task, attempt);
    let length = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
    let length = i64::try_from(length).unwrap_or(i64::MAX);
    let offset = if request.tail_bytes > 0 { (length - request.tail_bytes).max(0) } else { request.offset };
    let done = task.state.is_terminal() || attempt < task.attempt || !request.follow;
    if offset > length && done {
        return Err(Error::PastLogEnd { offset, length });
    }
    let follow = Follow {
        path,
        offset,
        attempt,
        done,
        // The capture stops at the bound and adds one marker line: bytes past it are the marker's.
        max: i64::try_from(runs.engine.max_log_bytes()).unwrap_or(i64::MAX),
        run_id: run.id,
        task_path: task.path,
        store: runs.store.clone(),
    };
    tokio::spawn(follow.send(changes, sender));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}

/// The attempt of `task` whose log the request reads (0: the latest), with its offsets checked, every violation
/// of those at once.
fn attempt(request: &pb::StreamTaskLogsRequest, task: &Task) -> Result<i32, Error> {
    if request.attempt < 0 || request.attempt > task.attempt {
        return Err(Error::Invalid(Violations::one("attempt", format!("the task has attempts 1 to {}", task.attempt))));
    }
    let mut violations = Violations::new();
    if request.offset < 0 {
        violations.add("offset", "must not be negative");
    }
    if request.tail_bytes < 0 {
        violations.add("tail_bytes", "must not be negative");
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    Ok(if request.attempt == 0 { task.attempt } else { request.attempt })
}

/// One attempt's log, read from `offset` on.
#[derive(Debug)]
struct Follow {
    path: PathBuf,
    offset: i64,
    attempt: i32,
    /// Nothing more will be written (or the caller does not follow): the stream ends at the end of the log.
    done: bool,
    /// The capture's bound.
    max: i64,
    run_id: Uuid,
    task_path: String,
    store: Arc<dyn RunRepository>,
}

impl Follow {
    /// Sends the log in chunks; while the task runs, what it writes next, until it ends or the caller leaves.
    async fn send(
        mut self,
        mut changes: broadcast::Receiver<Change>,
        sender: mpsc::Sender<Result<pb::StreamTaskLogsResponse, Status>>,
    ) {
        let mut buffer = vec![0u8; CHUNK];
        let mut file = None;
        loop {
            if file.is_none() {
                // The task may have replaced its log with a FIFO or a link: open only a regular file, never waiting.
                let opening = self.path.clone();
                file = tokio::task::spawn_blocking(move || crate::task_files::open_regular(&opening))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(tokio::fs::File::from_std);
            }
            let mut read = 0;
            if let Some(f) = file.as_mut()
                && f.seek(std::io::SeekFrom::Start(u64::try_from(self.offset).unwrap_or(0))).await.is_ok()
            {
                read = f.read(&mut buffer).await.unwrap_or(0);
            }
            if read > 0 {
                let end = self.offset + i64::try_from(read).unwrap_or(0);
                let chunk = pb::StreamTaskLogsResponse {
                    data: buffer[..read].to_vec().into(),
                    offset: self.offset,
                    attempt: self.attempt,
                    truncated: end > self.max,
                };
                self.offset = end;
                if sender.send(Ok(chunk)).await.is_err() {
                    return;
                }
                continue;
            }
            if self.done {
                return;
            }
            // Wait for the task to end or the tick; then read whatever was written meanwhile.
            let ended = tokio::time::timeout(FOLLOW_TICK, self.ended(&mut changes)).await;
            // The task ended: one more pass reads what it wrote last, then the stream ends.
            self.done = ended.unwrap_or(false);
        }
    }

    /// Waits for the attempt to end (the task is terminal or another attempt started); true once it did.
    async fn ended(&self, changes: &mut broadcast::Receiver<Change>) -> bool {
        loop {
            match changes.recv().await {
                Ok(change) if change.run_id == self.run_id => {
                    if let Changed::Task(task) = &change.what
                        && task.path == self.task_path
                        && (task.state.is_terminal() || task.attempt != self.attempt)
                    {
                        return true;
                    }
                }
                Ok(_) => {}
                // Changes were missed, perhaps the one that ended the task: ask the store.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let ended = self.store.tasks(self.run_id).await.ok().and_then(|tasks| {
                        tasks
                            .into_iter()
                            .find(|t| t.path == self.task_path)
                            .map(|t| t.state.is_terminal() || t.attempt != self.attempt)
                    });
                    if ended.unwrap_or(true) {
                        return true;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return true,
            }
        }
    }
}
