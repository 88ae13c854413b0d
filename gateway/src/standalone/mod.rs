//! The whole platform in one process: the three services on loopback ports with SQLite files and the gateway in
//! front, sharing a generated secret. Everything lives in one data directory, so a restart on the same
//! directory keeps the data and the dev tokens.

pub mod embedded_registry;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use highwind_common::config::{Secret, ServerConfig};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{
    config::{GatewayConfig, UpstreamsConfig},
    identity::oidc::{DevIssuer, dev_issuer},
};

/// File in the data directory holding the internal secret and the dev users' passwords (mode 0600).
const SECRETS_FILE: &str = "secrets.json";
/// How long the platform may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What `highwind standalone` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway's address.
    pub listen: SocketAddr,
    /// Where databases and secrets live.
    pub data_dir: PathBuf,
    /// Dev users to mint tokens for.
    pub dev_users: Vec<String>,
    /// Keep assets in this database (PostgreSQL, say) instead of the data directory's SQLite file.
    pub asset_database_url: Option<String>,
    /// Keep use cases in this database instead of the data directory's SQLite file.
    pub usecase_database_url: Option<String>,
    /// `PATH` for pipeline tasks; empty means the system's (the platform's own without a sandbox).
    pub task_path: String,
    /// Host directories pipeline tasks may read besides the system's and the tools on `task_path`.
    pub task_read_only: Vec<PathBuf>,
    /// Whether pipeline steps run in their own images.
    pub image_mode: pipeline_svc::executor::images::ImageMode,
    /// Registries steps' images come from besides the platform's, by host.
    pub image_registries: BTreeMap<String, pipeline_svc::executor::images::RegistryEntry>,
    /// The package index lightweight components' packages come from in place of PyPI; empty: PyPI.
    pub package_index_url: String,
    /// A directory of Python packages steps may install from (empty: none).
    pub package_dir: PathBuf,
    /// Kubeflow Pipelines for runs with backend KFP; off while its `url` is empty.
    pub kfp: pipeline_svc::kfp::KfpConfig,
    /// The registry of Docker Repo assets.
    pub registry: RegistryMode,
    /// Origins of web pages that may call the gateway besides its own (`allowed_origins`).
    pub cors_origins: Vec<String>,
    /// Host names the gateway answers to besides IP addresses and `localhost` (`allowed_hosts`).
    pub allowed_hosts: Vec<String>,
}

/// Which registry Docker Repo assets use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RegistryMode {
    /// None: Docker Repo assets hold no images.
    #[default]
    Off,
    /// Start `docker-registry` (CNCF distribution) listening on this address.
    Embedded(SocketAddr),
    /// A registry running elsewhere, configured to trust `<data-dir>/registry-keys/bundle.pem` with the gateway's
    /// `/registry/token` as its realm.
    External {
        /// Its API, e.g. `http://127.0.0.1:5000`.
        url: String,
        /// How users name it in image URIs; empty: `url`'s host and port.
        host: String,
    },
}

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The data directory or secrets file could not be used.
    #[error("cannot use data directory {path}")]
    DataDir {
        /// What failed.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The secrets file is not what this program writes.
    #[error("{path} is corrupt: {reason}; move it away to start afresh (existing dev tokens will change)")]
    CorruptSecrets {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A dev user name cannot be a principal.
    #[error("dev user {0:?} may hold only letters, digits and . _ @ - +")]
    BadDevUser(String),
    /// The gateway address is taken or unusable.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A part stopped before the platform was ready.
    #[error("{0} failed to start: {1}")]
    Part(&'static str, String),
    /// Not every service became ready in time.
    #[error("the platform did not become ready within {0:?}")]
    NotReady(Duration),
}

/// The persisted secrets of a data directory (the dev issuer's key sits beside it).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Secrets {
    internal_secret: Secret,
    /// Dev user → the password the dev issuer's token endpoint asks for; made once per user, on the first start
    /// that names them.
    #[serde(default)]
    dev_passwords: BTreeMap<String, Secret>,
}

/// A running platform.
#[derive(Debug)]
pub struct Standalone {
    /// Where the gateway listens.
    pub addr: SocketAddr,
    /// Dev user → token, for the users asked for.
    pub dev_tokens: Vec<(String, Secret)>,
    /// Dev user → the password `/dev-issuer/token` wants before it mints a token for them.
    pub dev_passwords: Vec<(String, Secret)>,
    stop_gateway: watch::Sender<bool>,
    stop_services: watch::Sender<bool>,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
    /// The registry images are pushed to (`host:port`), when there is one.
    pub registry_addr: Option<String>,
    /// Why the embedded registry asked for is not running, if it is not.
    pub registry_problem: Option<String>,
    embedded_registry: Option<embedded_registry::EmbeddedRegistry>,
}

impl Standalone {
    /// Starts every part and returns once the gateway reports every public service SERVING.
    pub async fn start(options: Options) -> Result<Self, StandaloneError> {
        let data_dir = prepare_data_dir(&options.data_dir)?;
        let mut users = if options.dev_users.is_empty() { vec!["dev".to_owned()] } else { options.dev_users };
        users.dedup();
        if let Some(bad) = users.iter().find(|u| !valid_user(u)) {
            return Err(StandaloneError::BadDevUser(bad.clone()));
        }
        let secrets = load_secrets(&data_dir, &users)?;
        let gateway_listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| StandaloneError::Listen { addr: options.listen, source })?;
        let addr =
            gateway_listener.local_addr().map_err(|source| StandaloneError::Listen { addr: options.listen, source })?;

        let keys_dir = data_dir.join("registry-keys");
        let (registry, embedded_registry, webhook_secret, registry_problem) =
            match start_registry(&options.registry, &data_dir, addr).await {
                Ok((registry, embedded, secret)) => (registry, embedded, secret, None),
                // Without its registry the platform still works: Docker Repo assets then hold no images.
                Err(problem) if matches!(options.registry, RegistryMode::Embedded(_)) => {
                    tracing::warn!(error = %problem, "no registry: Docker Repo assets hold no images");
                    (None, None, Secret::default(), Some(problem.to_string()))
                }
                Err(problem) => return Err(problem),
            };
        let (stop_services, services_rx) = watch::channel(false);
        let (stop_gateway, gateway_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut upstream = BTreeMap::new();
        // Every service's address first: they call each other.
        let mut listeners = Vec::new();
        for (part, db) in [("asset", "asset.db"), ("usecase", "usecase.db"), ("pipeline", "pipeline.db")] {
            let listener = TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|source| StandaloneError::Listen { addr: SocketAddr::from(([127, 0, 0, 1], 0)), source })?;
            let local = listener.local_addr().map_err(|source| StandaloneError::Listen { addr, source })?;
            upstream.insert(part, format!("http://{local}"));
            listeners.push((part, db, listener, local));
        }
        for (part, db, listener, local) in listeners {
            let database_url = match (part, &options.asset_database_url, &options.usecase_database_url) {
                ("asset", Some(url), _) | ("usecase", _, Some(url)) => url.clone(),
                _ => format!("sqlite://{}", data_dir.join(db).display()),
            };
            let server = ServerConfig {
                listen: local,
                database_url,
                max_connections: 8,
                internal_secret: secrets.internal_secret.clone(),
                drain_seconds: 5,
            };
            let stop = stopped(services_rx.clone());
            let asset_url = upstream.get("asset").cloned().unwrap_or_default();
            let pipeline_url = upstream.get("pipeline").cloned().unwrap_or_default();
            let usecase_url = upstream.get("usecase").cloned().unwrap_or_default();
            let (blobs_dir, staging_dir) = (data_dir.join("blobs"), data_dir.join("staging"));
            let runs_dir = data_dir.join("runs");
            let platform_dir = data_dir.clone();
            let task_path = options.task_path.clone();
            let task_read_only = options.task_read_only.clone();
            let (image_mode, image_registries) = (options.image_mode, options.image_registries.clone());
            let (package_index_url, package_dir) = (options.package_index_url.clone(), options.package_dir.clone());
            let kfp = options.kfp.clone();
            let registry = registry.clone().map(|(url, host)| asset_svc::registry_client::RegistryConfig {
                url,
                host,
                keys_dir: keys_dir.clone(),
                ..Default::default()
            });
            // The first dev user administers the embedded platform.
            let admins = vec![format!("users/{}", users[0])];
            tasks.spawn(async move {
                let result = match part {
                    "asset" => {
                        let mut config = asset_svc::AssetConfig { server, ..asset_svc::AssetConfig::default() };
                        config.blobs.url = blobs_dir.display().to_string();
                        config.blobs.staging_dir = staging_dir;
                        config.admins = admins;
                        config.pipelines.url = pipeline_url;
                        if let Some(registry) = registry {
                            config.registry = registry;
                        }
                        asset_svc::serve(listener, stop, config).await.map_err(|e| e.to_string())
                    }
                    "usecase" => {
                        let assets = usecase_svc::AssetsConfig { url: asset_url };
                        usecase_svc::serve(listener, stop, usecase_svc::UseCaseConfig { server, assets })
                            .await
                            .map_err(|e| e.to_string())
                    }
                    _ => {
                        let assets = pipeline_svc::AssetsConfig { url: asset_url };
                        // Tasks see none of the platform's data, its secrets included.
                        let executor = pipeline_svc::executor::ExecutorConfig {
                            data_dir: runs_dir,
                            task_path,
                            read_only: task_read_only,
                            hide: vec![platform_dir.clone()],
                            images: pipeline_svc::executor::images::ImagesConfig {
                                mode: image_mode,
                                cache_dir: platform_dir.join("images"),
                                registries: image_registries,
                                ..Default::default()
                            },
                            package_index_url,
                            package_dir,
                            ..Default::default()
                        };
                        let usecases = pipeline_svc::UseCasesConfig { url: usecase_url };
                        let config = pipeline_svc::PipelineConfig {
                            server,
                            assets,
                            executor,
                            kfp,
                            admins,
                            usecases,
                            deployments: Default::default(),
                        };
                        pipeline_svc::serve(listener, stop, config).await.map_err(|e| e.to_string())
                    }
                };
                (part, result)
            });
        }

        let dev_passwords: Vec<(String, Secret)> =
            users.iter().filter_map(|user| Some((user.clone(), secrets.dev_passwords.get(user)?.clone()))).collect();
        let issuer =
            DevIssuer::load_or_create(&data_dir, format!("http://{addr}{}", dev_issuer::PATH), dev_passwords.clone())
                .map_err(|e| StandaloneError::Part("the dev issuer", e.to_string()))?;
        let config = GatewayConfig {
            listen: addr,
            internal_secret: secrets.internal_secret.clone(),
            oidc_issuers: vec![issuer.trust()],
            database_url: format!("sqlite://{}", data_dir.join("gateway.db").display()),
            upstreams: UpstreamsConfig {
                asset: upstream.remove("asset").unwrap_or_default(),
                usecase: upstream.remove("usecase").unwrap_or_default(),
                pipeline: upstream.remove("pipeline").unwrap_or_default(),
            },
            drain_seconds: 5,
            allowed_origins: options.cors_origins.clone(),
            allowed_hosts: options.allowed_hosts.clone(),
            registry: registry.as_ref().map(|_| crate::registry::RegistryTokenConfig {
                keys_dir: keys_dir.clone(),
                webhook_secret,
                ..Default::default()
            }),
            ..GatewayConfig::default()
        };
        config.validate().map_err(|e| StandaloneError::Part("the gateway", e))?;
        let stop = stopped(gateway_rx);
        let dev_tokens = users.iter().filter_map(|u| Some((u.clone(), Secret::new(issuer.mint(u)?)))).collect();
        let issuer_routes = Arc::new(issuer).routes();
        tasks.spawn(async move {
            let served = crate::serve_with(gateway_listener, stop, config, issuer_routes).await;
            ("gateway", served.map_err(|e| e.to_string()))
        });

        let registry_addr = registry.map(|(url, host)| {
            if host.is_empty() { url.split_once("://").map_or(url.clone(), |(_, rest)| rest.to_owned()) } else { host }
        });
        let mut platform = Self {
            addr,
            dev_tokens,
            dev_passwords,
            stop_gateway,
            stop_services,
            tasks,
            registry_addr,
            registry_problem,
            embedded_registry,
        };
        tokio::select! {
            ready = wait_ready(addr) => ready?,
            Some(Ok((part, result))) = platform.tasks.join_next() => {
                platform.stop().await;
                return Err(StandaloneError::Part(part, result.err().unwrap_or_else(|| "stopped".into())));
            }
        }
        Ok(platform)
    }

    /// Resolves when a part stops on its own (an error), naming it.
    pub async fn failed(&mut self) -> (&'static str, String) {
        match self.tasks.join_next().await {
            Some(Ok((part, result))) => (part, result.err().unwrap_or_else(|| "stopped unexpectedly".into())),
            Some(Err(e)) => ("a task", e.to_string()),
            None => ("the platform", "nothing is running".into()),
        }
    }

    /// Stops the gateway first (so no new calls arrive), then the services, each with a bounded drain.
    pub async fn stop(mut self) {
        let _ = self.stop_gateway.send(true);
        let _ = self.stop_services.send(true);
        let deadline = Duration::from_secs(15);
        if tokio::time::timeout(deadline, async { while self.tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("parts still running after {deadline:?}; abandoning them");
            self.tasks.abort_all();
        }
        if let Some(registry) = self.embedded_registry.take() {
            registry.stop().await;
        }
    }
}

/// The registry of `mode`: its URL and public host, the embedded child if one was started, and the secret its
/// notifications carry.
async fn start_registry(
    mode: &RegistryMode,
    data_dir: &Path,
    gateway: SocketAddr,
) -> Result<(Option<(String, String)>, Option<embedded_registry::EmbeddedRegistry>, Secret), StandaloneError> {
    use highwind_common::registry::keys::RegistryKeys;
    let keys = || {
        RegistryKeys::open(&data_dir.join("registry-keys"))
            .map_err(|e| StandaloneError::Part("the registry keys", e.to_string()))
    };
    match mode {
        RegistryMode::Off => Ok((None, None, Secret::default())),
        RegistryMode::External { url, host } => {
            keys()?;
            Ok((Some((url.clone(), host.clone())), None, Secret::default()))
        }
        RegistryMode::Embedded(listen) => {
            let keys = keys()?;
            let binary = embedded_registry::find().ok_or_else(|| {
                StandaloneError::Part(
                    "the registry",
                    "docker-registry is not installed (apt-get install docker-registry), so no registry can start"
                        .into(),
                )
            })?;
            // A new secret each start: only this run's registry can notify this run's gateway.
            let secret = hex::encode(rand::random::<[u8; 32]>());
            let setup = embedded_registry::Setup {
                listen: *listen,
                data_dir,
                gateway,
                bundle: &keys.bundle_path(),
                secret: &secret,
                service: "highwind-registry",
                issuer: "highwind",
            };
            let registry = embedded_registry::EmbeddedRegistry::start(&binary, &setup)
                .await
                .map_err(|e| StandaloneError::Part("the registry", e))?;
            let url = format!("http://{}", registry.addr);
            let host = registry.addr.clone();
            Ok((Some((url, host)), Some(registry), Secret::new(secret)))
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn wait_ready(addr: SocketAddr) -> Result<(), StandaloneError> {
    let check = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).map_err(|e| e.to_string())?;
        loop {
            if let Ok(channel) = endpoint.connect().await {
                let mut client = HealthClient::new(channel);
                let mut all = true;
                for service in highwind_proto::PUBLIC_SERVICES {
                    let request = HealthCheckRequest { service: (*service).to_owned() };
                    let serving =
                        client.check(request).await.is_ok_and(|r| r.get_ref().status == ServingStatus::Serving as i32);
                    all &= serving;
                }
                if all {
                    return Ok::<(), String>(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StandaloneError::Part("gateway", e)),
        Err(_) => Err(StandaloneError::NotReady(READY_TIMEOUT)),
    }
}

fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= 255 && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b))
}

fn prepare_data_dir(dir: &Path) -> Result<PathBuf, StandaloneError> {
    let fail = |source| StandaloneError::DataDir { path: dir.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(fail)?;
    dir.canonicalize().map_err(fail)
}

/// Reads the data directory's secrets, creating the internal secret on first start and a password for each of
/// `users` that has none yet.
fn load_secrets(data_dir: &Path, users: &[String]) -> Result<Secrets, StandaloneError> {
    let path = data_dir.join(SECRETS_FILE);
    let fail = |source| StandaloneError::DataDir { path: path.display().to_string(), source };
    let mut secrets = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Secrets>(&bytes)
            .map_err(|e| StandaloneError::CorruptSecrets { path: path.display().to_string(), reason: e.to_string() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Secrets::default(),
        Err(e) => return Err(fail(e)),
    };
    let mut changed = false;
    if secrets.internal_secret.expose().len() < 32 {
        secrets.internal_secret = Secret::new(random_token(32));
        changed = true;
    }
    for user in users {
        if secrets.dev_passwords.get(user).is_none_or(Secret::is_empty) {
            secrets.dev_passwords.insert(user.clone(), Secret::new(random_token(18)));
            changed = true;
        }
    }
    if changed {
        highwind_common::private_file::write_private(&path, &serde_json::to_vec_pretty(&secrets).unwrap_or_default())
            .map_err(fail)?;
    }
    Ok(secrets)
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}
