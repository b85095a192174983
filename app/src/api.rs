//! Server functions the dashboard calls. Each body is thin: it reads in-process engine state
//! through [`ssr`], which exists only on the server.

use leptos::prelude::*;

use crate::wire::Overview;

/// The dashboard's overview: pool, auctions and task cadence, from in-process state.
#[server(endpoint = "overview")]
pub async fn get_overview() -> Result<Overview, ServerFnError> {
    use self::ssr::*;
    let state = expect_context::<AppState>();
    Ok(overview(&state.engine))
}

/// Server-only state and the mapping from engine types to wire types.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use axum::extract::FromRef;
    use chrono::Utc;
    use leasewatch_engine::Engine;
    use leptos::config::LeptosOptions;

    use leasewatch_engine::tasks::{Outcome, TaskState, TaskView};

    use crate::wire::{Overview, PoolView, StatusCount, TaskRow};

    /// What every request handler and server function can reach.
    #[derive(Clone, FromRef)]
    pub struct AppState {
        /// Leptos's site options (asset paths, address).
        pub leptos_options: LeptosOptions,
        /// The running engine.
        pub engine: Arc<Engine>,
    }

    /// Builds the overview from in-process state only.
    pub fn overview(engine: &Engine) -> Overview {
        let db = engine.database();
        let pool = db.pool_status();
        let auctions = engine.auctions();
        Overview {
            backend: db.backend().to_string(),
            database: db.url().to_string(),
            pool: PoolView {
                total: pool.size,
                idle: pool.idle,
                active: pool.size.saturating_sub(pool.idle),
                max: pool.max,
                min: pool.min,
            },
            auctions: auctions
                .counts
                .0
                .iter()
                .map(|(status, count)| StatusCount {
                    status: status.as_str().to_owned(),
                    count: *count,
                })
                .collect(),
            auctions_as_of: auctions.as_of,
            tasks: engine.tasks().tasks().into_iter().map(task_row).collect(),
            taken_at: Utc::now(),
        }
    }

    fn task_row(task: TaskView) -> TaskRow {
        let state = match task.state {
            TaskState::Running { .. } => "running",
            TaskState::Backoff { .. } => "backoff",
            TaskState::Idle if task.paused => "paused",
            TaskState::Idle => "idle",
        };
        let (last_outcome, last_detail) = match task.last.as_ref().map(|run| &run.outcome) {
            None => (None, None),
            Some(Outcome::Succeeded { detail, .. }) => (Some("succeeded"), Some(detail.clone())),
            Some(Outcome::Skipped { reason }) => (Some("skipped"), Some(reason.clone())),
            Some(Outcome::Failed { error }) => (Some("failed"), Some(error.clone())),
            Some(Outcome::Cancelled { reason }) => (Some("cancelled"), Some(reason.clone())),
        };
        TaskRow {
            task: task.name,
            every_secs: task.interval_secs,
            state: state.to_owned(),
            last_outcome: last_outcome.map(str::to_owned),
            last_detail,
            last_run_at: task.last.map(|run| run.started_at),
        }
    }
}
