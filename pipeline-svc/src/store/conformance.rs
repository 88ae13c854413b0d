//! One suite for every backend: `store::conformance::sqlite::<check>` and `…::postgres::<check>`.

use std::sync::Arc;

use chrono::Duration;
use highwind_common::db::{Database, testing::conformance};
use uuid::Uuid;

use super::{RunQuery, RunRepository};
use crate::runs::entities::{Direction, LineageEdge, Run, State, Task, Values, now};

/// What the checks test: the migrated repository of `db`.
async fn repository(db: Database) -> Arc<dyn RunRepository> {
    crate::store::open(db).await.expect("migrate")
}

conformance!(
    open: repository;
    a_request_id_creates_one_run_per_creator,
    saves_are_compare_and_swap_and_keep_task_order,
    lists_page_newest_first_and_filter,
    unfinished_runs_are_the_open_ones,
    lineage_edges_are_recorded_once_and_found_by_version,
    cached_outputs_are_each_creators_own_newest_first,
);

fn run(creator: &str, version: &str, offset_seconds: i64) -> Run {
    let time = now() + Duration::seconds(offset_seconds);
    Run {
        id: Uuid::now_v7(),
        display_name: "r".into(),
        pipeline_version: version.into(),
        creator: creator.into(),
        create_time: time,
        update_time: time,
        attempt: 1,
        sequence: 1,
        ..Run::default()
    }
}

async fn a_request_id_creates_one_run_per_creator(store: Arc<dyn RunRepository>) {
    let first = Run { request_id: Some("k1".into()), ..run("users/alice", "assets/p/versions/1", 0) };
    let again = Run { request_id: Some("k1".into()), ..run("users/alice", "assets/p/versions/1", 0) };
    let other = Run { request_id: Some("k1".into()), ..run("users/bob", "assets/p/versions/1", 0) };
    assert_eq!(store.create(&first, "ir").await.expect("create").id, first.id);
    assert_eq!(store.create(&again, "ir").await.expect("create").id, first.id, "same key, same run");
    assert_eq!(store.create(&other, "ir").await.expect("create").id, other.id, "keys are per creator");
    assert!(store.get(again.id).await.expect("get").is_none(), "the repeat stored nothing");
    let old = Run { request_id: Some("k2".into()), ..run("users/alice", "assets/p/versions/1", -25 * 3600) };
    store.create(&old, "ir").await.expect("create");
    let fresh = Run { request_id: Some("k2".into()), ..run("users/alice", "assets/p/versions/1", 0) };
    assert_eq!(store.create(&fresh, "ir").await.expect("create").id, fresh.id, "a key holds for 24 hours only");
    assert_eq!(store.ir(first.id).await.expect("ir").as_deref(), Some("ir"));
}

async fn saves_are_compare_and_swap_and_keep_task_order(store: Arc<dyn RunRepository>) {
    let mut stored = run("users/alice", "assets/p/versions/1", 0);
    store.create(&stored, "ir").await.expect("create");
    let task = |path: &str, state| Task { path: path.into(), uid: Uuid::now_v7(), state, ..Task::default() };
    stored.state = State::Running;
    stored.sequence = 3;
    let (b, a) = (task("b", State::Pending), task("a", State::Pending));
    assert!(store.save(&stored, &[b.clone(), a.clone()], 1).await.expect("save"));
    assert!(!store.save(&stored, &[], 1).await.expect("stale save"), "a stale sequence writes nothing");
    stored.sequence = 4;
    let done = Task { state: State::Succeeded, ..b.clone() };
    assert!(store.save(&stored, std::slice::from_ref(&done), 3).await.expect("save"));
    let tasks = store.tasks(stored.id).await.expect("tasks");
    assert_eq!(tasks.iter().map(|t| t.path.as_str()).collect::<Vec<_>>(), ["b", "a"], "first-seen order");
    assert_eq!(tasks[0], done);
    assert_eq!(store.get(stored.id).await.expect("get"), Some(stored));
}

async fn lists_page_newest_first_and_filter(store: Arc<dyn RunRepository>) {
    let mut made = Vec::new();
    for i in 0..5 {
        let version = if i % 2 == 0 { "assets/p/versions/1" } else { "assets/q/versions/2" };
        let created = run("users/alice", version, i);
        store.create(&created, "ir").await.expect("create");
        made.push(created);
    }
    store.create(&run("users/bob", "assets/p/versions/1", 9), "ir").await.expect("create");
    let query = RunQuery { creator: "users/alice".into(), newest_first: true, limit: 2, ..RunQuery::default() };
    let first = store.list(&query).await.expect("list");
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), [made[4].id, made[3].id]);
    let last = &first[1];
    let rest = store
        .list(&RunQuery { after: Some((last.create_time, last.id)), limit: 10, ..query.clone() })
        .await
        .expect("list");
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), [made[2].id, made[1].id, made[0].id]);
    let of_p = store
        .list(&RunQuery { pipeline_asset: Some("assets/p".into()), limit: 10, ..query.clone() })
        .await
        .expect("list");
    assert_eq!(of_p.len(), 3, "alice's runs of any version of assets/p");
    let oldest_first = store.list(&RunQuery { newest_first: false, limit: 1, ..query.clone() }).await.expect("list");
    assert_eq!(oldest_first[0].id, made[0].id);
    let later =
        store.list(&RunQuery { created_after: Some(made[2].create_time), limit: 10, ..query }).await.expect("list");
    assert_eq!(later.len(), 2);
}

async fn unfinished_runs_are_the_open_ones(store: Arc<dyn RunRepository>) {
    let open = run("users/alice", "assets/p/versions/1", 0);
    let mut done = run("users/alice", "assets/p/versions/1", 1);
    store.create(&open, "ir").await.expect("create");
    store.create(&done, "ir").await.expect("create");
    done.state = State::Succeeded;
    done.sequence = 2;
    assert!(store.save(&done, &[], 1).await.expect("save"));
    assert_eq!(store.unfinished().await.expect("unfinished"), [open.id]);
}

async fn lineage_edges_are_recorded_once_and_found_by_version(store: Arc<dyn RunRepository>) {
    let (first, second) = (run("users/alice", "assets/p/versions/1", 0), run("users/alice", "assets/p/versions/1", 1));
    store.create(&first, "ir").await.expect("create");
    store.create(&second, "ir").await.expect("create");
    let edge = |run: &Run, version: &str, direction, port: &str| LineageEdge {
        run_id: run.id,
        asset_version: version.into(),
        direction,
        port: port.into(),
        artifact_type: "system.Dataset".into(),
    };
    let edges = [
        edge(&first, "assets/d/versions/1", Direction::In, "importer"),
        edge(&first, "assets/o/versions/1", Direction::Out, "train/model"),
        edge(&second, "assets/o/versions/1", Direction::In, "importer"),
    ];
    store.record_lineage(&edges).await.expect("record");
    store.record_lineage(&edges[..1]).await.expect("recording again changes nothing");
    let readers = store.runs_touching("assets/o/versions/1", Direction::In, 10).await.expect("readers");
    assert_eq!(readers, [second.id]);
    let producers = store.runs_touching("assets/o/versions/1", Direction::Out, 10).await.expect("producers");
    assert_eq!(producers, [first.id]);
    let of_first = store.lineage_of(first.id).await.expect("edges");
    assert_eq!(of_first, edges[..2].to_vec());
}

async fn cached_outputs_are_each_creators_own_newest_first(store: Arc<dyn RunRepository>) {
    let runs = [run("users/alice", "assets/p/versions/1", 0), run("users/alice", "assets/p/versions/1", 1)];
    for r in &runs {
        store.create(r, "ir").await.expect("create");
    }
    let outputs = |n: i64| Values {
        parameters: [("n".to_owned(), serde_json::json!(n))].into_iter().collect(),
        ..Values::default()
    };
    store.remember_outputs("users/alice", "fp", runs[0].id, "train", &outputs(1)).await.expect("remember");
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    store.remember_outputs("users/alice", "fp", runs[1].id, "train", &outputs(2)).await.expect("remember");
    store
        .remember_outputs("users/alice", "fp", runs[1].id, "train", &outputs(3))
        .await
        .expect("a repeat keeps the first");
    store.remember_outputs("users/alice", "other", runs[1].id, "eval", &outputs(4)).await.expect("remember");

    let cached = store.cached_outputs("users/alice", "fp", 10).await.expect("cached");
    assert_eq!(cached, [(runs[1].id, "train".to_owned(), outputs(2)), (runs[0].id, "train".to_owned(), outputs(1))]);
    assert_eq!(store.cached_outputs("users/alice", "fp", 1).await.expect("cached").len(), 1, "at most the limit");
    assert!(store.cached_outputs("users/bob", "fp", 10).await.expect("cached").is_empty(), "never another user's");
}
