//! What kind of failure ended a task run, decided once, where the failure happens, from the
//! error's type and (for database errors) its SQLSTATE — never from its message, so rewording
//! a message cannot change which recommendation a failure raises.

/// PostgreSQL's SQLSTATE when it refuses a connection for want of a free slot: "sorry, too
/// many clients already" and "remaining connection slots are reserved for ..." alike. The
/// rest of class 53 (disk full, out of memory, configuration limit) is not about slots.
pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";

/// PostgreSQL's SQLSTATE while it starts up or shuts down ("the database system is starting
/// up").
pub(crate) const CANNOT_CONNECT_NOW: &str = "57P03";

/// PostgreSQL's SQLSTATE when a statement is cancelled: by its `statement_timeout` (every
/// lease sets it to the lease's timeout) or by `pg_cancel_backend`.
pub(crate) const QUERY_CANCELED: &str = "57014";

/// Why a run failed: defined with the other names on the wire, so the dashboard reads it too.
pub use leasewatch_types::FailureKind;

/// Classifies a driver error by its variant and SQLSTATE.
pub fn classify(err: &sqlx::Error) -> FailureKind {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => FailureKind::Unreachable,
        sqlx::Error::PoolTimedOut => FailureKind::AcquireTimeout,
        sqlx::Error::PoolClosed => FailureKind::Closed,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(TOO_MANY_CONNECTIONS) => FailureKind::SlotsExhausted,
            // The server cut the statement off at its timeout: the run timed out, whether the
            // deadline fired in the server or in the lease.
            Some(QUERY_CANCELED) => FailureKind::TimedOut,
            // Class 08: connection exceptions.
            Some(code) if code == CANNOT_CONNECT_NOW || code.starts_with("08") => {
                FailureKind::Unreachable
            }
            _ => FailureKind::Database,
        },
        _ => FailureKind::Database,
    }
}

/// A database error with a chosen SQLSTATE and message, for tests that classify errors
/// without a server that would produce them.
#[cfg(test)]
pub(crate) mod coded {
    use std::{borrow::Cow, error::Error, fmt};

    use sqlx::error::{DatabaseError, ErrorKind};

    /// An error as a driver would return it, saying `message` with SQLSTATE `code`.
    #[derive(Debug)]
    pub(crate) struct Coded {
        pub(crate) code: &'static str,
        pub(crate) message: &'static str,
    }

    impl Coded {
        pub(crate) fn error(code: &'static str, message: &'static str) -> sqlx::Error {
            sqlx::Error::Database(Box::new(Self { code, message }))
        }
    }

    impl fmt::Display for Coded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)
        }
    }

    impl Error for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            self.message
        }

        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }

        fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
            self
        }

        fn as_error_mut(&mut self) -> &mut (dyn Error + Send + Sync + 'static) {
            self
        }

        fn into_error(self: Box<Self>) -> Box<dyn Error + Send + Sync + 'static> {
            self
        }

        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{coded::Coded, *};

    #[test]
    fn each_kind_reads_back_from_its_serde_name() {
        for kind in FailureKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str(), "as_str is the serde name");
            assert_eq!(kind.as_str().parse::<FailureKind>(), Ok(*kind));
        }
        let err = "timeout".parse::<FailureKind>().unwrap_err().to_string();
        assert!(
            err.contains("\"timeout\"") && err.contains("timed_out"),
            "{err}"
        );
    }

    #[test]
    fn driver_errors_are_classified_by_sqlstate_not_message() {
        // Messages that say the opposite of their code: only the code counts.
        let cases = [
            ("53300", "connection refused", FailureKind::SlotsExhausted),
            ("08006", "too many clients", FailureKind::Unreachable),
            ("57P03", "", FailureKind::Unreachable),
            (
                "53200",
                "remaining connection slots are reserved",
                FailureKind::Database,
            ),
            ("40001", "no connection within", FailureKind::Database),
            ("57014", "", FailureKind::TimedOut),
        ];
        for (code, message, kind) in cases {
            assert_eq!(
                classify(&Coded::error(code, message)),
                kind,
                "{code} {message:?}"
            );
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&sqlx::Error::Io(refused)),
            FailureKind::Unreachable
        );
        assert_eq!(
            classify(&sqlx::Error::PoolTimedOut),
            FailureKind::AcquireTimeout
        );
        assert_eq!(classify(&sqlx::Error::RowNotFound), FailureKind::Database);
    }
}
