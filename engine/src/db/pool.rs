//! Connecting: the task pool, the control pool and the probe's connection, each with the
//! session settings every new connection gets.

use std::{sync::Arc, time::Duration};

use sqlx::{AssertSqlSafe, Executor, any::AnyPoolOptions};

use super::{
    Backend, CONTROL_APPLICATION_NAME, Database, DatabaseUrl, DbError, PROBE_APPLICATION_NAME,
    PROBE_TIMEOUT, REPLICA_ACQUIRE_TIMEOUT, SCHEMA, TASKS_APPLICATION_PREFIX,
};
use crate::settings::PoolSettings;

/// Connections the control pool may open: one, kept open by the server reads every few
/// seconds, so each instance's overhead on the server is known and small. Control work is a
/// few short statements at a time.
const CONTROL_CONNECTIONS: u32 = 1;

/// Control work waits at most this long for a connection.
const CONTROL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Database {
    /// Connects, waiting at most `settings.connect_timeout` for the first connection, and
    /// applies the session settings to every connection the pool opens.
    pub async fn connect(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, DbError> {
        Self::open(url, settings, Access::ReadWrite).await
    }

    /// A read replica's pools: every session read-only (`default_transaction_read_only`), so
    /// nothing sent there can write even if the server is promoted or misnamed, and opened
    /// lazily, so a replica that is down at start-up is only out of rotation, not fatal.
    /// Its acquires wait at most [`REPLICA_ACQUIRE_TIMEOUT`].
    pub async fn connect_replica(
        url: &DatabaseUrl,
        settings: &PoolSettings,
    ) -> Result<Self, DbError> {
        let settings = PoolSettings {
            connect_timeout: settings.connect_timeout.min(REPLICA_ACQUIRE_TIMEOUT),
            ..settings.clone()
        };
        Self::open(url, &settings, Access::ReadOnly).await
    }

    async fn open(
        url: &DatabaseUrl,
        settings: &PoolSettings,
        access: Access,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let options = pool_options(url.backend(), settings, access)
            // On PostgreSQL the lease manager's `SELECT pg_backend_pid()` is the liveness check
            // (it also learns the backend); SQLite keeps the pool's own cheap ping.
            .test_before_acquire(url.backend() == Backend::Sqlite)
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .idle_timeout(settings.idle_timeout)
            .acquire_timeout(settings.connect_timeout);
        let unreachable = |source| DbError::Unreachable {
            url: url.to_string(),
            timeout: settings.connect_timeout,
            source,
        };
        let pool = match access {
            // The pool bounds its own wait, but a peer that accepts TCP and never answers must
            // not hang start-up either.
            Access::ReadWrite => tokio::time::timeout(
                settings.connect_timeout,
                options.connect(&url.connect_string()),
            )
            .await
            .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
            .map_err(unreachable)?,
            Access::ReadOnly => options
                .min_connections(0)
                .connect_lazy(&url.connect_string())
                .map_err(unreachable)?,
        };
        // Named after the instance too, so instances can count each other by it: the control
        // connection stays open while the server is read every few seconds.
        let instance = settings
            .application_name
            .strip_prefix(TASKS_APPLICATION_PREFIX)
            .unwrap_or_default();
        let control_settings = PoolSettings {
            application_name: format!("{CONTROL_APPLICATION_NAME}{instance}"),
            ..settings.clone()
        };
        // Lazy: it opens a connection only when control work needs one.
        let control = pool_options(url.backend(), &control_settings, access)
            .max_connections(CONTROL_CONNECTIONS)
            .min_connections(0)
            .idle_timeout(settings.idle_timeout)
            .acquire_timeout(settings.connect_timeout.min(CONTROL_ACQUIRE_TIMEOUT))
            .connect_lazy(&url.connect_string())
            .map_err(unreachable)?;
        let probe_settings = PoolSettings {
            application_name: PROBE_APPLICATION_NAME.to_owned(),
            ..settings.clone()
        };
        let probe = pool_options(url.backend(), &probe_settings, access)
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(settings.idle_timeout)
            .acquire_timeout(PROBE_TIMEOUT)
            .connect_lazy(&url.connect_string())
            .map_err(unreachable)?;
        Ok(Self {
            pool,
            control,
            probe,
            last_probe: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(1)),
            url: url.clone(),
            settings: settings.clone(),
        })
    }
}

/// Pool options that run the session settings on every connection the pool opens.
/// Whether a pool's sessions may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

fn pool_options(backend: Backend, settings: &PoolSettings, access: Access) -> AnyPoolOptions {
    // Built from numbers and an escaped name only, so it is safe to send as raw SQL.
    let sql: Arc<str> = session_settings_sql(backend, settings, access).into();
    AnyPoolOptions::new().after_connect(move |conn, _meta| {
        let sql = AssertSqlSafe(Arc::clone(&sql));
        Box::pin(async move { conn.execute(sqlx::raw_sql(sql)).await.map(drop) })
    })
}

/// The statements run on each new connection.
///
/// PostgreSQL: name the session after the app and its role, put it in Leasewatch's own schema
/// ([`SCHEMA`], and nothing else: a host application's tables in `public` are out of reach),
/// and bound statements by the lease timeout (closing a socket does not stop a query on the
/// server; `statement_timeout` does), and sessions left idle inside a transaction. SQLite: WAL so readers never block the writer, a busy
/// timeout instead of immediate "database is locked" errors, and enforced foreign keys.
fn session_settings_sql(backend: Backend, settings: &PoolSettings, access: Access) -> String {
    match backend {
        Backend::Postgres => {
            let statement_ms = settings.lease_timeout.as_millis();
            let idle_tx_ms = settings.lease_timeout.as_millis();
            let read_only = match access {
                Access::ReadWrite => "",
                Access::ReadOnly => " SET default_transaction_read_only = on;",
            };
            format!(
                "SET application_name = '{}'; SET search_path = {SCHEMA}; \
                 SET statement_timeout = {statement_ms}; \
                 SET idle_in_transaction_session_timeout = {idle_tx_ms};{read_only}",
                settings.application_name.replace('\'', "''")
            )
        }
        Backend::Sqlite => {
            let busy_ms = settings.connect_timeout.as_millis();
            format!(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {busy_ms}; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_name_is_quoted() {
        let settings = PoolSettings {
            application_name: "it's".into(),
            ..PoolSettings::default()
        };
        let sql = session_settings_sql(Backend::Postgres, &settings, Access::ReadWrite);
        assert!(sql.contains("'it''s'"), "{sql}");
        assert!(!sql.contains("read_only"), "{sql}");
        let replica = session_settings_sql(Backend::Postgres, &settings, Access::ReadOnly);
        assert!(
            replica.ends_with("SET default_transaction_read_only = on;"),
            "{replica}"
        );
        assert!(sql.contains("statement_timeout = 30000"), "{sql}");
        assert!(sql.contains("SET search_path = leasewatch;"), "{sql}");
    }
}
