//! `highwind`: run the whole platform on one machine, or the gateway alone.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::{config::GatewayConfig, standalone};
use highwind_common::{config, shutdown, telemetry};

#[derive(Parser)]
#[command(name = "highwind", version, about = "Highwind: an open MLOps platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway and every service in one process, with SQLite and a local data directory.
    Standalone {
        /// Address of the gateway.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where databases and secrets are kept.
        #[arg(long, default_value = "./highwind-data")]
        data_dir: PathBuf,
        /// A dev user to mint a token for (repeatable); `dev` when none is given.
        #[arg(long = "dev-user", value_name = "NAME")]
        dev_users: Vec<String>,
    },
    /// Run only the gateway, in front of separately deployed services.
    Gateway {
        /// TOML configuration file; `HIGHWIND__GATEWAY__*` variables override it.
        #[arg(long, env = "HIGHWIND_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let result = match Cli::parse().command {
        Command::Standalone { listen, data_dir, dev_users } => {
            run_standalone(standalone::Options { listen, data_dir, dev_users }).await
        }
        Command::Gateway { config } => run_gateway(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("highwind: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)] // the ready line and tokens are the command's output
async fn run_standalone(options: standalone::Options) -> anyhow::Result<()> {
    let mut platform = standalone::Standalone::start(options).await?;
    println!("highwind ready on http://{}", platform.addr);
    for (user, token) in &platform.dev_tokens {
        println!("dev token ({user}): {}", token.expose());
    }
    tokio::select! {
        () = shutdown::signal() => {
            platform.stop().await;
            Ok(())
        }
        (part, reason) = platform.failed() => {
            platform.stop().await;
            anyhow::bail!("{part} stopped: {reason}")
        }
    }
}

async fn run_gateway(file: Option<PathBuf>) -> anyhow::Result<()> {
    let config: GatewayConfig = config::load("gateway", file.as_deref()).context("loading configuration")?;
    config.validate().map_err(anyhow::Error::msg).context("invalid configuration")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    gateway::serve(listener, shutdown::signal(), config).await?;
    Ok(())
}
