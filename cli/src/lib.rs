//! The `highwind` command line against a running platform (the `highwind` binary's client commands; the binary
//! itself lives with the gateway, which it also starts): push and pull dataset, model and pipeline versions;
//! start, watch and read the logs of pipeline runs; pull, list and prune the images steps run in; deploy use
//! cases and look after their deployments.

mod connect;
mod deployments;
mod images;
mod manifest;
mod progress;
mod pull;
mod push;
mod runs;

pub use connect::Target;
pub use deployments::{
    DeployRequest, deploy, get as get_deployment, list as list_deployments, logs as deployment_logs,
    remove as remove_deployment,
};
pub use images::{list as list_images, prune as prune_images, pull as pull_image};
pub use pull::pull;
pub use push::{PushSource, push};
pub use runs::{StartRequest, logs as run_logs, start as start_run, watch as watch_run};

/// Why a command failed; printed as one line before a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The platform could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// A call failed.
    #[error("{action}: {message} ({code:?})")]
    Call {
        /// What was being done.
        action: String,
        /// The gRPC code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// A local file or directory could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The command was asked for something that cannot work.
    #[error("{0}")]
    Usage(String),
    /// Downloaded bytes do not match the manifest.
    #[error("{path}: downloaded content hashes to {actual}, the version says {expected}")]
    Corrupt {
        /// The file.
        path: String,
        /// The manifest's digest.
        expected: String,
        /// What arrived.
        actual: String,
    },
}

/// Prints a command's output, a line each; a closed pipe ends it quietly (a reader may stop early).
fn print(lines: &[String]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(())
}

impl CliError {
    fn call(action: impl Into<String>) -> impl FnOnce(tonic::Status) -> Self {
        let action = action.into();
        move |status| Self::Call { action, code: status.code(), message: status.message().to_owned() }
    }

    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |error| Self::Io { path: path.display().to_string(), error }
    }
}
