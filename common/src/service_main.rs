//! The `main` of every service binary: `--config FILE`, layered configuration, JSON logs, bind, serve until
//! SIGTERM or Ctrl-C.

use std::{future::Future, path::PathBuf, pin::Pin, process::ExitCode};

use tokio::net::TcpListener;

use crate::config::{self, Settings};

/// The shutdown future handed to a service.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Loads the `section` configuration (defaults from `defaults`), binds its address and runs `serve` on it.
/// Every failure is printed as one clear line and turns into a non-zero exit.
pub async fn run<C, F, Fut, E>(section: &str, defaults: C, serve: F) -> ExitCode
where
    C: Settings,
    F: FnOnce(TcpListener, Shutdown, C) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let _telemetry = crate::telemetry::init(&format!("{section}-svc"));
    let file = config_file_argument();
    let loaded = config::load_with_defaults(section, file.as_deref(), defaults)
        .map_err(|e| e.to_string())
        .and_then(|c: C| c.validate().map(|()| c));
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{section}: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let listen = config.server().listen;
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("{section}: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match serve(listener, Box::pin(crate::shutdown::signal()), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{section}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_file_argument() -> Option<PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("HIGHWIND_CONFIG").map(PathBuf::from)
}
