//! Where the database is: `DATABASE_URL` parsed, and shown with every password redacted.

use std::{fmt, path::PathBuf};

use super::Backend;

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

    /// Where it is, without user, password or options: `host:port/db` (the default port
    /// filled in), or the SQLite file's path. What the dashboard shows of a database.
    pub fn address(&self) -> String {
        match self {
            Self::Postgres(url) => format!(
                "{}:{}/{}",
                url.host_str().unwrap_or("localhost"),
                url.port().unwrap_or(5432),
                url.path().trim_start_matches('/')
            ),
            Self::Sqlite(path) => path.display().to_string(),
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
    pub(super) fn connect_string(&self) -> String {
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
}
