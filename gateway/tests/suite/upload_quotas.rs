//! Uploads through the gateway cost each user only their own share: per-user quotas on open uploads, the bytes
//! they declare and what assets store (RESOURCE_EXHAUSTED with a QuotaFailure, nothing stored), each asset's
//! stored size in GetAsset, and write answers that follow the files written, not the files declared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use highwind_proto::asset::v1 as pb;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::Platform;

on_both_backends!(
    open_uploads_and_declared_bytes_are_capped_per_user,
    get_asset_reports_what_its_versions_store,
    a_write_answers_for_the_files_it_wrote,
);

/// The platform's default quotas (asset-svc `uploads.*`).
const OPEN_UPLOADS_PER_USER: usize = 100;
const TIB: i64 = 1 << 40;

fn file(path: &str, size: i64) -> pb::UploadFile {
    pb::UploadFile { path: path.into(), size_bytes: size, sha256: "ab".repeat(32), ..Default::default() }
}

fn declared(file: &str, content: &[u8]) -> pb::UploadFile {
    pb::UploadFile {
        path: file.into(),
        size_bytes: content.len() as i64,
        sha256: hex::encode(Sha256::digest(content)),
        ..Default::default()
    }
}

async fn open(
    platform: &Platform,
    user: &str,
    parent: &str,
    files: Vec<pb::UploadFile>,
) -> Result<pb::Upload, tonic::Status> {
    let mut uploads = platform.uploads(Some(user)).await;
    let request = pb::CreateUploadRequest { parent: parent.into(), files, ..Default::default() };
    uploads.create_upload(request).await.map(tonic::Response::into_inner)
}

fn assert_quota_failure(status: &tonic::Status, subject: &str, says: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let quota = status.get_details_quota_failure().expect("a QuotaFailure detail");
    assert_eq!(quota.violations.len(), 1, "{quota:?}");
    assert_eq!(quota.violations[0].subject, subject);
    assert!(quota.violations[0].description.contains(says), "{quota:?}");
    assert!(status.message().contains(says), "{}", status.message());
}

async fn open_uploads_and_declared_bytes_are_capped_per_user(platform: Platform) {
    let alice = platform.create_asset("alice", pb::AssetKind::Dataset).await;
    let bob = platform.create_asset("bob", pb::AssetKind::Dataset).await;

    // 1 TiB each: the second fits the 2 TiB alice's open uploads may declare, the third does not.
    let big = |i: usize| vec![file(&format!("huge-{i}.bin"), TIB)];
    let first = open(&platform, "alice", &alice, big(0)).await.expect("first 1 TiB upload");
    let second = open(&platform, "alice", &alice, big(1)).await.expect("second 1 TiB upload");
    let refused = open(&platform, "alice", &alice, big(2)).await.expect_err("a third TiB is over the quota");
    assert_quota_failure(&refused, "users/alice", "may declare at most");
    // Bob's quota is his own.
    let bobs = open(&platform, "bob", &bob, big(0)).await.expect("bob opens his own");

    // Small uploads: the count is capped too, and a cancelled upload gives its place back.
    let mut uploads = platform.uploads(Some("alice")).await;
    uploads.cancel_upload(pb::CancelUploadRequest { name: first.name }).await.expect("cancel");
    let mut opened = vec![second];
    for i in 1..OPEN_UPLOADS_PER_USER {
        opened.push(open(&platform, "alice", &alice, vec![file(&format!("small-{i}"), 10)]).await.expect("fits"));
    }
    let refused = open(&platform, "alice", &alice, vec![file("one-too-many", 10)]).await.expect_err("over the count");
    assert_quota_failure(&refused, "users/alice", &format!("at most {OPEN_UPLOADS_PER_USER} uploads open"));
    uploads.cancel_upload(pb::CancelUploadRequest { name: opened[0].name.clone() }).await.expect("cancel");
    open(&platform, "alice", &alice, vec![file("one-too-many", 10)]).await.expect("the freed place is taken");

    // Refusals stored nothing: bob's upload and alice's open ones are as they were.
    let mut bob_uploads = platform.uploads(Some("bob")).await;
    let seen = bob_uploads.get_upload(pb::GetUploadRequest { name: bobs.name.clone() }).await.expect("get");
    assert_eq!(seen.into_inner().state, pb::UploadState::Open as i32);
}

async fn get_asset_reports_what_its_versions_store(platform: Platform) {
    let asset = platform.create_asset("alice", pb::AssetKind::Dataset).await;
    let mut assets = platform.assets(Some("alice")).await;
    let get = pb::GetAssetRequest { name: asset.clone() };
    assert_eq!(assets.get_asset(get.clone()).await.expect("get").into_inner().total_size_bytes, 0);
    platform.commit_files("alice", &asset, &[("a.csv", vec![1; 1000]), ("b.csv", vec![2; 24])]).await.expect("v1");
    platform.commit_files("alice", &asset, &[("a.csv", vec![1; 1000])]).await.expect("v2 shares a.csv");
    let seen = assets.get_asset(get).await.expect("get").into_inner();
    assert_eq!(seen.total_size_bytes, 2024, "each version counts its files, shared or not");
    let listed = assets.list_assets(pb::ListAssetsRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.assets.iter().find(|a| a.name == asset).expect("listed").total_size_bytes, 2024);
}

async fn a_write_answers_for_the_files_it_wrote(platform: Platform) {
    let asset = platform.create_asset("alice", pb::AssetKind::Dataset).await;
    let contents: Vec<(String, Vec<u8>)> = (0..50).map(|i| (format!("f/{i:02}"), vec![i as u8; 100])).collect();
    let files = contents.iter().map(|(path, content)| declared(path, content)).collect();
    let upload = open(&platform, "alice", &asset, files).await.expect("open");
    let mut uploads = platform.uploads(Some("alice")).await;

    let chunk = pb::WriteUploadChunkRequest {
        upload: upload.name.clone(),
        path: "f/07".into(),
        offset: 0,
        data: Bytes::from(contents[7].1[..40].to_vec()),
    };
    let answer = uploads.write_upload_chunk(chunk).await.expect("chunk").into_inner();
    let acknowledged: Vec<(&str, i64)> =
        answer.files.iter().map(|f| (f.path.as_str(), f.acknowledged_offset)).collect();
    assert_eq!(acknowledged, [("f/07", 40)]);

    // Whole f/09, then the first 60 bytes of f/03.
    let frames: Vec<pb::WriteUploadRequest> = [(9, 100), (3, 60)]
        .into_iter()
        .map(|(i, end)| pb::WriteUploadRequest {
            upload: upload.name.clone(),
            path: contents[i].0.clone(),
            offset: 0,
            data: Bytes::from(contents[i].1[..end].to_vec()),
        })
        .collect();
    let answer = uploads.write_upload(tokio_stream::iter(frames)).await.expect("stream").into_inner();
    let acknowledged: Vec<(&str, i64, bool)> =
        answer.files.iter().map(|f| (f.path.as_str(), f.acknowledged_offset, f.present)).collect();
    assert_eq!(acknowledged, [("f/03", 60, false), ("f/09", 100, true)], "the files written, by path");

    // A path the upload does not declare is refused naming the field, and GetUpload still lists every file.
    let stray = pb::WriteUploadChunkRequest {
        upload: upload.name.clone(),
        path: "f/99".into(),
        offset: 0,
        data: Bytes::from_static(b"x"),
    };
    let refused = uploads.write_upload_chunk(stray).await.expect_err("undeclared");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(crate::support::field_violations(&refused)[0].0, "path");
    let seen = uploads.get_upload(pb::GetUploadRequest { name: upload.name }).await.expect("get").into_inner();
    assert_eq!(seen.files.len(), 50);
    let progress = |path: &str| seen.files.iter().find(|f| f.path == path).map(|f| f.acknowledged_offset);
    assert_eq!(
        (progress("f/07"), progress("f/03"), progress("f/09"), progress("f/00")),
        (Some(40), Some(60), Some(100), Some(0))
    );
}
