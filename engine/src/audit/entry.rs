//! What an audit entry is: as recorded, as stored (one definition for both, read from its
//! row), and every field bounded.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Row, any::AnyRow};

use leasewatch_types::{Actor, AuditOutcome};

use super::MAX_FIELD_BYTES;

/// One control action as stored: what was recorded, with its number and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Its number in the log.
    pub id: i64,
    /// When it was taken (for coalesced refusals, the first).
    pub at: DateTime<Utc>,
    /// Who, what, with what, how it came out, from where (for coalesced refusals, the
    /// first's arguments).
    #[serde(flatten)]
    pub record: NewEntry,
    /// How many identical refusals this entry stands for (same role, client address and
    /// action within a minute); 1 for everything else.
    #[serde(default = "one")]
    pub count: u64,
    /// For coalesced refusals, when the last of them came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

fn one() -> u64 {
    1
}

/// What to record; id and time are assigned on write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewEntry {
    /// Who takes it: a role, or Leasewatch itself.
    pub role: Actor,
    /// The action (an [`ActionName`](leasewatch_types::ActionName), or one of the system's
    /// own such as [`REPLACE_SESSION_SECRET`](leasewatch_types::REPLACE_SESSION_SECRET)).
    pub action: String,
    /// Its arguments, as JSON.
    pub arguments: String,
    /// How it came out.
    pub outcome: AuditOutcome,
    /// What came of it.
    pub result: String,
    /// The client's address.
    pub client: String,
}

impl NewEntry {
    /// Something Leasewatch did on its own (an automatic cleanup, predictive cleanup, a
    /// replaced session secret): done, by the system, from no client address.
    pub fn system(action: &str, arguments: serde_json::Value, result: String) -> Self {
        Self {
            role: Actor::System,
            action: action.to_owned(),
            arguments: arguments.to_string(),
            outcome: AuditOutcome::Ok,
            result,
            client: "leasewatch".to_owned(),
        }
    }

    /// Whether the action was only a preview (`"dry_run": true` in its arguments).
    pub fn is_dry_run(&self) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.arguments)
            .is_ok_and(|args| args.get("dry_run") == Some(&serde_json::Value::Bool(true)))
    }

    /// The entry with every field cut to [`MAX_FIELD_BYTES`].
    pub(super) fn bounded(mut self) -> Self {
        for field in [
            &mut self.action,
            &mut self.arguments,
            &mut self.result,
            &mut self.client,
        ] {
            truncate_field(field);
        }
        self
    }

    /// Whether this is a refused action (those are coalesced).
    pub(super) fn is_refusal(&self) -> bool {
        self.outcome == AuditOutcome::Refused
    }
}

/// Cuts `value` to at most [`MAX_FIELD_BYTES`] bytes on a character boundary, ending in `…`
/// when anything was cut.
fn truncate_field(value: &mut String) {
    if value.len() <= MAX_FIELD_BYTES {
        return;
    }
    let mut cut = MAX_FIELD_BYTES - '…'.len_utf8();
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    value.truncate(cut);
    value.push('…');
}

/// Where an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written.
    Written(AuditEntry),
    /// A refusal counted into an earlier identical one (the row with this id); its count is
    /// written within a second.
    Coalesced(i64),
    /// Not written yet: the database refused the write for this reason. It is kept in
    /// memory and written, in order, by the next [`AuditLog::flush`](super::AuditLog::flush) that succeeds.
    Queued(String),
    /// A refusal not kept: the database is unreachable and [`MAX_PENDING_REFUSALS`](super::MAX_PENDING_REFUSALS) refusals
    /// are queued already.
    Dropped,
}

/// One page of the log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for AuditEntry {
    /// Reads a row of `audit_log` selected with the store's columns.
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let repeat_count: i64 = row.try_get("repeat_count")?;
        Ok(Self {
            id: row.try_get("id")?,
            at: from_ms(row.try_get("at_ms")?),
            record: NewEntry {
                role: parse_column(row, "role")?,
                action: row.try_get("action")?,
                arguments: row.try_get("arguments")?,
                outcome: parse_column(row, "outcome")?,
                result: row.try_get("result")?,
                client: row.try_get("client")?,
            },
            count: u64::try_from(repeat_count).unwrap_or(1).max(1),
            last_at: row.try_get::<Option<i64>, _>("last_at_ms")?.map(from_ms),
        })
    }
}

/// A text column holding one of a kind of names.
fn parse_column<T>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr<Err = leasewatch_types::UnknownName>,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(err),
    })
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_on_a_character_boundary_and_marked() {
        let mut short = "pause".to_owned();
        truncate_field(&mut short);
        assert_eq!(short, "pause");
        let mut long = "é".repeat(MAX_FIELD_BYTES);
        truncate_field(&mut long);
        assert!(long.len() <= MAX_FIELD_BYTES, "{}", long.len());
        assert!(long.ends_with('…'));
        assert!(long.trim_end_matches('…').chars().all(|c| c == 'é'));
    }
}
