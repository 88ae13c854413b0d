//! List answers are bounded in bytes as well as in count: versions with large file lists page across several
//! answers that each fit a default client, and a file list too large for one answer is refused on upload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::asset::v1 as pb;
use tonic::Code;

use crate::support::Platform;

on_both_backends!(
    large_versions_page_across_answers_a_default_client_accepts,
    a_file_list_too_large_for_one_answer_is_refused
);

/// The SHA-256 of no bytes: empty files are stored from the start, so a version needs no writes.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn empty_files(version: usize, count: usize, path_bytes: usize) -> Vec<pb::UploadFile> {
    (0..count)
        .map(|i| pb::UploadFile {
            path: format!("v{version}/{i:05}-{}", "p".repeat(path_bytes)),
            size_bytes: 0,
            sha256: EMPTY_SHA256.into(),
            ..Default::default()
        })
        .collect()
}

async fn commit(
    platform: &Platform,
    parent: &str,
    files: Vec<pb::UploadFile>,
) -> Result<pb::AssetVersion, tonic::Status> {
    let mut uploads = platform.uploads(Some("alice")).await;
    let request = pb::CreateUploadRequest { parent: parent.into(), files, ..Default::default() };
    let upload = uploads.create_upload(request).await?.into_inner();
    uploads.commit_upload(pb::CommitUploadRequest { name: upload.name }).await.map(tonic::Response::into_inner)
}

async fn large_versions_page_across_answers_a_default_client_accepts(platform: Platform) {
    let asset = platform.create_asset("alice", pb::AssetKind::Dataset).await;
    // Four versions of about 1.5 MB of file list each: 6 MB in all, past the 4 MiB a default client accepts.
    for version in 0..4 {
        commit(&platform, &asset, empty_files(version, 4_000, 300)).await.expect("commit");
    }
    // The client keeps tonic's default 4 MiB limit on what it decodes.
    let mut assets = platform.assets(Some("alice")).await;
    let (mut seen, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let request = pb::ListAssetVersionsRequest {
            parent: asset.clone(),
            page_size: 1_000,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = assets.list_asset_versions(request).await.expect("a page a default client decodes").into_inner();
        pages += 1;
        assert!(!page.asset_versions.is_empty(), "every page makes progress");
        for version in &page.asset_versions {
            assert_eq!(version.files.len(), 4_000, "a version comes whole");
            seen.push(version.version_number);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4], "every version once");
    assert!(pages >= 3, "6 MB of versions take several pages, not {pages}");
}

async fn a_file_list_too_large_for_one_answer_is_refused(platform: Platform) {
    let asset = platform.create_asset("alice", pb::AssetKind::Dataset).await;
    let mut uploads = platform.uploads(Some("alice")).await;
    // 10,000 files with 300-byte paths: a 3.7 MB request, under the 4 MiB a service takes, whose version would
    // list more than 3 MiB of files.
    let request =
        pb::CreateUploadRequest { parent: asset.clone(), files: empty_files(0, 10_000, 290), ..Default::default() };
    let refused = uploads.create_upload(request).await.expect_err("too large to list");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let violations = crate::support::field_violations(&refused);
    assert!(
        violations.iter().any(|(field, why)| field == "files" && why.contains("file list takes")),
        "{violations:?}"
    );
    let mut assets = platform.assets(Some("alice")).await;
    let seen = assets.get_asset(pb::GetAssetRequest { name: asset }).await.expect("get").into_inner();
    assert_eq!(seen.latest_version, "", "nothing was committed");
}
