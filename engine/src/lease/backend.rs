//! PostgreSQL backends: which one serves a lease, and ending one only while it is still
//! that lease's.

use super::Database;

/// Which PostgreSQL backend serves a lease: its pid and when it started. A pid alone is not an
/// identity — once a backend ends (`idle_in_transaction_session_timeout` equals the lease
/// timeout, so a stale lease's backend may be gone) the operating system can give its pid to
/// any other session — but pid and start time together name one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendIdentity {
    /// The backend's process id.
    pub pid: i32,
    /// `pg_stat_activity.backend_start`, in microseconds since the Unix epoch.
    pub started_us: i64,
}

/// Learns the connection's backend in the same round trip as the liveness check. The function
/// form of `pg_stat_activity` with the session's own pid reads one entry; the view would read
/// every backend's (a tenth of a millisecond more per acquire where this costs about 20 µs).
pub(super) const BACKEND_IDENTITY_SQL: &str = "SELECT pg_backend_pid(), \
     (SELECT (EXTRACT(EPOCH FROM backend_start) * 1000000)::int8 \
      FROM pg_stat_get_activity(pg_backend_pid())), \
     set_config('statement_timeout', $1, false) \
     || set_config('idle_in_transaction_session_timeout', $1, false)";

/// Ends a backend only if it is still the one a lease recorded: same pid, same start, and
/// this instance's task `application_name`. No row: the backend is gone (or the pid now
/// belongs to another session, which is left alone).
const TERMINATE_SQL: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE pid = $1 AND (EXTRACT(EPOCH FROM backend_start) * 1000000)::int8 = $2 \
     AND application_name = $3";

/// What [`terminate_backends`] did, pid by pid.
#[derive(Debug, Default)]
pub(super) struct Ended {
    /// Backends ended.
    pub(super) terminated: Vec<i32>,
    /// Backends no longer there (or no longer the lease's).
    pub(super) already_gone: Vec<i32>,
    /// Backends that could not be ended, with the reason.
    pub(super) failures: Vec<(i32, String)>,
}

/// Ends PostgreSQL backends over a connection of its own, so it works when the pool is
/// exhausted — each only if it is still the backend its lease recorded (see [`TERMINATE_SQL`]):
/// a pid that now belongs to another session, another application's or a later one of ours,
/// is never ended. A backend no longer there is reported as already gone, not as a failure.
pub(super) async fn terminate_backends(db: &Database, backends: &[BackendIdentity]) -> Ended {
    let mut ended = Ended::default();
    let mut conn = match db.control().acquire().await {
        Ok(conn) => conn,
        Err(err) => {
            let reason = format!("no control connection: {err}");
            ended.failures = backends.iter().map(|b| (b.pid, reason.clone())).collect();
            return ended;
        }
    };
    let application_name = db.application_name().to_owned();
    for backend in backends {
        match sqlx::query_scalar::<_, bool>(TERMINATE_SQL)
            .bind(backend.pid)
            .bind(backend.started_us)
            .bind(application_name.clone())
            .fetch_optional(&mut *conn)
            .await
        {
            Ok(Some(true)) => ended.terminated.push(backend.pid),
            // No row, or it ended between the look-up and the signal.
            Ok(None | Some(false)) => ended.already_gone.push(backend.pid),
            Err(err) => ended.failures.push((backend.pid, err.to_string())),
        }
    }
    ended
}
