//! The asset service's own gRPC surface on port 0, on SQLite and on PostgreSQL: it believes only principals the
//! gateway signed, and serves the same behaviour on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use highwind_common::{
    config::{Secret, ServerConfig},
    db::testing,
    principal::{PRINCIPAL_HEADER, Principal, PrincipalSigner, SIGNATURE_HEADER},
};
use highwind_proto::asset::v1::{self as pb, asset_service_client::AssetServiceClient};
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "an-internal-secret-of-at-least-32-bytes";

struct Service {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), asset_svc::ServiceError>>,
}

async fn start(database_url: String, dir: &std::path::Path) -> Service {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ServerConfig {
        listen: addr,
        database_url,
        max_connections: 4,
        internal_secret: Secret::new(SECRET),
        drain_seconds: 2,
    };
    let mut config = asset_svc::AssetConfig { server, ..Default::default() };
    config.blobs.url = dir.join("blobs").display().to_string();
    config.blobs.staging_dir = dir.join("staging");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(asset_svc::serve(listener, async { stopped.await.unwrap_or(()) }, config));
    Service { addr, stop, task }
}

async fn client(service: &Service) -> AssetServiceClient<Channel> {
    AssetServiceClient::new(connect(service).await)
}

async fn connect(service: &Service) -> Channel {
    let url = format!("http://{}", service.addr);
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return channel;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("service did not start");
}

fn as_user<T>(message: T, user: &str, key: &[u8]) -> Request<T> {
    let principal = Principal::user(user);
    let mut request = Request::new(message);
    let signature = PrincipalSigner::new(key.to_vec()).sign(&principal, SystemTime::now());
    request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().unwrap());
    request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().unwrap());
    request
}

fn create(name: &str) -> pb::CreateAssetRequest {
    pb::CreateAssetRequest {
        asset: Some(pb::Asset { kind: pb::AssetKind::Dataset as i32, display_name: name.into(), ..Default::default() }),
        request_id: String::new(),
    }
}

async fn only_signed_principals_are_believed(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let service = start(database_url, dir.path()).await;
    let mut assets = client(&service).await;

    let err = assets.create_asset(create("anonymous")).await.expect_err("no principal");
    assert_eq!(err.code(), Code::Unauthenticated);
    let forged = as_user(create("forged"), "mallory", b"a-key-that-is-not-the-shared-secret!!");
    assert_eq!(assets.create_asset(forged).await.expect_err("forged").code(), Code::Unauthenticated);
    let mut unsigned = Request::new(create("unsigned"));
    unsigned.metadata_mut().insert(PRINCIPAL_HEADER, "users/alice".parse().unwrap());
    assert_eq!(assets.create_asset(unsigned).await.expect_err("unsigned").code(), Code::Unauthenticated);

    let created = assets.create_asset(as_user(create("signed"), "alice", SECRET.as_bytes())).await.expect("signed");
    assert_eq!(created.get_ref().owner, "users/alice");
    let listed = assets
        .list_assets(as_user(pb::ListAssetsRequest::default(), "alice", SECRET.as_bytes()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.assets.len(), 1, "no refused call stored anything");

    service.stop.send(()).unwrap();
    service.task.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn sqlite_only_signed_principals_are_believed() {
    let dir = tempfile::tempdir().unwrap();
    only_signed_principals_are_believed(testing::fresh_sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_only_signed_principals_are_believed() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("postgres_only_signed_principals_are_believed skipped: no PostgreSQL server reachable");
        return;
    };
    only_signed_principals_are_believed(url).await;
}

fn as_principal<T>(message: T, principal: &Principal) -> Request<T> {
    let mut request = Request::new(message);
    let signature = PrincipalSigner::new(SECRET.as_bytes().to_vec()).sign(principal, SystemTime::now());
    request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().unwrap());
    request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().unwrap());
    request
}

/// Only usecase-svc's identity delivers grants; a grant lets its principal read exactly its versions; an older
/// delivery never overwrites a newer one; an empty delivery revokes.
async fn grants_come_only_from_the_use_case_service_and_in_order(database_url: String) {
    use highwind_proto::asset::internal::v1::{self as ipb, grant_service_client::GrantServiceClient};
    let dir = tempfile::tempdir().unwrap();
    let service = start(database_url, dir.path()).await;
    let mut assets = client(&service).await;
    let mut grants = GrantServiceClient::new(connect(&service).await);
    let asset = assets.create_asset(as_user(create("shared"), "alice", SECRET.as_bytes())).await.unwrap().into_inner();
    let bob_reads = |assets: &mut AssetServiceClient<Channel>| {
        let request = as_user(pb::GetAssetRequest { name: asset.name.clone() }, "bob", SECRET.as_bytes());
        let mut assets = assets.clone();
        async move { assets.get_asset(request).await.map(|_| ()).map_err(|s| s.code()) }
    };
    assert_eq!(bob_reads(&mut assets).await, Err(Code::NotFound));

    let source = "useCases/0190a6f4-0000-7000-8000-000000000001".to_owned();
    let delivery = |sequence: i64, principals: &[&str]| ipb::ReplaceGrantsRequest {
        source: source.clone(),
        sequence,
        principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        targets: vec![ipb::GrantTarget { asset: asset.name.clone(), version_number: 0 }],
    };
    let from_alice = grants.replace_grants(as_user(delivery(1, &["users/bob"]), "alice", SECRET.as_bytes())).await;
    assert_eq!(from_alice.expect_err("users cannot grant").code(), Code::PermissionDenied);
    let impostor = as_principal(delivery(1, &["users/bob"]), &Principal::service("pipeline-svc"));
    assert_eq!(grants.replace_grants(impostor).await.expect_err("nor other services").code(), Code::PermissionDenied);
    assert_eq!(bob_reads(&mut assets).await, Err(Code::NotFound), "refused deliveries grant nothing");

    let usecases = Principal::service("usecase-svc");
    let bad = ipb::ReplaceGrantsRequest { source: "assets/x".into(), ..delivery(1, &["users/bob"]) };
    assert_eq!(
        grants.replace_grants(as_principal(bad, &usecases)).await.expect_err("bad").code(),
        Code::InvalidArgument
    );
    let applied = grants.replace_grants(as_principal(delivery(2, &["users/bob"]), &usecases)).await.unwrap();
    assert!(applied.into_inner().applied);
    assert_eq!(bob_reads(&mut assets).await, Ok(()));
    let stale = grants.replace_grants(as_principal(delivery(1, &[]), &usecases)).await.unwrap();
    assert!(!stale.into_inner().applied, "an older delivery is ignored");
    assert_eq!(bob_reads(&mut assets).await, Ok(()));
    let again = grants.replace_grants(as_principal(delivery(2, &["users/bob"]), &usecases)).await.unwrap();
    assert!(!again.into_inner().applied, "a repeated delivery changes nothing");
    let revoked = grants.replace_grants(as_principal(delivery(3, &[]), &usecases)).await.unwrap();
    assert!(revoked.into_inner().applied);
    assert_eq!(bob_reads(&mut assets).await, Err(Code::NotFound), "an empty set revokes");

    service.stop.send(()).unwrap();
    service.task.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn sqlite_grants_come_only_from_the_use_case_service_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    grants_come_only_from_the_use_case_service_and_in_order(testing::fresh_sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_grants_come_only_from_the_use_case_service_and_in_order() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("postgres_grants_come_only_from_the_use_case_service_and_in_order skipped: no PostgreSQL server");
        return;
    };
    grants_come_only_from_the_use_case_service_and_in_order(url).await;
}

pub(crate) mod housekeeping {
    use bytes::Bytes;
    use sha2::{Digest, Sha256};

    use super::*;

    fn sha(content: &[u8]) -> String {
        hex::encode(Sha256::digest(content))
    }

    struct Caller {
        channel: Channel,
        user: &'static str,
    }

    impl Caller {
        fn req<T>(&self, message: T) -> Request<T> {
            as_user(message, self.user, SECRET.as_bytes())
        }

        fn assets(&self) -> AssetServiceClient<Channel> {
            AssetServiceClient::new(self.channel.clone())
        }

        fn uploads(&self) -> highwind_proto::asset::v1::upload_service_client::UploadServiceClient<Channel> {
            highwind_proto::asset::v1::upload_service_client::UploadServiceClient::new(self.channel.clone())
        }

        async fn asset(&self) -> pb::Asset {
            self.assets().create_asset(self.req(create("gc"))).await.unwrap().into_inner()
        }

        /// Opens an upload of `content` at `path`, writes it in 4 MiB chunks, and commits it when `commit` is set.
        async fn upload(&self, asset: &str, path: &str, content: &[u8], commit: bool) {
            let files = vec![pb::UploadFile {
                path: path.into(),
                size_bytes: content.len() as i64,
                sha256: sha(content),
                ..Default::default()
            }];
            let request = pb::CreateUploadRequest { parent: asset.into(), files, ..Default::default() };
            let upload = self.uploads().create_upload(self.req(request)).await.unwrap().into_inner();
            for (i, piece) in content.chunks(4 << 20).enumerate() {
                let chunk = pb::WriteUploadChunkRequest {
                    upload: upload.name.clone(),
                    path: path.into(),
                    offset: (i << 22) as i64,
                    data: Bytes::copy_from_slice(piece),
                };
                self.uploads().write_upload_chunk(self.req(chunk)).await.unwrap();
            }
            if commit {
                let request = pb::CommitUploadRequest { name: upload.name };
                self.uploads().commit_upload(self.req(request)).await.unwrap();
            }
        }

        async fn missing(&self, digests: &[&[u8]]) -> Vec<String> {
            let request = pb::FindMissingBlobsRequest { sha256: digests.iter().map(|d| sha(d)).collect() };
            self.uploads().find_missing_blobs(self.req(request)).await.unwrap().into_inner().missing_sha256
        }

        async fn read(&self, version: &str, path: &str) -> Vec<u8> {
            use tokio_stream::StreamExt;
            let request = pb::ReadFileRequest { version: version.into(), path: path.into(), ..Default::default() };
            let mut frames = self.uploads().read_file(self.req(request)).await.unwrap().into_inner();
            let mut out = Vec::new();
            while let Some(frame) = frames.next().await {
                out.extend_from_slice(&frame.unwrap().data);
            }
            out
        }

        async fn collect(&self, dry_run: bool) -> Result<pb::CollectGarbageResponse, tonic::Status> {
            let request = pb::CollectGarbageRequest { dry_run };
            self.assets().collect_garbage(self.req(request)).await.map(tonic::Response::into_inner)
        }
    }

    /// Where the blobs of a test live: the default local directory, or an S3 bucket.
    pub(super) type Blobs = Option<(String, asset_svc::blobs::S3Options)>;

    pub(super) async fn purge_then_collect_removes_only_unreferenced_blobs(database_url: String, blobs: Blobs) {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ServerConfig {
            listen: addr,
            database_url,
            max_connections: 4,
            internal_secret: Secret::new(SECRET),
            drain_seconds: 2,
        };
        let mut config = asset_svc::AssetConfig { server, ..Default::default() };
        config.blobs.url = dir.path().join("blobs").display().to_string();
        config.blobs.staging_dir = dir.path().join("staging");
        if let Some((url, s3)) = blobs {
            config.blobs.url = url;
            config.blobs.s3 = s3;
        }
        config.gc.grace_seconds = 0;
        config.admins = vec!["users/admin".into()];
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(asset_svc::serve(listener, async { stopped.await.unwrap_or(()) }, config));
        let service = Service { addr, stop, task };
        let channel = connect(&service).await;
        let alice = Caller { channel: channel.clone(), user: "alice" };
        let admin = Caller { channel, user: "admin" };

        let kept = alice.asset().await;
        let doomed = alice.asset().await;
        alice.upload(&kept.name, "kept.bin", b"kept content", true).await;
        // Larger than one multipart part of a remote store.
        let big: Vec<u8> = (0..9_500_000u32).map(|i| (i % 253) as u8).collect();
        alice.upload(&kept.name, "big.bin", &big, true).await;
        assert_eq!(alice.read(&format!("{}/versions/2", kept.name), "big.bin").await, big);
        assert_eq!(alice.read(&format!("{}/versions/1", kept.name), "kept.bin").await, b"kept content");
        alice.upload(&doomed.name, "doomed.bin", b"doomed content", true).await;
        alice.upload(&kept.name, "pending.bin", b"pending content", false).await;

        let err = alice
            .assets()
            .purge_asset(alice.req(pb::PurgeAssetRequest { name: doomed.name.clone(), etag: doomed.etag.clone() }))
            .await
            .expect_err("only archived assets can be purged");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        let archived = alice
            .assets()
            .delete_asset(alice.req(pb::DeleteAssetRequest { name: doomed.name.clone(), etag: String::new() }))
            .await
            .unwrap()
            .into_inner();
        let purged = alice
            .assets()
            .purge_asset(alice.req(pb::PurgeAssetRequest { name: doomed.name.clone(), etag: archived.etag }))
            .await
            .expect("purge")
            .into_inner();
        assert_eq!(purged.purged_versions, 1);
        let gone = alice.assets().get_asset(alice.req(pb::GetAssetRequest { name: doomed.name.clone() })).await;
        assert_eq!(gone.expect_err("purged").code(), Code::NotFound);

        assert_eq!(alice.collect(false).await.expect_err("not an admin").code(), Code::PermissionDenied);
        let dry = admin.collect(true).await.expect("dry run");
        assert_eq!(dry.digests, [sha(b"doomed content")]);
        assert_eq!(alice.missing(&[b"doomed content"]).await.len(), 0, "a dry run deletes nothing");
        let done = admin.collect(false).await.expect("collect");
        assert_eq!(done.digests, [sha(b"doomed content")]);
        assert_eq!(done.bytes, b"doomed content".len() as i64);
        assert_eq!(
            alice.missing(&[b"doomed content", b"kept content", b"pending content"]).await,
            [sha(b"doomed content")],
            "blobs of versions and open uploads are never collected"
        );
        assert!(admin.collect(false).await.expect("again").digests.is_empty());
        assert_eq!(alice.read(&format!("{}/versions/2", kept.name), "big.bin").await.len(), big.len());

        service.stop.send(()).unwrap();
        service.task.await.unwrap().expect("clean stop");
    }

    #[tokio::test]
    async fn sqlite_purge_then_collect_removes_only_unreferenced_blobs() {
        let dir = tempfile::tempdir().unwrap();
        purge_then_collect_removes_only_unreferenced_blobs(testing::fresh_sqlite_url(dir.path()), None).await;
    }

    #[tokio::test]
    async fn postgres_purge_then_collect_removes_only_unreferenced_blobs() {
        let Some(url) = testing::fresh_postgres_url().await else {
            eprintln!(
                "postgres_purge_then_collect_removes_only_unreferenced_blobs skipped: no PostgreSQL server reachable"
            );
            return;
        };
        purge_then_collect_removes_only_unreferenced_blobs(url, None).await;
    }
}

/// The same scenario with blobs in a real S3-protocol server (moto) on loopback.
mod s3 {
    use std::{
        io::{Read, Write},
        process::{Child, Command, Stdio},
        time::Duration,
    };

    use asset_svc::blobs::S3Options;
    use highwind_common::config::Secret;

    /// A moto S3 server for one test, stopped when dropped.
    struct Moto {
        child: Child,
        endpoint: String,
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts `moto_server` (from `HIGHWIND_TEST_MOTO`, else the PATH) with one bucket, or `None` when it is not
    /// installed; `HIGHWIND_REQUIRE_S3=1` makes that a failure.
    fn start(bucket: &str) -> Option<Moto> {
        let program = std::env::var("HIGHWIND_TEST_MOTO").unwrap_or_else(|_| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = match Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if std::env::var("HIGHWIND_REQUIRE_S3").is_ok_and(|v| v == "1") => {
                panic!("S3 tests required but {program} cannot start: {e}")
            }
            Err(_) => return None,
        };
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        for _ in 0..200 {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let request = format!(
                    "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).unwrap();
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                assert!(answer.starts_with("HTTP/1.1 200"), "bucket not created: {answer}");
                return Some(moto);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto did not start on port {port}");
    }

    fn options(moto: &Moto) -> S3Options {
        S3Options {
            endpoint: moto.endpoint.clone(),
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: Secret::new("testing"),
            allow_http: true,
        }
    }

    #[tokio::test]
    async fn s3_blobs_upload_read_purge_and_collect() {
        let Some(moto) = start("highwind-blobs") else {
            eprintln!("s3_blobs_upload_read_purge_and_collect skipped: moto_server is not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let blobs = Some(("s3://highwind-blobs/content".to_owned(), options(&moto)));
        super::housekeeping::purge_then_collect_removes_only_unreferenced_blobs(
            highwind_common::db::testing::fresh_sqlite_url(dir.path()),
            blobs,
        )
        .await;
    }
}

/// `request` as `user`, signed on that user's behalf by platform service `service`.
fn on_behalf<T>(message: T, user: &str, service: &str) -> Request<T> {
    use highwind_common::principal::CALLER_HEADER;
    let principal = Principal::user(user);
    let mut request = Request::new(message);
    let signature =
        PrincipalSigner::new(SECRET.as_bytes().to_vec()).sign_on_behalf(&principal, service, SystemTime::now());
    request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().unwrap());
    request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().unwrap());
    request.metadata_mut().insert(CALLER_HEADER, service.parse().unwrap());
    request
}

#[tokio::test]
async fn run_outputs_are_committed_only_by_pipeline_svc_on_the_uploaders_behalf() {
    use highwind_proto::asset::{
        internal::v1::{self as ipb, run_output_service_client::RunOutputServiceClient},
        v1::upload_service_client::UploadServiceClient,
    };
    let dir = tempfile::tempdir().unwrap();
    let service = start(testing::fresh_sqlite_url(dir.path()), dir.path()).await;
    let mut assets = client(&service).await;
    let mut uploads = UploadServiceClient::new(connect(&service).await);
    let mut outputs = RunOutputServiceClient::new(connect(&service).await);
    let asset = assets.create_asset(as_user(create("model"), "alice", SECRET.as_bytes())).await.unwrap().into_inner();
    let content = b"weights".to_vec();
    let file = pb::UploadFile {
        path: "w.bin".into(),
        size_bytes: content.len() as i64,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content)),
        ..Default::default()
    };
    let upload = pb::CreateUploadRequest { parent: asset.name.clone(), files: vec![file], ..Default::default() };
    let upload = uploads.create_upload(as_user(upload, "alice", SECRET.as_bytes())).await.unwrap().into_inner();
    let chunk = pb::WriteUploadChunkRequest {
        upload: upload.name.clone(),
        path: "w.bin".into(),
        offset: 0,
        data: content.into(),
    };
    uploads.write_upload_chunk(as_user(chunk, "alice", SECRET.as_bytes())).await.unwrap();
    let source = pb::PipelineRunSource {
        run: "runs/0190a6f4-0000-7000-8000-000000000001".into(),
        pipeline_version: "assets/0190a6f4-0000-7000-8000-000000000002/versions/3".into(),
        input_versions: vec!["assets/0190a6f4-0000-7000-8000-000000000003/versions/1".into()],
        task: "train".into(),
        output_key: "model".into(),
        artifact_metadata: highwind_common::proto_json::struct_to_proto(
            serde_json::json!({"framework": "sklearn", "params": {"depth": 3}}).as_object().unwrap(),
        ),
    };
    let metrics = std::collections::HashMap::from([("accuracy".to_owned(), 0.93), ("f1".to_owned(), 0.9)]);
    let commit = |source: pb::PipelineRunSource| ipb::CommitRunOutputRequest {
        upload: upload.name.clone(),
        source: Some(source),
        metrics: metrics.clone(),
    };

    let by_user = outputs.commit_run_output(as_user(commit(source.clone()), "alice", SECRET.as_bytes())).await;
    assert_eq!(by_user.expect_err("users cannot claim a run").code(), Code::PermissionDenied);
    let by_other = outputs.commit_run_output(on_behalf(commit(source.clone()), "alice", "usecase-svc")).await;
    assert_eq!(by_other.expect_err("nor other services").code(), Code::PermissionDenied);
    let for_bob = outputs.commit_run_output(on_behalf(commit(source.clone()), "bob", "pipeline-svc")).await;
    assert_eq!(for_bob.expect_err("alice's upload").code(), Code::NotFound);
    let bad = pb::PipelineRunSource { run: "runs/../x".into(), ..source.clone() };
    let refused =
        outputs.commit_run_output(on_behalf(commit(bad), "alice", "pipeline-svc")).await.expect_err("bad run");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut not_finite = commit(source.clone());
    not_finite.metrics.insert("loss".into(), f64::NAN);
    let refused =
        outputs.commit_run_output(on_behalf(not_finite, "alice", "pipeline-svc")).await.expect_err("a NaN metric");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("metrics"), "{}", refused.message());

    let version = outputs.commit_run_output(on_behalf(commit(source.clone()), "alice", "pipeline-svc")).await.unwrap();
    let version = version.into_inner();
    assert_eq!(version.version_number, 1);
    assert_eq!(version.metrics, metrics, "the metrics the run logged are the version's");
    assert_eq!(
        version.lineage.and_then(|l| l.source),
        Some(pb::lineage::Source::PipelineRun(source)),
        "the artifact's metadata comes back with its lineage"
    );
    service.stop.send(()).unwrap();
    service.task.await.unwrap().unwrap();
}

/// The gateway asks asset-svc, as its caller, whether the caller owns an asset before it shows the asset's audit
/// events: the owner does, a reader by grant does not, anyone else is told the asset does not exist.
async fn only_owners_are_told_they_own_an_asset(database_url: String) {
    use highwind_proto::{
        asset::internal::v1::{self as ipb, grant_service_client::GrantServiceClient},
        audit::internal::v1::{AuthorizeAuditReadRequest, audit_access_service_client::AuditAccessServiceClient},
    };
    let dir = tempfile::tempdir().unwrap();
    let service = start(database_url, dir.path()).await;
    let asset = client(&service)
        .await
        .create_asset(as_user(create("audited"), "alice", SECRET.as_bytes()))
        .await
        .unwrap()
        .into_inner();
    let grant = ipb::ReplaceGrantsRequest {
        source: "useCases/0190a6f4-0000-7000-8000-000000000002".into(),
        sequence: 1,
        principals: vec!["users/bob".into()],
        targets: vec![ipb::GrantTarget { asset: asset.name.clone(), version_number: 0 }],
    };
    let mut grants = GrantServiceClient::new(connect(&service).await);
    grants.replace_grants(as_principal(grant, &Principal::service("usecase-svc"))).await.unwrap();

    let mut audit = AuditAccessServiceClient::new(connect(&service).await);
    let ask = |user: &str, target: &str| {
        as_user(AuthorizeAuditReadRequest { target: target.into() }, user, SECRET.as_bytes())
    };
    assert!(audit.authorize_audit_read(ask("alice", &asset.name)).await.unwrap().into_inner().owner);
    assert!(!audit.authorize_audit_read(ask("bob", &asset.name)).await.unwrap().into_inner().owner, "a reader");
    let stranger = audit.authorize_audit_read(ask("carol", &asset.name)).await.expect_err("hidden");
    assert_eq!(stranger.code(), Code::NotFound);
    let malformed = audit.authorize_audit_read(ask("alice", "assets/not-a-uuid")).await.expect_err("bad");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(malformed.message().contains("target"), "{}", malformed.message());
    let unsigned = audit.authorize_audit_read(Request::new(AuthorizeAuditReadRequest { target: asset.name.clone() }));
    assert_eq!(unsigned.await.expect_err("anonymous").code(), Code::Unauthenticated);

    service.stop.send(()).unwrap();
    service.task.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn sqlite_only_owners_are_told_they_own_an_asset() {
    let dir = tempfile::tempdir().unwrap();
    only_owners_are_told_they_own_an_asset(testing::fresh_sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_only_owners_are_told_they_own_an_asset() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("postgres_only_owners_are_told_they_own_an_asset skipped: no PostgreSQL server");
        return;
    };
    only_owners_are_told_they_own_an_asset(url).await;
}
