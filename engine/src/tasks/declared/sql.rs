//! A declared statement: its text split around the named parameters (`:now`, `:task`, ...),
//! so each is bound as a value, never formatted into the SQL.
//!
//! The scan knows just enough SQL to tell a parameter from text that only looks like one:
//! string literals (`'...'`, with `''`, and PostgreSQL's `E'...'` with backslash escapes),
//! quoted identifiers (`"..."`, and SQLite's `` `...` ``), comments (`-- ...` and nested
//! `/* ... */`), dollar-quoted bodies (`$$ ... $$`, `$tag$ ... $tag$`) and `::` casts are
//! passed over whole.

use std::fmt;

use crate::db::Backend;

/// A value a declared statement can name. Bound per run, by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Parameter {
    /// `:now`: the run's "now" as a timestamp (PostgreSQL `timestamptz`; SQLite text in UTC,
    /// `YYYY-MM-DD HH:MM:SS.SSS`, which its date functions read).
    Now,
    /// `:now_ms`: the same instant in Unix milliseconds (an integer).
    NowMs,
    /// `:task`: the task's name (text).
    Task,
    /// `:instance`: this process's instance name (text).
    Instance,
    /// `:run_id`: the run's number in this process (an integer).
    RunId,
    /// `:scheduled_at_ms`: when the run was due in Unix milliseconds, or NULL for a manual
    /// run (an integer).
    ScheduledAtMs,
}

impl Parameter {
    /// Every parameter, in the order the reference lists them.
    pub const ALL: [Self; 6] = [
        Self::Now,
        Self::NowMs,
        Self::Task,
        Self::Instance,
        Self::RunId,
        Self::ScheduledAtMs,
    ];

    /// Its name as written after the colon.
    pub fn name(self) -> &'static str {
        match self {
            Self::Now => "now",
            Self::NowMs => "now_ms",
            Self::Task => "task",
            Self::Instance => "instance",
            Self::RunId => "run_id",
            Self::ScheduledAtMs => "scheduled_at_ms",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Every name, as a message lists them.
    pub fn allowed() -> String {
        Self::ALL
            .iter()
            .map(|p| format!(":{}", p.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a statement was refused. Each carries the byte offset in the text it points at, so a
/// caller reading a file can name the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// Nothing but white space and comments.
    #[error("the statement is empty")]
    Empty,
    /// `:name` that is not one of [`Parameter::ALL`].
    #[error("unknown parameter :{name}; allowed are {}", Parameter::allowed())]
    UnknownParameter {
        /// The name after the colon.
        name: String,
        /// Where the colon is.
        offset: usize,
    },
    /// A positional placeholder (`$1`): the values are Leasewatch's to bind.
    #[error(
        "positional placeholder {text} is not allowed: use the named parameters ({})",
        Parameter::allowed()
    )]
    Positional {
        /// The placeholder as written.
        text: String,
        /// Where it is.
        offset: usize,
    },
    /// A `;` followed by more SQL.
    #[error(
        "one statement per entry: the text goes on after a ';' (give each statement its own \
         string in the sql list)"
    )]
    SeveralStatements {
        /// Where the `;` is.
        offset: usize,
    },
    /// A string, identifier, comment or dollar-quoted body that never ends.
    #[error("{what} opened here is never closed")]
    Unterminated {
        /// What was opened.
        what: &'static str,
        /// Where.
        offset: usize,
    },
}

impl SqlError {
    /// The byte offset the error points at, if it points anywhere.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Empty => None,
            Self::UnknownParameter { offset, .. }
            | Self::Positional { offset, .. }
            | Self::SeveralStatements { offset }
            | Self::Unterminated { offset, .. } => Some(*offset),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(Parameter),
}

/// One checked statement of a declared task.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    /// As written (trimmed), for messages.
    source: String,
    pieces: Vec<Piece>,
    /// Whether it only reads (`SELECT`, `VALUES`, `TABLE`, `SHOW`): its row count is not
    /// "rows affected".
    reads: bool,
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Statement").field(&self.source).finish()
    }
}

/// A statement written for one backend: the SQL with its placeholders and what to bind to
/// each, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The SQL with `$1`, `$2`, ...
    pub sql: String,
    /// The value of `$n` is `binds[n - 1]`.
    pub binds: Vec<Parameter>,
}

impl Statement {
    /// Checks `text`: one statement, only known parameters, everything quoted closed.
    pub fn parse(text: &str) -> Result<Self, SqlError> {
        let pieces = scan(text)?;
        let first_word = first_keyword(&pieces);
        if first_word.is_empty() {
            return Err(SqlError::Empty);
        }
        Ok(Self {
            source: text.trim().to_owned(),
            reads: matches!(first_word.as_str(), "select" | "values" | "table" | "show"),
            pieces,
        })
    }

    /// As written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it only reads, so its rows do not count as affected.
    pub fn reads(&self) -> bool {
        self.reads
    }

    /// The parameters it names.
    pub fn parameters(&self) -> impl Iterator<Item = Parameter> + '_ {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Param(p) => Some(*p),
            Piece::Text(_) => None,
        })
    }

    /// The statement for `backend`: each parameter a numbered placeholder, numbered by first
    /// use (a parameter named twice is bound once). On PostgreSQL `:now` is cast from its text
    /// form to `timestamptz`.
    pub fn render(&self, backend: Backend) -> Rendered {
        let mut sql = String::with_capacity(self.source.len() + 16);
        let mut binds: Vec<Parameter> = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => sql.push_str(text),
                Piece::Param(param) => {
                    let n = match binds.iter().position(|b| b == param) {
                        Some(i) => i + 1,
                        None => {
                            binds.push(*param);
                            binds.len()
                        }
                    };
                    match (backend, param) {
                        (Backend::Postgres, Parameter::Now) => {
                            sql.push_str(&format!("CAST(${n} AS timestamptz)"));
                        }
                        _ => sql.push_str(&format!("${n}")),
                    }
                }
            }
        }
        Rendered { sql, binds }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `text` into text and parameters.
fn scan(text: &str) -> Result<Vec<Piece>, SqlError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let mut pieces = Vec::new();
    let mut start = 0; // char index where the current text piece began
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            '\'' => {
                // PostgreSQL's E'...' takes backslash escapes; it is an E right before the
                // quote that is not the end of a longer word.
                let escapes = i >= 1
                    && matches!(at(i - 1), Some('e' | 'E'))
                    && (i < 2 || !at(i - 2).is_some_and(is_ident));
                i = closing(&chars, i, '\'', escapes, "a string literal")?;
            }
            '"' => i = closing(&chars, i, '"', false, "a quoted identifier")?,
            '`' => i = closing(&chars, i, '`', false, "a quoted identifier")?,
            '-' if at(i + 1) == Some('-') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                let opened = i;
                let mut depth = 0u32;
                loop {
                    match (at(i), at(i + 1)) {
                        (Some('/'), Some('*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some('*'), Some('/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(_), _) => i += 1,
                        (None, _) => {
                            return Err(SqlError::Unterminated {
                                what: "a /* comment",
                                offset: offset(opened),
                            });
                        }
                    }
                }
            }
            '$' => {
                // `$tag$` or `$$` opens a dollar-quoted body; `$1` is a positional placeholder;
                // a `$` inside a word (`a$b`) is part of it.
                if i > 0 && at(i - 1).is_some_and(is_ident) {
                    i += 1;
                    continue;
                }
                if at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    let mut end = i + 1;
                    while at(end).is_some_and(|c| c.is_ascii_digit()) {
                        end += 1;
                    }
                    return Err(SqlError::Positional {
                        text: text[offset(i)..offset(end)].to_owned(),
                        offset: offset(i),
                    });
                }
                let mut end = i + 1;
                if at(end).is_some_and(is_ident_start) {
                    while at(end).is_some_and(is_ident) {
                        end += 1;
                    }
                }
                if at(end) != Some('$') {
                    i += 1;
                    continue;
                }
                let tag = &text[offset(i)..offset(end + 1)];
                let body = offset(end + 1);
                match text[body..].find(tag) {
                    Some(found) => {
                        let close = body + found + tag.len();
                        i = chars.partition_point(|&(o, _)| o < close);
                    }
                    None => {
                        return Err(SqlError::Unterminated {
                            what: "a dollar-quoted body",
                            offset: offset(i),
                        });
                    }
                }
            }
            ':' if at(i + 1) == Some(':') => i += 2,
            ':' if at(i + 1).is_some_and(is_ident_start) => {
                let mut end = i + 1;
                while at(end).is_some_and(is_ident) {
                    end += 1;
                }
                let name = &text[offset(i + 1)..offset(end)];
                let param = Parameter::named(name).ok_or_else(|| SqlError::UnknownParameter {
                    name: name.to_owned(),
                    offset: offset(i),
                })?;
                if start < i {
                    pieces.push(Piece::Text(text[offset(start)..offset(i)].to_owned()));
                }
                pieces.push(Piece::Param(param));
                i = end;
                start = end;
            }
            ';' => {
                let rest = &text[offset(i + 1)..];
                if !only_trivia(rest) {
                    return Err(SqlError::SeveralStatements { offset: offset(i) });
                }
                // The statement ends here: a trailing `;` (and what follows) is dropped.
                if start < i {
                    pieces.push(Piece::Text(text[offset(start)..offset(i)].to_owned()));
                }
                return Ok(trimmed(pieces));
            }
            _ => i += 1,
        }
    }
    if start < chars.len() {
        pieces.push(Piece::Text(text[offset(start)..].to_owned()));
    }
    Ok(trimmed(pieces))
}

/// The index just past the quote that closes the one at `open` (a doubled quote is part of
/// the text; with `escapes`, so is a backslash and the character after it).
fn closing(
    chars: &[(usize, char)],
    open: usize,
    quote: char,
    escapes: bool,
    what: &'static str,
) -> Result<usize, SqlError> {
    let mut i = open + 1;
    loop {
        match chars.get(i).map(|&(_, c)| c) {
            None => {
                return Err(SqlError::Unterminated {
                    what,
                    offset: chars[open].0,
                });
            }
            Some('\\') if escapes => i += 2,
            Some(c) if c == quote => {
                if chars.get(i + 1).map(|&(_, c)| c) == Some(quote) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            }
            Some(_) => i += 1,
        }
    }
}

/// Whether `text` holds only white space, comments and semicolons.
fn only_trivia(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            match after.find("*/") {
                Some(end) => rest = &after[end + 2..],
                None => return false,
            }
        } else {
            return false;
        }
    }
}

/// Leading and trailing white space off the text pieces (the statement as sent).
fn trimmed(mut pieces: Vec<Piece>) -> Vec<Piece> {
    if let Some(Piece::Text(first)) = pieces.first_mut() {
        *first = first.trim_start().to_owned();
    }
    if let Some(Piece::Text(last)) = pieces.last_mut() {
        *last = last.trim_end().to_owned();
    }
    pieces.retain(|p| !matches!(p, Piece::Text(t) if t.is_empty()));
    pieces
}

/// The first word of the statement, past comments and opening parentheses, lower-cased.
fn first_keyword(pieces: &[Piece]) -> String {
    let Some(Piece::Text(text)) = pieces.first() else {
        return match pieces.first() {
            Some(Piece::Param(_)) => "?".to_owned(),
            _ => String::new(),
        };
    };
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(|c| is_ident(*c)).collect();
    if word.is_empty() && !rest.is_empty() {
        return "?".to_owned();
    }
    word.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(text: &str) -> Rendered {
        Statement::parse(text).unwrap().render(Backend::Postgres)
    }

    #[test]
    fn parameters_become_numbered_placeholders_bound_once_each() {
        let r = pg("INSERT INTO t (a, b, c) VALUES (:task, :now_ms, :task)");
        assert_eq!(r.sql, "INSERT INTO t (a, b, c) VALUES ($1, $2, $1)");
        assert_eq!(r.binds, [Parameter::Task, Parameter::NowMs]);
        let r = pg("DELETE FROM s WHERE expires_at < :now");
        assert_eq!(
            r.sql,
            "DELETE FROM s WHERE expires_at < CAST($1 AS timestamptz)"
        );
        let sqlite = Statement::parse("DELETE FROM s WHERE at < :now")
            .unwrap()
            .render(Backend::Sqlite);
        assert_eq!(sqlite.sql, "DELETE FROM s WHERE at < $1");
    }

    #[test]
    fn quoted_text_comments_bodies_and_casts_are_left_alone() {
        let text = "SELECT ':task', \":now\", E'\\':now', x::text, $$ :now $$, $f$ :x $f$ \
                    -- :nope\n /* :no /* :nested */ */ a$b, :run_id";
        let r = pg(text);
        assert_eq!(r.binds, [Parameter::RunId]);
        assert!(r.sql.contains("':task'") && r.sql.contains("x::text"));
        assert!(r.sql.ends_with("a$b, $1"), "{}", r.sql);
        assert!(r.sql.contains("$$ :now $$"));
    }

    #[test]
    fn a_doubled_quote_does_not_end_a_literal() {
        let r = pg("SELECT 'it''s :now', :task");
        assert_eq!(r.binds, [Parameter::Task]);
    }

    #[test]
    fn refusals_point_at_what_they_refuse() {
        let err = Statement::parse("SELECT 1\nWHERE x = :nowish").unwrap_err();
        assert_eq!(
            err,
            SqlError::UnknownParameter {
                name: "nowish".into(),
                offset: 19
            }
        );
        assert!(err.to_string().contains(":now, :now_ms, :task"), "{err}");
        assert!(matches!(
            Statement::parse("SELECT $1").unwrap_err(),
            SqlError::Positional { offset: 7, .. }
        ));
        assert_eq!(
            Statement::parse("DELETE FROM a; DELETE FROM b").unwrap_err(),
            SqlError::SeveralStatements { offset: 13 }
        );
        assert!(matches!(
            Statement::parse("SELECT 'open").unwrap_err(),
            SqlError::Unterminated { offset: 7, .. }
        ));
        assert!(matches!(
            Statement::parse("SELECT $$ open").unwrap_err(),
            SqlError::Unterminated { offset: 7, .. }
        ));
        assert_eq!(
            Statement::parse("  -- only\n ; ").unwrap_err(),
            SqlError::Empty
        );
    }

    #[test]
    fn a_trailing_semicolon_and_comment_are_dropped() {
        let r = pg("DELETE FROM t WHERE at < :now_ms; -- done\n");
        assert_eq!(r.sql, "DELETE FROM t WHERE at < $1");
    }

    #[test]
    fn reading_statements_are_told_from_writing_ones() {
        assert!(Statement::parse("  (SELECT 1)").unwrap().reads());
        assert!(Statement::parse("-- c\nvalues (1)").unwrap().reads());
        assert!(
            !Statement::parse("WITH d AS (DELETE FROM t RETURNING 1) SELECT 1")
                .unwrap()
                .reads()
        );
        assert!(!Statement::parse("update t set a = 1").unwrap().reads());
    }
}
