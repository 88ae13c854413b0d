//! A whole platform per test: `highwind standalone` on loopback port 0 with its own data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kfp;
pub mod registry;
pub mod runs;

use std::net::SocketAddr;

use gateway::standalone::{Options, Standalone};
use highwind_proto::asset::v1::{asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient};
use tonic::{Request, Status, metadata::MetadataValue, service::interceptor::InterceptedService, transport::Channel};

/// `PATH` with a Python environment that has `kfp` first (`HIGHWIND_TEST_KFP_VENV`), for pipelines of lightweight
/// Python components; `None` when none is configured, unless `HIGHWIND_REQUIRE_KFP=1` makes that a failure.
pub fn kfp_path() -> Option<String> {
    match std::env::var("HIGHWIND_TEST_KFP_VENV") {
        // The system's directories after it: each directory on a task's PATH is shown to its sandbox.
        Ok(venv) => Some(format!("{venv}/bin:/usr/local/bin:/usr/bin:/bin")),
        Err(_) if std::env::var("HIGHWIND_REQUIRE_KFP").is_ok_and(|v| v == "1") => {
            panic!("HIGHWIND_REQUIRE_KFP=1 but HIGHWIND_TEST_KFP_VENV names no environment with kfp")
        }
        Err(_) => None,
    }
}

/// Runs the `highwind` binary as `token`'s holder against `platform`, without blocking the runtime the platform
/// serves on.
pub async fn highwind(platform: &Platform, token: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_highwind"))
        .args(args)
        .env("HIGHWIND_URL", platform.url())
        .env("HIGHWIND_TOKEN", token)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run highwind")
}

/// Processes carrying pipeline task `uid`'s marker in their environment: what that task started and still runs.
pub fn processes_of(uid: &str) -> Vec<u32> {
    let marker = format!("HIGHWIND_TASK={uid}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()).then_some(pid)
        })
        .collect()
}

/// Children of this process (the platform runs in it) that exited and were not waited for.
pub fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold anything, so read after its last parenthesis.
            let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
            let (state, parent) = (rest.next()?, rest.next()?.parse::<u32>().ok()?);
            (state == "Z" && parent == me).then_some(pid)
        })
        .collect()
}

/// The `google.rpc.BadRequest` field violations of `status` as (field, description); panics without any.
pub fn field_violations(status: &Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    let bad = status.get_details_bad_request().unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    bad.field_violations.into_iter().map(|v| (v.field, v.description)).collect()
}

/// One change a test makes to the platform's options.
type Change = Box<dyn FnOnce(&mut Options)>;

/// What a test changes of the defaults before its platform starts (`Platform::builder()`).
pub struct PlatformBuilder {
    dir: Option<tempfile::TempDir>,
    changes: Vec<Change>,
}

impl PlatformBuilder {
    /// The data directory (e.g. one an earlier platform left), instead of a fresh one.
    pub fn in_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Runs of backend KFP go to `kfp`.
    pub fn kfp(self, kfp: pipeline_svc::kfp::KfpConfig) -> Self {
        self.configure(move |options| options.kfp = kfp)
    }

    /// The gateway on `listen`, Docker Repo images in `registry`.
    pub fn registry(self, listen: SocketAddr, registry: gateway::standalone::RegistryMode) -> Self {
        self.configure(move |options| (options.listen, options.registry) = (listen, registry))
    }

    /// The platform's own `docker-registry` on a loopback port of its own, the gateway on another.
    pub fn embedded_registry(self) -> Self {
        let loopback = || SocketAddr::from(([127, 0, 0, 1], 0));
        self.registry(loopback(), gateway::standalone::RegistryMode::Embedded(loopback()))
    }

    /// Assets and use cases in fresh PostgreSQL databases, or `None` when no server is reachable.
    pub async fn postgres(self) -> Option<Self> {
        let assets = highwind_common::db::testing::fresh_postgres_url().await?;
        let use_cases = highwind_common::db::testing::fresh_postgres_url().await?;
        Some(self.configure(move |options| {
            (options.asset_database_url, options.usecase_database_url) = (Some(assets), Some(use_cases))
        }))
    }

    /// Any other change of the options.
    pub fn configure(mut self, change: impl FnOnce(&mut Options) + 'static) -> Self {
        self.changes.push(Box::new(change));
        self
    }

    /// Starts it.
    pub async fn start(self) -> Platform {
        let dir = self.dir.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        let mut options = Platform::default_options(&dir);
        for change in self.changes {
            change(&mut options);
        }
        Platform::launch(dir, options).await
    }
}

/// A started platform, its data directory and the tokens of `alice` and `bob`.
pub struct Platform {
    pub standalone: Standalone,
    pub dir: tempfile::TempDir,
    /// A host directory outside the platform's data that pipeline tasks may read (`--task-read-only`).
    pub shared: tempfile::TempDir,
}

impl Platform {
    /// The platform with the test defaults: five dev users, SQLite in a fresh data directory, the gateway on a free
    /// loopback port, no registry, no KFP.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A platform to set up before it starts, from the test defaults.
    pub fn builder() -> PlatformBuilder {
        PlatformBuilder { dir: None, changes: Vec::new() }
    }

    /// Five dev users, SQLite in `dir`, the gateway on a free loopback port, no registry.
    fn default_options(dir: &tempfile::TempDir) -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().to_path_buf(),
            dev_users: vec!["alice".into(), "bob".into(), "carol".into(), "dave".into(), "erin".into()],
            asset_database_url: None,
            usecase_database_url: None,
            task_path: kfp_path().unwrap_or_default(),
            task_read_only: Vec::new(),
            image_mode: Default::default(),
            image_registries: Default::default(),
            package_index_url: String::new(),
            package_dir: Default::default(),
            kfp: Default::default(),
            registry: Default::default(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }

    async fn launch(dir: tempfile::TempDir, mut options: Options) -> Self {
        let shared = tempfile::tempdir().expect("tempdir");
        options.task_read_only.push(shared.path().to_path_buf());
        let standalone = Standalone::start(options).await.expect("platform starts");
        Self { standalone, dir, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.standalone.addr)
    }

    pub fn token(&self, user: &str) -> String {
        let (_, token) = self.standalone.dev_tokens.iter().find(|(u, _)| u == user).expect("dev user");
        token.expose().to_owned()
    }

    /// A new API key of `user` (for the registry: `highwind` and the key as password).
    pub async fn api_key(&self, user: &str) -> String {
        use highwind_proto::identity::v1 as ipb;
        let mut client = ipb::api_key_service_client::ApiKeyServiceClient::with_interceptor(
            self.channel().await,
            Bearer(Some(self.token(user))),
        );
        let request = ipb::CreateApiKeyRequest {
            api_key: Some(ipb::ApiKey { display_name: "test".into(), ..Default::default() }),
        };
        client.create_api_key(request).await.expect("api key").into_inner().key
    }

    /// The password `/dev-issuer/token` wants for `user`, as printed at start.
    pub fn dev_password(&self, user: &str) -> String {
        let (_, password) = self.standalone.dev_passwords.iter().find(|(u, _)| u == user).expect("dev user");
        password.expose().to_owned()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.expect("connect to gateway")
    }

    /// An AssetService client that authenticates as `user` (`None`: anonymous).
    pub async fn assets(&self, user: Option<&str>) -> AssetServiceClient<InterceptedService<Channel, Bearer>> {
        let token = user.map(|u| self.token(u));
        AssetServiceClient::with_interceptor(self.channel().await, Bearer(token))
    }

    /// An UploadService client that authenticates as `user`.
    pub async fn uploads(&self, user: Option<&str>) -> UploadServiceClient<InterceptedService<Channel, Bearer>> {
        let token = user.map(|u| self.token(u));
        UploadServiceClient::with_interceptor(self.channel().await, Bearer(token))
    }

    /// A UseCaseService client that authenticates as `user`.
    pub async fn use_cases(
        &self,
        user: Option<&str>,
    ) -> highwind_proto::usecase::v1::use_case_service_client::UseCaseServiceClient<InterceptedService<Channel, Bearer>>
    {
        let token = user.map(|u| self.token(u));
        highwind_proto::usecase::v1::use_case_service_client::UseCaseServiceClient::with_interceptor(
            self.channel().await,
            Bearer(token),
        )
    }

    /// A MarketplaceService client that authenticates as `user`.
    pub async fn marketplace(
        &self,
        user: Option<&str>,
    ) -> highwind_proto::usecase::v1::marketplace_service_client::MarketplaceServiceClient<
        InterceptedService<Channel, Bearer>,
    > {
        let token = user.map(|u| self.token(u));
        highwind_proto::usecase::v1::marketplace_service_client::MarketplaceServiceClient::with_interceptor(
            self.channel().await,
            Bearer(token),
        )
    }

    /// A new asset of `kind` owned by `user`; its name.
    pub async fn create_asset(&self, user: &str, kind: highwind_proto::asset::v1::AssetKind) -> String {
        use highwind_proto::asset::v1 as apb;
        let mut assets = self.assets(Some(user)).await;
        let asset = apb::Asset { kind: kind as i32, display_name: "housing".into(), ..Default::default() };
        let request = apb::CreateAssetRequest { asset: Some(asset), request_id: String::new() };
        assets.create_asset(request).await.unwrap().into_inner().name
    }

    /// Uploads `content` as `train.csv` in a new version of `asset` (a new dataset of `user` when `None`) and
    /// returns the asset's name.
    pub async fn push_version(&self, user: &str, asset: Option<&str>, content: &'static [u8]) -> String {
        use highwind_proto::asset::v1 as apb;
        let name = match asset {
            Some(name) => name.to_owned(),
            None => self.create_asset(user, apb::AssetKind::Dataset).await,
        };
        let mut uploads = self.uploads(Some(user)).await;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
        let files = vec![apb::UploadFile {
            path: "train.csv".into(),
            size_bytes: content.len() as i64,
            sha256,
            ..Default::default()
        }];
        let upload = uploads
            .create_upload(apb::CreateUploadRequest { parent: name.clone(), files, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let chunk = apb::WriteUploadChunkRequest {
            upload: upload.name.clone(),
            path: "train.csv".into(),
            offset: 0,
            data: bytes::Bytes::from_static(content),
        };
        // Identical content is stored once: a second dataset with it needs no bytes.
        if !upload.files[0].present {
            uploads.write_upload_chunk(chunk).await.unwrap();
        }
        uploads.commit_upload(apb::CommitUploadRequest { name: upload.name }).await.unwrap();
        name
    }

    /// Uploads `files` into a new version of `asset` as `user` and commits it.
    pub async fn commit_files(
        &self,
        user: &str,
        asset: &str,
        files: &[(&str, Vec<u8>)],
    ) -> Result<highwind_proto::asset::v1::AssetVersion, Status> {
        use highwind_proto::asset::v1 as apb;
        let mut uploads = self.uploads(Some(user)).await;
        let declared = files
            .iter()
            .map(|(path, content)| apb::UploadFile {
                path: (*path).into(),
                size_bytes: content.len() as i64,
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content)),
                ..Default::default()
            })
            .collect();
        let request = apb::CreateUploadRequest { parent: asset.into(), files: declared, ..Default::default() };
        let upload = uploads.create_upload(request).await?.into_inner();
        for ((path, content), file) in files.iter().zip(&upload.files) {
            if !file.present {
                let chunk = apb::WriteUploadChunkRequest {
                    upload: upload.name.clone(),
                    path: (*path).into(),
                    offset: 0,
                    data: content.clone().into(),
                };
                uploads.write_upload_chunk(chunk).await?;
            }
        }
        uploads.commit_upload(apb::CommitUploadRequest { name: upload.name }).await.map(tonic::Response::into_inner)
    }

    /// A PipelineService client that authenticates as `user`.
    pub async fn pipelines(
        &self,
        user: Option<&str>,
    ) -> highwind_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient<InterceptedService<Channel, Bearer>>
    {
        let token = user.map(|u| self.token(u));
        highwind_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient::with_interceptor(
            self.channel().await,
            Bearer(token),
        )
    }

    /// The whole content of `path` in `version`, read as `user`.
    pub async fn read_file(&self, user: &str, version: &str, path: &str) -> Result<Vec<u8>, Status> {
        use highwind_proto::asset::v1 as apb;
        let mut uploads = self.uploads(Some(user)).await;
        let request = apb::ReadFileRequest { version: version.into(), path: path.into(), offset: 0, length: 0 };
        let mut frames = uploads.read_file(request).await?.into_inner();
        let mut content = Vec::new();
        while let Some(frame) = frames.message().await? {
            content.extend_from_slice(&frame.data);
        }
        Ok(content)
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.standalone.stop().await;
        self.dir
    }
}

/// The callers of the authorization matrices, as the dev user that plays each part (`None`: anonymous).
pub const CALLERS: [(&str, Option<&str>); 6] = [
    ("owner", Some("alice")),
    ("editor", Some("carol")),
    ("viewer", Some("dave")),
    ("buyer", Some("bob")),
    ("stranger", Some("erin")),
    ("anonymous", None),
];

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// Runs each scenario (an `async fn(Platform)`) twice: `sqlite::<name>` on the embedded platform and
/// `postgres::<name>` with the assets in PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($crate::support::Platform::start().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(builder) = $crate::support::Platform::builder().postgres().await else {
                        eprintln!("postgres::{} skipped: no PostgreSQL server reachable", stringify!($scenario));
                        return;
                    };
                    super::$scenario(builder.start().await).await;
                }
            )*
        }
    };
}
