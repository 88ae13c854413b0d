//! One caller's bad request never breaks another caller's calls: inputs far larger than any error should echo are
//! refused with a short INVALID_ARGUMENT naming the field, an upload of many small frames goes through, and a
//! stream broken on purpose fails alone — while another user's watch, open upload and unary calls on the same
//! gateway keep working throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use highwind_proto::{asset::v1 as apb, pipeline::v1 as ppb, usecase::v1 as upb};
use prost::Message;
use tokio::{sync::mpsc, task::JoinHandle};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::Platform;
use crate::support::runs::sample;

/// Input sizes: from where unbounded errors first outgrew the HTTP/2 header limit to well past it.
const SIZES: [usize; 3] = [5 * 1024, 12 * 1024, 20 * 1024];
/// The longest error message a caller should ever be sent back for one of them.
const SHORT_MESSAGE: usize = 512;

fn sha(content: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content))
}

/// `result` is INVALID_ARGUMENT with a short message and a `google.rpc.BadRequest` naming `field`.
fn assert_refused<T: std::fmt::Debug>(what: &str, result: Result<T, Status>, field: &str) {
    let status = result.expect_err(what);
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{what}: {}",
        &status.message()[..status.message().len().min(200)]
    );
    assert!(status.message().len() <= SHORT_MESSAGE, "{what}: a {}-byte message", status.message().len());
    let details = status.get_error_details();
    let fields: Vec<_> =
        details.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
    assert_eq!(fields, [field], "{what}");
    assert!(status.details().len() <= 2 * SHORT_MESSAGE, "{what}: {} bytes of details", status.details().len());
}

/// Another user (bob) using the platform while someone else misbehaves: a WatchRun on a run that sleeps, an
/// upload stream left open half-way, and unary calls to every service in a loop.
struct Bystander {
    watch: JoinHandle<Result<Vec<ppb::WatchRunResponse>, Status>>,
    run: String,
    upload: JoinHandle<Result<apb::WriteUploadResponse, Status>>,
    rest_of_upload: mpsc::Sender<apb::WriteUploadRequest>,
    second_half: apb::WriteUploadRequest,
    upload_name: String,
    calls: JoinHandle<()>,
    stop_calls: Arc<AtomicBool>,
    calls_made: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<Status>>>,
}

impl Bystander {
    /// Starts every activity and returns once each is under way.
    async fn start(platform: &Platform) -> Self {
        let pipeline = platform.create_asset("bob", apb::AssetKind::Pipeline).await;
        let version = platform.commit_files("bob", &pipeline, &[("pipeline.yaml", sample("d_shell.yaml"))]).await;
        let version = format!("{pipeline}/versions/{}", version.expect("pipeline committed").version_number);
        let sleep = prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(120.0)) };
        let run = ppb::Run {
            pipeline_version: version,
            parameters: [("sleep_seconds".to_owned(), sleep)].into(),
            ..Default::default()
        };
        let mut pipelines = platform.pipelines(Some("bob")).await;
        let run = pipelines
            .create_run(ppb::CreateRunRequest { run: Some(run), ..Default::default() })
            .await
            .expect("run created")
            .into_inner();
        let mut stream =
            pipelines.watch_run(ppb::WatchRunRequest { name: run.name.clone() }).await.expect("watch").into_inner();
        let first = stream.message().await.expect("snapshot").expect("snapshot");
        let watch = tokio::spawn(async move {
            let mut messages = vec![first];
            while let Some(message) = stream.message().await? {
                messages.push(message);
            }
            Ok(messages)
        });

        let dataset = platform.create_asset("bob", apb::AssetKind::Dataset).await;
        let content = vec![7u8; 2048];
        let file = apb::UploadFile {
            path: "half.bin".into(),
            size_bytes: content.len() as i64,
            sha256: sha(&content),
            ..Default::default()
        };
        let mut uploads = platform.uploads(Some("bob")).await;
        let upload = uploads
            .create_upload(apb::CreateUploadRequest { parent: dataset, files: vec![file], ..Default::default() })
            .await
            .expect("upload created")
            .into_inner();
        let frame = |offset: usize, data: &[u8]| apb::WriteUploadRequest {
            upload: upload.name.clone(),
            path: "half.bin".into(),
            offset: offset as i64,
            data: Bytes::copy_from_slice(data),
        };
        let (rest_of_upload, frames) = mpsc::channel(4);
        rest_of_upload.send(frame(0, &content[..1024])).await.expect("queued");
        let second_half = frame(1024, &content[1024..]);
        let upload_task = tokio::spawn(async move {
            uploads.write_upload(tokio_stream::wrappers::ReceiverStream::new(frames)).await.map(|r| r.into_inner())
        });
        // The first half reached asset-svc once the upload shows it.
        let mut reader = platform.uploads(Some("bob")).await;
        loop {
            let seen =
                reader.get_upload(apb::GetUploadRequest { name: upload.name.clone() }).await.expect("get").into_inner();
            if seen.files[0].acknowledged_offset == 1024 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let stop_calls = Arc::new(AtomicBool::new(false));
        let calls_made = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut assets = platform.assets(Some("bob")).await;
        let mut use_cases = platform.use_cases(Some("bob")).await;
        let mut runs = platform.pipelines(Some("bob")).await;
        let (stop, made, failed, run_name) =
            (stop_calls.clone(), calls_made.clone(), failures.clone(), run.name.clone());
        let calls = tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let results = [
                    assets.list_assets(apb::ListAssetsRequest::default()).await.map(drop),
                    use_cases.list_use_cases(upb::ListUseCasesRequest::default()).await.map(drop),
                    runs.get_run(ppb::GetRunRequest { name: run_name.clone(), view: 0 }).await.map(drop),
                ];
                for result in results {
                    made.fetch_add(1, Ordering::Relaxed);
                    if let Err(status) = result {
                        failed.lock().unwrap().push(status);
                    }
                }
            }
        });
        Self {
            watch,
            run: run.name,
            upload: upload_task,
            rest_of_upload,
            second_half,
            upload_name: upload.name,
            calls,
            stop_calls,
            calls_made,
            failures,
        }
    }

    /// Ends every activity and asserts that each went through untouched.
    async fn finish(self, platform: &Platform) {
        self.stop_calls.store(true, Ordering::Relaxed);
        self.calls.await.expect("calls task");
        let failures = self.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "bob's unary calls failed: {failures:?}");
        assert!(self.calls_made.load(Ordering::Relaxed) >= 3, "bob's calls ran");

        self.rest_of_upload.send(self.second_half).await.expect("the upload stream is still open");
        drop(self.rest_of_upload);
        let written = self.upload.await.expect("upload task").expect("bob's open upload completes");
        assert_eq!(written.files[0].acknowledged_offset, 2048);
        let mut uploads = platform.uploads(Some("bob")).await;
        uploads.commit_upload(apb::CommitUploadRequest { name: self.upload_name }).await.expect("bob commits");

        let mut pipelines = platform.pipelines(Some("bob")).await;
        pipelines.cancel_run(ppb::CancelRunRequest { name: self.run }).await.expect("bob cancels his run");
        let messages = tokio::time::timeout(Duration::from_secs(60), self.watch)
            .await
            .expect("the watch ends after the cancel")
            .expect("watch task")
            .expect("bob's watch ends cleanly");
        let last = messages.last().and_then(|m| match &m.change {
            Some(ppb::watch_run_response::Change::Run(run)) => Some(run.state),
            _ => None,
        });
        assert_eq!(last, Some(ppb::RunState::Canceled as i32), "the watch saw its run to the end");
    }
}

/// A filter the services cannot parse, of about `size` bytes.
fn bad_filter(size: usize) -> String {
    format!("{} = 1", "k".repeat(size))
}

#[tokio::test]
async fn huge_filters_and_paths_are_refused_naming_the_field_while_others_carry_on() {
    let platform = Platform::start().await;
    let dataset = platform.push_version("erin", None, b"a,b\n1,2\n").await;
    let bystander = Bystander::start(&platform).await;

    let mut assets = platform.assets(Some("erin")).await;
    let mut use_cases = platform.use_cases(Some("erin")).await;
    let mut pipelines = platform.pipelines(Some("erin")).await;
    let mut marketplace = platform.marketplace(Some("erin")).await;
    let mut uploads = platform.uploads(Some("erin")).await;
    for size in SIZES {
        let filter = bad_filter(size);
        let result = assets.list_assets(apb::ListAssetsRequest { filter: filter.clone(), ..Default::default() }).await;
        assert_refused(&format!("ListAssets, {size}-byte filter"), result, "filter");
        let result =
            use_cases.list_use_cases(upb::ListUseCasesRequest { filter: filter.clone(), ..Default::default() }).await;
        assert_refused(&format!("ListUseCases, {size}-byte filter"), result, "filter");
        let result = pipelines.list_runs(ppb::ListRunsRequest { filter: filter.clone(), ..Default::default() }).await;
        assert_refused(&format!("ListRuns, {size}-byte filter"), result, "filter");
        let result = marketplace
            .search_listings(upb::SearchListingsRequest { filter: filter.clone(), ..Default::default() })
            .await;
        assert_refused(&format!("SearchListings, {size}-byte filter"), result, "filter");
        let request = apb::ReadFileRequest {
            version: format!("{dataset}/versions/1"),
            path: format!("{}/train.csv", "d".repeat(size)),
            offset: 0,
            length: 0,
        };
        assert_refused(&format!("ReadFile, {size}-byte path"), uploads.read_file(request).await, "path");
    }

    bystander.finish(&platform).await;
    platform.stop().await;
}

#[tokio::test]
async fn an_upload_of_ten_thousand_small_frames_goes_through() {
    let platform = Platform::start().await;
    let bystander = Bystander::start(&platform).await;

    const FRAMES: usize = 10_000;
    const FRAME_BYTES: usize = 64;
    let content: Vec<u8> = (0..FRAMES * FRAME_BYTES).map(|i| (i % 251) as u8).collect();
    let dataset = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    let file = apb::UploadFile {
        path: "many.bin".into(),
        size_bytes: content.len() as i64,
        sha256: sha(&content),
        ..Default::default()
    };
    let mut uploads = platform.uploads(Some("alice")).await;
    let upload = uploads
        .create_upload(apb::CreateUploadRequest { parent: dataset, files: vec![file], ..Default::default() })
        .await
        .expect("upload created")
        .into_inner();
    let frames: Vec<_> = content
        .chunks(FRAME_BYTES)
        .enumerate()
        .map(|(i, chunk)| apb::WriteUploadRequest {
            upload: upload.name.clone(),
            path: "many.bin".into(),
            offset: (i * FRAME_BYTES) as i64,
            data: Bytes::copy_from_slice(chunk),
        })
        .collect();
    let written = uploads.write_upload(tokio_stream::iter(frames)).await.expect("every frame taken").into_inner();
    assert_eq!(written.files[0].acknowledged_offset, content.len() as i64);
    let version = uploads.commit_upload(apb::CommitUploadRequest { name: upload.name }).await.expect("commit");
    let read = platform.read_file("alice", &version.into_inner().name, "many.bin").await.expect("read back");
    assert!(read == content, "the file reads back as written");

    bystander.finish(&platform).await;
    platform.stop().await;
}

/// One WriteUpload message, framed for the wire (uncompressed).
fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// Opens a raw HTTP/2 connection to the gateway and sends a WriteUpload whose body is `chunks`, each its own DATA
/// frame; an `Err` chunk makes the client reset the stream there.
async fn raw_write_upload(platform: &Platform, chunks: Vec<Result<Bytes, std::io::Error>>) -> Option<String> {
    let tcp = tokio::net::TcpStream::connect(platform.standalone.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    // A pause every few frames lets the gateway keep up, so the frames pile up further in, if anywhere.
    let paced =
        tokio_stream::StreamExt::then(tokio_stream::iter(chunks.into_iter().enumerate()), |(i, chunk)| async move {
            if i % 64 == 63 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            chunk.map(http_body::Frame::data)
        });
    let body = http_body_util::StreamBody::new(Box::pin(paced));
    let request = http::Request::post(format!("{}/highwind.asset.v1.UploadService/WriteUpload", platform.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", platform.token("carol")))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.ok()?;
    let mut body = response.into_body();
    let mut status = None;
    while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
        if let Some(trailers) = frame.trailers_ref() {
            status = trailers.get("grpc-status").map(|v| v.to_str().unwrap_or_default().to_owned());
        }
    }
    status
}

#[tokio::test]
async fn a_broken_stream_and_a_flood_of_one_byte_frames_cost_only_their_own_call() {
    let platform = Platform::start().await;
    let bystander = Bystander::start(&platform).await;
    let dataset = platform.create_asset("carol", apb::AssetKind::Dataset).await;
    // Every message completes a file, so asset-svc takes its time over each while the frames keep coming.
    let contents: Vec<Vec<u8>> = (0..40).map(|i| format!("{i:0100}").into_bytes()).collect();
    let files = contents
        .iter()
        .enumerate()
        .map(|(i, content)| apb::UploadFile {
            path: format!("f{i}.txt"),
            size_bytes: content.len() as i64,
            sha256: sha(content),
            ..Default::default()
        })
        .collect();
    let mut uploads = platform.uploads(Some("carol")).await;
    let upload = uploads
        .create_upload(apb::CreateUploadRequest { parent: dataset, files, ..Default::default() })
        .await
        .expect("upload created")
        .into_inner();
    let frames: Vec<u8> = contents
        .iter()
        .enumerate()
        .flat_map(|(i, content)| {
            grpc_frame(&apb::WriteUploadRequest {
                upload: upload.name.clone(),
                path: format!("f{i}.txt"),
                offset: 0,
                data: Bytes::copy_from_slice(content),
            })
        })
        .collect();

    // Half a message, then a reset.
    let broken = vec![Ok(Bytes::copy_from_slice(&frames[..150])), Err(std::io::Error::other("client gave up"))];
    let status = raw_write_upload(&platform, broken).await;
    assert_ne!(status.as_deref(), Some("0"), "a reset stream does not succeed");

    // Every byte of the whole upload in a DATA frame of its own.
    let flood: Vec<_> = frames.iter().map(|b| Ok(Bytes::copy_from_slice(&[*b]))).collect();
    // Whether the flood itself succeeds is the gateway's call; it must not touch anyone else.
    let _ = raw_write_upload(&platform, flood).await;

    bystander.finish(&platform).await;
    platform.stop().await;
}
