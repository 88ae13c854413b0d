//! CreateRun, GetRun, ListRuns, WatchRun, CancelRun and RetryRun: requests checked here, then handed to CreateRun's
//! rule (`runs::create`), the store or the executor.

use std::{collections::BTreeMap, pin::Pin, sync::Arc};

use futures::Stream;
use highwind_common::{
    filter::{self, Op},
    labels,
    page_token::PageTokens,
    principal::Principal,
    validation::{self, Violations},
};
use highwind_proto::pipeline::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;
use uuid::Uuid;

use super::convert;
use crate::{
    assets::{AssetFiles, PipelineSource, is_version_name},
    error::Error,
    executor::{Change, Changed, Engine},
    runs::{
        create::{self, Created, MAX_DESCRIPTION, MAX_DISPLAY_NAME, RunRequest},
        entities::{Backend, ImageMode, Run, State, Task, TaskType},
    },
    store::{RunQuery, RunRepository},
};

/// A stream of WatchRun messages.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRunResponse, Status>> + Send>>;

/// Run handlers' dependencies.
#[derive(Debug, Clone)]
pub struct Runs {
    /// Where runs are kept.
    pub store: Arc<dyn RunRepository>,
    /// The embedded executor.
    pub engine: Engine,
    /// Pipeline IR, read as the caller.
    pub pipelines: Arc<dyn PipelineSource>,
    /// Bound asset versions, resolved as the caller.
    pub assets: Arc<dyn AssetFiles>,
    /// Signs page tokens.
    pub tokens: PageTokens,
}

/// `runs/{uuid}` → the id, or a violation naming `field`.
pub fn run_id(name: &str, field: &str) -> Result<Uuid, Error> {
    name.strip_prefix("runs/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .filter(|id| name == format!("runs/{id}"))
        .ok_or_else(|| Error::Invalid(Violations::one(field, "must be runs/{run}, the run's UUID")))
}

/// A CreateRun request's own fields checked, every violation at once; what it asks of the pipeline is left to
/// [`create::create`].
fn run_request(request: pb::CreateRunRequest) -> Result<RunRequest, Error> {
    let pb::CreateRunRequest { run, request_id, validate_only } = request;
    let Some(asked) = run else {
        return Err(Error::Invalid(Violations::one("run", "required")));
    };
    let mut violations = Violations::new();
    if !is_version_name(&asked.pipeline_version) {
        violations.add("run.pipeline_version", "required: assets/{asset}/versions/{version-or-alias}");
    }
    if asked.display_name.chars().count() > MAX_DISPLAY_NAME {
        violations.add("run.display_name", format!("at most {MAX_DISPLAY_NAME} characters"));
    }
    if asked.description.chars().count() > MAX_DESCRIPTION {
        violations.add("run.description", format!("at most {MAX_DESCRIPTION} characters"));
    }
    highwind_common::idempotency::check_request_id(&request_id, &mut violations);
    let labels: BTreeMap<String, String> = asked.labels.into_iter().collect();
    labels::validate(&labels, "run.labels", &mut violations);
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let image_mode = match pb::ImageMode::try_from(asked.image_mode) {
        Ok(pb::ImageMode::Unspecified) => None,
        Ok(pb::ImageMode::Auto) => Some(ImageMode::Auto),
        Ok(pb::ImageMode::Image) => Some(ImageMode::Image),
        Ok(pb::ImageMode::Host) => Some(ImageMode::Host),
        Err(_) => {
            return Err(Error::Invalid(Violations::one("run.image_mode", "must be AUTO, IMAGE or HOST")));
        }
    };
    let backend = match pb::RunBackend::try_from(asked.backend).unwrap_or(pb::RunBackend::Unspecified) {
        pb::RunBackend::Unspecified | pb::RunBackend::Local => Backend::Local,
        pb::RunBackend::Kfp => Backend::Kfp,
    };
    Ok(RunRequest {
        pipeline_version: asked.pipeline_version,
        display_name: asked.display_name,
        description: asked.description,
        labels,
        backend,
        parameters: asked.parameters,
        input_bindings: asked.input_bindings,
        output_destinations: asked.output_destinations,
        unbound_output_policy: asked.unbound_output_policy,
        enable_caching: asked.enable_caching,
        allow_network: asked.allow_network,
        image_mode,
        request_id: highwind_common::idempotency::idempotency_key(&request_id).map(str::to_owned),
        validate_only,
    })
}

impl Runs {
    /// The run `name` if `principal` created it; NOT_FOUND otherwise.
    pub async fn readable(&self, principal: &Principal, name: &str) -> Result<Run, Error> {
        let id = run_id(name, "name")?;
        match self.store.get(id).await? {
            Some(run) if run.creator == principal.as_str() => Ok(run),
            _ => Err(Error::NotFound(name.to_owned())),
        }
    }

    /// CreateRun.
    pub async fn create(&self, principal: &Principal, request: pb::CreateRunRequest) -> Result<pb::Run, Error> {
        let request = run_request(request)?;
        let context = create::Context {
            store: &*self.store,
            engine: &self.engine,
            pipelines: &*self.pipelines,
            assets: &*self.assets,
        };
        Ok(match create::create(context, principal, request).await? {
            // Nothing was stored, so the run has no name yet.
            Created::Checked(run) => pb::Run { name: String::new(), uid: String::new(), ..convert::run(&run, None) },
            Created::Stored(run) => convert::run(&run, None),
        })
    }

    /// GetRun.
    pub async fn get(&self, principal: &Principal, request: pb::GetRunRequest) -> Result<pb::Run, Error> {
        let run = self.readable(principal, &request.name).await?;
        let full = request.view != pb::RunView::Basic as i32;
        let tasks = if full { Some(self.store.tasks(run.id).await?) } else { None };
        Ok(convert::run(&run, tasks.as_deref()))
    }

    /// ListRuns.
    pub async fn list(
        &self,
        principal: &Principal,
        request: pb::ListRunsRequest,
    ) -> Result<pb::ListRunsResponse, Error> {
        let listing = self.listing(principal, &request)?;
        let mut runs = if listing.matches_nothing { Vec::new() } else { self.store.list(&listing.query).await? };
        let next_page_token = if runs.len() > listing.page_size {
            runs.truncate(listing.page_size);
            runs.last()
                .map(|r| self.tokens.encode(&listing.scope, &(r.create_time.timestamp_micros(), r.id)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut page = Vec::new();
        for run in runs.iter().filter(|r| listing.label_terms.iter().all(|(k, v)| r.labels.get(k) == Some(v))) {
            let tasks = if listing.full { Some(self.store.tasks(run.id).await?) } else { None };
            page.push(convert::run(run, tasks.as_deref()));
        }
        Ok(pb::ListRunsResponse { runs: page, next_page_token })
    }

    /// ListRuns' request checked, every violation at once, and turned into a query of `principal`'s runs.
    fn listing(&self, principal: &Principal, request: &pb::ListRunsRequest) -> Result<Listing, Error> {
        let full = request.view == pb::RunView::Full as i32;
        let max = if full { 100 } else { 1000 };
        let mut violations = Violations::new();
        let page_size = validation::page_size(request.page_size, 50, max).unwrap_or_else(|e| {
            violations.add("page_size", e);
            0
        });
        let newest_first = match request.order_by.trim() {
            "" | "create_time desc" => true,
            "create_time" | "create_time asc" => false,
            other => {
                violations.add(
                    "order_by",
                    format!("{}: use create_time desc or create_time", highwind_common::status_bounds::echo(other)),
                );
                true
            }
        };
        let mut query = RunQuery {
            creator: principal.as_str().to_owned(),
            newest_first,
            limit: page_size + 1,
            ..RunQuery::default()
        };
        let mut label_terms = Vec::new();
        let matches_nothing = match parse_filter(&request.filter, principal, &mut query, &mut label_terms) {
            Ok(nothing) => nothing,
            Err(e) => {
                violations.add("filter", e);
                false
            }
        };
        let scope = format!("runs|{}|{}|{}|{}", principal, request.filter, request.order_by, full);
        if !request.page_token.is_empty() {
            match self.tokens.decode::<(i64, Uuid)>(&scope, &request.page_token) {
                Ok((micros, id)) => query.after = chrono::DateTime::from_timestamp_micros(micros).map(|t| (t, id)),
                Err(_) => violations.add("page_token", "not a page token of this query"),
            }
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Listing { query, label_terms, matches_nothing, scope, page_size, full })
    }

    /// WatchRun: a snapshot, then every change, until the run is terminal.
    pub async fn watch(&self, principal: &Principal, request: pb::WatchRunRequest) -> Result<WatchStream, Error> {
        // Subscribed before the snapshot is read, so no change falls between the two.
        let receiver = self.engine.subscribe();
        let id = self.readable(principal, &request.name).await?.id;
        let (sender, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(follow(self.store.clone(), receiver, id, sender));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
    }

    /// CancelRun.
    pub async fn cancel(&self, principal: &Principal, request: pb::CancelRunRequest) -> Result<pb::Run, Error> {
        let run = self.readable(principal, &request.name).await?;
        let run = self.engine.cancel(&run).await?;
        Ok(convert::run(&run, None))
    }

    /// RetryRun.
    pub async fn retry(&self, principal: &Principal, request: pb::RetryRunRequest) -> Result<pb::Run, Error> {
        let mut violations = Violations::new();
        highwind_common::idempotency::check_request_id(&request.request_id, &mut violations);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        let run = self.readable(principal, &request.name).await?;
        if !request.request_id.is_empty() && run.retry_request_id.as_deref() == Some(request.request_id.as_str()) {
            return Ok(convert::run(&run, None));
        }
        let key = (!request.request_id.is_empty()).then_some(request.request_id);
        let run = self.engine.retry(&run, key).await?;
        Ok(convert::run(&run, None))
    }

    /// The task `name` (`runs/{run}/tasks/{path}`) of a run `principal` created.
    pub async fn task(&self, principal: &Principal, name: &str) -> Result<(Run, Task), Error> {
        let (run_name, path) = name
            .strip_prefix("runs/")
            .and_then(|rest| rest.split_once("/tasks/"))
            .map(|(id, path)| (format!("runs/{id}"), path.to_owned()))
            .filter(|(_, path)| !path.is_empty())
            .ok_or_else(|| Error::Invalid(Violations::one("name", "must be runs/{run}/tasks/{task}")))?;
        let run = self.readable(principal, &run_name).await?;
        let tasks = self.store.tasks(run.id).await?;
        Ok((run, find_task(tasks, name, &path)?))
    }
}

/// The task `wanted` names among a run's `tasks`: the one at that path, else the one with that key (KFP's task
/// name: `announce` finds `condition-1.announce`), else the one with that display name; a key or display name
/// several tasks share (loop iterations) names none of them. `name` is the whole resource name, for errors.
fn find_task(mut tasks: Vec<Task>, name: &str, wanted: &str) -> Result<Task, Error> {
    if let Some(at) = tasks.iter().position(|t| t.path == wanted) {
        return Ok(tasks.swap_remove(at));
    }
    let by_key = |t: &Task| t.task_key == wanted;
    let by_display_name = |t: &Task| t.display_name == wanted;
    for matches in [&by_key as &dyn Fn(&Task) -> bool, &by_display_name] {
        let found: Vec<usize> = tasks.iter().enumerate().filter(|(_, t)| matches(t)).map(|(i, _)| i).collect();
        match found.as_slice() {
            [] => {}
            [one] => return Ok(tasks.swap_remove(*one)),
            several => {
                let candidates = several.iter().take(Error::TASKS_LISTED).map(|&i| tasks[i].path.clone()).collect();
                return Err(Error::AmbiguousTask { name: name.to_owned(), candidates });
            }
        }
    }
    // Container tasks first: they are the ones with logs, and what a reader most likely meant.
    let total = tasks.len();
    tasks.sort_by(|a, b| {
        (a.task_type != TaskType::Container, &a.path).cmp(&(b.task_type != TaskType::Container, &b.path))
    });
    let listed = tasks.into_iter().take(Error::TASKS_LISTED).map(|t| t.path).collect();
    Err(Error::NoSuchTask { name: name.to_owned(), tasks: listed, total })
}

/// A checked ListRuns request.
#[derive(Debug)]
struct Listing {
    /// What the store is asked, one run past the page to tell whether another page follows.
    query: RunQuery,
    /// `labels.<key>` terms, matched on the runs the store returns.
    label_terms: Vec<(String, String)>,
    /// The filter names another creator, whose runs the caller never sees.
    matches_nothing: bool,
    /// What a page token is bound to: the caller and the query.
    scope: String,
    page_size: usize,
    full: bool,
}

/// Sends run `id`'s snapshot, then its changes from `receiver`, until the run is terminal or the watcher left.
async fn follow(
    store: Arc<dyn RunRepository>,
    mut receiver: tokio::sync::broadcast::Receiver<Change>,
    id: Uuid,
    sender: tokio::sync::mpsc::Sender<Result<pb::WatchRunResponse, Status>>,
) {
    let send = |message| sender.send(Ok(message));
    let (mut run, tasks) = match (store.get(id).await, store.tasks(id).await) {
        (Ok(Some(run)), Ok(tasks)) => (run, tasks),
        _ => return,
    };
    let mut last = run.sequence;
    if send(convert::snapshot(&run, &tasks)).await.is_err() || run.state.is_terminal() {
        return;
    }
    loop {
        let change = match receiver.recv().await {
            Ok(change) => change,
            Err(RecvError::Lagged(_)) => {
                // Fell behind: a fresh snapshot replaces whatever was missed.
                let (Ok(Some(now_run)), Ok(tasks)) = (store.get(id).await, store.tasks(id).await) else {
                    return;
                };
                run = now_run;
                last = run.sequence;
                if send(convert::snapshot(&run, &tasks)).await.is_err() || run.state.is_terminal() {
                    return;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if change.run_id != id || change.sequence <= last {
            continue;
        }
        last = change.sequence;
        let message = match &change.what {
            Changed::Task(task) => convert::task_change(task, &run, change.sequence, change.time),
            Changed::Run(now_run) => {
                run = (**now_run).clone();
                match convert::change(&change) {
                    Some(message) => message,
                    None => continue,
                }
            }
        };
        if send(message).await.is_err() || run.state.is_terminal() {
            return;
        }
    }
}

/// Parses ListRuns' filter into `query`; `labels.<key>` terms go to `label_terms`. True when the filter can match
/// none of the caller's runs (another creator: runs are only visible to theirs).
fn parse_filter(
    text: &str,
    principal: &Principal,
    query: &mut RunQuery,
    label_terms: &mut Vec<(String, String)>,
) -> Result<bool, String> {
    let mut nothing = false;
    for (field, op, value) in filter::comparisons(text)? {
        let equal = || if op == Op::Eq { Ok(()) } else { Err(format!("{field} can only be compared with =")) };
        match field.as_str() {
            "state" => {
                equal()?;
                query.state =
                    Some(State::parse(&value).ok_or_else(|| {
                        format!("{} is not a run state", highwind_common::status_bounds::echo(&value))
                    })?);
            }
            "pipeline" => {
                equal()?;
                query.pipeline_asset = Some(value);
            }
            "pipeline_version" => {
                equal()?;
                query.pipeline_version = Some(value);
            }
            "creator" => {
                equal()?;
                nothing |= value != principal.as_str();
            }
            "backend" => {
                equal()?;
                if !["LOCAL", "KFP"].contains(&value.as_str()) {
                    return Err(format!(
                        "{} is not a backend: use LOCAL or KFP",
                        highwind_common::status_bounds::echo(&value)
                    ));
                }
                query.backend = Some(value);
            }
            "create_time" => {
                let time = chrono::DateTime::parse_from_rfc3339(&value)
                    .map_err(|_| format!("{} is not an RFC 3339 time", highwind_common::status_bounds::echo(&value)))?
                    .with_timezone(&chrono::Utc);
                match op {
                    Op::Gt | Op::Ge => {
                        query.created_after = Some(time - chrono::Duration::microseconds(i64::from(op == Op::Ge)))
                    }
                    Op::Lt | Op::Le => {
                        query.created_before = Some(time + chrono::Duration::microseconds(i64::from(op == Op::Le)))
                    }
                    Op::Eq => return Err("create_time takes >, >=, < or <=".into()),
                }
            }
            other => {
                let key = other.strip_prefix("labels.").filter(|k| labels::valid_key(k)).ok_or_else(|| {
                    format!("cannot filter runs on {}: use state, pipeline, pipeline_version, creator, backend, create_time or labels.<key>", highwind_common::status_bounds::echo(other))
                })?;
                equal()?;
                label_terms.push((key.to_owned(), value));
            }
        }
    }
    Ok(nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(path: &str, task_type: TaskType) -> Task {
        let key = path.rsplit('.').next().unwrap_or(path);
        Task { path: path.into(), task_key: key.into(), display_name: key.into(), task_type, ..Task::default() }
    }

    fn run_tasks() -> Vec<Task> {
        vec![
            task("condition-1", TaskType::Dag),
            task("condition-1.announce", TaskType::Container),
            task("evaluate", TaskType::Container),
            task("for-loop-2", TaskType::Dag),
            task("for-loop-2.0", TaskType::Dag),
            task("for-loop-2.0.square", TaskType::Container),
            task("for-loop-2.1", TaskType::Dag),
            task("for-loop-2.1.square", TaskType::Container),
        ]
    }

    #[test]
    fn a_task_is_found_by_its_path_its_key_or_its_display_name() {
        let name = "runs/r/tasks/x";
        assert_eq!(find_task(run_tasks(), name, "for-loop-2.1.square").expect("by path").path, "for-loop-2.1.square");
        assert_eq!(find_task(run_tasks(), name, "announce").expect("by key").path, "condition-1.announce");
        let mut renamed = run_tasks();
        renamed[2].display_name = "Evaluate the model".into();
        assert_eq!(find_task(renamed, name, "Evaluate the model").expect("by display name").path, "evaluate");
    }

    #[test]
    fn a_key_several_tasks_share_names_none_and_an_unknown_name_lists_the_tasks() {
        let Err(Error::AmbiguousTask { candidates, .. }) = find_task(run_tasks(), "runs/r/tasks/square", "square")
        else {
            panic!("loop iterations share their key")
        };
        assert_eq!(candidates, ["for-loop-2.0.square", "for-loop-2.1.square"]);
        let Err(Error::NoSuchTask { tasks, total, .. }) = find_task(run_tasks(), "runs/r/tasks/anounce", "anounce")
        else {
            panic!("no task has that name")
        };
        assert_eq!(total, 8);
        assert_eq!(&tasks[..4], ["condition-1.announce", "evaluate", "for-loop-2.0.square", "for-loop-2.1.square"]);
        let many: Vec<Task> = (0..50).map(|i| task(&format!("t{i:02}"), TaskType::Container)).collect();
        let Err(Error::NoSuchTask { tasks, total, .. }) = find_task(many, "runs/r/tasks/nope", "nope") else {
            panic!("no task has that name")
        };
        assert_eq!((tasks.len(), total), (Error::TASKS_LISTED, 50));
    }
}
