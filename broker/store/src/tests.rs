//! The store against real SQLite files and a real PostgreSQL (`test_support`): every
//! operation on both, and what only a SQLite file has (reopening, WAL, its errors).

use crate::{GrantFilter, OpenError, Store, StoreError};
use sluice_shared::grants::{ApprovalRule, Grant, GrantState, Requester, Vote};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A pending grant of `subject` with no approvals yet and nothing optional set.
pub(crate) fn grant(id: &str, subject: &str, created_at: u64) -> Grant {
    Grant {
        id: id.into(),
        state: GrantState::Pending,
        requester: Requester {
            subject: subject.into(),
            groups: vec!["dev".into()],
            auth_method: "oidc".into(),
            provider: None,
            ci: BTreeMap::new(),
        },
        resource: "orders-db".into(),
        role: "read".into(),
        rule: "devs-read".into(),
        reason: String::new(),
        ttl_secs: 3600,
        requested_ttl_secs: None,
        approval: None,
        votes: Vec::new(),
        created_at,
        activated_at: None,
        expires_at: None,
        ended_at: None,
        ended_by: None,
        end_reason: None,
    }
}

/// Every field set: a CI workload's request that needed two approvers and got them.
fn full_grant() -> Grant {
    let mut ci = BTreeMap::new();
    ci.insert("repository".into(), "acme/shop".into());
    ci.insert("workflow".into(), "deploy.yml".into());
    ci.insert("ref".into(), "refs/heads/main".into());
    Grant {
        id: "g_full".into(),
        state: GrantState::Revoked,
        requester: Requester {
            subject: "repo:acme/shop:ref:refs/heads/main".into(),
            groups: vec!["ci".into(), "deployers".into()],
            auth_method: "workload".into(),
            provider: Some("github-actions".into()),
            ci,
        },
        resource: "orders-db".into(),
        role: "migrate".into(),
        rule: "ci-migrations".into(),
        reason: "schema migration 42 \"quoted\" ✓".into(),
        ttl_secs: 900,
        requested_ttl_secs: Some(7200),
        approval: Some(ApprovalRule {
            groups: vec!["dba".into(), "sre".into()],
            count: 2,
            self_approve: false,
            expires_at: 1_700_000_600,
        }),
        votes: vec![
            Vote {
                approver: "carol".into(),
                approve: true,
                reason: Some("looks fine".into()),
                at: 1_700_000_100,
            },
            Vote {
                approver: "dave".into(),
                approve: true,
                reason: None,
                at: 1_700_000_200,
            },
        ],
        created_at: 1_700_000_000,
        activated_at: Some(1_700_000_200),
        expires_at: Some(1_700_001_100),
        ended_at: Some(1_700_000_500),
        ended_by: Some("carol".into()),
        end_reason: Some("done early".into()),
    }
}

fn vote(approver: &str, approve: bool, at: u64) -> Vote {
    Vote {
        approver: approver.into(),
        approve,
        reason: (!approve).then(|| "no".into()),
        at,
    }
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.db");
    (dir, path)
}

fn ids(grants: &[Grant]) -> Vec<&str> {
    grants.iter().map(|g| g.id.as_str()).collect()
}

/// The error and its causes, as `{:#}` through anyhow shows them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn full_grant_round_trips_on_a_file() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).await.unwrap();
    let original = full_grant();
    store.insert(&original).await.unwrap();
    assert_eq!(store.get("g_full").await.unwrap(), Some(original.clone()));
    // And through the listing path too.
    assert_eq!(
        store.list(&GrantFilter::default()).await.unwrap(),
        vec![original]
    );
}

async fn minimal_grant_round_trips(store: Store) {
    let original = grant("g_min", "alice", 10);
    store.insert(&original).await.unwrap();
    assert_eq!(store.get("g_min").await.unwrap(), Some(original));
    assert_eq!(store.get("g_other").await.unwrap(), None);
}

async fn votes_come_back_in_time_order(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    store.add_vote("g1", &vote("zed", true, 30)).await.unwrap();
    store.add_vote("g1", &vote("amy", true, 20)).await.unwrap();
    store.add_vote("g1", &vote("bob", false, 25)).await.unwrap();
    let got = store.get("g1").await.unwrap().unwrap();
    let order: Vec<_> = got.votes.iter().map(|v| v.approver.as_str()).collect();
    assert_eq!(order, ["amy", "bob", "zed"]);
    assert_eq!(got.votes[1], vote("bob", false, 25));
}

async fn duplicate_id_is_refused(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    let err = store.insert(&grant("g1", "bob", 20)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate { ref id } if id == "g1"),
        "{err:?}"
    );
    assert_eq!(
        store.get("g1").await.unwrap().unwrap().requester.subject,
        "alice"
    );
}

async fn insert_with_a_repeated_approver_leaves_nothing_behind(store: Store) {
    let mut g = grant("g1", "alice", 10);
    g.votes = vec![vote("carol", true, 11), vote("carol", false, 12)];
    let err = store.insert(&g).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyVoted), "{err:?}");
    assert_eq!(store.get("g1").await.unwrap(), None);
}

async fn unstorable_values_are_refused(store: Store) {
    let mut g = grant("g1", "alice", 10);
    g.state = GrantState::Unknown;
    let err = store.insert(&g).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");

    let mut g = grant("g2", "alice", u64::MAX);
    let err = store.insert(&g).await.unwrap_err();
    assert!(err.to_string().contains("created_at"), "{err}");
    g.created_at = 10;
    g.approval = Some(ApprovalRule {
        groups: vec![],
        count: 1,
        self_approve: false,
        expires_at: u64::MAX,
    });
    assert!(matches!(
        store.insert(&g).await,
        Err(StoreError::Invalid { .. })
    ));

    store.insert(&grant("g3", "alice", 10)).await.unwrap();
    let err = store.activate("g3", 11, u64::MAX).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert_eq!(
        store.get("g3").await.unwrap().unwrap().state,
        GrantState::Pending
    );
    let i64_max = u64::try_from(i64::MAX).unwrap();
    let g = store.activate("g3", 11, i64_max).await.unwrap();
    assert_eq!(g.expires_at, Some(i64_max));
}

async fn list_filters_and_orders_newest_first(store: Store) {
    // Inserted out of time order; b2 and b3 share a creation time (insertion order breaks it).
    for (id, subject, at) in [
        ("a2", "alice", 20),
        ("b1", "bob", 10),
        ("a1", "alice", 5),
        ("b2", "bob", 30),
        ("b3", "bob", 30),
        ("a3", "alice", 40),
    ] {
        store.insert(&grant(id, subject, at)).await.unwrap();
    }
    store.activate("a2", 21, 100).await.unwrap();
    store.activate("b3", 31, 100).await.unwrap();
    store
        .finish(
            "b1",
            &[GrantState::Pending],
            GrantState::Denied,
            11,
            "carol",
            "no",
        )
        .await
        .unwrap();

    let all = store.list(&GrantFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["a3", "b3", "b2", "a2", "b1", "a1"]);

    let alice = GrantFilter {
        subject: Some("alice".into()),
        ..GrantFilter::default()
    };
    assert_eq!(ids(&store.list(&alice).await.unwrap()), ["a3", "a2", "a1"]);

    let live_bob = GrantFilter {
        subject: Some("bob".into()),
        states: vec![GrantState::Pending, GrantState::Active],
        limit: 0,
    };
    assert_eq!(ids(&store.list(&live_bob).await.unwrap()), ["b3", "b2"]);

    let ended = GrantFilter {
        states: vec![GrantState::Denied, GrantState::Expired],
        ..GrantFilter::default()
    };
    assert_eq!(ids(&store.list(&ended).await.unwrap()), ["b1"]);

    let newest_two = GrantFilter {
        limit: 2,
        ..GrantFilter::default()
    };
    assert_eq!(ids(&store.list(&newest_two).await.unwrap()), ["a3", "b3"]);

    let nobody = GrantFilter {
        subject: Some("mallory".into()),
        ..GrantFilter::default()
    };
    assert!(store.list(&nobody).await.unwrap().is_empty());
}

async fn limit_counts_grants_not_votes(store: Store) {
    store.insert(&grant("old", "alice", 1)).await.unwrap();
    store.insert(&grant("new", "alice", 2)).await.unwrap();
    for approver in ["a", "b", "c"] {
        store
            .add_vote("new", &vote(approver, true, 3))
            .await
            .unwrap();
    }
    let filter = GrantFilter {
        limit: 1,
        ..GrantFilter::default()
    };
    let got = store.list(&filter).await.unwrap();
    assert_eq!(ids(&got), ["new"]);
    assert_eq!(got[0].votes.len(), 3);
}

async fn live_is_pending_and_active_only(store: Store) {
    for (id, at) in [("p", 1), ("a", 2), ("d", 3), ("e", 4), ("r", 5)] {
        store.insert(&grant(id, "alice", at)).await.unwrap();
    }
    store.activate("a", 10, 100).await.unwrap();
    let pending = [GrantState::Pending];
    let active = [GrantState::Active];
    store
        .finish("d", &pending, GrantState::Denied, 10, "carol", "no")
        .await
        .unwrap();
    store.activate("e", 10, 20).await.unwrap();
    store
        .finish("e", &active, GrantState::Expired, 20, "sluiced", "")
        .await
        .unwrap();
    store.activate("r", 10, 100).await.unwrap();
    store
        .finish("r", &active, GrantState::Revoked, 15, "alice", "done")
        .await
        .unwrap();
    assert_eq!(ids(&store.live().await.unwrap()), ["a", "p"]);
}

async fn activate_sets_times_once(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    let g = store.activate("g1", 20, 3620).await.unwrap();
    assert_eq!(g.state, GrantState::Active);
    assert_eq!((g.activated_at, g.expires_at), (Some(20), Some(3620)));
    assert_eq!(store.get("g1").await.unwrap(), Some(g));

    let err = store.activate("g1", 30, 9999).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotInState {
                actual: GrantState::Active
            }
        ),
        "{err:?}"
    );
    let g = store.get("g1").await.unwrap().unwrap();
    assert_eq!((g.activated_at, g.expires_at), (Some(20), Some(3620)));

    let err = store.activate("g_missing", 30, 40).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn activate_after_expiry_loses(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    // Nobody decided in time: the approval timer expires the request ...
    let g = store
        .finish(
            "g1",
            &[GrantState::Pending],
            GrantState::Expired,
            610,
            "sluiced",
            "approval timed out",
        )
        .await
        .unwrap();
    assert_eq!(g.state, GrantState::Expired);
    assert_eq!(g.ended_at, Some(610));
    assert_eq!(g.ended_by.as_deref(), Some("sluiced"));
    assert_eq!(g.end_reason.as_deref(), Some("approval timed out"));
    // ... and the approval that arrives a moment later cannot activate it.
    let err = store.activate("g1", 611, 4211).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotInState {
                actual: GrantState::Expired
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.get("g1").await.unwrap(), Some(g));
}

async fn vote_after_deny_loses(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    store
        .add_vote("g1", &vote("carol", false, 11))
        .await
        .unwrap();
    store
        .finish(
            "g1",
            &[GrantState::Pending],
            GrantState::Denied,
            11,
            "carol",
            "no",
        )
        .await
        .unwrap();
    let err = store
        .add_vote("g1", &vote("dave", true, 12))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotInState {
                actual: GrantState::Denied
            }
        ),
        "{err:?}"
    );
    let err = store.activate("g1", 12, 100).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotInState {
                actual: GrantState::Denied
            }
        ),
        "{err:?}"
    );
    let g = store.get("g1").await.unwrap().unwrap();
    assert_eq!(g.votes, [vote("carol", false, 11)]);
}

async fn second_vote_by_the_same_approver_is_refused(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    store
        .add_vote("g1", &vote("carol", true, 11))
        .await
        .unwrap();
    let err = store
        .add_vote("g1", &vote("carol", false, 12))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyVoted), "{err:?}");
    // A different approver is fine, and the same approver on another grant too.
    store.add_vote("g1", &vote("dave", true, 13)).await.unwrap();
    store.insert(&grant("g2", "alice", 10)).await.unwrap();
    store
        .add_vote("g2", &vote("carol", true, 14))
        .await
        .unwrap();
    let g = store.get("g1").await.unwrap().unwrap();
    assert_eq!(g.votes, [vote("carol", true, 11), vote("dave", true, 13)]);

    let err = store
        .add_vote("g_missing", &vote("carol", true, 15))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn finish_happens_once(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    store.activate("g1", 11, 100).await.unwrap();
    let live = [GrantState::Pending, GrantState::Active];
    let g = store
        .finish("g1", &live, GrantState::Revoked, 50, "alice", "done")
        .await
        .unwrap();
    assert_eq!(g.state, GrantState::Revoked);
    // The expiry timer fires afterwards: too late, and the revoke's record stays.
    let err = store
        .finish(
            "g1",
            &[GrantState::Active],
            GrantState::Expired,
            100,
            "sluiced",
            "",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotInState {
                actual: GrantState::Revoked
            }
        ),
        "{err:?}"
    );
    let err = store
        .finish("g1", &live, GrantState::Revoked, 60, "bob", "again")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotInState { .. }), "{err:?}");
    assert_eq!(store.get("g1").await.unwrap(), Some(g));

    let err = store
        .finish("g_missing", &live, GrantState::Revoked, 60, "bob", "")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn finish_respects_from_and_needs_a_final_target(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    // Only active grants may expire by TTL; this one is still pending.
    let err = store
        .finish(
            "g1",
            &[GrantState::Active],
            GrantState::Expired,
            20,
            "sluiced",
            "",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotInState {
                actual: GrantState::Pending
            }
        ),
        "{err:?}"
    );
    let err = store
        .finish("g1", &[], GrantState::Revoked, 20, "alice", "")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotInState { .. }), "{err:?}");
    for to in [GrantState::Active, GrantState::Pending, GrantState::Unknown] {
        let err = store
            .finish("g1", &[GrantState::Pending], to, 20, "alice", "")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{to}: {err:?}");
    }
    let g = store.get("g1").await.unwrap().unwrap();
    assert_eq!((g.state, g.ended_at), (GrantState::Pending, None));
    // An empty reason is no reason.
    let g = store
        .finish(
            "g1",
            &[GrantState::Pending],
            GrantState::Revoked,
            20,
            "alice",
            "",
        )
        .await
        .unwrap();
    assert_eq!(g.end_reason, None);
}

async fn find_reusable_only_finds_own_usable_grants(store: Store) {
    let now = 1000;
    let active = [GrantState::Active];
    // Not reusable: expired by time, ended, someone else's, other role, other resource.
    let mut stale = grant("stale", "alice", 100);
    stale.state = GrantState::Active;
    stale.activated_at = Some(100);
    stale.expires_at = Some(now);
    store.insert(&stale).await.unwrap();
    store.insert(&grant("revoked", "alice", 900)).await.unwrap();
    store.activate("revoked", 900, 5000).await.unwrap();
    store
        .finish("revoked", &active, GrantState::Revoked, 950, "alice", "")
        .await
        .unwrap();
    store.insert(&grant("bobs", "bob", 990)).await.unwrap();
    store.activate("bobs", 990, 5000).await.unwrap();
    let mut other_role = grant("write", "alice", 991);
    other_role.role = "write".into();
    store.insert(&other_role).await.unwrap();
    let mut other_resource = grant("other-db", "alice", 992);
    other_resource.resource = "billing-db".into();
    store.insert(&other_resource).await.unwrap();
    // A pending request whose approval window closed is as good as expired.
    let mut timed_out = grant("timed-out", "alice", 993);
    timed_out.approval = Some(ApprovalRule {
        groups: vec!["dba".into()],
        count: 1,
        self_approve: false,
        expires_at: now,
    });
    store.insert(&timed_out).await.unwrap();

    let find = || store.find_reusable("alice", "orders-db", "read", now);
    assert_eq!(find().await.unwrap(), None);

    // An active one that still runs.
    store.insert(&grant("older", "alice", 500)).await.unwrap();
    store.activate("older", 500, now + 1).await.unwrap();
    assert_eq!(find().await.unwrap().unwrap().id, "older");

    // A newer pending request (approval still open) wins: newest first.
    let mut waiting = grant("waiting", "alice", 600);
    waiting.approval = Some(ApprovalRule {
        groups: vec!["dba".into()],
        count: 1,
        self_approve: false,
        expires_at: now + 300,
    });
    store.insert(&waiting).await.unwrap();
    assert_eq!(find().await.unwrap().unwrap().id, "waiting");

    // Later, once both are past their times, nothing is reusable.
    let later = store
        .find_reusable("alice", "orders-db", "read", now + 301)
        .await
        .unwrap();
    assert_eq!(later, None);
}

#[tokio::test]
async fn reopening_keeps_data_and_migrates_once() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).await.unwrap();
    store.insert(&full_grant()).await.unwrap();
    store.insert(&grant("g2", "alice", 10)).await.unwrap();
    store
        .add_vote("g2", &vote("carol", true, 11))
        .await
        .unwrap();
    store.close().await;
    drop(store);

    for _ in 0..2 {
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.get("g_full").await.unwrap(), Some(full_grant()));
        assert_eq!(store.get("g2").await.unwrap().unwrap().votes.len(), 1);
        let applied: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT version, CAST(success AS INTEGER) FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(applied, [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)]);
        store.close().await;
    }
}

#[tokio::test]
async fn file_store_uses_wal_and_foreign_keys() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(busy, 5000);
    // A vote for a grant that does not exist cannot be slipped in under the API either.
    let orphan = sqlx::query(
        "INSERT INTO grant_votes (grant_id, approver, approve, at) VALUES ('nope', 'x', 1, 1)",
    )
    .execute(store.pool())
    .await;
    assert!(orphan.is_err());
}

#[tokio::test]
async fn missing_directory_is_named() {
    let (dir, _) = temp_db();
    let path = dir.path().join("no-such-dir").join("sluice.db");
    let err = Store::open(&path).await.unwrap_err();
    let StoreError::Open {
        location: ref reported,
        source: OpenError::MissingDirectory { ref dir },
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(reported, &path.display().to_string());
    assert_eq!(dir, &path.parent().unwrap());
    let text = chain(&err);
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    assert!(!path.parent().unwrap().exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_by_path() {
    let (_dir, path) = temp_db();
    std::fs::write(
        &path,
        b"this is not an SQLite database, just some text that is long enough",
    )
    .unwrap();
    let err = Store::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(chain(&err).contains(&path.display().to_string()), "{err:?}");
}

async fn corrupt_rows_are_errors_not_defaults(store: Store) {
    store.insert(&grant("g1", "alice", 10)).await.unwrap();
    sqlx::query("UPDATE grants SET state = 'paused' WHERE id = 'g1'")
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.get("g1").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { ref id, ref what } if id == "g1" && what.contains("paused")),
        "{err:?}"
    );
    // The CAS paths report it too, rather than a made-up state.
    let err = store.activate("g1", 11, 100).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    sqlx::query("UPDATE grants SET state = 'pending', created_at = -5 WHERE id = 'g1'")
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.list(&GrantFilter::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    sqlx::query("UPDATE grants SET created_at = 10, ci = 'not json' WHERE id = 'g1'")
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.get("g1").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

async fn concurrent_activate_and_finish_have_one_winner(store: Store) {
    let mut activated = 0;
    let mut expired = 0;
    for round in 0..25 {
        let id = format!("g{round}");
        store.insert(&grant(&id, "alice", round)).await.unwrap();
        let (a, b) = (store.clone(), store.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let approve = tokio::spawn(async move { a.activate(&ida, 100, 200).await });
        let expire = tokio::spawn(async move {
            let pending = [GrantState::Pending];
            b.finish(
                &idb,
                &pending,
                GrantState::Expired,
                100,
                "sluiced",
                "approval timed out",
            )
            .await
        });
        let (approve, expire) = (approve.await.unwrap(), expire.await.unwrap());
        let stored = store.get(&id).await.unwrap().unwrap();
        match (approve, expire) {
            (Ok(g), Err(StoreError::NotInState { actual })) => {
                assert_eq!(actual, GrantState::Active);
                assert_eq!(g, stored);
                activated += 1;
            }
            (Err(StoreError::NotInState { actual }), Ok(g)) => {
                assert_eq!(actual, GrantState::Expired);
                assert_eq!(g, stored);
                assert_eq!(stored.activated_at, None);
                expired += 1;
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        }
    }
    assert_eq!(activated + expired, 25);
}

async fn concurrent_votes_by_one_approver_count_once(store: Store) {
    store.insert(&grant("g1", "alice", 1)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.add_vote("g1", &vote("carol", true, 10 + i)).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::AlreadyVoted) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.get("g1").await.unwrap().unwrap().votes.len(), 1);
}

/// The rows of `revoked_tokens` as (token id, subject, expires_at, revoked_at), by token id.
async fn revocation_rows(store: &Store) -> Vec<(String, String, i64, i64)> {
    sqlx::query_as(
        "SELECT token_id, subject, expires_at, revoked_at FROM revoked_tokens ORDER BY token_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

fn sorted(mut list: Vec<(String, u64)>) -> Vec<(String, u64)> {
    list.sort();
    list
}

#[tokio::test]
async fn revoked_tokens_survive_reopening() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).await.unwrap();
    store.revoke_token("t1", "alice", 2000, 1000).await.unwrap();
    store.revoke_token("t2", "bob", 3000, 1001).await.unwrap();
    store.close().await;
    drop(store);

    let store = Store::open(&path).await.unwrap();
    assert_eq!(
        sorted(store.revoked_tokens(1500).await.unwrap()),
        [("t1".to_string(), 2000), ("t2".to_string(), 3000)]
    );
    assert_eq!(
        revocation_rows(&store).await,
        [
            ("t1".to_string(), "alice".to_string(), 2000, 1000),
            ("t2".to_string(), "bob".to_string(), 3000, 1001),
        ]
    );
    store.close().await;
}

async fn revoking_a_token_again_keeps_the_first_record(store: Store) {
    store.revoke_token("t1", "alice", 2000, 1000).await.unwrap();
    // A retried logout, or a second broker task racing the first: no error, no second row.
    store.revoke_token("t1", "alice", 2000, 1200).await.unwrap();
    assert_eq!(
        revocation_rows(&store).await,
        [("t1".to_string(), "alice".to_string(), 2000, 1000)]
    );
    assert_eq!(
        store.revoked_tokens(1000).await.unwrap(),
        [("t1".to_string(), 2000)]
    );
}

async fn only_unexpired_revocations_are_listed_and_kept(store: Store) {
    store.revoke_token("gone", "alice", 999, 900).await.unwrap();
    // A token is still accepted during its `exp` second, so its revocation must stay too.
    store
        .revoke_token("edge", "alice", 1000, 900)
        .await
        .unwrap();
    store.revoke_token("live", "bob", 5000, 900).await.unwrap();

    assert_eq!(
        sorted(store.revoked_tokens(1000).await.unwrap()),
        [("edge".to_string(), 1000), ("live".to_string(), 5000)]
    );
    assert_eq!(store.prune_revoked_tokens(1000).await.unwrap(), 1);
    let kept: Vec<String> = revocation_rows(&store)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(kept, ["edge", "live"]);
    // Pruning again changes nothing; a second later the edge one goes too.
    assert_eq!(store.prune_revoked_tokens(1000).await.unwrap(), 0);
    assert_eq!(store.prune_revoked_tokens(1001).await.unwrap(), 1);
    assert_eq!(
        store.revoked_tokens(1001).await.unwrap(),
        [("live".to_string(), 5000)]
    );
    assert_eq!(store.prune_revoked_tokens(u64::MAX >> 1).await.unwrap(), 1);
    assert_eq!(store.revoked_tokens(0).await.unwrap(), []);
}

async fn revocation_times_beyond_the_store_are_refused(store: Store) {
    let err = store
        .revoke_token("t1", "alice", u64::MAX, 1000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(revocation_rows(&store).await.is_empty());
    let err = store.revoked_tokens(u64::MAX).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    let err = store.prune_revoked_tokens(u64::MAX).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
}

#[tokio::test]
async fn a_store_from_before_revocations_is_upgraded_at_open() {
    let (_dir, path) = temp_db();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    crate::migrations::migrator_up_to(crate::Dialect::Sqlite, 1)
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = Store::open(&path).await.unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(applied, [1, 2, 3, 4, 5, 6]);
    store.revoke_token("t1", "alice", 2000, 1000).await.unwrap();
    assert_eq!(
        store.revoked_tokens(1000).await.unwrap(),
        [("t1".to_string(), 2000)]
    );
    store.close().await;
}

/// What `listener` hears next; a test failure after 10 s of silence.
async fn heard_next(listener: &mut crate::Listener) -> Result<crate::Heard, StoreError> {
    tokio::time::timeout(std::time::Duration::from_secs(10), listener.next())
        .await
        .expect("a notification within 10 s")
}

async fn changes_reach_the_other_brokers_listeners(store: Store) {
    let Some(mut listener) = store.listen().await.unwrap() else {
        // SQLite: one broker, nobody to tell.
        assert_eq!(store.dialect(), crate::Dialect::Sqlite);
        return;
    };
    store.insert(&grant("g1", "alice", 1)).await.unwrap();
    assert_eq!(
        heard_next(&mut listener).await.unwrap(),
        crate::Heard::Change(crate::Change::Grant("g1".into()))
    );
    store.add_vote("g1", &vote("carol", true, 2)).await.unwrap();
    store.activate("g1", 3, 100).await.unwrap();
    let pending = [GrantState::Active];
    store
        .finish("g1", &pending, GrantState::Revoked, 4, "bob", "")
        .await
        .unwrap();
    store.revoke_token("t1", "alice", 100, 5).await.unwrap();
    let mut heard = Vec::new();
    for _ in 0..4 {
        heard.push(heard_next(&mut listener).await.unwrap());
    }
    let grant_change = crate::Heard::Change(crate::Change::Grant("g1".into()));
    assert_eq!(
        heard,
        [
            grant_change.clone(),
            grant_change.clone(),
            grant_change,
            crate::Heard::Change(crate::Change::Token("t1".into())),
        ]
    );
    // A change that did not commit is never announced.
    let err = store.activate("g1", 6, 100).await.unwrap_err();
    assert!(matches!(err, StoreError::NotInState { .. }), "{err:?}");

    // The listening connection killed (a restarted server, a proxy): the listener says what
    // it may have missed, and hears again afterwards.
    sqlx::query(
        "SELECT 1 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()) AS killed",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let after_kill = heard_next(&mut listener).await;
    assert!(
        !matches!(after_kill, Ok(crate::Heard::Change(_))),
        "{after_kill:?}"
    );
    let mut listener = store.listen().await.unwrap().expect("PostgreSQL listens");
    store.insert(&grant("g2", "alice", 7)).await.unwrap();
    assert_eq!(
        heard_next(&mut listener).await.unwrap(),
        crate::Heard::Change(crate::Change::Grant("g2".into()))
    );
}

crate::test_support::on_both_databases!(
    minimal_grant_round_trips,
    votes_come_back_in_time_order,
    duplicate_id_is_refused,
    insert_with_a_repeated_approver_leaves_nothing_behind,
    unstorable_values_are_refused,
    list_filters_and_orders_newest_first,
    limit_counts_grants_not_votes,
    live_is_pending_and_active_only,
    activate_sets_times_once,
    activate_after_expiry_loses,
    vote_after_deny_loses,
    second_vote_by_the_same_approver_is_refused,
    finish_happens_once,
    finish_respects_from_and_needs_a_final_target,
    find_reusable_only_finds_own_usable_grants,
    corrupt_rows_are_errors_not_defaults,
    revoking_a_token_again_keeps_the_first_record,
    only_unexpired_revocations_are_listed_and_kept,
    revocation_times_beyond_the_store_are_refused,
    concurrent_activate_and_finish_have_one_winner,
    concurrent_votes_by_one_approver_count_once,
    changes_reach_the_other_brokers_listeners,
);

#[tokio::test]
async fn a_store_migrated_by_a_newer_broker_is_refused_naming_both_versions() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', 1, X'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let err = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Open {
                source: OpenError::Newer {
                    found: 99,
                    known: 6
                },
                ..
            }
        ),
        "{err:?}"
    );
    let text = chain(&err);
    assert!(
        text.contains("version 99, newer than this sluiced knows (6)"),
        "{text}"
    );
}
