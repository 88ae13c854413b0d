//! The authorization matrix of the asset services: every AssetService and UploadService RPC × {owner, editor,
//! viewer, buyer, stranger, anonymous}, through the gateway with real tokens from the embedded issuer, on SQLite
//! and PostgreSQL. The asset is alice's; carol edits and dave views a use case that pins it; bob bought that use
//! case's release. Readers read; only the owner changes anything (readers are told PERMISSION_DENIED, strangers
//! that nothing exists). Each cell runs against fresh resources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, time::Duration};

use highwind_proto::{
    asset::v1::{self as apb, asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient},
    usecase::v1 as pb,
};
use prost::Message;
use prost_types::FieldMask;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

on_both_backends!(every_asset_rpc_answers_every_kind_of_caller_as_declared);

use Code::{NotFound as NF, Ok as OK, PermissionDenied as PD, Unauthenticated as UA};

use crate::support::{Bearer, CALLERS, Platform};

/// Only the owner changes; readers read; garbage collection is for administrators (the standalone platform makes
/// its first dev user, alice, one).
const MATRIX: [(&str, [Code; 6]); 23] = [
    ("AssetService/CreateAsset", [OK, OK, OK, OK, OK, UA]),
    ("AssetService/GetAsset", [OK, OK, OK, OK, NF, UA]),
    ("AssetService/ListAssets", [OK, OK, OK, OK, OK, UA]),
    ("AssetService/UpdateAsset", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/DeleteAsset", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/UndeleteAsset", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/PurgeAsset", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/GetAssetVersion", [OK, OK, OK, OK, NF, UA]),
    ("AssetService/ListAssetVersions", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/UpdateAssetVersion", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/DeleteAssetVersion", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/UndeleteAssetVersion", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/SetVersionAlias", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/DeleteVersionAlias", [OK, PD, PD, PD, NF, UA]),
    ("AssetService/CollectGarbage", [OK, PD, PD, PD, PD, UA]),
    ("UploadService/CreateUpload", [OK, PD, PD, PD, NF, UA]),
    ("UploadService/GetUpload", [OK, PD, PD, PD, NF, UA]),
    ("UploadService/WriteUpload", [OK, PD, PD, PD, NF, UA]),
    ("UploadService/WriteUploadChunk", [OK, PD, PD, PD, NF, UA]),
    ("UploadService/CommitUpload", [OK, PD, PD, PD, NF, UA]),
    ("UploadService/CancelUpload", [OK, PD, PD, PD, NF, UA]),
    ("UploadService/FindMissingBlobs", [OK, OK, OK, OK, OK, UA]),
    ("UploadService/ReadFile", [OK, OK, OK, OK, NF, UA]),
];

const DATA: &[u8] = b"rooms,price\n3,100\n";

struct Fixture {
    asset: String,
    version: String,
    upload: String,
    /// The asset's etag after the fixture's last change to it.
    etag: String,
    /// The content the open upload expects, unique so no other upload already stored it.
    next: Vec<u8>,
}

fn sha256(content: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content))
}

/// Alice's dataset (version 1, alias `prod`) pinned by her published use case (carol edits, dave views, bob
/// bought it), and an open upload of a second version; the row decides what is archived or already written.
async fn fixture(platform: &Platform, rpc: &str) -> Fixture {
    let asset = platform.push_version("alice", None, DATA).await;
    let version = format!("{asset}/versions/1");
    let mut assets = platform.assets(Some("alice")).await;
    let alias = apb::SetVersionAliasRequest { name: version.clone(), alias: "prod".into(), protected: false };
    assets.set_version_alias(alias).await.unwrap();
    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = alice
        .create_use_case(pb::CreateUseCaseRequest {
            use_case: Some(pb::UseCase {
                display_name: "House prices".into(),
                description: "California housing".into(),
                model_card: "## Model".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for (principal, role) in [("users/carol", pb::MemberRole::Editor), ("users/dave", pb::MemberRole::Viewer)] {
        let member = pb::Member { principal: principal.into(), role: role as i32, ..Default::default() };
        let request =
            pb::CreateMemberRequest { parent: use_case.name.clone(), member: Some(member), request_id: String::new() };
        alice.create_member(request).await.unwrap();
    }
    let link = pb::AssetLink {
        asset: asset.clone(),
        role: pb::AssetLinkRole::Dataset as i32,
        version: Some(pb::asset_link::Version::PinnedVersionNumber(1)),
        ..Default::default()
    };
    let request =
        pb::CreateAssetLinkRequest { parent: use_case.name.clone(), asset_link: Some(link), request_id: String::new() };
    alice.create_asset_link(request).await.unwrap();
    let release = pb::CreateReleaseRequest { parent: use_case.name.clone(), release: None, request_id: String::new() };
    let release = alice.create_release(release).await.unwrap().into_inner();
    let publish = pb::PublishUseCaseRequest { name: use_case.name.clone(), release: release.name, etag: String::new() };
    let listing = alice.publish_use_case(publish).await.unwrap().into_inner().listing.unwrap();
    let acquire = pb::AcquireListingRequest { name: listing.name, ..Default::default() };
    platform.marketplace(Some("bob")).await.acquire_listing(acquire).await.unwrap();
    for reader in ["carol", "dave", "bob"] {
        let mut client = platform.assets(Some(reader)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.get_asset_version(apb::GetAssetVersionRequest { name: version.clone() }).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "{reader}'s grant did not arrive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let mut uploads = platform.uploads(Some("alice")).await;
    let next = format!("rooms,price\n{},120\n", uuid::Uuid::now_v7()).into_bytes();
    let file = apb::UploadFile {
        path: "next.csv".into(),
        size_bytes: next.len() as i64,
        sha256: sha256(&next),
        ..Default::default()
    };
    let request = apb::CreateUploadRequest { parent: asset.clone(), files: vec![file], ..Default::default() };
    let upload = uploads.create_upload(request).await.unwrap().into_inner().name;
    let mut etag = String::new();
    match rpc {
        "AssetService/UndeleteAsset" | "AssetService/PurgeAsset" => {
            let archived = assets.delete_asset(apb::DeleteAssetRequest { name: asset.clone(), etag: String::new() });
            etag = archived.await.unwrap().into_inner().etag;
        }
        "AssetService/UndeleteAssetVersion" => {
            assets.delete_asset_version(apb::DeleteAssetVersionRequest { name: version.clone() }).await.unwrap();
        }
        "UploadService/CommitUpload" => {
            uploads.write_upload_chunk(chunk(&upload, &next)).await.unwrap();
        }
        _ => {}
    }
    Fixture { asset, version, upload, etag, next }
}

fn chunk(upload: &str, data: &[u8]) -> apb::WriteUploadChunkRequest {
    apb::WriteUploadChunkRequest {
        upload: upload.into(),
        path: "next.csv".into(),
        offset: 0,
        data: data.to_vec().into(),
    }
}

type Assets = AssetServiceClient<InterceptedService<Channel, Bearer>>;
type Uploads = UploadServiceClient<InterceptedService<Channel, Bearer>>;

async fn call(rpc: &str, f: &Fixture, assets: &mut Assets, uploads: &mut Uploads) -> Code {
    let (asset, version, upload) = (f.asset.clone(), f.version.clone(), f.upload.clone());
    let result = match rpc.split('/').nth(1).unwrap() {
        "CreateAsset" => assets
            .create_asset(apb::CreateAssetRequest {
                asset: Some(apb::Asset {
                    kind: apb::AssetKind::Model as i32,
                    display_name: "mine".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        "GetAsset" => assets.get_asset(apb::GetAssetRequest { name: asset }).await.map(drop),
        "ListAssets" => assets.list_assets(apb::ListAssetsRequest::default()).await.map(drop),
        "UpdateAsset" => assets
            .update_asset(apb::UpdateAssetRequest {
                asset: Some(apb::Asset { name: asset, display_name: "renamed".into(), ..Default::default() }),
                update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
            })
            .await
            .map(drop),
        "DeleteAsset" => {
            assets.delete_asset(apb::DeleteAssetRequest { name: asset, etag: String::new() }).await.map(drop)
        }
        "UndeleteAsset" => assets.undelete_asset(apb::UndeleteAssetRequest { name: asset }).await.map(drop),
        "PurgeAsset" => {
            assets.purge_asset(apb::PurgeAssetRequest { name: asset, etag: f.etag.clone() }).await.map(drop)
        }
        "GetAssetVersion" => assets.get_asset_version(apb::GetAssetVersionRequest { name: version }).await.map(drop),
        "ListAssetVersions" => assets
            .list_asset_versions(apb::ListAssetVersionsRequest { parent: asset, ..Default::default() })
            .await
            .map(drop),
        "UpdateAssetVersion" => assets
            .update_asset_version(apb::UpdateAssetVersionRequest {
                asset_version: Some(apb::AssetVersion {
                    name: version,
                    description: "checked".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask { paths: vec!["description".into()] }),
            })
            .await
            .map(drop),
        "DeleteAssetVersion" => {
            assets.delete_asset_version(apb::DeleteAssetVersionRequest { name: version }).await.map(drop)
        }
        "UndeleteAssetVersion" => {
            assets.undelete_asset_version(apb::UndeleteAssetVersionRequest { name: version }).await.map(drop)
        }
        "SetVersionAlias" => assets
            .set_version_alias(apb::SetVersionAliasRequest { name: version, alias: "staging".into(), protected: false })
            .await
            .map(drop),
        "DeleteVersionAlias" => {
            assets.delete_version_alias(apb::DeleteVersionAliasRequest { asset, alias: "prod".into() }).await.map(drop)
        }
        "CollectGarbage" => assets.collect_garbage(apb::CollectGarbageRequest { dry_run: true }).await.map(drop),
        "CreateUpload" => uploads
            .create_upload(apb::CreateUploadRequest {
                parent: asset,
                files: vec![apb::UploadFile {
                    path: "other.csv".into(),
                    size_bytes: DATA.len() as i64,
                    sha256: sha256(DATA),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .map(drop),
        "GetUpload" => uploads.get_upload(apb::GetUploadRequest { name: upload }).await.map(drop),
        "WriteUpload" => {
            let frame =
                apb::WriteUploadRequest { upload, path: "next.csv".into(), offset: 0, data: f.next.clone().into() };
            uploads.write_upload(tokio_stream::iter([frame])).await.map(drop)
        }
        "WriteUploadChunk" => uploads.write_upload_chunk(chunk(&upload, &f.next)).await.map(drop),
        "CommitUpload" => uploads.commit_upload(apb::CommitUploadRequest { name: upload }).await.map(drop),
        "CancelUpload" => uploads.cancel_upload(apb::CancelUploadRequest { name: upload }).await.map(drop),
        "FindMissingBlobs" => {
            uploads.find_missing_blobs(apb::FindMissingBlobsRequest { sha256: vec![sha256(&f.next)] }).await.map(drop)
        }
        "ReadFile" => {
            let request = apb::ReadFileRequest { version, path: "train.csv".into(), offset: 0, length: 0 };
            match uploads.read_file(request).await {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut read = Ok(());
                    loop {
                        match stream.message().await {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(status) => {
                                read = Err(status);
                                break;
                            }
                        }
                    }
                    read
                }
                Err(status) => Err(status),
            }
        }
        other => panic!("no call for {other}"),
    };
    result.err().map_or(Code::Ok, |status| status.code())
}

fn served_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(highwind_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "highwind.asset.v1")
        .flat_map(|f| f.service.iter())
        .filter(|s| s.name() != "ImageService")
        .flat_map(|s| s.method.iter().map(move |m| format!("{}/{}", s.name(), m.name())))
        .collect()
}

async fn every_asset_rpc_answers_every_kind_of_caller_as_declared(platform: Platform) {
    let covered: BTreeSet<String> = MATRIX.iter().map(|(rpc, _)| (*rpc).to_owned()).collect();
    assert_eq!(covered, served_methods(), "the matrix names every asset and upload RPC exactly once");
    let mut failures = Vec::new();
    for (rpc, expected) in MATRIX {
        for ((role, user), want) in CALLERS.iter().zip(expected) {
            let f = fixture(&platform, rpc).await;
            let mut assets = platform.assets(*user).await;
            let mut uploads = platform.uploads(*user).await;
            let got = call(rpc, &f, &mut assets, &mut uploads).await;
            if got != want {
                failures.push(format!("{rpc} as {role}: expected {want:?}, got {got:?}"));
            }
            // Each cell opens an upload for alice: closing it keeps her within her quota of open uploads.
            let mut owner = platform.uploads(Some("alice")).await;
            let _ = owner.cancel_upload(apb::CancelUploadRequest { name: f.upload.clone() }).await;
        }
    }
    assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
    platform.stop().await;
}
