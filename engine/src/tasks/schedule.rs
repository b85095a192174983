//! When a task runs: on an interval grid anchored at the Unix epoch (with a phase offset so
//! tasks do not start together), or on a cron expression in a time zone.
//!
//! **Interval schedules** start at `epoch + phase + k·every`. The grid does not depend on when
//! the process started, so a restart does not move it (for the same phase), and the first run
//! comes at the first grid point after start-up: never at start-up itself. An instance that
//! restarts every few minutes therefore still runs its hourly task on the hour's grid, not once
//! per restart.
//!
//! **Phase offsets** ([`phase_offsets`]) keep tasks whose intervals divide each other (15, 30 and
//! 60 minutes) from starting in the same second: with `G` the greatest common divisor of the
//! interval tasks' periods and `n` their number, each task gets its own slot `G/n` apart (in the
//! order of a stable hash of its name), all shifted by a hash of the instance. Any two starts
//! of two such tasks are then at least `G/n` apart, whatever the instance: five minutes for the
//! defaults.
//!
//! **Cron schedules** (`[CRON_TZ=Area/City ]minute hour day month weekday`, as Kubernetes
//! CronJobs and robfig/cron take them; UTC without a zone) follow the Open Cron Pattern
//! Specification through daylight-saving changes, as `croner` implements it: a fixed time that
//! spring-forward skips (02:30 on the night the clock jumps from 02:00 to 03:00) runs once, at
//! the first valid instant after the gap (03:00), because a daily job silently skipped for a day
//! is worse than one that runs half an hour late; a fixed time in the hour autumn repeats runs
//! once, at its first pass. Wildcard hours (`0 * * * *`) run every real hour. Cron schedules
//! get no phase offset: the operator chose exact times.

use std::{fmt::Write as _, str::FromStr, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::{Cron, parser::CronParser};

/// When a task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// On the grid `epoch + phase + k·every`.
    Every {
        /// The period.
        every: Duration,
        /// Where on the period the grid sits (see [`phase_offsets`]); below `every`.
        phase: Duration,
    },
    /// At the times a cron expression names, in its time zone.
    Cron(CronSchedule),
}

/// A parsed cron expression and the time zone it reads its fields in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// The five fields as written (without the zone prefix), for the description.
    expression: String,
    /// The zone the fields are read in (UTC when none was given).
    zone: Tz,
    /// Boxed: the parsed pattern is large, and schedules are mostly intervals.
    cron: Box<Cron>,
}

/// Why a cron schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `CRON_TZ=` named a zone the IANA database does not have.
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin or America/New_York)")]
    UnknownZone(String),
    /// The expression did not parse.
    #[error("{0}")]
    Expression(String),
    /// The expression parses but names no time that exists (such as the 30th of February).
    #[error("it names no time that ever comes, such as the 30th of February")]
    Never,
}

/// The zone prefix a cron schedule may start with.
pub const CRON_TZ_PREFIX: &str = "CRON_TZ=";

impl Schedule {
    /// An interval schedule on the epoch grid, phase 0 until [`phase_offsets`] gives it one.
    pub fn every(every: Duration) -> Self {
        Self::Every {
            every,
            phase: Duration::ZERO,
        }
    }

    /// A cron schedule: five fields (minute, hour, day of month, month, day of week, or an
    /// alias such as `@hourly`), optionally after `CRON_TZ=Area/City` and a space.
    pub fn cron(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim();
        let (zone, expression) = match text.strip_prefix(CRON_TZ_PREFIX) {
            Some(rest) => {
                let (name, expression) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                    ScheduleError::Expression(format!(
                        "{CRON_TZ_PREFIX}{rest} must be followed by a space and the expression"
                    ))
                })?;
                let zone =
                    Tz::from_str(name).map_err(|_| ScheduleError::UnknownZone(name.to_owned()))?;
                (zone, expression.trim())
            }
            None => (Tz::UTC, text),
        };
        let parser = CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser
            .parse(expression)
            .map_err(|err| ScheduleError::Expression(err.to_string()))?;
        let schedule = CronSchedule {
            expression: expression.split_whitespace().collect::<Vec<_>>().join(" "),
            zone,
            cron: Box::new(cron),
        };
        // A pattern for a date that never comes would leave the task waiting forever.
        let from = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
        schedule
            .next_after(from)
            .ok_or(ScheduleError::Never)
            .map(|_| Self::Cron(schedule))
    }

    /// The first start strictly after `after` (phase included). A cron expression with no
    /// further occurrence (refused when parsed, so only past year 5000) gives the latest time
    /// chrono can hold.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Every { every, phase } => next_on_grid(*every, *phase, after),
            Self::Cron(cron) => cron.next_after(after).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The interval, for an interval schedule.
    pub fn period(&self) -> Option<Duration> {
        match self {
            Self::Every { every, .. } => Some(*every),
            Self::Cron(_) => None,
        }
    }

    /// The time between the start due at `due` and the one after it: the interval, or for cron
    /// the gap to its following occurrence (what "the run takes most of its interval" and the
    /// deferral's slack measure against).
    pub fn gap_after(&self, due: DateTime<Utc>) -> Duration {
        match self {
            Self::Every { every, .. } => *every,
            Self::Cron(_) => (self.next_after(due) - due)
                .to_std()
                .unwrap_or(Duration::MAX),
        }
    }

    /// How long a start due at `due` may be deferred: half the gap to the following start, so a
    /// deferred run still finishes well before the next one is due.
    pub fn slack_after(&self, due: DateTime<Utc>) -> Duration {
        self.gap_after(due) / 2
    }

    /// In words for the dashboard: `every 15 min (at :07:30, :22:30, …)` or
    /// `cron 30 2 * * * (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Every { every, phase } => describe_every(*every, *phase),
            Self::Cron(cron) => format!("cron {} ({})", cron.expression, cron.zone.name()),
        }
    }
}

impl CronSchedule {
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

/// The first point of `epoch + phase + k·every` strictly after `after`.
fn next_on_grid(every: Duration, phase: Duration, after: DateTime<Utc>) -> DateTime<Utc> {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let phase_ms = i64::try_from(phase.as_millis()).unwrap_or(0) % every_ms;
    let since = after.timestamp_millis() - phase_ms;
    // Strictly after: a start exactly at `after` has already been due.
    let k = since.div_euclid(every_ms) + 1;
    let next_ms = k.saturating_mul(every_ms).saturating_add(phase_ms);
    DateTime::<Utc>::from_timestamp_millis(next_ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// FNV-1a (64 bits): a stable hash, the same in every process and release (std's hasher is
/// seeded at random per process, which would move the phases on every start).
pub fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The phase of each interval task in `tasks` (`(name, every)`, in any order; the result is in
/// the same order), for `instance`.
///
/// With `G` the greatest common divisor of the periods and `n` the number of tasks, the tasks,
/// ordered by [`stable_hash`] of their names, take the slots `0, G/n, 2·G/n, …`, all shifted by
/// the hash of `instance` modulo `G`; each phase is then reduced modulo its own period. Every
/// start of every task is a multiple of `G` away from its slot, so two tasks' starts differ by
/// `(their slots' distance) + m·G` and are never closer than `G/n`: a guarantee, not a
/// likelihood. Periods that are whole seconds get phases in whole seconds (descriptions stay
/// exact); others are computed in milliseconds.
pub fn phase_offsets(tasks: &[(&str, Duration)], instance: &str) -> Vec<Duration> {
    if tasks.is_empty() {
        return Vec::new();
    }
    let whole_seconds = tasks
        .iter()
        .all(|(_, every)| every.subsec_nanos() == 0 && every.as_secs() > 0);
    let unit_ms: u64 = if whole_seconds { 1_000 } else { 1 };
    let periods: Vec<u64> = tasks
        .iter()
        .map(|(_, every)| (u64::try_from(every.as_millis()).unwrap_or(u64::MAX) / unit_ms).max(1))
        .collect();
    let g = periods.iter().copied().fold(0, gcd);
    let n = u64::try_from(tasks.len()).unwrap_or(u64::MAX);
    let step = g / n;
    let shift = stable_hash(instance) % g;
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| (stable_hash(tasks[i].0), tasks[i].0));
    let mut phases = vec![Duration::ZERO; tasks.len()];
    for (slot, &i) in (0u64..).zip(&order) {
        let phase = (shift + slot * step) % periods[i];
        phases[i] = Duration::from_millis(phase * unit_ms);
    }
    phases
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `15 min`, `10 s`, `2 h`, `1 h 30 min`, `500 ms`: how the dashboard writes a period.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1_000) {
        return format!("{ms} ms");
    }
    let secs = d.as_secs();
    if secs < 60 || !secs.is_multiple_of(60) {
        return if secs >= 60 {
            format!("{} min {} s", secs / 60, secs % 60)
        } else {
            format!("{secs} s")
        };
    }
    let mins = secs / 60;
    if mins <= 60 {
        return format!("{mins} min");
    }
    match (mins / 60, mins % 60) {
        (hours, 0) => format!("{hours} h"),
        (hours, rest) => format!("{hours} h {rest} min"),
    }
}

/// `every 15 min (at :07:30, :22:30, …)`: the period and where on the clock it starts.
fn describe_every(every: Duration, phase: Duration) -> String {
    let period = human_duration(every);
    let every_ms = every.as_millis();
    let phase_ms = phase.as_millis() % every_ms.max(1);
    let starts = |span_ms: u128, format: fn(u128) -> String| -> String {
        let count = span_ms / every_ms;
        let mut text = String::new();
        for k in 0..count.min(2) {
            if k > 0 {
                text.push_str(", ");
            }
            text.push_str(&format(phase_ms + k * every_ms));
        }
        if count > 2 {
            text.push_str(", …");
        }
        text
    };
    const HOUR_MS: u128 = 3_600_000;
    const DAY_MS: u128 = 24 * HOUR_MS;
    let whole_seconds = every_ms.is_multiple_of(1_000) && phase_ms.is_multiple_of(1_000);
    if whole_seconds && every_ms >= 60_000 && HOUR_MS.is_multiple_of(every_ms) {
        let at = starts(HOUR_MS, |ms| {
            let secs = ms / 1_000;
            match secs % 60 {
                0 => format!(":{:02}", secs / 60),
                s => format!(":{:02}:{s:02}", secs / 60),
            }
        });
        format!("every {period} (at {at})")
    } else if whole_seconds && every_ms > HOUR_MS && DAY_MS.is_multiple_of(every_ms) {
        let at = starts(DAY_MS, |ms| {
            let secs = ms / 1_000;
            let mut text = format!("{:02}:{:02}", secs / 3_600, secs / 60 % 60);
            if secs % 60 != 0 {
                let _ = write!(text, ":{:02}", secs % 60);
            }
            text
        });
        format!("every {period} (at {at} UTC)")
    } else if phase_ms == 0 {
        format!("every {period}")
    } else {
        let offset = Duration::from_millis(u64::try_from(phase_ms).unwrap_or(0));
        format!("every {period} (offset {})", human_duration(offset))
    }
}

/// Where the scheduler reads the wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The system's clock (`Utc::now()`): production.
    #[default]
    System,
    /// A wall clock that reads `wall` at tokio's `at` and moves with tokio's clock, so tests
    /// under tokio's paused time step the schedules with `tokio::time::advance` (the system
    /// clock does not move while tokio's is paused).
    Tokio {
        /// The wall time at `at`.
        wall: DateTime<Utc>,
        /// The tokio instant it was read at.
        at: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that reads `wall` now and moves with tokio's clock from here.
    pub fn following_tokio(wall: DateTime<Utc>) -> Self {
        Self::Tokio {
            wall,
            at: tokio::time::Instant::now(),
        }
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Tokio { wall, at } => {
                *wall + TimeDelta::from_std(at.elapsed()).unwrap_or(TimeDelta::MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    const MIN: u64 = 60;

    fn defaults() -> [(&'static str, Duration); 3] {
        [
            ("status_transitions", Duration::from_secs(15 * MIN)),
            ("auction_monitor", Duration::from_secs(30 * MIN)),
            ("health_check", Duration::from_secs(60 * MIN)),
        ]
    }

    /// Every start of every task in [from, from + span), sorted, with the task's index.
    fn starts(
        schedules: &[Schedule],
        from: DateTime<Utc>,
        span: TimeDelta,
    ) -> Vec<(DateTime<Utc>, usize)> {
        let mut all = Vec::new();
        for (i, schedule) in schedules.iter().enumerate() {
            let mut at = schedule.next_after(from - TimeDelta::milliseconds(1));
            while at < from + span {
                all.push((at, i));
                at = schedule.next_after(at);
            }
        }
        all.sort();
        all
    }

    fn phased(tasks: &[(&str, Duration)], instance: &str) -> Vec<Schedule> {
        tasks
            .iter()
            .zip(phase_offsets(tasks, instance))
            .map(|((_, every), phase)| Schedule::Every {
                every: *every,
                phase,
            })
            .collect()
    }

    #[test]
    fn the_grid_is_anchored_at_the_epoch_and_strictly_after() {
        let every = Schedule::Every {
            every: Duration::from_secs(15 * MIN),
            phase: Duration::from_secs(7 * MIN + 30),
        };
        assert_eq!(
            every.next_after(utc(2026, 3, 1, 14, 0, 0)),
            utc(2026, 3, 1, 14, 7, 30)
        );
        // A start exactly at `after` is not the next one.
        assert_eq!(
            every.next_after(utc(2026, 3, 1, 14, 7, 30)),
            utc(2026, 3, 1, 14, 22, 30)
        );
        assert_eq!(
            every.next_after(utc(2026, 3, 1, 23, 55, 0)),
            utc(2026, 3, 2, 0, 7, 30)
        );
        // Before the epoch too.
        let hourly = Schedule::every(Duration::from_secs(3_600));
        assert_eq!(
            hourly.next_after(utc(1969, 12, 31, 22, 30, 0)),
            utc(1969, 12, 31, 23, 0, 0)
        );
    }

    #[test]
    fn the_default_tasks_never_start_within_5_s_of_each_other_for_any_instance() {
        let day = TimeDelta::days(1);
        let from = utc(2026, 5, 4, 0, 0, 0);
        for n in 0..2_000 {
            let instance = format!("leasewatch-{n}-{:04x}", n * 7_919 % 65_536);
            let schedules = phased(&defaults(), &instance);
            let all = starts(&schedules, from, day);
            assert_eq!(all.len(), 96 + 48 + 24, "{instance}");
            for pair in all.windows(2) {
                let gap = pair[1].0 - pair[0].0;
                assert!(
                    gap >= TimeDelta::seconds(5),
                    "{instance}: tasks {} and {} start {gap} apart at {}",
                    pair[0].1,
                    pair[1].1,
                    pair[1].0
                );
            }
        }
    }

    #[test]
    fn the_slots_are_g_over_n_apart_and_shift_with_the_instance() {
        let tasks = defaults();
        let a = phase_offsets(&tasks, "leasewatch-1-00aa");
        let b = phase_offsets(&tasks, "leasewatch-2-00bb");
        assert_ne!(a, b, "the instance shifts the phases");
        assert_eq!(
            a,
            phase_offsets(&tasks, "leasewatch-1-00aa"),
            "deterministic"
        );
        // Modulo G (15 min), the three phases sit 5 minutes apart.
        let mut slots: Vec<u64> = a.iter().map(|p| p.as_secs() % (15 * MIN)).collect();
        slots.sort_unstable();
        assert_eq!(slots[1] - slots[0], 5 * MIN, "{a:?}");
        assert_eq!(slots[2] - slots[1], 5 * MIN, "{a:?}");
        for (phase, (_, every)) in a.iter().zip(&tasks) {
            assert!(phase < every);
        }
    }

    #[test]
    fn the_phase_does_not_depend_on_the_order_the_tasks_are_given_in() {
        let tasks = defaults();
        let mut reversed = tasks;
        reversed.reverse();
        let mut forward = phase_offsets(&tasks, "i");
        let mut backward = phase_offsets(&reversed, "i");
        backward.reverse();
        assert_eq!(forward, backward);
        forward.clear();
        assert!(phase_offsets(&[], "i").is_empty());
    }

    #[test]
    fn millisecond_periods_still_get_distinct_slots() {
        let tasks = [
            ("a", Duration::from_millis(1_500)),
            ("b", Duration::from_secs(3)),
        ];
        let schedules = phased(&tasks, "x");
        let all = starts(&schedules, utc(2026, 1, 1, 0, 0, 0), TimeDelta::minutes(1));
        for pair in all.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= TimeDelta::milliseconds(750),
                "{all:?}"
            );
        }
    }

    #[test]
    fn fnv_1a_matches_its_reference_values() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x85944171f73967e8);
    }

    fn berlin(text: &str) -> Schedule {
        Schedule::cron(&format!("CRON_TZ=Europe/Berlin {text}")).unwrap()
    }

    #[test]
    fn a_daily_cron_runs_once_across_both_daylight_saving_changes() {
        let daily = berlin("30 2 * * *");
        // Spring forward, 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist;
        // it runs once, at the first instant after the gap (03:00 CEST = 01:00 UTC).
        let starts: Vec<_> = starts(
            std::slice::from_ref(&daily),
            utc(2026, 3, 27, 12, 0, 0),
            TimeDelta::days(3),
        )
        .into_iter()
        .map(|(at, _)| at)
        .collect();
        assert_eq!(
            starts,
            [
                utc(2026, 3, 28, 1, 30, 0), // 02:30 CET
                utc(2026, 3, 29, 1, 0, 0),  // 03:00 CEST, right after the gap
                utc(2026, 3, 30, 0, 30, 0), // 02:30 CEST
            ]
        );
        // Fall back, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; it
        // runs once, at the first.
        let starts: Vec<_> = starts_of(&daily, utc(2026, 10, 23, 12, 0, 0), TimeDelta::days(3));
        assert_eq!(
            starts,
            [
                utc(2026, 10, 24, 0, 30, 0), // 02:30 CEST
                utc(2026, 10, 25, 0, 30, 0), // the first 02:30 (CEST), not 01:30 UTC too
                utc(2026, 10, 26, 1, 30, 0), // 02:30 CET
            ]
        );
        assert_eq!(daily.describe(), "cron 30 2 * * * (Europe/Berlin)");
    }

    fn starts_of(schedule: &Schedule, from: DateTime<Utc>, span: TimeDelta) -> Vec<DateTime<Utc>> {
        starts(std::slice::from_ref(schedule), from, span)
            .into_iter()
            .map(|(at, _)| at)
            .collect()
    }

    #[test]
    fn an_hourly_cron_runs_every_real_hour_across_both_changes() {
        let hourly = berlin("0 * * * *");
        // Spring: local 00:00, 01:00, (02:00 does not exist), 03:00, 04:00.
        assert_eq!(
            starts_of(&hourly, utc(2026, 3, 28, 23, 0, 0), TimeDelta::hours(4)),
            [
                utc(2026, 3, 28, 23, 0, 0), // 00:00 CET
                utc(2026, 3, 29, 0, 0, 0),  // 01:00 CET
                utc(2026, 3, 29, 1, 0, 0),  // 03:00 CEST
                utc(2026, 3, 29, 2, 0, 0),  // 04:00 CEST
            ]
        );
        // Autumn: 02:00 comes twice, and each is a real hour of its own.
        assert_eq!(
            starts_of(&hourly, utc(2026, 10, 24, 23, 0, 0), TimeDelta::hours(4)),
            [
                utc(2026, 10, 24, 23, 0, 0), // 01:00 CEST
                utc(2026, 10, 25, 0, 0, 0),  // 02:00 CEST
                utc(2026, 10, 25, 1, 0, 0),  // 02:00 CET
                utc(2026, 10, 25, 2, 0, 0),  // 03:00 CET
            ]
        );
    }

    #[test]
    fn cron_without_a_zone_is_utc_and_bad_input_says_why() {
        let utc_daily = Schedule::cron("15 3 * * 1-5").unwrap();
        assert_eq!(
            utc_daily.next_after(utc(2026, 5, 2, 0, 0, 0)), // a Saturday
            utc(2026, 5, 4, 3, 15, 0)
        );
        assert_eq!(utc_daily.describe(), "cron 15 3 * * 1-5 (UTC)");
        assert_eq!(
            Schedule::cron("CRON_TZ=Mars/Olympus 0 * * * *"),
            Err(ScheduleError::UnknownZone("Mars/Olympus".into()))
        );
        assert!(matches!(
            Schedule::cron("61 * * * *"),
            Err(ScheduleError::Expression(_))
        ));
        assert!(
            matches!(
                Schedule::cron("0 0 * * * *"),
                Err(ScheduleError::Expression(_))
            ),
            "seconds are not a field here"
        );
        assert!(matches!(
            Schedule::cron("CRON_TZ=Europe/Berlin"),
            Err(ScheduleError::Expression(_))
        ));
        assert!(Schedule::cron("@hourly").is_ok());
    }

    #[test]
    fn the_slack_is_half_the_gap_to_the_following_start() {
        let every = Schedule::every(Duration::from_secs(600));
        assert_eq!(
            every.slack_after(utc(2026, 1, 1, 0, 0, 0)),
            Duration::from_secs(300)
        );
        let cron = Schedule::cron("0 9,12 * * *").unwrap();
        assert_eq!(
            cron.slack_after(utc(2026, 1, 1, 9, 0, 0)),
            Duration::from_secs(90 * 60)
        );
        assert_eq!(
            cron.slack_after(utc(2026, 1, 1, 12, 0, 0)),
            Duration::from_secs(21 * 3_600 / 2)
        );
    }

    #[test]
    fn descriptions_name_the_period_and_where_it_starts() {
        let at = |every: u64, phase: u64| {
            Schedule::Every {
                every: Duration::from_secs(every),
                phase: Duration::from_secs(phase),
            }
            .describe()
        };
        assert_eq!(
            at(15 * MIN, 7 * MIN + 30),
            "every 15 min (at :07:30, :22:30, …)"
        );
        assert_eq!(at(30 * MIN, 5 * MIN), "every 30 min (at :05, :35)");
        assert_eq!(at(60 * MIN, 12 * MIN), "every 60 min (at :12)");
        assert_eq!(
            at(6 * 3_600, 3_600 + 90),
            "every 6 h (at 01:01:30, 07:01:30, … UTC)"
        );
        assert_eq!(at(10, 3), "every 10 s (offset 3 s)");
        assert_eq!(at(7 * MIN, 0), "every 7 min");
        assert_eq!(
            Schedule::every(Duration::from_millis(500)).describe(),
            "every 500 ms"
        );
        assert_eq!(human_duration(Duration::from_secs(90 * 60)), "1 h 30 min");
        assert_eq!(human_duration(Duration::from_secs(150 * 60)), "2 h 30 min");
        assert_eq!(human_duration(Duration::from_secs(90)), "1 min 30 s");
    }
}
