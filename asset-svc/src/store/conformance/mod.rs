//! One suite, run against every backend: each check below becomes `store::conformance::sqlite::<check>` and
//! `store::conformance::postgres::<check>`.

use std::collections::BTreeMap;

use chrono::Utc;
use highwind_common::db::{Database, testing::conformance};

use super::{AssetRepository, CommitOutcome, Opened, Stores, VersionQuery};
use crate::domain::{
    asset::{Asset, AssetDraft, AssetField, AssetKind, ModelDetails, ModelFormat},
    paging::{AssetFilter, AssetQuery, Cursor, Order, OrderKey},
    upload::{Upload, UploadFile, UploadQuota, UploadState},
    version::{FileEntry, Lineage, Version, VersionState, manifest_digest},
};

/// What the checks test: the migrated stores of `db`.
async fn stores(db: Database) -> Stores {
    crate::store::open_uncached(db).await.expect("migrate")
}

conformance!(
    open: stores;
    create_then_get_round_trips_every_field,
    request_id_returns_the_first_asset,
    update_is_compare_and_swap,
    keyset_pages_by_create_time_cover_everything_once,
    display_name_order_is_bytewise,
    filters_select_kind_labels_archive_and_owner,
    uploads_round_trip_and_are_idempotent_by_request_id,
    one_file_or_the_head_of_an_upload_is_read_alone,
    quotas_hold_concurrent_openings_to_the_limit,
    commits_add_to_what_the_asset_stores,
    concurrent_commits_take_distinct_numbers,
    a_commit_happens_once_and_only_while_open,
    blob_index_answers_which_digests_are_missing,
    idle_uploads_expire,
    an_image_is_recorded_once_however_often_and_concurrently_it_is_seen,
    grants_say_who_reads_and_which_versions_are_pinned,
    aliases_point_move_select_and_go,
    version_metadata_updates_are_compare_and_swap_and_archived_versions_step_aside,
    purging_an_asset_leaves_its_blobs_to_the_collector,
);

mod versions;
use versions::{
    aliases_point_move_select_and_go, purging_an_asset_leaves_its_blobs_to_the_collector,
    version_metadata_updates_are_compare_and_swap_and_archived_versions_step_aside,
};

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

async fn create_then_get_round_trips_every_field(stores: Stores) {
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

async fn request_id_returns_the_first_asset(stores: Stores) {
    let repo = stores.assets.as_ref();
    let first = asset("users/alice", "first", AssetKind::Dataset);
    let retry = asset("users/alice", "retry", AssetKind::Dataset);
    assert_eq!(repo.create(&first, Some("req-1")).await.expect("create"), first);
    assert_eq!(repo.create(&retry, Some("req-1")).await.expect("retry"), first, "same key returns the first");
    assert_eq!(repo.get(retry.id).await.expect("get"), None, "the retry inserted nothing");
    let other_owner = asset("users/bob", "bob's", AssetKind::Dataset);
    assert_eq!(repo.create(&other_owner, Some("req-1")).await.expect("create"), other_owner, "keys are per owner");
}

async fn update_is_compare_and_swap(stores: Stores) {
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

async fn keyset_pages_by_create_time_cover_everything_once(stores: Stores) {
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

async fn display_name_order_is_bytewise(stores: Stores) {
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

async fn filters_select_kind_labels_archive_and_owner(stores: Stores) {
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

fn digest_of(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(path.as_bytes()))
}

async fn stored_asset(stores: &Stores, owner: &str) -> Asset {
    let a = asset(owner, "content", AssetKind::Dataset);
    stores.assets.create(&a, None).await.expect("create asset")
}

/// A quota nothing in these checks reaches, except where they set their own.
const ROOMY: UploadQuota = UploadQuota { max_open_uploads: 1_000, max_open_bytes: 1 << 40, max_stored_bytes: 1 << 40 };

async fn open(stores: &Stores, upload: &Upload, request_id: Option<&str>) -> Upload {
    match stores.content.create_upload(upload, request_id, &ROOMY).await.expect("create upload") {
        Opened::Upload(upload) => *upload,
        Opened::OverQuota(why) => panic!("over quota: {why}"),
    }
}

fn upload_of(asset: &Asset, files: &[(&str, bool)]) -> Upload {
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    Upload {
        id: uuid::Uuid::now_v7(),
        asset_id: asset.id,
        creator: asset.owner.clone(),
        state: UploadState::Open,
        files: files
            .iter()
            .map(|(path, complete)| UploadFile {
                entry: FileEntry { path: (*path).into(), size: 3, sha256: digest_of(path) },
                complete: *complete,
            })
            .collect(),
        description: "d".into(),
        labels: BTreeMap::from([("k".into(), "v".into())]),
        create_time: now,
        expire_time: now + chrono::Duration::hours(1),
        version_number: None,
    }
}

fn version_of(upload: &Upload) -> Version {
    let files = upload.manifest();
    Version {
        id: uuid::Uuid::now_v7(),
        asset_id: upload.asset_id,
        number: 0,
        state: VersionState::Ready,
        manifest_digest: manifest_digest(&files),
        total_size: files.iter().map(|f| f.size).sum(),
        files,
        description: upload.description.clone(),
        labels: upload.labels.clone(),
        lineage: Lineage::Upload { upload: upload.id },
        creator: upload.creator.clone(),
        create_time: upload.create_time,
        metrics: BTreeMap::from([("rmse".into(), 0.25)]),
        archive_time: None,
        revision: 1,
    }
}

async fn uploads_round_trip_and_are_idempotent_by_request_id(stores: Stores) {
    let a = stored_asset(&stores, "users/u").await;
    stores.content.record_blob(&digest_of("a.csv"), 3, Utc::now()).await.expect("record");
    let first = upload_of(&a, &[("b.csv", false), ("a.csv", true)]);
    let stored = open(&stores, &first, Some("key")).await;
    assert_eq!(stored, first);
    // A file claimed present whose blob is not indexed (collected meanwhile) must be sent after all.
    let stale_claim = upload_of(&a, &[("z.csv", true)]);
    let stored = open(&stores, &stale_claim, None).await;
    assert!(!stored.files[0].complete);
    let fetched = stores.content.get_upload(stale_claim.id).await.expect("get").expect("exists");
    assert_eq!(fetched.missing(), ["z.csv"]);
    let mut fetched = stores.content.get_upload(first.id).await.expect("get").expect("exists");
    fetched.files.sort_by(|x, y| x.entry.path.cmp(&y.entry.path));
    let mut expected = first.clone();
    expected.files.sort_by(|x, y| x.entry.path.cmp(&y.entry.path));
    assert_eq!(fetched, expected);
    let retry = upload_of(&a, &[("c.csv", false)]);
    let again = open(&stores, &retry, Some("key")).await;
    assert_eq!(again.id, first.id, "the same key returns the first upload");
    assert_eq!(stores.content.get_upload(retry.id).await.expect("get"), None);

    let later = first.expire_time + chrono::Duration::hours(2);
    stores.content.complete_file(first.id, "b.csv", later).await.expect("complete");
    let fetched = stores.content.get_upload(first.id).await.expect("get").expect("exists");
    assert!(fetched.missing().is_empty());
    assert_eq!(fetched.expire_time, later, "a completed file extends the upload's life");
}

async fn one_file_or_the_head_of_an_upload_is_read_alone(stores: Stores) {
    let a = stored_asset(&stores, "users/h").await;
    let upload = open(&stores, &upload_of(&a, &[("a.csv", false), ("b/c.csv", true)]), None).await;
    let head = stores.content.get_upload_head(upload.id).await.expect("head").expect("exists");
    assert_eq!(head, upload.head());
    let file = stores.content.get_upload_file(upload.id, "b/c.csv").await.expect("file").expect("declared");
    assert_eq!(Some(&file), upload.file("b/c.csv"));
    assert_eq!(stores.content.get_upload_file(upload.id, "b").await.expect("file"), None, "a directory is no file");
    assert_eq!(stores.content.get_upload_head(uuid::Uuid::now_v7()).await.expect("head"), None);
    assert!(stores.content.close_upload(upload.id, UploadState::Cancelled).await.expect("cancel"));
    let head = stores.content.get_upload_head(upload.id).await.expect("head").expect("exists");
    assert_eq!(head.state, UploadState::Cancelled);
}

async fn quotas_hold_concurrent_openings_to_the_limit(stores: Stores) {
    let a = stored_asset(&stores, "users/q").await;
    let quota = UploadQuota { max_open_uploads: 3, max_open_bytes: 1 << 20, max_stored_bytes: 1 << 30 };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (content, upload) = (stores.content.clone(), upload_of(&a, &[("f", false)]));
        tasks.spawn(async move { content.create_upload(&upload, None, &quota).await });
    }
    let mut refusals = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Opened::OverQuota(why) = done.expect("task").expect("create") {
            refusals.push(why);
        }
    }
    assert_eq!(refusals.len(), 5, "three of eight concurrent openings fit: {refusals:?}");
    assert!(refusals[0].contains("at most 3 uploads open"), "{}", refusals[0]);

    // Another user's quota is their own; a closed upload frees its place; an expired one no longer counts.
    let other = stored_asset(&stores, "users/q2").await;
    assert!(matches!(
        stores.content.create_upload(&upload_of(&other, &[("f", false)]), None, &quota).await.expect("create"),
        Opened::Upload(_)
    ));
    let mut idle = upload_of(&other, &[("f", false)]);
    idle.expire_time = idle.create_time - chrono::Duration::seconds(1);
    open(&stores, &idle, None).await;
    open(&stores, &upload_of(&other, &[("g", false)]), None).await;
    assert!(
        matches!(
            stores.content.create_upload(&upload_of(&other, &[("f", false)]), None, &quota).await.expect("create"),
            Opened::Upload(_)
        ),
        "the expired upload does not count"
    );

    // Declared bytes: what the open uploads declare, this one included.
    let bytes = UploadQuota { max_open_uploads: 100, max_open_bytes: 10, max_stored_bytes: 1 << 30 };
    let b = stored_asset(&stores, "users/qb").await;
    let declared = |size: u64| {
        let mut upload = upload_of(&b, &[("f", false)]);
        upload.files[0].entry.size = size;
        upload
    };
    let first = declared(7);
    assert!(matches!(
        stores.content.create_upload(&first, Some("once"), &bytes).await.expect("create"),
        Opened::Upload(_)
    ));
    let Opened::OverQuota(why) = stores.content.create_upload(&declared(4), None, &bytes).await.expect("create") else {
        panic!("7 + 4 bytes fit a 10-byte quota");
    };
    assert!(why.contains("at most 10 bytes") && why.contains("7 declared"), "{why}");
    let Opened::Upload(again) = stores.content.create_upload(&declared(7), Some("once"), &bytes).await.expect("retry")
    else {
        panic!("a retry of an opened upload is not a new one");
    };
    assert_eq!(again.id, first.id);
    assert!(matches!(
        stores.content.create_upload(&declared(3), None, &bytes).await.expect("create"),
        Opened::Upload(_)
    ));
}

async fn commits_add_to_what_the_asset_stores(stores: Stores) {
    let a = stored_asset(&stores, "users/s").await;
    assert_eq!(stores.assets.get(a.id).await.expect("get").expect("asset").stored_bytes, 0);
    for files in [&[("a", true), ("b", true)][..], &[("c", true)][..]] {
        let upload = open(&stores, &upload_of(&a, files), None).await;
        stores.content.commit_upload(&upload, &version_of(&upload)).await.expect("commit");
    }
    assert_eq!(stores.assets.get(a.id).await.expect("get").expect("asset").stored_bytes, 9, "three 3-byte files");

    // What the owner stores counts against what they may still open.
    let quota = UploadQuota { max_open_uploads: 100, max_open_bytes: 1 << 30, max_stored_bytes: 12 };
    let Opened::OverQuota(why) = stores
        .content
        .create_upload(&upload_of(&a, &[("d", false), ("e", false)]), None, &quota)
        .await
        .expect("create")
    else {
        panic!("9 stored + 6 declared fit a 12-byte quota");
    };
    assert!(why.contains("9 stored"), "{why}");
    let fits = stores.content.create_upload(&upload_of(&a, &[("d", false)]), None, &quota).await.expect("create");
    assert!(matches!(fits, Opened::Upload(_)));
}

async fn concurrent_commits_take_distinct_numbers(stores: Stores) {
    let a = stored_asset(&stores, "users/c").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let upload = upload_of(&a, &[("f", true)]);
        open(&stores, &upload, None).await;
        let content = stores.content.clone();
        tasks.spawn(async move { content.commit_upload(&upload, &version_of(&upload)).await });
    }
    let mut numbers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.expect("task").expect("commit") {
            CommitOutcome::Committed(version) => numbers.push(version.number),
            other => panic!("unexpected {other:?}"),
        }
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    let latest = stores.content.latest_version(a.id).await.expect("latest").expect("exists");
    assert_eq!(latest.number, 8);
    assert_eq!(stores.assets.get(a.id).await.expect("get").expect("asset").latest_version, Some(8));
    let page = VersionQuery {
        asset_id: a.id,
        state: None,
        alias: None,
        labels: vec![("k".into(), "v".into())],
        include_archived: false,
        descending: false,
        after: Some(6),
        limit: 10,
    };
    let numbers: Vec<i64> = stores.content.list_versions(&page).await.expect("list").iter().map(|v| v.number).collect();
    assert_eq!(numbers, [7, 8]);
}

async fn a_commit_happens_once_and_only_while_open(stores: Stores) {
    let a = stored_asset(&stores, "users/o").await;
    let upload = upload_of(&a, &[("f", true)]);
    open(&stores, &upload, None).await;
    let CommitOutcome::Committed(first) =
        stores.content.commit_upload(&upload, &version_of(&upload)).await.expect("commit")
    else {
        panic!("not committed");
    };
    let CommitOutcome::Committed(second) =
        stores.content.commit_upload(&upload, &version_of(&upload)).await.expect("commit again")
    else {
        panic!("not committed");
    };
    assert_eq!(first, second, "a second commit returns the first version");
    assert_eq!(stores.content.get_version(a.id, 1).await.expect("get"), Some(*first.clone()));
    assert_eq!(stores.content.get_version(a.id, 2).await.expect("get"), None);
    assert!(!stores.content.close_upload(upload.id, UploadState::Cancelled).await.expect("close"));

    let cancelled = upload_of(&a, &[("f", true)]);
    open(&stores, &cancelled, None).await;
    assert!(stores.content.close_upload(cancelled.id, UploadState::Cancelled).await.expect("cancel"));
    let outcome = stores.content.commit_upload(&cancelled, &version_of(&cancelled)).await.expect("commit");
    assert_eq!(outcome, CommitOutcome::NotOpen(UploadState::Cancelled));
    assert_eq!(stores.content.latest_version(a.id).await.expect("latest").map(|v| v.number), Some(1));
}

async fn blob_index_answers_which_digests_are_missing(stores: Stores) {
    let digests: Vec<String> = (0..700).map(|i| format!("{i:064x}")).collect();
    for digest in digests.iter().step_by(2) {
        stores.content.record_blob(digest, 10, Utc::now()).await.expect("record");
        stores.content.record_blob(digest, 10, Utc::now()).await.expect("recording twice is harmless");
    }
    let missing = stores.content.missing_blobs(&digests).await.expect("missing");
    let expected: Vec<String> = digests.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(missing, expected);
    assert!(stores.content.missing_blobs(&[]).await.expect("empty").is_empty());
}

async fn idle_uploads_expire(stores: Stores) {
    let a = stored_asset(&stores, "users/e").await;
    let mut idle = upload_of(&a, &[("f", false)]);
    idle.expire_time = idle.create_time - chrono::Duration::seconds(1);
    let fresh = upload_of(&a, &[("f", false)]);
    open(&stores, &idle, None).await;
    open(&stores, &fresh, None).await;
    assert_eq!(stores.content.expire_uploads(Utc::now()).await.expect("expire"), [idle.id]);
    assert!(stores.content.expire_uploads(Utc::now()).await.expect("again").is_empty());
    let state = stores.content.get_upload(idle.id).await.expect("get").expect("exists").state;
    assert_eq!(state, UploadState::Expired);
    let outcome = stores.content.commit_upload(&idle, &version_of(&idle)).await.expect("commit");
    assert_eq!(outcome, CommitOutcome::NotOpen(UploadState::Expired));
}

async fn an_image_is_recorded_once_however_often_and_concurrently_it_is_seen(stores: Stores) {
    use crate::domain::version::ImageRecord;
    let a = stored_asset(&stores, "users/i").await;
    let image = |digest: &str, tag: &str| Version {
        id: uuid::Uuid::now_v7(),
        asset_id: a.id,
        number: 0,
        state: VersionState::Ready,
        files: Vec::new(),
        manifest_digest: digest.into(),
        total_size: 0,
        description: String::new(),
        labels: BTreeMap::new(),
        lineage: Lineage::RegistryPush {
            tag: tag.into(),
            pusher: "users/i".into(),
            image: ImageRecord {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                platforms: vec!["linux/amd64".into()],
                deployable_digest: digest.into(),
                ..ImageRecord::default()
            },
        },
        creator: "users/i".into(),
        create_time: Utc::now(),
        metrics: BTreeMap::new(),
        archive_time: None,
        revision: 1,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for tag in ["v1", "also-v1", "again"] {
        let content = stores.content.clone();
        let version = image("sha256:aaaa", tag);
        tasks.spawn(async move { content.record_image_version(&version).await });
    }
    let mut numbers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        numbers.push(done.expect("task").expect("record").number);
    }
    assert_eq!(numbers, [1, 1, 1], "one version per digest");
    let second = stores.content.record_image_version(&image("sha256:bbbb", "v2")).await.expect("record");
    assert_eq!(second.number, 2);
    let stored = stores.content.get_version(a.id, 2).await.expect("get").expect("exists");
    assert_eq!(stored.lineage, second.lineage, "the image record round-trips");
    assert_eq!(stores.assets.get(a.id).await.expect("get").expect("asset").latest_version, Some(2));
}

async fn grants_say_who_reads_and_which_versions_are_pinned(stores: Stores) {
    use crate::store::grants::GrantSet;
    let a = stored_asset(&stores, "users/owner").await;
    let set = GrantSet {
        source: "useCases/x".into(),
        sequence: 1,
        principals: vec!["users/reader".into()],
        targets: vec![(a.id, 3), (a.id, 0)],
    };
    assert!(stores.grants.replace(&set).await.expect("replace"));
    assert!(stores.grants.may_read("users/reader", a.id, Some(7)).await.expect("read"), "version 0 grants all");
    assert!(!stores.grants.may_read("users/stranger", a.id, None).await.expect("read"));
    assert!(stores.grants.is_pinned(a.id, 3).await.expect("pinned"));
    assert!(!stores.grants.is_pinned(a.id, 7).await.expect("pinned"), "following every version pins none");
    let emptied = GrantSet { sequence: 2, principals: Vec::new(), ..set };
    assert!(stores.grants.replace(&emptied).await.expect("replace"));
    assert!(!stores.grants.is_pinned(a.id, 3).await.expect("pinned"), "an emptied source pins nothing");
}
