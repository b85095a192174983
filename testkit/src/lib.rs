//! Helpers for integration tests.
//!
//! PostgreSQL tests run against the server on 127.0.0.1:5432 (override with
//! `LEASEWATCH_TEST_PG`), each in a database of its own so they can run in parallel. When the
//! server cannot be reached they skip, except under `CI=true`, where they fail.
//! [`ScratchCluster`] is for tests that stop, restart or starve a server, or a streaming replica
//! of one.

mod cluster;

pub use cluster::ScratchCluster;

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("LEASEWATCH_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database, or returns `None` (skip) when PostgreSQL is unreachable and
    /// `CI` is not `true`.
    pub async fn create() -> Option<Self> {
        let admin = admin_url();
        let mut conn = match connect(&admin).await {
            Ok(conn) => conn,
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL at {admin} is unreachable and CI=true: {err}")
            }
            Err(err) => {
                eprintln!("skipping: PostgreSQL at {admin} is unreachable ({err})");
                return None;
            }
        };
        let name = format!("leasewatch_test_{:016x}", rand::random::<u64>());
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the admin URL names a database");
        Some(Self {
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any async context that could be blocked on, so use a thread with
        // its own runtime. FORCE ends sessions a failed test left behind.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut conn = connect(&admin_url()).await?;
                conn.execute(sqlx::AssertSqlSafe(sql)).await.map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}
