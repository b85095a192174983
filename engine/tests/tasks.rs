//! The task manager: cadence and retries under paused time with stand-in jobs, then the real
//! jobs on SQLite and PostgreSQL, two instances on one database, an unreachable server, and
//! stopping with a run in flight.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use leasewatch_engine::{
    Database, DatabaseUrl, FailureKind, LeaseManager, PoolSettings, RetryPolicy, ServerView,
    tasks::{
        Clock, Job, JobContext, JobFuture, JobOutput, Outcome, Schedule, SkipCause, TaskError,
        TaskManager, TaskState,
        jobs::{RUNNING_ELSEWHERE, STATUS_TRANSITIONS_LOCK},
        schedule::phase_offsets,
    },
};
use leasewatch_testkit::{ScratchCluster, TestDatabase};
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::time::Instant;

fn retry(base_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(base_ms),
        factor: 2,
        max_delay: Duration::from_secs(60),
    }
}

async fn database(url: &DatabaseUrl, max: u32, acquire_timeout: Duration) -> Database {
    let settings = PoolSettings {
        max_connections: max,
        min_connections: 0,
        connect_timeout: acquire_timeout,
        ..PoolSettings::default()
    };
    let db = Database::connect(url, &settings).await.unwrap();
    db.migrate().await.unwrap();
    db
}

fn leases(db: Database) -> LeaseManager {
    let timeout = db.pool().options().get_acquire_timeout();
    LeaseManager::new(db, Duration::from_secs(30), timeout)
}

/// A stand-in job: records when each attempt starts, works for `work`, fails (retryably)
/// `failures` times first, or always with a logic error.
struct StandIn {
    starts: Mutex<Vec<Instant>>,
    work: Duration,
    failures: AtomicU32,
    logic_error: bool,
    hold_lease: bool,
}

impl StandIn {
    fn new(work: Duration) -> Arc<Self> {
        Arc::new(Self {
            starts: Mutex::new(Vec::new()),
            work,
            failures: AtomicU32::new(0),
            logic_error: false,
            hold_lease: false,
        })
    }

    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().unwrap().clone()
    }
}

impl Job for StandIn {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            self.starts.lock().unwrap().push(Instant::now());
            let _lease = if self.hold_lease {
                Some(ctx.leases.acquire(&ctx.run).await?)
            } else {
                None
            };
            tokio::time::sleep(self.work).await;
            if self.logic_error {
                return Err(TaskError::Logic("bad data".into()));
            }
            if self
                .failures
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(TaskError::Database(sqlx::Error::PoolTimedOut));
            }
            Ok(JobOutput::done(1, "done"))
        })
    }
}

/// The wall time the stand-in tests start at: a whole hour, on every interval's grid.
fn wall_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 14, 0, 0).unwrap()
}

/// A manager of one stand-in task on a throwaway SQLite database. Time is paused after
/// set-up, so the test controls the clock; the schedule's wall clock moves with it from
/// [`wall_start`].
async fn stand_in_manager(
    job: Arc<StandIn>,
    every: Duration,
    policy: RetryPolicy,
) -> (TaskManager, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("tasks.db"));
    let db = database(&url, 2, Duration::from_secs(5)).await;
    let manager = TaskManager::with_jobs(
        leases(db),
        vec![("stand_in".to_owned(), every, job as Arc<dyn Job>)],
        policy,
        "test".to_owned(),
    );
    tokio::time::pause();
    manager.set_clock(Clock::following_tokio(wall_start()));
    (manager, dir)
}

/// How long after [`wall_start`] the stand-in's first scheduled start comes: the first point
/// of its phased grid.
fn first_start(every: Duration) -> Duration {
    let phase = phase_offsets(&[("stand_in", every)], "test")[0];
    let first = Schedule::Every { every, phase }.next_after(wall_start());
    (first - wall_start()).to_std().unwrap()
}

/// Starts the scheduler and waits for the stand-in's first scheduled start (nothing runs
/// before it).
async fn start_and_wait_for_first_start(manager: &TaskManager, job: &StandIn, every: Duration) {
    manager.start();
    let first = first_start(every);
    tokio::time::sleep(first - Duration::from_millis(1)).await;
    assert!(job.starts().is_empty(), "no run before the first start");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// `d` to the nearest second, which it must be within 5 ms of: tokio's timer wakes at most a
/// millisecond after a deadline, and every start the stand-in tests expect is a whole second
/// after the start (the grid and the phases are in whole seconds).
fn on_second(d: Duration) -> Duration {
    let secs = Duration::from_secs((d + Duration::from_millis(500)).as_secs());
    assert!(
        d.abs_diff(secs) < Duration::from_millis(5),
        "{d:?} is not on a second"
    );
    secs
}

fn offsets(starts: &[Instant]) -> Vec<Duration> {
    starts.iter().map(|s| *s - starts[0]).collect()
}

#[tokio::test]
async fn the_first_run_comes_at_the_first_grid_point_not_at_start_up() {
    let job = StandIn::new(Duration::ZERO);
    let every = Duration::from_secs(60);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    let started = Instant::now();
    manager.start();
    tokio::task::yield_now().await;
    let first = first_start(every);
    assert!(first > Duration::ZERO && first <= every, "{first:?}");
    let task = &manager.tasks()[0];
    assert_eq!(
        task.next_run_at,
        Some(wall_start() + chrono::TimeDelta::from_std(first).unwrap())
    );
    let phase = phase_offsets(&[("stand_in", every)], "test")[0].as_secs();
    let at = |minute: u64| match phase {
        0 => format!(":{minute:02}"),
        secs => format!(":{minute:02}:{secs:02}"),
    };
    assert_eq!(
        task.schedule,
        format!("every 1 min (at {}, {}, …)", at(0), at(1)),
        "the description names the phase"
    );
    tokio::time::sleep(Duration::from_secs(150)).await;
    let starts: Vec<Duration> = offsets_from(started, &job.starts());
    assert_eq!(
        starts,
        [first, first + every],
        "on the grid, from its first point"
    );
}

#[tokio::test]
async fn runs_keep_their_cadence() {
    let job = StandIn::new(Duration::from_secs(1));
    let every = Duration::from_secs(10);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    start_and_wait_for_first_start(&manager, &job, every).await;
    tokio::time::sleep(Duration::from_secs(35)).await;
    let secs: Vec<u64> = offsets(&job.starts())
        .iter()
        .map(Duration::as_secs)
        .collect();
    assert_eq!(secs, [0, 10, 20, 30]);
    let task = &manager.tasks()[0];
    assert_eq!(task.counts.succeeded, 4);
    assert_eq!(task.counts.overlap_skips, 0);
    assert!(task.next_run_at.is_some());
}

#[tokio::test]
async fn a_tick_that_finds_the_task_running_is_skipped_and_counted() {
    let job = StandIn::new(Duration::from_secs(25));
    let every = Duration::from_secs(10);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    start_and_wait_for_first_start(&manager, &job, every).await;
    tokio::time::sleep(Duration::from_secs(35)).await;
    let secs: Vec<u64> = offsets(&job.starts())
        .iter()
        .map(Duration::as_secs)
        .collect();
    assert_eq!(
        secs,
        [0, 30],
        "the ticks at 10 s and 20 s found the first run going"
    );
    let task = &manager.tasks()[0];
    assert_eq!(task.counts.overlap_skips, 2);
    assert!(matches!(task.state, TaskState::Running { .. }));
    assert_eq!(
        manager.run_now("stand_in").unwrap_err().to_string(),
        format!("stand_in is already running (run 2)")
    );
}

#[tokio::test]
async fn retries_back_off_within_bounds_and_do_not_move_the_cadence() {
    let job = StandIn::new(Duration::ZERO);
    job.failures.store(2, Ordering::Relaxed);
    let every = Duration::from_secs(10);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    start_and_wait_for_first_start(&manager, &job, every).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let starts = offsets(&job.starts());
    assert_eq!(
        starts.len(),
        4,
        "three attempts, then the next regular run: {starts:?}"
    );
    // The delays themselves are checked exactly below (backoff_ms); a start may come a few
    // milliseconds after its delay, when paused time jumps past work on a blocking thread.
    let slack = Duration::from_millis(50);
    assert!(starts[1] <= Duration::from_secs(1) + slack, "{starts:?}");
    assert!(
        starts[2] - starts[1] <= Duration::from_secs(2) + slack,
        "{starts:?}"
    );
    assert_eq!(
        starts[3],
        Duration::from_secs(10),
        "the cadence did not move"
    );
    let task = &manager.tasks()[0];
    let first = task.history.last().unwrap();
    assert_eq!(first.attempts, 3);
    assert_eq!(first.backoff_ms.len(), 2);
    assert!(
        first.backoff_ms[0] <= 1000 && first.backoff_ms[1] <= 2000,
        "{first:?}"
    );
    assert!(matches!(first.outcome, Outcome::Succeeded { .. }));
    assert_eq!(task.counts.retries, 2);
}

#[tokio::test]
async fn retries_stop_after_the_limit() {
    let job = StandIn::new(Duration::ZERO);
    job.failures.store(100, Ordering::Relaxed);
    let (manager, _dir) =
        stand_in_manager(job.clone(), Duration::from_secs(600), retry(1000)).await;
    let run = manager.run_now("stand_in").unwrap();
    let record = manager.wait_for("stand_in", run).await.unwrap();
    assert_eq!(record.attempts, 4, "one attempt and three retries");
    for (retry, waited) in record.backoff_ms.iter().enumerate() {
        assert!(*waited <= 1000 << retry, "{record:?}");
    }
    assert!(
        matches!(
            &record.outcome,
            Outcome::Failed {
                cause: FailureKind::AcquireTimeout,
                ..
            }
        ),
        "{record:?}"
    );
}

#[tokio::test]
async fn a_paused_task_makes_no_further_attempt_of_a_run_waiting_to_retry() {
    // Paused while its first attempt works, so before the retry whatever the jitter.
    let job = StandIn::new(Duration::from_millis(300));
    job.failures.store(100, Ordering::Relaxed);
    let (manager, _dir) =
        stand_in_manager(job.clone(), Duration::from_secs(600), retry(1000)).await;
    let run = manager.run_now("stand_in").unwrap();
    while job.starts().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    manager.pause("stand_in").unwrap();
    let record = manager.wait_for("stand_in", run).await.unwrap();
    assert_eq!(record.attempts, 1, "{record:?}");
    assert_eq!(job.starts().len(), 1);
    assert!(
        matches!(&record.outcome, Outcome::Cancelled { reason } if reason.starts_with("paused before retry 1")),
        "{record:?}"
    );
}

#[tokio::test]
async fn logic_errors_are_not_retried() {
    let logic = Arc::new(StandIn {
        logic_error: true,
        ..Arc::into_inner(StandIn::new(Duration::ZERO)).unwrap()
    });
    let (manager, _dir) = stand_in_manager(logic, Duration::from_secs(600), retry(1000)).await;
    let run = manager.run_now("stand_in").unwrap();
    let record = manager.wait_for("stand_in", run).await.unwrap();
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.outcome,
        Outcome::Failed {
            cause: FailureKind::Logic,
            error: "bad data".into()
        }
    );
}

#[tokio::test]
async fn pause_stops_ticks_and_resume_brings_them_back() {
    let job = StandIn::new(Duration::ZERO);
    let every = Duration::from_secs(10);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    manager.pause("stand_in").unwrap();
    manager.start();
    // Past three starts (the first within 10 s), the last 1 s ago.
    tokio::time::sleep(first_start(every) + Duration::from_secs(21)).await;
    assert!(job.starts().is_empty());
    assert!(manager.tasks()[0].paused);
    manager.resume("stand_in").unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(job.starts().len(), 1);
    assert_eq!(
        manager.pause("nope").unwrap_err().to_string(),
        "unknown task \"nope\": the tasks are stand_in"
    );
}

#[tokio::test]
async fn a_deferred_start_waits_for_the_signal_to_drop_and_is_counted() {
    let job = StandIn::new(Duration::ZERO);
    let every = Duration::from_secs(60);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    let (defer, signal) = tokio::sync::watch::channel(true);
    manager.defer_scheduled_while(signal);
    let started = Instant::now();
    manager.start();
    let first = first_start(every);
    tokio::time::sleep(first + Duration::from_secs(10)).await;
    assert!(
        job.starts().is_empty(),
        "the start waits while the signal is up"
    );
    let task = &manager.tasks()[0];
    let since = (task.deferred_since.unwrap() - wall_start())
        .to_std()
        .unwrap();
    assert_eq!(on_second(since), first, "deferred since its start was due");
    assert_eq!(task.counts.deferred, 1);
    // A manual run is never deferred.
    let manual = manager.run_now("stand_in").unwrap();
    let record = manager.wait_for("stand_in", manual).await.unwrap();
    assert_eq!(record.deferred_ms, 0);
    defer.send(false).unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        job.starts().len(),
        2,
        "the deferred start ran once the signal dropped"
    );
    assert_eq!(
        on_second(job.starts()[1] - started),
        first + Duration::from_secs(10)
    );
    let task = &manager.tasks()[0];
    assert_eq!(task.deferred_since, None);
    let deferred = &task.history[0];
    assert_eq!(
        on_second(Duration::from_millis(deferred.deferred_ms)),
        Duration::from_secs(10),
        "{deferred:?}"
    );
    assert_eq!(task.counts.deferred, 1);
    // The next start is on the grid again, not moved by the deferral.
    tokio::time::sleep(every - Duration::from_secs(10)).await;
    assert_eq!(job.starts().len(), 3);
    assert_eq!(on_second(job.starts()[2] - started), first + every);
    assert_eq!(manager.tasks()[0].history[0].deferred_ms, 0);
}

#[tokio::test]
async fn a_deferred_start_runs_when_its_slack_is_used_up() {
    let job = StandIn::new(Duration::ZERO);
    let every = Duration::from_secs(60);
    let (manager, _dir) = stand_in_manager(job.clone(), every, retry(1000)).await;
    let (_defer, signal) = tokio::sync::watch::channel(true);
    manager.defer_scheduled_while(signal);
    let started = Instant::now();
    manager.start();
    let first = first_start(every);
    tokio::time::sleep(first + Duration::from_secs(29)).await;
    assert!(job.starts().is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        offsets_from(started, &job.starts()),
        [first + every / 2],
        "half the interval late, no later"
    );
    let task = &manager.tasks()[0];
    assert_eq!(
        on_second(Duration::from_millis(task.history[0].deferred_ms)),
        Duration::from_secs(30)
    );
    assert_eq!(task.counts.deferred, 1);
    assert_eq!(task.deferred_since, None);
}

fn offsets_from(started: Instant, starts: &[Instant]) -> Vec<Duration> {
    starts.iter().map(|s| on_second(*s - started)).collect()
}

/// Takes `n` leases at once, for a moment.
struct Takes(u32);

impl Job for Takes {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let mut held = Vec::new();
            for _ in 0..self.0 {
                held.push(ctx.leases.acquire(&ctx.run).await?);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(JobOutput::done(0, "held"))
        })
    }
}

/// A run's record has the most leases it held at once, and the preview expects that many
/// from its task; a paused task is left out of the preview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_record_their_leases_and_the_preview_expects_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(
        &DatabaseUrl::Sqlite(dir.path().join("t.db")),
        3,
        Duration::from_secs(5),
    )
    .await;
    let hour = Duration::from_secs(3_600);
    let manager = TaskManager::with_jobs(
        leases(db),
        vec![
            ("pair".to_owned(), hour, Arc::new(Takes(2)) as Arc<dyn Job>),
            ("single".to_owned(), hour, Arc::new(Takes(1))),
            ("none".to_owned(), hour, Arc::new(Takes(0))),
        ],
        retry(100),
        "test".to_owned(),
    );
    let now = Utc::now();
    let before = manager.schedule_preview(now, Duration::from_secs(2 * 3_600));
    assert_eq!(before.peak, 1, "one lease each before any run: {before:?}");
    for task in ["pair", "single", "none"] {
        let id = manager.run_now(task).unwrap();
        manager.wait_for(task, id).await.unwrap();
    }
    let leases: Vec<u32> = manager
        .tasks()
        .iter()
        .map(|t| t.history[0].leases)
        .collect();
    assert_eq!(leases, [2, 1, 0]);
    let preview = manager.schedule_preview(now, Duration::from_secs(2 * 3_600));
    assert_eq!(preview.peak, 2, "{preview:?}");
    assert_eq!(preview.tasks, ["pair"], "{preview:?}");
    manager.pause("pair").unwrap();
    let preview = manager.schedule_preview(now, Duration::from_secs(2 * 3_600));
    assert_eq!(preview.peak, 1, "{preview:?}");
    assert_eq!(preview.tasks, ["single"], "{preview:?}");
}

/// Stop waits for a run up to its deadline, then cancels it; no lease is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_up_to_the_deadline_then_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(
        &DatabaseUrl::Sqlite(dir.path().join("t.db")),
        2,
        Duration::from_secs(5),
    )
    .await;
    let leases = leases(db);
    let slow = Arc::new(StandIn {
        hold_lease: true,
        ..Arc::into_inner(StandIn::new(Duration::from_secs(60))).unwrap()
    });
    let quick = Arc::new(StandIn {
        hold_lease: true,
        ..Arc::into_inner(StandIn::new(Duration::from_millis(200))).unwrap()
    });
    let manager = TaskManager::with_jobs(
        leases.clone(),
        vec![
            (
                "slow".to_owned(),
                Duration::from_secs(600),
                slow as Arc<dyn Job>,
            ),
            (
                "quick".to_owned(),
                Duration::from_secs(600),
                quick as Arc<dyn Job>,
            ),
        ],
        retry(1000),
        "test".to_owned(),
    );
    manager.start();
    // Their first scheduled starts are minutes away: start both by hand.
    manager.run_now("slow").unwrap();
    manager.run_now("quick").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while leases.snapshot().leases < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both runs hold a lease"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    let report = manager.stop(Duration::from_millis(800)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(report.finished.len(), 1, "{report:?}");
    assert_eq!(report.cancelled.len(), 1, "{report:?}");
    assert!(!manager.is_running());
    let tasks = manager.tasks();
    assert!(
        matches!(&tasks[0].last.as_ref().unwrap().outcome, Outcome::Cancelled { reason } if reason.contains("deadline"))
    );
    assert!(matches!(
        tasks[1].last.as_ref().unwrap().outcome,
        Outcome::Succeeded { .. }
    ));
    assert!(
        tasks
            .iter()
            .all(|t| t.state == TaskState::Idle && t.next_run_at.is_none())
    );
    let s = leases.snapshot();
    assert_eq!(s.leases, 0, "no lease left behind");
    assert_eq!(s.issued, s.released + s.revoked);
}

// ---- The real jobs ----

const HOUR: i64 = 3_600_000;

/// Inserts one auction and returns its id.
async fn auction(pool: &AnyPool, status: &str, reserve: i64, starts: i64, ends: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO auctions (title, status, reserve_cents, starts_at_ms, ends_at_ms, updated_at_ms) \
         VALUES ('lot', $1, $2, $3, $4, 0) RETURNING id",
    )
    .bind(status.to_owned())
    .bind(reserve)
    .bind(starts)
    .bind(ends)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn bid(pool: &AnyPool, auction: i64, amount: i64, placed: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO bids (auction_id, bidder, amount_cents, placed_at_ms) VALUES ($1, 'b', $2, $3) RETURNING id",
    )
    .bind(auction)
    .bind(amount)
    .bind(placed)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn status_of(pool: &AnyPool, id: i64) -> (String, Option<i64>) {
    sqlx::query_as("SELECT status, winning_bid_id FROM auctions WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn events(pool: &AnyPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM auction_events")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn run(manager: &TaskManager, task: &str) -> Outcome {
    let id = manager.run_now(task).unwrap();
    tokio::time::timeout(Duration::from_secs(30), manager.wait_for(task, id))
        .await
        .expect("the run finishes")
        .unwrap()
        .outcome
}

async fn real_jobs_put_every_auction_where_its_times_and_bids_say(url: DatabaseUrl) {
    let db = database(&url, 4, Duration::from_secs(5)).await;
    let pool = db.pool().clone();
    let now = Utc::now().timestamp_millis();
    let starting = auction(&pool, "scheduled", 0, now - 60_000, now + HOUR).await;
    let sold = auction(&pool, "scheduled", 5_000, now - 2 * HOUR, now - HOUR).await;
    bid(&pool, sold, 6_000, now - 90 * 60_000).await;
    let winner = bid(&pool, sold, 9_000, now - 80 * 60_000).await;
    bid(&pool, sold, 9_000, now - 70 * 60_000).await; // same amount, later: loses the tie
    let unsold = auction(&pool, "scheduled", 50_000, now - 2 * HOUR, now - HOUR).await;
    bid(&pool, unsold, 10_000, now - 90 * 60_000).await;
    let future = auction(&pool, "scheduled", 0, now + HOUR, now + 2 * HOUR).await;
    let late = auction(&pool, "active", 1_000, now - HOUR, now - 10 * 60_000).await;
    bid(&pool, late, 500, now - 30 * 60_000).await; // below the reserve
    bid(&pool, late, 90_000, now - 60_000).await; // after the end: does not count
    let draft = auction(&pool, "draft", 0, now - HOUR, now + HOUR).await;

    let manager = TaskManager::new(
        leases(db),
        &Default::default(),
        retry(100),
        "test".to_owned(),
    );
    // starting 1, sold 2, unsold 2, late 1.
    assert!(matches!(
        run(&manager, "status_transitions").await,
        Outcome::Succeeded { rows: 6, .. }
    ));
    let monitor = run(&manager, "auction_monitor").await;
    let Outcome::Succeeded { rows: 3, detail } = monitor else {
        panic!("{monitor:?}")
    };
    assert_eq!(
        detail,
        "1 settled, 2 unsold; anomalies: 0 active past their end, 1 bids after the end"
    );

    let expected = [
        (starting, ("active".to_owned(), None)),
        (sold, ("settled".to_owned(), Some(winner))),
        (unsold, ("unsold".to_owned(), None)),
        (future, ("scheduled".to_owned(), None)),
        (late, ("unsold".to_owned(), None)),
        (draft, ("draft".to_owned(), None)),
    ];
    for (id, want) in &expected {
        assert_eq!(&status_of(&pool, *id).await, want, "auction {id}");
    }
    // starting 1, sold 3, unsold 3, late 2.
    assert_eq!(events(&pool).await, 9);

    // Twice changes nothing more.
    assert!(matches!(
        run(&manager, "status_transitions").await,
        Outcome::Succeeded { rows: 0, .. }
    ));
    assert!(matches!(
        run(&manager, "auction_monitor").await,
        Outcome::Succeeded { rows: 0, .. }
    ));
    for (id, want) in &expected {
        assert_eq!(&status_of(&pool, *id).await, want, "auction {id}");
    }
    assert_eq!(events(&pool).await, 9);
    let (counts, _) = manager.latest_counts().unwrap();
    assert_eq!(counts.total(), 6);

    let health = run(&manager, "health_check").await;
    assert!(
        matches!(&health, Outcome::Succeeded { detail, .. } if detail.starts_with("round trip")),
        "{health:?}"
    );
    assert!(manager.latest_round_trip().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_real_jobs_are_correct_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    real_jobs_put_every_auction_where_its_times_and_bids_say(DatabaseUrl::Sqlite(
        dir.path().join("a.db"),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_real_jobs_are_correct_and_idempotent() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    real_jobs_put_every_auction_where_its_times_and_bids_say(DatabaseUrl::parse(db.url()).unwrap())
        .await;
}

/// Two instances on one database, started together: every auction moves exactly once, and a
/// run that finds the other instance holding the task's lock says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_transition_and_settle_each_auction_exactly_once() {
    let Some(test_db) = TestDatabase::create().await else {
        return;
    };
    let url = DatabaseUrl::parse(test_db.url()).unwrap();
    let db_a = database(&url, 4, Duration::from_secs(5)).await;
    let db_b = database(&url, 4, Duration::from_secs(5)).await;
    let pool = db_a.pool().clone();
    let now = Utc::now().timestamp_millis();
    for i in 0..60 {
        let id = auction(&pool, "scheduled", 1_000, now - 2 * HOUR, now - HOUR - i).await;
        if i % 3 != 0 {
            bid(&pool, id, 2_000 + i, now - 90 * 60_000).await;
        }
    }
    let a = TaskManager::new(
        leases(db_a),
        &Default::default(),
        retry(100),
        "a".to_owned(),
    );
    let b = TaskManager::new(
        leases(db_b),
        &Default::default(),
        retry(100),
        "b".to_owned(),
    );
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        for task in ["status_transitions", "auction_monitor"] {
            let (x, y) = tokio::join!(run(&a, task), run(&b, task));
            outcomes.extend([x, y]);
        }
    }
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Succeeded { .. })
                || *outcome
                    == Outcome::Skipped {
                        reason: RUNNING_ELSEWHERE.to_owned(),
                        cause: SkipCause::Elsewhere,
                    },
            "{outcome:?}"
        );
    }
    let per_auction: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT auction_id, COUNT(*) FROM auction_events GROUP BY auction_id ORDER BY auction_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(per_auction.len(), 60);
    assert!(per_auction.iter().all(|(_, n)| *n == 3), "{per_auction:?}");
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT auction_id, to_status FROM auction_events \
         GROUP BY auction_id, to_status HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    let (settled, unsold): (i64, i64) = sqlx::query_as(
        "SELECT SUM(CASE WHEN status = 'settled' THEN 1 ELSE 0 END), \
                SUM(CASE WHEN status = 'unsold' THEN 1 ELSE 0 END) FROM auctions",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((settled, unsold), (40, 20));

    // The other instance holds the lock: the run reports the skip.
    let mut other = AnyConnection::connect(test_db.url()).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(STATUS_TRANSITIONS_LOCK)
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(
        run(&a, "status_transitions").await,
        Outcome::Skipped {
            reason: RUNNING_ELSEWHERE.to_owned(),
            cause: SkipCause::Elsewhere,
        }
    );
    assert!(a.tasks()[0].counts.elsewhere_skips >= 1);
    assert_eq!(
        a.tasks()[0].last.as_ref().unwrap().outcome,
        Outcome::Skipped {
            reason: RUNNING_ELSEWHERE.to_owned(),
            cause: SkipCause::Elsewhere,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_health_check_refreshes_the_server_view() {
    let Some(test_db) = TestDatabase::create().await else {
        return;
    };
    let db = database(
        &DatabaseUrl::parse(test_db.url()).unwrap(),
        2,
        Duration::from_secs(5),
    )
    .await;
    let leases = leases(db);
    let manager = TaskManager::new(leases.clone(), &Default::default(), retry(100), "t".into());
    assert_eq!(leases.server_view(), ServerView::Unknown);
    let outcome = run(&manager, "health_check").await;
    assert!(
        matches!(&outcome, Outcome::Succeeded { detail, .. } if detail.contains("connections")),
        "{outcome:?}"
    );
    assert!(matches!(leases.server_view(), ServerView::Postgres(_)));
}

/// The server goes away: runs retry with the policy's delays, then fail with a clear error;
/// when it is back the next run succeeds without restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_runs_after_retries_then_they_recover() {
    let Some(cluster) = ScratchCluster::start(20) else {
        return;
    };
    let url = DatabaseUrl::parse(&cluster.url("postgres", "postgres")).unwrap();
    let db = database(&url, 3, Duration::from_millis(500)).await;
    let manager = TaskManager::new(leases(db), &Default::default(), retry(200), "t".into());
    assert!(matches!(
        run(&manager, "status_transitions").await,
        Outcome::Succeeded { .. }
    ));

    cluster.stop();
    let id = manager.run_now("status_transitions").unwrap();
    let record = tokio::time::timeout(
        Duration::from_secs(30),
        manager.wait_for("status_transitions", id),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(record.attempts, 4, "{record:?}");
    assert_eq!(record.backoff_ms.len(), 3);
    for (i, waited) in record.backoff_ms.iter().enumerate() {
        assert!(
            *waited <= 200 << i,
            "retry {} waited {waited} ms: {record:?}",
            i + 1
        );
    }
    let Outcome::Failed { cause, error } = &record.outcome else {
        panic!("{record:?}")
    };
    // Not the pool's timeout: a new connection tried behind it says the server is not there.
    assert_eq!(*cause, FailureKind::Unreachable, "{error}");
    assert_eq!(manager.tasks()[0].counts.failed, 1);

    cluster.restart();
    assert!(matches!(
        run(&manager, "status_transitions").await,
        Outcome::Succeeded { .. }
    ));
}
