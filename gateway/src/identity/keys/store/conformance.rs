//! One suite for both backends: `identity::keys::store::conformance::{sqlite,postgres}::<check>`.

use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use highwind_common::db::{Database, testing::conformance};
use uuid::Uuid;

use super::KeyStore;
use crate::identity::keys::ApiKey;

/// What the checks test: the key store of the migrated `db`.
async fn keys(db: Database) -> Arc<dyn KeyStore> {
    crate::storage::migrate(&db).await.expect("migrate");
    super::open(&db)
}

conformance!(open: keys; keys_round_trip_page_and_revoke);

fn key(owner: &str, name: &str) -> ApiKey {
    ApiKey {
        id: Uuid::now_v7(),
        owner: owner.into(),
        display_name: name.into(),
        salt: "00".repeat(16),
        hash: "11".repeat(32),
        create_time: Utc::now().trunc_subsecs(6),
        expire_time: Some(Utc::now().trunc_subsecs(6) + chrono::Duration::days(1)),
        revoke_time: None,
        parent: None,
    }
}

async fn keys_round_trip_page_and_revoke(store: Arc<dyn KeyStore>) {
    let keys: Vec<ApiKey> = (0..5).map(|i| key("users/a", &format!("k{i}"))).collect();
    for k in &keys {
        store.insert(k).await.expect("insert");
    }
    store.insert(&key("users/b", "other")).await.expect("insert");
    assert_eq!(store.get(keys[0].id).await.expect("get"), Some(keys[0].clone()));
    let first = store.list("users/a", None, 2).await.expect("list");
    assert_eq!(first.iter().map(|k| k.id).collect::<Vec<_>>(), [keys[4].id, keys[3].id, keys[2].id]);
    let rest = store.list("users/a", Some(keys[3].id), 10).await.expect("list");
    assert_eq!(rest.iter().map(|k| k.id).collect::<Vec<_>>(), [keys[2].id, keys[1].id, keys[0].id]);
    let at = Utc::now().trunc_subsecs(6);
    store.revoke(keys[1].id, at).await.expect("revoke");
    store.revoke(keys[1].id, at + chrono::Duration::hours(1)).await.expect("revoke again");
    assert_eq!(
        store.get(keys[1].id).await.expect("get").and_then(|k| k.revoke_time),
        Some(at),
        "first revocation stays"
    );

    // keys[2] made a child, which made a grandchild; revoking keys[2] revokes both, and nothing else.
    let child = ApiKey { parent: Some(keys[2].id), ..key("users/a", "child") };
    let grandchild = ApiKey { parent: Some(child.id), ..key("users/a", "grandchild") };
    store.insert(&child).await.expect("insert");
    store.insert(&grandchild).await.expect("insert");
    assert_eq!(store.get(grandchild.id).await.expect("get").and_then(|k| k.parent), Some(child.id));
    store.revoke(keys[2].id, at).await.expect("revoke");
    for made in [&child, &grandchild] {
        assert_eq!(
            store.get(made.id).await.expect("get").and_then(|k| k.revoke_time),
            Some(at),
            "{}",
            made.display_name
        );
    }
    assert_eq!(store.get(keys[3].id).await.expect("get").and_then(|k| k.revoke_time), None, "others stay");
}
