//! The schema: migrations for both backends, and moving an install from before the
//! `leasewatch` schema out of `public`.

use sqlx::{AssertSqlSafe, Connection, migrate::Migrator};

use super::{Backend, Database, DbError, POSTGRES_MIGRATIONS_TABLE, SCHEMA};

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

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

impl Database {
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
}
