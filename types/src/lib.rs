//! The names that cross Leasewatch's wire: who is calling, how urgent a recommendation is,
//! where a task is, how a run ended, which control action, how an audited action came out.
//! Defined once here and compiled for the server and the browser (serde only; the `schema`
//! feature adds `JsonSchema` for the server's OpenAPI document), so no side compares them as
//! strings and a rename is a compile error, not a silent mismatch.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Declares a unit enum whose serde name, [`Display`](fmt::Display) and [`FromStr`] are the
/// same snake_case word, with the list of every variant.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Every name on the wire, comma-separated (for messages that list the choices).
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }

            /// The name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<Self, UnknownName> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        kind: stringify!($name),
                        given: text.to_owned(),
                        allowed: Self::names(),
                    }),
                }
            }
        }
    };
}

/// A name that is not one of its kind's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// The kind of name (`ActionName`, `Role`, ...).
    pub kind: &'static str,
    /// What was given.
    pub given: String,
    /// The names allowed, comma-separated.
    pub allowed: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {:?}: allowed are {}", self.given, self.allowed)
    }
}

impl std::error::Error for UnknownName {}

names! {
    /// Who may do what.
    Role {
        /// Reads everything, changes nothing.
        Viewer = "viewer",
        /// Reads and acts.
        Operator = "operator",
    }
}

names! {
    /// Who an audited action was taken by: a role, or Leasewatch itself.
    Actor {
        /// A viewer (whose actions are refused).
        Viewer = "viewer",
        /// An operator.
        Operator = "operator",
        /// Leasewatch on its own (replacing the session secret, ...).
        System = "system",
    }
}

impl From<Role> for Actor {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => Actor::Viewer,
            Role::Operator => Actor::Operator,
        }
    }
}

names! {
    /// How urgent a recommendation is; recommendations are shown worst first.
    Severity {
        /// Worth knowing.
        Info = "info",
        /// Will hurt if left.
        Warning = "warning",
        /// Hurting now.
        Critical = "critical",
    }
}

names! {
    /// A control action.
    ActionName {
        /// Start the scheduler.
        Start = "start",
        /// Stop it, letting runs in flight finish within a deadline.
        Stop = "stop",
        /// Revoke stale leases and end their backends.
        Cleanup = "cleanup",
        /// Revoke every lease, end their backends, shrink the pool.
        EmergencyCleanup = "emergency_cleanup",
        /// Run a task now.
        RunNow = "run_now",
        /// Pause a task.
        Pause = "pause",
        /// Resume a paused task.
        Resume = "resume",
        /// Send a test notification to every configured alert receiver.
        TestNotification = "test_notification",
    }
}

impl ActionName {
    /// Whether the action names a task (`run_now`, `pause`, `resume`).
    pub const fn takes_task(self) -> bool {
        matches!(self, Self::RunNow | Self::Pause | Self::Resume)
    }

    /// Whether the action can preview what it would do (`stop`, `cleanup`, `emergency_cleanup`).
    pub const fn takes_dry_run(self) -> bool {
        matches!(self, Self::Stop | Self::Cleanup | Self::EmergencyCleanup)
    }
}

names! {
    /// Where a task is now.
    TaskStatus {
        /// Waiting for its next tick.
        Idle = "idle",
        /// A run is working.
        Running = "running",
        /// A run failed and waits to retry.
        Backoff = "backoff",
        /// Paused by an operator: ticks start no run.
        Paused = "paused",
    }
}

names! {
    /// How a run ended.
    RunOutcome {
        /// The work was done.
        Succeeded = "succeeded",
        /// Not run: another instance was running it.
        Skipped = "skipped",
        /// Failed after its attempts.
        Failed = "failed",
        /// Stopped by an operator.
        Cancelled = "cancelled",
    }
}

names! {
    /// What kind of failure ended a task run, as the recommendation rules read it (decided by
    /// the engine where the failure happens, from the error's type and SQLSTATE).
    FailureKind {
        /// No connection within `DB_CONNECTION_TIMEOUT`: the pool is exhausted, or the server
        /// does not let the pool open one.
        AcquireTimeout = "acquire_timeout",
        /// The database could not be reached or a connection to it could not be opened
        /// (refused, reset, TLS failure, a connection exception, a server starting up).
        Unreachable = "unreachable",
        /// PostgreSQL refused a new connection for want of a free slot (SQLSTATE 53300).
        SlotsExhausted = "slots_exhausted",
        /// The governor's lease limit stayed full for the whole acquire timeout (a tight
        /// budget).
        OverLimit = "over_limit",
        /// Cleanup took the run's lease back.
        Revoked = "revoked",
        /// The work outlived the lease timeout.
        TimedOut = "timed_out",
        /// The pool is closed: the engine is shutting down.
        Closed = "closed",
        /// The database refused or failed a statement.
        Database = "database",
        /// The task's own logic failed; retrying would fail the same way.
        Logic = "logic",
    }
}

impl FailureKind {
    /// Whether the run could not get a connection at all: what makes a failing health check
    /// mean "the database is unreachable".
    pub const fn is_connection(self) -> bool {
        matches!(self, Self::AcquireTimeout | Self::Unreachable)
    }
}

names! {
    /// How an audited action came out.
    AuditOutcome {
        /// Done.
        Ok = "ok",
        /// Refused (a viewer acting, a conflict).
        Refused = "refused",
        /// Attempted and failed.
        Error = "error",
    }
}

names! {
    /// Where an auction is in its life.
    AuctionStatus {
        /// Being written; not yet scheduled.
        Draft = "draft",
        /// Waiting for `starts_at`.
        Scheduled = "scheduled",
        /// Taking bids until `ends_at`.
        Active = "active",
        /// Past `ends_at`, waiting to be settled.
        Ended = "ended",
        /// Sold to the highest bid at or above the reserve.
        Settled = "settled",
        /// Ended without a bid at or above the reserve.
        Unsold = "unsold",
    }
}

names! {
    /// How an alert receiver takes its notifications.
    ReceiverKind {
        /// A generic webhook: the Alertmanager webhook body (version 4).
        Webhook = "webhook",
        /// An Alertmanager: alerts pushed to its `/api/v2/alerts`.
        Alertmanager = "alertmanager",
        /// A chat incoming webhook (Slack, Mattermost): a `text` body.
        Chat = "chat",
    }
}

names! {
    /// What a notification says.
    NotificationKind {
        /// New or changed firing alerts.
        Firing = "firing",
        /// The same firing alerts again: the repeat interval passed (or, for an
        /// Alertmanager, its periodic re-send).
        Repeat = "repeat",
        /// Alerts that stopped firing.
        Resolved = "resolved",
        /// A test sent by an operator.
        Test = "test",
    }
}

names! {
    /// Where a notification's delivery is.
    DeliveryStatus {
        /// Not delivered yet: waiting for its first attempt or its next retry.
        Pending = "pending",
        /// The receiver accepted it.
        Delivered = "delivered",
        /// Replaced by a newer notification to the same receiver before it was delivered.
        Superseded = "superseded",
        /// Given up: the queue was full, or its receiver is no longer configured.
        Dropped = "dropped",
    }
}

names! {
    /// A span of the charts, ending now.
    ChartRange {
        /// The last 15 minutes (in memory).
        Minutes15 = "15m",
        /// The last hour (in memory).
        Hour = "1h",
        /// The last 24 hours (from the database).
        Day = "24h",
        /// The last 7 days (from the database).
        Week = "7d",
    }
}

impl ChartRange {
    /// How far back it reaches, in seconds.
    pub const fn secs(self) -> i64 {
        match self {
            ChartRange::Minutes15 => 15 * 60,
            ChartRange::Hour => 3600,
            ChartRange::Day => 24 * 3600,
            ChartRange::Week => 7 * 24 * 3600,
        }
    }

    /// Whether the in-memory history covers it (no database read).
    pub const fn in_memory(self) -> bool {
        self.secs() <= 3600
    }
}

/// What a runs search asks for, as the query string carries it (`/runs?task=…&outcome=…`,
/// `GET /api/admin/runs?…`): each field as given, checked by the server, which names the field
/// of any value it refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunsQuery {
    /// One task, by name.
    pub task: Option<String>,
    /// One outcome: `succeeded`, `skipped`, `failed` or `cancelled`.
    pub outcome: Option<String>,
    /// One kind of failure (`acquire_timeout`, `unreachable`, `slots_exhausted`, `over_limit`,
    /// `revoked`, `timed_out`, `closed`, `database`, `logic`).
    pub failure: Option<String>,
    /// One instance (as in `application_name`, `leasewatch:tasks:<instance>`).
    pub instance: Option<String>,
    /// Runs that started at or after this instant (RFC 3339, `2026-12-01T03:00:00Z`).
    pub from: Option<String>,
    /// Runs that started before this instant (RFC 3339).
    pub to: Option<String>,
    /// Runs per page, 1 to 500 (default 50).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 500)))]
    pub limit: Option<u32>,
    /// The cursor of the previous page's `next` link.
    pub before: Option<String>,
}

impl RunsQuery {
    /// The query string that asks for this (empty fields left out), for links.
    pub fn to_query_string(&self) -> String {
        let limit = self.limit.map(|n| n.to_string());
        query_string([
            ("task", self.task.as_deref()),
            ("outcome", self.outcome.as_deref()),
            ("failure", self.failure.as_deref()),
            ("instance", self.instance.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("limit", limit.as_deref()),
            ("before", self.before.as_deref()),
        ])
    }
}

/// What an audit search asks for, as the query string carries it (`/audit?…`,
/// `GET /api/admin/audit?…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditQuery {
    /// One action (`cleanup`, `stop`, `login`, …).
    pub action: Option<String>,
    /// Who: `operator`, `viewer` or `system`.
    pub actor: Option<String>,
    /// How it came out: `ok`, `refused` or `error`.
    pub outcome: Option<String>,
    /// Entries at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Entries before this instant (RFC 3339).
    pub to: Option<String>,
    /// Entries per page, 1 to 500 (default 50).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 500)))]
    pub limit: Option<u32>,
    /// Only entries with an id below this: the `before` of the previous page's `next` link.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub before: Option<i64>,
}

impl AuditQuery {
    /// The query string that asks for this (empty fields left out), for links.
    pub fn to_query_string(&self) -> String {
        let limit = self.limit.map(|n| n.to_string());
        let before = self.before.map(|n| n.to_string());
        query_string([
            ("action", self.action.as_deref()),
            ("actor", self.actor.as_deref()),
            ("outcome", self.outcome.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("limit", limit.as_deref()),
            ("before", before.as_deref()),
        ])
    }
}

/// `name=value` pairs joined with `&`, the values percent-encoded, the empty or missing left
/// out.
fn query_string<const N: usize>(pairs: [(&str, Option<&str>); N]) -> String {
    pairs
        .into_iter()
        .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, v)))
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Which pool and server samples to chart, as the query string carries it (`/?range=24h`,
/// `/?from=…&to=…`, `GET /api/admin/samples?…`): a range ending now, or from and to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SamplesQuery {
    /// `15m`, `1h`, `24h` or `7d`, ending now.
    pub range: Option<String>,
    /// The start (RFC 3339), instead of a range.
    pub from: Option<String>,
    /// The end (RFC 3339); now when only `from` is given.
    pub to: Option<String>,
}

impl SamplesQuery {
    /// The query string that asks for this (empty fields left out), for links.
    pub fn to_query_string(&self) -> String {
        [
            ("range", self.range.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, v)))
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// `value` with everything but unreserved characters (RFC 3986) percent-encoded, for a query
/// string.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

names! {
    /// Where a task's work runs: on the primary (every write, and every task unless it says
    /// otherwise), or on the least-loaded read replica in rotation (read-only work).
    Route {
        /// The primary (`DATABASE_URL`): writes, and all coordination.
        Primary = "primary",
        /// A read replica in rotation (`DATABASE_REPLICA_URLS`), in a read-only session.
        Replica = "replica",
    }
}

names! {
    /// What read work does while no replica is in rotation (`REPLICA_FALLBACK`).
    Fallback {
        /// It runs on the primary.
        Primary = "primary",
        /// It waits (retrying with backoff) for a replica to come back.
        Wait = "wait",
    }
}

/// One of the databases tasks run on: the primary, or a read replica by its place in
/// `DATABASE_REPLICA_URLS`, counted from 1. On the wire: `primary`, `replica-1`, ...
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(into = "String", try_from = "String")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(with = "String"))]
pub enum Target {
    /// `DATABASE_URL`.
    #[default]
    Primary,
    /// The replica at this place (from 1) in `DATABASE_REPLICA_URLS`.
    Replica(u16),
}

impl Target {
    /// The prefix of a replica's name.
    const REPLICA: &'static str = "replica-";
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Primary => f.write_str("primary"),
            Self::Replica(n) => write!(f, "{}{n}", Self::REPLICA),
        }
    }
}

impl FromStr for Target {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, UnknownName> {
        if text == "primary" {
            return Ok(Self::Primary);
        }
        text.strip_prefix(Self::REPLICA)
            .filter(|n| !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .map(Self::Replica)
            .ok_or_else(|| UnknownName {
                kind: "Target",
                given: text.to_owned(),
                allowed: "primary, replica-1, replica-2, ...".to_owned(),
            })
    }
}

impl From<Target> for String {
    fn from(target: Target) -> Self {
        target.to_string()
    }
}

impl TryFrom<String> for Target {
    type Error = UnknownName;

    fn try_from(text: String) -> Result<Self, UnknownName> {
        text.parse()
    }
}

/// The names of the built-in tasks.
pub mod task {
    /// Scheduled → active → ended.
    pub const STATUS_TRANSITIONS: &str = "status_transitions";
    /// Settles ended auctions, reports anomalies.
    pub const AUCTION_MONITOR: &str = "auction_monitor";
    /// Round trip and server-wide connection use.
    pub const HEALTH_CHECK: &str = "health_check";
    /// The demo's leaking task (`--demo` with `DEMO_LEAK_HOLD`).
    pub const LEAKY_REPORT: &str = "leaky_report";
    /// Downsamples and prunes the persisted history.
    pub const HISTORY_RETENTION: &str = "history_retention";
    /// The names of Leasewatch's own tasks, the demo's among them, whether or not they run:
    /// no declared task or job of an embedding application may take one.
    pub const RESERVED: [&str; 5] = [
        STATUS_TRANSITIONS,
        AUCTION_MONITOR,
        HEALTH_CHECK,
        HISTORY_RETENTION,
        LEAKY_REPORT,
    ];
}

/// "85 s", "4 min", "2 h": an approximate span in the unit an operator reads it in, rounded:
/// how the forecast says "exhaustion in ~…", on the dashboard and in its recommendation alike.
pub fn rounded_span(secs: f64) -> String {
    let secs = secs.max(0.0).round();
    if secs < 120.0 {
        format!("{secs} s")
    } else if secs < 90.0 * 60.0 {
        format!("{} min", (secs / 60.0).round())
    } else {
        format!("{} h", (secs / 3600.0).round())
    }
}

/// The audit log's name for what Leasewatch does on its own when the server's slots are
/// forecast to run out (and for the forecast clearing).
pub const PREDICTIVE_CLEANUP: &str = "predictive_cleanup";

/// The audit log's name for Leasewatch taking a read replica out of rotation or putting it
/// back.
pub const TARGET_ROTATION: &str = "target_rotation";

/// The audit log's name for Leasewatch replacing its session secret.
pub const REPLACE_SESSION_SECRET: &str = "replace_session_secret";

#[cfg(test)]
mod tests {
    #[test]
    fn targets_read_back_as_written() {
        for target in [Target::Primary, Target::Replica(1), Target::Replica(12)] {
            assert_eq!(target.to_string().parse::<Target>(), Ok(target));
        }
        assert_eq!(Target::Replica(2).to_string(), "replica-2");
        for refused in [
            "",
            "replica-",
            "replica-0",
            "replica-01",
            "replica-x",
            "Primary",
        ] {
            assert!(refused.parse::<Target>().is_err(), "{refused:?}");
        }
    }

    use super::*;

    #[test]
    fn names_read_back_and_unknown_ones_say_what_is_allowed() {
        for action in ActionName::ALL {
            assert_eq!(action.as_str().parse::<ActionName>(), Ok(*action));
        }
        let err = "restart".parse::<ActionName>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown \"restart\": allowed are start, stop, cleanup, emergency_cleanup, run_now, \
             pause, resume, test_notification"
        );
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(Actor::from(Role::Operator), Actor::Operator);
    }
}
