//! The command line's subcommands: `status`, `leases`, `runs` and `cleanup` ask a running
//! server over its HTTP API, with the token from `LEASEWATCH_TOKEN`, and print a table (or
//! with `--json` the server's JSON) on stdout. Failures are one line on stderr, and the exit
//! status says which kind ([`Exit`]).
//!
//! - `args`: the command line (the server's `--demo`, or a subcommand with its flags).
//! - `client`: the server's address and the token from the environment; the requests.
//! - `table`: aligned tables that fit the terminal.
//! - `view`: what each subcommand reads from the answers, and its tables.

mod args;
mod client;
mod table;
mod view;

use std::{
    io::{self, Write as _},
    process::ExitCode,
};

pub use args::{Command, HELP, Invocation, RunsFilter, Subcommand, UsageError, parse};
pub use client::{SettingError, TOKEN_VAR, URL_VAR};

use client::{ACTION_TIMEOUT, Answer, Client, Settings};
use leasewatch_engine::history::StoredRun;
use leasewatch_types::RunsQuery;
use serde::de::DeserializeOwned;

use crate::api::{RUNS_PATH, STATUS_PATH};

/// The exit statuses, for scripts; `--help` and the README list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Success = 0,
    /// The server failed (5xx) or answered unexpectedly (also: the server stopped with an
    /// error).
    Failed = 1,
    /// Bad arguments or settings; for the server, a refused configuration (as `sysexits`'
    /// EX_USAGE).
    Usage = 2,
    /// The server cannot be reached, or did not answer in time.
    Unreachable = 3,
    /// The token was refused, may not do this, or is locked out after wrong tokens.
    Unauthorized = 4,
    /// `status` only: a critical recommendation is showing, for a check to alert on.
    Critical = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Why a subcommand did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// `LEASEWATCH_URL` or `LEASEWATCH_TOKEN`.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// No connection (refused, no route, no such host, TLS, reset).
    #[error("cannot reach the server at {url} ({URL_VAR}): {reason}")]
    Unreachable {
        /// The server's address.
        url: String,
        /// The system's words.
        reason: String,
    },
    /// Connected (or not) but no answer in time.
    #[error("the server at {url} did not answer within {secs} s")]
    TimedOut {
        /// The server's address.
        url: String,
        /// The time allowed.
        secs: u64,
    },
    /// The server's `{"error": {"code", "message"}}` with a 4xx or 5xx.
    #[error("{message} (HTTP {status} {code})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Something that is not Leasewatch's API answering, or an answer that does not fit.
    #[error("unexpected answer from {url}: {what}")]
    Unexpected {
        /// The server's address.
        url: String,
        /// What was wrong with it.
        what: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// Stdout could not be written (a closed pipe is not an error).
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl CliError {
    /// The exit status a script sees.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage(_) | Self::Setting(_) => Exit::Usage,
            Self::Unreachable { .. } | Self::TimedOut { .. } => Exit::Unreachable,
            // The server names the argument it refused (a filter value).
            Self::Refused { status: 400, .. } => Exit::Usage,
            Self::Refused {
                status: 401 | 403 | 429,
                ..
            } => Exit::Unauthorized,
            Self::Refused { .. } | Self::Unexpected { .. } | Self::Runtime(_) | Self::Output(_) => {
                Exit::Failed
            }
        }
    }
}

/// Reports `err` as one line on stderr and returns its exit status. Every failure of the
/// command line goes through here.
pub fn fail(err: &CliError) -> ExitCode {
    // Nothing else to tell if stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "leasewatch: {err}");
    err.exit().into()
}

/// Writes the help text to stdout.
pub fn help() -> ExitCode {
    match write_out(HELP) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Runs a subcommand against the server the environment names.
pub fn run(command: &Command) -> ExitCode {
    match execute(command) {
        Ok(exit) => exit.into(),
        Err(err) => fail(&err),
    }
}

/// What a subcommand prints: its output, a note for stderr, and its exit status.
struct Printed {
    out: String,
    note: Option<String>,
    exit: Exit,
}

fn execute(command: &Command) -> Result<Exit, CliError> {
    let settings = Settings::from_lookup(|var| std::env::var(var))?;
    let client = Client::new(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let printed = runtime.block_on(ask(&client, command, width()))?;
    write_out(&printed.out)?;
    if let Some(note) = printed.note {
        let _ = writeln!(io::stderr().lock(), "{note}");
    }
    Ok(printed.exit)
}

async fn ask(client: &Client, command: &Command, width: usize) -> Result<Printed, CliError> {
    let printed = |out: String| Printed {
        out,
        note: None,
        exit: Exit::Success,
    };
    match &command.kind {
        Subcommand::Status => {
            let answer = client.get(STATUS_PATH, "").await?;
            let status: view::Status = read(client, &answer)?;
            let exit = if status.critical() > 0 {
                Exit::Critical
            } else {
                Exit::Success
            };
            let out = if command.json {
                json_line(answer.body)
            } else {
                view::status(&status, width)
            };
            Ok(Printed {
                exit,
                ..printed(out)
            })
        }
        Subcommand::Leases => {
            let answer = client.get(STATUS_PATH, "").await?;
            let status: view::Status = read(client, &answer)?;
            Ok(printed(if command.json {
                // The status' own `leases`, as the server sent them.
                let value: serde_json::Value = read(client, &answer)?;
                json_line(value["leases"].to_string())
            } else {
                view::leases(&status.leases, width)
            }))
        }
        Subcommand::Runs(query) => {
            let answer = client
                .get(RUNS_PATH, &runs_query(query).to_query_string())
                .await?;
            let runs: Vec<StoredRun> = read(client, &answer)?;
            let note = answer.next_before.as_ref().map(|cursor| {
                format!(
                    "more runs: leasewatch {} --before {cursor}",
                    runs_command(query, command.json)
                )
            });
            let out = if command.json {
                json_line(answer.body)
            } else {
                view::runs(&runs, width)
            };
            Ok(Printed {
                note,
                ..printed(out)
            })
        }
        Subcommand::Cleanup { dry_run } => {
            let body = serde_json::json!({"action": "cleanup", "dry_run": dry_run});
            let answer = client.post(STATUS_PATH, &body, ACTION_TIMEOUT).await?;
            let acted: view::Acted = read(client, &answer)?;
            Ok(printed(if command.json {
                json_line(answer.body)
            } else {
                view::acted(&acted, width)
            }))
        }
    }
}

/// The runs endpoint's query for `filter`: the server's own query type, so the names agree.
fn runs_query(filter: &RunsFilter) -> RunsQuery {
    RunsQuery {
        task: filter.task.clone(),
        outcome: filter.outcome.map(|outcome| outcome.to_string()),
        limit: filter.limit,
        before: filter.before.clone(),
        ..RunsQuery::default()
    }
}

/// `runs` with `query`'s filters (not its cursor), for the note that gives the next page.
fn runs_command(query: &RunsFilter, json: bool) -> String {
    let mut command = "runs".to_owned();
    if let Some(task) = &query.task {
        command.push_str(&format!(" --task {task}"));
    }
    if let Some(outcome) = query.outcome {
        command.push_str(&format!(" --outcome {outcome}"));
    }
    if let Some(limit) = query.limit {
        command.push_str(&format!(" --limit {limit}"));
    }
    if json {
        command.push_str(" --json");
    }
    command
}

/// The answer's body as `T`, or an error saying it does not fit.
fn read<T: DeserializeOwned>(client: &Client, answer: &Answer) -> Result<T, CliError> {
    serde_json::from_str(&answer.body).map_err(|err| CliError::Unexpected {
        url: client.base().to_string(),
        what: format!("the answer does not fit: {err}"),
    })
}

/// One JSON document on one line.
fn json_line(mut body: String) -> String {
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body
}

/// The width tables fit: `COLUMNS` when exported (40 or more), otherwise 80.
fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse::<usize>().ok())
        .filter(|columns| *columns >= 40)
        .unwrap_or(table::DEFAULT_WIDTH)
}

/// Writes `out` to stdout. A reader that went away (`| head`) is not an error: it has what
/// it wanted.
fn write_out(out: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Output(err)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use leasewatch_types::RunOutcome;

    use super::*;

    #[test]
    fn each_failure_has_its_exit_status() {
        let refused = |status| CliError::Refused {
            status,
            code: "x".into(),
            message: "y".into(),
        };
        assert_eq!(refused(400).exit(), Exit::Usage);
        assert_eq!(refused(401).exit(), Exit::Unauthorized);
        assert_eq!(refused(403).exit(), Exit::Unauthorized);
        assert_eq!(refused(429).exit(), Exit::Unauthorized);
        assert_eq!(refused(409).exit(), Exit::Failed);
        assert_eq!(refused(503).exit(), Exit::Failed);
        assert_eq!(
            CliError::from(SettingError::MissingToken).exit(),
            Exit::Usage
        );
        let unreachable = CliError::Unreachable {
            url: "http://127.0.0.1:1/".into(),
            reason: "Connection refused".into(),
        };
        assert_eq!(unreachable.exit(), Exit::Unreachable);
        assert_eq!(
            unreachable.to_string(),
            "cannot reach the server at http://127.0.0.1:1/ (LEASEWATCH_URL): Connection refused"
        );
    }

    #[test]
    fn the_next_page_note_repeats_the_filters() {
        let query = RunsFilter {
            task: Some("health_check".into()),
            outcome: Some(RunOutcome::Failed),
            limit: Some(5),
            before: Some("old".into()),
        };
        assert_eq!(
            runs_command(&query, true),
            "runs --task health_check --outcome failed --limit 5 --json"
        );
        assert_eq!(
            runs_query(&query).to_query_string(),
            "task=health_check&outcome=failed&limit=5&before=old"
        );
    }
}
