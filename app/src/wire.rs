//! Types exchanged between the server and the browser. Plain data with serde only: they compile
//! for `wasm32` without the engine.
//!
//! Instants travel as Unix milliseconds (`i64`), not chrono types: chrono's formatting and
//! parsing would add tens of kilobytes to the WASM for one "HH:MM:SS". The few formats the
//! page shows are written out here instead: at UTC or at an offset from it (the browser's
//! zone, [`clock_at`], [`date_time_at`]; [`crate::prefs::Zone`] adds the words around them),
//! in ISO 8601 ([`iso_utc`]), and relative to now ([`Relative`]).

use serde::{Deserialize, Serialize};

pub use leasewatch_types::{
    ActionName, Actor, AuctionStatus, AuditOutcome, DeliveryStatus, NotificationKind, ReceiverKind,
    Role, RunOutcome, Severity, Target, TaskStatus,
};

/// The seconds since 1970-01-01 00:00 of the wall clock `offset_min` minutes east of UTC at
/// an instant given in Unix milliseconds (whole seconds, rounded down).
fn wall_secs(at_ms: i64, offset_min: i32) -> i64 {
    at_ms.div_euclid(1000) + i64::from(offset_min) * 60
}

/// "HH:MM:SS", the time of day `offset_min` minutes east of UTC (0: UTC) of an instant given
/// in Unix milliseconds.
pub fn clock_at(at_ms: i64, offset_min: i32) -> String {
    let secs_of_day = wall_secs(at_ms, offset_min).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// "HH:MM", or "HH:MM:SS" when the seconds are not zero: a time of day on a schedule, as
/// [`clock_at`] reads it.
pub fn short_clock_at(at_ms: i64, offset_min: i32) -> String {
    let clock = clock_at(at_ms, offset_min);
    match clock.strip_suffix(":00") {
        Some(minutes) => minutes.to_owned(),
        None => clock,
    }
}

/// "YYYY-MM-DD HH:MM:SS", the date and time `offset_min` minutes east of UTC of an instant
/// given in Unix milliseconds.
pub fn date_time_at(at_ms: i64, offset_min: i32) -> String {
    let (year, month, day) = civil_from_days(wall_secs(at_ms, offset_min).div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02} {}",
        clock_at(at_ms, offset_min)
    )
}

/// "UTC+01:00", "UTC-03:30": an offset of `offset_min` minutes east of UTC, as ISO 8601
/// writes it after "UTC".
pub fn offset_name(offset_min: i32) -> String {
    let sign = if offset_min < 0 { '-' } else { '+' };
    let minutes = offset_min.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// "2026-12-02T14:03:07.250Z": an instant in ISO 8601, UTC, to the millisecond, as a
/// `<time datetime>` carries it.
pub fn iso_utc(at_ms: i64) -> String {
    let date_time = date_time_at(at_ms, 0).replacen(' ', "T", 1);
    format!("{date_time}.{:03}Z", at_ms.rem_euclid(1000))
}

/// How an instant reads relative to now: how long ago, or how long until.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relative {
    /// "3 min ago" (something that happened); "just now" within the second, or when the
    /// browser's clock is a little behind the server's.
    Ago,
    /// "in 40 s" (something due); "due now" once its time has come.
    Until,
}

impl Relative {
    /// Its name, as the page's markup carries it (`data-rel`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ago => "ago",
            Self::Until => "until",
        }
    }

    /// Reads a name written by [`Relative::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ago" => Some(Self::Ago),
            "until" => Some(Self::Until),
            _ => None,
        }
    }

    /// The words for an instant at `at_ms` as of `now_ms` (both Unix milliseconds): seconds
    /// under a minute, minutes under an hour, hours under two days, then days, each rounded
    /// towards the instant (a countdown says "in 5 s" until the last second has passed).
    pub fn words(self, at_ms: i64, now_ms: i64) -> String {
        match self {
            Self::Ago => {
                let ago_ms = now_ms - at_ms;
                if ago_ms < 1_000 {
                    "just now".to_owned()
                } else {
                    format!("{} ago", span_words(ago_ms / 1_000))
                }
            }
            Self::Until => {
                let left_ms = at_ms - now_ms;
                if left_ms > 0 {
                    format!("in {}", span_words((left_ms + 999) / 1_000))
                } else {
                    "due now".to_owned()
                }
            }
        }
    }
}

/// "40 s", "3 min", "5 h", "3 d": a span of whole seconds in its largest unit, rounded down.
fn span_words(secs: i64) -> String {
    match secs {
        ..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: whole 400-year eras, then the year within the era counted from March,
/// so the leap day falls last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

/// Everything the dashboard shows, read from in-process state (never from the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// When this was taken on the server, in Unix milliseconds.
    pub taken_at_ms: i64,
    /// The caller's role: the operator acts, a viewer only reads.
    pub role: Role,
    /// How often the page asks again, in milliseconds.
    pub poll_ms: u64,
    /// "PostgreSQL" or "SQLite".
    pub backend: String,
    /// Where the database is, with any password redacted.
    pub database: String,
    /// Whether the scheduler runs.
    pub scheduler_running: bool,
    /// The pool now.
    pub pool: PoolCard,
    /// Samples over the last 15 minutes, oldest first.
    pub history: Vec<Sample>,
    /// Leases held now on every database, oldest first.
    pub leases: Vec<LeaseRow>,
    /// The databases tasks run on, the primary first, then the read replicas; the primary
    /// alone unless `DATABASE_REPLICA_URLS` names some.
    pub targets: Vec<TargetCard>,
    /// The tasks.
    pub tasks: Vec<TaskRow>,
    /// What the rules recommend, worst first.
    pub recommendations: Vec<Advice>,
    /// The expected peak of the tasks' own connections over the next hour, in a line, with
    /// the peak's time apart.
    pub schedule_preview: TimedLine,
    /// Recent control actions, newest first.
    pub audit: Vec<AuditRow>,
    /// Auctions per status, in life-cycle order.
    pub auctions: Vec<StatusCount>,
    /// The server-wide view in a line (PostgreSQL), with when it was read apart, or why there
    /// is none.
    pub server: TimedLine,
    /// Whether there is a database server to chart (PostgreSQL); SQLite is embedded, so its
    /// chart says the server view does not apply instead of looking empty.
    pub server_applies: bool,
    /// The exhaustion forecast of the server's client connections (PostgreSQL, once read).
    pub forecast: Option<Forecast>,
    /// Alerts firing, where they go and how their notifications fared.
    pub alerts: Alerts,
}

/// A line of text naming one instant, in parts, so the page can write the instant in the
/// reader's zone: `before`, the instant, `after`. A line that names none is all `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedLine {
    /// The text before the instant (all of it when there is none).
    pub before: String,
    /// The instant, in Unix milliseconds.
    pub at_ms: Option<i64>,
    /// The text after it.
    pub after: String,
}

impl TimedLine {
    /// A line that names no instant.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            before: text.into(),
            ..Self::default()
        }
    }
}

/// The alerts section: what fires, the receivers and the latest notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerts {
    /// The `instance` label this Leasewatch's alerts carry.
    pub instance: String,
    /// The configured receivers; empty when none is.
    pub receivers: Vec<ReceiverRow>,
    /// Alerts firing now, worst first.
    pub firing: Vec<FiringRow>,
    /// The latest notifications, newest first, at most [`Alerts::SHOWN`].
    pub notifications: Vec<NotificationRow>,
    /// Notifications waiting for delivery, shown or not.
    pub queued: u32,
}

impl Alerts {
    /// How many notifications the page lists.
    pub const SHOWN: usize = 10;
}

/// A configured alert receiver and its delivery counts since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverRow {
    /// Kind and host, never the URL (`webhook 127.0.0.1:9000`).
    pub name: String,
    /// What body it takes.
    pub kind: ReceiverKind,
    /// Notifications it accepted.
    pub delivered: u64,
    /// Attempts that failed (each retried later).
    pub failed_attempts: u64,
    /// Notifications replaced by newer ones before delivery.
    pub superseded: u64,
    /// Notifications given up.
    pub dropped: u64,
}

/// An alert firing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringRow {
    /// Its rule (`alertname`).
    pub name: String,
    /// How urgent.
    pub severity: Severity,
    /// The task it is about, if any.
    pub task: Option<String>,
    /// What is wrong, in a line.
    pub summary: String,
    /// Since when it fires, in Unix milliseconds.
    pub since_ms: i64,
}

/// One notification and its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRow {
    /// When it was made, in Unix milliseconds.
    pub at_ms: i64,
    /// The receiver's name.
    pub receiver: String,
    /// What it says.
    pub kind: NotificationKind,
    /// How many alerts it carries.
    pub alerts: u32,
    /// Where its delivery is.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due, while pending, in Unix milliseconds.
    pub next_attempt_ms: Option<i64>,
}

/// The exhaustion forecast as the server-connections chart draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// When the server was last read, in Unix milliseconds: the forecast line starts there.
    pub read_at_ms: i64,
    /// Client connections at that read.
    pub used: i64,
    /// Slots ordinary roles can use: the limit the forecast runs into.
    pub usable: i64,
    /// The fit, once there are enough reads.
    pub trend: Option<ForecastTrend>,
    /// How far ahead a forecast exhaustion raises the alarm, in seconds: how far the chart
    /// looks into the future.
    pub horizon_secs: u64,
    /// While exhaustion is predicted within the horizon: since when, in Unix milliseconds
    /// (drawn as critical).
    pub alarm_since_ms: Option<i64>,
    /// Whether Leasewatch acts on the alarm (takes back its own connections and defers runs),
    /// or only warns.
    pub acting: bool,
}

/// The fitted trend of the server's client connections.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastTrend {
    /// The fitted level now.
    pub level: f64,
    /// Growth in connections per minute.
    pub per_minute: f64,
    /// How well a steady rise fits, from about 0 (noise) to 1 (a clean rise).
    pub fit: f64,
    /// Seconds of reads the fit spans.
    pub window_secs: f64,
    /// Seconds until the line reaches the usable slots, when it rises and fits: then the chart
    /// draws the forecast line and says when.
    pub eta_secs: Option<f64>,
}

/// The pool at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoolCard {
    /// Open connections.
    pub total: u32,
    /// Open and unused.
    pub idle: u32,
    /// In use.
    pub active: u32,
    /// Acquires waiting.
    pub waiting: u32,
    /// Leases past the lease timeout.
    pub stale: u32,
    /// Configured maximum.
    pub max: u32,
    /// Configured minimum.
    pub min: u32,
    /// Acquires that timed out since start.
    pub acquire_timeouts: u64,
    /// Acquire latency p95 since start, in milliseconds.
    pub p95_ms: Option<f64>,
}

/// One history sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// In use.
    pub active: u32,
    /// Open and unused.
    pub idle: u32,
    /// Waiting.
    pub waiting: u32,
    /// Acquire latency p95 over the interval before this sample, in milliseconds.
    pub p95_ms: Option<f64>,
    /// The governor's lease limit for this instance.
    pub limit: u32,
    /// Task connections the server could give all instances together, as last read.
    pub budget: Option<u32>,
    /// The server's client connections as of its last read; `None` on SQLite or before the
    /// first read.
    pub server_clients: Option<i64>,
    /// The server's usable slots as of the same read; `None` likewise.
    pub server_usable: Option<i64>,
}

/// A lease held now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRow {
    /// Lease number.
    pub id: u64,
    /// Holding task.
    pub task: String,
    /// Holding run.
    pub run_id: u64,
    /// PostgreSQL backend, if any.
    pub backend_pid: Option<i32>,
    /// Held for, in milliseconds.
    pub held_ms: u64,
    /// Past the lease timeout.
    pub stale: bool,
    /// The database it is on.
    pub target: Target,
}

impl Dashboard {
    /// Whether read replicas are configured: then the page shows each database, and which one
    /// a lease is on.
    pub fn has_replicas(&self) -> bool {
        self.targets.len() > 1
    }
}

/// One database tasks run on, as the Databases section shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCard {
    /// Its name: `primary`, `replica-1`, ...
    pub target: Target,
    /// Where it is: `host:port/db` (never the user or password).
    pub address: String,
    /// Whether it takes work now.
    pub in_rotation: bool,
    /// Why it is out of rotation, in words, while it is.
    pub out: Option<String>,
    /// Since when it has been in (or out of) rotation, in Unix milliseconds.
    pub since_ms: i64,
    /// The replay lag last read, in seconds (0 on the primary); none until a probe answers,
    /// nor while it fails.
    pub lag_secs: Option<f64>,
    /// Open connections of its pool.
    pub open: u32,
    /// Open and unused.
    pub idle: u32,
    /// In use.
    pub active: u32,
    /// Leases this instance may hold on it at once now (its governor's limit).
    pub limit: u32,
    /// Its pool's maximum (`DB_MAX_CONNECTIONS`).
    pub max: u32,
    /// Leases held on it now.
    pub leases: u32,
    /// Of those, past the lease timeout.
    pub stale: u32,
    /// Times it was taken out of rotation, since start.
    pub bans: u64,
    /// Its bans and recoveries, newest first.
    pub events: Vec<RotationEvent>,
}

/// A database taken out of rotation, or put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationEvent {
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Why it was taken out; `None`: it came back.
    pub out: Option<String>,
}

/// A background task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The task's name, as in logs and metrics.
    pub task: String,
    /// When it runs, in words: "every 15 min (at :07:30, :22:30, …)" or "cron 30 2 * * *
    /// (Europe/Berlin)".
    pub schedule: String,
    /// Since when its due start has waited because exhaustion of the server is predicted, in
    /// Unix milliseconds.
    pub deferred_since_ms: Option<i64>,
    /// Where the task is now.
    pub state: TaskStatus,
    /// Paused: ticks start no runs.
    pub paused: bool,
    /// The next tick, in Unix milliseconds.
    pub next_run_at_ms: Option<i64>,
    /// How the last run ended ("succeeded", "skipped", "failed", "cancelled").
    pub last_outcome: Option<RunOutcome>,
    /// The last run's one-line detail or error.
    pub last_detail: Option<String>,
    /// When the last run started, in Unix milliseconds.
    pub last_run_at_ms: Option<i64>,
    /// How long it took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// Its attempts.
    pub last_attempts: Option<u32>,
    /// While a run waits to try again: which attempt comes next, and when.
    pub retry: Option<Retry>,
    /// Recent runs for the outcome chart, newest first.
    pub runs: Vec<RunDot>,
    /// Recent ticks skipped because a run was still going, in Unix milliseconds, newest first.
    pub overlap_skips_ms: Vec<i64>,
}

/// A run in backoff, waiting for its next attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// The run.
    pub run_id: u64,
    /// The attempt that comes next.
    pub next_attempt: u32,
    /// How many attempts the run may make in all.
    pub max_attempts: u32,
    /// When it will be made, in Unix milliseconds.
    pub at_ms: i64,
    /// The error the last attempt ended with.
    pub error: String,
}

/// One run on the outcome chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDot {
    /// When it started, in Unix milliseconds.
    pub at_ms: i64,
    /// How it ended.
    pub outcome: RunOutcome,
}

/// A recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    /// Rule id.
    pub id: String,
    /// How urgent.
    pub severity: Severity,
    /// What is wrong.
    pub title: String,
    /// The numbers and what to do.
    pub detail: String,
    /// The control action that helps ("cleanup", "emergency_cleanup", "start"), if any.
    pub action: Option<ActionName>,
    /// Set while the condition no longer holds and the recommendation is only kept so it does
    /// not flap: when it stopped holding, in Unix milliseconds. `detail` then gives its last
    /// numbers, and the action is not needed.
    pub cleared_at_ms: Option<i64>,
}

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Who: a role, or Leasewatch itself.
    pub role: Actor,
    /// What.
    pub action: String,
    /// With what (JSON).
    pub arguments: String,
    /// Only a preview: nothing was changed.
    pub dry_run: bool,
    /// How it came out.
    pub outcome: AuditOutcome,
    /// What came of it.
    pub result: String,
}

/// How many auctions are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    /// The status, as stored ("scheduled", "active", ...).
    pub status: AuctionStatus,
    /// Auctions in it.
    pub count: i64,
}

/// What a control action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlOutcome {
    /// The action.
    pub action: ActionName,
    /// Whether it was a preview.
    pub dry_run: bool,
    /// What happened (or would), in a line.
    pub message: String,
}

// The history: the charts' samples over a span (which cross to the browser), and what the runs,
// a run's and the audit log's pages are written from (on the server only: see `pages`).

pub use leasewatch_types::{AuditQuery, ChartRange, FailureKind, RunsQuery, SamplesQuery};

/// How far apart the engine takes its pool samples, in milliseconds (the history ring's and
/// the stored raw samples' spacing).
pub const SAMPLE_EVERY_MS: i64 = 5_000;

/// The most points a chart draws: as many as 15 minutes of samples, 5 s apart. Longer spans
/// are read as the busiest sample per bucket, so a chart never costs more than the 15-minute
/// one (each point is markup with its tooltip).
pub const MAX_CHART_POINTS: i64 = 180;

/// The bucket a chart over `span_ms` draws a point for: at most [`MAX_CHART_POINTS`] of them,
/// each a whole number of `base_ms` (the samples' own spacing), so buckets of the samples
/// merge whole.
pub fn chart_bucket_ms(span_ms: i64, base_ms: i64) -> i64 {
    let base = base_ms.max(1);
    let per_point = (span_ms.max(0) + MAX_CHART_POINTS - 1) / MAX_CHART_POINTS;
    ((per_point + base - 1) / base).max(1) * base
}

/// Which samples a dashboard poll brings with its data: the memory's last 15 minutes or hour,
/// or none while the charts read a longer span from the history at their own pace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PollSamples {
    /// The last 15 minutes, every sample.
    #[default]
    #[serde(rename = "15m")]
    Minutes15,
    /// The last hour, the busiest sample per 20 s.
    #[serde(rename = "1h")]
    Hour,
    /// None.
    #[serde(rename = "none")]
    None,
}

impl PollSamples {
    /// The range these samples cover, if any.
    pub fn range(self) -> Option<ChartRange> {
        match self {
            Self::Minutes15 => Some(ChartRange::Minutes15),
            Self::Hour => Some(ChartRange::Hour),
            Self::None => None,
        }
    }

    /// What a poll brings for the charts' span `query`: the memory's samples when it holds the
    /// span (no span given, `15m` or `1h`), none otherwise (a longer range, from and to, or a
    /// range the server will refuse).
    pub fn of(query: &SamplesQuery) -> Self {
        if query.from.is_some() || query.to.is_some() {
            return Self::None;
        }
        match query.range.as_deref().map(str::parse::<ChartRange>) {
            None | Some(Ok(ChartRange::Minutes15)) => Self::Minutes15,
            Some(Ok(ChartRange::Hour)) => Self::Hour,
            Some(_) => Self::None,
        }
    }
}

/// What a read of the history gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Read<T> {
    /// What was asked for.
    Found(T),
    /// A value the server refused (the page answers 400).
    Refused(Refusal),
    /// Not in the history (the page answers 404).
    Missing,
    /// The database cannot be read now (the page answers 503).
    Unavailable,
}

/// A refused value of a search: which field, and why, with what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The query parameter.
    pub field: String,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    /// `field` refused for `message`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// At most this many pairs of a query string are read.
pub const MAX_QUERY_PAIRS: usize = 32;
/// Each value of a query string is cut to this many bytes: longer ones are refused by the
/// server anyway, and the form shows what it was given.
pub const MAX_QUERY_VALUE: usize = 256;

/// The pairs of a query string (without its `?`), decoded as a form submits them: `+` a space,
/// `%XX` a byte (kept as it is when malformed). Bounded: [`MAX_QUERY_PAIRS`] pairs, each value
/// cut to [`MAX_QUERY_VALUE`] bytes.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_QUERY_PAIRS)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut value = form_decode(value);
            if value.len() > MAX_QUERY_VALUE {
                let mut cut = MAX_QUERY_VALUE;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
            }
            (form_decode(name), value)
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex(i + 1).is_some() && hex(i + 2).is_some() => {
                let (high, low) = (hex(i + 1).unwrap_or(0), hex(i + 2).unwrap_or(0));
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in `pairs`, the last given winning; empty ones count as not given.
fn value_of(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.trim().is_empty())
}

/// A number in `pairs`; one that is not a number is left out and refused in `refused` (the
/// first such).
fn number_of<T: std::str::FromStr>(
    pairs: &[(String, String)],
    name: &str,
    refused: &mut Option<Refusal>,
) -> Option<T> {
    let text = value_of(pairs, name)?;
    let number = text.trim().parse().ok();
    if number.is_none() && refused.is_none() {
        *refused = Some(Refusal::new(
            name,
            format!("{text:?} is not a whole number"),
        ));
    }
    number
}

/// A runs search from a query string (`task=…&outcome=…`): each field as given, for the
/// server to check; and a number in it that is not one (`limit`), refused here.
pub fn runs_query(query: &str) -> (RunsQuery, Option<Refusal>) {
    let pairs = query_pairs(query);
    let text = |name| value_of(&pairs, name);
    let mut refused = None;
    let query = RunsQuery {
        task: text("task"),
        outcome: text("outcome"),
        failure: text("failure"),
        instance: text("instance"),
        from: text("from"),
        to: text("to"),
        limit: number_of(&pairs, "limit", &mut refused),
        before: text("before"),
    };
    (query, refused)
}

/// An audit search from a query string (`action=…&actor=…`), as [`runs_query`] reads one.
pub fn audit_query(query: &str) -> (AuditQuery, Option<Refusal>) {
    let pairs = query_pairs(query);
    let text = |name| value_of(&pairs, name);
    let mut refused = None;
    let query = AuditQuery {
        action: text("action"),
        actor: text("actor"),
        outcome: text("outcome"),
        from: text("from"),
        to: text("to"),
        limit: number_of(&pairs, "limit", &mut refused),
        before: number_of(&pairs, "before", &mut refused),
    };
    (query, refused)
}

/// The charts' span from a query string (`range=24h`, `from=…&to=…`).
pub fn samples_query(query: &str) -> SamplesQuery {
    let pairs = query_pairs(query);
    SamplesQuery {
        range: value_of(&pairs, "range"),
        from: value_of(&pairs, "from"),
        to: value_of(&pairs, "to"),
    }
}

/// One finished run, as the runs page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRow {
    /// The instance that ran it.
    pub instance: String,
    /// The host that instance ran on.
    pub host: String,
    /// The task.
    pub task: String,
    /// The run's number within its instance.
    pub run_id: u64,
    /// Started by an operator's "run now" rather than the schedule.
    pub manual: bool,
    /// When its start was due, in Unix milliseconds (none for a manual run).
    pub scheduled_at_ms: Option<i64>,
    /// When it started, in Unix milliseconds.
    pub started_at_ms: i64,
    /// How long it took, retries included, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: RunOutcome,
    /// What kind of failure ended it, if it failed.
    pub failure: Option<FailureKind>,
    /// What was done, why it was skipped or cancelled, or its last error.
    pub detail: String,
    /// Rows changed.
    pub rows: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The most leases it held at once.
    pub leases: u32,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunsPage {
    /// The runs.
    pub runs: Vec<RunRow>,
    /// The `before` of the next page, when older runs remain.
    pub next: Option<String>,
}

/// The runs page: the engine's task names (for the filter) and what the search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsView {
    /// The tasks this instance has, by name.
    pub tasks: Vec<String>,
    /// The runs, or why there are none to show.
    pub found: Read<RunsPage>,
}

/// One run with each of its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The run as listed.
    pub run: RunRow,
    /// How long its scheduled start waited for a deferral to end, in milliseconds.
    pub deferred_ms: u64,
    /// Each attempt, in order.
    pub attempts: Vec<AttemptRow>,
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    /// 1 for the first.
    pub number: u32,
    /// When it started, in Unix milliseconds.
    pub started_at_ms: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The error it ended with.
    pub error: Option<String>,
    /// What kind of failure that was.
    pub failure: Option<FailureKind>,
    /// The backoff waited after it before the next attempt, in milliseconds.
    pub retry_delay_ms: Option<u64>,
    /// The leases it was given.
    pub leases: Vec<LeaseUseRow>,
}

/// A lease an attempt was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseUseRow {
    /// The lease's number.
    pub lease_id: u64,
    /// The PostgreSQL backend that served it; none on SQLite.
    pub backend_pid: Option<i32>,
    /// How long the acquire waited for a connection, in milliseconds.
    pub waited_ms: u64,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditRow>,
    /// The `before` of the next page, when older entries remain.
    pub next_before: Option<i64>,
}

/// Pool and server samples over a span, from the history: every instance writing to the
/// database, added up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanSamples {
    /// The span's start, in Unix milliseconds.
    pub from_ms: i64,
    /// Its end, in Unix milliseconds.
    pub to_ms: i64,
    /// Whether it ends now (a range, or a start without an end).
    pub ends_now: bool,
    /// How long each sample covers (its busiest moment), in milliseconds.
    pub bucket_ms: i64,
    /// Oldest first; buckets without samples are left out.
    pub samples: Vec<Sample>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefs::{Shown, Zone};

    /// "HH:MM:SS" in UTC (what chrono's `format("%H:%M:%S")` gives, before 1970 too).
    fn clock_utc(at_ms: i64) -> String {
        clock_at(at_ms, 0)
    }

    /// A date and time as the page writes it in UTC (what chrono's
    /// `format("%Y-%m-%d %H:%M:%S UTC")` gives for years 1 to 9999).
    fn date_time_utc(at_ms: i64) -> String {
        Zone::Utc.text(at_ms, Shown::DateTime, 0)
    }

    #[test]
    fn clock_reads_the_utc_time_of_day() {
        assert_eq!(clock_utc(0), "00:00:00");
        // 2024-05-06T07:08:09.999Z
        assert_eq!(clock_utc(1_714_979_289_999), "07:08:09");
        assert_eq!(clock_utc(86_399_000), "23:59:59");
        // Before 1970: 1969-12-31T23:59:59.500Z
        assert_eq!(clock_utc(-500), "23:59:59");
    }

    #[test]
    fn clock_agrees_with_chrono() {
        use chrono::DateTime;
        for ms in [
            0,
            -1,
            -86_400_001,
            1_700_000_000_123,
            1_714_979_289_999,
            4_102_444_799_999,
        ] {
            let at = DateTime::from_timestamp_millis(ms).unwrap();
            assert_eq!(clock_utc(ms), at.format("%H:%M:%S").to_string(), "{ms}");
        }
    }

    #[test]
    fn clock_and_date_read_at_an_offset() {
        let at = 1_796_220_187_250; // 2026-12-02T14:03:07.250Z
        assert_eq!(clock_at(at, 0), "14:03:07");
        assert_eq!(clock_at(at, 60), "15:03:07");
        assert_eq!(clock_at(at, -210), "10:33:07");
        assert_eq!(clock_at(at, 330), "19:33:07");
        // Across midnight, either way.
        assert_eq!(date_time_at(at, 600), "2026-12-03 00:03:07");
        assert_eq!(date_time_at(at, -900), "2026-12-01 23:03:07");
        assert_eq!(date_time_at(-1, 60), "1970-01-01 00:59:59");
    }

    #[test]
    fn offsets_agree_with_chrono() {
        use chrono::{DateTime, FixedOffset};
        for offset_min in [-720, -570, -210, -60, 0, 60, 330, 345, 840] {
            let zone = FixedOffset::east_opt(offset_min * 60).unwrap();
            for ms in (-86_400_001..4_102_444_799_999).step_by(97_777_777_777) {
                let at = DateTime::from_timestamp_millis(ms)
                    .unwrap()
                    .with_timezone(&zone);
                assert_eq!(
                    date_time_at(ms, offset_min),
                    at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "{ms} at {offset_min}"
                );
            }
        }
    }

    #[test]
    fn schedule_times_drop_zero_seconds() {
        assert_eq!(short_clock_at(1_796_220_420_000, 0), "14:07");
        assert_eq!(short_clock_at(1_796_220_450_000, 0), "14:07:30");
        assert_eq!(short_clock_at(1_796_220_420_000, -30), "13:37");
    }

    #[test]
    fn offsets_and_instants_are_named_as_iso_8601_writes_them() {
        assert_eq!(offset_name(0), "UTC+00:00");
        assert_eq!(offset_name(60), "UTC+01:00");
        assert_eq!(offset_name(-210), "UTC-03:30");
        assert_eq!(offset_name(345), "UTC+05:45");
        assert_eq!(iso_utc(1_796_220_187_250), "2026-12-02T14:03:07.250Z");
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn relative_times_read_in_their_largest_unit() {
        let now = 1_796_220_187_250;
        let ago = |ms: i64| Relative::Ago.words(now - ms, now);
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(-2_000), "just now", "a browser clock a little behind");
        assert_eq!(ago(1_000), "1 s ago");
        assert_eq!(ago(59_999), "59 s ago");
        assert_eq!(ago(60_000), "1 min ago");
        assert_eq!(ago(3_599_999), "59 min ago");
        assert_eq!(ago(3_600_000), "1 h ago");
        assert_eq!(ago(47 * 3_600_000), "47 h ago");
        assert_eq!(ago(3 * 86_400_000), "3 d ago");
        let until = |ms: i64| Relative::Until.words(now + ms, now);
        assert_eq!(until(4_500), "in 5 s");
        assert_eq!(until(1), "in 1 s");
        assert_eq!(until(0), "due now");
        assert_eq!(until(-3_000), "due now");
        assert_eq!(until(90_000), "in 1 min");
        assert_eq!(until(2 * 3_600_000), "in 2 h");
        for kind in [Relative::Ago, Relative::Until] {
            assert_eq!(Relative::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Relative::parse("later"), None);
    }

    #[test]
    fn date_and_time_read_as_an_operator_would_write_them() {
        assert_eq!(date_time_utc(0), "1970-01-01 00:00:00 UTC");
        // 2026-12-02T14:03:07.250Z
        assert_eq!(date_time_utc(1_796_220_187_250), "2026-12-02 14:03:07 UTC");
        assert_eq!(date_time_utc(-1), "1969-12-31 23:59:59 UTC");
        // Leap days: 2000 is a leap year, 1900 and 2100 are not.
        assert_eq!(date_time_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(date_time_utc(-2_203_891_200_000), "1900-03-01 00:00:00 UTC");
        assert_eq!(date_time_utc(4_107_542_400_000), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn date_and_time_agree_with_chrono() {
        use chrono::DateTime;
        let first = -62_135_596_800_000; // 0001-01-01T00:00:00Z
        let last = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        // A prime step lands on every time of day, month and year length across the range,
        // with the edges of each day and of the range added.
        let sweep = (first..=last).step_by(7_776_000_013);
        let edges = [first, last, -1, 0, 86_399_999, 86_400_000, 951_868_799_999];
        for ms in sweep.chain(edges) {
            let at = DateTime::from_timestamp_millis(ms).unwrap();
            assert_eq!(
                date_time_utc(ms),
                at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                "{ms}"
            );
        }
    }

    #[test]
    fn chart_buckets_hold_whole_samples_and_at_most_the_points_allowed() {
        assert_eq!(chart_bucket_ms(15 * 60_000, 5_000), 5_000);
        assert_eq!(chart_bucket_ms(3_600_000, 5_000), 20_000);
        // The history's own buckets for a day and a week (120 s, 840 s), four to a point.
        assert_eq!(chart_bucket_ms(86_400_000, 120_000), 480_000);
        assert_eq!(chart_bucket_ms(604_800_000, 840_000), 3_360_000);
        assert_eq!(chart_bucket_ms(0, 5_000), 5_000);
    }

    #[test]
    fn a_query_string_decodes_as_a_form_submits_it_and_stays_bounded() {
        assert_eq!(
            query_pairs("task=health_check&from=2026-12-01T00%3A00%3A00%2B01%3A00&x=a+b&bad=%zz"),
            [
                ("task".to_owned(), "health_check".to_owned()),
                ("from".to_owned(), "2026-12-01T00:00:00+01:00".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
                ("bad".to_owned(), "%zz".to_owned()),
            ]
        );
        let long = format!("task={}", "é".repeat(1000));
        assert!(query_pairs(&long)[0].1.len() <= MAX_QUERY_VALUE);
        let many = "a=1&".repeat(1000);
        assert_eq!(query_pairs(&many).len(), MAX_QUERY_PAIRS);
        // Multi-byte characters, and a bare name.
        assert_eq!(
            query_pairs("q=%C3%A9&flag"),
            [
                ("q".to_owned(), "é".to_owned()),
                ("flag".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn searches_read_their_fields_and_leave_empty_ones_out() {
        let (runs, refused) =
            runs_query("task=health_check&outcome=failed&failure=&instance=&limit=20");
        assert_eq!(runs.task.as_deref(), Some("health_check"));
        assert_eq!(runs.outcome.as_deref(), Some("failed"));
        assert_eq!(
            (runs.failure, runs.instance, runs.limit),
            (None, None, Some(20))
        );
        assert_eq!(refused, None);
        let (runs, refused) = runs_query("task=x&limit=many");
        assert_eq!((runs.task.as_deref(), runs.limit), (Some("x"), None));
        assert_eq!(refused.unwrap().field, "limit");
        let (audit, refused) = audit_query("actor=operator&before=42");
        assert_eq!(
            (audit.actor.as_deref(), audit.before),
            (Some("operator"), Some(42))
        );
        assert_eq!(refused, None);
        assert_eq!(audit_query("before=x").1.unwrap().field, "before");
        let span = samples_query("range=24h&from=");
        assert_eq!((span.range.as_deref(), span.from), (Some("24h"), None));
        let poll = |query| PollSamples::of(&samples_query(query));
        assert_eq!(poll(""), PollSamples::Minutes15);
        assert_eq!(poll("range=1h"), PollSamples::Hour);
        assert_eq!(poll("range=7d"), PollSamples::None);
        assert_eq!(
            poll("range=2d"),
            PollSamples::None,
            "the server names what is wrong"
        );
        assert_eq!(poll("from=2026-12-01T00:00:00Z"), PollSamples::None);
    }
}
