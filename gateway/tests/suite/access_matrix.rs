//! The authorization matrix: every UseCaseService and MarketplaceService RPC × {owner, editor, viewer, buyer,
//! stranger, anonymous}, through the gateway with real tokens from the embedded issuer, on SQLite and PostgreSQL.
//! Each cell runs against a fresh use case, so one caller's success cannot change what the next one sees.
//! Private use cases stay invisible: strangers and buyers get NOT_FOUND, never PERMISSION_DENIED.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use highwind_proto::usecase::v1::{
    self as pb, marketplace_service_client::MarketplaceServiceClient, use_case_service_client::UseCaseServiceClient,
};
use prost::Message;
use prost_types::FieldMask;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

on_both_backends!(every_rpc_answers_every_kind_of_caller_as_declared);

use Code::{FailedPrecondition as FP, NotFound as NF, Ok as OK, PermissionDenied as PD, Unauthenticated as UA};

use crate::support::{Bearer, CALLERS, Platform};

/// Expected outcome per RPC, in the order of [`CALLERS`].
const MATRIX: [(&str, [Code; 6]); 29] = [
    ("UseCaseService/CreateUseCase", [OK, OK, OK, OK, OK, UA]),
    ("UseCaseService/GetUseCase", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/ListUseCases", [OK, OK, OK, OK, OK, UA]),
    ("UseCaseService/UpdateUseCase", [OK, OK, PD, NF, NF, UA]),
    ("UseCaseService/DeleteUseCase", [OK, PD, PD, NF, NF, UA]),
    ("UseCaseService/UndeleteUseCase", [OK, PD, PD, NF, NF, UA]),
    ("UseCaseService/CreateMember", [OK, PD, PD, NF, NF, UA]),
    ("UseCaseService/GetMember", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/ListMembers", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/UpdateMember", [OK, PD, PD, NF, NF, UA]),
    ("UseCaseService/DeleteMember", [OK, PD, PD, NF, NF, UA]),
    ("UseCaseService/CreateAssetLink", [OK, OK, PD, NF, NF, UA]),
    ("UseCaseService/GetAssetLink", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/ListAssetLinks", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/SwapAssetLink", [OK, OK, PD, NF, NF, UA]),
    ("UseCaseService/DeleteAssetLink", [OK, OK, PD, NF, NF, UA]),
    ("UseCaseService/CreateRelease", [OK, OK, PD, NF, NF, UA]),
    ("UseCaseService/GetRelease", [OK, OK, OK, OK, NF, UA]),
    ("UseCaseService/ListReleases", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/DiffReleases", [OK, OK, OK, NF, NF, UA]),
    ("UseCaseService/PublishUseCase", [OK, PD, PD, NF, NF, UA]),
    ("UseCaseService/UnpublishUseCase", [OK, PD, PD, NF, NF, UA]),
    ("MarketplaceService/GetListing", [OK, OK, OK, OK, OK, UA]),
    ("MarketplaceService/ListListings", [OK, OK, OK, OK, OK, UA]),
    ("MarketplaceService/SearchListings", [OK, OK, OK, OK, OK, UA]),
    ("MarketplaceService/AcquireListing", [FP, FP, FP, OK, OK, UA]),
    ("MarketplaceService/GetEntitlement", [OK, NF, NF, OK, NF, UA]),
    ("MarketplaceService/ListEntitlements", [OK, OK, OK, OK, OK, UA]),
    ("MarketplaceService/ForkRelease", [OK, OK, OK, OK, NF, UA]),
];

/// A published use case of alice's: carol edits, dave and zed view, one link, one release, bought by bob.
struct Fixture {
    use_case: pb::UseCase,
    viewer: pb::Member,
    other_member: pb::Member,
    link: pb::AssetLink,
    release: pb::Release,
    listing: pb::Listing,
    entitlement: pb::Entitlement,
    dataset: String,
}

type UseCases = UseCaseServiceClient<InterceptedService<Channel, Bearer>>;
type Market = MarketplaceServiceClient<InterceptedService<Channel, Bearer>>;

async fn fixture(platform: &Platform, dataset: &str, archived: bool) -> Fixture {
    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = alice
        .create_use_case(pb::CreateUseCaseRequest {
            use_case: Some(pb::UseCase {
                display_name: "House price prediction".into(),
                description: "California housing".into(),
                model_card: "## Model".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut add = async |principal: &str, role: pb::MemberRole| {
        alice
            .create_member(pb::CreateMemberRequest {
                parent: use_case.name.clone(),
                member: Some(pb::Member { principal: principal.into(), role: role as i32, ..Default::default() }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    add("users/carol", pb::MemberRole::Editor).await;
    let viewer = add("users/dave", pb::MemberRole::Viewer).await;
    let other_member = add("users/zed", pb::MemberRole::Viewer).await;
    let link = alice
        .create_asset_link(pb::CreateAssetLinkRequest {
            parent: use_case.name.clone(),
            asset_link: Some(pb::AssetLink {
                asset: dataset.into(),
                role: pb::AssetLinkRole::Dataset as i32,
                version: Some(pb::asset_link::Version::PinnedVersionNumber(1)),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let release = alice
        .create_release(pb::CreateReleaseRequest {
            parent: use_case.name.clone(),
            release: Some(pb::Release::default()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let listing = alice
        .publish_use_case(pb::PublishUseCaseRequest {
            name: use_case.name.clone(),
            release: release.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .listing
        .unwrap();
    let entitlement = platform
        .marketplace(Some("bob"))
        .await
        .acquire_listing(pb::AcquireListingRequest { name: listing.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    if archived {
        alice
            .delete_use_case(pb::DeleteUseCaseRequest { name: use_case.name.clone(), etag: String::new() })
            .await
            .unwrap();
    }
    Fixture { use_case, viewer, other_member, link, release, listing, entitlement, dataset: dataset.into() }
}

/// Calls `rpc` on `f` with the clients of one caller; the status code it answers.
async fn call(rpc: &str, f: &Fixture, uc: &mut UseCases, market: &mut Market) -> Code {
    let name = f.use_case.name.clone();
    let result = match rpc.split('/').nth(1).unwrap() {
        "CreateUseCase" => uc
            .create_use_case(pb::CreateUseCaseRequest {
                use_case: Some(pb::UseCase { display_name: "mine".into(), ..Default::default() }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        "GetUseCase" => uc.get_use_case(pb::GetUseCaseRequest { name }).await.map(drop),
        "ListUseCases" => uc.list_use_cases(pb::ListUseCasesRequest::default()).await.map(drop),
        "UpdateUseCase" => uc
            .update_use_case(pb::UpdateUseCaseRequest {
                use_case: Some(pb::UseCase { name, version_label: "v2".into(), ..Default::default() }),
                update_mask: Some(FieldMask { paths: vec!["version_label".into()] }),
            })
            .await
            .map(drop),
        "DeleteUseCase" => uc.delete_use_case(pb::DeleteUseCaseRequest { name, etag: String::new() }).await.map(drop),
        "UndeleteUseCase" => {
            uc.undelete_use_case(pb::UndeleteUseCaseRequest { name, etag: String::new() }).await.map(drop)
        }
        "CreateMember" => uc
            .create_member(pb::CreateMemberRequest {
                parent: name,
                member: Some(pb::Member {
                    principal: "users/newcomer".into(),
                    role: pb::MemberRole::Viewer as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        "GetMember" => uc.get_member(pb::GetMemberRequest { name: f.viewer.name.clone() }).await.map(drop),
        "ListMembers" => uc.list_members(pb::ListMembersRequest { parent: name, ..Default::default() }).await.map(drop),
        "UpdateMember" => uc
            .update_member(pb::UpdateMemberRequest {
                member: Some(pb::Member {
                    name: f.other_member.name.clone(),
                    role: pb::MemberRole::Editor as i32,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask { paths: vec!["role".into()] }),
            })
            .await
            .map(drop),
        "DeleteMember" => uc
            .delete_member(pb::DeleteMemberRequest { name: f.other_member.name.clone(), etag: String::new() })
            .await
            .map(drop),
        "CreateAssetLink" => uc
            .create_asset_link(pb::CreateAssetLinkRequest {
                parent: name,
                asset_link: Some(pb::AssetLink {
                    asset: f.dataset.clone(),
                    role: pb::AssetLinkRole::App as i32,
                    version: Some(pb::asset_link::Version::Alias("latest".into())),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        "GetAssetLink" => uc.get_asset_link(pb::GetAssetLinkRequest { name: f.link.name.clone() }).await.map(drop),
        "ListAssetLinks" => {
            uc.list_asset_links(pb::ListAssetLinksRequest { parent: name, ..Default::default() }).await.map(drop)
        }
        "SwapAssetLink" => uc
            .swap_asset_link(pb::SwapAssetLinkRequest {
                name: f.link.name.clone(),
                asset: String::new(),
                version: Some(pb::swap_asset_link_request::Version::Alias("latest".into())),
                etag: String::new(),
            })
            .await
            .map(drop),
        "DeleteAssetLink" => uc
            .delete_asset_link(pb::DeleteAssetLinkRequest { name: f.link.name.clone(), etag: String::new() })
            .await
            .map(drop),
        "CreateRelease" => uc
            .create_release(pb::CreateReleaseRequest {
                parent: name,
                release: Some(pb::Release::default()),
                request_id: String::new(),
            })
            .await
            .map(drop),
        "GetRelease" => uc.get_release(pb::GetReleaseRequest { name: f.release.name.clone() }).await.map(drop),
        "ListReleases" => {
            uc.list_releases(pb::ListReleasesRequest { parent: name, ..Default::default() }).await.map(drop)
        }
        "DiffReleases" => uc
            .diff_releases(pb::DiffReleasesRequest {
                base_release: f.release.name.clone(),
                target_release: f.release.name.clone(),
                include_unchanged: false,
            })
            .await
            .map(drop),
        "PublishUseCase" => uc
            .publish_use_case(pb::PublishUseCaseRequest { name, release: f.release.name.clone(), etag: String::new() })
            .await
            .map(drop),
        "UnpublishUseCase" => {
            uc.unpublish_use_case(pb::UnpublishUseCaseRequest { name, etag: String::new() }).await.map(drop)
        }
        "GetListing" => market.get_listing(pb::GetListingRequest { name: f.listing.name.clone() }).await.map(drop),
        "ListListings" => market.list_listings(pb::ListListingsRequest::default()).await.map(drop),
        "SearchListings" => market
            .search_listings(pb::SearchListingsRequest { query: "house".into(), ..Default::default() })
            .await
            .map(drop),
        "AcquireListing" => market
            .acquire_listing(pb::AcquireListingRequest { name: f.listing.name.clone(), ..Default::default() })
            .await
            .map(drop),
        "GetEntitlement" => {
            market.get_entitlement(pb::GetEntitlementRequest { name: f.entitlement.name.clone() }).await.map(drop)
        }
        "ListEntitlements" => market
            .list_entitlements(pb::ListEntitlementsRequest {
                filter: format!("listing = \"{}\"", f.listing.name),
                ..Default::default()
            })
            .await
            .map(drop),
        "ForkRelease" => market
            .fork_release(pb::ForkReleaseRequest { release: f.release.name.clone(), ..Default::default() })
            .await
            .map(drop),
        other => panic!("no call for {other}"),
    };
    result.err().map_or(Code::Ok, |status| status.code())
}

/// The methods of the two services, as `Service/Method`, from the descriptor set the server reflects.
fn served_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(highwind_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "highwind.usecase.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| s.method.iter().map(move |m| format!("{}/{}", s.name(), m.name())))
        .collect()
}

async fn every_rpc_answers_every_kind_of_caller_as_declared(platform: Platform) {
    let covered: BTreeSet<String> = MATRIX.iter().map(|(rpc, _)| (*rpc).to_owned()).collect();
    assert_eq!(covered, served_methods(), "the matrix names every RPC exactly once");

    let dataset = platform.push_version("alice", None, b"rooms,price\n3,100\n").await;
    let mut failures = Vec::new();
    for (rpc, expected) in MATRIX {
        for ((role, user), want) in CALLERS.iter().zip(expected) {
            let f = fixture(&platform, &dataset, rpc.ends_with("/UndeleteUseCase")).await;
            let mut uc = platform.use_cases(*user).await;
            let mut market = platform.marketplace(*user).await;
            let got = call(rpc, &f, &mut uc, &mut market).await;
            if got != want {
                failures.push(format!("{rpc} as {role}: expected {want:?}, got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
    platform.stop().await;
}
