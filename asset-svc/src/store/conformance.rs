//! One suite, run against every backend: each check below becomes `store::conformance::sqlite::<check>` and
//! `store::conformance::postgres::<check>`.

use std::collections::BTreeMap;

use chrono::Utc;

use super::{AssetRepository, Stores};
use crate::domain::{
    asset::{Asset, AssetDraft, AssetField, AssetKind, ModelDetails, ModelFormat},
    listing::{AssetFilter, AssetQuery, Cursor, Order, OrderKey},
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
                    let stores = crate::store::open(db).await.expect("migrate");
                    super::$check(&stores).await;
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
                    let stores = crate::store::open(db).await.expect("migrate");
                    super::$check(&stores).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_get_round_trips_every_field,
    request_id_returns_the_first_asset,
    update_is_compare_and_swap,
    keyset_pages_by_create_time_cover_everything_once,
    display_name_order_is_bytewise,
    filters_select_kind_labels_archive_and_owner,
);

fn asset(owner: &str, name: &str, kind: AssetKind) -> Asset {
    let draft = AssetDraft { kind: Some(kind), display_name: name.into(), ..AssetDraft::default() };
    Asset::create(draft, owner, Utc::now()).expect("valid asset")
}

fn query(owner: &str, order: Order) -> AssetQuery {
    AssetQuery {
        owner: owner.into(),
        filter: AssetFilter::default(),
        order,
        include_archived: false,
        after: None,
        limit: 1_000,
    }
}

async fn collect_pages(repo: &dyn AssetRepository, mut q: AssetQuery, page: usize) -> (Vec<Asset>, usize) {
    q.limit = page;
    let (mut all, mut pages) = (Vec::new(), 0);
    loop {
        let mut rows = repo.list(&q).await.expect("list");
        pages += 1;
        let more = rows.len() > page;
        rows.truncate(page);
        q.after = rows.last().map(|a| Cursor::after(a, q.order));
        all.extend(rows);
        if !more {
            return (all, pages);
        }
    }
}

async fn create_then_get_round_trips_every_field(stores: &Stores) {
    let repo = stores.assets.as_ref();
    let draft = AssetDraft {
        kind: Some(AssetKind::Model),
        display_name: "House prices — GBM".into(),
        description: "ünïcode\nmultiline".into(),
        cover_image_uri: "https://example.com/c.png".into(),
        labels: BTreeMap::from([("team".into(), "pricing".into()), ("tier".into(), String::new())]),
        model: Some(ModelDetails {
            framework: "lightgbm 4.3".into(),
            format: ModelFormat::Lightgbm,
            model_card: "# Card".into(),
            inference_schema: r#"{"type":"object"}"#.into(),
        }),
    };
    let created = Asset::create(draft, "users/alice", Utc::now()).expect("valid");
    assert_eq!(repo.create(&created, None).await.expect("create"), created);
    assert_eq!(repo.get(created.id).await.expect("get"), Some(created.clone()));
    assert_eq!(repo.get(uuid::Uuid::now_v7()).await.expect("get"), None);
}

async fn request_id_returns_the_first_asset(stores: &Stores) {
    let repo = stores.assets.as_ref();
    let first = asset("users/alice", "first", AssetKind::Dataset);
    let retry = asset("users/alice", "retry", AssetKind::Dataset);
    assert_eq!(repo.create(&first, Some("req-1")).await.expect("create"), first);
    assert_eq!(repo.create(&retry, Some("req-1")).await.expect("retry"), first, "same key returns the first");
    assert_eq!(repo.get(retry.id).await.expect("get"), None, "the retry inserted nothing");
    let other_owner = asset("users/bob", "bob's", AssetKind::Dataset);
    assert_eq!(repo.create(&other_owner, Some("req-1")).await.expect("create"), other_owner, "keys are per owner");
}

async fn update_is_compare_and_swap(stores: &Stores) {
    let repo = stores.assets.as_ref();
    let original = asset("users/alice", "v1", AssetKind::Dataset);
    repo.create(&original, None).await.expect("create");
    let change = AssetDraft { display_name: "v2".into(), ..AssetDraft::default() };
    let next = original.updated(&change, &[AssetField::DisplayName], Utc::now()).expect("valid");
    assert!(repo.update(&next, original.revision).await.expect("update"));
    assert!(!repo.update(&next, original.revision).await.expect("stale update"), "stale revision must not apply");
    let stored = repo.get(original.id).await.expect("get").expect("exists");
    assert_eq!(stored, next);
    let archived = stored.archived(Utc::now());
    assert!(repo.update(&archived, stored.revision).await.expect("archive"));
    assert_eq!(repo.get(original.id).await.expect("get"), Some(archived));
}

async fn keyset_pages_by_create_time_cover_everything_once(stores: &Stores) {
    let repo = stores.assets.as_ref();
    let mut created = Vec::new();
    for i in 0..250 {
        let a = asset("users/pager", &format!("asset {i:03}"), AssetKind::Dataset);
        repo.create(&a, None).await.expect("create");
        created.push(a.id);
    }
    repo.create(&asset("users/other", "not mine", AssetKind::Dataset), None).await.expect("create");
    for descending in [false, true] {
        let q = query("users/pager", Order { key: OrderKey::CreateTime, descending });
        let (all, pages) = collect_pages(repo, q, 100).await;
        assert_eq!(pages, 3);
        let ids: Vec<_> = all.iter().map(|a| a.id).collect();
        let mut expected = created.clone();
        expected.sort_by_key(|id| {
            let a = all.iter().find(|a| a.id == *id).expect("every created asset is listed");
            (a.create_time, a.id)
        });
        if descending {
            expected.reverse();
        }
        assert_eq!(ids, expected, "descending={descending}");
    }
}

async fn display_name_order_is_bytewise(stores: &Stores) {
    let repo = stores.assets.as_ref();
    let names = ["beta", "Alpha", "alpha", "Ölpreis", "zeta", "_under", "alpha"];
    for name in names {
        repo.create(&asset("users/sorter", name, AssetKind::Dataset), None).await.expect("create");
    }
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort_unstable();
    for page in [1, 2, 100] {
        let q = query("users/sorter", Order { key: OrderKey::DisplayName, descending: false });
        let (all, _) = collect_pages(repo, q, page).await;
        let got: Vec<&str> = all.iter().map(|a| a.display_name.as_str()).collect();
        assert_eq!(got, expected, "page size {page}");
    }
}

async fn filters_select_kind_labels_archive_and_owner(stores: &Stores) {
    let repo = stores.assets.as_ref();
    let mut vision = asset("users/f", "vision data", AssetKind::Dataset);
    vision.labels.insert("team".into(), "vision".into());
    let model = asset("users/f", "a model", AssetKind::Model);
    let archived = asset("users/f", "old", AssetKind::Dataset).archived(Utc::now());
    for a in [&vision, &model, &archived] {
        repo.create(a, None).await.expect("create");
    }
    repo.create(&asset("users/g", "someone else's", AssetKind::Dataset), None).await.expect("create");

    let names = |rows: Vec<Asset>| rows.into_iter().map(|a| a.display_name).collect::<Vec<_>>();
    let by_name = Order { key: OrderKey::DisplayName, descending: false };
    let mut q = query("users/f", by_name);
    assert_eq!(names(repo.list(&q).await.expect("list")), ["a model", "vision data"]);
    q.filter = AssetFilter::parse("kind = DATASET").expect("filter");
    assert_eq!(names(repo.list(&q).await.expect("list")), ["vision data"]);
    q.filter = AssetFilter::parse(r#"labels.team = "vision" AND kind = DATASET"#).expect("filter");
    assert_eq!(names(repo.list(&q).await.expect("list")), ["vision data"]);
    q.filter = AssetFilter::parse("labels.team = other").expect("filter");
    assert!(repo.list(&q).await.expect("list").is_empty());
    q.filter = AssetFilter::default();
    q.include_archived = true;
    assert_eq!(names(repo.list(&q).await.expect("list")), ["a model", "old", "vision data"]);
    q.filter = AssetFilter::parse("archived = true").expect("filter");
    assert_eq!(names(repo.list(&q).await.expect("list")), ["old"]);
}
