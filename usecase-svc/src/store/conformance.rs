//! One suite for every backend: `store::conformance::sqlite::<check>` and `…::postgres::<check>`.

use chrono::Utc;
use highwind_common::db::{Database, testing::conformance};

use super::{LinkAdd, LinkUpdate, MemberAdd, Stores, market::EntitlementQuery};
use crate::domain::{
    link::{AssetLink, LinkRole, Selector},
    market::{Charge, Entitlement, Listing, ListingFilter, ListingOrder, ListingQuery},
    member::{Change, Member},
    release::{FrozenLink, Release, Snapshot},
    role::Role,
    use_case::{Money, UseCase, UseCaseDraft, UseCaseField},
};

/// What the checks test: the migrated stores of `db`.
async fn stores(db: Database) -> Stores {
    crate::store::open(db).await.expect("migrate")
}

conformance!(
    open: stores;
    the_creator_owns_what_it_creates_once_per_request_id,
    members_list_their_use_cases_in_pages,
    updates_are_compare_and_swap,
    a_use_case_always_keeps_an_owner,
    links_are_unique_per_asset_and_role,
    a_request_id_adds_a_member_once_per_creator_and_use_case,
    a_request_id_adds_a_link_once_per_creator_and_use_case,
    a_request_id_makes_a_release_once_per_creator_and_use_case,
    the_outbox_keeps_a_change_until_its_latest_version_is_delivered,
    a_use_case_has_one_listing_republished_and_withdrawn_in_place,
    listing_queries_search_filter_order_and_page,
    entitlements_are_once_per_buyer_and_release_and_idempotent_by_request,
    charges_are_recorded_once_per_key,
);

fn use_case(owner: &str, name: &str) -> UseCase {
    let draft = UseCaseDraft {
        display_name: name.into(),
        model_card: "# Card".into(),
        inference_schema: r#"{"type":"object"}"#.into(),
        price: Money { currency_code: "USD".into(), units: 12, nanos: 500_000_000 },
        labels: [("domain".to_owned(), "housing".to_owned())].into_iter().collect(),
        ..UseCaseDraft::default()
    };
    UseCase::create(draft, owner, Utc::now()).expect("valid")
}

async fn the_creator_owns_what_it_creates_once_per_request_id(stores: Stores) {
    let repo = stores.use_cases;
    let first = use_case("users/alice", "house prices");
    assert_eq!(repo.create(&first, &[], Some("r1")).await.expect("create"), first);
    assert_eq!(repo.get(first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(repo.role_of(first.id, "users/alice").await.expect("role"), Some(Role::Owner));
    assert_eq!(repo.role_of(first.id, "users/bob").await.expect("role"), None);
    let retry = use_case("users/alice", "again");
    assert_eq!(repo.create(&retry, &[], Some("r1")).await.expect("retry"), first);
    assert_eq!(repo.get(retry.id).await.expect("get"), None);
}

async fn members_list_their_use_cases_in_pages(stores: Stores) {
    let repo = stores.use_cases;
    let mut created = Vec::new();
    for i in 0..7 {
        let u = use_case("users/lister", &format!("uc {i}"));
        repo.create(&u, &[], None).await.expect("create");
        created.push(u.id);
    }
    repo.create(&use_case("users/other", "not theirs"), &[], None).await.expect("create");
    let archived = use_case("users/lister", "old").with_archive_time(Some(Utc::now()), Utc::now());
    repo.create(&archived, &[], None).await.expect("create");

    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let mut page = repo.list_for("users/lister", false, after, 3).await.expect("list");
        let more = page.len() > 3;
        page.truncate(3);
        after = page.last().map(|(u, _)| (u.create_time.timestamp_micros(), u.id));
        seen.extend(page.into_iter().map(|(u, role)| {
            assert_eq!(role, Role::Owner);
            u.id
        }));
        if !more {
            break;
        }
    }
    assert_eq!(seen, created, "every live use case of the member, oldest first, once");
    assert_eq!(repo.list_for("users/lister", true, None, 100).await.expect("list").len(), 8);
    assert!(repo.list_for("users/nobody", true, None, 100).await.expect("list").is_empty());
}

async fn updates_are_compare_and_swap(stores: Stores) {
    let repo = stores.use_cases;
    let original = use_case("users/u", "v1");
    repo.create(&original, &[], None).await.expect("create");
    let change = UseCaseDraft { display_name: "v2".into(), ..UseCaseDraft::default() };
    let next = original.updated(&change, &[UseCaseField::DisplayName], Utc::now()).expect("valid");
    assert!(repo.update(&next, original.revision).await.expect("update"));
    assert!(!repo.update(&next, original.revision).await.expect("stale"));
    assert_eq!(repo.get(original.id).await.expect("get"), Some(next));
}

async fn a_use_case_always_keeps_an_owner(stores: Stores) {
    let repo = stores.use_cases;
    let u = use_case("users/owner", "team");
    repo.create(&u, &[], None).await.expect("create");
    let creator = repo.list_members(u.id, None, 10).await.expect("list").remove(0);
    assert_eq!((creator.principal.as_str(), creator.role), ("users/owner", Role::Owner));

    let editor = Member::new(u.id, "users/ed", Role::Editor, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&editor, None).await.expect("add"), MemberAdd::Added);
    let again = Member::new(u.id, "users/ed", Role::Viewer, "users/owner", Utc::now());
    let twice = repo.add_member(&again, None).await.expect("add twice");
    assert_eq!(twice, MemberAdd::AlreadyMember, "one membership per principal");
    assert_eq!(repo.role_of(u.id, "users/ed").await.expect("role"), Some(Role::Editor));
    assert_eq!(repo.get_member(u.id, editor.id).await.expect("get"), Some(editor.clone()));

    let demote = repo.set_role(u.id, creator.id, Role::Viewer, None, Utc::now()).await.expect("demote");
    assert_eq!(demote, Change::LastOwner, "the only owner cannot step down");
    let remove = repo.remove_member(u.id, creator.id, None).await.expect("remove");
    assert_eq!(remove, Change::LastOwner, "nor leave");
    assert_eq!(repo.set_role(u.id, editor.id, Role::Owner, Some(99), Utc::now()).await.expect("stale"), Change::Stale);
    let Change::Done(promoted) =
        repo.set_role(u.id, editor.id, Role::Owner, Some(1), Utc::now()).await.expect("promote")
    else {
        panic!("promotion refused");
    };
    assert_eq!((promoted.role, promoted.revision), (Role::Owner, 2));
    assert!(matches!(repo.remove_member(u.id, creator.id, None).await.expect("remove"), Change::Done(_)));
    assert_eq!(repo.role_of(u.id, "users/owner").await.expect("role"), None);
    assert_eq!(repo.remove_member(u.id, creator.id, None).await.expect("again"), Change::Missing);
    let members: Vec<String> =
        repo.list_members(u.id, None, 10).await.expect("list").into_iter().map(|m| m.principal).collect();
    assert_eq!(members, ["users/ed"]);
}

async fn links_are_unique_per_asset_and_role(stores: Stores) {
    let repo = stores.use_cases;
    let u = use_case("users/linker", "composed");
    repo.create(&u, &[], None).await.expect("create");
    let asset = "assets/0190b5b2-8c1e-7000-8000-000000000001";
    let pinned = AssetLink::new(u.id, asset, LinkRole::Model, Selector::Pinned(3), "users/linker", Utc::now());
    let aliased =
        AssetLink::new(u.id, asset, LinkRole::App, Selector::Alias("production".into()), "users/linker", Utc::now());
    assert_eq!(repo.add_link(&pinned, 3, None).await.expect("add"), LinkAdd::Added);
    assert_eq!(repo.add_link(&aliased, 3, None).await.expect("another role of the same asset"), LinkAdd::Added);
    let duplicate =
        AssetLink::new(u.id, asset, LinkRole::Model, Selector::Alias("latest".into()), "users/linker", Utc::now());
    let twice = repo.add_link(&duplicate, 3, None).await.expect("duplicate");
    assert_eq!(twice, LinkAdd::Duplicate, "one per asset and role");
    let other = "assets/0190b5b2-8c1e-7000-8000-000000000002";
    let third = AssetLink::new(u.id, other, LinkRole::Model, Selector::Pinned(1), "users/linker", Utc::now());
    assert_eq!(repo.add_link(&third, 2, None).await.expect("over the limit"), LinkAdd::Full, "at most max_links links");
    assert_eq!(repo.get_link(u.id, aliased.id).await.expect("get"), Some(aliased.clone()));
    let listed = repo.list_links(u.id, None, 10).await.expect("list");
    assert_eq!(listed, [pinned.clone(), aliased.clone()]);
    let after_first =
        repo.list_links(u.id, Some((pinned.create_time.timestamp_micros(), pinned.id)), 10).await.expect("page");
    assert_eq!(after_first, std::slice::from_ref(&aliased));
    assert!(repo.remove_link(u.id, pinned.id).await.expect("remove"));
    assert!(!repo.remove_link(u.id, pinned.id).await.expect("again"));
    assert_eq!(repo.list_links(u.id, None, 10).await.expect("list"), [aliased]);
}

async fn a_request_id_adds_a_member_once_per_creator_and_use_case(stores: Stores) {
    let repo = stores.use_cases;
    let (u, elsewhere) = (use_case("users/owner", "team"), use_case("users/owner", "other team"));
    repo.create(&u, &[], None).await.expect("create");
    repo.create(&elsewhere, &[], None).await.expect("create");
    let first = Member::new(u.id, "users/ed", Role::Editor, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&first, Some("k1")).await.expect("add"), MemberAdd::Added);
    let demote = repo.set_role(u.id, first.id, Role::Viewer, None, Utc::now()).await.expect("demote");
    assert!(matches!(demote, Change::Done(_)));
    let demoted = repo.get_member(u.id, first.id).await.expect("get").expect("member");

    // A retry, even one naming someone else, finds the member the key added, as it is now, and adds no one.
    let retry = Member::new(u.id, "users/vi", Role::Editor, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&retry, Some("k1")).await.expect("retry"), MemberAdd::Earlier(demoted));
    assert_eq!(repo.role_of(u.id, "users/vi").await.expect("role"), None);

    // Keys are the creator's, per use case.
    let co_owners = Member::new(u.id, "users/vi", Role::Viewer, "users/co", Utc::now());
    assert_eq!(repo.add_member(&co_owners, Some("k1")).await.expect("another creator"), MemberAdd::Added);
    let there = Member::new(elsewhere.id, "users/ed", Role::Editor, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&there, Some("k1")).await.expect("another use case"), MemberAdd::Added);

    // A fresh key does not make a principal a member twice, and a refused add leaves its key unused.
    let twice = Member::new(u.id, "users/ed", Role::Owner, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&twice, Some("k2")).await.expect("twice"), MemberAdd::AlreadyMember);
    let later = Member::new(u.id, "users/new", Role::Viewer, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&later, Some("k2")).await.expect("k2 unused"), MemberAdd::Added);
    let principals: Vec<String> =
        repo.list_members(u.id, None, 10).await.expect("list").into_iter().map(|m| m.principal).collect();
    assert_eq!(principals, ["users/owner", "users/ed", "users/vi", "users/new"]);
}

async fn a_request_id_adds_a_link_once_per_creator_and_use_case(stores: Stores) {
    let repo = stores.use_cases;
    let (u, elsewhere) = (use_case("users/owner", "composed"), use_case("users/owner", "other"));
    repo.create(&u, &[], None).await.expect("create");
    repo.create(&elsewhere, &[], None).await.expect("create");
    let (asset, other) = ("assets/0190b5b2-8c1e-7000-8000-000000000001", "assets/0190b5b2-8c1e-7000-8000-000000000002");
    let link = |use_case: &UseCase, asset: &str, role, selector, creator: &str| {
        AssetLink::new(use_case.id, asset, role, selector, creator, Utc::now())
    };
    let first = link(&u, asset, LinkRole::Dataset, Selector::Pinned(1), "users/ed");
    assert_eq!(repo.add_link(&first, 2, Some("k1")).await.expect("add"), LinkAdd::Added);
    let swapped = AssetLink { selector: Selector::Alias("production".into()), revision: 2, ..first.clone() };
    assert_eq!(repo.update_link(&swapped, first.revision).await.expect("swap"), LinkUpdate::Done);

    // A retry finds the link the key added, as it is now, even naming another asset, and even with no room left.
    let retry = link(&u, other, LinkRole::Model, Selector::Pinned(2), "users/ed");
    assert_eq!(repo.add_link(&retry, 1, Some("k1")).await.expect("retry"), LinkAdd::Earlier(swapped.clone()));
    assert_eq!(repo.link_by_request(u.id, "users/ed", "k1").await.expect("by key"), Some(swapped.clone()));
    assert_eq!(repo.link_by_request(u.id, "users/co", "k1").await.expect("by key"), None);
    assert_eq!(repo.link_by_request(elsewhere.id, "users/ed", "k1").await.expect("by key"), None);

    // Keys are the creator's, per use case.
    let theirs = link(&u, asset, LinkRole::App, Selector::Alias("latest".into()), "users/co");
    assert_eq!(repo.add_link(&theirs, 2, Some("k1")).await.expect("another creator"), LinkAdd::Added);
    let there = link(&elsewhere, asset, LinkRole::Dataset, Selector::Pinned(1), "users/ed");
    assert_eq!(repo.add_link(&there, 2, Some("k1")).await.expect("another use case"), LinkAdd::Added);

    // A refused link leaves its key unused.
    let duplicate = link(&u, asset, LinkRole::Dataset, Selector::Pinned(3), "users/ed");
    assert_eq!(repo.add_link(&duplicate, 3, Some("k2")).await.expect("duplicate"), LinkAdd::Duplicate);
    assert_eq!(repo.link_by_request(u.id, "users/ed", "k2").await.expect("by key"), None);
    assert_eq!(repo.list_links(u.id, None, 10).await.expect("list"), [swapped, theirs]);
}

async fn a_request_id_makes_a_release_once_per_creator_and_use_case(stores: Stores) {
    let repo = stores.use_cases;
    let (u, elsewhere) = (use_case("users/owner", "released"), use_case("users/owner", "other"));
    repo.create(&u, &[], None).await.expect("create");
    repo.create(&elsewhere, &[], None).await.expect("create");
    let frozen = |version_number| {
        vec![FrozenLink {
            link: "useCases/u/assetLinks/l".into(),
            asset: "assets/0190b5b2-8c1e-7000-8000-000000000001".into(),
            role: "DATASET".into(),
            version_number,
            manifest_digest: format!("sha256:{version_number:064}"),
            alias: Some("latest".into()),
            owner: String::new(),
            image_digest: String::new(),
        }]
    };
    let release = |use_case: &UseCase, version, creator: &str| {
        Release::new(use_case, frozen(version), "notes".into(), creator, Utc::now())
    };
    let first = repo.create_release(&release(&u, 1, "users/ed"), Some("k1")).await.expect("release");
    assert_eq!(first.number, 1);

    // A retry finds the release the key made, whatever it would freeze now, and numbers nothing.
    let retry = repo.create_release(&release(&u, 2, "users/ed"), Some("k1")).await.expect("retry");
    assert_eq!(retry, first);
    assert_eq!(repo.release_by_request(u.id, "users/ed", "k1").await.expect("by key"), Some(first.clone()));
    assert_eq!(repo.list_releases(u.id, None, 10).await.expect("list"), std::slice::from_ref(&first));

    // Keys are the creator's, per use case; no key means a new release every time.
    let theirs = repo.create_release(&release(&u, 2, "users/co"), Some("k1")).await.expect("another creator");
    let unkeyed = repo.create_release(&release(&u, 2, "users/ed"), None).await.expect("no key");
    let there = repo.create_release(&release(&elsewhere, 1, "users/ed"), Some("k1")).await.expect("elsewhere");
    assert_eq!((theirs.number, unkeyed.number, there.number), (2, 3, 1));
    assert_eq!(repo.release_by_request(u.id, "users/co", "k1").await.expect("by key"), Some(theirs));
    assert_eq!(repo.release_by_request(u.id, "users/ed", "k2").await.expect("by key"), None);
    assert_eq!(repo.get_release(u.id, 3).await.expect("get"), Some(unkeyed));
    assert_eq!(repo.get_release(u.id, 4).await.expect("get"), None);
}

async fn the_outbox_keeps_a_change_until_its_latest_version_is_delivered(stores: Stores) {
    let (repo, outbox) = (stores.use_cases.clone(), stores.outbox.clone());
    let u = use_case("users/owner", "shared");
    let source = crate::domain::names::use_case_name(u.id);
    let asset = "assets/0190b5b2-8c1e-7000-8000-000000000002";
    let link = AssetLink {
        asset_owner: "users/owner".into(),
        ..AssetLink::new(u.id, asset, LinkRole::Dataset, Selector::Pinned(2), "users/owner", Utc::now())
    };
    repo.create(&u, std::slice::from_ref(&link), None).await.expect("create with a link");
    assert_eq!(repo.get_link(u.id, link.id).await.expect("get"), Some(link.clone()), "the asset's owner is kept");
    let pending = outbox.pending(None, 10).await.expect("pending");
    assert_eq!(pending.iter().map(|p| p.source.as_str()).collect::<Vec<_>>(), [source.as_str()]);
    let grants = crate::relay::grants_of(&stores, &source).await.expect("grants");
    assert_eq!(grants.principals.iter().collect::<Vec<_>>(), ["users/owner"]);
    assert_eq!(grants.targets.iter().cloned().collect::<Vec<_>>(), [(asset.to_owned(), 2)]);

    // A change after the relay read the source keeps it pending: the newer version still has to go out.
    let viewer = Member::new(u.id, "users/viewer", Role::Viewer, "users/owner", Utc::now());
    assert_eq!(repo.add_member(&viewer, None).await.expect("add member"), MemberAdd::Added);
    outbox.delivered(&pending[0]).await.expect("delivered the older version");
    let still = outbox.pending(None, 10).await.expect("pending");
    assert_eq!(still.len(), 1);
    assert!(still[0].version > pending[0].version);
    assert!(crate::relay::grants_of(&stores, &source).await.expect("grants").principals.contains("users/viewer"));
    outbox.delivered(&still[0]).await.expect("delivered");
    assert!(outbox.pending(None, 10).await.expect("pending").is_empty());

    // A refused change (the last owner cannot leave) marks nothing.
    let owners = repo.list_members(u.id, None, 10).await.expect("members");
    let owner = owners.iter().find(|m| m.role == Role::Owner).expect("owner");
    assert_eq!(repo.remove_member(u.id, owner.id, None).await.expect("refused"), Change::LastOwner);
    assert!(outbox.pending(None, 10).await.expect("pending").is_empty());
    let nothing = crate::relay::grants_of(&stores, "entitlements/0190b5b2-8c1e-7000-8000-000000000003").await;
    assert!(nothing.expect("none").principals.is_empty());
}

fn usd(units: i64) -> Money {
    Money { currency_code: "USD".into(), units, nanos: 0 }
}

/// A stored use case of `owner` with two releases, and its first listing (release 1 at `price`), as stored.
async fn listed(stores: &Stores, owner: &str, name: &str, price: Money) -> (UseCase, Listing) {
    let u = use_case(owner, name);
    stores.use_cases.create(&u, &[], None).await.expect("create");
    for _ in 0..2 {
        let release = Release::new(&u, Vec::new(), "notes".into(), owner, Utc::now());
        stores.use_cases.create_release(&release, None).await.expect("release");
    }
    let listing = Listing::first(u.id, 1, Snapshot::of(&u), price, owner, Utc::now());
    (u, stores.market.save_listing(&listing).await.expect("save"))
}

fn active_listings() -> ListingQuery {
    ListingQuery {
        words: Vec::new(),
        filter: ListingFilter::default(),
        withdrawn_visible_to: None,
        order: ListingOrder::PublishTime,
        after: None,
        limit: 10,
    }
}

async fn names_of(stores: &Stores, query: &ListingQuery) -> Vec<String> {
    let listings = stores.market.query_listings(query).await.expect("query");
    listings.into_iter().map(|l| l.content.display_name).collect()
}

async fn a_use_case_has_one_listing_republished_and_withdrawn_in_place(stores: Stores) {
    let (u, first) = listed(&stores, "users/seller", "house prices", usd(5)).await;
    assert_eq!(stores.market.listing_of(u.id).await.expect("of"), Some(first.clone()));
    assert_eq!(stores.market.get_listing(first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(stores.market.get_listing(uuid::Uuid::now_v7()).await.expect("get"), None);

    let again = first.republished(2, Snapshot::of(&u), usd(7), "users/seller", Utc::now());
    let stored = stores.market.save_listing(&again).await.expect("republish");
    assert_eq!((stored.id, stored.release_number, stored.price.units), (first.id, 2, 7), "the same listing");
    let withdrawn = stores.market.save_listing(&stored.withdrawn(Utc::now())).await.expect("withdraw");
    assert!(!withdrawn.active);
    assert!(withdrawn.withdraw_time.is_some());
    assert_eq!(stores.market.listing_of(u.id).await.expect("of"), Some(withdrawn));
}

async fn listing_queries_search_filter_order_and_page(stores: Stores) {
    let (_, bravo) = listed(&stores, "users/ann", "Bravo house prices", usd(0)).await;
    let (_, alpha) = listed(&stores, "users/ann", "alpha churn", usd(3)).await;
    let (charlie_case, charlie) = listed(&stores, "users/ben", "Charlie house rents", usd(9)).await;
    stores.market.save_listing(&charlie.withdrawn(Utc::now())).await.expect("withdraw");

    assert_eq!(names_of(&stores, &active_listings()).await, ["Bravo house prices", "alpha churn"]);
    let search = ListingQuery { words: vec!["hou".into(), "pri".into()], ..active_listings() };
    assert_eq!(names_of(&stores, &search).await, ["Bravo house prices"], "every word prefixes a word");
    let free =
        ListingQuery { filter: ListingFilter { free: Some(true), ..ListingFilter::default() }, ..active_listings() };
    assert_eq!(names_of(&stores, &free).await, ["Bravo house prices"]);
    let labelled = ListingFilter { labels: vec![("domain".into(), "housing".into())], ..ListingFilter::default() };
    assert_eq!(names_of(&stores, &ListingQuery { filter: labelled, ..active_listings() }).await.len(), 2);
    let other_label = ListingFilter { labels: vec![("domain".into(), "retail".into())], ..ListingFilter::default() };
    assert!(names_of(&stores, &ListingQuery { filter: other_label, ..active_listings() }).await.is_empty());
    let bens = ListingFilter { seller: Some("users/ben".into()), active: Some(false), ..ListingFilter::default() };
    let bens = ListingQuery { filter: bens, withdrawn_visible_to: Some("users/ben".into()), ..active_listings() };
    assert_eq!(names_of(&stores, &bens).await, ["Charlie house rents"], "a member sees their withdrawn listing");
    let strangers = ListingQuery { withdrawn_visible_to: Some("users/eve".into()), ..active_listings() };
    assert_eq!(names_of(&stores, &strangers).await.len(), 2, "a stranger does not");
    let buyer = Entitlement::of(&charlie, "users/eve", "pay-1".into(), Utc::now());
    stores.market.add_entitlement(&buyer, None).await.expect("entitle");
    assert_eq!(names_of(&stores, &strangers).await.len(), 3, "a buyer does");
    let of_case = ListingFilter { use_case: Some(charlie_case.id), ..ListingFilter::default() };
    assert_eq!(names_of(&stores, &ListingQuery { filter: of_case, ..strangers.clone() }).await.len(), 1);

    // Names order bytewise on the lowercased name, and a page resumes after its cursor.
    let by_name = ListingQuery { order: ListingOrder::DisplayName, limit: 1, ..active_listings() };
    let first = stores.market.query_listings(&by_name).await.expect("query");
    assert_eq!((first.len(), first[0].id), (2, alpha.id), "limit + 1, alpha before Bravo");
    let next = ListingQuery { after: Some(ListingOrder::DisplayName.cursor(&first[0])), ..by_name.clone() };
    assert_eq!(
        stores.market.query_listings(&next).await.expect("query").iter().map(|l| l.id).collect::<Vec<_>>(),
        [bravo.id]
    );
    let newest = ListingQuery { order: ListingOrder::PublishTimeDesc, limit: 1, ..active_listings() };
    let page = stores.market.query_listings(&newest).await.expect("query");
    let rest = ListingQuery { after: Some(ListingOrder::PublishTimeDesc.cursor(&page[0])), ..newest.clone() };
    assert_eq!(stores.market.query_listings(&rest).await.expect("query")[0].id, bravo.id);
}

async fn entitlements_are_once_per_buyer_and_release_and_idempotent_by_request(stores: Stores) {
    let (_, listing) = listed(&stores, "users/seller", "sold", usd(4)).await;
    let (_, other) = listed(&stores, "users/seller", "also sold", usd(4)).await;
    let first = Entitlement::of(&listing, "users/buyer", "pay-1".into(), Utc::now());
    assert_eq!(stores.market.add_entitlement(&first, Some("buy-1")).await.expect("add"), first);
    let retry = Entitlement::of(&listing, "users/buyer", "pay-2".into(), Utc::now());
    assert_eq!(stores.market.add_entitlement(&retry, Some("buy-1")).await.expect("retry"), first, "same key");
    let again = Entitlement::of(&listing, "users/buyer", "pay-3".into(), Utc::now());
    assert_eq!(stores.market.add_entitlement(&again, None).await.expect("again"), first, "one per release");
    assert_eq!(stores.market.get_entitlement(retry.id).await.expect("get"), None, "nothing else stored");
    assert_eq!(stores.market.get_entitlement(first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(
        stores.market.entitlement_by_request("users/buyer", "buy-1").await.expect("by key"),
        Some(first.clone())
    );
    assert_eq!(stores.market.entitlement_by_request("users/other", "buy-1").await.expect("by key"), None);
    assert_eq!(
        stores.market.entitlement_to("users/buyer", listing.use_case_id, 1).await.expect("to"),
        Some(first.clone())
    );
    assert_eq!(stores.market.entitlement_to("users/buyer", listing.use_case_id, 2).await.expect("to"), None);
    assert!(stores.market.is_buyer(listing.id, "users/buyer").await.expect("buyer"));
    assert!(!stores.market.is_buyer(listing.id, "users/other").await.expect("buyer"));
    let pending = stores.outbox.pending(None, 100).await.expect("pending");
    assert!(pending.iter().any(|p| p.source == crate::domain::names::entitlement_name(first.id)), "grants follow");

    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let second = Entitlement::of(&other, "users/buyer", "pay-4".into(), Utc::now());
    stores.market.add_entitlement(&second, None).await.expect("add");
    let query = EntitlementQuery {
        buyer: Some("users/buyer".into()),
        listing: None,
        use_case: None,
        release: None,
        descending: true,
        after: None,
        limit: 1,
    };
    let page = stores.market.list_entitlements(&query).await.expect("list");
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [second.id, first.id], "newest first, limit + 1");
    let rest = EntitlementQuery { after: Some((second.create_time.timestamp_micros(), second.id)), ..query.clone() };
    assert_eq!(stores.market.list_entitlements(&rest).await.expect("list"), std::slice::from_ref(&first));
    let of_listing = EntitlementQuery { buyer: None, listing: Some(other.id), limit: 10, ..query };
    assert_eq!(stores.market.list_entitlements(&of_listing).await.expect("list"), [second]);
}

async fn charges_are_recorded_once_per_key(stores: Stores) {
    let charge = |key: &str| Charge {
        idempotency_key: key.into(),
        payer: "users/buyer".into(),
        payee: "users/seller".into(),
        amount: usd(4),
        time: Utc::now(),
    };
    let first = stores.market.record_charge(&charge("k1")).await.expect("charge");
    assert_eq!(stores.market.record_charge(&charge("k1")).await.expect("again"), first, "same key, same entry");
    assert_ne!(stores.market.record_charge(&charge("k2")).await.expect("other"), first);
}
