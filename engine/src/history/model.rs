//! What history holds and how it is asked for: stored runs and their filter and cursor, and
//! pool samples over a time range.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use leasewatch_types::{ChartRange, RunOutcome};
use serde::{Deserialize, Serialize};

use crate::{
    failure::FailureKind,
    query::{self, InvalidQuery},
    tasks::{RunRecord, Trigger},
};

/// One finished run as history keeps it: the columns the runs view filters and lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoredRun {
    /// The instance that ran it (as in `application_name`, `leasewatch:tasks:<instance>`).
    pub instance: String,
    /// The host that instance ran on.
    pub host: String,
    /// The task.
    pub task: String,
    /// The run's number within its instance.
    pub run_id: u64,
    /// What started it.
    pub trigger: Trigger,
    /// When its start was due (none for a manual run).
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
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

impl StoredRun {
    /// The row for `record`, a run of `task` on `instance` (on `host`).
    pub fn of(instance: &str, host: &str, task: &str, record: &RunRecord) -> Self {
        Self {
            instance: instance.to_owned(),
            host: host.to_owned(),
            task: task.to_owned(),
            run_id: record.run_id,
            trigger: record.trigger,
            scheduled_at: record.scheduled_at,
            started_at: record.started_at,
            ended_at: record.ended_at(),
            duration_ms: record.duration_ms,
            outcome: record.outcome.kind(),
            failure: record.failure(),
            detail: record.outcome.detail().to_owned(),
            rows: record.rows(),
            attempts: record.attempts,
            leases: record.leases,
        }
    }
}

/// One run with everything recorded of it: each attempt, its error, the leases and backends it
/// held and how long it waited for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunDetail {
    /// The run as listed.
    #[serde(flatten)]
    pub run: StoredRun,
    /// The whole record, attempts included.
    pub record: RunRecord,
}

/// Which runs to list. Every field narrows; none lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// One task.
    pub task: Option<String>,
    /// One outcome.
    pub outcome: Option<RunOutcome>,
    /// One kind of failure.
    pub failure: Option<FailureKind>,
    /// One instance.
    pub instance: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
}

/// A checked runs search: the filter, where the page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSearch {
    /// Which runs.
    pub filter: RunFilter,
    /// The page starts after this run (none: the newest).
    pub after: Option<RunCursor>,
    /// Runs per page.
    pub limit: u32,
}

impl RunSearch {
    /// Checks `query`; a refused value names its field, the value and what is allowed.
    pub fn parse(query: &leasewatch_types::RunsQuery) -> Result<Self, InvalidQuery> {
        let from = query::instant("from", &query.from)?;
        let to = query::instant("to", &query.to)?;
        query::ordered(from, to)?;
        let failure_names = FailureKind::names();
        Ok(Self {
            filter: RunFilter {
                task: query::name("task", &query.task)?.map(str::to_owned),
                outcome: query::one_of("outcome", &query.outcome, &RunOutcome::names())?,
                failure: query::one_of("failure", &query.failure, &failure_names)?,
                instance: query::name("instance", &query.instance)?.map(str::to_owned),
                from,
                to,
            },
            after: query::given(&query.before)
                .map(|text| {
                    text.parse()
                        .map_err(|err: BadCursor| InvalidQuery::new("before", err.to_string()))
                })
                .transpose()?,
            limit: query::page_size(query.limit)?,
        })
    }
}

/// Where a page of runs ends: the next page starts after this run, in the order newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    /// The last run's start, in Unix milliseconds.
    pub started_at_ms: i64,
    /// The last run's instance.
    pub instance: String,
    /// The last run's number.
    pub run_id: u64,
}

/// A cursor that is not one this server gave out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor from a runs page (it looks like 1733140000000.42.1234-0a1b2c3d)")]
pub struct BadCursor;

impl fmt::Display for RunCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The instance goes last: it is the one part that may contain dots.
        write!(
            f,
            "{}.{}.{}",
            self.started_at_ms, self.run_id, self.instance
        )
    }
}

impl FromStr for RunCursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '.');
        let (Some(at), Some(run), Some(instance)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(BadCursor);
        };
        if instance.is_empty() || instance.len() > 128 {
            return Err(BadCursor);
        }
        Ok(Self {
            started_at_ms: at.parse().map_err(|_| BadCursor)?,
            run_id: run.parse().map_err(|_| BadCursor)?,
            instance: instance.to_owned(),
        })
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<StoredRun>,
    /// Where the next page starts, when older runs remain.
    pub next: Option<RunCursor>,
}

/// Pool and server use over one span of time: each instance's sample (the busiest within the
/// span), added up over the instances writing to the database.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoredSample {
    /// The span's start, in Unix milliseconds.
    pub at_ms: i64,
    /// Connections in use.
    pub active: u32,
    /// Open and unused.
    pub idle: u32,
    /// Acquires waiting.
    pub waiting: u32,
    /// Leases held by tasks.
    pub leases: u32,
    /// Leases held past their timeout.
    pub stale: u32,
    /// Acquire latency p95, the worst of the span, in milliseconds.
    pub p95_ms: Option<f64>,
    /// The governors' lease limits.
    pub limit: u32,
    /// The task connections the server could give all instances together.
    pub budget: Option<u32>,
    /// The server's client connections (PostgreSQL).
    pub server_clients: Option<i64>,
    /// The server's usable slots (PostgreSQL).
    pub server_usable: Option<i64>,
}

/// A checked samples span: from and to, at most [`MAX_RANGE`](super::MAX_RANGE) apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpan {
    /// The start.
    pub from: DateTime<Utc>,
    /// The end.
    pub to: DateTime<Utc>,
    /// Whether it ends now (a range, or `from` without `to`) rather than at a given instant.
    pub ends_now: bool,
}

impl SampleSpan {
    /// Checks `query` as of `now`: a range ending now, or from and to (to defaulting to now);
    /// the last hour when neither is given. A refused value names its field.
    pub fn parse(
        query: &leasewatch_types::SamplesQuery,
        now: DateTime<Utc>,
    ) -> Result<Self, InvalidQuery> {
        let from = query::instant("from", &query.from)?;
        let to = query::instant("to", &query.to)?;
        let range: Option<ChartRange> = query::one_of("range", &query.range, &ChartRange::names())?;
        let span = match (range, from) {
            (Some(_), Some(_)) => {
                return Err(InvalidQuery::new(
                    "range",
                    "give a range or from and to, not both",
                ));
            }
            (Some(range), None) => Self::ending_now(range, now),
            (None, Some(from)) => Self {
                from,
                to: to.unwrap_or(now),
                ends_now: to.is_none(),
            },
            (None, None) if to.is_some() => {
                return Err(InvalidQuery::new("from", "must be given with to"));
            }
            (None, None) => Self::ending_now(ChartRange::Hour, now),
        };
        query::ordered(Some(span.from), Some(span.to))?;
        if (span.to - span.from).to_std().unwrap_or_default() > super::MAX_RANGE {
            return Err(InvalidQuery::new(
                "from",
                format!(
                    "the span may be {} days at most",
                    super::MAX_RANGE.as_secs() / 86_400
                ),
            ));
        }
        Ok(span)
    }

    /// `range` up to `now`.
    pub fn ending_now(range: ChartRange, now: DateTime<Utc>) -> Self {
        Self {
            from: now - chrono::Duration::seconds(range.secs()),
            to: now,
            ends_now: true,
        }
    }
}

/// What the history writer has done since start.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct HistoryCounts {
    /// Runs written.
    pub runs_written: u64,
    /// Samples written.
    pub samples_written: u64,
    /// Samples dropped because the database could not take them.
    pub samples_dropped: u64,
    /// Runs dropped because the queue was full (the database was down for very long).
    pub runs_dropped: u64,
    /// Runs waiting to be written.
    pub runs_queued: u64,
}

#[cfg(test)]
mod tests {
    use leasewatch_types::RunsQuery;

    use super::*;

    #[test]
    fn a_search_reads_every_field_and_names_the_one_it_refuses() {
        let search = RunSearch::parse(&RunsQuery {
            task: Some("health_check".into()),
            outcome: Some("failed".into()),
            failure: Some("timed_out".into()),
            instance: Some("".into()),
            from: Some("2026-12-01T00:00:00Z".into()),
            before: Some("1764547200000.3.42-0a1b2c3d".into()),
            ..RunsQuery::default()
        })
        .unwrap();
        assert_eq!(search.filter.task.as_deref(), Some("health_check"));
        assert_eq!(search.filter.outcome, Some(RunOutcome::Failed));
        assert_eq!(search.filter.failure, Some(FailureKind::TimedOut));
        assert_eq!(search.filter.instance, None, "an empty field is no filter");
        assert_eq!(search.after.unwrap().run_id, 3);
        assert_eq!(search.limit, query::DEFAULT_PAGE);
        let refused = |query: RunsQuery| RunSearch::parse(&query).unwrap_err();
        let err = refused(RunsQuery {
            outcome: Some("broken".into()),
            ..RunsQuery::default()
        });
        assert_eq!(err.field, "outcome");
        assert!(
            err.message
                .contains("succeeded, skipped, failed, cancelled"),
            "{err}"
        );
        let err = refused(RunsQuery {
            failure: Some("timeout".into()),
            ..RunsQuery::default()
        });
        assert!(err.message.contains("timed_out"), "{err}");
        let err = refused(RunsQuery {
            before: Some("nonsense".into()),
            ..RunsQuery::default()
        });
        assert_eq!(err.field, "before");
    }

    #[test]
    fn a_samples_span_is_a_range_or_from_and_to_within_the_limit() {
        use leasewatch_types::SamplesQuery;
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ask = |range: Option<&str>, from: Option<&str>, to: Option<&str>| {
            SampleSpan::parse(
                &SamplesQuery {
                    range: range.map(str::to_owned),
                    from: from.map(str::to_owned),
                    to: to.map(str::to_owned),
                },
                now,
            )
        };
        let day = ask(Some("24h"), None, None).unwrap();
        assert_eq!((day.to - day.from).num_hours(), 24);
        assert!(day.ends_now);
        let default = ask(None, None, None).unwrap();
        assert_eq!((default.to - default.from).num_hours(), 1);
        let open = ask(None, Some("2026-12-01T12:00:00Z"), None).unwrap();
        assert_eq!((open.to, open.ends_now), (now, true));
        let closed = ask(
            None,
            Some("2026-11-01T00:00:00Z"),
            Some("2026-11-02T00:00:00+01:00"),
        )
        .unwrap();
        assert_eq!((closed.to - closed.from).num_hours(), 23);
        assert!(!closed.ends_now);
        let refused = |range, from, to| ask(range, from, to).unwrap_err().field;
        assert_eq!(refused(Some("2d"), None, None), "range");
        assert_eq!(
            refused(Some("1h"), Some("2026-12-01T00:00:00Z"), None),
            "range"
        );
        assert_eq!(refused(None, None, Some("2026-12-01T00:00:00Z")), "from");
        assert_eq!(refused(None, Some("2026-10-01T00:00:00Z"), None), "from");
        assert_eq!(
            refused(
                None,
                Some("2026-12-02T00:00:00Z"),
                Some("2026-12-01T00:00:00Z")
            ),
            "to"
        );
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote_even_with_dots_in_the_instance() {
        let cursor = RunCursor {
            started_at_ms: 1_733_140_000_000,
            instance: "42.host-0a1b".to_owned(),
            run_id: 7,
        };
        assert_eq!(cursor.to_string().parse::<RunCursor>(), Ok(cursor));
        for bad in ["", "1.2", "x.2.i", "1.x.i", "1.2.", "-"] {
            assert_eq!(bad.parse::<RunCursor>(), Err(BadCursor), "{bad:?}");
        }
    }
}
