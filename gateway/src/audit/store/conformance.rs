//! One suite for both backends: `audit::store::conformance::{sqlite,postgres}::<check>`.

use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};
use highwind_common::db::{Database, testing::conformance};
use uuid::Uuid;

use super::{AuditQuery, AuditStore};
use crate::audit::AuditEvent;

/// What the checks test: the audit store of the migrated `db`.
async fn audit(db: Database) -> Arc<dyn AuditStore> {
    crate::storage::migrate(&db).await.expect("migrate");
    super::open(&db)
}

conformance!(
    open: audit;
    events_read_back_whole_newest_first_in_pages,
    filters_select_principal_code_and_a_resource_with_what_it_contains,
);

fn event(seconds_ago: i64, principal: &str, target: &str, code: &str) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        time: Utc::now().trunc_subsecs(6) - Duration::seconds(seconds_ago),
        principal: principal.into(),
        method: "/highwind.usecase.v1.UseCaseService/UpdateUseCase".into(),
        target: target.into(),
        code: code.into(),
        trace_id: format!("trace-{seconds_ago}"),
    }
}

fn ids(events: &[AuditEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

async fn events_read_back_whole_newest_first_in_pages(store: Arc<dyn AuditStore>) {
    let events: Vec<AuditEvent> = (0..5).map(|i| event(10 - i, "users/alice", "useCases/u", "OK")).collect();
    store.append(&events[..2]).await.expect("append");
    store.append(&events[2..]).await.expect("append");

    let first = store.list(&AuditQuery { limit: 2, ..AuditQuery::default() }).await.expect("list");
    assert_eq!(first, [events[4].clone(), events[3].clone(), events[2].clone()], "limit + 1, newest first, whole");
    let last = &first[1];
    let rest = store
        .list(&AuditQuery { before: Some((last.time.timestamp_micros(), last.id)), limit: 10, ..AuditQuery::default() })
        .await
        .expect("list");
    assert_eq!(ids(&rest), [events[2].id, events[1].id, events[0].id]);

    // Two events in the same microsecond are told apart by id.
    let same_time = AuditEvent { id: Uuid::now_v7(), ..events[0].clone() };
    store.append(std::slice::from_ref(&same_time)).await.expect("append");
    let older = store
        .list(&AuditQuery {
            before: Some((same_time.time.timestamp_micros(), same_time.id)),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(&older), [events[0].id]);
}

async fn filters_select_principal_code_and_a_resource_with_what_it_contains(store: Arc<dyn AuditStore>) {
    let own = event(6, "users/alice", "useCases/u", "OK");
    let member = event(5, "users/bob", "useCases/u/members/m", "PERMISSION_DENIED");
    let sibling = event(4, "users/alice", "useCases/u2", "OK");
    let longer = event(3, "users/alice", "useCases/u-x", "OK");
    let other = event(2, "users/carol", "assets/a", "INVALID_ARGUMENT");
    store.append(&[own.clone(), member.clone(), sibling.clone(), longer.clone(), other.clone()]).await.expect("append");
    let list = |query: AuditQuery| {
        let store = store.clone();
        async move { ids(&store.list(&AuditQuery { limit: 10, ..query }).await.expect("list")) }
    };

    assert_eq!(
        list(AuditQuery { target: Some("useCases/u".into()), ..AuditQuery::default() }).await,
        [member.id, own.id]
    );
    assert_eq!(
        list(AuditQuery { principal: Some("users/alice".into()), ..AuditQuery::default() }).await,
        [longer.id, sibling.id, own.id]
    );
    assert_eq!(list(AuditQuery { code: Some("INVALID_ARGUMENT".into()), ..AuditQuery::default() }).await, [other.id]);
    assert_eq!(
        list(AuditQuery {
            principal: Some("users/alice".into()),
            target: Some("useCases/u".into()),
            ..AuditQuery::default()
        })
        .await,
        [own.id],
        "all conditions hold"
    );
}
