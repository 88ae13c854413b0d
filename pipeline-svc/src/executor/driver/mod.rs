//! One run's driver: walks the pipeline's DAGs, starts what is ready, records every state change and stops what
//! runs when the run is cancelled. It alone writes its run while the run is live.

mod dispatch;
mod record;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, atomic::AtomicI32},
};

use serde_json::Value;
use tokio::sync::mpsc;

use super::{
    Command, Shared, cel,
    inputs::{self, Sources},
    load_tasks,
    local::LocalExecutor,
    run_dir,
    work::{Event, INVALID_ARGUMENT, fetch_version},
};
use crate::{
    ir::spec::{ComponentSpec, Dag, PipelineSpec, Task as TaskSpec},
    runs::entities::{Artifact, Failure, Run, State, Task, TaskType, Values, now},
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
    /// Its children are iterations, each a `Body` of the same component with the item as `item_input`. The items
    /// are shared: every pass over the loop reads them, none copies them.
    Loop { items: Arc<[Item]>, limit: usize, item_input: String },
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
    executor: Arc<LocalExecutor>,
    spec: Arc<PipelineSpec>,
    run: Run,
    persisted: i64,
    run_changed: bool,
    tasks: BTreeMap<String, Task>,
    /// Paths of the tasks changed since the last flush, in the order they first changed (and as a set).
    changed: Vec<String>,
    changed_set: HashSet<String>,
    /// ParallelFor items this driver expanded, for `max_loop_items`.
    loop_items: usize,
    instances: BTreeMap<String, Instance>,
    dispatched: HashMap<String, Dispatched>,
    events: mpsc::UnboundedSender<Event>,
    /// The root DAG ended this way; outputs are registered before the run does.
    root_ended: Option<(State, Option<Failure>, Values)>,
}

/// `google.rpc.Code` of a run that passed one of the executor's limits.
const RESOURCE_EXHAUSTED: i32 = 8;

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// Drives `run` to a terminal state.
pub(super) async fn drive(
    shared: Arc<Shared>,
    executor: Arc<LocalExecutor>,
    run: Run,
    spec: Arc<PipelineSpec>,
    mut commands: mpsc::Receiver<Command>,
) {
    let tasks = load_tasks(&shared, run.id).await.into_iter().map(|t| (t.path.clone(), t)).collect();
    let (events, mut receiver) = mpsc::unbounded_channel();
    let persisted = run.sequence;
    let mut driver = Driver {
        shared,
        executor,
        spec,
        run,
        persisted,
        run_changed: false,
        tasks,
        changed: Vec::new(),
        changed_set: HashSet::new(),
        loop_items: 0,
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
                Some(Command::Cancel(reply)) => driver.cancel(reply, &mut receiver).await,
                None => commands_open = false,
            },
        }
    }
}

impl Driver {
    fn component(&self, name: &str) -> Option<&ComponentSpec> {
        component_in(&self.spec, name)
    }

    fn touch(&mut self, path: &str) {
        if self.changed_set.insert(path.to_owned()) {
            self.changed.push(path.to_owned());
        }
    }

    /// A failure when `more` new tasks would take the run past `max_tasks_per_run`.
    fn past_task_limit(&self, more: usize) -> Option<Failure> {
        let limit = self.shared.config.max_tasks_per_run;
        (limit > 0 && self.tasks.len() + more > limit).then(|| {
            Failure::new(
                RESOURCE_EXHAUSTED,
                "TASK_LIMIT",
                format!(
                    "the run would hold {} tasks; at most {limit} per run (executor.max_tasks_per_run)",
                    self.tasks.len() + more
                ),
            )
        })
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
        // Borrowed from a handle of its own, so the driver can change while the spec is read; never copied.
        let spec = self.spec.clone();
        let Some(component) = component_in(&spec, &instance.component) else {
            self.finish_dag(
                path,
                State::Failed,
                Some(Failure::new(INVALID_ARGUMENT, "BAD_PIPELINE", "no such component")),
                Values::default(),
            );
            return true;
        };
        let no_dag = Dag::default();
        let dag = component.dag.as_ref().unwrap_or(&no_dag);
        let mut progressed = false;
        match &instance.kind {
            Kind::Body => {
                let missing = dag.tasks.keys().filter(|k| !self.tasks.contains_key(&join(path, k))).count();
                if missing > 0
                    && let Some(failure) = self.past_task_limit(missing)
                {
                    self.finish_dag(path, State::Failed, Some(failure), Values::default());
                    return true;
                }
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
                        if state == State::Succeeded { self.dag_outputs(path, dag) } else { Values::default() };
                    self.finish_dag(path, state, error, outputs);
                    progressed = true;
                }
            }
            Kind::Loop { items, limit, item_input } => {
                let key = path.rsplit('.').next().unwrap_or(path).to_owned();
                let iterations: Vec<String> = (0..items.len()).map(|i| join(path, &i.to_string())).collect();
                let missing = iterations.iter().filter(|i| !self.tasks.contains_key(*i)).count();
                if missing > 0
                    && let Some(failure) = self.past_task_limit(missing)
                {
                    self.finish_dag(path, State::Failed, Some(failure), Values::default());
                    return true;
                }
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
                        self.collected(&iterations, component)
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
        let pipeline = self.spec.clone();
        let no_dag = Dag::default();
        let dag = component_in(&pipeline, &instance.component).and_then(|c| c.dag.as_ref()).unwrap_or(&no_dag);
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
        let Some(component) = component_in(&pipeline, &spec.component_ref.name) else {
            let failure =
                Failure::new(INVALID_ARGUMENT, "BAD_PIPELINE", format!("no component {:?}", spec.component_ref.name));
            self.end_task(&path, State::Failed, "", Some(failure));
            return true;
        };
        let resolved = {
            // Only the tasks the inputs name: every sibling for every task would be quadratic in a wide DAG.
            let parameters = spec.inputs.parameters.values();
            let named = parameters
                .flat_map(|p| {
                    let output = p.task_output_parameter.as_ref().map(|o| &o.producer_task);
                    output.into_iter().chain(p.task_final_status.as_ref().map(|s| &s.producer_task))
                })
                .chain(
                    spec.inputs
                        .artifacts
                        .values()
                        .filter_map(|a| a.task_output_artifact.as_ref().map(|o| &o.producer_task)),
                )
                .map(String::as_str);
            let siblings: BTreeMap<String, &Task> = named
                .filter(|k| dag.tasks.contains_key(*k))
                .filter_map(|k| self.tasks.get(&join(parent, k)).map(|t| (k.to_owned(), t)))
                .collect();
            let run_name = format!("runs/{}", self.run.id);
            let sources = Sources { dag_inputs: &instance.inputs, siblings: &siblings, run_name: &run_name };
            inputs::resolve(spec, component, &sources)
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
            self.dispatch_container(&path, component, &container, &spec.retry_policy, &spec.caching_options, inputs);
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
                let items: Result<Vec<Item>, String> = if spec.artifact_iterator.is_some() {
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
                let limit = self.shared.config.max_loop_items;
                match items {
                    Ok(items) if limit > 0 && self.loop_items + items.len() > limit => {
                        let message = format!(
                            "the run's loops would hold {} items; at most {limit} per run (executor.max_loop_items)",
                            self.loop_items + items.len()
                        );
                        let failure = Failure::new(RESOURCE_EXHAUSTED, "LOOP_ITEMS_LIMIT", message);
                        self.end_task(path, State::Failed, "", Some(failure));
                        return;
                    }
                    Ok(items) => {
                        self.loop_items += items.len();
                        Kind::Loop {
                            items: items.into(),
                            limit: usize::try_from(spec.iterator_policy.parallelism_limit).unwrap_or(0),
                            item_input: iterator.item_input.clone(),
                        }
                    }
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
    fn dag_outputs(&self, path: &str, dag: &Dag) -> Values {
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
}

/// Component `name` of `spec`; the empty name is the root.
fn component_in<'s>(spec: &'s PipelineSpec, name: &str) -> Option<&'s ComponentSpec> {
    if name.is_empty() { spec.root.as_ref() } else { spec.components.get(name) }
}
