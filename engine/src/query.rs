//! Checking what a search asks for (the runs view, the audit log), once for the API and the
//! dashboard: every refused value names its field, what was given and what is allowed.

use chrono::{DateTime, Utc};

/// Entries or runs per page by default.
pub const DEFAULT_PAGE: u32 = 50;
/// The most per page.
pub const MAX_PAGE: u32 = 500;

/// A refused search: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidQuery {
    /// The query parameter.
    pub field: &'static str,
    /// What was wrong, with what is allowed.
    pub message: String,
}

impl InvalidQuery {
    /// `field` refused for `message`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A value a form left empty counts as not given.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// An instant written in RFC 3339.
pub fn instant(
    field: &'static str,
    value: &Option<String>,
) -> Result<Option<DateTime<Utc>>, InvalidQuery> {
    given(value)
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    InvalidQuery::new(
                        field,
                        format!(
                            "{:?} is not an RFC 3339 instant (like 2026-12-01T03:00:00Z)",
                            truncated(text)
                        ),
                    )
                })
        })
        .transpose()
}

/// `from` before `to`, when both are given.
pub fn ordered(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), InvalidQuery> {
    match (from, to) {
        (Some(from), Some(to)) if from >= to => Err(InvalidQuery::new(
            "to",
            format!("must be after from ({from}); got {to}"),
        )),
        _ => Ok(()),
    }
}

/// A page size from 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when not given.
pub fn page_size(value: Option<u32>) -> Result<u32, InvalidQuery> {
    let limit = value.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(InvalidQuery::new(
            "limit",
            format!("must be from 1 to {MAX_PAGE}; got {limit}"),
        ))
    }
}

/// A name: 1 to 64 of `a-z`, `0-9`, `_`, `-` and `.` (task names, instances, actions).
pub fn name<'a>(
    field: &'static str,
    value: &'a Option<String>,
) -> Result<Option<&'a str>, InvalidQuery> {
    given(value)
        .map(|text| {
            let fits = text.len() <= 64
                && text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
            if fits {
                Ok(text)
            } else {
                Err(InvalidQuery::new(
                    field,
                    format!(
                        "{:?} is not a name (1 to 64 of a-z, 0-9, _, - and .)",
                        truncated(text)
                    ),
                ))
            }
        })
        .transpose()
}

/// One of a set of words, parsed.
pub fn one_of<T: std::str::FromStr>(
    field: &'static str,
    value: &Option<String>,
    allowed: &str,
) -> Result<Option<T>, InvalidQuery> {
    given(value)
        .map(|text| {
            text.parse().map_err(|_| {
                InvalidQuery::new(
                    field,
                    format!("{:?} is not one of {allowed}", truncated(text)),
                )
            })
        })
        .transpose()
}

/// At most 64 characters of what was given, for messages.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn empty_values_count_as_not_given() {
        assert_eq!(instant("from", &some("  ")), Ok(None));
        assert_eq!(name("task", &some("")), Ok(None));
        assert_eq!(page_size(None), Ok(DEFAULT_PAGE));
    }

    #[test]
    fn refusals_name_the_field_the_value_and_what_is_allowed() {
        let err = instant("from", &some("yesterday")).unwrap_err();
        assert_eq!(err.field, "from");
        assert!(err.to_string().contains("\"yesterday\"") && err.to_string().contains("RFC 3339"));
        let err = page_size(Some(0)).unwrap_err();
        assert_eq!(err.to_string(), "limit: must be from 1 to 500; got 0");
        let err = name("task", &some("DROP TABLE")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("task: \"DROP TABLE\" is not a name")
        );
        let long = "x".repeat(10_000);
        assert!(
            name("task", &Some(long)).unwrap_err().to_string().len() < 200,
            "bounded"
        );
        let from = instant("from", &some("2026-12-02T00:00:00Z")).unwrap();
        let to = instant("to", &some("2026-12-01T00:00:00+01:00")).unwrap();
        assert_eq!(ordered(from, to).unwrap_err().field, "to");
    }
}
