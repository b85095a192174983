//! Rules over task timing: a run taking most of its interval, a stopped scheduler with tasks
//! overdue.

use super::{Finding, Inputs, Thresholds};
use crate::recommend::{ActionName, Severity};

/// A task's last run took `runtime_share` of its interval or more: ticks will start to skip.
pub(super) fn slow_task(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    inputs
        .tasks
        .iter()
        .filter(|task| task.interval_secs > 0)
        .filter_map(|task| {
            let last = task.history.first()?;
            let share = last.duration_ms as f64 / (task.interval_secs as f64 * 1000.0);
            (share >= t.runtime_share).then(|| {
                Finding::new(
                    format!("slow_task:{}", task.name),
                    Severity::Warning,
                    format!("{} takes nearly its whole interval", task.name),
                    format!(
                        "its last run took {:.1} s of its {} s interval ({:.0} %): runs will start to skip. Lengthen the interval or shrink the work.",
                        last.duration_ms as f64 / 1000.0, task.interval_secs, share * 100.0
                    ),
                    None,
                )
            })
        })
        .collect()
}

/// The scheduler is stopped and some task has not run within its interval.
pub(super) fn scheduler_stopped(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    if inputs.scheduler_running {
        return Vec::new();
    }
    let overdue: Vec<&str> = inputs
        .tasks
        .iter()
        .filter(|task| {
            task.history.first().is_none_or(|last| {
                (inputs.now - last.started_at).num_seconds()
                    > i64::try_from(task.interval_secs).unwrap_or(i64::MAX)
            })
        })
        .map(|task| task.name.as_str())
        .collect();
    if overdue.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        "scheduler_stopped",
        Severity::Warning,
        "The scheduler is stopped and tasks are overdue",
        format!(
            "{} {} not run within {} interval. Start the scheduler.",
            overdue.join(", "),
            if overdue.len() == 1 { "has" } else { "have" },
            if overdue.len() == 1 { "its" } else { "their" }
        ),
        Some(ActionName::Start),
    )]
}

#[cfg(test)]
mod tests {
    use crate::recommend::{ActionName, world::*};

    #[test]
    fn a_run_near_its_interval_is_a_warning() {
        let mut w = World::new();
        w.tasks = vec![task("status_transitions", 10, vec![(ok(), 1, 7_999)])];
        assert_eq!(w.ids(), ["all_clear"]);
        w.tasks = vec![task("status_transitions", 10, vec![(ok(), 1, 8_000)])];
        assert!(
            w.one("slow_task:status_transitions")
                .detail
                .contains("8.0 s of its 10 s interval (80 %)")
        );
    }

    #[test]
    fn a_stopped_scheduler_with_overdue_tasks_suggests_start() {
        let mut w = World::new();
        w.running = false;
        w.tasks = vec![
            task("health_check", 3600, vec![(ok(), 1, 10)]),
            task("status_transitions", 5, vec![(ok(), 1, 10)]),
        ];
        let f = w.one("scheduler_stopped");
        assert_eq!(f.action, Some(ActionName::Start));
        assert!(
            f.detail
                .starts_with("status_transitions has not run within its interval"),
            "{}",
            f.detail
        );
        w.running = true;
        assert_eq!(w.ids(), ["all_clear"]);
    }
}
