//! The command line, read by hand: the server's one flag, or a subcommand with its flags.
//! Each refusal is one line that names the argument and what is allowed.

use std::ffi::OsString;

use leasewatch_engine::query::MAX_PAGE;
use leasewatch_types::RunOutcome;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// No subcommand: start the server.
    Serve {
        /// `--demo`: seed auctions and shorten the task intervals.
        demo: bool,
    },
    /// `--help`, `-h` or `help`, anywhere.
    Help,
    /// A subcommand, talking to a running server.
    Command(Command),
}

/// A subcommand and the flags every one takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Which, with its own flags.
    pub kind: Subcommand,
    /// `--json`: print the server's JSON instead of a table.
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subcommand {
    /// The scheduler, the tasks, the pool and the recommendations.
    Status,
    /// The leases held now.
    Leases,
    /// Finished runs, newest first.
    Runs(RunsFilter),
    /// Revoke stale leases (or only report what would be revoked).
    Cleanup {
        /// `--dry-run`.
        dry_run: bool,
    },
}

/// `runs`' filters, checked as far as the command line can (the server checks the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsFilter {
    /// `--task NAME`.
    pub task: Option<String>,
    /// `--outcome O`, or `--failed`.
    pub outcome: Option<RunOutcome>,
    /// `--limit N`, 1 to [`MAX_PAGE`]; the server's default (50) when absent.
    pub limit: Option<u32>,
    /// `--before CURSOR`: the page after the one that gave this cursor.
    pub before: Option<String>,
}

/// A command line that cannot be run, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A first argument that is neither the server's flag nor a subcommand.
    #[error(
        "unknown argument {0:?}: leasewatch takes --demo, or one of the subcommands {SUBCOMMANDS} (see leasewatch --help)"
    )]
    UnknownArgument(String),
    /// A subcommand that does not exist.
    #[error("unknown subcommand {0:?}: the subcommands are {SUBCOMMANDS} (see leasewatch --help)")]
    UnknownSubcommand(String),
    /// A flag the subcommand does not take.
    #[error("{command}: unknown flag {flag:?}; it takes {allowed}")]
    UnknownFlag {
        /// The subcommand.
        command: &'static str,
        /// What was given.
        flag: String,
        /// Its flags.
        allowed: &'static str,
    },
    /// A flag that needs a value, without one.
    #[error("{command}: {flag} needs a value: {what}")]
    MissingValue {
        /// The subcommand.
        command: &'static str,
        /// The flag.
        flag: &'static str,
        /// What the value is.
        what: &'static str,
    },
    /// A value that does not fit its flag.
    #[error("{command}: {flag} {given:?} is not allowed: {allowed}")]
    BadValue {
        /// The subcommand.
        command: &'static str,
        /// The flag.
        flag: &'static str,
        /// What was given.
        given: String,
        /// What is allowed.
        allowed: String,
    },
    /// The same flag twice, or two that contradict each other.
    #[error("{command}: {problem}")]
    Conflict {
        /// The subcommand.
        command: &'static str,
        /// What clashes.
        problem: String,
    },
    /// A token on the command line, where `ps` and shell history would show it.
    #[error(
        "{0}: the token is not taken as an argument (ps and shell history would show it); set LEASEWATCH_TOKEN"
    )]
    TokenArgument(&'static str),
    /// An argument that is not UTF-8 (no flag or value here can be).
    #[error("an argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
}

const SUBCOMMANDS: &str = "status, leases, runs and cleanup";

/// The help text: usage, subcommands, environment, exit statuses.
pub const HELP: &str = "\
Leasewatch runs background database tasks through a connection lease manager and
serves a dashboard. With no subcommand it starts the server; a subcommand asks a
running server.

usage:
  leasewatch [--demo]              start the server; --demo seeds auctions and
                                   shortens the task intervals (configuration:
                                   the environment and .env, see the README)
  leasewatch status [--json]       scheduler, pool, tasks, recommendations
  leasewatch leases [--json]       the leases held now
  leasewatch runs [--json] [--task NAME] [--failed | --outcome O]
                  [--limit N] [--before CURSOR]
                                   finished runs, newest first
  leasewatch cleanup [--dry-run] [--json]
                                   revoke stale leases (operator token);
                                   --dry-run only reports what it would revoke

flags:
  --json         print the server's JSON, one document, instead of a table
  --task NAME    runs of this task only
  --outcome O    runs that ended so: succeeded, skipped, failed or cancelled
  --failed       the same as --outcome failed
  --limit N      at most N runs, 1 to 500 (default 50)
  --before C     the next page: the cursor the previous page printed

environment (read by the subcommands; never .env):
  LEASEWATCH_URL    the server's http:// or https:// address
                    (default http://127.0.0.1:3000)
  LEASEWATCH_TOKEN  the operator or viewer token, sent as a bearer token; never
                    printed, and not taken as an argument (ps would show it)
  COLUMNS           the width tables fit, when exported (default 80)

exit status:
  0  done
  1  the server failed (5xx) or answered unexpectedly (for the server: it
     stopped on an error)
  2  bad arguments or settings (for the server: a refused configuration)
  3  the server cannot be reached, or did not answer in time
  4  the token was refused (401), may not do this (403), or is locked out (429)
  5  status only: a critical recommendation is showing
";

/// Reads the arguments after the program's name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, UsageError> {
    let args = args
        .into_iter()
        .map(|arg| arg.into_string().map_err(UsageError::NotUtf8))
        .collect::<Result<Vec<String>, _>>()?;
    if args.iter().any(|a| a == "-h" || a == "--help") || args.first().is_some_and(|a| a == "help")
    {
        return Ok(Invocation::Help);
    }
    let Some((first, rest)) = args.split_first() else {
        return Ok(Invocation::Serve { demo: false });
    };
    match first.as_str() {
        "status" => command(rest, Flags::new("status", "--json"), |_| {
            Ok(Subcommand::Status)
        }),
        "leases" => command(rest, Flags::new("leases", "--json"), |_| {
            Ok(Subcommand::Leases)
        }),
        "cleanup" => command(
            rest,
            Flags::new("cleanup", "--dry-run and --json"),
            |flags| {
                Ok(Subcommand::Cleanup {
                    dry_run: flags.switch("--dry-run")?,
                })
            },
        ),
        "runs" => command(
            rest,
            Flags::new(
                "runs",
                "--task NAME, --failed, --outcome O, --limit N, --before CURSOR and --json",
            ),
            runs,
        ),
        // The server's own flag, alone as before.
        "--demo" => match rest.first() {
            None => Ok(Invocation::Serve { demo: true }),
            Some(extra) => Err(UsageError::UnknownArgument(extra.clone())),
        },
        other if other.starts_with('-') => Err(UsageError::UnknownArgument(other.to_owned())),
        other => Err(UsageError::UnknownSubcommand(other.to_owned())),
    }
}

fn runs(flags: &mut Flags) -> Result<Subcommand, UsageError> {
    let command = flags.command;
    let task = flags.value("--task", "a task name")?;
    let failed = flags.switch("--failed")?;
    let outcome = flags
        .value("--outcome", "succeeded, skipped, failed or cancelled")?
        .map(|given| {
            given
                .parse::<RunOutcome>()
                .map_err(|err| UsageError::BadValue {
                    command,
                    flag: "--outcome",
                    given,
                    allowed: format!("the outcomes are {}", err.allowed),
                })
        })
        .transpose()?;
    let outcome = match (failed, outcome) {
        (true, Some(other)) if other != RunOutcome::Failed => {
            return Err(UsageError::Conflict {
                command,
                problem: format!("--failed and --outcome {other} contradict each other"),
            });
        }
        (true, _) => Some(RunOutcome::Failed),
        (false, outcome) => outcome,
    };
    let limit = flags
        .value("--limit", "a number of runs, 1 to 500")?
        .map(|given| match given.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(UsageError::BadValue {
                command,
                flag: "--limit",
                given,
                allowed: format!("a whole number from 1 to {MAX_PAGE}"),
            }),
        })
        .transpose()?;
    let before = flags.value("--before", "the cursor a previous page printed")?;
    Ok(Subcommand::Runs(RunsFilter {
        task,
        outcome,
        limit,
        before,
    }))
}

/// Reads a subcommand's flags with `read`, then refuses whatever is left.
fn command(
    rest: &[String],
    mut flags: Flags,
    read: impl FnOnce(&mut Flags) -> Result<Subcommand, UsageError>,
) -> Result<Invocation, UsageError> {
    flags.split(rest)?;
    let json = flags.switch("--json")?;
    let kind = read(&mut flags)?;
    if let Some((flag, _)) = flags.given.first() {
        return Err(UsageError::UnknownFlag {
            command: flags.command,
            flag: flag.clone(),
            allowed: flags.allowed,
        });
    }
    Ok(Invocation::Command(Command { kind, json }))
}

/// A subcommand's arguments as `(flag, value)` pairs, taken out as they are read.
struct Flags {
    command: &'static str,
    allowed: &'static str,
    given: Vec<(String, Option<String>)>,
}

/// The flags that take a value (`--limit 5` and `--limit=5` both work).
const WITH_VALUE: &[&str] = &["--task", "--outcome", "--limit", "--before"];

impl Flags {
    fn new(command: &'static str, allowed: &'static str) -> Self {
        Self {
            command,
            allowed,
            given: Vec::new(),
        }
    }

    fn split(&mut self, rest: &[String]) -> Result<(), UsageError> {
        let mut args = rest.iter();
        while let Some(arg) = args.next() {
            // Refused before anything else, so the value that follows is never quoted back.
            if arg == "--token" || arg.starts_with("--token=") {
                return Err(UsageError::TokenArgument(self.command));
            }
            if !arg.starts_with("--") {
                return Err(UsageError::UnknownFlag {
                    command: self.command,
                    flag: arg.clone(),
                    allowed: self.allowed,
                });
            }
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None if WITH_VALUE.contains(&arg.as_str()) => {
                    // A missing value is reported by `value`, which knows what it should be.
                    let value = args.clone().next().filter(|next| !next.starts_with("--"));
                    if value.is_some() {
                        args.next();
                    }
                    (arg.clone(), value.cloned())
                }
                None => (arg.clone(), None),
            };
            if self.given.iter().any(|(seen, _)| *seen == flag) {
                return Err(UsageError::Conflict {
                    command: self.command,
                    problem: format!("{flag} is given twice"),
                });
            }
            self.given.push((flag, value));
        }
        Ok(())
    }

    /// Takes out `flag`, which has no value.
    fn switch(&mut self, flag: &'static str) -> Result<bool, UsageError> {
        match self.take(flag) {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some(given)) => Err(UsageError::BadValue {
                command: self.command,
                flag,
                given,
                allowed: "it takes no value".to_owned(),
            }),
        }
    }

    /// Takes out `flag`, which needs a value (`what` it is).
    fn value(
        &mut self,
        flag: &'static str,
        what: &'static str,
    ) -> Result<Option<String>, UsageError> {
        match self.take(flag) {
            None => Ok(None),
            Some(Some(value)) if !value.is_empty() => Ok(Some(value)),
            Some(_) => Err(UsageError::MissingValue {
                command: self.command,
                flag,
                what,
            }),
        }
    }

    fn take(&mut self, flag: &str) -> Option<Option<String>> {
        let at = self.given.iter().position(|(given, _)| given == flag)?;
        Some(self.given.remove(at).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn runs(query: RunsFilter) -> Invocation {
        Invocation::Command(Command {
            kind: Subcommand::Runs(query),
            json: false,
        })
    }

    #[test]
    fn the_server_starts_without_a_subcommand_as_before() {
        assert_eq!(parse_str(&[]), Ok(Invocation::Serve { demo: false }));
        assert_eq!(parse_str(&["--demo"]), Ok(Invocation::Serve { demo: true }));
        assert_eq!(parse_str(&["--help"]), Ok(Invocation::Help));
        assert_eq!(parse_str(&["runs", "-h"]), Ok(Invocation::Help));
        assert_eq!(parse_str(&["help"]), Ok(Invocation::Help));
        assert_eq!(
            parse_str(&["--dmeo"]).unwrap_err().to_string(),
            "unknown argument \"--dmeo\": leasewatch takes --demo, or one of the subcommands \
             status, leases, runs and cleanup (see leasewatch --help)"
        );
        assert_eq!(
            parse_str(&["--demo", "status"]),
            Err(UsageError::UnknownArgument("status".into()))
        );
    }

    #[test]
    fn subcommands_take_their_flags_in_either_form() {
        assert_eq!(
            parse_str(&["status", "--json"]),
            Ok(Invocation::Command(Command {
                kind: Subcommand::Status,
                json: true
            }))
        );
        assert_eq!(
            parse_str(&["cleanup", "--dry-run"]),
            Ok(Invocation::Command(Command {
                kind: Subcommand::Cleanup { dry_run: true },
                json: false
            }))
        );
        assert_eq!(
            parse_str(&[
                "runs",
                "--task",
                "health_check",
                "--outcome=cancelled",
                "--limit",
                "500",
                "--before=abc"
            ]),
            Ok(runs(RunsFilter {
                task: Some("health_check".into()),
                outcome: Some(RunOutcome::Cancelled),
                limit: Some(500),
                before: Some("abc".into()),
            }))
        );
        assert_eq!(
            parse_str(&["runs", "--failed", "--outcome", "failed"]),
            Ok(runs(RunsFilter {
                outcome: Some(RunOutcome::Failed),
                ..RunsFilter::default()
            }))
        );
    }

    #[test]
    fn each_refusal_names_the_problem_in_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["stauts"],
                "unknown subcommand \"stauts\": the subcommands are status, leases, runs and cleanup",
            ),
            (
                &["status", "--jsn"],
                "status: unknown flag \"--jsn\"; it takes --json",
            ),
            (
                &["leases", "extra"],
                "leases: unknown flag \"extra\"; it takes --json",
            ),
            (
                &["status", "--dry-run"],
                "status: unknown flag \"--dry-run\"",
            ),
            (
                &["runs", "--limit", "0"],
                "runs: --limit \"0\" is not allowed: a whole number from 1 to 500",
            ),
            (
                &["runs", "--limit=501"],
                "runs: --limit \"501\" is not allowed: a whole number from 1 to 500",
            ),
            (
                &["runs", "--limit", "ten"],
                "runs: --limit \"ten\" is not allowed",
            ),
            (
                &["runs", "--limit"],
                "runs: --limit needs a value: a number of runs, 1 to 500",
            ),
            (
                &["runs", "--task", "--json"],
                "runs: --task needs a value: a task name",
            ),
            (
                &["runs", "--outcome", "ok"],
                "runs: --outcome \"ok\" is not allowed: the outcomes are succeeded, skipped, failed, cancelled",
            ),
            (
                &["runs", "--failed", "--outcome", "skipped"],
                "runs: --failed and --outcome skipped contradict each other",
            ),
            (
                &["runs", "--limit", "5", "--limit", "6"],
                "runs: --limit is given twice",
            ),
            (
                &["status", "--token", "s3cret-token-value"],
                "status: the token is not taken as an argument",
            ),
            (
                &["cleanup", "--json=yes"],
                "cleanup: --json \"yes\" is not allowed: it takes no value",
            ),
        ];
        for (args, expected) in cases {
            let message = parse_str(args).unwrap_err().to_string();
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{args:?}: {message}");
            assert!(!message.contains("s3cret"), "{args:?}: {message}");
        }
    }

    #[test]
    fn the_help_fits_80_columns_and_gives_the_servers_limit() {
        assert!(HELP.contains(&format!("1 to {MAX_PAGE} (default 50)")));
        for line in HELP.lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
    }
}
