//! The schedule preview: from each task's schedule, how many connections it takes and how long
//! it holds them, the most connections Leasewatch's own runs are expected to hold at once over
//! a coming window, when, and who. A pure sweep over the expected runs, so the predictive
//! cleanup and the dashboard can ask "what is coming" without touching the database.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::schedule::{Schedule, human_duration};

/// The expected peak of Leasewatch's own connections over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SchedulePreview {
    /// The window's start (now).
    pub from: DateTime<Utc>,
    /// The window's end.
    pub until: DateTime<Utc>,
    /// The most connections the scheduled runs are expected to hold at once (0: no runs).
    pub peak: u32,
    /// When that peak first comes (`from` when there are no runs).
    pub at: DateTime<Utc>,
    /// The tasks holding connections at the peak, by name, in configuration order.
    pub tasks: Vec<String>,
    /// In a line for the operator: `next hour: peak 3 at 14:00 UTC, when status_transitions,
    /// auction_monitor and health_check start together`.
    pub line: String,
}

/// One task as the preview sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewTask {
    /// The task's name.
    pub name: String,
    /// When it starts.
    pub schedule: Schedule,
    /// Connections a run holds at once.
    pub connections: u32,
    /// How long a run holds them.
    pub hold: Duration,
}

/// Most starts of one task the sweep looks at (a 1 s interval over a day is 86 400).
const MOST_STARTS: usize = 100_000;

/// The expected peak over `[from, from + within]`: every start of every task whose hold
/// reaches into the window (a run that started just before `from` and still holds counts from
/// `from`; a tick that comes while the task's run still holds is skipped, as the scheduler
/// does), swept in time order. A run's hold is `[start, start + hold)`, so one that ends as
/// another starts does not overlap it. Tasks holding no connections are left out.
pub fn preview(tasks: &[PreviewTask], from: DateTime<Utc>, within: Duration) -> SchedulePreview {
    let until = from + TimeDelta::from_std(within).unwrap_or(TimeDelta::MAX);
    // (time, +connections or -connections, task, the run's real start)
    let mut events: Vec<(DateTime<Utc>, i64, usize, DateTime<Utc>)> = Vec::new();
    for (index, task) in tasks.iter().enumerate() {
        if task.connections == 0 {
            continue;
        }
        let hold = TimeDelta::from_std(task.hold).unwrap_or(TimeDelta::MAX);
        let mut start = task.schedule.next_after(from - hold);
        for _ in 0..MOST_STARTS {
            if start > until {
                break;
            }
            let connections = i64::from(task.connections);
            events.push((start.max(from), connections, index, start));
            events.push((start + hold, -connections, index, start));
            // A task's runs never overlap: a tick while its run still holds is skipped.
            start = task
                .schedule
                .next_after((start + hold - TimeDelta::nanoseconds(1)).max(start));
        }
    }
    // Ends before starts at the same instant.
    events.sort_by_key(|(at, delta, index, _)| (*at, *delta, *index));
    let mut held: i64 = 0;
    // Per task: its runs holding now (a long hold may outlast the next start), and the latest
    // one's start.
    let mut active: Vec<(u32, DateTime<Utc>)> = vec![(0, from); tasks.len()];
    let mut peak = (0i64, from, Vec::<usize>::new(), false);
    for (at, delta, index, started) in events {
        held += delta;
        let (runs, latest) = &mut active[index];
        if delta > 0 {
            *runs += 1;
            *latest = started;
        } else {
            *runs = runs.saturating_sub(1);
        }
        if delta > 0 && held > peak.0 {
            let holding: Vec<usize> = (0..tasks.len()).filter(|&i| active[i].0 > 0).collect();
            let together = holding.iter().all(|&i| active[i].1 == at);
            peak = (held, at, holding, together);
        }
    }
    let (peak, at, holding, together) = peak;
    let names: Vec<String> = holding.iter().map(|&i| tasks[i].name.clone()).collect();
    let label = if within == Duration::from_secs(3_600) {
        "next hour".to_owned()
    } else {
        format!("next {}", human_duration(within))
    };
    let when = clock_time(at, within);
    let line = match names.as_slice() {
        [] => format!("{label}: no runs expected"),
        [one] => format!("{label}: peak {peak} at {when} ({one})"),
        many if together => format!(
            "{label}: peak {peak} at {when}, when {} start together",
            and_list(many)
        ),
        many => format!(
            "{label}: peak {peak} at {when}, while {} overlap",
            and_list(many)
        ),
    };
    SchedulePreview {
        from,
        until,
        peak: u32::try_from(peak).unwrap_or(u32::MAX),
        at,
        tasks: names,
        line,
    }
}

/// `14:07 UTC`, with seconds when they are not zero and the date when the window passes a day.
fn clock_time(at: DateTime<Utc>, within: Duration) -> String {
    let time = if at.timestamp() % 60 == 0 {
        at.format("%H:%M")
    } else {
        at.format("%H:%M:%S")
    };
    if within > Duration::from_secs(24 * 3_600) {
        format!("{} {time} UTC", at.format("%Y-%m-%d"))
    } else {
        format!("{time} UTC")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, mi, s).unwrap()
    }

    fn task(
        name: &str,
        every_min: u64,
        phase_secs: u64,
        connections: u32,
        hold_secs: u64,
    ) -> PreviewTask {
        PreviewTask {
            name: name.into(),
            schedule: Schedule::Every {
                every: Duration::from_secs(every_min * 60),
                phase: Duration::from_secs(phase_secs),
            },
            connections,
            hold: Duration::from_secs(hold_secs),
        }
    }

    const HOUR: Duration = Duration::from_secs(3_600);

    #[test]
    fn the_sweep_finds_the_peak_and_says_who() {
        struct Case {
            name: &'static str,
            tasks: Vec<PreviewTask>,
            from: DateTime<Utc>,
            peak: u32,
            at: DateTime<Utc>,
            tasks_at: &'static [&'static str],
            line: &'static str,
        }
        let cases = [
            Case {
                name: "no tasks",
                tasks: vec![],
                from: utc(14, 0, 0),
                peak: 0,
                at: utc(14, 0, 0),
                tasks_at: &[],
                line: "next hour: no runs expected",
            },
            Case {
                name: "one task, its first start",
                tasks: vec![task("status_transitions", 15, 7 * 60, 1, 2)],
                from: utc(14, 0, 0),
                peak: 1,
                at: utc(14, 7, 0),
                tasks_at: &["status_transitions"],
                line: "next hour: peak 1 at 14:07 UTC (status_transitions)",
            },
            Case {
                name: "unphased defaults start together on the hour",
                tasks: vec![
                    task("status_transitions", 15, 0, 1, 1),
                    task("auction_monitor", 30, 0, 1, 1),
                    task("health_check", 60, 0, 1, 1),
                ],
                from: utc(13, 30, 0),
                peak: 3,
                at: utc(14, 0, 0),
                tasks_at: &["status_transitions", "auction_monitor", "health_check"],
                line: "next hour: peak 3 at 14:00 UTC, when status_transitions, \
                       auction_monitor and health_check start together",
            },
            Case {
                name: "phased defaults never overlap",
                tasks: vec![
                    task("status_transitions", 15, 0, 1, 10),
                    task("auction_monitor", 30, 300, 1, 10),
                    task("health_check", 60, 600, 1, 10),
                ],
                from: utc(13, 59, 0),
                peak: 1,
                at: utc(14, 0, 0),
                tasks_at: &["status_transitions"],
                line: "next hour: peak 1 at 14:00 UTC (status_transitions)",
            },
            Case {
                name: "overlapping holds add up",
                tasks: vec![
                    task("long", 60, 10 * 60, 2, 15 * 60),
                    task("short", 60, 20 * 60, 1, 60),
                ],
                from: utc(14, 0, 0),
                peak: 3,
                at: utc(14, 20, 0),
                tasks_at: &["long", "short"],
                line: "next hour: peak 3 at 14:20 UTC, while long and short overlap",
            },
            Case {
                name: "a hold that ends as another starts does not overlap it",
                tasks: vec![
                    task("a", 60, 10 * 60, 1, 5 * 60),
                    task("b", 60, 15 * 60, 1, 60),
                ],
                from: utc(14, 0, 0),
                peak: 1,
                at: utc(14, 10, 0),
                tasks_at: &["a"],
                line: "next hour: peak 1 at 14:10 UTC (a)",
            },
            Case {
                name: "a run that started before the window and still holds counts from its start",
                tasks: vec![task("a", 60, 59 * 60, 1, 5 * 60), task("b", 60, 90, 1, 60)],
                from: utc(14, 0, 0),
                peak: 2,
                at: utc(14, 1, 30),
                tasks_at: &["a", "b"],
                line: "next hour: peak 2 at 14:01:30 UTC, while a and b overlap",
            },
            Case {
                name: "a task holding longer than its interval skips the ticks in between",
                // slow holds 13:40–14:05, 14:10–14:35, 14:40–15:05 (not three runs at once
                // from 14:00, as every tick starting would have it); b 14:27–14:28.
                tasks: vec![
                    task("slow", 10, 0, 1, 25 * 60),
                    task("b", 60, 27 * 60, 1, 60),
                ],
                from: utc(14, 0, 0),
                peak: 2,
                at: utc(14, 27, 0),
                tasks_at: &["slow", "b"],
                line: "next hour: peak 2 at 14:27 UTC, while slow and b overlap",
            },
            Case {
                name: "a task that holds nothing is left out",
                tasks: vec![task("a", 15, 0, 0, 60)],
                from: utc(14, 0, 0),
                peak: 0,
                at: utc(14, 0, 0),
                tasks_at: &[],
                line: "next hour: no runs expected",
            },
        ];
        for case in cases {
            let got = preview(&case.tasks, case.from, HOUR);
            assert_eq!(got.peak, case.peak, "{}", case.name);
            assert_eq!(got.at, case.at, "{}", case.name);
            assert_eq!(got.tasks, case.tasks_at, "{}", case.name);
            assert_eq!(got.line, case.line, "{}", case.name);
            assert_eq!(got.until, case.from + TimeDelta::hours(1), "{}", case.name);
        }
    }

    #[test]
    fn other_windows_are_named_by_their_length() {
        let tasks = [task("a", 15, 0, 1, 1)];
        let got = preview(&tasks, utc(14, 1, 0), Duration::from_secs(30 * 60));
        assert_eq!(got.line, "next 30 min: peak 1 at 14:15 UTC (a)");
        let got = preview(&tasks, utc(14, 1, 0), Duration::from_secs(2 * 86_400));
        assert_eq!(got.line, "next 48 h: peak 1 at 2026-06-01 14:15 UTC (a)");
    }
}
