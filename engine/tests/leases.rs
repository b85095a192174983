//! The lease manager against real databases: each behaviour on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use leasewatch_engine::{
    Backend, BackendIdentity, Database, DatabaseUrl, FailureKind, LeaseError, LeaseManager,
    PoolSettings, RunContext, ServerView,
};
use leasewatch_testkit::{ScratchCluster, TestDatabase};
use sqlx::{AnyConnection, Connection};

/// What a test run's work can fail with.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
enum RunError {
    Lease(LeaseError),
    Sql(sqlx::Error),
}

impl From<LeaseError> for RunError {
    fn from(err: LeaseError) -> Self {
        Self::Lease(err)
    }
}

impl From<sqlx::Error> for RunError {
    fn from(err: sqlx::Error) -> Self {
        Self::Sql(err)
    }
}

/// Keeps a test's database alive for as long as its manager.
enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(TestDatabase),
}

struct Setup {
    max: u32,
    min: u32,
    lease_timeout: Duration,
    acquire_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            max: 5,
            min: 0,
            lease_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

async fn manager_on(url: DatabaseUrl, setup: &Setup) -> LeaseManager {
    let settings = PoolSettings {
        max_connections: setup.max,
        min_connections: setup.min,
        connect_timeout: setup.acquire_timeout,
        lease_timeout: setup.lease_timeout,
        ..PoolSettings::default()
    };
    let db = Database::connect(&url, &settings).await.unwrap();
    LeaseManager::new(db, setup.lease_timeout, setup.acquire_timeout)
}

async fn manager(backend: Backend, setup: Setup) -> Option<(LeaseManager, Keep)> {
    let (url, keep) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = DatabaseUrl::Sqlite(dir.path().join("leases.db"));
            (url, Keep::Sqlite(dir))
        }
        Backend::Postgres => {
            let db = TestDatabase::create().await?;
            (DatabaseUrl::parse(db.url()).unwrap(), Keep::Postgres(db))
        }
    };
    Some((manager_on(url, &setup).await, keep))
}

/// Waits (bounded) until `done` holds, then says whether it did.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Whether a backend pid is still connected, asked over a connection of the test's own.
async fn backend_alive(url: &str, pid: i32) -> bool {
    let mut conn = AnyConnection::connect(url).await.unwrap();
    let (alive,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    alive
}

async fn gone_within(url: &str, pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !backend_alive(url, pid).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The backends a cleanup ended or found gone, in pid order.
fn ended(report: &leasewatch_engine::CleanupReport) -> Vec<i32> {
    sorted(
        report
            .terminated
            .iter()
            .chain(&report.already_gone)
            .copied()
            .collect(),
    )
}

fn sorted(mut pids: Vec<i32>) -> Vec<i32> {
    pids.sort_unstable();
    pids
}

/// A query that runs for seconds on either backend.
fn slow_query(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "SELECT pg_sleep(20)",
        Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
             SELECT COUNT(*) FROM c"
        }
    }
}

fn postgres_url(keep: &Keep) -> Option<&str> {
    match keep {
        Keep::Postgres(db) => Some(db.url()),
        Keep::Sqlite(_) => None,
    }
}

macro_rules! on_both_backends {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(Backend::Postgres).await;
            }
        }
    };
}

on_both_backends!(fifty_runs_queue_on_a_pool_of_five_and_all_finish);
async fn fifty_runs_queue_on_a_pool_of_five_and_all_finish(backend: Backend) {
    let Some((m, _keep)) = manager(backend, Setup::default()).await else {
        return;
    };
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move {
                let run = RunContext::new("load", i);
                let mut lease = m.acquire(&run).await?;
                lease
                    .run(|conn| {
                        Box::pin(async move {
                            sqlx::query("SELECT 1").execute(&mut *conn).await?;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, RunError>(())
                        })
                    })
                    .await
            })
        })
        .collect();
    let (mut most_waiting, mut most_open, mut most_leases) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handles.iter().all(|h| h.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "50 runs did not finish within 60 s"
        );
        let s = m.snapshot();
        most_waiting = most_waiting.max(s.waiting);
        most_open = most_open.max(s.total);
        most_leases = most_leases.max(s.leases);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let s = m.snapshot();
    assert!(most_waiting > 0, "runs queued for the pool");
    assert!(
        most_open <= 5 && most_leases <= 5,
        "{most_open} open, {most_leases} leased"
    );
    assert_eq!((s.leases, s.waiting), (0, 0));
    assert_eq!(s.issued, 50);
    assert_eq!(s.issued, s.released + s.revoked);
    assert_eq!(s.per_task.len(), 1);
    assert_eq!(s.per_task[0].released, 50);
    assert!(s.acquire_latency.p99_ms.is_some() && s.hold_p95_ms.is_some());
}

on_both_backends!(an_error_returns_the_connection_to_the_pool);
async fn an_error_returns_the_connection_to_the_pool(backend: Backend) {
    let Some((m, _keep)) = manager(backend, Setup::default()).await else {
        return;
    };
    let run = RunContext::new("failing", 1);
    let mut lease = m.acquire(&run).await.unwrap();
    let result = lease
        .run(|conn| {
            Box::pin(async move {
                sqlx::query("SELECT * FROM no_such_table")
                    .execute(&mut *conn)
                    .await?;
                Ok::<_, RunError>(())
            })
        })
        .await;
    assert!(matches!(result, Err(RunError::Sql(_))), "{result:?}");
    drop(lease);
    let s = m.snapshot();
    assert_eq!((s.leases, s.released), (0, 1));
    // The query failed cleanly on the server: the connection is fine and goes back.
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = m.snapshot();
            (s.total, s.idle) == (1, 1)
        })
        .await
    );
}

on_both_backends!(a_panic_releases_the_lease_and_closes_the_connection);
async fn a_panic_releases_the_lease_and_closes_the_connection(backend: Backend) {
    let Some((m, _keep)) = manager(backend, Setup::default()).await else {
        return;
    };
    let task = tokio::spawn({
        let m = m.clone();
        async move {
            let run = RunContext::new("panicking", 1);
            let mut lease = m.acquire(&run).await.unwrap();
            lease
                .run(|conn| {
                    Box::pin(async move {
                        sqlx::query("SELECT 1").execute(&mut *conn).await?;
                        panic!("task bug");
                        #[allow(unreachable_code)]
                        Ok::<_, RunError>(())
                    })
                })
                .await
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    let s = m.snapshot();
    assert_eq!((s.leases, s.released), (0, 1));
    assert!(
        eventually(Duration::from_secs(10), || m.snapshot().total == 0).await,
        "the connection of a panicked run is closed, not pooled"
    );
}

on_both_backends!(cancellation_mid_query_releases_and_closes_the_connection);
async fn cancellation_mid_query_releases_and_closes_the_connection(backend: Backend) {
    let Some((m, keep)) = manager(backend, Setup::default()).await else {
        return;
    };
    let run = RunContext::new("cancelled", 1);
    let mut lease = m.acquire(&run).await.unwrap();
    let pid = m.leases()[0].backend_pid;
    assert_eq!(pid.is_some(), backend == Backend::Postgres);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        lease.run(|conn| {
            Box::pin(async move {
                sqlx::query(slow_query(backend)).execute(&mut *conn).await?;
                Ok::<_, RunError>(())
            })
        }),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the query was still running when cancelled"
    );
    drop(lease);
    let s = m.snapshot();
    assert_eq!((s.leases, s.released), (0, 1));
    assert!(
        eventually(Duration::from_secs(20), || m.snapshot().total == 0).await,
        "the cancelled connection is closed, not returned to the pool"
    );
    if let (Some(url), Some(pid)) = (postgres_url(&keep), pid) {
        // The session itself ends too (its statement is cut by the close).
        assert!(gone_within(url, pid, Duration::from_secs(5)).await);
        let next = RunContext::new("after", 2);
        let _lease = m.acquire(&next).await.unwrap();
        assert_ne!(m.leases()[0].backend_pid, Some(pid), "not reused");
    }
}

on_both_backends!(a_stale_lease_is_reported_then_reclaimed);
async fn a_stale_lease_is_reported_then_reclaimed(backend: Backend) {
    let setup = Setup {
        lease_timeout: Duration::from_secs(1),
        ..Setup::default()
    };
    let Some((m, keep)) = manager(backend, setup).await else {
        return;
    };
    let run = RunContext::new("leaky", 7);
    let holder = tokio::spawn({
        let (m, run) = (m.clone(), run.clone());
        async move {
            run.scope(async {
                let mut lease = m.acquire(&run).await?;
                lease
                    .run(|conn| {
                        Box::pin(async move {
                            sqlx::query("SELECT 1").execute(&mut *conn).await?;
                            Ok::<_, RunError>(())
                        })
                    })
                    .await?;
                // Holds the connection while doing something else: the seed's leak.
                tokio::time::sleep(Duration::from_secs(120)).await;
                Ok::<_, RunError>(())
            })
            .await
        }
    });
    assert!(eventually(Duration::from_secs(5), || m.snapshot().leases == 1).await);
    let s = m.snapshot();
    assert_eq!(s.stale, 0, "fresh");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = m.snapshot();
    assert_eq!(
        (s.leases, s.stale),
        (1, 1),
        "stale in the very next snapshot"
    );
    let lease = m.leases().remove(0);
    assert!(lease.stale && lease.task == "leaky" && lease.run_id == 7);

    let plan = m.cleanup(true).await;
    assert_eq!(m.snapshot().leases, 1, "a dry run changes nothing");
    let report = m.cleanup(false).await;
    let ids =
        |r: &leasewatch_engine::CleanupReport| r.revoked.iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(ids(&plan), vec![lease.id]);
    assert_eq!(ids(&report), ids(&plan));
    assert!(report.termination_failures.is_empty(), "{report:?}");
    // Ended by cleanup, or gone already as the revoked run closed its connection first.
    assert_eq!(ended(&report), plan.terminated);
    assert_eq!(
        ended(&report),
        lease.backend_pid.into_iter().collect::<Vec<_>>()
    );

    let stopped = tokio::time::timeout(Duration::from_secs(2), holder)
        .await
        .expect("the revoked run stops at once")
        .unwrap();
    assert!(
        matches!(stopped, Err(RunError::Lease(LeaseError::Revoked { .. }))),
        "{stopped:?}"
    );
    let s = m.snapshot();
    assert_eq!((s.leases, s.stale, s.revoked), (0, 0, 1));
    assert_eq!(s.issued, s.released + s.revoked);
    if let (Some(url), Some(pid)) = (postgres_url(&keep), lease.backend_pid) {
        assert!(
            gone_within(url, pid, Duration::from_secs(5)).await,
            "backend {pid} left"
        );
    }
}

on_both_backends!(an_acquire_timeout_is_typed_counted_and_names_the_pool_state);
async fn an_acquire_timeout_is_typed_counted_and_names_the_pool_state(backend: Backend) {
    let setup = Setup {
        max: 1,
        acquire_timeout: Duration::from_millis(300),
        ..Setup::default()
    };
    let Some((m, _keep)) = manager(backend, setup).await else {
        return;
    };
    let _held = m.acquire(&RunContext::new("holder", 1)).await.unwrap();
    let err = m
        .acquire(&RunContext::new("starved", 2))
        .await
        .err()
        .expect("the only connection is held");
    match &err {
        LeaseError::AcquireTimeout {
            task,
            waited,
            size,
            max,
            waiting,
        } => {
            assert_eq!((task.as_str(), *size, *max, *waiting), ("starved", 1, 1, 1));
            assert!(*waited >= Duration::from_millis(300), "{waited:?}");
        }
        other => panic!("expected an acquire timeout, got {other:?}"),
    }
    assert!(
        err.to_string().contains("pool size 1 of max 1, 1 waiting"),
        "{err}"
    );
    let s = m.snapshot();
    assert_eq!((s.acquire_timeouts, s.waiting), (1, 0));
    let starved = s.per_task.iter().find(|t| t.task == "starved").unwrap();
    assert_eq!(starved.acquire_timeouts, 1);
}

on_both_backends!(emergency_cleanup_revokes_everything_and_shrinks_to_the_minimum);
async fn emergency_cleanup_revokes_everything_and_shrinks_to_the_minimum(backend: Backend) {
    let setup = Setup {
        max: 6,
        min: 2,
        ..Setup::default()
    };
    let Some((m, keep)) = manager(backend, setup).await else {
        return;
    };
    // Three connections that go back idle, three held by runs.
    let mut spare = Vec::new();
    for i in 0..3 {
        spare.push(m.acquire(&RunContext::new("warmup", i)).await.unwrap());
    }
    let holders: Vec<_> = (0..3)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move {
                let run = RunContext::new("holder", i);
                run.scope(async {
                    let _lease = m.acquire(&run).await?;
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    Ok::<_, RunError>(())
                })
                .await
            })
        })
        .collect();
    assert!(eventually(Duration::from_secs(10), || m.snapshot().leases == 6).await);
    drop(spare);
    assert!(eventually(Duration::from_secs(5), || m.snapshot().idle == 3).await);
    assert_eq!(m.snapshot().total, 6);

    let plan = m.emergency_cleanup(true).await;
    assert_eq!(plan.revoked.len(), 3);
    assert!(plan.revoked.iter().all(|l| l.task == "holder"));
    assert_eq!(
        plan.closed_idle, 1,
        "6 open - 3 revoked - min 2 = 1 idle to close"
    );
    let expected_pids = usize::from(backend == Backend::Postgres) * 3;
    assert_eq!(plan.terminated.len(), expected_pids);
    assert_eq!(m.snapshot().leases, 3, "a dry run changes nothing");

    let report = m.emergency_cleanup(false).await;
    let ids =
        |r: &leasewatch_engine::CleanupReport| r.revoked.iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(ids(&report), ids(&plan));
    assert_eq!(ended(&report), sorted(plan.terminated.clone()));
    assert_eq!(report.closed_idle, plan.closed_idle);
    assert!(report.termination_failures.is_empty(), "{report:?}");
    for holder in holders {
        let stopped = tokio::time::timeout(Duration::from_secs(2), holder)
            .await
            .expect("revoked runs stop")
            .unwrap();
        assert!(matches!(
            stopped,
            Err(RunError::Lease(LeaseError::Revoked { .. }))
        ));
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = m.snapshot();
            s.total == 2 && s.leases == 0
        })
        .await,
        "pool back to its minimum: {:?}",
        m.snapshot()
    );
    if let Some(url) = postgres_url(&keep) {
        for pid in &ended(&report) {
            assert!(gone_within(url, *pid, Duration::from_secs(5)).await);
        }
    }
    let s = m.snapshot();
    assert_eq!(s.revoked, 3);
    assert_eq!(s.issued, s.released + s.revoked);
}

#[tokio::test]
async fn sqlite_says_the_server_view_does_not_apply() {
    let (m, _keep) = manager(Backend::Sqlite, Setup::default()).await.unwrap();
    let view = m
        .refresh_server_view(&RunContext::new("health_check", 1))
        .await
        .unwrap();
    assert!(
        matches!(&view, ServerView::NotApplicable { reason } if reason.contains("do not apply")),
        "{view:?}"
    );
}

/// The history's server connections: nothing on SQLite, nothing before the first read on
/// PostgreSQL, then that read's client connections and usable slots.
#[tokio::test]
async fn sqlite_history_has_no_server_connections() {
    let (m, _keep) = manager(Backend::Sqlite, Setup::default()).await.unwrap();
    m.record_history();
    let history = m.history();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].server_connections, history[0].server_usable),
        (None, None)
    );
}

#[tokio::test]
async fn postgres_history_records_the_last_server_read() {
    let Some((m, _keep)) = manager(Backend::Postgres, Setup::default()).await else {
        return;
    };
    m.record_history();
    let _held = m.acquire(&RunContext::new("holder", 1)).await.unwrap();
    let ServerView::Postgres(view) = m
        .refresh_server_view(&RunContext::new("health_check", 1))
        .await
        .unwrap()
    else {
        panic!("PostgreSQL has a server view")
    };
    m.record_history();
    let history = m.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].server_connections, None, "before the first read");
    assert_eq!(history[0].server_usable, None);
    assert_eq!(history[1].server_connections, Some(view.client_connections));
    assert_eq!(
        history[1].server_usable,
        Some(view.max_connections - view.reserved_connections)
    );
    assert!(view.client_connections >= 2, "{view:?}");
}

#[tokio::test]
async fn postgres_server_view_counts_connections_by_application() {
    let Some((m, _keep)) = manager(Backend::Postgres, Setup::default()).await else {
        return;
    };
    assert_eq!(m.server_view(), ServerView::Unknown);
    let _held = m.acquire(&RunContext::new("holder", 1)).await.unwrap();
    let view = m
        .refresh_server_view(&RunContext::new("health_check", 1))
        .await
        .unwrap();
    let ServerView::Postgres(view) = view else {
        panic!("{view:?}")
    };
    assert!(view.max_connections >= 10 && view.reserved_connections >= 0);
    let ours = view
        .holders
        .iter()
        .find(|h| h.application == "leasewatch:tasks")
        .map(|h| h.connections);
    assert!(ours >= Some(2), "{view:?}");
    assert!(view.client_connections >= 2);
    assert_eq!(m.server_view(), ServerView::Postgres(view));
}

/// Another client takes every slot the server gives ordinary roles: the manager never exceeds
/// its max, fails with the server's refusal (not as if its own pool were exhausted), and
/// recovers by itself once slots return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slot_exhaustion_times_out_then_recovers() {
    // 8 slots, 3 reserved for superusers: 5 for the ordinary role `app`.
    let Some(cluster) = ScratchCluster::start(8) else {
        return;
    };
    let admin_url = cluster.url("postgres", "postgres");
    let mut admin = AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query("CREATE ROLE app LOGIN")
        .execute(&mut admin)
        .await
        .unwrap();
    let app_url = cluster.url("app", "postgres");
    let setup = Setup {
        max: 3,
        acquire_timeout: Duration::from_millis(800),
        ..Setup::default()
    };
    let m = manager_on(DatabaseUrl::parse(&app_url).unwrap(), &setup).await;
    let first = RunContext::new("steady", 1);
    let _held = m.acquire(&first).await.unwrap();

    // The hog takes every remaining ordinary slot.
    let mut hog = Vec::new();
    loop {
        match AnyConnection::connect(&app_url).await {
            Ok(conn) => hog.push(conn),
            Err(err) => {
                assert_eq!(
                    leasewatch_engine::failure::classify(&err),
                    FailureKind::SlotsExhausted,
                    "{err}"
                );
                break;
            }
        }
        assert!(hog.len() < 10, "the server kept accepting connections");
    }
    // 8 slots − 3 reserved − the admin session − the manager's one connection.
    assert_eq!(hog.len(), 3);

    let starved: Vec<_> = (0..2)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move { m.acquire(&RunContext::new("starved", i)).await.map(drop) })
        })
        .collect();
    for task in starved {
        let result = task.await.unwrap();
        assert!(
            matches!(&result, Err(err @ LeaseError::SlotsExhausted { .. })
                if err.kind() == FailureKind::SlotsExhausted
                    && err.to_string().contains("remaining connection slots are reserved")),
            "the server's refusal: {result:?}"
        );
    }
    let s = m.snapshot();
    assert!(s.total <= 3, "{s:?}");
    assert_eq!(s.acquire_timeouts, 0, "the pool was not what ran out");
    let (ours,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'leasewatch:tasks'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(ours <= 3, "{ours} connections over the max of 3");

    // Slots come back: the next acquires succeed with no help.
    for conn in hog {
        conn.close().await.unwrap();
    }
    let a = m.acquire(&RunContext::new("recovered", 1)).await.unwrap();
    let b = m.acquire(&RunContext::new("recovered", 2)).await.unwrap();
    assert_eq!(m.snapshot().leases, 3);
    drop((a, b));
}

/// The pid and start time (microseconds since the epoch) of the session behind `conn`.
async fn identity_of(conn: &mut AnyConnection) -> BackendIdentity {
    let (pid, started_us): (i32, i64) = sqlx::query_as(
        "SELECT pid, (EXTRACT(EPOCH FROM backend_start) * 1000000)::int8 \
         FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    BackendIdentity { pid, started_us }
}

/// Whether the session behind `conn` still answers.
async fn answers(conn: &mut AnyConnection) -> bool {
    sqlx::query("SELECT 1").execute(conn).await.is_ok()
}

/// A stale lease whose backend the server ended already (as
/// `idle_in_transaction_session_timeout` does, at the lease timeout): cleanup reports it as
/// already gone, not as a failure, and ends no other session. Reproduced for real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_backend_ended_under_its_lease_is_reported_already_gone() {
    let setup = Setup {
        lease_timeout: Duration::from_secs(1),
        ..Setup::default()
    };
    let Some((m, keep)) = manager(Backend::Postgres, setup).await else {
        return;
    };
    let url = postgres_url(&keep).unwrap().to_owned();
    let mut bystander = AnyConnection::connect(&format!("{url}?application_name=bystander"))
        .await
        .unwrap();
    let run = RunContext::new("leaky", 1);
    let lease = m.acquire(&run).await.unwrap();
    let pid = m.leases()[0].backend_pid.unwrap();
    let mut admin = AnyConnection::connect(&url).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(ended);
    assert!(gone_within(&url, pid, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let report = m.cleanup(false).await;
    assert_eq!(report.revoked.len(), 1, "{report:?}");
    assert_eq!(report.already_gone, [pid], "{report:?}");
    assert!(report.terminated.is_empty(), "{report:?}");
    assert!(report.termination_failures.is_empty(), "{report:?}");
    assert!(
        report.summary().contains("1 backend already gone"),
        "{}",
        report.summary()
    );
    assert!(answers(&mut bystander).await, "the bystander was not ended");
    drop(lease);
}

/// A stale lease's recorded backend stands for a pid the operating system has since given to
/// another session. That cannot be forced for real, so the recorded identity is forged to
/// point at live sessions of the same role: one of another application with the very pid and
/// start time recorded, one that even reports the tasks' `application_name` but started at
/// another time. Neither cleanup nor emergency cleanup ends either of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cleanup_never_ends_a_session_that_reused_a_leases_pid() {
    let setup = Setup {
        lease_timeout: Duration::from_secs(1),
        ..Setup::default()
    };
    let Some((m, keep)) = manager(Backend::Postgres, setup).await else {
        return;
    };
    let url = postgres_url(&keep).unwrap().to_owned();
    let tasks_name = m.database().application_name().to_owned();
    let mut other_app = AnyConnection::connect(&format!("{url}?application_name=someapp"))
        .await
        .unwrap();
    let mut same_name = AnyConnection::connect(&format!("{url}?application_name={tasks_name}"))
        .await
        .unwrap();
    let other_app_id = identity_of(&mut other_app).await;
    let same_name_id = identity_of(&mut same_name).await;

    // Stale cleanup: the recorded backend is now another application's session.
    let first = m.acquire(&RunContext::new("leaky", 1)).await.unwrap();
    assert!(m.forge_backend_identity(first.id(), other_app_id));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = m.cleanup(false).await;
    assert_eq!(report.revoked.len(), 1, "{report:?}");
    assert_eq!(report.already_gone, [other_app_id.pid], "{report:?}");
    assert!(report.terminated.is_empty(), "{report:?}");
    assert!(report.termination_failures.is_empty(), "{report:?}");
    assert!(
        answers(&mut other_app).await,
        "another application's session was ended"
    );
    drop(first);

    // Emergency cleanup: the pid belongs to a session with the tasks' name but a later start.
    let second = m.acquire(&RunContext::new("leaky", 2)).await.unwrap();
    let earlier = BackendIdentity {
        started_us: same_name_id.started_us - 1_000_000,
        ..same_name_id
    };
    assert!(m.forge_backend_identity(second.id(), earlier));
    let report = m.emergency_cleanup(false).await;
    assert_eq!(report.revoked.len(), 1, "{report:?}");
    assert_eq!(report.already_gone, [same_name_id.pid], "{report:?}");
    assert!(report.terminated.is_empty(), "{report:?}");
    assert!(
        answers(&mut same_name).await,
        "a later session with the pid was ended"
    );
    assert!(answers(&mut other_app).await);
    drop(second);
}
