//! Checks of what happens to versions after their commit: aliases, metadata updates and archiving, and purging an
//! asset down to the blobs the collector may take.

use std::collections::BTreeMap;

use chrono::Utc;

use super::{digest_of, open, stored_asset, upload_of, version_of};
use crate::{
    domain::{aliases::Alias, asset::Asset, version::Version},
    store::{CommitOutcome, Stores, VersionQuery},
};

/// Commits one version of `a` per entry of `files`, returning them in order.
async fn committed_versions(stores: &Stores, a: &Asset, files: &[&[(&str, bool)]]) -> Vec<Version> {
    let mut versions = Vec::new();
    for files in files {
        let upload = open(stores, &upload_of(a, files), None).await;
        let CommitOutcome::Committed(version) =
            stores.content.commit_upload(&upload, &version_of(&upload)).await.expect("commit")
        else {
            panic!("an open upload commits");
        };
        versions.push(*version);
    }
    versions
}

fn versions_of(a: &Asset) -> VersionQuery {
    VersionQuery {
        asset_id: a.id,
        state: None,
        descending: false,
        alias: None,
        labels: Vec::new(),
        include_archived: false,
        after: None,
        limit: 10,
    }
}

fn numbers(versions: &[Version]) -> Vec<i64> {
    versions.iter().map(|v| v.number).collect()
}

pub(super) async fn aliases_point_move_select_and_go(stores: Stores) {
    let a = stored_asset(&stores, "users/al").await;
    committed_versions(&stores, &a, &[&[("x", false)], &[("y", false)]]).await;
    let prod = |version_number| Alias { name: "prod".into(), version_number, protected: true };
    let staging = Alias { name: "staging".into(), version_number: 1, protected: false };
    stores.content.set_alias(a.id, &prod(1), Utc::now()).await.expect("set");
    stores.content.set_alias(a.id, &staging, Utc::now()).await.expect("set");
    stores.content.set_alias(a.id, &prod(2), Utc::now()).await.expect("move");
    assert_eq!(stores.content.aliases(a.id).await.expect("aliases"), [prod(2), staging.clone()], "by name");
    let selected = stores
        .content
        .list_versions(&VersionQuery { alias: Some("prod".into()), ..versions_of(&a) })
        .await
        .expect("list");
    assert_eq!(numbers(&selected), [2]);
    assert_eq!(stores.content.delete_alias(a.id, "prod").await.expect("delete"), Some(prod(2)));
    assert_eq!(stores.content.delete_alias(a.id, "prod").await.expect("delete again"), None);
    assert_eq!(stores.content.aliases(a.id).await.expect("aliases"), [staging]);
}

pub(super) async fn version_metadata_updates_are_compare_and_swap_and_archived_versions_step_aside(stores: Stores) {
    let a = stored_asset(&stores, "users/vm").await;
    let versions = committed_versions(&stores, &a, &[&[("x", false)], &[("y", false)], &[("z", false)]]).await;
    assert_eq!(stores.content.latest_version(a.id).await.expect("latest").map(|v| v.number), Some(3));

    let mut labelled = versions[0].clone();
    labelled.labels = BTreeMap::from([("stage".into(), "gold".into())]);
    labelled.metrics = BTreeMap::from([("auc".into(), 0.75)]);
    labelled.description = "best so far".into();
    labelled.revision += 1;
    assert!(stores.content.update_version(&labelled, versions[0].revision).await.expect("update"));
    assert!(!stores.content.update_version(&labelled, versions[0].revision).await.expect("stale"), "stale revision");
    let stored = stores.content.get_version(a.id, 1).await.expect("get").expect("version");
    assert_eq!(stored, labelled, "metadata changed, files kept");
    let gold = stores
        .content
        .list_versions(&VersionQuery { labels: vec![("stage".into(), "gold".into())], ..versions_of(&a) })
        .await
        .expect("list");
    assert_eq!(numbers(&gold), [1]);

    let mut archived = versions[2].clone();
    archived.archive_time = Some(chrono::SubsecRound::trunc_subsecs(Utc::now(), 6));
    archived.revision += 1;
    assert!(stores.content.update_version(&archived, versions[2].revision).await.expect("archive"));
    assert_eq!(stores.content.latest_version(a.id).await.expect("latest").map(|v| v.number), Some(2));
    let live = stores.content.list_versions(&versions_of(&a)).await.expect("list");
    assert_eq!(numbers(&live), [1, 2]);
    let all = stores
        .content
        .list_versions(&VersionQuery { include_archived: true, descending: true, ..versions_of(&a) })
        .await
        .expect("list");
    assert_eq!(numbers(&all), [3, 2, 1]);
    assert_eq!(all[0].archive_time, archived.archive_time);
}

pub(super) async fn purging_an_asset_leaves_its_blobs_to_the_collector(stores: Stores) {
    let (doomed, kept) = (stored_asset(&stores, "users/p").await, stored_asset(&stores, "users/p").await);
    for path in ["only-doomed", "shared", "orphan"] {
        stores.content.record_blob(&digest_of(path), 3, Utc::now() - chrono::Duration::hours(2)).await.expect("record");
    }
    committed_versions(&stores, &doomed, &[&[("only-doomed", true), ("shared", true)]]).await;
    committed_versions(&stores, &kept, &[&[("shared", true)]]).await;
    let pending = open(&stores, &upload_of(&doomed, &[("never-sent", false)]), None).await;
    stores
        .content
        .set_alias(doomed.id, &Alias { name: "a".into(), version_number: 1, protected: false }, Utc::now())
        .await
        .expect("alias");

    let (versions, uploads) = stores.content.purge_asset(doomed.id).await.expect("purge");
    assert_eq!(versions, 1);
    assert_eq!(uploads.len(), 2, "the committed upload and the open one");
    assert!(uploads.contains(&pending.id));
    assert_eq!(stores.assets.get(doomed.id).await.expect("get"), None);
    assert_eq!(stores.content.get_version(doomed.id, 1).await.expect("get"), None);
    assert!(stores.content.aliases(doomed.id).await.expect("aliases").is_empty());

    // "orphan" was never referenced, "younger" is inside the grace window, "shared" is still the kept asset's.
    let cutoff = Utc::now() - chrono::Duration::hours(1);
    stores.content.record_blob(&digest_of("younger"), 3, Utc::now()).await.expect("record");
    let (old, young) = stores.content.unreferenced_blobs(cutoff).await.expect("unreferenced");
    let mut expected = vec![(digest_of("only-doomed"), 3), (digest_of("orphan"), 3)];
    expected.sort();
    assert_eq!(old, expected);
    assert_eq!(young, 1);
    assert!(stores.content.drop_blob_if_unreferenced(&digest_of("only-doomed")).await.expect("drop"));
    assert!(!stores.content.drop_blob_if_unreferenced(&digest_of("only-doomed")).await.expect("gone already"));
    assert!(!stores.content.drop_blob_if_unreferenced(&digest_of("shared")).await.expect("referenced"));
    assert_eq!(stores.content.missing_blobs(&[digest_of("shared")]).await.expect("missing"), Vec::<String>::new());
}
