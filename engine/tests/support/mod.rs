//! What the engine's integration tests share.

use std::time::Duration;

use leasewatch_engine::tasks::{RunRecord, TaskManager};

/// The most a test waits for a run to finish.
pub const RUN_BOUND: Duration = Duration::from_secs(20);

/// Runs `task` now and waits, at most [`RUN_BOUND`], for its record.
pub async fn run_now(manager: &TaskManager, task: &str) -> RunRecord {
    let run_id = manager.run_now(task).unwrap();
    tokio::time::timeout(RUN_BOUND, manager.wait_for(task, run_id))
        .await
        .expect("the run finishes")
        .unwrap()
}
