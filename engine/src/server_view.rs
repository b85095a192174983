//! The database server as a whole, seen from `pg_stat_activity`: how many connections it
//! allows, who holds them and in what state. Several instances of this app show up side by side
//! by `application_name`. Read by the health check, never by a dashboard poll.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

/// What the last read of the server showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerView {
    /// Not read yet (the health check has not run).
    Unknown,
    /// SQLite is embedded: there is no server to look at.
    NotApplicable {
        /// Why, in words for an operator.
        reason: String,
    },
    /// A PostgreSQL server.
    Postgres(PgServerView),
}

impl ServerView {
    /// What SQLite answers.
    pub fn sqlite() -> Self {
        Self::NotApplicable {
            reason: "SQLite is embedded: max_connections, backends and pg_stat_activity do not \
                     apply"
                .to_owned(),
        }
    }
}

/// Connection use on a PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PgServerView {
    /// When it was read.
    pub read_at: DateTime<Utc>,
    /// The server's `max_connections`.
    pub max_connections: i64,
    /// Slots only superusers (and `pg_use_reserved_connections`) may take.
    pub reserved_connections: i64,
    /// Client connections open now.
    pub client_connections: i64,
    /// Client connections per state (`active`, `idle`, `idle in transaction`, ...).
    pub by_state: Vec<(String, i64)>,
    /// Sessions idle inside an open transaction for over [`IDLE_IN_TRANSACTION_AFTER`]: they
    /// hold locks and a slot doing nothing.
    pub idle_in_transaction: i64,
    /// Sessions waiting for a lock (of those this role may see the state of).
    #[serde(default)]
    pub waiting: i64,
    /// Client connections per `application_name` and user, most first.
    pub holders: Vec<Holder>,
}

/// Client connections of one `application_name` and user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Holder {
    /// The sessions' `application_name` (empty when they set none).
    pub application: String,
    /// The role they logged in as.
    pub user: String,
    /// How many.
    pub connections: i64,
}

/// How many holders a line names; the rest are summed up.
const HOLDERS_NAMED: usize = 4;

impl PgServerView {
    /// Slots ordinary roles can use: `max_connections` less the reserved ones.
    pub fn usable_connections(&self) -> i64 {
        self.max_connections - self.reserved_connections
    }

    /// Who holds the connections, in a line: "16 psql (user hog), 5 leasewatch:tasks:…
    /// (user app) and 2 more".
    pub fn holders_line(&self) -> String {
        let mut named: Vec<String> = self
            .holders
            .iter()
            .take(HOLDERS_NAMED)
            .map(|h| {
                let application = if h.application.is_empty() {
                    "without application_name"
                } else {
                    &h.application
                };
                format!("{} {application} (user {})", h.connections, h.user)
            })
            .collect();
        let rest: i64 = self
            .holders
            .iter()
            .skip(HOLDERS_NAMED)
            .map(|h| h.connections)
            .sum();
        if rest > 0 {
            named.push(format!("{rest} more"));
        }
        named.join(", ")
    }
}

/// How long a session must have been idle in its transaction to count: a busy client (a task
/// between two statements of its transaction) is idle in transaction for milliseconds.
pub const IDLE_IN_TRANSACTION_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the view through `conn` (five small catalog queries).
pub async fn read_postgres(conn: &mut AnyConnection) -> Result<PgServerView, sqlx::Error> {
    // `reserved_connections` exists from PostgreSQL 16; `current_setting(.., true)` is NULL
    // where it does not.
    let (max_connections, superuser_reserved, reserved): (i32, i32, i32) = sqlx::query_as(
        "SELECT current_setting('max_connections')::int, \
                current_setting('superuser_reserved_connections')::int, \
                COALESCE(current_setting('reserved_connections', true), '0')::int",
    )
    .fetch_one(&mut *conn)
    .await?;
    let by_state: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(state, 'unknown'), COUNT(*)::bigint FROM pg_stat_activity \
         WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    // Ordinary roles see every session's application_name and user (not its state).
    let holders: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT COALESCE(application_name, ''), COALESCE(usename::text, ''), COUNT(*)::bigint \
         FROM pg_stat_activity WHERE backend_type = 'client backend' \
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let idle_in_transaction: i64 = sqlx::query_scalar(
        "SELECT COUNT(*)::bigint FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND state LIKE 'idle in transaction%' \
         AND state_change < clock_timestamp() - make_interval(secs => $1)",
    )
    .bind(IDLE_IN_TRANSACTION_AFTER.as_secs_f64())
    .fetch_one(&mut *conn)
    .await?;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*)::bigint FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(PgServerView {
        read_at: Utc::now(),
        max_connections: i64::from(max_connections),
        reserved_connections: i64::from(superuser_reserved) + i64::from(reserved),
        client_connections: by_state.iter().map(|(_, n)| n).sum(),
        idle_in_transaction,
        waiting,
        by_state,
        holders: holders
            .into_iter()
            .map(|(application, user, connections)| Holder {
                application,
                user,
                connections,
            })
            .collect(),
    })
}
