//! `highwind`: run the whole platform on one machine, or the gateway alone.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::{config::GatewayConfig, standalone};
use highwind_cli as cli;
use highwind_common::{config, shutdown, telemetry};
use highwind_proto::{asset::v1::AssetKind, pipeline::v1 as pb};
use pipeline_svc::kfp::KfpAuth;

#[derive(Parser)]
#[command(name = "highwind", version, about = "Highwind: an open MLOps platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once, at start")]
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
        /// Keep assets in this database (e.g. `postgres://…`) instead of the data directory's SQLite file.
        #[arg(long, value_name = "URL", env = "HIGHWIND_ASSET_DATABASE_URL", hide_env_values = true)]
        asset_database_url: Option<String>,
        /// Keep use cases in this database instead of the data directory's SQLite file.
        #[arg(long, value_name = "URL", env = "HIGHWIND_USECASE_DATABASE_URL", hide_env_values = true)]
        usecase_database_url: Option<String>,
        /// Send runs with backend KFP to the Kubeflow Pipelines API at this URL (e.g. `http://localhost:8888`).
        #[arg(long, value_name = "URL", env = "HIGHWIND_KFP_URL")]
        kfp_url: Option<String>,
        /// The KFP profile namespace runs go to (multi-user Kubeflow).
        #[arg(long, value_name = "NAMESPACE", env = "HIGHWIND_KFP_NAMESPACE", default_value = "")]
        kfp_namespace: String,
        /// A file holding the bearer token for KFP, read again whenever it changes.
        #[arg(long, value_name = "PATH", env = "HIGHWIND_KFP_TOKEN_FILE")]
        kfp_token_file: Option<PathBuf>,
        /// Where the embedded registry of Docker Repo images listens (started when `docker-registry` is installed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
        registry_listen: SocketAddr,
        /// Use the registry at this URL instead (it must trust `<data-dir>/registry-keys/bundle.pem` and use
        /// `http://<gateway>/registry/token` as its token realm).
        #[arg(long, value_name = "URL", env = "HIGHWIND_REGISTRY_URL")]
        registry_url: Option<String>,
        /// Start no registry: Docker Repo assets then hold no images.
        #[arg(long, conflicts_with = "registry_url")]
        no_registry: bool,
        /// `PATH` for pipeline tasks (default: the system's); each directory on it, and the interpreters its entries
        /// link to, is shown to the sandboxed tasks read-only.
        #[arg(long, value_name = "PATH", env = "HIGHWIND_TASK_PATH", default_value = "")]
        task_path: String,
        /// A host directory pipeline tasks may read (repeatable); the platform's data directory never is.
        #[arg(long = "task-read-only", value_name = "DIR")]
        task_read_only: Vec<PathBuf>,
        /// Where pipeline steps run: `auto` (in their own image when its registry is the platform's or one given
        /// with `--image-registry`, else on the host), `image` (always in their image) or `host`.
        #[arg(long, value_name = "MODE", env = "HIGHWIND_IMAGE_MODE", default_value = "auto")]
        image_mode: ImageModeArg,
        /// A registry steps' images are pulled from, `HOST=URL` (repeatable): `docker.io=http://127.0.0.1:5001`
        /// serves Docker Hub's names from a local mirror.
        #[arg(long = "image-registry", value_name = "HOST=URL", value_parser = host_and_url)]
        image_registries: Vec<(String, String)>,
        /// The package index `packages_to_install` come from in place of PyPI (e.g. a local devpi or a mirror);
        /// a component's own index still wins.
        #[arg(long, value_name = "URL", env = "HIGHWIND_PACKAGE_INDEX_URL", value_parser = http_url)]
        package_index_url: Option<String>,
        /// A directory of wheels and source archives steps may install `packages_to_install` from, read-only;
        /// steps whose run has no network install from it alone.
        #[arg(long, value_name = "DIR", env = "HIGHWIND_PACKAGE_DIR")]
        package_dir: Option<PathBuf>,
        /// The origin of a web page that may call the gateway from a browser, e.g. `http://localhost:5173`
        /// (repeatable); the gateway's own origins always may.
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origins: Vec<String>,
        /// A host name the gateway answers to besides IP addresses and `localhost` (repeatable); `*` for any.
        #[arg(long = "allowed-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
    },
    /// Push and pull dataset versions.
    Dataset {
        #[command(subcommand)]
        action: ContentAction,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Push and pull model versions.
    Model {
        #[command(subcommand)]
        action: ContentAction,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Push and pull pipeline versions (KFP IR YAML; refused with the IR's issues when it does not validate).
    Pipeline {
        #[command(subcommand)]
        action: ContentAction,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Manage the keys registry tokens are signed with.
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// Start pipeline runs, follow them and read their tasks' logs.
    Run {
        #[command(subcommand)]
        action: RunAction,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Pull, list and prune the images pipeline steps run in (the embedded executor's store).
    Image {
        #[command(subcommand)]
        action: ImageAction,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Deploy a use case's release (the newest unless `--release`, or its live links with `--live`); prints
    /// `deployments/ID`.
    Deploy {
        /// `useCases/ID`.
        use_case: String,
        /// The release number.
        #[arg(long, conflicts_with = "live")]
        release: Option<u32>,
        /// Deploy the use case's live links as they resolve now instead of a release.
        #[arg(long)]
        live: bool,
        /// Replicas of the predictor, 1 to 4.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Let the predictor reach other hosts (never this machine's loopback).
        #[arg(long)]
        allow_network: bool,
        /// Wait until it is READY (exit 0) or FAILED (exit 1, with the reason).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List, read and delete deployments.
    Deployment {
        #[command(subcommand)]
        action: DeploymentAction,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Run only the gateway, in front of separately deployed services.
    Gateway {
        /// TOML configuration file; `HIGHWIND__GATEWAY__*` variables override it.
        #[arg(long, env = "HIGHWIND_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Where the platform is and who calls it.
#[derive(clap::Args)]
struct TargetArgs {
    /// The gateway's URL.
    #[arg(long, env = "HIGHWIND_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// A bearer token (the standalone platform prints one per dev user).
    #[arg(long, env = "HIGHWIND_TOKEN", hide_env_values = true, default_value = "", global = true)]
    token: String,
}

#[derive(Subcommand)]
enum ContentAction {
    /// Send a file or a directory as a new version; re-running resumes an interrupted push.
    #[command(group(clap::ArgGroup::new("into").required(true).args(["asset", "new"])))]
    Push {
        /// The file or directory to push.
        path: PathBuf,
        /// Add a version to this asset (`assets/ID`).
        #[arg(long)]
        asset: Option<String>,
        /// Create a new asset with this display name.
        #[arg(long, value_name = "NAME")]
        new: Option<String>,
    },
    /// Write a version's files into a directory.
    Pull {
        /// `assets/ID/versions/N` (or `…/versions/latest`).
        version: String,
        /// Where to write the files.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum RunAction {
    /// Start a run of a pipeline version; prints `runs/ID`.
    Start {
        /// `assets/ID/versions/N` (or an alias such as `latest`).
        pipeline_version: String,
        /// A pipeline parameter, `NAME=VALUE`, read by its declared type (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Bind an input artifact or importer task to an asset version, `NAME=assets/ID/versions/N` (repeatable).
        #[arg(long = "input", value_name = "NAME=VERSION")]
        inputs: Vec<String>,
        /// Where container steps run: `auto`, `image` or `host` (default: the server's).
        #[arg(long, value_name = "MODE")]
        image_mode: Option<ImageModeArg>,
        /// Follow the run and exit 0 only if it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// Follow a run until it ends: a live task table on a terminal, one line per change otherwise.
    Watch {
        /// `runs/ID`.
        run: String,
    },
    /// Print a task's log.
    Logs {
        /// `runs/ID`.
        run: String,
        /// The task, e.g. `train` or `for-loop-2.0.square`.
        task: String,
        /// Keep printing until the task ends.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum DeploymentAction {
    /// A use case's deployments.
    Ls {
        /// `useCases/ID`.
        use_case: String,
    },
    /// One deployment: state, image, conditions.
    Get {
        /// `deployments/ID`.
        name: String,
    },
    /// Print what a replica wrote.
    Logs {
        /// `deployments/ID`.
        name: String,
        /// Which replica, from 0.
        #[arg(long, default_value_t = 0)]
        replica: u32,
        /// Keep printing as it writes.
        #[arg(long)]
        follow: bool,
    },
    /// Undeploy.
    Rm {
        /// `deployments/ID`.
        name: String,
    },
}

#[derive(Subcommand)]
enum ImageAction {
    /// Pull an image into the store as you (an image you may not pull is not found), so steps start warm.
    Pull {
        /// `registry/repository:tag` or `registry/repository@sha256:…`.
        reference: String,
    },
    /// List the images in the store (administrators).
    Ls,
    /// Remove every image no step runs in (administrators).
    Prune,
}

/// `--package-index-url URL`.
fn http_url(text: &str) -> Result<String, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.to_owned())
    } else {
        Err("expected an http:// or https:// URL, e.g. http://127.0.0.1:3141/root/pypi/+simple/".to_owned())
    }
}

/// `--image-registry HOST=URL`.
fn host_and_url(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((host, url)) if !host.is_empty() && (url.starts_with("http://") || url.starts_with("https://")) => {
            Ok((host.to_owned(), url.to_owned()))
        }
        _ => Err("expected HOST=URL, e.g. docker.io=http://127.0.0.1:5001".to_owned()),
    }
}

/// `--image-mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ImageModeArg {
    Auto,
    Image,
    Host,
}

impl From<ImageModeArg> for pipeline_svc::executor::images::ImageMode {
    fn from(mode: ImageModeArg) -> Self {
        match mode {
            ImageModeArg::Auto => Self::Auto,
            ImageModeArg::Image => Self::Image,
            ImageModeArg::Host => Self::Host,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RegistryAction {
    /// Sign registry tokens with the next key (which the registry already trusts) and make a new next key.
    /// Restart the registry afterwards, before the following rotation, so it trusts the new next key.
    RotateKey {
        /// The signing keys' directory (the platform's data directory's `registry-keys`).
        #[arg(long, default_value = "./highwind-data/registry-keys")]
        keys_dir: PathBuf,
    },
}

fn rotate_registry_key(keys_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    highwind_common::registry::keys::RegistryKeys::rotate(keys_dir)?;
    writeln!(
        std::io::stdout(),
        "rotated: tokens are signed with the key the registry already trusts; restart the registry (it rereads {}) \
         before the next rotation",
        keys_dir.join(highwind_common::registry::keys::BUNDLE).display()
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("highwind");
    let result = match Cli::parse().command {
        Command::Standalone {
            listen,
            data_dir,
            dev_users,
            asset_database_url,
            usecase_database_url,
            kfp_url,
            kfp_namespace,
            kfp_token_file,
            registry_listen,
            registry_url,
            no_registry,
            task_path,
            task_read_only,
            image_mode,
            image_registries,
            package_index_url,
            package_dir,
            cors_origins,
            allowed_hosts,
        } => {
            let registries = image_registries
                .into_iter()
                .map(|(host, url)| (host, pipeline_svc::executor::images::RegistryEntry { url, ..Default::default() }))
                .collect();
            let registry = match (registry_url, no_registry) {
                (_, true) => standalone::RegistryMode::Off,
                (Some(url), false) => standalone::RegistryMode::External { url, host: String::new() },
                (None, false) if standalone::embedded_registry::find().is_some() => {
                    standalone::RegistryMode::Embedded(registry_listen)
                }
                (None, false) => {
                    eprintln!(
                        "registry: docker-registry is not installed, so Docker Repo assets hold no images \
                         (apt-get install docker-registry, or --registry-url URL); everything else works"
                    );
                    standalone::RegistryMode::Off
                }
            };
            let kfp = kfp_url.map(|url| pipeline_svc::kfp::KfpConfig {
                url,
                namespace: kfp_namespace,
                auth: if kfp_token_file.is_some() { KfpAuth::TokenFile } else { KfpAuth::None },
                token_file: kfp_token_file.unwrap_or_default(),
                ..Default::default()
            });
            let options = standalone::Options {
                listen,
                data_dir,
                dev_users,
                asset_database_url,
                usecase_database_url,
                task_path,
                task_read_only,
                image_mode: image_mode.into(),
                image_registries: registries,
                package_index_url: package_index_url.unwrap_or_default(),
                // Absolute, as the executor shows it to steps; only an empty path has no absolute form.
                package_dir: package_dir.map(|dir| std::path::absolute(&dir).unwrap_or(dir)).unwrap_or_default(),
                kfp: kfp.unwrap_or_default(),
                registry,
                cors_origins,
                allowed_hosts,
            };
            run_standalone(options).await
        }
        Command::Gateway { config } => run_gateway(config).await,
        Command::Run { action, target } => run_runs(action, target).await,
        Command::Image { action, target } => run_images(action, target).await,
        Command::Deploy { use_case, release, live, replicas, allow_network, wait, target } => {
            let target = cli::Target { url: target.url, token: target.token };
            let request = cli::DeployRequest { use_case, release, live, replicas, allow_network };
            cli::deploy(&target, request, wait).await.map_err(anyhow::Error::from)
        }
        Command::Deployment { action, target } => run_deployments(action, target).await,
        Command::Dataset { action, target } => run_content(AssetKind::Dataset, action, target).await,
        Command::Model { action, target } => run_content(AssetKind::Model, action, target).await,
        Command::Pipeline { action, target } => run_content(AssetKind::Pipeline, action, target).await,
        Command::Registry { action: RegistryAction::RotateKey { keys_dir } } => rotate_registry_key(&keys_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("highwind: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_standalone(options: standalone::Options) -> anyhow::Result<()> {
    let mut platform = standalone::Standalone::start(options).await?;
    print_console(&platform);
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

#[allow(clippy::print_stdout)] // the pushed version's name is the command's output
async fn run_content(kind: AssetKind, action: ContentAction, target: TargetArgs) -> anyhow::Result<()> {
    let target = cli::Target { url: target.url, token: target.token };
    match action {
        ContentAction::Push { path, asset, new } => {
            let into = match (asset, new) {
                (Some(asset), _) => cli::PushSource::Existing(asset),
                (None, Some(name)) => cli::PushSource::New(name),
                (None, None) => anyhow::bail!("say where to push: --asset assets/ID or --new NAME"),
            };
            let version = cli::push(&target, kind, into, &path).await?;
            println!("pushed {version}");
        }
        ContentAction::Pull { version, dir } => {
            cli::pull(&target, &version, &dir).await?;
            println!("pulled {version} into {}", dir.display());
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the run's name is the command's output
async fn run_runs(action: RunAction, target: TargetArgs) -> anyhow::Result<()> {
    let target = cli::Target { url: target.url, token: target.token };
    match action {
        RunAction::Start { pipeline_version, params, inputs, image_mode, wait } => {
            let image_mode = match image_mode {
                None => pb::ImageMode::Unspecified,
                Some(ImageModeArg::Auto) => pb::ImageMode::Auto,
                Some(ImageModeArg::Image) => pb::ImageMode::Image,
                Some(ImageModeArg::Host) => pb::ImageMode::Host,
            };
            let request = cli::StartRequest { pipeline_version, params, inputs, image_mode };
            let run = cli::start_run(&target, request).await?;
            println!("{run}");
            if wait {
                finished(&run, cli::watch_run(&target, &run).await?)?;
            }
        }
        RunAction::Watch { run } => finished(&run, cli::watch_run(&target, &run).await?)?,
        RunAction::Logs { run, task, follow } => cli::run_logs(&target, &run, &task, follow).await?,
    }
    Ok(())
}

async fn run_deployments(action: DeploymentAction, target: TargetArgs) -> anyhow::Result<()> {
    let target = cli::Target { url: target.url, token: target.token };
    match action {
        DeploymentAction::Ls { use_case } => cli::list_deployments(&target, &use_case).await?,
        DeploymentAction::Get { name } => cli::get_deployment(&target, &name).await?,
        DeploymentAction::Logs { name, replica, follow } => {
            cli::deployment_logs(&target, &name, replica, follow).await?;
        }
        DeploymentAction::Rm { name } => cli::remove_deployment(&target, &name).await?,
    }
    Ok(())
}

async fn run_images(action: ImageAction, target: TargetArgs) -> anyhow::Result<()> {
    let target = cli::Target { url: target.url, token: target.token };
    match action {
        ImageAction::Pull { reference } => cli::pull_image(&target, &reference).await?,
        ImageAction::Ls => cli::list_images(&target).await?,
        ImageAction::Prune => cli::prune_images(&target).await?,
    }
    Ok(())
}

/// The ready line, the registry's state and each dev user's password and token: the command's output. A reader
/// may close the pipe once it has the lines it wanted, so a failed write is ignored rather than stopping the
/// platform. Each password comes before its user's token, so a reader that stops at the token has read both.
fn print_console(platform: &standalone::Standalone) {
    use std::io::Write;
    let mut console = std::io::stdout().lock();
    let _ = writeln!(console, "highwind ready on http://{}", platform.addr);
    if let Some(registry) = &platform.registry_addr {
        let _ = writeln!(console, "registry for Docker Repo images: {registry}");
    }
    if let Some(problem) = &platform.registry_problem {
        let _ = writeln!(
            console,
            "registry: not running ({problem}); Docker Repo assets hold no images, everything else works"
        );
    }
    for (user, token) in &platform.dev_tokens {
        // The token endpoint mints more tokens only for someone who shows this, i.e. can read this console.
        if let Some((_, password)) = platform.dev_passwords.iter().find(|(u, _)| u == user) {
            let _ = writeln!(console, "dev password ({user}): {}", password.expose());
        }
        let _ = writeln!(console, "dev token ({user}): {}", token.expose());
    }
    let _ = console.flush();
}

/// Succeeds only for a run that did.
fn finished(run: &str, state: highwind_proto::pipeline::v1::RunState) -> anyhow::Result<()> {
    match state {
        highwind_proto::pipeline::v1::RunState::Succeeded => Ok(()),
        other => anyhow::bail!("{run} ended {}", other.as_str_name().trim_start_matches("RUN_STATE_")),
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
