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
use highwind_proto::{asset::v1::AssetKind, pipeline::v1 as pb};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;
use uuid::Uuid;

use super::{convert, read_error};
use crate::{
    assets::{AssetFiles, PipelineSource, ReadError},
    executor::{Changed, Engine, EngineError, register},
    ir::{self, Severity},
    runs::{
        model::{Backend, Binding, Destination, NewAssetSpec, Run, State, Task, now},
        values,
    },
    store::{RunQuery, RunRepository, StoreError},
};

/// Longest display name.
const MAX_DISPLAY_NAME: usize = 200;
/// Longest description.
const MAX_DESCRIPTION: usize = 10_000;
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
        EngineError::Conflict => Status::aborted("the run changed at the same time; try again"),
    }
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
        match pb::RunBackend::try_from(asked.backend).unwrap_or(pb::RunBackend::Unspecified) {
            pb::RunBackend::Unspecified | pb::RunBackend::Local => {}
            pb::RunBackend::Kfp => {
                return Err(status::failed_precondition(
                    "this server has no Kubeflow Pipelines backend configured; use LOCAL",
                    "BACKEND_NOT_CONFIGURED",
                    &[status::Precondition {
                        kind: "BACKEND",
                        subject: "KFP".into(),
                        description: "no Kubeflow Pipelines backend is configured".into(),
                    }],
                ));
            }
        }

        let ir = self.pipelines.ir(principal, &asked.pipeline_version).await.map_err(|e| match e {
            ReadError::NotPipeline(_) => {
                status::invalid_argument(&Violations::one("run.pipeline_version", e.to_string()))
            }
            other => read_error(other),
        })?;
        let pipeline = ir::parse(&ir.content)
            .map_err(|issue| Status::failed_precondition(format!("{}: {}", issue.reason, issue.message)))?;
        if let Some(issue) = ir::validate(&pipeline).into_iter().find(|i| i.severity == Severity::Error) {
            return Err(Status::failed_precondition(format!(
                "the pipeline version no longer validates: {} at {}: {}",
                issue.reason, issue.location, issue.message
            )));
        }
        let description = ir::describe(&pipeline);
        let parameters = cast_parameters(&description, &asked.parameters)?;
        let bindings = self.bindings(principal, &description, &asked, &parameters).await?;
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
            backend: Backend::Local,
            backend_run_id: String::new(),
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
        if validate_only {
            return Ok(pb::Run { name: String::new(), uid: String::new(), ..convert::run(&run, None) });
        }
        let ir_text = String::from_utf8_lossy(&ir.content).into_owned();
        let stored = self.store.create(&run, &ir_text).await.map_err(store_error)?;
        if stored.id == run.id {
            self.engine.launch(run.clone(), Arc::new(pipeline.spec));
        }
        Ok(convert::run(&stored, None))
    }

    /// Checks and resolves input bindings: each target once, each version readable and of a fitting kind, every
    /// required input artifact bound and every unbound importer's URI a Highwind asset version.
    async fn bindings(
        &self,
        principal: &Principal,
        description: &pb::PipelineDescription,
        asked: &pb::Run,
        parameters: &BTreeMap<String, Value>,
    ) -> Result<Vec<Binding>, Status> {
        use pb::input_binding::Target;
        let mut violations = Violations::new();
        let mut bound = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, binding) in asked.input_bindings.iter().enumerate() {
            let at = format!("run.input_bindings[{index}]");
            let (pipeline_input, importer_task, artifact_type) = match &binding.target {
                Some(Target::PipelineInput(key)) => match description.input_artifacts.iter().find(|a| &a.name == key) {
                    Some(a) => (key.clone(), String::new(), a.artifact_type.clone()),
                    None => {
                        violations.add(
                            format!("{at}.pipeline_input"),
                            format!("{key:?} is not an input artifact of the pipeline"),
                        );
                        continue;
                    }
                },
                Some(Target::ImporterTask(task)) => match description.importers.iter().find(|i| &i.task == task) {
                    Some(i) => (String::new(), task.clone(), i.artifact_type.clone()),
                    None => {
                        violations.add(
                            format!("{at}.importer_task"),
                            format!("{task:?} is not an importer task of the pipeline"),
                        );
                        continue;
                    }
                },
                None => {
                    violations.add(format!("{at}.target"), "required: pipeline_input or importer_task");
                    continue;
                }
            };
            if !seen.insert((pipeline_input.clone(), importer_task.clone())) {
                violations.add(format!("{at}.target"), "bound more than once");
                continue;
            }
            if !is_version_name(&binding.asset_version) {
                violations.add(format!("{at}.asset_version"), "required: assets/{asset}/versions/{version-or-alias}");
                continue;
            }
            let version = match self.assets.version(principal, &binding.asset_version).await {
                Ok(version) if version.usable => version,
                Ok(version) => return Err(read_error(ReadError::NotReady(version.name))),
                Err(e) => return Err(read_error(e)),
            };
            let wanted = match artifact_type.as_str() {
                "system.Dataset" => Some(AssetKind::Dataset),
                "system.Model" => Some(AssetKind::Model),
                _ => None,
            };
            if let Some(wanted) = wanted
                && wanted != version.kind
            {
                violations.add(
                    format!("{at}.asset_version"),
                    format!(
                        "{artifact_type} needs a {} asset; {} is a {}",
                        wanted.as_str_name(),
                        version.name,
                        version.kind.as_str_name()
                    ),
                );
                continue;
            }
            let requested = binding.asset_version.rsplit('/').next().unwrap_or_default();
            let exact = version.name.rsplit('/').next().unwrap_or_default();
            bound.push(Binding {
                pipeline_input,
                importer_task,
                asset_version: version.name.clone(),
                alias: if requested == exact { String::new() } else { requested.to_owned() },
                asset_kind: version.kind.as_str_name().to_owned(),
            });
        }
        for input in &description.input_artifacts {
            if !input.optional && !seen.iter().any(|(p, _)| p == &input.name) {
                violations.add(
                    "run.input_bindings",
                    format!("input artifact {:?} must be bound to an asset version", input.name),
                );
            }
        }
        for importer in &description.importers {
            // A binding, even one refused above, replaces the URI: judge the binding, not the URI too.
            if seen.iter().any(|(_, task)| task == &importer.task) {
                continue;
            }
            let uri = if importer.uri_parameter.is_empty() {
                Some(importer.uri_constant.clone()).filter(|u| !u.is_empty())
            } else {
                parameters.get(&importer.uri_parameter).and_then(Value::as_str).map(str::to_owned)
            };
            if let Some(uri) = uri
                && !is_asset_uri(&uri)
            {
                let field = if importer.uri_parameter.is_empty() {
                    "run.input_bindings".to_owned()
                } else {
                    format!("run.parameters.{}", importer.uri_parameter)
                };
                violations.add(
                    field,
                    format!(
                        "importer {:?} would import {uri:?}: only highwind://assets/{{asset}}/versions/{{version}} URIs are \
                         imported (the server never fetches other URLs); bind the importer to an asset version",
                        importer.task
                    ),
                );
            }
        }
        if violations.is_empty() { Ok(bound) } else { Err(status::invalid_argument(&violations)) }
    }

    /// Checks output destinations: each names a Dataset or Model output of a task (or of the pipeline) once, and
    /// an existing asset of a fitting kind that the caller owns, or a well-formed new asset.
    async fn destinations(
        &self,
        principal: &Principal,
        pipeline: &ir::Pipeline,
        description: &pb::PipelineDescription,
        asked: &[pb::OutputDestination],
    ) -> Result<Vec<Destination>, Status> {
        use pb::output_destination::Destination as Target;
        let mut violations = Violations::new();
        let mut checked = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, destination) in asked.iter().enumerate() {
            let at = format!("run.output_destinations[{index}]");
            let component = if destination.task.is_empty() {
                pipeline.spec.root.as_ref()
            } else {
                description
                    .tasks
                    .iter()
                    .find(|t| t.task == destination.task)
                    .and_then(|t| pipeline.spec.components.get(&t.component))
            };
            let Some(component) = component else {
                violations.add(format!("{at}.task"), format!("{:?} is not a task of the pipeline", destination.task));
                continue;
            };
            let Some(output) = component.output_definitions.artifacts.get(&destination.output_key) else {
                violations.add(
                    format!("{at}.output_key"),
                    format!("{:?} is not an output artifact there", destination.output_key),
                );
                continue;
            };
            let Some(kind) = register::kind_for(&output.artifact_type.schema_title) else {
                violations.add(
                    format!("{at}.output_key"),
                    format!(
                        "a {} output cannot become an asset version: only system.Dataset and system.Model",
                        output.artifact_type.schema_title
                    ),
                );
                continue;
            };
            if !seen.insert((destination.task.clone(), destination.output_key.clone())) {
                violations.add(format!("{at}.output_key"), "named by more than one destination");
                continue;
            }
            let mut checked_one = Destination {
                task: destination.task.clone(),
                output_key: destination.output_key.clone(),
                ..Destination::default()
            };
            match &destination.destination {
                Some(Target::Asset(name)) => {
                    let asset = self.assets.asset(principal, name).await.map_err(read_error)?;
                    if asset.owner != principal.as_str() {
                        return Err(Status::permission_denied(format!(
                            "{name}: only its owner can add versions to it"
                        )));
                    }
                    if asset.kind != kind {
                        violations.add(
                            format!("{at}.asset"),
                            format!(
                                "a {} output needs a {} asset; {name} is a {}",
                                output.artifact_type.schema_title,
                                kind.as_str_name(),
                                asset.kind.as_str_name()
                            ),
                        );
                        continue;
                    }
                    checked_one.asset = asset.name;
                }
                Some(Target::NewAsset(new)) => {
                    let length = new.display_name.chars().count();
                    if length == 0 || length > MAX_DISPLAY_NAME {
                        violations.add(
                            format!("{at}.new_asset.display_name"),
                            format!("required, at most {MAX_DISPLAY_NAME} characters"),
                        );
                    }
                    if new.description.chars().count() > MAX_DESCRIPTION {
                        violations.add(
                            format!("{at}.new_asset.description"),
                            format!("at most {MAX_DESCRIPTION} characters"),
                        );
                    }
                    let labels: BTreeMap<String, String> = new.labels.clone().into_iter().collect();
                    labels::validate(&labels, &format!("{at}.new_asset.labels"), &mut violations);
                    checked_one.new_asset = Some(NewAssetSpec {
                        display_name: new.display_name.clone(),
                        description: new.description.clone(),
                        labels,
                    });
                }
                None => {
                    violations.add(format!("{at}.destination"), "required: asset or new_asset");
                    continue;
                }
            }
            checked.push(checked_one);
        }
        if violations.is_empty() { Ok(checked) } else { Err(status::invalid_argument(&violations)) }
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
                violations.add("order_by", format!("{other:?}: use create_time desc or create_time"));
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

/// `highwind://assets/{asset}/versions/{version}` with plain segments.
fn is_asset_uri(uri: &str) -> bool {
    uri.strip_prefix("highwind://").is_some_and(|rest| {
        is_version_name(rest)
            && rest
                .split('/')
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    })
}

/// Casts the given parameters to their declared types and applies defaults; unknown, mistyped and missing
/// required parameters are INVALID_ARGUMENT naming `run.parameters.<name>`.
fn cast_parameters(
    description: &pb::PipelineDescription,
    given: &std::collections::HashMap<String, prost_types::Value>,
) -> Result<BTreeMap<String, Value>, Status> {
    let mut violations = Violations::new();
    let mut parameters = BTreeMap::new();
    let mut names: Vec<&String> = given.keys().collect();
    names.sort();
    for name in names {
        if !description.input_parameters.iter().any(|p| &p.name == name) {
            violations.add(format!("run.parameters.{name}"), "the pipeline has no such input parameter");
        }
    }
    for declared in &description.input_parameters {
        let at = format!("run.parameters.{}", declared.name);
        let type_name = pb::ParameterType::try_from(declared.r#type)
            .map(|t| t.as_str_name().trim_start_matches("PARAMETER_TYPE_").to_owned())
            .unwrap_or_default();
        let value = match given.get(&declared.name) {
            Some(value) => match highwind_common::proto_json::from_proto(value) {
                Ok(value) => Some(value),
                Err(e) => {
                    violations.add(&at, e);
                    continue;
                }
            },
            None => declared.default_value.as_ref().and_then(|d| highwind_common::proto_json::from_proto(d).ok()),
        };
        match value {
            Some(value) => match values::cast(&type_name, &value) {
                Ok(value) => {
                    parameters.insert(declared.name.clone(), value);
                }
                Err(e) => violations.add(&at, e),
            },
            None if declared.required => violations.add(&at, "required: the pipeline gives it no default"),
            None => {}
        }
    }
    if violations.is_empty() { Ok(parameters) } else { Err(status::invalid_argument(&violations)) }
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
                query.state = Some(State::parse(&value).ok_or_else(|| format!("{value:?} is not a run state"))?);
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
                    return Err(format!("{value:?} is not a backend: use LOCAL or KFP"));
                }
                query.backend = Some(value);
            }
            "create_time" => {
                let time = chrono::DateTime::parse_from_rfc3339(&value)
                    .map_err(|_| format!("{value:?} is not an RFC 3339 time"))?
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
                    format!("cannot filter runs on {other:?}: use state, pipeline, pipeline_version, creator, backend, create_time or labels.<key>")
                })?;
                equal()?;
                label_terms.push((key.to_owned(), value));
            }
        }
    }
    Ok(nothing)
}
