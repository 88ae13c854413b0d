//! One suite for every backend: `store::conformance::sqlite::<check>` and `…::postgres::<check>`.

use chrono::Utc;
use highwind_common::db::{Database, testing::conformance};

use super::{LinkAdd, LinkUpdate, MemberAdd, Stores};
use crate::domain::{
    link::{AssetLink, LinkRole, Selector},
    member::{Change, Member},
    release::{FrozenLink, Release},
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
