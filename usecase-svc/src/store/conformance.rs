//! One suite for every backend: `store::conformance::sqlite::<check>` and `…::postgres::<check>`.

use chrono::Utc;

use super::{LinkAdd, Stores};
use crate::domain::{
    link::{AssetLink, LinkRole, Selector},
    member::{Change, Member},
    role::Role,
    use_case::{Money, UseCase, UseCaseDraft, UseCaseField},
};

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let url = highwind_common::db::testing::fresh_sqlite_url(dir.path());
                    let db = highwind_common::db::Database::connect(&url, 4).await.expect("sqlite");
                    super::$check(crate::store::open(db).await.expect("migrate")).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(url) = highwind_common::db::testing::fresh_postgres_url().await else {
                        eprintln!("postgres::{} skipped: no PostgreSQL server reachable", stringify!($check));
                        return;
                    };
                    let db = highwind_common::db::Database::connect(&url, 4).await.expect("postgres");
                    super::$check(crate::store::open(db).await.expect("migrate")).await;
                }
            )*
        }
    };
}

conformance!(
    the_creator_owns_what_it_creates_once_per_request_id,
    members_list_their_use_cases_in_pages,
    updates_are_compare_and_swap,
    a_use_case_always_keeps_an_owner,
    links_are_unique_per_asset_and_role,
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
    assert!(repo.add_member(&editor).await.expect("add"));
    let again = Member::new(u.id, "users/ed", Role::Viewer, "users/owner", Utc::now());
    assert!(!repo.add_member(&again).await.expect("add twice"), "one membership per principal");
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
    assert_eq!(repo.add_link(&pinned, 3).await.expect("add"), LinkAdd::Added);
    assert_eq!(repo.add_link(&aliased, 3).await.expect("another role of the same asset"), LinkAdd::Added);
    let duplicate =
        AssetLink::new(u.id, asset, LinkRole::Model, Selector::Alias("latest".into()), "users/linker", Utc::now());
    assert_eq!(repo.add_link(&duplicate, 3).await.expect("duplicate"), LinkAdd::Duplicate, "one per asset and role");
    let other = "assets/0190b5b2-8c1e-7000-8000-000000000002";
    let third = AssetLink::new(u.id, other, LinkRole::Model, Selector::Pinned(1), "users/linker", Utc::now());
    assert_eq!(repo.add_link(&third, 2).await.expect("over the limit"), LinkAdd::Full, "at most max_links links");
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
    assert!(repo.add_member(&viewer).await.expect("add member"));
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
