//! Recommendations from real states of a real PostgreSQL: each appears with its numbers while
//! the state holds and clears when it is undone.

use std::time::{Duration, Instant};

use leasewatch_engine::{
    DatabaseUrl, Engine, EngineConfig, PoolSettings, RetryPolicy, RunContext,
    recommend::{Recommendation, Severity, Thresholds},
    server_view::IDLE_IN_TRANSACTION_AFTER,
};
use leasewatch_testkit::{ScratchCluster, TestDatabase};
use sqlx::{AnyConnection, Connection};

fn config(url: &str, max: u32, min: u32) -> EngineConfig {
    EngineConfig {
        pool: PoolSettings {
            max_connections: max,
            min_connections: min,
            connect_timeout: Duration::from_secs(2),
            lease_timeout: Duration::from_secs(1),
            ..PoolSettings::default()
        },
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        thresholds: Thresholds {
            waiting_for: Duration::from_secs(1),
            timeout_window: Duration::from_secs(3),
            hold: Duration::ZERO,
            clear: Duration::ZERO,
            ..Thresholds::default()
        },
        ..EngineConfig::new(DatabaseUrl::parse(url).unwrap())
    }
}

/// Waits (bounded) for a recommendation with this id; `None` if it does not come.
async fn shown(engine: &Engine, id: &str, within: Duration) -> Option<Recommendation> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(r) = engine.recommendations().into_iter().find(|r| r.id == id) {
            return Some(r);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cleared(engine: &Engine, id: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !engine.recommendations().iter().any(|r| r.id == id) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Stops the scheduler (runs come only from the test from here on) and waits for the
/// start-up runs' leases to come back.
async fn settle(engine: &Engine) {
    engine.tasks().stop(Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.leases().snapshot().leases > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_health_check(engine: &Engine) {
    let tasks = engine.tasks();
    let id = tasks.run_now("health_check").unwrap();
    tokio::time::timeout(Duration::from_secs(10), tasks.wait_for("health_check", id))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_with_waiters_then_timeouts() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let engine = Engine::start(config(db.url(), 2, 0)).await.unwrap();
    settle(&engine).await;
    let leases = engine.leases();
    let held = [
        leases.acquire(&RunContext::new("hog", 1)).await.unwrap(),
        leases.acquire(&RunContext::new("hog", 2)).await.unwrap(),
    ];
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let leases = leases.clone();
            tokio::spawn(async move {
                leases
                    .acquire(&RunContext::new("waiter", i))
                    .await
                    .map(drop)
            })
        })
        .collect();

    let waiting = shown(&engine, "waiting", Duration::from_secs(5))
        .await
        .expect("waiting shows");
    assert_eq!(waiting.severity, Severity::Warning);
    // The count is the one read at the evaluation that showed it: all three waiters once they
    // have queued (under load the first evaluation may come before the last of them), and each
    // of them gives up below (exactly 3, checked there).
    assert!(
        ["1", "2", "3"].iter().any(|n| waiting
            .detail
            .starts_with(&format!("{n} acquires waiting now"))),
        "{}",
        waiting.detail
    );
    assert!(
        waiting.detail.contains("all 2 connections in use"),
        "{}",
        waiting.detail
    );

    for waiter in waiters {
        assert!(
            waiter.await.unwrap().is_err(),
            "the pool stays full: each waiter times out"
        );
    }
    let timeouts = shown(&engine, "acquire_timeouts", Duration::from_secs(5))
        .await
        .expect("timeouts show");
    assert_eq!(timeouts.severity, Severity::Critical);
    assert!(
        timeouts.detail.starts_with("3 acquires gave up"),
        "{}",
        timeouts.detail
    );
    assert!(cleared(&engine, "waiting", Duration::from_secs(5)).await);

    drop(held);
    assert!(
        cleared(&engine, "acquire_timeouts", Duration::from_secs(15)).await,
        "clears once out of the window"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_shows_until_cleanup() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let engine = Engine::start(config(db.url(), 3, 0)).await.unwrap();
    settle(&engine).await;
    let held = engine
        .leases()
        .acquire(&RunContext::new("leaky", 1))
        .await
        .unwrap();
    let stale = shown(&engine, "stale_lease:leaky", Duration::from_secs(5))
        .await
        .expect("stale shows");
    assert_eq!(stale.severity, Severity::Warning);
    assert!(
        stale
            .detail
            .starts_with("1 lease held by leaky past the lease timeout"),
        "{}",
        stale.detail
    );
    assert_eq!(
        stale.action,
        Some(leasewatch_engine::recommend::ActionName::Cleanup)
    );
    let report = engine.leases().cleanup(false).await;
    assert_eq!(report.revoked.len(), 1);
    assert!(cleared(&engine, "stale_lease:leaky", Duration::from_secs(5)).await);
    drop(held);
    engine.shutdown().await;
}

/// An action is followed at once by a fresh evaluation: what it undid is shown as clearing
/// (with when, and its last numbers) in the very answer the page polls next, not a second
/// later with the old numbers; and it stays, marked, for the clear-hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_action_what_it_fixed_shows_as_clearing_at_once() {
    use leasewatch_engine::control::{Action, Role};
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut config = config(db.url(), 3, 0);
    config.thresholds.clear = Duration::from_secs(60);
    let engine = Engine::start(config).await.unwrap();
    settle(&engine).await;
    let held = engine
        .leases()
        .acquire(&RunContext::new("leaky", 1))
        .await
        .unwrap();
    let stale = shown(&engine, "stale_lease:leaky", Duration::from_secs(5))
        .await
        .expect("stale shows");
    assert_eq!(stale.cleared_at, None, "it holds");

    let before = chrono::Utc::now();
    engine
        .perform(&Action::Cleanup { dry_run: false }, Role::Operator, "test")
        .await
        .unwrap();
    // No wait: the evaluation after the action is already there.
    let now = engine.recommendations();
    let stale = now
        .iter()
        .find(|r| r.id == "stale_lease:leaky")
        .expect("kept for the clear-hold");
    let cleared_at = stale.cleared_at.expect("marked as clearing");
    assert!(cleared_at >= before, "{cleared_at} < {before}");
    assert!(
        stale.detail.starts_with("1 lease held by leaky"),
        "its last numbers: {}",
        stale.detail
    );
    assert!(
        now.iter()
            .skip_while(|r| r.cleared_at.is_none())
            .all(|r| r.cleared_at.is_some()),
        "what holds comes before what is clearing: {now:?}"
    );
    drop(held);
    engine.shutdown().await;
}

/// The periodic cleanup acts on its own; what it did is in the audit log as the system's
/// action, like an operator's, and an interval with nothing to reclaim writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_cleanup_that_revokes_is_audited_as_the_system() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut config = config(db.url(), 3, 0);
    config.intervals.cleanup = Duration::from_secs(1);
    let engine = Engine::start(config).await.unwrap();
    settle(&engine).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        engine.audit().recent(10).is_empty(),
        "cleanups with nothing to reclaim are not audited"
    );
    let held = engine
        .leases()
        .acquire(&RunContext::new("leaky", 7))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        if let Some(entry) = engine.audit().recent(10).into_iter().next() {
            break entry;
        }
        assert!(Instant::now() < deadline, "no audit entry within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entry.record.role, leasewatch_types::Actor::System);
    assert_eq!(entry.record.action, "cleanup");
    assert_eq!(entry.record.arguments, r#"{"automatic":true}"#);
    assert!(
        entry
            .record
            .result
            .starts_with("revoked 1 lease held by leaky"),
        "{}",
        entry.record.result
    );
    drop(held);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_in_transaction_shows_until_it_commits() {
    let Some(cluster) = ScratchCluster::start(30) else {
        return;
    };
    let url = cluster.url("postgres", "postgres");
    let engine = Engine::start(config(&url, 3, 0)).await.unwrap();
    settle(&engine).await;
    let mut other = AnyConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT 1")
        .execute(&mut other)
        .await
        .unwrap();
    run_health_check(&engine).await;
    assert!(
        shown(&engine, "idle_in_transaction", Duration::from_secs(2))
            .await
            .is_none(),
        "a moment idle in a transaction is not a problem"
    );
    tokio::time::sleep(IDLE_IN_TRANSACTION_AFTER).await;
    run_health_check(&engine).await;
    let idle = shown(&engine, "idle_in_transaction", Duration::from_secs(5))
        .await
        .expect("shows");
    assert!(
        idle.detail.starts_with("1 session idle in transaction"),
        "{}",
        idle.detail
    );
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    run_health_check(&engine).await;
    assert!(cleared(&engine, "idle_in_transaction", Duration::from_secs(5)).await);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_that_can_exhaust_the_server_show_until_an_instance_leaves() {
    // 20 slots, 3 reserved: 17 usable. Two instances with a pool max of 10 could take 20, with
    // the governor off (on, they share the budget instead).
    let Some(cluster) = ScratchCluster::start(20) else {
        return;
    };
    let url = cluster.url("postgres", "postgres");
    let ungoverned = || {
        let mut config = config(&url, 10, 1);
        config.governor.enabled = false;
        config
    };
    let a = Engine::start(ungoverned()).await.unwrap();
    let b = Engine::start(ungoverned()).await.unwrap();
    settle(&a).await;
    settle(&b).await;
    run_health_check(&a).await;
    let found = shown(&a, "pool_can_exhaust_server", Duration::from_secs(5))
        .await
        .expect("shows");
    assert_eq!(found.severity, Severity::Critical);
    assert!(
        found.detail.starts_with("2 instances × pool max 10 = 20 connections, but the server allows 17 (20 max_connections − 3 reserved). Turn the governor on (GOVERNOR=on) to share the server between instances, or lower DB_MAX_CONNECTIONS to at most 8 per instance."),
        "{}",
        found.detail
    );
    b.shutdown().await;
    drop(b);
    // The server ends b's backends a moment after b closes them: look again until they are gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        run_health_check(&a).await;
        if cleared(&a, "pool_can_exhaust_server", Duration::from_secs(3)).await {
            break;
        }
        assert!(Instant::now() < deadline, "still shown after b left");
    }
    a.shutdown().await;
}
