//! `cargo xtask monitoring`: the Prometheus and Grafana files in `deploy/` checked the way
//! Prometheus reads them, with Debian's promtool (`scripts/setup --test` installs it):
//!
//! - the alerting rules (`promtool check rules`) and their unit tests (`promtool test rules`);
//! - every alert's runbook link leads to a heading of the README;
//! - the example scrape configuration (`promtool check config`, with a stand-in token file);
//! - every Grafana panel query, its variables substituted, as a recording rule (`promtool
//!   check rules` on a generated file).
//!
//! That the metric names they use are ones the server exports is a test of the server's
//! (`server/src/metrics/deploy_files.rs`): it renders `/metrics`.

mod dashboard;
mod runbook;

use std::{fs, path::Path, process::Command};

use anyhow::{Context, Result, ensure};

use crate::{config::Project, step};

/// The shipped files, relative to the workspace root.
const RULES: &str = "deploy/prometheus/leasewatch.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/leasewatch.rules.test.yml";
const SCRAPE_CONFIG: &str = "deploy/prometheus/prometheus.example.yml";
const DASHBOARD: &str = "deploy/grafana/leasewatch.json";
const README: &str = "README.md";
/// The token file the example scrape configuration names, beside it.
const TOKEN_FILE: &str = "leasewatch-viewer-token";

pub fn check(project: &Project) -> Result<()> {
    let root = &project.root;
    let scratch = project.target_dir.join("monitoring");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    step("alerting rules (promtool check rules)", || {
        promtool(root, &["check", "rules", RULES])
    })?;
    step("alerting rules' unit tests (promtool test rules)", || {
        promtool(root, &["test", "rules", RULE_TESTS])
    })?;
    step("runbook links lead to README headings", || {
        let used = runbook::check_links(&read(root, RULES)?, &read(root, README)?)?;
        eprintln!("    anchors: {}", Vec::from_iter(used).join(", "));
        Ok(())
    })?;
    step(
        "example scrape configuration (promtool check config)",
        || scrape_config(root, &scratch.join("scrape-config")),
    )?;
    step("Grafana panel queries (promtool check rules)", || {
        dashboard_queries(root, &scratch.join("dashboard.rules.yml"))
    })
}

/// The example configuration in a folder of its own beside what it names (the rules file and
/// a stand-in token file), as it would sit in /etc/prometheus.
fn scrape_config(root: &Path, folder: &Path) -> Result<()> {
    fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    for file in [SCRAPE_CONFIG, RULES] {
        let name = Path::new(file).file_name().context("a file name")?;
        fs::copy(root.join(file), folder.join(name)).with_context(|| format!("copying {file}"))?;
    }
    fs::write(folder.join(TOKEN_FILE), "a-stand-in-viewer-token\n")?;
    let config = Path::new(SCRAPE_CONFIG)
        .file_name()
        .context("a file name")?;
    promtool(folder, &["check", "config", &config.to_string_lossy()])
}

fn dashboard_queries(root: &Path, generated: &Path) -> Result<()> {
    let text = read(root, DASHBOARD)?;
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{DASHBOARD} is not JSON"))?;
    let queries = dashboard::queries(&dashboard).with_context(|| DASHBOARD.to_owned())?;
    let rules = dashboard::rules_file(DASHBOARD, &queries, &dashboard::variables(&dashboard))
        .with_context(|| DASHBOARD.to_owned())?;
    fs::write(generated, rules).with_context(|| format!("writing {}", generated.display()))?;
    eprintln!(
        "    {} queries, as recording rules in {}",
        queries.len(),
        generated.display()
    );
    promtool(root, &["check", "rules", &generated.to_string_lossy()])
}

fn read(root: &Path, file: &str) -> Result<String> {
    fs::read_to_string(root.join(file)).with_context(|| format!("cannot read {file}"))
}

/// Runs promtool in `dir`; its report goes to the terminal.
fn promtool(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("promtool")
        .current_dir(dir)
        .args(args)
        .status()
        .context(
            "cannot run promtool: `scripts/setup --test` installs it (Debian's prometheus package)",
        )?;
    ensure!(
        status.success(),
        "`promtool {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}
