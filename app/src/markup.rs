//! Read-only parts of the page written as HTML markup, set as an element's inner HTML: the
//! status line, the summary of what needs attention, the pool's cards, the charts
//! ([`crate::charts`]) and the rows of the lease, auction and audit tables.
//!
//! They have nothing to click. As Leptos views, each element and attribute brings its own
//! building, updating and hydrating code into the WASM; as markup they cost one string each.
//! Leptos compares the new markup with the last and leaves the DOM alone when it is the same.
//! They are written with `maud`, which escapes every interpolated value unless told not to.

use maud::{Markup, html};

use crate::wire::{
    Actor, Advice, AuditRow, Dashboard, LeaseRow, PoolCard, Severity, StatusCount, clock_utc,
    date_time_utc,
};

/// How many recommendations hold at each severity (clearing ones apart): what the summary
/// line, the tab's title and its icon say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attention {
    /// Critical recommendations that hold.
    pub critical: usize,
    /// Warnings that hold.
    pub warning: usize,
    /// Information that holds.
    pub info: usize,
    /// Recommendations whose condition has cleared, kept for the clear-hold.
    pub clearing: usize,
}

impl Attention {
    /// Counts `advice`.
    pub fn of(advice: &[Advice]) -> Self {
        let mut counts = Self::default();
        for a in advice {
            let slot = match (a.cleared_at_ms, a.severity) {
                (Some(_), _) => &mut counts.clearing,
                (None, Severity::Critical) => &mut counts.critical,
                (None, Severity::Warning) => &mut counts.warning,
                (None, Severity::Info) => &mut counts.info,
            };
            *slot += 1;
        }
        counts
    }

    /// The worst severity that holds.
    pub fn worst(&self) -> Option<Severity> {
        [
            (self.critical, Severity::Critical),
            (self.warning, Severity::Warning),
            (self.info, Severity::Info),
        ]
        .into_iter()
        .find_map(|(n, severity)| (n > 0).then_some(severity))
    }

    /// "1 critical · 2 warnings": the severities that hold, worst first (empty when none
    /// does). Information counts only when `with_info`.
    pub fn counts(&self, with_info: bool) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.critical > 0 {
            parts.push(format!("{} critical", self.critical));
        }
        if self.warning > 0 {
            parts.push(plural(self.warning, "warning", "warnings"));
        }
        if with_info && self.info > 0 {
            parts.push(format!("{} info", self.info));
        }
        parts.join(" · ")
    }

    /// The tab's title: "(!) 1 critical · Leasewatch" while something critical or a warning
    /// holds, plain otherwise, so a background tab shows when it needs a look.
    pub fn title(&self) -> String {
        match self.counts(false) {
            counts if counts.is_empty() => "Leasewatch".to_owned(),
            counts => format!("(!) {counts} · Leasewatch"),
        }
    }

    /// The tab's icon for the worst severity that holds.
    pub fn icon(&self) -> &'static str {
        match self.worst() {
            Some(Severity::Critical) => "/favicon-critical.svg",
            Some(Severity::Warning) => "/favicon-warning.svg",
            _ => "/favicon.svg",
        }
    }
}

/// The line at the top: what holds, by severity, and the worst recommendation's title
/// ("1 critical · 2 warnings: Acquire timeouts …"), or that nothing needs attention.
pub fn summary(advice: &[Advice]) -> String {
    let attention = Attention::of(advice);
    let worst = attention.worst();
    let first = advice.iter().find(|a| a.cleared_at_ms.is_none());
    let clearing = (attention.clearing > 0).then(|| format!("{} clearing", attention.clearing));
    html! {
        span.summary-state data-worst=(worst.map_or("none", Severity::as_str)) {
            @match (worst, first) {
                (Some(_), Some(first)) => {
                    strong { (attention.counts(true)) } ": " (first.title)
                    @if advice.iter().filter(|a| a.cleared_at_ms.is_none()).count() > 1 { " …" }
                }
                _ => { strong { "All clear" } ": no recommendation holds" }
            }
        }
        @if let Some(clearing) = clearing { span.summary-clearing { " · " (clearing) } }
    }
    .into_string()
}

/// The status line: backend, database, scheduler, when the data was taken and, once the
/// browser's clock is known (`now_ms`), how long ago.
pub fn status_line(dashboard: &Dashboard, now_ms: Option<f64>) -> String {
    let scheduler = if dashboard.scheduler_running {
        "running"
    } else {
        "stopped"
    };
    let age_s = now_ms.map(|now| ((now - dashboard.taken_at_ms as f64) / 1000.0).max(0.0));
    html! {
        (dashboard.backend) " · " code { (dashboard.database) }
        " · scheduler " strong data-scheduler=(scheduler) { (scheduler) }
        " · as of " (clock_utc(dashboard.taken_at_ms)) " UTC"
        @if let Some(age_s) = age_s { " · updated " (format!("{age_s:.0}")) " s ago" }
    }
    .into_string()
}

/// The pool's cards: the counts and the utilization against the maximum, each coloured by
/// how bad it is (a stale lease is a leak: critical; acquires waiting: a warning; utilization
/// at the meter's own marks, 80 and 95 %).
pub fn cards(pool: &PoolCard) -> String {
    let pct = (pool.active * 100).checked_div(pool.max).unwrap_or(0);
    let flag = |on: bool, severity: Severity| on.then_some(severity);
    let counts = [
        ("total", "Total", pool.total, None),
        ("idle", "Idle", pool.idle, None),
        ("active", "Active", pool.active, None),
        (
            "waiting",
            "Waiting",
            pool.waiting,
            flag(pool.waiting > 0, Severity::Warning),
        ),
        (
            "stale",
            "Stale",
            pool.stale,
            flag(pool.stale > 0, Severity::Critical),
        ),
    ];
    let utilization = flag(pct >= 95, Severity::Critical).or(flag(pct >= 80, Severity::Warning));
    let class = |severity: Option<Severity>| match severity {
        Some(severity) => format!("card {severity}"),
        None => "card".to_owned(),
    };
    html! {
        @for (key, name, value, severity) in counts {
            div class=(class(severity)) data-metric=(key) data-severity=[severity] {
                span.label { (name) } span.value { (value) }
            }
        }
        div class=(class(utilization)) data-metric="utilization" data-severity=[utilization] {
            span.label { "Utilization" }
            span.value { (pct) " %" }
            meter min="0" max="100" low="80" high="95" optimum="0" value=(pct) {}
            span.detail { (pool.active) " of max " (pool.max) " (min " (pool.min) ")" }
        }
    }
    .into_string()
}

/// The lease table's rows.
pub fn lease_rows(leases: &[LeaseRow]) -> String {
    rows(leases, |lease| {
        html! {
            tr class=[lease.stale.then_some("stale")] data-lease=(lease.id) data-task=(lease.task) {
                td { "#" (lease.id) }
                td { (lease.task) }
                td { (lease.run_id) }
                td {
                    @match lease.backend_pid {
                        Some(pid) => { "pid " (pid) }
                        None => "—",
                    }
                }
                td.num { (format!("{:.1}", lease.held_ms as f64 / 1000.0)) " s" }
                td { (if lease.stale { "STALE" } else { "ok" }) }
            }
        }
    })
}

/// The auction table's rows: one per status.
pub fn auction_rows(auctions: &[StatusCount]) -> String {
    rows(auctions, |row| {
        html! {
            tr data-status=(row.status) {
                th scope="row" { (row.status) }
                td.num { (row.count) }
            }
        }
    })
}

/// Characters of an audit value shown before it is cut (the whole value opens on demand).
pub const AUDIT_VALUE_CHARS: usize = 120;

/// The audit table's rows, newest first: with the date (entries outlive a day and a
/// restart), Leasewatch's own actions as the system's, and previews as previews.
pub fn audit_rows(audit: &[AuditRow]) -> String {
    rows(audit, |entry| {
        let system = entry.role == Actor::System;
        let automatic = entry.arguments.contains(r#""automatic":true"#);
        let action = entry.action.replace('_', " ");
        html! {
            tr data-outcome=(entry.outcome) data-actor=(entry.role)
                data-dry-run=[entry.dry_run.then_some("true")]
                class=[entry.dry_run.then_some("preview")] {
                td.when { (date_time_utc(entry.at_ms)) }
                td {
                    @if system { "Leasewatch " span.detail { "(system)" } } @else { (entry.role) }
                }
                td {
                    @if automatic { "automatic " } (action)
                    @if entry.dry_run { " " span.tag { "preview" } }
                    @if !automatic && entry.arguments != "{}" {
                        " " code { (clipped(&entry.arguments)) }
                    }
                }
                td {
                    @if entry.dry_run {
                        "preview only, nothing changed: "
                    } @else {
                        (entry.outcome) ": "
                    }
                    (clipped(&entry.result))
                }
            }
        }
    })
}

/// A value of at most [`AUDIT_VALUE_CHARS`] characters as it is; a longer one cut there, with
/// the whole text a click (or Enter) away.
fn clipped(value: &str) -> Markup {
    match value.char_indices().nth(AUDIT_VALUE_CHARS) {
        None => html! { (value) },
        Some((cut, _)) => html! {
            details.clip {
                summary title="Show the whole value" { (&value[..cut]) "…" }
                span.whole { (value) }
            }
        },
    }
}

/// One row of markup per item, concatenated.
fn rows<T>(items: &[T], row: impl Fn(&T) -> Markup) -> String {
    html! { @for item in items { (row(item)) } }.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let lease = LeaseRow {
            id: 1,
            task: r#"<a href="x">&</a>"#.to_owned(),
            run_id: 2,
            backend_pid: None,
            held_ms: 0,
            stale: false,
        };
        let html = lease_rows(&[lease]);
        let escaped = "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;";
        assert!(
            html.contains(&format!(r#"data-task="{escaped}""#)),
            "{html}"
        );
        assert!(html.contains(&format!("<td>{escaped}</td>")), "{html}");
    }

    fn advice(id: &str, severity: Severity, cleared_at_ms: Option<i64>) -> Advice {
        Advice {
            id: id.to_owned(),
            severity,
            title: format!("{id} holds"),
            detail: String::new(),
            action: None,
            cleared_at_ms,
        }
    }

    #[test]
    fn attention_counts_what_holds_and_sets_the_tab_apart() {
        let none = Attention::of(&[]);
        assert_eq!(
            (none.worst(), none.title(), none.icon()),
            (None, "Leasewatch".to_owned(), "/favicon.svg")
        );
        let list = [
            advice("timeouts", Severity::Critical, None),
            advice("stale", Severity::Warning, None),
            advice("waiting", Severity::Warning, None),
            advice("oversized", Severity::Info, None),
            advice("server", Severity::Critical, Some(1)),
        ];
        let all = Attention::of(&list);
        assert_eq!(
            all,
            Attention {
                critical: 1,
                warning: 2,
                info: 1,
                clearing: 1
            }
        );
        assert_eq!(all.title(), "(!) 1 critical · 2 warnings · Leasewatch");
        assert_eq!(all.icon(), "/favicon-critical.svg");
        // Clearing ones do not count: a cleared critical leaves the warnings the worst.
        let warnings = Attention::of(&list[1..]);
        assert_eq!(warnings.title(), "(!) 2 warnings · Leasewatch");
        assert_eq!(warnings.icon(), "/favicon-warning.svg");
        let info = Attention::of(&list[3..]);
        assert_eq!(
            (info.title(), info.icon()),
            ("Leasewatch".to_owned(), "/favicon.svg")
        );
    }

    #[test]
    fn the_summary_leads_with_the_worst() {
        let list = [
            advice("timeouts", Severity::Critical, None),
            advice("stale", Severity::Warning, None),
            advice("waiting", Severity::Warning, None),
            advice("server", Severity::Critical, Some(1)),
        ];
        assert_eq!(
            summary(&list),
            concat!(
                r#"<span class="summary-state" data-worst="critical"><strong>1 critical · "#,
                r#"2 warnings</strong>: timeouts holds …</span>"#,
                r#"<span class="summary-clearing"> · 1 clearing</span>"#
            )
        );
        assert_eq!(
            summary(&list[3..]),
            concat!(
                r#"<span class="summary-state" data-worst="none"><strong>All clear</strong>: "#,
                r#"no recommendation holds</span><span class="summary-clearing"> · 1 clearing</span>"#
            )
        );
        assert_eq!(
            summary(&list[1..2]),
            r#"<span class="summary-state" data-worst="warning"><strong>1 warning</strong>: stale holds</span>"#
        );
    }

    #[test]
    fn cards_are_coloured_by_severity() {
        let pool = |active, stale| PoolCard {
            total: 20,
            idle: 0,
            active,
            waiting: 0,
            stale,
            max: 20,
            min: 5,
            acquire_timeouts: 0,
            p95_ms: None,
        };
        let html = cards(&pool(19, 2));
        assert!(
            html.contains(
                r#"<div class="card critical" data-metric="stale" data-severity="critical">"#
            ),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<div class="card critical" data-metric="utilization" data-severity="critical">"#
            ),
            "{html}"
        );
        let html = cards(&pool(16, 0));
        assert!(
            html.contains(r#"<div class="card" data-metric="stale">"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<div class="card warning" data-metric="utilization" data-severity="warning">"#
            ),
            "{html}"
        );
    }

    #[test]
    fn cards_flag_waiting_and_stale_and_show_utilization() {
        let pool = PoolCard {
            total: 5,
            idle: 2,
            active: 3,
            waiting: 1,
            stale: 0,
            max: 20,
            min: 5,
            acquire_timeouts: 0,
            p95_ms: None,
        };
        let html = cards(&pool);
        assert!(html.starts_with(concat!(
            r#"<div class="card" data-metric="total"><span class="label">Total</span>"#,
            r#"<span class="value">5</span></div>"#
        )));
        assert!(html.contains(
            r#"<div class="card warning" data-metric="waiting" data-severity="warning">"#
        ));
        assert!(html.contains(r#"<div class="card" data-metric="stale">"#));
        assert!(html.ends_with(concat!(
            r#"<span class="value">15 %</span><meter min="0" max="100" low="80" high="95" "#,
            r#"optimum="0" value="15"></meter><span class="detail">3 of max 20 (min 5)</span></div>"#
        )));
    }

    #[test]
    fn lease_rows_mark_stale_leases() {
        let lease = |id, stale, backend_pid| LeaseRow {
            id,
            task: "leaky_report".to_owned(),
            run_id: 7,
            backend_pid,
            held_ms: 61_250,
            stale,
        };
        assert_eq!(
            lease_rows(&[lease(3, true, Some(42)), lease(4, false, None)]),
            concat!(
                r#"<tr class="stale" data-lease="3" data-task="leaky_report"><td>#3</td>"#,
                r#"<td>leaky_report</td><td>7</td><td>pid 42</td><td class="num">61.2 s</td>"#,
                r#"<td>STALE</td></tr>"#,
                r#"<tr data-lease="4" data-task="leaky_report"><td>#4</td><td>leaky_report</td>"#,
                r#"<td>7</td><td>—</td><td class="num">61.2 s</td><td>ok</td></tr>"#,
            )
        );
    }

    #[test]
    fn auction_and_audit_rows_carry_their_data_attributes() {
        let auctions = [StatusCount {
            status: crate::wire::AuctionStatus::Active,
            count: 12,
        }];
        assert_eq!(
            auction_rows(&auctions),
            r#"<tr data-status="active"><th scope="row">active</th><td class="num">12</td></tr>"#
        );
        let audit = [AuditRow {
            at_ms: 1_714_979_289_999,
            role: crate::wire::Actor::Operator,
            action: "emergency_cleanup".to_owned(),
            arguments: r#"{"dry_run":false}"#.to_owned(),
            dry_run: false,
            outcome: crate::wire::AuditOutcome::Ok,
            result: "revoked 1 lease <held>".to_owned(),
        }];
        assert_eq!(
            audit_rows(&audit),
            concat!(
                r#"<tr data-outcome="ok" data-actor="operator"><td class="when">2024-05-06 07:08:09 UTC</td>"#,
                r#"<td>operator</td>"#,
                r#"<td>emergency cleanup <code>{&quot;dry_run&quot;:false}</code></td>"#,
                r#"<td>ok: revoked 1 lease &lt;held&gt;</td></tr>"#,
            )
        );
    }

    #[test]
    fn audit_rows_mark_previews_and_the_systems_own_actions() {
        let entry = |role, arguments: &str, dry_run, result: &str| AuditRow {
            at_ms: 0,
            role,
            action: "cleanup".to_owned(),
            arguments: arguments.to_owned(),
            dry_run,
            outcome: crate::wire::AuditOutcome::Ok,
            result: result.to_owned(),
        };
        let preview = audit_rows(&[entry(
            crate::wire::Actor::Operator,
            r#"{"dry_run":true}"#,
            true,
            "would revoke 1 lease",
        )]);
        assert!(preview.starts_with(r#"<tr data-outcome="ok" data-actor="operator" data-dry-run="true" class="preview">"#), "{preview}");
        assert!(
            preview.contains(r#"<td>cleanup <span class="tag">preview</span>"#),
            "{preview}"
        );
        assert!(
            preview.contains("<td>preview only, nothing changed: would revoke 1 lease</td>"),
            "{preview}"
        );
        assert!(!preview.contains("ok:"), "{preview}");
        let automatic = audit_rows(&[entry(
            Actor::System,
            r#"{"automatic":true}"#,
            false,
            "revoked 1 lease",
        )]);
        assert!(automatic.contains(r#"<td>Leasewatch <span class="detail">(system)</span></td><td>automatic cleanup</td>"#), "{automatic}");
    }

    #[test]
    fn long_audit_values_are_cut_with_the_whole_on_demand() {
        let long = "é".repeat(1024);
        let row = AuditRow {
            at_ms: 0,
            role: Actor::Operator,
            action: "pause".to_owned(),
            arguments: "{}".to_owned(),
            dry_run: false,
            outcome: crate::wire::AuditOutcome::Refused,
            result: long.clone(),
        };
        let html = audit_rows(&[row]);
        let cut = "é".repeat(AUDIT_VALUE_CHARS);
        assert!(
            html.contains(&format!(
                r#"<details class="clip"><summary title="Show the whole value">{cut}…</summary><span class="whole">{long}</span></details>"#
            )),
            "{html}"
        );
        // Short values stay as they are; empty arguments are left out.
        assert!(!html.contains("<code>"), "{html}");
        assert_eq!(clipped(&cut).into_string(), cut);
    }
}
