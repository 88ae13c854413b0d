//! Publishing, searching, acquiring and forking through the gateway, on SQLite and PostgreSQL: sellers publish a
//! release, buyers find and acquire it once, strangers see nothing of withdrawn listings, bad input changes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::usecase::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::Platform;

on_both_backends!(
    a_published_release_is_found_acquired_once_and_survives_unpublishing,
    publishing_needs_an_owner_a_release_a_description_and_a_model_card,
    search_and_list_page_through_listings_in_order,
    bad_marketplace_requests_are_refused_and_change_nothing,
    members_fork_a_release_into_a_use_case_of_their_own,
);

fn use_case(name: &str, units: i64) -> pb::UseCase {
    pb::UseCase {
        display_name: name.into(),
        description: "California housing, 1990 census".into(),
        model_card: "## Model\nA gradient-boosted regressor.".into(),
        version_label: "v1.2".into(),
        price: Some(pb::Money { currency_code: if units > 0 { "USD".into() } else { String::new() }, units, nanos: 0 }),
        labels: [("domain".to_owned(), "real-estate".to_owned())].into_iter().collect(),
        ..Default::default()
    }
}

type UseCases = highwind_proto::usecase::v1::use_case_service_client::UseCaseServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::support::Bearer>,
>;

/// A use case of `owner` linking a fresh dataset (pinned to version 1), with one release; returns both.
async fn released(platform: &Platform, owner: &str, use_case: pb::UseCase) -> (pb::UseCase, pb::Release) {
    let dataset = platform.push_version(owner, None, b"rooms,price\n3,100\n").await;
    let mut client = platform.use_cases(Some(owner)).await;
    let created = client
        .create_use_case(pb::CreateUseCaseRequest { use_case: Some(use_case), request_id: String::new() })
        .await
        .unwrap()
        .into_inner();
    let link = pb::AssetLink {
        asset: dataset,
        role: pb::AssetLinkRole::Dataset as i32,
        version: Some(pb::asset_link::Version::PinnedVersionNumber(1)),
        ..Default::default()
    };
    client
        .create_asset_link(pb::CreateAssetLinkRequest {
            parent: created.name.clone(),
            asset_link: Some(link),
            request_id: String::new(),
        })
        .await
        .expect("link");
    let release = client
        .create_release(pb::CreateReleaseRequest {
            parent: created.name.clone(),
            release: Some(pb::Release { description: "first".into(), ..Default::default() }),
            request_id: String::new(),
        })
        .await
        .expect("release")
        .into_inner();
    (created, release)
}

async fn publish(
    client: &mut UseCases,
    use_case: &str,
    release: &str,
) -> Result<pb::PublishUseCaseResponse, tonic::Status> {
    client
        .publish_use_case(pb::PublishUseCaseRequest {
            name: use_case.into(),
            release: release.into(),
            etag: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn search(query: &str, filter: &str) -> pb::SearchListingsRequest {
    pb::SearchListingsRequest { query: query.into(), filter: filter.into(), ..Default::default() }
}

fn acquire(listing: &str) -> pb::AcquireListingRequest {
    pb::AcquireListingRequest { name: listing.into(), ..Default::default() }
}

async fn a_published_release_is_found_acquired_once_and_survives_unpublishing(platform: Platform) {
    let (created, release) = released(&platform, "alice", use_case("House price prediction", 49)).await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let published = publish(&mut alice, &created.name, &release.name).await.expect("publish");
    let (shown, listing) = (published.use_case.unwrap(), published.listing.unwrap());
    assert!(shown.published);
    assert_eq!(shown.published_release, release.name);
    assert_eq!(shown.latest_release, release.name);
    assert_eq!(shown.listing, listing.name);
    assert_eq!(listing.state, pb::ListingState::Active as i32);
    assert_eq!(listing.release, release.name);
    assert_eq!(listing.seller, "users/alice");
    assert_eq!(listing.price.as_ref().map(|p| (p.currency_code.as_str(), p.units)), Some(("USD", 49)));
    assert_eq!(listing.content.as_ref().unwrap().display_name, "House price prediction");
    let again = publish(&mut alice, &created.name, &release.name).await.expect("publishing again");
    assert_eq!(again.listing.unwrap(), listing, "publishing the same release and price changes nothing");

    let mut bob_market = platform.marketplace(Some("bob")).await;
    for (query, filter, found) in [
        ("house pri", "", true),
        ("HOUSE", "labels.domain = \"real-estate\"", true),
        ("gradient", "seller = \"users/alice\"", true),
        ("ouse", "", false),
        ("house", "labels.domain = \"energy\"", false),
        ("house", "free = true", false),
        ("", "price.currency_code = \"USD\"", true),
    ] {
        let page = bob_market.search_listings(search(query, filter)).await.expect("search").into_inner();
        let names: Vec<_> = page.listings.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names == [listing.name.as_str()], found, "query {query:?} filter {filter:?} found {names:?}");
    }

    let cheaper = pb::AcquireListingRequest {
        expected_price: Some(pb::Money { currency_code: "USD".into(), units: 10, nanos: 0 }),
        ..acquire(&listing.name)
    };
    let refused = bob_market.acquire_listing(cheaper).await.expect_err("price changed");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let failure = refused.get_details_precondition_failure().expect("precondition failure");
    assert_eq!(failure.violations[0].subject, "expected_price");
    let none = bob_market.list_entitlements(pb::ListEntitlementsRequest::default()).await.unwrap().into_inner();
    assert!(none.entitlements.is_empty(), "a refused acquisition records nothing");

    let first = pb::AcquireListingRequest {
        request_id: "checkout-1".into(),
        expected_release: release.name.clone(),
        expected_price: listing.price.clone(),
        ..acquire(&listing.name)
    };
    let entitlement = bob_market.acquire_listing(first.clone()).await.expect("acquire").into_inner();
    assert_eq!(entitlement.buyer, "users/bob");
    assert_eq!(entitlement.seller, "users/alice");
    assert_eq!(entitlement.release, release.name);
    assert_eq!(entitlement.price_paid, listing.price);
    assert!(entitlement.payment_reference.starts_with("ledger/"), "{}", entitlement.payment_reference);
    assert_eq!(bob_market.acquire_listing(first).await.unwrap().into_inner(), entitlement, "retry");
    assert_eq!(bob_market.acquire_listing(acquire(&listing.name)).await.unwrap().into_inner(), entitlement, "twice");
    let held = bob_market.list_entitlements(pb::ListEntitlementsRequest::default()).await.unwrap().into_inner();
    assert_eq!(held.entitlements, std::slice::from_ref(&entitlement), "one entitlement");
    let seen = bob_market.get_listing(pb::GetListingRequest { name: listing.name.clone() }).await.unwrap().into_inner();
    assert_eq!(seen.caller_entitlement, entitlement.name);

    let mut bob = platform.use_cases(Some("bob")).await;
    let bought = bob.get_release(pb::GetReleaseRequest { name: release.name.clone() }).await.expect("buyer reads");
    assert_eq!(bought.into_inner(), release);
    let private = bob.get_use_case(pb::GetUseCaseRequest { name: created.name.clone() }).await;
    assert_eq!(private.expect_err("buyers do not read the use case").code(), Code::NotFound);

    let mut alice_market = platform.marketplace(Some("alice")).await;
    let own = alice_market.acquire_listing(acquire(&listing.name)).await.expect_err("own listing");
    assert_eq!(own.code(), Code::FailedPrecondition);
    let sold = alice_market
        .list_entitlements(pb::ListEntitlementsRequest {
            filter: format!("listing = \"{}\"", listing.name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sold.entitlements, std::slice::from_ref(&entitlement), "the seller sees every buyer");
    let by_seller = pb::GetEntitlementRequest { name: entitlement.name.clone() };
    assert_eq!(alice_market.get_entitlement(by_seller.clone()).await.unwrap().into_inner(), entitlement);
    let mut carol_market = platform.marketplace(Some("carol")).await;
    let hidden = carol_market.get_entitlement(by_seller).await.expect_err("not carol's");
    assert_eq!(hidden.code(), Code::NotFound);
    let carols = carol_market
        .list_entitlements(pb::ListEntitlementsRequest {
            filter: format!("listing = \"{}\"", listing.name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(carols.entitlements.is_empty(), "a stranger sees no buyers");

    let withdrawn = alice
        .unpublish_use_case(pb::UnpublishUseCaseRequest { name: created.name.clone(), etag: String::new() })
        .await
        .expect("unpublish")
        .into_inner();
    assert!(!withdrawn.use_case.as_ref().unwrap().published);
    let withdrawn = withdrawn.listing.unwrap();
    assert_eq!(withdrawn.state, pb::ListingState::Withdrawn as i32);
    assert!(withdrawn.withdraw_time.is_some());
    assert!(carol_market.search_listings(search("house", "")).await.unwrap().into_inner().listings.is_empty());
    let gone = carol_market.get_listing(pb::GetListingRequest { name: listing.name.clone() }).await;
    assert_eq!(gone.expect_err("withdrawn is private").code(), Code::NotFound);
    let late = carol_market.acquire_listing(acquire(&listing.name)).await.expect_err("withdrawn");
    assert_eq!(late.code(), Code::NotFound);
    let kept = bob_market.get_listing(pb::GetListingRequest { name: listing.name.clone() }).await.expect("buyer sees");
    assert_eq!(kept.into_inner().state, pb::ListingState::Withdrawn as i32);
    assert_eq!(bob_market.acquire_listing(acquire(&listing.name)).await.unwrap().into_inner(), entitlement);
    let mine = bob_market
        .list_listings(pb::ListListingsRequest { show_withdrawn: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.listings.len(), 1, "buyers list the withdrawn listing they bought from");
    assert!(bob.get_release(pb::GetReleaseRequest { name: release.name.clone() }).await.is_ok(), "still readable");
    platform.stop().await;
}

async fn publishing_needs_an_owner_a_release_a_description_and_a_model_card(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let bare = pb::UseCase { description: String::new(), model_card: String::new(), ..use_case("Bare", 0) };
    let created = alice
        .create_use_case(pb::CreateUseCaseRequest { use_case: Some(bare), request_id: String::new() })
        .await
        .unwrap()
        .into_inner();
    let no_release = publish(&mut alice, &created.name, "").await.expect_err("no release");
    assert_eq!(no_release.code(), Code::FailedPrecondition);
    let release = alice
        .create_release(pb::CreateReleaseRequest {
            parent: created.name.clone(),
            release: Some(pb::Release::default()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let empty = publish(&mut alice, &created.name, &release.name).await.expect_err("no description, no card");
    assert_eq!(empty.code(), Code::FailedPrecondition);
    let subjects: Vec<_> = empty
        .get_details_precondition_failure()
        .expect("precondition failure")
        .violations
        .into_iter()
        .map(|v| v.subject)
        .collect();
    assert_eq!(
        subjects,
        [format!("{}.snapshot.description", release.name), format!("{}.snapshot.model_card", release.name)]
    );

    let (other, other_release) = released(&platform, "alice", use_case("Other", 0)).await;
    let foreign = publish(&mut alice, &created.name, &other_release.name).await.expect_err("not this use case's");
    assert_eq!(foreign.code(), Code::NotFound);
    alice
        .create_member(pb::CreateMemberRequest {
            parent: other.name.clone(),
            member: Some(pb::Member {
                principal: "users/bob".into(),
                role: pb::MemberRole::Editor as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("add editor");
    let mut bob = platform.use_cases(Some("bob")).await;
    let editor = publish(&mut bob, &other.name, &other_release.name).await.expect_err("editors do not publish");
    assert_eq!(editor.code(), Code::PermissionDenied);
    let mut carol = platform.use_cases(Some("carol")).await;
    let stranger = publish(&mut carol, &other.name, &other_release.name).await.expect_err("stranger");
    assert_eq!(stranger.code(), Code::NotFound);
    let mut anonymous = platform.use_cases(None).await;
    let nobody = publish(&mut anonymous, &other.name, &other_release.name).await.expect_err("anonymous");
    assert_eq!(nobody.code(), Code::Unauthenticated);
    let stale = alice
        .publish_use_case(pb::PublishUseCaseRequest {
            name: other.name.clone(),
            release: other_release.name.clone(),
            etag: "\"stale\"".into(),
        })
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::FailedPrecondition);

    for name in [&created.name, &other.name] {
        let after = alice.get_use_case(pb::GetUseCaseRequest { name: name.clone() }).await.unwrap().into_inner();
        assert!(!after.published && after.listing.is_empty(), "a refused publish changes nothing");
    }
    let market = platform.marketplace(Some("dave")).await.search_listings(search("", "")).await.unwrap();
    assert!(market.into_inner().listings.is_empty());
    platform.stop().await;
}

async fn search_and_list_page_through_listings_in_order(platform: Platform) {
    let names = ["delta", "Alpha", "echo", "charlie", "Bravo", "golf", "foxtrot"];
    let mut alice = platform.use_cases(Some("alice")).await;
    for name in names {
        let (created, release) = released(&platform, "alice", use_case(&format!("{name} forecaster"), 0)).await;
        publish(&mut alice, &created.name, &release.name).await.expect("publish");
    }
    let mut bob = platform.marketplace(Some("bob")).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = bob
            .search_listings(pb::SearchListingsRequest {
                query: "forecaster".into(),
                order_by: "content.display_name".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        seen.extend(page.listings.into_iter().map(|l| l.content.unwrap().display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected: Vec<_> = names.iter().map(|n| format!("{n} forecaster")).collect();
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!((pages, seen), (3, expected), "sorted case-insensitively, none missing or repeated");

    let newest = bob
        .list_listings(pb::ListListingsRequest {
            filter: "seller = \"users/alice\" AND state = ACTIVE".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shown: Vec<_> = newest.listings.iter().map(|l| l.content.clone().unwrap().display_name).collect();
    assert_eq!(shown, ["foxtrot forecaster", "golf forecaster"], "newest publish first");
    let foreign = bob
        .list_listings(pb::ListListingsRequest {
            filter: "seller = \"users/bob\"".into(),
            page_token: newest.next_page_token,
            ..Default::default()
        })
        .await
        .expect_err("a token is bound to its filter");
    assert_eq!(foreign.code(), Code::InvalidArgument);

    let free = bob.search_listings(search("alpha", "free = true")).await.unwrap().into_inner().listings;
    let entitlement = bob.acquire_listing(acquire(&free[0].name)).await.expect("free").into_inner();
    assert!(entitlement.payment_reference.is_empty(), "free listings need no payment");
    assert_eq!(entitlement.price_paid.map(|p| (p.units, p.nanos)), Some((0, 0)));
    platform.stop().await;
}

async fn bad_marketplace_requests_are_refused_and_change_nothing(platform: Platform) {
    let (created, release) = released(&platform, "alice", use_case("House price prediction", 5)).await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let listing = publish(&mut alice, &created.name, &release.name).await.unwrap().listing.unwrap();
    let mut bob = platform.marketplace(Some("bob")).await;
    let field_of = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.get_details_bad_request().expect("bad request").field_violations[0].field.clone()
    };
    let long = "house ".repeat(50);
    let cases: Vec<(pb::SearchListingsRequest, &str)> = vec![
        (search(&long, ""), "query"),
        (search("", "price > 3"), "filter"),
        (search("", "labels.Bad Key = x"), "filter"),
        (pb::SearchListingsRequest { order_by: "create_time".into(), ..search("", "") }, "order_by"),
        (pb::SearchListingsRequest { page_size: -1, ..search("", "") }, "page_size"),
        (pb::SearchListingsRequest { page_token: "forged.token".into(), ..search("", "") }, "page_token"),
    ];
    for (request, field) in cases {
        assert_eq!(field_of(bob.search_listings(request).await.expect_err("refused")), field);
    }
    let acquisitions: Vec<(pb::AcquireListingRequest, &str)> = vec![
        (acquire("listings/nope"), "name"),
        (acquire(&created.name), "name"),
        (pb::AcquireListingRequest { request_id: "x".repeat(129), ..acquire(&listing.name) }, "request_id"),
        (
            pb::AcquireListingRequest { expected_release: "releases/1".into(), ..acquire(&listing.name) },
            "expected_release",
        ),
    ];
    for (request, field) in acquisitions {
        assert_eq!(field_of(bob.acquire_listing(request).await.expect_err("refused")), field);
    }
    let missing = bob.acquire_listing(acquire(&format!("listings/{}", uuid_like()))).await.expect_err("missing");
    assert_eq!(missing.code(), Code::NotFound);
    let stale_release = pb::AcquireListingRequest {
        expected_release: format!("{}/releases/9", created.name),
        ..acquire(&listing.name)
    };
    let moved = bob.acquire_listing(stale_release).await.expect_err("another release");
    assert_eq!(moved.code(), Code::FailedPrecondition);
    let bad_filter = bob
        .list_entitlements(pb::ListEntitlementsRequest {
            filter: "buyer = \"users/alice\"".into(),
            ..Default::default()
        })
        .await
        .expect_err("no buyer filter");
    assert_eq!(field_of(bad_filter), "filter");
    let held = bob.list_entitlements(pb::ListEntitlementsRequest::default()).await.unwrap().into_inner();
    assert!(held.entitlements.is_empty(), "nothing was acquired");
    let anonymous = platform.marketplace(None).await.search_listings(search("", "")).await.expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    platform.stop().await;
}

fn uuid_like() -> &'static str {
    "0190a6f4-0000-7000-8000-000000000000"
}

async fn members_fork_a_release_into_a_use_case_of_their_own(platform: Platform) {
    let (created, release) = released(&platform, "alice", use_case("House price prediction", 49)).await;
    let mut market = platform.marketplace(Some("alice")).await;
    let fork = market
        .fork_release(pb::ForkReleaseRequest {
            release: release.name.clone(),
            display_name: "My house prices".into(),
            request_id: "fork-1".into(),
        })
        .await
        .expect("fork")
        .into_inner();
    assert_ne!(fork.name, created.name);
    assert_eq!(fork.display_name, "My house prices");
    assert_eq!(fork.forked_from_release, release.name);
    assert_eq!(fork.model_card, created.model_card);
    assert!(!fork.published && fork.latest_release.is_empty());
    assert_eq!(fork.price.as_ref().map(|p| p.units), Some(0), "a fork starts free");
    let retry = market
        .fork_release(pb::ForkReleaseRequest {
            release: release.name.clone(),
            display_name: "My house prices".into(),
            request_id: "fork-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.name, fork.name, "same request_id, same fork");
    let mut alice = platform.use_cases(Some("alice")).await;
    let links = alice
        .list_asset_links(pb::ListAssetLinksRequest { parent: fork.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .asset_links;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].asset, release.links[0].asset);
    assert_eq!(links[0].version, Some(pb::asset_link::Version::PinnedVersionNumber(1)));

    let stranger = platform
        .marketplace(Some("carol"))
        .await
        .fork_release(pb::ForkReleaseRequest { release: release.name.clone(), ..Default::default() })
        .await
        .expect_err("strangers cannot fork");
    assert_eq!(stranger.code(), Code::NotFound);
    let carols = platform.use_cases(Some("carol")).await.list_use_cases(pb::ListUseCasesRequest::default()).await;
    assert!(carols.unwrap().into_inner().use_cases.is_empty(), "nothing created");
    platform.stop().await;
}
