//! The alerts' runbook links: each must lead to a heading of the README, as GitHub anchors it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail, ensure};

/// Where the README is read on GitHub; every `runbook_url` is this plus a heading's anchor.
pub const README_URL: &str = "https://github.com/leasewatch/leasewatch/blob/main/README.md#";

/// The anchor GitHub gives a heading: lower case, punctuation dropped (letters, digits, `_`
/// and `-` kept), spaces turned into hyphens.
pub fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (`#` lines outside fenced code), a repeated one
/// numbered as GitHub does (`-1`, `-2`, ...).
pub fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        let Some(text) = line[level..].strip_prefix(' ') else {
            continue;
        };
        if !(1..=6).contains(&level) {
            continue;
        }
        let anchor = github_anchor(text.trim_end_matches('#'));
        let count = seen.entry(anchor.clone()).or_default();
        anchors.insert(match *count {
            0 => anchor,
            n => format!("{anchor}-{n}"),
        });
        *count += 1;
    }
    anchors
}

/// Checks the rules file: every alert has a `runbook_url`, and each one leads to a heading of
/// the README. Returns the anchors used.
pub fn check_links(rules: &str, readme: &str) -> Result<BTreeSet<String>> {
    let alerts = rules
        .lines()
        .filter(|line| line.trim_start().starts_with("- alert:"))
        .count();
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("runbook_url:"))
        .map(|url| url.trim().trim_matches(['"', '\'']))
        .collect();
    ensure!(alerts > 0, "the rules file has no alerts");
    ensure!(
        links.len() == alerts,
        "{alerts} alerts but {} runbook_url annotations: every alert needs one",
        links.len()
    );
    let headings = heading_anchors(readme);
    let mut used = BTreeSet::new();
    for url in links {
        let Some(anchor) = url.strip_prefix(README_URL) else {
            bail!("runbook_url {url} does not start with {README_URL}");
        };
        if !headings.contains(anchor) {
            bail!("runbook_url {url}: README.md has no heading with the anchor #{anchor}");
        }
        used.insert(anchor.to_owned());
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        assert_eq!(github_anchor("Operations"), "operations");
        assert_eq!(
            github_anchor("What each recommendation means, and what to do"),
            "what-each-recommendation-means-and-what-to-do"
        );
        assert_eq!(
            github_anchor("Seeing exhaustion coming: the forecast and predictive cleanup"),
            "seeing-exhaustion-coming-the-forecast-and-predictive-cleanup"
        );
        assert_eq!(
            github_anchor("Sharing the server: the connection-budget governor"),
            "sharing-the-server-the-connection-budget-governor"
        );
        assert_eq!(
            github_anchor("`cargo xtask` and DB_URL"),
            "cargo-xtask-and-db_url"
        );
    }

    const README: &str = "# Leasewatch\n\
        ## Operations\n\
        ```sh\n\
        # not a heading\n\
        ```\n\
        ### What to do\n\
        #Not a heading either\n\
        ## Operations\n";

    #[test]
    fn headings_outside_code_are_anchors_and_repeats_are_numbered() {
        let anchors: Vec<_> = heading_anchors(README).into_iter().collect();
        assert_eq!(
            anchors,
            ["leasewatch", "operations", "operations-1", "what-to-do"]
        );
    }

    fn rules(urls: &[&str]) -> String {
        urls.iter()
            .map(|url| {
                format!("      - alert: A\n        annotations:\n          runbook_url: {url}\n")
            })
            .collect()
    }

    #[test]
    fn links_to_real_headings_pass() {
        let used = check_links(
            &rules(&[
                "https://github.com/leasewatch/leasewatch/blob/main/README.md#operations",
                "'https://github.com/leasewatch/leasewatch/blob/main/README.md#what-to-do'",
            ]),
            README,
        )
        .unwrap();
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["operations", "what-to-do"]
        );
    }

    #[test]
    fn a_link_to_a_missing_heading_or_elsewhere_fails() {
        let err = check_links(
            &rules(&["https://github.com/leasewatch/leasewatch/blob/main/README.md#runbook"]),
            README,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "runbook_url https://github.com/leasewatch/leasewatch/blob/main/README.md#runbook: \
             README.md has no heading with the anchor #runbook"
        );
        let err = check_links(&rules(&["https://example.com/#operations"]), README).unwrap_err();
        assert!(err.to_string().contains("does not start with"), "{err}");
    }

    #[test]
    fn an_alert_without_a_link_fails() {
        let mut text =
            rules(&["https://github.com/leasewatch/leasewatch/blob/main/README.md#operations"]);
        text.push_str("      - alert: B\n        annotations:\n          summary: no link\n");
        let err = check_links(&text, README).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 alerts but 1 runbook_url annotations: every alert needs one"
        );
    }
}
