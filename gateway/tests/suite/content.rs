//! Asset content through the gateway: verified, resumable uploads that commit immutable versions, dedup by
//! digest, ranged reads, and bad input that leaves nothing visible.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use highwind_proto::asset::v1 as pb;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::Platform;

on_both_backends!(
    a_multi_file_upload_becomes_an_immutable_version_that_reads_back,
    an_interrupted_upload_resumes_from_its_acknowledged_offset,
    content_that_does_not_match_its_digest_is_refused_and_reset,
    identical_content_is_stored_once_and_needs_no_second_transfer,
    bad_declarations_are_invalid_argument_and_create_nothing,
    concurrent_commits_get_distinct_numbers,
    aliases_move_between_versions_and_resolve,
    version_metadata_changes_but_content_never_does,
);

fn sha(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

fn declare(files: &[(&str, &[u8])]) -> Vec<pb::UploadFile> {
    files
        .iter()
        .map(|(path, content)| pb::UploadFile {
            path: (*path).into(),
            size_bytes: content.len() as i64,
            sha256: sha(content),
            ..Default::default()
        })
        .collect()
}

fn chunk(upload: impl Into<String>, path: &str, offset: usize, data: impl Into<Bytes>) -> pb::WriteUploadChunkRequest {
    pb::WriteUploadChunkRequest { upload: upload.into(), path: path.into(), offset: offset as i64, data: data.into() }
}

fn declared(parent: impl Into<String>, files: Vec<pb::UploadFile>) -> pb::CreateUploadRequest {
    pb::CreateUploadRequest { parent: parent.into(), files, ..Default::default() }
}

fn frame(upload: &str, path: &str, offset: usize, data: &[u8]) -> pb::WriteUploadRequest {
    pb::WriteUploadRequest {
        upload: upload.into(),
        path: path.into(),
        offset: offset as i64,
        data: Bytes::copy_from_slice(data),
    }
}

async fn new_asset(platform: &Platform, user: &str, kind: pb::AssetKind) -> pb::Asset {
    let mut assets = platform.assets(Some(user)).await;
    let asset = pb::Asset { kind: kind as i32, display_name: "content".into(), ..Default::default() };
    assets
        .create_asset(pb::CreateAssetRequest { asset: Some(asset), request_id: String::new() })
        .await
        .unwrap()
        .into_inner()
}

async fn read_all(platform: &Platform, user: &str, version: &str, path: &str, offset: i64, length: i64) -> Vec<u8> {
    let mut uploads = platform.uploads(Some(user)).await;
    let request = pb::ReadFileRequest { version: version.into(), path: path.into(), offset, length };
    let mut stream = uploads.read_file(request).await.expect("read").into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.next().await {
        let frame = frame.expect("frame");
        assert_eq!(frame.offset as usize, offset as usize + out.len(), "frames arrive in order");
        out.extend_from_slice(&frame.data);
    }
    out
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

async fn a_multi_file_upload_becomes_an_immutable_version_that_reads_back(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Dataset).await;
    let train: Vec<u8> = (0..3_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let files: [(&str, &[u8]); 3] = [("train.csv", &train), ("test/test.csv", b"x,y\n1,2\n"), ("empty.txt", b"")];
    let mut uploads = platform.uploads(Some("alice")).await;
    let upload = uploads
        .create_upload(pb::CreateUploadRequest {
            parent: asset.name.clone(),
            files: declare(&files),
            description: "first cut".into(),
            ..Default::default()
        })
        .await
        .expect("create upload")
        .into_inner();
    assert_eq!(upload.state, pb::UploadState::Open as i32);
    let empty = upload.files.iter().find(|f| f.path == "empty.txt").unwrap();
    assert!(empty.present, "an empty file needs no bytes");

    let mut frames = Vec::new();
    for (path, content) in &files[..2] {
        for (i, chunk) in content.chunks(1 << 20).enumerate() {
            frames.push(frame(&upload.name, path, i << 20, chunk));
        }
    }
    let written = uploads.write_upload(tokio_stream::iter(frames)).await.expect("write").into_inner();
    assert!(written.files.iter().all(|f| f.acknowledged_offset == f.size_bytes), "{written:?}");

    let version = uploads
        .commit_upload(pb::CommitUploadRequest { name: upload.name.clone() })
        .await
        .expect("commit")
        .into_inner();
    assert_eq!(version.version_number, 1);
    assert_eq!(version.name, format!("{}/versions/1", asset.name));
    assert_eq!(version.state, pb::VersionState::Ready as i32);
    assert_eq!(version.total_size_bytes as usize, train.len() + 8);
    let paths: Vec<&str> = version.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["empty.txt", "test/test.csv", "train.csv"]);
    let canonical: String =
        version.files.iter().map(|f| format!("{} {} {}\n", f.sha256, f.size_bytes, f.path)).collect();
    assert_eq!(version.manifest_digest, format!("sha256:{}", sha(canonical.as_bytes())));

    let again = uploads.commit_upload(pb::CommitUploadRequest { name: upload.name.clone() }).await.expect("retry");
    assert_eq!(again.into_inner(), version, "a retried commit returns the same version");

    let mut assets = platform.assets(Some("alice")).await;
    let latest = assets
        .get_asset_version(pb::GetAssetVersionRequest { name: format!("{}/versions/latest", asset.name) })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(latest, version);
    let refreshed = assets.get_asset(pb::GetAssetRequest { name: asset.name.clone() }).await.unwrap().into_inner();
    assert_eq!(refreshed.latest_version, version.name);

    assert_eq!(read_all(&platform, "alice", &version.name, "train.csv", 0, 0).await, train);
    assert_eq!(
        read_all(&platform, "alice", &version.name, "train.csv", 1_000_001, 10).await,
        &train[1_000_001..1_000_011]
    );
    assert_eq!(read_all(&platform, "alice", &version.name, "empty.txt", 0, 0).await, b"");

    let err = platform
        .uploads(Some("bob"))
        .await
        .read_file(pb::ReadFileRequest {
            version: version.name.clone(),
            path: "train.csv".into(),
            ..Default::default()
        })
        .await
        .expect_err("bob cannot read alice's files");
    assert_eq!(err.code(), Code::NotFound);
    platform.stop().await;
}

async fn an_interrupted_upload_resumes_from_its_acknowledged_offset(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Model).await;
    let weights: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let mut uploads = platform.uploads(Some("alice")).await;
    let upload = uploads
        .create_upload(declared(asset.name.clone(), declare(&[("model.safetensors", &weights)])))
        .await
        .unwrap()
        .into_inner();
    // The first stream sends one megabyte, then the client goes away.
    let first = vec![frame(&upload.name, "model.safetensors", 0, &weights[..1 << 20])];
    uploads.write_upload(tokio_stream::iter(first)).await.expect("partial write");
    let status = uploads.get_upload(pb::GetUploadRequest { name: upload.name.clone() }).await.unwrap().into_inner();
    let offset = status.files[0].acknowledged_offset as usize;
    assert_eq!(offset, 1 << 20);

    let err =
        uploads.commit_upload(pb::CommitUploadRequest { name: upload.name.clone() }).await.expect_err("incomplete");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "FILES_MISSING");

    let wrong = uploads
        .write_upload(tokio_stream::iter(vec![frame(&upload.name, "model.safetensors", 0, &weights[..10])]))
        .await
        .expect_err("offset 0 was already written");
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    assert_eq!(reason(&wrong), "WRONG_OFFSET");
    let expected = wrong.get_error_details().error_info().unwrap().metadata.get("expected_offset").cloned();
    assert_eq!(expected, Some(offset.to_string()));

    let rest: Vec<_> = weights[offset..]
        .chunks(700_000)
        .scan(offset, |at, c| {
            let f = frame(&upload.name, "model.safetensors", *at, c);
            *at += c.len();
            Some(f)
        })
        .collect();
    uploads.write_upload(tokio_stream::iter(rest)).await.expect("resume");
    let version = uploads.commit_upload(pb::CommitUploadRequest { name: upload.name.clone() }).await.expect("commit");
    assert_eq!(version.get_ref().files[0].sha256, sha(&weights));
    assert_eq!(read_all(&platform, "alice", &version.get_ref().name, "model.safetensors", 0, 0).await, weights);
    platform.stop().await;
}

async fn content_that_does_not_match_its_digest_is_refused_and_reset(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Dataset).await;
    let mut uploads = platform.uploads(Some("alice")).await;
    let upload = uploads
        .create_upload(declared(asset.name.clone(), declare(&[("a.csv", b"the real content")])))
        .await
        .unwrap()
        .into_inner();
    let err = uploads
        .write_upload_chunk(chunk(upload.name.clone(), "a.csv", 0, Bytes::from_static(b"the fake content")))
        .await
        .expect_err("digest mismatch");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "DIGEST_MISMATCH");
    let status = uploads.get_upload(pb::GetUploadRequest { name: upload.name.clone() }).await.unwrap().into_inner();
    assert_eq!(status.files[0].acknowledged_offset, 0, "the file starts over");

    let past = uploads
        .write_upload_chunk(chunk(
            upload.name.clone(),
            "a.csv",
            0,
            Bytes::from_static(b"the real content, and then some"),
        ))
        .await
        .expect_err("past the declared size");
    assert_eq!(past.code(), Code::InvalidArgument);
    let unknown = uploads
        .write_upload_chunk(chunk(upload.name.clone(), "b.csv", 0, Bytes::from_static(b"x")))
        .await
        .expect_err("undeclared file");
    assert_eq!(unknown.code(), Code::InvalidArgument);

    let mut assets = platform.assets(Some("alice")).await;
    let versions = assets
        .list_asset_versions(pb::ListAssetVersionsRequest { parent: asset.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(versions.asset_versions.is_empty(), "nothing half-written is visible");

    uploads
        .write_upload_chunk(chunk(upload.name.clone(), "a.csv", 0, Bytes::from_static(b"the real content")))
        .await
        .expect("the right bytes");
    uploads.commit_upload(pb::CommitUploadRequest { name: upload.name.clone() }).await.expect("commit");
    platform.stop().await;
}

async fn identical_content_is_stored_once_and_needs_no_second_transfer(platform: Platform) {
    let first = new_asset(&platform, "alice", pb::AssetKind::Dataset).await;
    let second = new_asset(&platform, "alice", pb::AssetKind::Dataset).await;
    let content = b"shared bytes".as_slice();
    let mut uploads = platform.uploads(Some("alice")).await;
    let missing = uploads
        .find_missing_blobs(pb::FindMissingBlobsRequest { sha256: vec![sha(content), sha(b"other")] })
        .await
        .unwrap()
        .into_inner()
        .missing_sha256;
    assert_eq!(missing, [sha(content), sha(b"other")]);

    let upload =
        uploads.create_upload(declared(first.name.clone(), declare(&[("f", content)]))).await.unwrap().into_inner();
    uploads.write_upload_chunk(chunk(upload.name.clone(), "f", 0, Bytes::from_static(b"shared bytes"))).await.unwrap();
    uploads.commit_upload(pb::CommitUploadRequest { name: upload.name }).await.unwrap();

    let missing = uploads
        .find_missing_blobs(pb::FindMissingBlobsRequest { sha256: vec![sha(content), sha(b"other")] })
        .await
        .unwrap()
        .into_inner()
        .missing_sha256;
    assert_eq!(missing, [sha(b"other")]);
    let upload = uploads
        .create_upload(declared(second.name.clone(), declare(&[("copy/of/f", content)])))
        .await
        .unwrap()
        .into_inner();
    assert!(upload.files[0].present);
    let version =
        uploads.commit_upload(pb::CommitUploadRequest { name: upload.name }).await.expect("commit without bytes");
    assert_eq!(read_all(&platform, "alice", &version.get_ref().name, "copy/of/f", 0, 0).await, content);
    platform.stop().await;
}

async fn bad_declarations_are_invalid_argument_and_create_nothing(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Dataset).await;
    let mut uploads = platform.uploads(Some("alice")).await;
    let long = "a".repeat(1025);
    let bad_paths = [
        "/etc/passwd",
        "../escape",
        "a/../../b",
        "%2e%2e/x",
        "%252e%252e/x",
        "a\\b",
        "C:/x",
        "a//b",
        "a/",
        "a\0b",
        "tab\there",
        long.as_str(),
        "",
        "\u{2024}\u{2024}/escape",
        "\u{2025}/escape",
        "\u{FF0E}\u{FF0E}/escape",
        "a\u{2215}..\u{2215}b",
        "%E2%80%A5/escape",
        "invoice\u{202E}fdp.exe",
        "a\u{2067}b",
    ];
    for path in bad_paths {
        let err = uploads.create_upload(declared(asset.name.clone(), declare(&[(path, b"x")]))).await.expect_err(path);
        assert_eq!(err.code(), Code::InvalidArgument, "{path:?}");
        let fields: Vec<String> =
            err.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, ["files[0].path"], "{path:?}");
    }
    // Names one version cannot hold on a file system that normalises Unicode or ignores case.
    for (first, second) in [("caf\u{e9}.csv", "cafe\u{301}.csv"), ("Train.csv", "train.csv"), ("DATA/x", "data/x")] {
        let files = declare(&[(first, b"1"), (second, b"2")]);
        let err = uploads.create_upload(declared(asset.name.clone(), files)).await.expect_err(second);
        assert_eq!(err.code(), Code::InvalidArgument, "{second:?}");
        let fields: Vec<String> =
            err.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, ["files[1].path"], "{first:?} and {second:?} collide");
    }
    let duplicate = declare(&[("a", b"1"), ("a", b"2")]);
    let clash = declare(&[("a", b"1"), ("a/b", b"2")]);
    let hidden_clash = declare(&[("a", b"1"), ("a.txt", b"2"), ("a/b", b"3")]);
    let folded_clash = declare(&[("A", b"1"), ("a/b", b"2")]);
    let mut bad_digest = declare(&[("a", b"1")]);
    bad_digest[0].sha256 = "ABC".into();
    let mut negative = declare(&[("a", b"1")]);
    negative[0].size_bytes = -1;
    for files in [duplicate, clash, hidden_clash, folded_clash, bad_digest, negative, vec![]] {
        let err = uploads
            .create_upload(pb::CreateUploadRequest { parent: asset.name.clone(), files, ..Default::default() })
            .await
            .expect_err("invalid declaration");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    let err = platform
        .uploads(Some("bob"))
        .await
        .create_upload(declared(asset.name.clone(), declare(&[("a", b"1")])))
        .await
        .expect_err("bob cannot upload to alice's asset");
    assert_eq!(err.code(), Code::NotFound);
    platform.stop().await;
}

async fn concurrent_commits_get_distinct_numbers(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Dataset).await;
    let mut names = Vec::new();
    for i in 0..6 {
        let content = format!("version {i}");
        let mut uploads = platform.uploads(Some("alice")).await;
        let upload = uploads
            .create_upload(declared(asset.name.clone(), declare(&[("v.txt", content.as_bytes())])))
            .await
            .unwrap()
            .into_inner();
        uploads.write_upload_chunk(chunk(upload.name.clone(), "v.txt", 0, Bytes::from(content))).await.unwrap();
        names.push(upload.name);
    }
    let mut commits = tokio::task::JoinSet::new();
    for name in names {
        let mut uploads = platform.uploads(Some("alice")).await;
        commits.spawn(
            async move { uploads.commit_upload(pb::CommitUploadRequest { name }).await.map(|r| r.into_inner()) },
        );
    }
    let mut numbers = Vec::new();
    while let Some(done) = commits.join_next().await {
        let version = done.unwrap().expect("commit");
        assert_eq!(version.state, pb::VersionState::Ready as i32);
        numbers.push(version.version_number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);

    let mut assets = platform.assets(Some("alice")).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = assets
            .list_asset_versions(pb::ListAssetVersionsRequest {
                parent: asset.name.clone(),
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.asset_versions.iter().map(|v| v.version_number));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, [6, 5, 4, 3, 2, 1], "newest first, every version once");
    platform.stop().await;
}

async fn push(platform: &Platform, user: &str, asset: &str, files: &[(&str, &[u8])]) -> pb::AssetVersion {
    let mut uploads = platform.uploads(Some(user)).await;
    let upload = uploads
        .create_upload(pb::CreateUploadRequest { parent: asset.into(), files: declare(files), ..Default::default() })
        .await
        .expect("create upload")
        .into_inner();
    let frames: Vec<_> =
        files.iter().filter(|(_, c)| !c.is_empty()).map(|(p, c)| frame(&upload.name, p, 0, c)).collect();
    if !frames.is_empty() {
        uploads.write_upload(tokio_stream::iter(frames)).await.expect("write");
    }
    uploads.commit_upload(pb::CommitUploadRequest { name: upload.name }).await.expect("commit").into_inner()
}

async fn aliases_move_between_versions_and_resolve(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Model).await;
    let v1 = push(&platform, "alice", &asset.name, &[("model.onnx", b"one")]).await;
    let v2 = push(&platform, "alice", &asset.name, &[("model.onnx", b"two")]).await;
    let mut assets = platform.assets(Some("alice")).await;
    let set = |name: &str, alias: &str| pb::SetVersionAliasRequest {
        name: name.into(),
        alias: alias.into(),
        protected: false,
    };

    let held = assets.set_version_alias(set(&v1.name, "production")).await.expect("set").into_inner();
    assert_eq!(held.aliases, ["production"]);
    let by_alias = assets
        .get_asset_version(pb::GetAssetVersionRequest { name: format!("{}/versions/production", asset.name) })
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(by_alias.version_number, 1);

    assets.set_version_alias(set(&v2.name, "production")).await.expect("move");
    let listed = assets
        .list_asset_versions(pb::ListAssetVersionsRequest {
            parent: asset.name.clone(),
            filter: "alias = production".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.asset_versions.len(), 1, "one version per alias");
    assert_eq!(listed.asset_versions[0].version_number, 2);
    let v1_now = assets.get_asset_version(pb::GetAssetVersionRequest { name: v1.name.clone() }).await.unwrap();
    assert!(v1_now.into_inner().aliases.is_empty(), "the alias left version 1");

    for bad in ["latest", "12", "Prod", ""] {
        let err = assets.set_version_alias(set(&v1.name, bad)).await.expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    let removed = assets
        .delete_version_alias(pb::DeleteVersionAliasRequest { asset: asset.name.clone(), alias: "production".into() })
        .await
        .expect("delete alias")
        .into_inner();
    assert_eq!(removed.previous_version, v2.name);
    let gone = assets
        .get_asset_version(pb::GetAssetVersionRequest { name: format!("{}/versions/production", asset.name) })
        .await
        .expect_err("alias removed");
    assert_eq!(gone.code(), Code::NotFound);
    let err = platform.assets(Some("bob")).await.set_version_alias(set(&v1.name, "mine")).await.expect_err("bob");
    assert_eq!(err.code(), Code::NotFound);
    platform.stop().await;
}

async fn version_metadata_changes_but_content_never_does(platform: Platform) {
    let asset = new_asset(&platform, "alice", pb::AssetKind::Model).await;
    let v1 = push(&platform, "alice", &asset.name, &[("model.pkl", b"weights")]).await;
    let mut assets = platform.assets(Some("alice")).await;
    let change = pb::AssetVersion {
        name: v1.name.clone(),
        description: "tuned".into(),
        metrics: [("rmse".to_owned(), 0.31), ("r2".to_owned(), 0.87)].into_iter().collect(),
        files: vec![],
        etag: v1.etag.clone(),
        ..Default::default()
    };
    let mask = prost_types::FieldMask { paths: vec!["description".into(), "metrics".into()] };
    let updated = assets
        .update_asset_version(pb::UpdateAssetVersionRequest {
            asset_version: Some(change.clone()),
            update_mask: Some(mask.clone()),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.description, "tuned");
    assert_eq!(updated.metrics.get("rmse"), Some(&0.31));
    assert_eq!(updated.files, v1.files, "the manifest is untouched");
    assert_eq!(updated.manifest_digest, v1.manifest_digest);
    let stale = assets
        .update_asset_version(pb::UpdateAssetVersionRequest { asset_version: Some(change), update_mask: Some(mask) })
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let files_mask = prost_types::FieldMask { paths: vec!["files".into()] };
    let err = assets
        .update_asset_version(pb::UpdateAssetVersionRequest {
            asset_version: Some(pb::AssetVersion { name: v1.name.clone(), ..Default::default() }),
            update_mask: Some(files_mask),
        })
        .await
        .expect_err("files are immutable");
    assert_eq!(err.code(), Code::InvalidArgument);

    let archived = assets.delete_asset_version(pb::DeleteAssetVersionRequest { name: v1.name.clone() }).await.unwrap();
    assert!(archived.into_inner().archived);
    let latest = assets
        .get_asset_version(pb::GetAssetVersionRequest { name: format!("{}/versions/latest", asset.name) })
        .await
        .expect_err("no live version left");
    assert_eq!(latest.code(), Code::NotFound);
    let listed = assets
        .list_asset_versions(pb::ListAssetVersionsRequest { parent: asset.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.asset_versions.is_empty());
    let restored =
        assets.undelete_asset_version(pb::UndeleteAssetVersionRequest { name: v1.name.clone() }).await.unwrap();
    assert!(!restored.into_inner().archived);
    assert_eq!(read_all(&platform, "alice", &v1.name, "model.pkl", 0, 0).await, b"weights");
    platform.stop().await;
}
