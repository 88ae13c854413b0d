//! `highwind run start | watch | logs`: start a pipeline run, follow its tasks, read a task's log.

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
};

use highwind_proto::pipeline::v1::{self as pb, watch_run_response::Change};
use prost_types::value::Kind;

use super::{CliError, Target};

/// What `run start` was asked for.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// `assets/ID/versions/N` (or an alias).
    pub pipeline_version: String,
    /// `name=value` pairs; values are read by the parameter's declared type.
    pub params: Vec<String>,
    /// `NAME=assets/ID/versions/N` pairs: a pipeline input artifact or an importer task.
    pub inputs: Vec<String>,
    /// Where container steps run; the server's default when UNSPECIFIED.
    pub image_mode: pb::ImageMode,
}

/// Starts a run; its name.
pub async fn start(target: &Target, request: StartRequest) -> Result<String, CliError> {
    let mut clients = target.connect().await?;
    let description = clients
        .pipelines
        .describe_pipeline(pb::DescribePipelineRequest { pipeline_version: request.pipeline_version.clone() })
        .await
        .map_err(CliError::call(format!("describing {}", request.pipeline_version)))?
        .into_inner();
    let mut parameters = std::collections::HashMap::new();
    for pair in &request.params {
        let (name, text) = split_pair(pair, "--param")?;
        let declared = description.input_parameters.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<&str> = description.input_parameters.iter().map(|p| p.name.as_str()).collect();
            CliError::Usage(format!("--param {name}: the pipeline takes {}", known.join(", ")))
        })?;
        parameters.insert(name.to_owned(), typed(declared, text)?);
    }
    let mut input_bindings = Vec::new();
    for pair in &request.inputs {
        let (name, version) = split_pair(pair, "--input")?;
        let target = if description.importers.iter().any(|i| i.task == name) {
            pb::input_binding::Target::ImporterTask(name.to_owned())
        } else if description.input_artifacts.iter().any(|a| a.name == name) {
            pb::input_binding::Target::PipelineInput(name.to_owned())
        } else {
            return Err(CliError::Usage(format!(
                "--input {name}: neither an input artifact nor an importer task of the pipeline"
            )));
        };
        input_bindings.push(pb::InputBinding {
            target: Some(target),
            asset_version: version.to_owned(),
            alias: String::new(),
        });
    }
    let run = pb::Run {
        pipeline_version: request.pipeline_version.clone(),
        parameters,
        input_bindings,
        image_mode: request.image_mode as i32,
        ..Default::default()
    };
    let created = clients
        .pipelines
        .create_run(pb::CreateRunRequest { run: Some(run), ..Default::default() })
        .await
        .map_err(CliError::call("starting the run"))?
        .into_inner();
    Ok(created.name)
}

fn split_pair<'a>(pair: &'a str, flag: &str) -> Result<(&'a str, &'a str), CliError> {
    pair.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| CliError::Usage(format!("{flag} {pair:?}: expected NAME=VALUE")))
}

/// `text` as a value of the parameter's declared type: strings as written, numbers and booleans parsed, lists
/// and structs as JSON.
fn typed(declared: &pb::ParameterSpec, text: &str) -> Result<prost_types::Value, CliError> {
    let bad = |what: &str| CliError::Usage(format!("--param {}={text}: expected {what}", declared.name));
    let kind = match pb::ParameterType::try_from(declared.r#type).unwrap_or(pb::ParameterType::Unspecified) {
        pb::ParameterType::NumberInteger | pb::ParameterType::NumberDouble => {
            Kind::NumberValue(text.trim().parse::<f64>().map_err(|_| bad("a number"))?)
        }
        pb::ParameterType::Boolean => Kind::BoolValue(text.trim().parse::<bool>().map_err(|_| bad("true or false"))?),
        pb::ParameterType::List | pb::ParameterType::Struct => {
            let json: serde_json::Value = serde_json::from_str(text).map_err(|_| bad("JSON"))?;
            return Ok(highwind_common::proto_json::to_proto(&json));
        }
        _ => Kind::StringValue(text.to_owned()),
    };
    Ok(prost_types::Value { kind: Some(kind) })
}

fn state_name(state: i32) -> &'static str {
    pb::RunState::try_from(state).map_or("UNKNOWN", |s| s.as_str_name().trim_start_matches("RUN_STATE_"))
}

/// Follows run `name` until it ends: a live table of its tasks on a terminal, one line per change otherwise.
/// Returns the run's final state.
#[allow(clippy::print_stdout)] // the table and the lines are the command's output
pub async fn watch(target: &Target, name: &str) -> Result<pb::RunState, CliError> {
    let mut clients = target.connect().await?;
    let mut stream = clients
        .pipelines
        .watch_run(pb::WatchRunRequest { name: name.to_owned() })
        .await
        .map_err(CliError::call(format!("watching {name}")))?
        .into_inner();
    let live = std::io::stdout().is_terminal();
    let prefix = format!("{name}/tasks/");
    let mut tasks: BTreeMap<String, pb::Task> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut run_state = pb::RunState::Pending as i32;
    let mut drawn = 0usize;
    let mut out = std::io::stdout();
    while let Some(message) = stream.message().await.map_err(CliError::call(format!("watching {name}")))? {
        let changed_tasks: Vec<pb::Task> = match message.change {
            Some(Change::Snapshot(run)) => {
                run_state = run.state;
                if !live {
                    println!("{name} {}", state_name(run.state));
                }
                run.tasks
            }
            Some(Change::Run(run)) => {
                run_state = run.state;
                if !live {
                    let why = run.error.map(|e| format!(": {} ({})", e.message, e.reason)).unwrap_or_default();
                    println!("{name} {}{why}", state_name(run.state));
                }
                Vec::new()
            }
            Some(Change::Task(task)) => vec![task],
            None => Vec::new(),
        };
        for task in changed_tasks {
            let path = task.name.strip_prefix(&prefix).unwrap_or(&task.name).to_owned();
            if !live {
                let note =
                    if task.state_message.is_empty() { String::new() } else { format!(" ({})", task.state_message) };
                println!("  {path} {}{note}", state_name(task.state));
            }
            if !tasks.contains_key(&path) {
                order.push(path.clone());
            }
            tasks.insert(path, task);
        }
        if live {
            // Redraw the table in place: up over what was drawn, clear, draw again.
            let mut table = format!("{name}  {}\n", state_name(run_state));
            for path in &order {
                let task = &tasks[path];
                table.push_str(&format!("  {:<48} {:<10} {}\n", path, state_name(task.state), task.state_message));
            }
            if drawn > 0 {
                let _ = write!(out, "\x1b[{drawn}A\x1b[J");
            }
            let _ = write!(out, "{table}");
            let _ = out.flush();
            drawn = table.lines().count();
        }
    }
    Ok(pb::RunState::try_from(run_state).unwrap_or(pb::RunState::Unspecified))
}

/// Writes task `task` of run `run`'s log to stdout; with `follow`, until the task ends.
pub async fn logs(target: &Target, run: &str, task: &str, follow: bool) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let name = format!("{run}/tasks/{task}");
    let mut stream = clients
        .pipelines
        .stream_task_logs(pb::StreamTaskLogsRequest { name: name.clone(), follow, ..Default::default() })
        .await
        .map_err(CliError::call(format!("reading the log of {name}")))?
        .into_inner();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.message().await.map_err(CliError::call(format!("reading the log of {name}")))? {
        out.write_all(&chunk.data).map_err(|error| CliError::Io { path: "stdout".into(), error })?;
        out.flush().map_err(|error| CliError::Io { path: "stdout".into(), error })?;
    }
    Ok(())
}
