//! The monitoring files shipped in `deploy/` (the Prometheus rules and their unit tests, the
//! Grafana dashboard) name only metrics the server exports: a renamed or misspelt family would
//! leave an alert that never fires and a panel that stays empty, and promtool cannot tell.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use leasewatch_engine::{DatabaseUrl, Engine, EngineConfig};

/// The shipped files that name metrics, relative to the workspace root.
const DEPLOY_FILES: [&str; 3] = [
    "deploy/prometheus/leasewatch.rules.yml",
    "deploy/prometheus/leasewatch.rules.test.yml",
    "deploy/grafana/leasewatch.json",
];

/// Where every family is registered, each under its name as a string literal. Some appear in
/// a scrape only on PostgreSQL or while the server's connections rise, so the scrape below
/// cannot show them all.
const METRICS_SOURCE: &str = include_str!("mod.rs");

/// A histogram's series carry these after the family's name.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Every `leasewatch_*` name in `text`: a run of `[a-z0-9_]` starting at a `leasewatch_` not
/// preceded by a name's character.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("leasewatch_") {
        let preceded = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if preceded {
            continue;
        }
        let rest = &text[at..];
        let len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        names.insert(rest[..len].to_owned());
    }
    names
}

/// Family name → type, from a scrape's `# TYPE` lines.
fn scraped_families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The family a series name belongs to: a histogram's `_bucket`, `_sum` and `_count` series
/// are its family's.
fn family_of<'a>(name: &'a str, scraped: &BTreeMap<String, String>) -> &'a str {
    HISTOGRAM_SUFFIXES
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| scraped.get(*base).is_some_and(|kind| kind == "histogram"))
        .unwrap_or(name)
}

/// `/metrics` from a demo engine on SQLite whose tasks have started.
async fn scrape() -> String {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(EngineConfig {
        demo: true,
        ..EngineConfig::new(DatabaseUrl::Sqlite(dir.path().join("deploy.db")))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = super::render(&engine);
    engine.shutdown().await;
    scrape
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_files_name_only_exported_metrics() {
    let scrape = scrape().await;
    let scraped = scraped_families(&scrape);
    let registered = metric_names(METRICS_SOURCE);
    // The source is read right: every family a scrape shows is among its names.
    let unseen: Vec<_> = scraped
        .keys()
        .filter(|name| !registered.contains(*name))
        .collect();
    assert!(
        unseen.is_empty(),
        "families in the scrape but not named in server/src/metrics.rs: {unseen:?}"
    );
    assert!(scraped.len() >= 20, "{scrape}");

    let mut unknown = Vec::new();
    for file in DEPLOY_FILES {
        let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        let names = metric_names(&text);
        assert!(!names.is_empty(), "{file} names no leasewatch_ metric");
        for name in &names {
            let family = family_of(name, &scraped);
            if !registered.contains(family) {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the server does not export:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn names_are_found_whole_and_histogram_series_belong_to_their_family() {
    let text = r#"rate(leasewatch_acquire_duration_seconds_bucket{job="leasewatch"}[5m]) + dashboard:leasewatch_x + my_leasewatch_y + "leasewatch_leases_stale""#;
    assert_eq!(
        metric_names(text).into_iter().collect::<Vec<_>>(),
        [
            "leasewatch_acquire_duration_seconds_bucket",
            "leasewatch_leases_stale"
        ]
    );
    let scraped = BTreeMap::from([
        (
            "leasewatch_acquire_duration_seconds".to_owned(),
            "histogram".to_owned(),
        ),
        (
            "leasewatch_acquire_timeouts_total".to_owned(),
            "counter".to_owned(),
        ),
    ]);
    assert_eq!(
        family_of("leasewatch_acquire_duration_seconds_bucket", &scraped),
        "leasewatch_acquire_duration_seconds"
    );
    // Only a histogram's series are stripped: a counter has no `_count` series of its own.
    assert_eq!(
        family_of("leasewatch_acquire_timeouts_total_count", &scraped),
        "leasewatch_acquire_timeouts_total_count"
    );
}
