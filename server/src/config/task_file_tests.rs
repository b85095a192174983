//! Task files as an operator writes them: the repository's example, and each kind of mistake
//! with the line it gets (file, line, field, what is allowed).

use std::{collections::HashMap, path::PathBuf, time::Duration};

use leasewatch_engine::{RetryPolicy, governor::Priority, tasks::Schedule};

use super::{Config, tasks_file};

/// The example the README shows and `docs/TASKS.md` points at.
fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/tasks.toml")
}

/// `text` written as `name` in a fresh folder, read back through `LEASEWATCH_TASKS` as the
/// server reads it at start-up; the refusal's one line.
fn refusal(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let shown = path.display().to_string();
    let err = Config::from_lookup(
        |var| (var == "LEASEWATCH_TASKS").then(|| shown.clone()),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("invalid LEASEWATCH_TASKS={shown:?}: ")),
        "the line names the variable and the file: {err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    err.split_once(": ").unwrap().1.to_owned()
}

/// A file of one task with `fields`, after `prefix` lines.
fn one_task(fields: &str) -> String {
    format!("[[task]]\nname = \"purge\"\n{fields}\n")
}

#[test]
fn the_example_file_loads_with_every_kind_of_field() {
    let file = tasks_file::load(&example_path(), RetryPolicy::default()).unwrap();
    assert!(file.builtin_tasks);
    let tasks: Vec<_> = file.tasks.iter().collect();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["purge_sessions", "nightly_rollup", "instance_heartbeat"]
    );
    let purge = tasks[0];
    assert_eq!(purge.schedule, Schedule::every(Duration::from_secs(900)));
    assert_eq!(purge.limits.timeout, Some(Duration::from_secs(30)));
    assert_eq!(purge.limits.priority, Priority(1));
    assert_eq!(purge.retry, None, "the environment's policy");
    assert!(!purge.overlap);
    let rollup = tasks[1];
    assert_eq!(
        rollup.schedule.describe(),
        "cron 30 2 * * * (Europe/Berlin)"
    );
    assert_eq!(rollup.statements.len(), 2);
    assert_eq!(
        rollup.retry,
        Some(RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_secs(30),
            factor: 2,
            max_delay: Duration::from_secs(300),
        })
    );
    assert!(tasks[2].overlap);

    // And through the environment, as start-up reads it.
    let shown = example_path().display().to_string();
    let config = Config::from_lookup(
        |var| (var == "LEASEWATCH_TASKS").then(|| shown.clone()),
        false,
    )
    .unwrap();
    assert_eq!(config.engine.declared.len(), 3);
    assert!(config.engine.builtin_tasks);
}

#[test]
fn the_readme_quotes_the_example_file_whole() {
    let example = std::fs::read_to_string(example_path()).unwrap();
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "README's \"Your own tasks\" shows examples/tasks.toml as it is"
    );
}

#[test]
fn without_a_file_nothing_is_declared_and_the_built_ins_run() {
    let map: HashMap<&str, &str> = HashMap::new();
    let config = Config::from_lookup(|var| map.get(var).map(|v| (*v).to_owned()), false).unwrap();
    assert!(config.engine.declared.is_empty());
    assert!(config.engine.builtin_tasks);
}

#[test]
fn the_built_in_tasks_can_be_switched_off() {
    let file =
        tasks_file::parse("t.toml", "builtin_tasks = false\n", RetryPolicy::default()).unwrap();
    assert!(!file.builtin_tasks);
    assert!(file.tasks.is_empty());
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let err = refusal("syntax.toml", "[[task]]\nname = \"purge\nevery = \"1m\"\n");
    assert!(err.starts_with("line 2, field name: "), "{err}");
}

#[test]
fn an_unknown_field_is_named_with_the_fields_allowed() {
    let err = refusal(
        "unknown.toml",
        &one_task("evry = \"1m\"\nsql = \"SELECT 1\""),
    );
    assert!(
        err.starts_with("line 3, field evry: unknown field `evry`"),
        "{err}"
    );
    assert!(err.contains("`every`") && err.contains("`cron`"), "{err}");
    let err = refusal("top.toml", "builtin = false\n");
    assert!(
        err.starts_with("line 1, field builtin: unknown field `builtin`"),
        "{err}"
    );
    assert!(err.contains("`builtin_tasks`"), "{err}");
}

#[test]
fn a_wrong_type_is_named() {
    let err = refusal(
        "type.toml",
        &one_task("every = \"1m\"\nsql = \"SELECT 1\"\npriority = \"high\""),
    );
    assert_eq!(
        err,
        "line 5, field priority: invalid type: string \"high\", expected a whole number"
    );
    let err = refusal("sqltype.toml", &one_task("every = \"1m\"\nsql = 5"));
    assert!(err.starts_with("line 4, field sql: invalid type: integer `5`, expected a string (one statement) or a list of strings"), "{err}");
}

#[test]
fn a_bad_schedule_is_refused_with_what_is_allowed() {
    let err = refusal(
        "cron.toml",
        &one_task("cron = \"61 * * * *\"\nsql = \"SELECT 1\""),
    );
    assert!(
        err.starts_with("line 3, task \"purge\", field cron: must be a cron expression"),
        "{err}"
    );
    let err = refusal(
        "zone.toml",
        &one_task("cron = \"CRON_TZ=Mars/Olympus 0 * * * *\"\nsql = \"SELECT 1\""),
    );
    assert!(err.contains("unknown time zone \"Mars/Olympus\""), "{err}");
    let err = refusal(
        "both.toml",
        &one_task("every = \"1m\"\ncron = \"0 * * * *\"\nsql = \"SELECT 1\""),
    );
    assert!(
        err.starts_with("line 4, task \"purge\", field cron: must not be set together with every"),
        "{err}"
    );
    let err = refusal("none.toml", &one_task("sql = \"SELECT 1\""));
    assert!(
        err.starts_with("line 1, task \"purge\", field every: a task needs a schedule"),
        "{err}"
    );
}

#[test]
fn a_bad_duration_is_refused_with_its_range() {
    let err = refusal(
        "every.toml",
        &one_task("every = \"often\"\nsql = \"SELECT 1\""),
    );
    assert_eq!(
        err,
        "line 3, task \"purge\", field every: \"often\" is not allowed: must be a duration from \
         1s to 7days, written like 500ms, 30s, 15m, 1h or 1h30m"
    );
    let err = refusal(
        "timeout.toml",
        &one_task("every = \"1m\"\nsql = \"SELECT 1\"\ntimeout = \"2h\""),
    );
    assert!(
        err.starts_with(
            "line 5, task \"purge\", field timeout: \"2h\" is not allowed: must be a \
                         duration from 1s to 1h"
        ),
        "{err}"
    );
    let err = refusal(
        "retry.toml",
        &one_task(
            "every = \"1m\"\nsql = \"SELECT 1\"\nretry = { base_delay = \"1m\", max_delay = \"1s\" }",
        ),
    );
    assert!(
        err.starts_with(
            "line 5, task \"purge\", field retry.max_delay: must be at least \
                         retry.base_delay (1m)"
        ),
        "{err}"
    );
    let err = refusal(
        "attempts.toml",
        &one_task("every = \"1m\"\nsql = \"SELECT 1\"\nretry = { attempts = 0 }"),
    );
    assert!(
        err.contains(
            "field retry.attempts: 0 is not allowed: must be a whole number from 1 to 101"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_parameter_is_refused_at_its_line() {
    let text = one_task(
        "every = \"1m\"\nsql = [\n  \"SELECT 1\",\n  '''\n  DELETE FROM sessions\n  WHERE expires_at < :nowish\n  ''',\n]",
    );
    let err = refusal("param.toml", &text);
    assert_eq!(
        err,
        "line 8, task \"purge\", field sql: unknown parameter :nowish; allowed are :now, :now_ms, \
         :task, :instance, :run_id, :scheduled_at_ms"
    );
    let err = refusal(
        "positional.toml",
        &one_task("every = \"1m\"\nsql = \"DELETE FROM s WHERE id = $1\""),
    );
    assert!(
        err.contains("positional placeholder $1 is not allowed"),
        "{err}"
    );
    let err = refusal(
        "several.toml",
        &one_task("every = \"1m\"\nsql = \"DELETE FROM a; DELETE FROM b\""),
    );
    assert!(err.contains("one statement per entry"), "{err}");
}

#[test]
fn names_must_be_valid_distinct_and_not_built_in() {
    let text = "[[task]]\nname = \"purge\"\nevery = \"1m\"\nsql = \"SELECT 1\"\n\n\
                [[task]]\nname = \"purge\"\nevery = \"2m\"\nsql = \"SELECT 2\"\n";
    assert_eq!(
        refusal("dup.toml", text),
        "line 7, task \"purge\", field name: is declared twice (first on line 2); task names \
         must differ"
    );
    let err = refusal(
        "builtin.toml",
        "[[task]]\nname = \"health_check\"\nevery = \"1m\"\nsql = \"SELECT 1\"\n",
    );
    assert!(
        err.starts_with("line 2, task \"health_check\", field name: is a built-in task's name"),
        "{err}"
    );
    assert!(
        err.contains("status_transitions, auction_monitor, health_check"),
        "{err}"
    );
    let err = refusal(
        "name.toml",
        "[[task]]\nname = \"Purge Sessions\"\nevery = \"1m\"\nsql = \"SELECT 1\"\n",
    );
    assert_eq!(
        err,
        "line 2, field name: \"Purge Sessions\" is not allowed: a task name is 1 to 64 \
         characters of a-z, 0-9 and _"
    );
}

#[test]
fn sizes_are_bounded() {
    let long = format!("SELECT '{}'", "x".repeat(17 * 1024));
    let err = refusal(
        "long.toml",
        &one_task(&format!("every = \"1m\"\nsql = \"{long}\"")),
    );
    assert!(
        err.contains("field sql: a statement of") && err.contains("at most 16 KiB"),
        "{err}"
    );
    let many = vec!["\"SELECT 1\""; 33].join(", ");
    let err = refusal(
        "many.toml",
        &one_task(&format!("every = \"1m\"\nsql = [{many}]")),
    );
    assert!(
        err.contains("field sql: holds more than 32 statements; at most 32"),
        "{err}"
    );
    let tasks: String = (0..65)
        .map(|i| format!("[[task]]\nname = \"t{i}\"\nevery = \"1m\"\nsql = \"SELECT 1\"\n"))
        .collect();
    let err = refusal("tasks.toml", &tasks);
    assert!(err.contains("65 tasks are declared; at most 64"), "{err}");
    let huge = format!("# {}\n", "x".repeat(300 * 1024));
    let err = refusal("huge.toml", &huge);
    assert!(err.contains("larger than 256 KiB"), "{err}");
}

#[test]
fn a_task_targets_the_primary_or_a_replica() {
    let err = refusal(
        "target.toml",
        &one_task("every = \"1m\"\nsql = \"SELECT 1\"\ntarget = \"standby\""),
    );
    assert_eq!(
        err,
        "line 5, task \"purge\", field target: \"standby\" is not allowed: \"primary\" \
         (DATABASE_URL: writes and reads) or \"replica\" (read-only, on a replica in \
         DATABASE_REPLICA_URLS)"
    );
    let replica = one_task("every = \"1m\"\nsql = \"SELECT 1\"\ntarget = \"replica\"");
    // SQLite has no replicas, and no read-only transactions to keep such a task honest.
    assert_eq!(
        refusal("replica.toml", &replica),
        "task \"purge\" has target = \"replica\", which needs a PostgreSQL DATABASE_URL"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.toml");
    std::fs::write(&path, &replica).unwrap();
    let env = HashMap::from([
        ("LEASEWATCH_TASKS", path.display().to_string()),
        ("DATABASE_URL", "postgres://app@db.internal/shop".to_owned()),
    ]);
    let config = Config::from_lookup(|var| env.get(var).cloned(), false).unwrap();
    let task = config.engine.declared.iter().next().unwrap();
    assert_eq!(task.route, leasewatch_types::Route::Replica);
}

#[test]
fn a_missing_file_says_so() {
    let err = Config::from_lookup(
        |var| (var == "LEASEWATCH_TASKS").then(|| "no/such/tasks.toml".to_owned()),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("invalid LEASEWATCH_TASKS=\"no/such/tasks.toml\": cannot be read: "),
        "{err}"
    );
}

#[test]
fn a_missing_field_names_the_task_s_line() {
    let err = refusal(
        "missing.toml",
        "\n[[task]]\nname = \"purge\"\nevery = \"1m\"\n",
    );
    assert!(
        err.starts_with("line 2") && err.contains("missing field `sql`"),
        "{err}"
    );
}

#[test]
fn a_task_s_own_retry_fills_its_gaps_from_the_environment_s() {
    let env = RetryPolicy {
        max_retries: 7,
        base_delay: Duration::from_millis(50),
        factor: 3,
        max_delay: Duration::from_secs(2),
    };
    let file = tasks_file::parse(
        "t.toml",
        &one_task("every = \"1m\"\nsql = \"SELECT 1\"\nretry = { attempts = 2 }"),
        env,
    )
    .unwrap();
    let task = file.tasks.iter().next().unwrap();
    assert_eq!(
        task.retry,
        Some(RetryPolicy {
            max_retries: 1,
            ..env
        })
    );
}
