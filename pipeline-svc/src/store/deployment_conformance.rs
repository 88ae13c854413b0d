//! The deployment repository on every backend: `store::deployment_conformance::sqlite::<check>` and
//! `…::postgres::<check>`.

use std::sync::Arc;

use chrono::Duration;
use highwind_common::db::{Database, testing::conformance};

use super::DeploymentRepository;
use crate::{runs::entities::now, serving::entities::DeploymentRecord};

async fn repository(db: Database) -> Arc<dyn DeploymentRepository> {
    crate::store::open_both(db).await.expect("migrate").1
}

conformance!(
    open: repository;
    deployments_are_kept_by_id_and_listed_per_use_case_newest_first,
);

fn deployment(id: &str, use_case: &str, offset_seconds: i64) -> DeploymentRecord {
    DeploymentRecord {
        id: id.into(),
        use_case: use_case.into(),
        release: format!("{use_case}/releases/1"),
        predictor_version: "assets/a/versions/1".into(),
        predictor_image: "127.0.0.1:5000/highwind/alice/a@sha256:00".into(),
        replicas: 1,
        allow_network: false,
        creator: "users/alice".into(),
        create_time: now() + Duration::seconds(offset_seconds),
    }
}

async fn deployments_are_kept_by_id_and_listed_per_use_case_newest_first(store: Arc<dyn DeploymentRepository>) {
    let (first, second, other) = (
        deployment("aaaaaaa1", "useCases/u", 0),
        deployment("aaaaaaa2", "useCases/u", 1),
        deployment("bbbbbbb1", "useCases/v", 2),
    );
    for d in [&first, &second, &other] {
        assert!(store.insert(d).await.expect("insert"));
    }
    assert!(!store.insert(&deployment("aaaaaaa1", "useCases/v", 3)).await.expect("insert"), "an id is taken once");
    assert_eq!(store.get("aaaaaaa1").await.expect("get"), Some(first.clone()));
    assert_eq!(store.get("zzzzzzzz").await.expect("get"), None);
    let listed = store.list(Some("useCases/u")).await.expect("list");
    assert_eq!(listed, [second.clone(), first.clone()], "newest first, this use case's only");
    assert_eq!(store.list(None).await.expect("all").len(), 3);
    assert!(store.delete("aaaaaaa2").await.expect("delete"));
    assert!(!store.delete("aaaaaaa2").await.expect("delete"), "once");
    assert_eq!(store.list(Some("useCases/u")).await.expect("list"), [first]);
}
