//! Collecting the outputs of a container task that exited 0, the way KFP's launcher does (`executor_output.json`
//! wins; a declared output artifact may be metadata alone, except a dataset or model), from a directory the task controlled until it exited: links
//! are resolved and must stay inside the task's directory, nothing but regular files is read, and every read and
//! walk is bounded (`crate::task_files`). Whatever the task left, collection ends promptly, with the outputs or a
//! reason that says what was found.
//!
//! The file-system calls run on a blocking thread, never on an async worker.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::launch::Prepared;
use crate::{
    runs::{
        entities::{Artifact, Values},
        values,
    },
    task_files::{self, LeftBehindError},
};

/// Largest `executor_output.json` or output parameter file read.
const MAX_OUTPUT_FILE: u64 = 1024 * 1024;
/// Longest path inside an artifact quoted in a message.
const MAX_QUOTED_PATH: usize = 200;

/// Why a finished task's outputs cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError {
    /// UPPER_SNAKE_CASE.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

fn output_error(reason: &'static str, message: impl Into<String>) -> OutputError {
    OutputError { reason, message: message.into() }
}

/// An output as messages name it.
#[derive(Debug, Clone, Copy)]
enum Output<'a> {
    ExecutorOutputFile,
    Parameter(&'a str),
    Artifact(&'a str),
}

impl fmt::Display for Output<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExecutorOutputFile => f.write_str("executor_output.json"),
            Self::Parameter(key) => write!(f, "output parameter {key:?}"),
            Self::Artifact(key) => write!(f, "output artifact {key:?}"),
        }
    }
}

fn bad(output: Output<'_>, error: LeftBehindError) -> OutputError {
    output_error("BAD_OUTPUT", format!("{output} {error}"))
}

fn missing(output: Output<'_>) -> OutputError {
    output_error("MISSING_OUTPUT", format!("the task did not write {output}"))
}

/// Collects the outputs of the task whose directory is `dir`, on a blocking thread.
pub async fn collect(prepared: &Prepared, dir: &Path, run_id: &str, task: &str) -> Result<Values, OutputError> {
    let (prepared, dir, run_id, task) = (prepared.clone(), dir.to_path_buf(), run_id.to_owned(), task.to_owned());
    tokio::task::spawn_blocking(move || collect_blocking(&prepared, &dir, &run_id, &task))
        .await
        .unwrap_or_else(|e| Err(output_error("BAD_OUTPUT", format!("collecting the outputs failed: {e}"))))
}

fn collect_blocking(prepared: &Prepared, dir: &Path, run_id: &str, task: &str) -> Result<Values, OutputError> {
    let dir = dir.canonicalize().map_err(|e| output_error("MISSING_OUTPUT", format!("the task's directory: {e}")))?;
    let executor_output = read_output(&dir, &prepared.executor_output, Output::ExecutorOutputFile)?
        .map(|text| serde_json::from_str::<Value>(&text))
        .transpose()
        .map_err(|e| output_error("BAD_EXECUTOR_OUTPUT", format!("executor_output.json is not JSON: {e}")))?
        .unwrap_or(Value::Null);
    let mut outputs = Values::default();
    for (key, (parameter_type, file)) in &prepared.output_parameters {
        let value = match executor_output.pointer(&format!("/parameterValues/{}", pointer_escape(key))) {
            Some(value) => values::cast(parameter_type, value),
            None => {
                let output = Output::Parameter(key);
                let text = read_output(&dir, file, output)?.ok_or_else(|| missing(output))?;
                values::from_text(parameter_type, &text)
            }
        }
        .map_err(|e| output_error("BAD_OUTPUT", format!("output parameter {key:?}: {e}")))?;
        outputs.parameters.insert(key.clone(), value);
    }
    for (key, (title, version, path)) in &prepared.output_artifacts {
        let written = executor_output.pointer(&format!("/artifacts/{}/artifacts/0", pointer_escape(key)));
        let metadata = written
            .and_then(|a| a.get("metadata"))
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), values::integral(v))).collect())
            .unwrap_or_default();
        let uri_elsewhere = written
            .and_then(|a| a.get("uri"))
            .and_then(Value::as_str)
            .is_some_and(|uri| Path::new(uri) != prepared.inside.path(path).as_path());
        if uri_elsewhere {
            return Err(output_error(
                "OUTPUT_OUTSIDE_TASK_DIR",
                format!("output artifact {key:?} was moved to another location; outputs stay in the task's directory"),
            ));
        }
        let output = Output::Artifact(key);
        if locate(&dir, path, output)?.is_some() {
            check_artifact(&dir, path, output)?;
        } else if needs_files(title) {
            return Err(missing(output));
        }
        outputs.artifacts.insert(
            key.clone(),
            vec![Artifact {
                key: key.clone(),
                artifact_type: title.clone(),
                schema_version: version.clone(),
                uri: format!("highwind://runs/{run_id}/tasks/{task}/outputs/{key}"),
                path: path.display().to_string(),
                metadata,
                asset_version: String::new(),
                producer_task: task.to_owned(),
            }],
        );
    }
    Ok(outputs)
}

/// Whether an output artifact of type `artifact_type` must have files. As on KFP, a task may leave an artifact
/// as metadata alone (an `Output[Metrics]` filled only with `log_metric`, an HTML or Markdown artifact it never
/// wrote); but datasets and models become asset versions, and a version without files is refused.
pub fn needs_files(artifact_type: &str) -> bool {
    matches!(artifact_type, "system.Dataset" | "system.Model")
}

/// Where `path` really is when something is there: every link on the way resolved (a task may replace
/// `parameters/` itself with a link), and inside `dir` (so a task cannot publish files of the host as outputs).
fn locate(dir: &Path, path: &Path, output: Output<'_>) -> Result<Option<PathBuf>, OutputError> {
    match path.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(output, LeftBehindError::Io(e))),
        Ok(_) => {}
    }
    let real = path.canonicalize().map_err(|_| missing(output))?;
    if !real.starts_with(dir) {
        return Err(output_error("OUTPUT_OUTSIDE_TASK_DIR", format!("{output} points outside the task's directory")));
    }
    Ok(Some(real))
}

/// The text of a small output file, `None` when the task wrote none.
fn read_output(dir: &Path, path: &Path, output: Output<'_>) -> Result<Option<String>, OutputError> {
    let Some(real) = locate(dir, path, output)? else { return Ok(None) };
    task_files::read_text(&real, MAX_OUTPUT_FILE).map_err(|e| bad(output, e))
}

/// An output artifact is a regular file or a directory inside `dir` holding only regular files, directories and
/// links that stay inside `dir` to either; a directory is walked within the walk's bounds.
fn check_artifact(dir: &Path, path: &Path, output: Output<'_>) -> Result<(), OutputError> {
    let real = locate(dir, path, output)?.ok_or_else(|| missing(output))?;
    let file_type = real.symlink_metadata().map_err(|e| bad(output, e.into()))?.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    if !file_type.is_dir() {
        let found = task_files::kind_name(file_type);
        return Err(output_error("BAD_OUTPUT", format!("{output} is a {found}, not a regular file or directory")));
    }
    for entry in task_files::walk(&real).map_err(|e| bad(output, e))? {
        let at = quoted(entry.path.strip_prefix(&real).unwrap_or(&entry.path));
        let file_type = if entry.file_type.is_symlink() {
            let target = entry.path.canonicalize().map_err(|_| {
                output_error("OUTPUT_OUTSIDE_TASK_DIR", format!("{output} holds a dangling link at {at}"))
            })?;
            if !target.starts_with(dir) {
                return Err(output_error(
                    "OUTPUT_OUTSIDE_TASK_DIR",
                    format!("{output} links outside the task's directory at {at}"),
                ));
            }
            target.symlink_metadata().map_err(|e| bad(output, e.into()))?.file_type()
        } else {
            entry.file_type
        };
        if !file_type.is_file() && !file_type.is_dir() {
            let found = task_files::kind_name(file_type);
            return Err(output_error("BAD_OUTPUT", format!("{output} holds a {found} at {at}, not a regular file")));
        }
    }
    Ok(())
}

/// A path inside an artifact for a message, cut to [`MAX_QUOTED_PATH`] characters.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    if text.chars().count() <= MAX_QUOTED_PATH {
        return format!("{text:?}");
    }
    let cut: String = text.chars().take(MAX_QUOTED_PATH).collect();
    format!("{cut:?}…")
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
