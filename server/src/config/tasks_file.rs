//! The task file (`LEASEWATCH_TASKS`): the operator's own SQL tasks, and whether the built-in
//! auction tasks run. Read once at start-up and checked whole: a refusal names the file, the
//! line, the field and what is allowed, in one line, like a refused environment variable.
//! `docs/TASKS.md` is the reference.

use std::{collections::BTreeMap, fmt, io::Read, ops::Range, path::Path, time::Duration};

use leasewatch_engine::{
    RetryPolicy,
    governor::Priority,
    lease::RunLimits,
    tasks::{
        Schedule, ScheduleError,
        declared::{
            DeclaredError, DeclaredTask, DeclaredTasks, MAX_STATEMENT_LEN, MAX_STATEMENTS,
            MAX_TASKS, SqlError, Statement,
        },
    },
};
use leasewatch_types::Route;
use serde::Deserialize;
use toml::Spanned;

use super::env::{format_duration, parse_duration};

/// The largest task file read, in bytes.
pub const MAX_FILE_LEN: u64 = 256 * 1024;

/// What a task file declares.
#[derive(Debug, Clone)]
pub struct TaskFile {
    /// The declared tasks, checked.
    pub tasks: DeclaredTasks,
    /// Whether the built-in auction tasks run.
    pub builtin_tasks: bool,
}

/// A refused task file: where, which field, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TaskFileError {
    /// The file as given.
    pub file: String,
    /// The line (from 1) the refusal points at, when it points at one.
    pub line: Option<usize>,
    /// The field, as `task "name", field every` or `field builtin_tasks`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl TaskFileError {
    /// Where in the file and what: `line 7, task "purge", field every: ...`, without the
    /// file's name.
    pub fn located(&self) -> String {
        let mut out = String::new();
        if let Some(line) = self.line {
            out.push_str(&format!("line {line}, "));
        }
        if !self.field.is_empty() {
            out.push_str(&format!("{}: ", self.field));
        }
        out.push_str(&self.message);
        out
    }
}

impl fmt::Display for TaskFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.located())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    builtin_tasks: Option<Spanned<bool>>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Spanned<String>,
    every: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    sql: Spanned<RawSql>,
    timeout: Option<Spanned<String>>,
    priority: Option<Spanned<i64>>,
    overlap: Option<Spanned<bool>>,
    target: Option<Spanned<String>>,
    retry: Option<Spanned<RawRetry>>,
}

/// One statement, or a list of them.
enum RawSql {
    One(String),
    Many(Vec<Spanned<String>>),
}

/// By hand rather than `untagged`: an untagged enum buffers its input, which loses the spans
/// that give each statement of a list its line.
impl<'de> Deserialize<'de> for RawSql {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawSql;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SQL_SHAPE)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawSql, E> {
                Ok(RawSql::One(text.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawSql, A::Error> {
                let mut list = Vec::new();
                // Bounded: a list longer than allowed is refused as soon as it is.
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    if list.len() == MAX_STATEMENTS {
                        return Err(serde::de::Error::custom(format!(
                            "holds more than {MAX_STATEMENTS} statements; at most \
                             {MAX_STATEMENTS} are allowed"
                        )));
                    }
                    list.push(item);
                }
                Ok(RawSql::Many(list))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What `sql` must be.
const SQL_SHAPE: &str = "a string (one statement) or a list of strings (statements run in order)";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<Spanned<i64>>,
    base_delay: Option<Spanned<String>>,
    max_delay: Option<Spanned<String>>,
    factor: Option<Spanned<i64>>,
}

/// Reads and checks the task file at `path`; `retry` is the policy a task without its own
/// retry table keeps (its unset fields are taken from it).
pub fn load(path: &Path, retry: RetryPolicy) -> Result<TaskFile, TaskFileError> {
    let file = path.display().to_string();
    let fail = |message: String| TaskFileError {
        file: file.clone(),
        line: None,
        field: String::new(),
        message,
    };
    let opened = std::fs::File::open(path).map_err(|err| fail(format!("cannot be read: {err}")))?;
    let mut text = String::new();
    // One byte more than allowed tells a file at the limit from a longer one.
    opened
        .take(MAX_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|err| fail(format!("cannot be read as UTF-8 text: {err}")))?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(fail(format!(
            "is larger than {} KiB; a task file is a few statements per task",
            MAX_FILE_LEN / 1024
        )));
    }
    parse(&file, &text, retry)
}

/// Checks `text`, the contents of `file`.
pub fn parse(file: &str, text: &str, retry: RetryPolicy) -> Result<TaskFile, TaskFileError> {
    let source = Source { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|err| source.toml_error(&err))?;
    if raw.task.len() > MAX_TASKS {
        let extra = &raw.task[MAX_TASKS];
        return Err(source.error(
            extra.span(),
            String::new(),
            format!(
                "{} tasks are declared; at most {MAX_TASKS} are allowed",
                raw.task.len()
            ),
        ));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut tasks = Vec::with_capacity(raw.task.len());
    let mut name_spans = Vec::with_capacity(raw.task.len());
    for raw_task in &raw.task {
        let task = source.task(raw_task.get_ref(), raw_task.span(), retry, &mut seen)?;
        name_spans.push(raw_task.get_ref().name.span());
        tasks.push(task);
    }
    let tasks = DeclaredTasks::new(tasks).map_err(|err| {
        // Each task was checked on its own above; what is left is about two of them.
        let (span, name) = match &err {
            DeclaredError::LockClash { second, .. } => raw
                .task
                .iter()
                .zip(&name_spans)
                .find(|(t, _)| t.get_ref().name.get_ref() == second)
                .map_or((0..0, second.clone()), |(_, span)| {
                    (span.clone(), second.clone())
                }),
            _ => (0..0, String::new()),
        };
        source.error(span, task_field(&name, "name"), err.to_string())
    })?;
    Ok(TaskFile {
        tasks,
        builtin_tasks: raw.builtin_tasks.is_none_or(|b| *b.get_ref()),
    })
}

/// `task "name", field f`, as a refusal names a task's field.
fn task_field(task: &str, field: &str) -> String {
    if task.is_empty() {
        format!("field {field}")
    } else {
        format!("task {task:?}, field {field}")
    }
}

/// The file being checked, to turn byte offsets into lines.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].matches('\n').count() + 1
    }

    fn error(&self, span: Range<usize>, field: String, message: String) -> TaskFileError {
        TaskFileError {
            file: self.file.to_owned(),
            line: (span != (0..0) || self.text.is_empty()).then(|| self.line(span.start)),
            field,
            message,
        }
    }

    /// A refusal from the TOML reader (syntax, an unknown field, a wrong type): its line, and
    /// the key written on that line as the field.
    fn toml_error(&self, err: &toml::de::Error) -> TaskFileError {
        let span = err.span().unwrap_or(0..0);
        let line = self.line(span.start);
        let text_line = self.text.lines().nth(line - 1).unwrap_or("");
        let key = text_line
            .split_once('=')
            .map(|(key, _)| key.trim())
            .filter(|key| !key.is_empty() && !key.starts_with('['))
            .map(|key| format!("field {key}"))
            .unwrap_or_default();
        // serde names Rust's integer type; the reader wants the kind of value.
        let message = err
            .message()
            .replace('\n', " ")
            .replace("expected i64", "expected a whole number");
        TaskFileError {
            file: self.file.to_owned(),
            line: err.span().map(|_| line),
            field: key,
            message,
        }
    }

    fn task(
        &self,
        raw: &RawTask,
        span: Range<usize>,
        retry: RetryPolicy,
        seen: &mut BTreeMap<String, usize>,
    ) -> Result<DeclaredTask, TaskFileError> {
        let name = raw.name.get_ref().clone();
        let at = |span: Range<usize>, field: &str, message: String| {
            self.error(span, task_field(&name, field), message)
        };
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(self.error(
                raw.name.span(),
                "field name".to_owned(),
                format!(
                    "{:?} is not allowed: a task name is 1 to 64 characters of a-z, 0-9 and _",
                    name.chars().take(80).collect::<String>()
                ),
            ));
        }
        if leasewatch_types::task::RESERVED.contains(&name.as_str()) {
            return Err(at(
                raw.name.span(),
                "name",
                format!(
                    "is a built-in task's name; a declared task takes another (reserved are {})",
                    leasewatch_types::task::RESERVED.join(", ")
                ),
            ));
        }
        let line = self.line(raw.name.span().start);
        if let Some(first) = seen.insert(name.clone(), line) {
            return Err(at(
                raw.name.span(),
                "name",
                format!("is declared twice (first on line {first}); task names must differ"),
            ));
        }

        let schedule = match (&raw.every, &raw.cron) {
            (Some(every), None) => {
                let d = self.duration(every, &name, "every", secs(1), secs(7 * 86_400))?;
                Schedule::every(d)
            }
            (None, Some(cron)) => Schedule::cron(cron.get_ref()).map_err(|err| {
                at(
                    cron.span(),
                    "cron",
                    match err {
                        ScheduleError::UnknownZone(zone) => format!(
                            "CRON_TZ names an unknown time zone {zone:?}: use an IANA name such as \
                             Europe/Berlin, America/New_York or UTC"
                        ),
                        other => format!(
                            "must be a cron expression of five fields, minute hour day-of-month \
                             month day-of-week (like 30 2 * * * or */15 * * * 1-5), optionally \
                             after CRON_TZ=Area/City and a space ({other})"
                        ),
                    },
                )
            })?,
            (Some(_), Some(cron)) => {
                return Err(at(
                    cron.span(),
                    "cron",
                    "must not be set together with every: a task runs on an interval or on a \
                     cron schedule, so keep one of them"
                        .to_owned(),
                ));
            }
            (None, None) => {
                return Err(at(
                    span,
                    "every",
                    "a task needs a schedule: every = \"15m\" (an interval) or cron = \"30 2 * * *\" \
                     (optionally after CRON_TZ=Area/City)"
                        .to_owned(),
                ));
            }
        };

        let texts: Vec<(String, Range<usize>)> = match raw.sql.get_ref() {
            RawSql::One(text) => vec![(text.clone(), raw.sql.span())],
            RawSql::Many(list) => list
                .iter()
                .map(|s| (s.get_ref().clone(), s.span()))
                .collect(),
        };
        if texts.is_empty() {
            return Err(at(
                raw.sql.span(),
                "sql",
                "must hold at least one statement".to_owned(),
            ));
        }
        if texts.len() > MAX_STATEMENTS {
            return Err(at(
                raw.sql.span(),
                "sql",
                format!(
                    "holds {} statements; at most {MAX_STATEMENTS} are allowed",
                    texts.len()
                ),
            ));
        }
        let mut statements = Vec::with_capacity(texts.len());
        for (text, span) in &texts {
            if text.len() > MAX_STATEMENT_LEN {
                return Err(at(
                    span.clone(),
                    "sql",
                    format!(
                        "a statement of {} bytes is too long; at most {} KiB are allowed",
                        text.len(),
                        MAX_STATEMENT_LEN / 1024
                    ),
                ));
            }
            let statement = Statement::parse(text).map_err(|err| {
                let line = self.sql_line(span, text, &err);
                TaskFileError {
                    file: self.file.to_owned(),
                    line: Some(line),
                    field: task_field(&name, "sql"),
                    message: err.to_string(),
                }
            })?;
            statements.push(statement);
        }

        let timeout = raw
            .timeout
            .as_ref()
            .map(|t| self.duration(t, &name, "timeout", secs(1), secs(3600)))
            .transpose()?;
        let priority = match &raw.priority {
            None => Priority::default(),
            Some(p) => match u8::try_from(*p.get_ref()) {
                Ok(n) if n <= 9 => Priority(n),
                _ => {
                    return Err(at(
                        p.span(),
                        "priority",
                        format!(
                            "{} is not allowed: must be a whole number from 0 to 9 (higher goes \
                             first when the lease limit is full)",
                            p.get_ref()
                        ),
                    ));
                }
            },
        };
        let route = match &raw.target {
            None => Route::Primary,
            Some(target) => target.get_ref().parse::<Route>().map_err(|_| {
                at(
                    target.span(),
                    "target",
                    format!(
                        "{:?} is not allowed: \"primary\" (DATABASE_URL: writes and reads) or \
                         \"replica\" (read-only, on a replica in DATABASE_REPLICA_URLS)",
                        target.get_ref().chars().take(80).collect::<String>()
                    ),
                )
            })?,
        };
        let retry = raw
            .retry
            .as_ref()
            .map(|r| self.retry(r.get_ref(), &name, retry))
            .transpose()?;
        Ok(DeclaredTask {
            name,
            schedule,
            statements,
            limits: RunLimits { timeout, priority },
            retry,
            overlap: raw.overlap.as_ref().is_some_and(|o| *o.get_ref()),
            route,
        })
    }

    /// The line of a refused statement: the string's first line, plus the lines of the
    /// statement before what the refusal points at (a multi-line string's first line break,
    /// right after its opening quotes, is not part of its text).
    fn sql_line(&self, span: &Range<usize>, text: &str, err: &SqlError) -> usize {
        let opened = &self.text[span.start.min(self.text.len())..];
        let skips_break = (opened.starts_with("'''") || opened.starts_with("\"\"\""))
            && (opened[3..].starts_with('\n') || opened[3..].starts_with("\r\n"));
        let within = err.offset().map_or(0, |offset| {
            text[..offset.min(text.len())].matches('\n').count()
        });
        self.line(span.start) + usize::from(skips_break) + within
    }

    fn duration(
        &self,
        value: &Spanned<String>,
        task: &str,
        field: &str,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, TaskFileError> {
        match parse_duration(value.get_ref().trim()) {
            Some(d) if (min..=max).contains(&d) => Ok(d),
            _ => Err(self.error(
                value.span(),
                task_field(task, field),
                format!(
                    "{:?} is not allowed: must be a duration from {} to {}, written like 500ms, \
                     30s, 15m, 1h or 1h30m",
                    value.get_ref().chars().take(80).collect::<String>(),
                    format_duration(min),
                    format_duration(max)
                ),
            )),
        }
    }

    fn whole(
        &self,
        value: &Spanned<i64>,
        task: &str,
        field: &str,
        range: Range<u32>,
        what: &str,
    ) -> Result<u32, TaskFileError> {
        u32::try_from(*value.get_ref())
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                self.error(
                    value.span(),
                    task_field(task, field),
                    format!(
                        "{} is not allowed: must be a whole number from {} to {} ({what})",
                        value.get_ref(),
                        range.start,
                        range.end - 1
                    ),
                )
            })
    }

    fn retry(
        &self,
        raw: &RawRetry,
        task: &str,
        defaults: RetryPolicy,
    ) -> Result<RetryPolicy, TaskFileError> {
        let max_retries = raw
            .attempts
            .as_ref()
            .map(|a| {
                self.whole(
                    a,
                    task,
                    "retry.attempts",
                    1..102,
                    "attempts in all, the first included",
                )
                .map(|n| n - 1)
            })
            .transpose()?
            .unwrap_or(defaults.max_retries);
        let factor = raw
            .factor
            .as_ref()
            .map(|f| self.whole(f, task, "retry.factor", 1..11, "each delay's growth"))
            .transpose()?
            .unwrap_or(defaults.factor);
        let base_delay = raw
            .base_delay
            .as_ref()
            .map(|d| {
                self.duration(
                    d,
                    task,
                    "retry.base_delay",
                    Duration::from_millis(10),
                    secs(3600),
                )
            })
            .transpose()?
            .unwrap_or(defaults.base_delay);
        let max_delay = match &raw.max_delay {
            Some(d) => {
                let max = self.duration(
                    d,
                    task,
                    "retry.max_delay",
                    Duration::from_millis(10),
                    secs(86_400),
                )?;
                if max < base_delay {
                    return Err(self.error(
                        d.span(),
                        task_field(task, "retry.max_delay"),
                        format!(
                            "must be at least retry.base_delay ({})",
                            format_duration(base_delay)
                        ),
                    ));
                }
                max
            }
            None => defaults.max_delay.max(base_delay),
        };
        Ok(RetryPolicy {
            max_retries,
            base_delay,
            factor,
            max_delay,
        })
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
