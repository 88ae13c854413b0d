//! CreateRun, GetRun, ListRuns, WatchRun, CancelRun and RetryRun: requests checked, then handed to the executor.

use std::{collections::BTreeMap, pin::Pin, sync::Arc};

use futures::Stream;
use highwind_common::{
    filter::{self, Op},
    labels,
    page_token::PageTokens,
    principal::Principal,
    status,
    validation::{self, Violations},
};
use highwind_proto::pipeline::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;
use uuid::Uuid;

use super::{
    blocking::{self, Abandoned},
    convert, read_error,
};
use crate::{
    assets::{AssetFiles, PipelineSource, ReadError},
    executor::{Changed, Engine, EngineError},
    ir::{self, Severity},
    runs::model::{Backend, Run, State, Task, now},
    store::{RunQuery, RunRepository, StoreError},
};

/// Longest display name.
pub(super) const MAX_DISPLAY_NAME: usize = 200;
/// Longest description.
pub(super) const MAX_DESCRIPTION: usize = 10_000;
/// Longest idempotency key.
const MAX_REQUEST_ID: usize = 128;

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

fn store_error(error: StoreError) -> Status {
    status::internal(&error)
}

fn engine_error(error: EngineError) -> Status {
    match error {
        EngineError::Store(e) => store_error(e),
        EngineError::WrongState(state) => status::failed_precondition(
            format!("the run is {state}"),
            "RUN_STATE",
            &[status::Precondition {
                kind: "STATE",
                subject: "run".into(),
                description: format!("the run is {state}"),
            }],
        ),
        EngineError::NoKfp => kfp_refusal("BACKEND_NOT_CONFIGURED", NO_KFP),
        EngineError::Conflict => Status::aborted("the run changed at the same time; try again"),
        EngineError::TooManyActiveRuns { creator, limit } => status::quota_exhausted(
            creator,
            format!(
                "at most {limit} active runs (PENDING, RUNNING or CANCELING) at once \
                 (executor.max_active_runs_per_user); wait for one to end or cancel one"
            ),
        ),
    }
}

/// The stored IR of a run's pipeline version parsed, validated and described, unless the call is `abandoned`
/// first; FAILED_PRECONDITION when the version no longer validates.
fn runnable(content: &[u8], abandoned: &Abandoned) -> Result<(ir::Pipeline, pb::PipelineDescription), Status> {
    let pipeline = ir::parse(content)
        .map_err(|issue| Status::failed_precondition(format!("{}: {}", issue.reason, issue.message)))?;
    if abandoned.is_set() {
        return Err(blocking::gone());
    }
    if let Some(issue) = ir::validate(&pipeline).into_iter().find(|i| i.severity == Severity::Error) {
        return Err(Status::failed_precondition(format!(
            "the pipeline version no longer validates: {} at {}: {}",
            issue.reason, issue.location, issue.message
        )));
    }
    if abandoned.is_set() {
        return Err(blocking::gone());
    }
    let description = ir::describe(&pipeline);
    Ok((pipeline, description))
}

const NO_KFP: &str = "this server has no Kubeflow Pipelines backend configured; use LOCAL";

/// FAILED_PRECONDITION for a run the KFP backend cannot take, saying why.
pub(super) fn kfp_refusal(reason: &str, why: &str) -> Status {
    status::failed_precondition(
        "the run cannot go to Kubeflow Pipelines",
        reason,
        &[status::Precondition { kind: "BACKEND", subject: "KFP".into(), description: why.into() }],
    )
}

/// `runs/{uuid}` → the id, or INVALID_ARGUMENT naming `field`.
pub fn run_id(name: &str, field: &str) -> Result<Uuid, Status> {
    name.strip_prefix("runs/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .filter(|id| name == format!("runs/{id}"))
        .ok_or_else(|| status::invalid_argument(&Violations::one(field, "must be runs/{run}, the run's UUID")))
}

/// Whether `name` is `assets/{asset}/versions/{version-or-alias}`.
pub fn is_version_name(name: &str) -> bool {
    name.strip_prefix("assets/")
        .and_then(|rest| rest.split_once("/versions/"))
        .is_some_and(|(asset, version)| !asset.is_empty() && !version.is_empty() && !version.contains('/'))
}

impl Runs {
    /// The run `name` if `principal` created it; NOT_FOUND otherwise.
    pub async fn readable(&self, principal: &Principal, name: &str) -> Result<Run, Status> {
        let id = run_id(name, "name")?;
        match self.store.get(id).await.map_err(store_error)? {
            Some(run) if run.creator == principal.as_str() => Ok(run),
            _ => Err(Status::not_found(format!("{name} not found"))),
        }
    }

    /// CreateRun.
    pub async fn create(&self, principal: &Principal, request: pb::CreateRunRequest) -> Result<pb::Run, Status> {
        let pb::CreateRunRequest { run, request_id, validate_only } = request;
        let Some(asked) = run else {
            return Err(status::invalid_argument(&Violations::one("run", "required")));
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
        if request_id.chars().count() > MAX_REQUEST_ID {
            violations.add("request_id", format!("at most {MAX_REQUEST_ID} characters"));
        }
        let run_labels: BTreeMap<String, String> = asked.labels.clone().into_iter().collect();
        labels::validate(&run_labels, "run.labels", &mut violations);
        if !violations.is_empty() {
            return Err(status::invalid_argument(&violations));
        }
        let backend = match pb::RunBackend::try_from(asked.backend).unwrap_or(pb::RunBackend::Unspecified) {
            pb::RunBackend::Unspecified | pb::RunBackend::Local => Backend::Local,
            pb::RunBackend::Kfp if self.engine.has_kfp() => Backend::Kfp,
            pb::RunBackend::Kfp => {
                return Err(kfp_refusal("BACKEND_NOT_CONFIGURED", NO_KFP));
            }
        };
        if backend == Backend::Kfp && !asked.output_destinations.is_empty() {
            return Err(kfp_refusal(
                "KFP_OUTPUTS_STAY_IN_KFP",
                "outputs of Kubeflow Pipelines runs stay in KFP's pipeline root and do not become asset versions; \
                 leave run.output_destinations empty or use LOCAL",
            ));
        }

        let ir = self.pipelines.ir(principal, &asked.pipeline_version).await.map_err(|e| match e {
            ReadError::NotPipeline(_) => {
                status::invalid_argument(&Violations::one("run.pipeline_version", e.to_string()))
            }
            other => read_error(other),
        })?;
        let content = ir.content.clone();
        let (pipeline, description) = blocking::run(move |abandoned| runnable(&content, abandoned)).await??;
        super::run_request::within_limits(&ir::size(&pipeline.spec), self.engine.config())?;
        let parameters = super::run_request::cast_parameters(&description, &asked.parameters)?;
        let bindings = self.bindings(principal, &description, &asked, &parameters, backend).await?;
        let destinations = self.destinations(principal, &pipeline, &description, &asked.output_destinations).await?;

        let time = now();
        let alias_of = |asked: &str, exact: &str| {
            if asked == exact { String::new() } else { asked.rsplit('/').next().unwrap_or_default().to_owned() }
        };
        let display_name = if asked.display_name.is_empty() {
            format!("{} {}", description.pipeline_name, time.format("%Y-%m-%d %H:%M:%S"))
        } else {
            asked.display_name.clone()
        };
        let run = Run {
            id: Uuid::now_v7(),
            display_name,
            description: asked.description.clone(),
            pipeline_alias: alias_of(&asked.pipeline_version, &ir.version),
            pipeline_version: ir.version.clone(),
            parameters,
            input_bindings: bindings,
            output_destinations: destinations,
            unbound_output_policy: asked.unbound_output_policy,
            enable_caching: asked.enable_caching,
            allow_network: asked.allow_network,
            backend,
            backend_run_id: String::new(),
            backend_attempt: 0,
            state: State::Pending,
            error: None,
            outputs: Default::default(),
            creator: principal.as_str().to_owned(),
            create_time: time,
            start_time: None,
            end_time: None,
            update_time: time,
            labels: run_labels,
            attempt: 1,
            sequence: 1,
            request_id: (!request_id.is_empty()).then_some(request_id),
            retry_request_id: None,
        };
        // Taken before the run is stored, so concurrent creates cannot pass the limit together.
        let admission = self.engine.admit(principal.as_str()).map_err(engine_error)?;
        if validate_only {
            return Ok(pb::Run { name: String::new(), uid: String::new(), ..convert::run(&run, None) });
        }
        let ir_text = String::from_utf8_lossy(&ir.content).into_owned();
        let stored = self.store.create(&run, &ir_text).await.map_err(store_error)?;
        if stored.id == run.id {
            self.engine.launch(run.clone(), Arc::new(pipeline.spec), admission);
        }
        Ok(convert::run(&stored, None))
    }

    /// GetRun.
    pub async fn get(&self, principal: &Principal, request: pb::GetRunRequest) -> Result<pb::Run, Status> {
        let run = self.readable(principal, &request.name).await?;
        let full = request.view != pb::RunView::Basic as i32;
        let tasks = if full { Some(self.store.tasks(run.id).await.map_err(store_error)?) } else { None };
        Ok(convert::run(&run, tasks.as_deref()))
    }

    /// ListRuns.
    pub async fn list(
        &self,
        principal: &Principal,
        request: pb::ListRunsRequest,
    ) -> Result<pb::ListRunsResponse, Status> {
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
            return Err(status::invalid_argument(&violations));
        }
        let mut runs = if matches_nothing { Vec::new() } else { self.store.list(&query).await.map_err(store_error)? };
        let next_page_token = if runs.len() > page_size {
            runs.truncate(page_size);
            runs.last()
                .map(|r| self.tokens.encode(&scope, &(r.create_time.timestamp_micros(), r.id)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut page = Vec::new();
        for run in runs.iter().filter(|r| label_terms.iter().all(|(k, v)| r.labels.get(k) == Some(v))) {
            let tasks = if full { Some(self.store.tasks(run.id).await.map_err(store_error)?) } else { None };
            page.push(convert::run(run, tasks.as_deref()));
        }
        Ok(pb::ListRunsResponse { runs: page, next_page_token })
    }

    /// WatchRun: a snapshot, then every change, until the run is terminal.
    pub async fn watch(&self, principal: &Principal, request: pb::WatchRunRequest) -> Result<WatchStream, Status> {
        // Subscribed before the snapshot is read, so no change falls between the two.
        let mut receiver = self.engine.subscribe();
        let id = self.readable(principal, &request.name).await?.id;
        let store = self.store.clone();
        let (sender, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
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
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
    }

    /// CancelRun.
    pub async fn cancel(&self, principal: &Principal, request: pb::CancelRunRequest) -> Result<pb::Run, Status> {
        let run = self.readable(principal, &request.name).await?;
        let run = self.engine.cancel(&run).await.map_err(engine_error)?;
        Ok(convert::run(&run, None))
    }

    /// RetryRun.
    pub async fn retry(&self, principal: &Principal, request: pb::RetryRunRequest) -> Result<pb::Run, Status> {
        if request.request_id.chars().count() > MAX_REQUEST_ID {
            return Err(status::invalid_argument(&Violations::one(
                "request_id",
                format!("at most {MAX_REQUEST_ID} characters"),
            )));
        }
        let run = self.readable(principal, &request.name).await?;
        if !request.request_id.is_empty() && run.retry_request_id.as_deref() == Some(request.request_id.as_str()) {
            return Ok(convert::run(&run, None));
        }
        let key = (!request.request_id.is_empty()).then_some(request.request_id);
        let run = self.engine.retry(&run, key).await.map_err(engine_error)?;
        Ok(convert::run(&run, None))
    }

    /// The task `name` (`runs/{run}/tasks/{path}`) of a run `principal` created.
    pub async fn task(&self, principal: &Principal, name: &str) -> Result<(Run, Task), Status> {
        let (run_name, path) = name
            .strip_prefix("runs/")
            .and_then(|rest| rest.split_once("/tasks/"))
            .map(|(id, path)| (format!("runs/{id}"), path.to_owned()))
            .filter(|(_, path)| !path.is_empty())
            .ok_or_else(|| status::invalid_argument(&Violations::one("name", "must be runs/{run}/tasks/{task}")))?;
        let run = self.readable(principal, &run_name).await?;
        let tasks = self.store.tasks(run.id).await.map_err(store_error)?;
        let task =
            tasks.into_iter().find(|t| t.path == path).ok_or_else(|| Status::not_found(format!("{name} not found")))?;
        Ok((run, task))
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
