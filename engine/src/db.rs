//! The database: which backend, how to reach it, the pool and its migrations.
//!
//! Both backends go through sqlx's `Any` driver so that every query is written once; the few
//! things only PostgreSQL has (session settings, backend pids, server-wide views) branch on
//! [`Backend`].

use std::{
    fmt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::{
    AnyPool, AssertSqlSafe, Connection, Executor,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migrator},
};

use crate::settings::PoolSettings;

/// The `application_name` of the control pool's connections.
pub const CONTROL_APPLICATION_NAME: &str = "leasewatch:control";

/// The `application_name` of the readiness probe's connection.
pub const PROBE_APPLICATION_NAME: &str = "leasewatch:probe";

/// The PostgreSQL schema that holds every Leasewatch table and its migrations table. Every
/// Leasewatch session runs with `search_path` set to it, so queries (written once for both
/// backends) stay unqualified and never reach a host application's tables in `public`.
pub const SCHEMA: &str = "leasewatch";

/// Where sqlx records applied migrations on PostgreSQL: in [`SCHEMA`], not the host
/// database's shared `public._sqlx_migrations`.
pub const POSTGRES_MIGRATIONS_TABLE: &str = "leasewatch._sqlx_migrations";

/// The tables each migration created, by version: what an install from before the schema
/// existed has in `public` and start-up moves into [`SCHEMA`]. A table moves only when
/// `public._sqlx_migrations` records the version that created it, so a host application's
/// table of the same name is never taken.
const TABLES_BY_VERSION: &[(i64, &[&str])] = &[
    (20261128000001, &["auctions", "bids"]),
    (20261128000002, &["auction_events"]),
    (20261128000003, &["audit_log"]),
    (20261130000002, &["session_secret", "revoked_sessions"]),
];

/// Advisory lock key held while an install is moved out of `public`, so instances starting
/// together move it once.
const SCHEMA_MOVE_LOCK: i64 = 0x4C57_0100;

/// A readiness probe waits at most this long for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes within this long of the last one get its answer: a flood of probes costs at most
/// one query per interval.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);

/// How long closing waits for connections in use.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Connections the control pool may open.
const CONTROL_CONNECTIONS: u32 = 2;

/// Control work waits at most this long for a connection.
const CONTROL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The database products Leasewatch runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The production database.
    Postgres,
    /// The embedded default, so the first run needs nothing installed.
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

/// Where the database is. `Display` and `Debug` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A `postgres://` or `postgresql://` URL.
    Postgres(url::Url),
    /// A SQLite database file, created on first start.
    Sqlite(PathBuf),
}

/// Why a `DATABASE_URL` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// The scheme is not one Leasewatch speaks.
    #[error("unknown scheme {0:?}: allowed are postgres://, postgresql:// and sqlite://")]
    UnknownScheme(String),
    /// Not a URL at all.
    #[error("not a URL ({0}): expected postgres://user@host:port/db or sqlite://path/to/file.db")]
    Malformed(String),
    /// A SQLite URL with no file in it.
    #[error("a SQLite URL needs a file path, as in sqlite://data/leasewatch.db")]
    MissingSqlitePath,
    /// An in-memory SQLite database would be a different empty database per pooled connection.
    #[error(
        "in-memory SQLite is not supported (each pooled connection would see its own database)"
    )]
    InMemorySqlite,
}

impl DatabaseUrl {
    /// Parses a `DATABASE_URL` value.
    pub fn parse(value: &str) -> Result<Self, UrlError> {
        if let Some(rest) = value
            .strip_prefix("sqlite://")
            .or_else(|| value.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            return match path {
                "" => Err(UrlError::MissingSqlitePath),
                ":memory:" => Err(UrlError::InMemorySqlite),
                path => Ok(Self::Sqlite(PathBuf::from(path))),
            };
        }
        let url = url::Url::parse(value).map_err(|err| UrlError::Malformed(err.to_string()))?;
        match url.scheme() {
            "postgres" | "postgresql" => Ok(Self::Postgres(url)),
            other => Err(UrlError::UnknownScheme(other.to_owned())),
        }
    }

    /// The backend this URL points at.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The URL sqlx connects to, secrets included: never log it.
    fn connect_string(&self) -> String {
        match self {
            Self::Postgres(url) => url.to_string(),
            // `mode=rwc` creates the file on first start.
            Self::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => f.write_str(&redact_password(url.as_str())),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

/// Replaces every password in a URL-like string with `***`: the user-info password
/// (`user:secret@host`) and the value of every query parameter whose name contains
/// "password", in any case (`?password=`, `?sslpassword=`, ...). A valid URL is rewritten with
/// the `url` crate; text that is not one (a malformed `DATABASE_URL` quoted in an error) is
/// redacted as text, so its secret does not leak either.
pub fn redact_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => redact_url(url),
        Err(_) => redact_text(raw),
    }
}

/// Whether a query parameter carries a secret.
fn is_password_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

fn redact_url(mut url: url::Url) -> String {
    if url.password().is_some() {
        // Only fails for URLs that cannot have a password, which this one has.
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(key, _)| is_password_key(&key)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_password_key(&key) {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.into()
}

fn redact_text(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://").map(|i| i + 3) else {
        return raw.to_owned();
    };
    let query_start = raw.find('?').unwrap_or(raw.len());
    // The user info ends at the last '@' before any query string (a password may hold '/' or '@').
    let before_query = &raw[..query_start];
    let mut out = match before_query[scheme_end..]
        .rfind('@')
        .map(|i| scheme_end + i)
        .and_then(|at| raw[scheme_end..at].find(':').map(|i| (scheme_end + i, at)))
    {
        Some((colon, at)) => format!("{}:***{}", &raw[..colon], &raw[at..query_start]),
        None => before_query.to_owned(),
    };
    if let Some(query) = raw
        .get(query_start + 1..)
        .filter(|_| query_start < raw.len())
    {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_password_key(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Failures reaching or preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be made within the connect timeout.
    #[error("cannot connect to {url} within {} ms: {source}", timeout.as_millis())]
    Unreachable {
        /// The redacted URL.
        url: String,
        /// The bound that was waited.
        timeout: Duration,
        /// What the driver said (or a timeout).
        source: sqlx::Error,
    },
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder {path} for the SQLite database: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A point-in-time reading of the pool, taken without touching the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStatus {
    /// Connections open now, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Configured maximum.
    pub max: u32,
    /// Configured minimum.
    pub min: u32,
}

/// Why the database is not ready, as the public readiness probe says it: generic on purpose
/// (the driver's error is logged, never sent to an unauthenticated caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The probe could not reach the database, or the database refused it.
    #[error("database unreachable")]
    Unreachable,
    /// The database did not answer within [`PROBE_TIMEOUT`].
    #[error("database did not answer within 1 s")]
    TimedOut,
}

/// The last readiness answer and when it was asked.
type ProbeAnswer = Option<(Instant, Result<(), NotReady>)>;

/// The connected database: a pool plus what is known about its backend.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    /// A small pool of its own for control work that must not wait behind the tasks: ending
    /// backends and the audit log.
    control: AnyPool,
    /// One lazy connection for readiness probes, so a flood of public probes can never take
    /// the connections control work needs.
    probe: AnyPool,
    /// The last probe's answer: probes within [`PROBE_REUSE`] of it share it.
    last_probe: Arc<tokio::sync::Mutex<ProbeAnswer>>,
    url: DatabaseUrl,
    settings: PoolSettings,
}

impl Database {
    /// Connects, waiting at most `settings.connect_timeout` for the first connection, and
    /// applies the session settings to every connection the pool opens.
    pub async fn connect(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let options = pool_options(url.backend(), settings)
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
        // The pool bounds its own wait, but a peer that accepts TCP and never answers must not
        // hang start-up either.
        let pool = tokio::time::timeout(
            settings.connect_timeout,
            options.connect(&url.connect_string()),
        )
        .await
        .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(unreachable)?;
        let control_settings = PoolSettings {
            application_name: CONTROL_APPLICATION_NAME.to_owned(),
            ..settings.clone()
        };
        // Lazy: it opens a connection only when control work needs one.
        let control = pool_options(url.backend(), &control_settings)
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
        let probe = pool_options(url.backend(), &probe_settings)
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
            url: url.clone(),
            settings: settings.clone(),
        })
    }

    /// Brings the schema up to date; safe to run on every start. On PostgreSQL an install
    /// from before the `leasewatch` schema (tables and `_sqlx_migrations` in `public`) is
    /// first moved into it, in one transaction.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend() {
            Backend::Postgres => {
                self.move_out_of_public().await?;
                let mut migrator =
                    Migrator::with_migrations(POSTGRES_MIGRATIONS.iter().cloned().collect());
                migrator.dangerous_set_table_name(POSTGRES_MIGRATIONS_TABLE);
                migrator.create_schema(SCHEMA);
                migrator.run(&self.pool).await?;
            }
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Moves the tables an earlier Leasewatch created in `public`, and its migration records,
    /// into [`SCHEMA`]: in one transaction (all or nothing), under an advisory lock (instances
    /// starting together move it once), and idempotent (a second start finds nothing to move).
    /// A table moves only if `public._sqlx_migrations` records the migration that made it and
    /// [`SCHEMA`] has no table of that name yet. `public._sqlx_migrations` itself moves whole
    /// when every version in it is Leasewatch's; when a host application records its own
    /// migrations there too, only Leasewatch's rows are copied over and removed from it.
    async fn move_out_of_public(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_MOVE_LOCK)
            .execute(&mut *tx)
            .await?;
        let exists = |name: String| {
            sqlx::query_scalar::<sqlx::Any, bool>("SELECT to_regclass($1) IS NOT NULL").bind(name)
        };
        let has_schema: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(SCHEMA)
                .fetch_one(&mut *tx)
                .await?;
        if !exists("public._sqlx_migrations".to_owned())
            .fetch_one(&mut *tx)
            .await?
        {
            // Nothing of ours in `public`: a new install, or one moved already.
            return tx.rollback().await;
        }
        let recorded: Vec<i64> = sqlx::query_scalar("SELECT version FROM public._sqlx_migrations")
            .fetch_all(&mut *tx)
            .await?;
        let ours: Vec<i64> = recorded
            .iter()
            .copied()
            .filter(|v| {
                POSTGRES_MIGRATIONS.version_exists(*v)
                    || TABLES_BY_VERSION.iter().any(|(known, _)| known == v)
            })
            .collect();
        if ours.is_empty() {
            // A host application's own sqlx migrations: not ours to touch.
            return tx.rollback().await;
        }
        if !has_schema {
            // Only when missing: a role without CREATE on the database can still run in a
            // schema its administrator made.
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {SCHEMA}")))
                .execute(&mut *tx)
                .await?;
        }
        let mut moved = Vec::new();
        for (_, tables) in TABLES_BY_VERSION.iter().filter(|(v, _)| ours.contains(v)) {
            for table in *tables {
                if exists(format!("public.{table}"))
                    .fetch_one(&mut *tx)
                    .await?
                    && !exists(format!("{SCHEMA}.{table}"))
                        .fetch_one(&mut *tx)
                        .await?
                {
                    // Indexes, constraints and the sequences of its serial columns move along.
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "ALTER TABLE public.{table} SET SCHEMA {SCHEMA}"
                    )))
                    .execute(&mut *tx)
                    .await?;
                    moved.push(*table);
                }
            }
        }
        let versions = ours
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let target_exists = exists(POSTGRES_MIGRATIONS_TABLE.to_owned())
            .fetch_one(&mut *tx)
            .await?;
        if ours.len() == recorded.len() && !target_exists {
            sqlx::raw_sql("ALTER TABLE public._sqlx_migrations SET SCHEMA leasewatch")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {POSTGRES_MIGRATIONS_TABLE} \
                 (LIKE public._sqlx_migrations INCLUDING ALL); \
                 INSERT INTO {POSTGRES_MIGRATIONS_TABLE} SELECT * FROM public._sqlx_migrations \
                 WHERE version IN ({versions}) ON CONFLICT DO NOTHING; \
                 DELETE FROM public._sqlx_migrations WHERE version IN ({versions});"
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::info!(
            tables = %moved.join(", "),
            migrations = %versions,
            "moved Leasewatch's tables and migration records from public into the {SCHEMA} schema"
        );
        Ok(())
    }

    /// Whether the database answers, for the readiness probe: asked over a one-connection
    /// pool of its own within [`PROBE_TIMEOUT`], and at most once per [`PROBE_REUSE`] —
    /// concurrent probes wait for the one under way and share its answer. The driver's error
    /// is logged; the answer names only what kind of failure it was.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < PROBE_REUSE
        {
            return answer;
        }
        let probe = async {
            let mut conn = self.probe.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await.map(drop)
        };
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::debug!(%err, "readiness probe: the database refused or is unreachable");
                Err(NotReady::Unreachable)
            }
            Err(_) => {
                tracing::debug!("readiness probe: no answer within {PROBE_TIMEOUT:?}");
                Err(NotReady::TimedOut)
            }
        };
        tracing::debug!(ready = answer.is_ok(), "readiness probe asked the database");
        let was_ready = last.map(|(_, previous)| previous.is_ok());
        if was_ready != Some(answer.is_ok()) {
            match answer {
                Ok(()) => tracing::info!("readiness: the database answers"),
                Err(reason) => tracing::warn!(%reason, "readiness: not ready"),
            }
        }
        *last = Some((Instant::now(), answer));
        answer
    }

    /// The backend behind the pool.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// Where the database is (redacted when displayed).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The sqlx pool. Background tasks must not take connections from it directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool's counters right now; no database access.
    pub fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.settings.max_connections,
            min: self.settings.min_connections,
        }
    }

    /// The `application_name` the task pool's sessions report.
    pub fn application_name(&self) -> &str {
        &self.settings.application_name
    }

    /// The control pool (see [`Database`]).
    pub fn control(&self) -> &AnyPool {
        &self.control
    }

    /// Closes every connection, waiting a few seconds for those in use to come back; a
    /// holder that never gives its connection back must not hang shutdown.
    pub async fn close(&self) {
        let closing = async {
            self.pool.close().await;
            self.control.close().await;
            self.probe.close().await;
        };
        if tokio::time::timeout(CLOSE_WAIT, closing).await.is_err() {
            tracing::warn!(
                "connections still in use after {} s; closing without them",
                CLOSE_WAIT.as_secs()
            );
        }
    }
}

/// Pool options that run the session settings on every connection the pool opens.
fn pool_options(backend: Backend, settings: &PoolSettings) -> AnyPoolOptions {
    // Built from numbers and an escaped name only, so it is safe to send as raw SQL.
    let sql: Arc<str> = session_settings_sql(backend, settings).into();
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
fn session_settings_sql(backend: Backend, settings: &PoolSettings) -> String {
    match backend {
        Backend::Postgres => {
            let statement_ms = settings.lease_timeout.as_millis();
            let idle_tx_ms = settings.lease_timeout.as_millis();
            format!(
                "SET application_name = '{}'; SET search_path = {SCHEMA}; \
                 SET statement_timeout = {statement_ms}; \
                 SET idle_in_transaction_session_timeout = {idle_tx_ms};",
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
    fn parses_both_schemes_and_refuses_others() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@localhost/db")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@localhost/db")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/x.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///abs/x.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/abs/x.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("mysql://root@localhost/db"),
            Err(UrlError::UnknownScheme("mysql".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:"),
            Err(UrlError::InMemorySqlite)
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Err(UrlError::MissingSqlitePath)
        );
        assert!(matches!(
            DatabaseUrl::parse("not a url"),
            Err(UrlError::Malformed(_))
        ));
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db.example:5432/prod").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db.example:5432/prod");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.connect_string().contains("s3cret"));
    }

    #[test]
    fn redacts_passwords_even_in_malformed_urls() {
        assert_eq!(
            redact_password("postgres://u:p/a@ss@host:bad/db?x=@"),
            "postgres://u:***@host:bad/db?x=@"
        );
        assert_eq!(
            redact_password("postgres://u@host/db"),
            "postgres://u@host/db"
        );
        assert_eq!(redact_password("no scheme:pw@x"), "no scheme:pw@x");
        // Not a URL (bad port), with a secret in the query too.
        assert_eq!(
            redact_password("postgres://u:p@host:bad/db?sslmode=require&Password=pw&x"),
            "postgres://u:***@host:bad/db?sslmode=require&Password=***&x"
        );
    }

    #[test]
    fn redacts_passwords_in_the_query_string() {
        let url = DatabaseUrl::parse(
            "postgres://app@db.example/prod?password=s3cret&sslmode=require&sslpassword=k3y",
        )
        .unwrap();
        let shown = url.to_string();
        assert_eq!(
            shown,
            "postgres://app@db.example/prod?password=***&sslmode=require&sslpassword=***"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.connect_string().contains("password=s3cret"));
        // Any case, and both forms at once.
        assert_eq!(
            redact_password("postgresql://u:one@h:5432/d?PASSWORD=two&application_name=x"),
            "postgresql://u:***@h:5432/d?PASSWORD=***&application_name=x"
        );
        // Percent-encoded secrets are redacted whole.
        let shown = redact_password("postgres://h/d?password=a%26b%3Dc&user=u");
        assert_eq!(shown, "postgres://h/d?password=***&user=u");
        // Nothing to redact: the URL is shown as given.
        assert_eq!(
            redact_password("postgres://u@h/d?sslmode=require"),
            "postgres://u@h/d?sslmode=require"
        );
    }

    #[test]
    fn application_name_is_quoted() {
        let settings = PoolSettings {
            application_name: "it's".into(),
            ..PoolSettings::default()
        };
        let sql = session_settings_sql(Backend::Postgres, &settings);
        assert!(sql.contains("'it''s'"), "{sql}");
        assert!(sql.contains("statement_timeout = 30000"), "{sql}");
        assert!(sql.contains("SET search_path = leasewatch;"), "{sql}");
    }
}
