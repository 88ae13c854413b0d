//! One run's driver: walks the pipeline's DAGs, starts what is ready, records every state change and stops what
//! runs when the run is cancelled. It alone writes its run while the run is live.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicI32, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    Change, Changed, Command, EngineError, Shared, cache, cel,
    inputs::{self, Sources},
    launch::{self, RunInfo},
    process, register, run_dir, task_dir,
    work::{CANCELLED, ContainerWork, Event, INVALID_ARGUMENT, Outcome, fetch_version, importer_version},
};
use crate::{
    ir::spec::{CachingOptions, ComponentSpec, Container, Importer, PipelineSpec, RetryPolicy, Task as TaskSpec},
    runs::model::{Artifact, Direction, Failure, LineageEdge, Run, State, Task, TaskType, Values, now},
};

/// A DAG being executed: the root (path ""), a sub-DAG task, a loop or one loop iteration.
#[derive(Debug, Clone)]
struct Instance {
    /// The component whose DAG this is; empty for the root.
    component: String,
    inputs: Values,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Its children are the DAG's tasks.
    Body,
    /// Its children are iterations, each a `Body` of the same component with the item as `item_input`.
    Loop { items: Vec<Item>, limit: usize, item_input: String },
}

#[derive(Debug, Clone)]
enum Item {
    Parameter(Value),
    Artifact(Artifact),
}

/// Work in flight for a task.
#[derive(Debug)]
struct Dispatched {
    work: tokio::task::AbortHandle,
    /// The process group once started (0 before).
    group: Arc<AtomicI32>,
}

struct Driver {
    shared: Arc<Shared>,
    spec: Arc<PipelineSpec>,
    run: Run,
    persisted: i64,
    run_changed: bool,
    tasks: BTreeMap<String, Task>,
    changed: Vec<String>,
    instances: BTreeMap<String, Instance>,
    dispatched: HashMap<String, Dispatched>,
    events: mpsc::UnboundedSender<Event>,
    /// The root DAG ended this way; outputs are registered before the run does.
    root_ended: Option<(State, Option<Failure>, Values)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// Drives `run` to a terminal state.
pub(super) async fn drive(
    shared: Arc<Shared>,
    run: Run,
    spec: Arc<PipelineSpec>,
    mut commands: mpsc::Receiver<Command>,
) {
    // The run is live until this driver ends it: loading its tasks is retried, not given up.
    let mut delay = Duration::from_millis(100);
    let tasks = loop {
        match shared.store.tasks(run.id).await {
            Ok(tasks) => break tasks.into_iter().map(|t| (t.path.clone(), t)).collect(),
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "cannot load the run's tasks; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    let (events, mut receiver) = mpsc::unbounded_channel();
    let persisted = run.sequence;
    let mut driver = Driver {
        shared,
        spec,
        run,
        persisted,
        run_changed: false,
        tasks,
        changed: Vec::new(),
        instances: BTreeMap::new(),
        dispatched: HashMap::new(),
        events,
        root_ended: None,
    };
    match driver.root_inputs().await {
        Ok(inputs) => {
            driver.instances.insert(String::new(), Instance { component: String::new(), inputs, kind: Kind::Body });
            driver.run.state = State::Running;
            driver.run.start_time.get_or_insert_with(now);
        }
        Err(failure) => driver.end_run(State::Failed, Some(failure), Values::default()),
    }
    driver.run_changed = true;
    let mut commands_open = true;
    loop {
        driver.advance();
        if let Some((state, error, outputs)) = driver.root_ended.take() {
            driver.flush().await;
            driver.finish_run(state, error, outputs).await;
        }
        driver.flush().await;
        if driver.run.state.is_terminal() {
            break;
        }
        tokio::select! {
            Some(event) = receiver.recv() => driver.on_event(event),
            command = commands.recv(), if commands_open => match command {
                Some(Command::Cancel(reply)) => driver.cancel(reply).await,
                None => commands_open = false,
            },
        }
    }
}

impl Driver {
    fn component(&self, name: &str) -> Option<&ComponentSpec> {
        if name.is_empty() { self.spec.root.as_ref() } else { self.spec.components.get(name) }
    }

    fn touch(&mut self, path: &str) {
        if !self.changed.iter().any(|p| p == path) {
            self.changed.push(path.to_owned());
        }
    }

    /// The root DAG's inputs: the run's parameters and the asset versions bound to pipeline input artifacts.
    async fn root_inputs(&self) -> Result<Values, Failure> {
        let mut inputs = Values { parameters: self.run.parameters.clone(), ..Values::default() };
        let root = self.spec.root.clone().unwrap_or_default();
        for (index, binding) in self.run.input_bindings.iter().enumerate() {
            if binding.pipeline_input.is_empty() {
                continue;
            }
            let definition = root.input_definitions.artifacts.get(&binding.pipeline_input).cloned().unwrap_or_default();
            let dest = run_dir(&self.shared.config, self.run.id).join("inputs").join(index.to_string());
            let artifact = fetch_version(
                &self.shared,
                &self.run,
                &binding.asset_version,
                &dest,
                &binding.pipeline_input,
                &definition.artifact_type,
                "",
            )
            .await
            .map_err(|e| Failure { task: String::new(), ..e })?;
            inputs.artifacts.insert(binding.pipeline_input.clone(), vec![artifact]);
        }
        Ok(inputs)
    }

    /// Starts whatever is ready until nothing more changes.
    fn advance(&mut self) {
        loop {
            let mut progressed = false;
            let paths: Vec<String> = self.instances.keys().cloned().collect();
            for path in paths {
                let active = if path.is_empty() {
                    self.run.state == State::Running
                } else {
                    self.tasks.get(&path).is_some_and(|t| t.state == State::Running)
                };
                if active {
                    progressed |= self.step(&path);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// One pass over DAG instance `path`; true when anything changed.
    fn step(&mut self, path: &str) -> bool {
        let Some(instance) = self.instances.get(path).cloned() else { return false };
        let Some(component) = self.component(&instance.component).cloned() else {
            self.finish_dag(
                path,
                State::Failed,
                Some(Failure::new(INVALID_ARGUMENT, "BAD_PIPELINE", "no such component")),
                Values::default(),
            );
            return true;
        };
        let dag = component.dag.clone().unwrap_or_default();
        let mut progressed = false;
        match &instance.kind {
            Kind::Body => {
                for (key, task) in &dag.tasks {
                    progressed |= self.ensure_task(path, key, task);
                }
                for (key, task) in &dag.tasks {
                    let child = join(path, key);
                    let pending = self.tasks.get(&child).is_some_and(|t| t.state == State::Pending);
                    if pending && !self.dispatched.contains_key(&child) {
                        progressed |= self.try_start(path, &instance, key, task);
                    }
                }
                let children: Vec<String> = dag.tasks.keys().map(|k| join(path, k)).collect();
                if children.iter().all(|c| self.tasks.get(c).is_some_and(|t| t.state.is_terminal())) {
                    let (state, error) = self.summarize(&children);
                    let outputs =
                        if state == State::Succeeded { self.dag_outputs(path, &dag) } else { Values::default() };
                    self.finish_dag(path, state, error, outputs);
                    progressed = true;
                }
            }
            Kind::Loop { items, limit, item_input } => {
                let key = path.rsplit('.').next().unwrap_or(path).to_owned();
                let iterations: Vec<String> = (0..items.len()).map(|i| join(path, &i.to_string())).collect();
                for (index, iteration) in iterations.iter().enumerate() {
                    if !self.tasks.contains_key(iteration) {
                        let mut task = self.new_task(iteration, path, &key, &TaskSpec::default(), TaskType::Dag);
                        task.component = instance.component.clone();
                        task.iteration_index = Some(i64::try_from(index).unwrap_or(i64::MAX));
                        task.display_name = format!("{key} #{index}");
                        self.insert_task(task);
                        progressed = true;
                    }
                }
                let mut running =
                    iterations.iter().filter(|i| self.tasks.get(*i).is_some_and(|t| t.state == State::Running)).count();
                for (index, iteration) in iterations.iter().enumerate() {
                    if *limit > 0 && running >= *limit {
                        break;
                    }
                    if self.tasks.get(iteration).is_some_and(|t| t.state == State::Pending) {
                        let mut inputs = instance.inputs.clone();
                        match &items[index] {
                            Item::Parameter(value) => {
                                inputs.parameters.insert(item_input.clone(), value.clone());
                            }
                            Item::Artifact(artifact) => {
                                inputs.artifacts.insert(item_input.clone(), vec![artifact.clone()]);
                            }
                        }
                        let body = Instance {
                            component: instance.component.clone(),
                            inputs: inputs.clone(),
                            kind: Kind::Body,
                        };
                        self.instances.insert(iteration.clone(), body);
                        self.update(iteration, |t| {
                            t.state = State::Running;
                            t.start_time = Some(now());
                            t.inputs = inputs;
                        });
                        running += 1;
                        progressed = true;
                    }
                }
                if iterations.iter().all(|i| self.tasks.get(i).is_some_and(|t| t.state.is_terminal())) {
                    let (state, error) = self.summarize(&iterations);
                    let outputs = if state == State::Succeeded {
                        self.collected(&iterations, &component)
                    } else {
                        Values::default()
                    };
                    self.finish_dag(path, state, error, outputs);
                    progressed = true;
                }
            }
        }
        progressed
    }

    fn new_task(&self, path: &str, parent: &str, key: &str, spec: &TaskSpec, task_type: TaskType) -> Task {
        Task {
            path: path.to_owned(),
            uid: uuid::Uuid::now_v7(),
            task_key: key.to_owned(),
            display_name: if spec.task_info.name.is_empty() { key.to_owned() } else { spec.task_info.name.clone() },
            parent: parent.to_owned(),
            component: spec.component_ref.name.clone(),
            task_type,
            state: State::Pending,
            create_time: Some(now()),
            attempt: 1,
            ..Task::default()
        }
    }

    fn insert_task(&mut self, task: Task) {
        let path = task.path.clone();
        self.tasks.insert(path.clone(), task);
        self.touch(&path);
    }

    /// Creates task `key` of DAG `parent` as PENDING if it does not exist yet.
    fn ensure_task(&mut self, parent: &str, key: &str, spec: &TaskSpec) -> bool {
        let path = join(parent, key);
        if self.tasks.contains_key(&path) {
            return false;
        }
        let task_type = match self.component(&spec.component_ref.name) {
            Some(c) if c.dag.is_some() => TaskType::Dag,
            Some(c) => {
                let label = c.executor_label.clone().unwrap_or_default();
                match self.spec.deployment_spec.executors.get(&label) {
                    Some(e) if e.importer.is_some() => TaskType::Importer,
                    _ => TaskType::Container,
                }
            }
            None => TaskType::Container,
        };
        let task = self.new_task(&path, parent, key, spec, task_type);
        self.insert_task(task);
        true
    }

    fn update(&mut self, path: &str, change: impl FnOnce(&mut Task)) {
        if let Some(task) = self.tasks.get_mut(path) {
            change(task);
            self.touch(path);
        }
    }

    fn end_task(&mut self, path: &str, state: State, message: &str, error: Option<Failure>) {
        let time = now();
        self.update(path, |t| {
            t.state = state;
            t.state_message = message.to_owned();
            t.error = error;
            t.end_time = Some(time);
        });
    }

    /// Starts task `key` of DAG `parent` if its upstream tasks allow; true when its state changed.
    fn try_start(&mut self, parent: &str, instance: &Instance, key: &str, spec: &TaskSpec) -> bool {
        let path = join(parent, key);
        let dag = self.component(&instance.component).and_then(|c| c.dag.clone()).unwrap_or_default();
        let mut upstream_problem = None;
        for dependency in &spec.dependent_tasks {
            match self.tasks.get(&join(parent, dependency)) {
                Some(task) if task.state.is_terminal() => {
                    if task.state != State::Succeeded && upstream_problem.is_none() {
                        upstream_problem = Some((dependency.clone(), task.state));
                    }
                }
                _ => return false,
            }
        }
        let wait_for_all = spec.trigger_policy.strategy == "ALL_UPSTREAM_TASKS_COMPLETED";
        if let Some((dependency, state)) = &upstream_problem
            && !wait_for_all
        {
            let message = format!("upstream task {dependency:?} is {}", state.as_str());
            self.end_task(&path, State::Skipped, &message, None);
            return true;
        }
        let after_failure = upstream_problem.is_some();
        self.update(&path, |t| t.ran_after_failure = after_failure);
        let Some(component) = self.component(&spec.component_ref.name).cloned() else {
            let failure =
                Failure::new(INVALID_ARGUMENT, "BAD_PIPELINE", format!("no component {:?}", spec.component_ref.name));
            self.end_task(&path, State::Failed, "", Some(failure));
            return true;
        };
        let resolved = {
            let siblings: BTreeMap<String, &Task> =
                dag.tasks.keys().filter_map(|k| self.tasks.get(&join(parent, k)).map(|t| (k.clone(), t))).collect();
            let run_name = format!("runs/{}", self.run.id);
            let sources = Sources { dag_inputs: &instance.inputs, siblings: &siblings, run_name: &run_name };
            inputs::resolve(spec, &component, &sources)
        };
        let inputs = match resolved {
            Ok(inputs) => inputs,
            Err(message) => {
                self.end_task(
                    &path,
                    State::Failed,
                    "",
                    Some(Failure::new(INVALID_ARGUMENT, "INPUT_UNRESOLVED", message)),
                );
                return true;
            }
        };
        if !spec.trigger_policy.condition.is_empty() {
            match cel::condition(&spec.trigger_policy.condition, &inputs.parameters) {
                Ok(true) => {}
                Ok(false) => {
                    self.update(&path, |t| t.inputs = inputs);
                    self.end_task(&path, State::Skipped, "condition false", None);
                    return true;
                }
                Err(message) => {
                    let failure = Failure::new(INVALID_ARGUMENT, "CONDITION_FAILED", message);
                    self.end_task(&path, State::Failed, "", Some(failure));
                    return true;
                }
            }
        }
        if component.dag.is_some() {
            self.start_dag(&path, spec, spec.component_ref.name.clone(), inputs);
            return true;
        }
        let label = component.executor_label.clone().unwrap_or_default();
        let executor = self.spec.deployment_spec.executors.get(&label).cloned().unwrap_or_default();
        self.update(&path, |t| t.inputs = inputs.clone());
        if let Some(container) = executor.container {
            self.dispatch_container(&path, &component, &container, &spec.retry_policy, &spec.caching_options, inputs);
        } else if let Some(importer) = executor.importer {
            self.dispatch_importer(&path, &importer, inputs);
        } else {
            let failure =
                Failure::new(INVALID_ARGUMENT, "EXECUTOR_UNSUPPORTED", format!("executor {label:?} cannot run here"));
            self.end_task(&path, State::Failed, "", Some(failure));
        }
        true
    }

    fn start_dag(&mut self, path: &str, spec: &TaskSpec, name: String, inputs: Values) {
        let iterator = spec.parameter_iterator.as_ref().or(spec.artifact_iterator.as_ref());
        let kind = match iterator {
            None => Kind::Body,
            Some(iterator) => {
                let items = if spec.artifact_iterator.is_some() {
                    let key = iterator.items.input_artifact.clone().unwrap_or_default();
                    Ok(inputs
                        .artifacts
                        .get(&key)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(Item::Artifact)
                        .collect())
                } else {
                    let parameter = iterator.items.input_parameter.as_ref().and_then(|p| inputs.parameters.get(p));
                    inputs::loop_items(iterator.items.raw.as_deref(), parameter)
                        .map(|values| values.into_iter().map(Item::Parameter).collect())
                };
                match items {
                    Ok(items) => Kind::Loop {
                        items,
                        limit: usize::try_from(spec.iterator_policy.parallelism_limit).unwrap_or(0),
                        item_input: iterator.item_input.clone(),
                    },
                    Err(message) => {
                        let failure = Failure::new(INVALID_ARGUMENT, "INPUT_UNRESOLVED", message);
                        self.end_task(path, State::Failed, "", Some(failure));
                        return;
                    }
                }
            }
        };
        self.instances.insert(path.to_owned(), Instance { component: name, inputs: inputs.clone(), kind });
        self.update(path, |t| {
            t.state = State::Running;
            t.start_time = Some(now());
            t.inputs = inputs;
        });
    }

    /// The state a DAG ends in given its children: FAILED if one failed, CANCELED if one was, else SUCCEEDED.
    fn summarize(&self, children: &[String]) -> (State, Option<Failure>) {
        let tasks: Vec<&Task> = children.iter().filter_map(|c| self.tasks.get(c)).collect();
        if let Some(failed) = tasks.iter().find(|t| t.state == State::Failed) {
            let inner = failed.error.clone().unwrap_or_default();
            let task = if inner.task.is_empty() { failed.path.clone() } else { inner.task.clone() };
            let message = if inner.task.is_empty() {
                format!("task {:?} failed: {}", failed.path, inner.message)
            } else {
                inner.message.clone()
            };
            return (State::Failed, Some(Failure { task, message, ..inner }));
        }
        if tasks.iter().any(|t| t.state == State::Canceled) {
            return (State::Canceled, None);
        }
        (State::Succeeded, None)
    }

    /// A finished DAG's outputs, from its `dag.outputs` selectors.
    fn dag_outputs(&self, path: &str, dag: &crate::ir::spec::Dag) -> Values {
        let mut outputs = Values::default();
        for (key, source) in &dag.outputs.parameters {
            let mut selectors: Vec<_> = source.value_from_parameter.iter().cloned().collect();
            if let Some(oneof) = &source.value_from_oneof {
                selectors.extend(oneof.parameter_selectors.iter().cloned());
            }
            let value = selectors.iter().find_map(|s| {
                let task = self.tasks.get(&join(path, &s.producer_subtask))?;
                (task.state == State::Succeeded).then(|| task.outputs.parameters.get(&s.output_parameter_key)).flatten()
            });
            if let Some(value) = value {
                outputs.parameters.insert(key.clone(), value.clone());
            }
        }
        for (key, source) in &dag.outputs.artifacts {
            let artifacts = source.artifact_selectors.iter().find_map(|s| {
                let task = self.tasks.get(&join(path, &s.producer_subtask))?;
                (task.state == State::Succeeded).then(|| task.outputs.artifacts.get(&s.output_artifact_key)).flatten()
            });
            if let Some(artifacts) = artifacts {
                outputs.artifacts.insert(key.clone(), artifacts.clone());
            }
        }
        outputs
    }

    /// A loop's outputs: each output of its iterations gathered into a list, in iteration order (`dsl.Collected`).
    fn collected(&self, iterations: &[String], component: &ComponentSpec) -> Values {
        let mut outputs = Values::default();
        for key in component.output_definitions.parameters.keys() {
            let list: Vec<Value> = iterations
                .iter()
                .filter_map(|i| self.tasks.get(i).and_then(|t| t.outputs.parameters.get(key)).cloned())
                .collect();
            outputs.parameters.insert(key.clone(), Value::Array(list));
        }
        for key in component.output_definitions.artifacts.keys() {
            let list: Vec<Artifact> = iterations
                .iter()
                .filter_map(|i| self.tasks.get(i).and_then(|t| t.outputs.artifacts.get(key)).cloned())
                .flatten()
                .collect();
            outputs.artifacts.insert(key.clone(), list);
        }
        outputs
    }

    fn finish_dag(&mut self, path: &str, state: State, error: Option<Failure>, outputs: Values) {
        self.instances.remove(path);
        if path.is_empty() {
            self.root_ended = Some((state, error, outputs));
            return;
        }
        let time = now();
        self.update(path, |t| {
            t.state = state;
            t.error = error;
            t.outputs = outputs;
            t.end_time = Some(time);
        });
    }

    /// Ends the run once its root DAG has: a succeeded run first turns its Dataset and Model outputs into asset
    /// versions; failing that, it fails. What the run read is recorded for lineage either way.
    async fn finish_run(&mut self, state: State, error: Option<Failure>, outputs: Values) {
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
    fn read_versions(&self) -> Vec<LineageEdge> {
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

    fn end_run(&mut self, state: State, error: Option<Failure>, outputs: Values) {
        self.run.state = state;
        self.run.error = error;
        self.run.outputs = outputs;
        self.run.end_time = Some(now());
        self.run_changed = true;
    }

    fn run_info(&self, path: &str) -> RunInfo {
        let task = self.tasks.get(path);
        RunInfo {
            run_id: self.run.id.to_string(),
            run_name: self.run.display_name.clone(),
            task_name: path.to_owned(),
            task_uid: task.map(|t| t.uid.to_string()).unwrap_or_default(),
            run_root: run_dir(&self.shared.config, self.run.id),
            create_time: self.run.create_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }
    }

    fn dispatch_container(
        &mut self,
        path: &str,
        component: &ComponentSpec,
        container: &Container,
        retry: &RetryPolicy,
        spec_caching: &CachingOptions,
        inputs: Values,
    ) {
        let Some(task) = self.tasks.get(path).cloned() else { return };
        let dir = task_dir(&self.shared.config, self.run.id, &task);
        let prepared = std::fs::create_dir_all(dir.join("outputs"))
            .and_then(|()| std::fs::create_dir_all(dir.join("parameters")))
            .map_err(|e| format!("cannot prepare the task directory: {e}"))
            .and_then(|()| launch::prepare(component, container, &inputs, &dir, &self.run_info(path)));
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                let failure = Failure::new(INVALID_ARGUMENT, "TASK_NOT_STARTED", message);
                self.end_task(path, State::Failed, "", Some(failure));
                return;
            }
        };
        let group = Arc::new(AtomicI32::new(0));
        let caching = self.run.enable_caching && spec_caching.enable_cache;
        let fingerprint = caching
            .then(|| cache::fingerprint(&task.component, &spec_caching.cache_key, component, container, &inputs));
        let work = ContainerWork {
            shared: self.shared.clone(),
            events: self.events.clone(),
            path: path.to_owned(),
            run_id: self.run.id.to_string(),
            uid: task.uid.to_string(),
            dir,
            image: container.image.clone(),
            env: container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
            retry: retry.clone(),
            first_attempt: task.attempt.max(1),
            group: group.clone(),
            creator: self.run.creator.clone(),
            run_uuid: self.run.id,
            fingerprint,
            readable: inputs.artifacts.values().flatten().map(|a| PathBuf::from(&a.path)).collect(),
            network: self.run.allow_network,
        };
        let handle = tokio::spawn(work.run(prepared));
        self.dispatched.insert(path.to_owned(), Dispatched { work: handle.abort_handle(), group });
    }

    fn dispatch_importer(&mut self, path: &str, importer: &Importer, inputs: Values) {
        let Some(task) = self.tasks.get(path).cloned() else { return };
        // Bindings name the importer by its static path; inside a loop every iteration's importer takes it.
        let static_path = register::static_path(path);
        let binding =
            self.run.input_bindings.iter().find(|b| b.importer_task == static_path).map(|b| b.asset_version.clone());
        let uri = match (&importer.artifact_uri.constant, &importer.artifact_uri.runtime_parameter) {
            (Some(Value::String(uri)), _) => Some(uri.clone()),
            (_, Some(parameter)) => inputs.parameters.get(parameter).and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let version = match binding {
            Some(version) => Ok(version),
            None => importer_version(uri.as_deref().unwrap_or_default()),
        };
        let shared = self.shared.clone();
        let events = self.events.clone();
        let run = self.run.clone();
        let importer = importer.clone();
        let path_owned = path.to_owned();
        let dir = task_dir(&self.shared.config, self.run.id, &task).join("artifact");
        let handle = tokio::spawn(async move {
            let _ = events.send(Event::Started {
                path: path_owned.clone(),
                attempt: task.attempt.max(1),
                message: String::new(),
            });
            let outcome = match version {
                Err(failure) => Outcome::from(failure),
                Ok(version) => {
                    match fetch_version(&shared, &run, &version, &dir, "artifact", &importer.type_schema, &path_owned)
                        .await
                    {
                        Ok(mut artifact) => {
                            artifact.metadata = importer.metadata.clone();
                            let mut outputs = Values::default();
                            outputs.artifacts.insert("artifact".into(), vec![artifact]);
                            Outcome {
                                state: State::Succeeded,
                                outputs,
                                error: None,
                                exit_code: None,
                                log_truncated: false,
                                cached_from: None,
                            }
                        }
                        Err(failure) => Outcome::from(failure),
                    }
                }
            };
            let _ = events.send(Event::Finished { path: path_owned, outcome });
        });
        self.dispatched
            .insert(path.to_owned(), Dispatched { work: handle.abort_handle(), group: Arc::new(AtomicI32::new(0)) });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Started { path, attempt, message } => {
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
    fn stop_dispatched(&mut self) {
        for (_, dispatched) in self.dispatched.drain() {
            dispatched.work.abort();
            process::kill_group(dispatched.group.load(Ordering::SeqCst));
        }
    }

    async fn cancel(&mut self, reply: oneshot::Sender<Result<Run, EngineError>>) {
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
    async fn flush(&mut self) {
        if !self.run_changed && self.changed.is_empty() {
            return;
        }
        let time = now();
        let mut announcements = Vec::new();
        let mut tasks = Vec::new();
        for path in std::mem::take(&mut self.changed) {
            if let Some(task) = self.tasks.get(&path) {
                self.run.sequence += 1;
                tasks.push(task.clone());
                announcements.push((self.run.sequence, Changed::Task(Box::new(task.clone()))));
            }
        }
        self.run.update_time = time;
        if self.run_changed {
            self.run.sequence += 1;
            announcements.push((self.run.sequence, Changed::Run(Box::new(self.run.clone()))));
        }
        self.run_changed = false;
        let mut delay = Duration::from_millis(100);
        loop {
            match self.shared.store.save(&self.run, &tasks, self.persisted).await {
                Ok(true) => break,
                Ok(false) => {
                    // A save that failed to answer may still have committed: then the stored run is this one.
                    if let Ok(Some(stored)) = self.shared.store.get(self.run.id).await
                        && stored.sequence == self.run.sequence
                    {
                        break;
                    }
                    tracing::error!(run = %self.run.id, "the run was changed by someone else; its driver stops");
                    self.stop_dispatched();
                    self.run.state = State::Failed;
                    return;
                }
                Err(e) => {
                    tracing::warn!(run = %self.run.id, error = %e, "cannot save run state; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.persisted = self.run.sequence;
        for (sequence, what) in announcements {
            let _ = self.shared.changes.send(Change { run_id: self.run.id, sequence, time, what });
        }
    }
}
