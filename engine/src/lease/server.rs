//! The database server's view (PostgreSQL's connection use), kept beside the leases so the
//! rules read it without a database round trip.

use super::{LeaseError, LeaseManager, RunContext};
use crate::{
    db::Backend,
    server_view::{self, PgServerView, ServerView},
};

impl LeaseManager {
    /// The last server-wide view the health check read.
    pub fn server_view(&self) -> ServerView {
        self.shared.server_view.read().clone()
    }

    /// Reads the server-wide view through a lease of `run` and keeps it (PostgreSQL); on SQLite
    /// it says that it does not apply.
    pub async fn refresh_server_view(&self, run: &RunContext) -> Result<ServerView, LeaseError> {
        if self.database().backend() == Backend::Sqlite {
            return Ok(self.server_view());
        }
        let mut lease = self.acquire(run).await?;
        let task = run.task().to_owned();
        let view = lease
            .run(|conn| {
                Box::pin(async move {
                    server_view::read_postgres(conn)
                        .await
                        .map_err(|err| LeaseError::connect(&task, &err))
                })
            })
            .await?;
        let view = ServerView::Postgres(view);
        self.store_server_view(view.clone());
        Ok(view)
    }

    /// Reads the server-wide view over the control pool (never a task connection) and keeps
    /// it (PostgreSQL only): how the rules see the server between health checks.
    pub async fn sample_server(&self) -> Result<Option<PgServerView>, sqlx::Error> {
        let db = self.database();
        if db.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut conn = db.control().acquire().await?;
        let view = server_view::read_postgres(&mut conn).await?;
        self.store_server_view(ServerView::Postgres(view.clone()));
        Ok(Some(view))
    }

    /// Closes idle connections while the pool holds more than the governor's limit: a
    /// shrinking share gives its slots back to the server within a window, not after the idle
    /// timeout.
    pub async fn close_idle_above_limit(&self) {
        let pool = self.database().pool();
        let limit = self.governor().limit();
        let mut closed = 0;
        while pool.size() > limit {
            let Some(idle) = pool.try_acquire() else {
                break;
            };
            let _ = idle.close().await;
            closed += 1;
        }
        if closed > 0 {
            tracing::info!(
                closed,
                limit,
                "idle connections above the lease limit closed"
            );
        }
    }

    /// Keeps a server-wide view read by a task (the health check).
    pub fn store_server_view(&self, view: ServerView) {
        *self.shared.server_view.write() = view;
    }
}
