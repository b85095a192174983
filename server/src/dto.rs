//! What the admin API exchanges: the request and response bodies and the audit query. Their
//! JSON schemas, and so the OpenAPI document, come from the same structs serde uses.

use std::collections::BTreeMap;

use aide::{OperationInput, generate::GenContext, openapi::Operation};
use axum::{Json, extract::FromRequest};
use chrono::{DateTime, Utc};
use leasewatch_engine::{
    Engine, LeaseInfo, PoolSnapshot, ServerView, TaskView,
    alert::AlertsView,
    auctions::AuctionStatus,
    control::{ActionName, Details},
    governor::GovernorView,
    predict::ForecastView,
    recommend::Recommendation,
    targets::TargetStatus,
    tasks::SchedulePreview,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The whole state, as scripts and monitoring read it.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusResponse {
    /// Whether the scheduler is running.
    pub scheduler: Scheduler,
    /// Every task's state and recent runs.
    pub tasks: Vec<TaskView>,
    /// The pool now.
    pub pool: PoolSnapshot,
    /// The leases held now.
    pub leases: Vec<LeaseInfo>,
    /// What the rules recommend, worst first.
    pub recommendations: Vec<Recommendation>,
    /// The server-wide view, read every few seconds (PostgreSQL).
    pub server: ServerView,
    /// The connection-budget governor: this instance's lease limit, its share and why.
    pub governor: GovernorView,
    /// The exhaustion forecast over the server reads (PostgreSQL; absent before the first).
    pub forecast: Option<ForecastView>,
    /// The expected peak of the tasks' own connections over the next hour.
    pub schedule: SchedulePreview,
    /// Alerts firing, the receivers and the latest notifications with their delivery.
    pub alerts: AlertsView,
    /// Auction counts, as last read by a task.
    pub auctions: Auctions,
    /// Every database tasks run on, the primary first, then the read replicas
    /// (`DATABASE_REPLICA_URLS`): health, lag, pool and leases of each.
    pub targets: Vec<TargetStatus>,
}

/// The scheduler's state.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Scheduler {
    /// Ticks start runs.
    pub running: bool,
}

/// Auction counts per status.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Auctions {
    /// When they were read.
    pub as_of: DateTime<Utc>,
    /// Count per status.
    pub counts: BTreeMap<AuctionStatus, i64>,
}

impl StatusResponse {
    /// From in-process state only: no database connection is taken, so polling it is free.
    pub fn of(engine: &Engine) -> Self {
        let auctions = engine.auctions();
        // The top-level pool, leases and governor are the primary's, read once with the rest.
        let targets = engine.targets().status();
        let primary = &targets[0];
        Self {
            scheduler: Scheduler {
                running: engine.tasks().is_running(),
            },
            tasks: engine.tasks().tasks(),
            pool: primary.pool.clone(),
            leases: primary.leases.clone(),
            recommendations: engine.recommendations(),
            server: engine.leases().server_view(),
            governor: primary.governor.clone(),
            forecast: engine.forecast(),
            schedule: engine.schedule_preview(),
            alerts: engine.alerts(),
            auctions: Auctions {
                as_of: auctions.as_of,
                counts: auctions.counts.0.iter().copied().collect(),
            },
            targets,
        }
    }
}

/// A control request. Read as JSON (`Content-Type: application/json`); anything else, or a
/// body that does not fit, is refused with a named 4xx before anything happens.
#[derive(Debug, Deserialize, schemars::JsonSchema, FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// The action. Read as text so that a missing or unknown one gets its own error code
    /// (`missing_action`, `unknown_action`) naming the choices; documented as the enum.
    #[serde(default)]
    #[schemars(with = "ActionName")]
    pub action: Option<String>,
    /// For run_now, pause and resume: a task's name as the status lists it (a built-in task
    /// such as status_transitions, or one declared in LEASEWATCH_TASKS).
    #[serde(default)]
    pub task: Option<String>,
    /// For cleanup and emergency_cleanup: report what would be done, do nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// For emergency_cleanup: the one database to act on (`primary`, `replica-1`, ...);
    /// every database when absent.
    #[serde(default)]
    pub target: Option<String>,
}

/// Documented as the JSON body it is read from.
impl OperationInput for ActionRequest {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Json::<Self>::operation_input(ctx, operation);
    }
}

/// What a control action did.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionResponse {
    /// The action.
    pub action: ActionName,
    /// What happened, in a line.
    pub message: String,
    /// The action's report, if it has one.
    pub details: Details,
    /// The state after the action.
    pub status: StatusResponse,
}
