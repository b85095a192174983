//! Read-only parts of the page written as HTML markup, set as an element's inner HTML: the
//! status line, the summary of what needs attention, the pool's cards, the charts
//! ([`crate::charts`]), the rows of the lease, auction and audit tables, and the alerts
//! section's firing alerts, receivers and notifications.
//!
//! They have nothing to click. As Leptos views, each element and attribute brings its own
//! building, updating and hydrating code into the WASM; as markup they cost one string each.
//! Leptos compares the new markup with the last and leaves the DOM alone when it is the same.
//! They are written with `maud`, which escapes every interpolated value unless told not to.
//!
//! Instants are `<time>` elements in the reader's zone ([`Zone`]); relative ones are written
//! as absolute times and reworded by the browser ([`crate::prefs`]), so the markup changes
//! only with the data and the zone (a cut value opened in the audit log stays open).

use maud::{Markup, html};

use crate::{
    prefs::{Shown, Zone, time_markup},
    wire::{
        Actor, Advice, Alerts, AuditRow, Dashboard, DeliveryStatus, FiringRow, LeaseRow,
        NotificationRow, PoolCard, ReceiverRow, Relative, RotationEvent, Severity, StatusCount,
        Target, TargetCard,
    },
};

/// How far back a log entry reads as "… ago" rather than by its date and time.
const RECENT_MS: i64 = 60 * 60 * 1000;

/// A log entry's time: how long ago within the last hour before `now_ms` (the data's time),
/// its date and time before that.
fn logged_at(at_ms: i64, zone: Zone, now_ms: i64) -> Markup {
    let shown = if now_ms - at_ms < RECENT_MS {
        Shown::Relative(Relative::Ago)
    } else {
        Shown::DateTime
    };
    time_markup(at_ms, zone, shown)
}

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

/// The status line: backend, database, scheduler, when the data was taken (in `zone`) and,
/// once the browser's clock is known (`now_ms`), how long ago.
pub fn status_line(dashboard: &Dashboard, zone: Zone, now_ms: Option<f64>) -> String {
    let scheduler = if dashboard.scheduler_running {
        "running"
    } else {
        "stopped"
    };
    let age_s = now_ms.map(|now| ((now - dashboard.taken_at_ms as f64) / 1000.0).max(0.0));
    html! {
        (dashboard.backend) " · " code { (dashboard.database) }
        " · scheduler " strong data-scheduler=(scheduler) { (scheduler) }
        " · as of " (time_markup(dashboard.taken_at_ms, zone, Shown::Clock))
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

/// The lease table's header: with `with_target` (read replicas configured), a Target column
/// saying which database each lease is on.
pub fn lease_head(with_target: bool) -> String {
    html! {
        tr {
            th scope="col" { "Lease" }
            th scope="col" { "Task" }
            th scope="col" { "Run" }
            @if with_target { th scope="col" { "Target" } }
            th scope="col" { "Backend" }
            th scope="col" class="num" { "Held" }
            th scope="col" { "State" }
        }
    }
    .into_string()
}

/// The lease table's rows; with `with_target`, which database each is on (lease numbers and
/// backends are each database's own).
pub fn lease_rows(leases: &[LeaseRow], with_target: bool) -> String {
    rows(leases, |lease| {
        let target = with_target.then(|| lease.target.to_string());
        html! {
            tr class=[lease.stale.then_some("stale")] data-lease=(lease.id) data-task=(lease.task)
                data-target=[target.as_deref()] {
                td { "#" (lease.id) }
                td { (lease.task) }
                td { (lease.run_id) }
                @if let Some(target) = &target { td { (target) } }
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

/// When a database's state began: its time of day on the reader's clock within the last day
/// before `now_ms` (the data's time), its date and time before that.
fn since(at_ms: i64, zone: Zone, now_ms: i64) -> Markup {
    let shown = if now_ms - at_ms < 24 * RECENT_MS {
        Shown::Clock
    } else {
        Shown::DateTime
    };
    time_markup(at_ms, zone, shown)
}

/// "0.4 s": a replay lag; "not read" before a probe has answered or while it fails.
fn lag_words(lag_secs: Option<f64>) -> String {
    lag_secs.map_or_else(|| "not read".to_owned(), |lag| format!("{lag:.1} s"))
}

/// The id of a database card's heading, which names the card.
pub fn target_heading_id(target: Target) -> String {
    format!("database-{target}-title")
}

/// One database's card, all but its button: its name, whether it takes work (since when, and
/// why not), where it is, its replay lag, its pool and leases and its bans; times in `zone`.
pub fn target_card(card: &TargetCard, zone: Zone, now_ms: i64) -> String {
    let rotation = if card.in_rotation { "in" } else { "out" };
    html! {
        h3 id=(target_heading_id(card.target)) { (card.target) }
        p.rotation data-rotation=(rotation) {
            @match &card.out {
                None => { strong { "In rotation" } " since " (since(card.since_ms, zone, now_ms)) }
                Some(why) => {
                    strong { "Out of rotation" } " since " (since(card.since_ms, zone, now_ms))
                    ": " span.why data-out-reason { (why) }
                }
            }
        }
        dl.facts {
            div.wide { dt { "Address" } dd { code { (card.address) } } }
            div.wide {
                dt { "Pool" }
                dd data-fact="pool" {
                    "open " (card.open) " · idle " (card.idle) " · active " (card.active)
                    " · limit " (card.limit)
                    span.detail { " (max " (card.max) ")" }
                }
            }
            div { dt { "Replay lag" } dd data-fact="lag" { (lag_words(card.lag_secs)) } }
            div {
                dt { "Leases held" }
                dd data-fact="leases" {
                    (card.leases)
                    @if card.stale > 0 { " " span.stale-count { "(" (card.stale) " stale)" } }
                }
            }
            div { dt { "Bans" } dd data-fact="bans" { (card.bans) } }
        }
    }
    .into_string()
}

/// How many bans and recoveries the Databases section lists.
pub const ROTATION_EVENTS_SHOWN: usize = 20;

/// The databases' latest bans and recoveries, newest first, timed as the audit log is
/// ([`audit_rows`]); or a line saying there has been none.
pub fn rotation_events(targets: &[TargetCard], zone: Zone, now_ms: i64) -> String {
    let mut events: Vec<(Target, &RotationEvent)> = targets
        .iter()
        .flat_map(|t| t.events.iter().map(move |e| (t.target, e)))
        .collect();
    // Newest first; each database's own are already, so a stable sort keeps their order.
    events.sort_by_key(|(_, e)| std::cmp::Reverse(e.at_ms));
    events.truncate(ROTATION_EVENTS_SHOWN);
    if events.is_empty() {
        return html! {
            p.note data-rotation-events="none" {
                "No database has been taken out of rotation or put back since start."
            }
        }
        .into_string();
    }
    html! {
        table.rotation-events aria-labelledby="rotation-events-title" {
            thead {
                tr {
                    th scope="col" { "When" }
                    th scope="col" { "Database" }
                    th scope="col" { "Change" }
                }
            }
            tbody {
                @for (target, event) in events {
                    tr data-target=(target) data-rotation=(if event.out.is_some() { "out" } else { "in" }) {
                        td.when data-label="When" { (logged_at(event.at_ms, zone, now_ms)) }
                        th scope="row" { (target) }
                        td data-label="Change" {
                            @match &event.out {
                                Some(why) => { "taken out of rotation: " (why) }
                                None => "put in rotation",
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
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

/// The audit table's rows, newest first: how long ago within the last hour before `now_ms`
/// (the data's time), else with the date (entries outlive a day and a restart), in `zone`;
/// Leasewatch's own actions as the system's, and previews as previews.
pub fn audit_rows(audit: &[AuditRow], zone: Zone, now_ms: i64) -> String {
    rows(audit, |entry| {
        let system = entry.role == Actor::System;
        let automatic = entry.arguments.contains(r#""automatic":true"#);
        let action = entry.action.replace('_', " ");
        html! {
            tr data-outcome=(entry.outcome) data-actor=(entry.role)
                data-dry-run=[entry.dry_run.then_some("true")]
                class=[entry.dry_run.then_some("preview")] {
                td.when { (logged_at(entry.at_ms, zone, now_ms)) }
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
pub(crate) fn clipped(value: &str) -> Markup {
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

/// The alerts firing now, worst first, as a table, with how long each has fired; or a line
/// saying none is.
pub fn firing_alerts(firing: &[FiringRow], zone: Zone) -> String {
    if firing.is_empty() {
        return html! { p.note data-firing="none" { "No alert is firing." } }.into_string();
    }
    html! {
        table.firing aria-labelledby="alerts-firing-title" {
            thead {
                tr {
                    th scope="col" { "Severity" }
                    th scope="col" { "Alert" }
                    th scope="col" { "Task" }
                    th scope="col" { "Summary" }
                    th scope="col" { "Since" }
                }
            }
            tbody {
                @for alert in firing {
                    tr class={ "severity " (alert.severity) } data-alert=(alert.name)
                        data-task=[alert.task.as_deref()] {
                        td data-label="Severity" {
                            span.badge { (alert.severity.as_str().to_ascii_uppercase()) }
                        }
                        th scope="row" { (alert.name) }
                        td data-label="Task" { (alert.task.as_deref().unwrap_or("—")) }
                        td data-label="Summary" { (alert.summary) }
                        td.when data-label="Since" {
                            (time_markup(alert.since_ms, zone, Shown::Relative(Relative::Ago)))
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// Where alerts go: the receivers with their delivery counts, or, with none configured, that
/// alerts go nowhere and what to set.
pub fn alert_receivers(alerts: &Alerts) -> String {
    if alerts.receivers.is_empty() {
        return html! {
            p.note.no-receivers data-receivers="none" {
                strong { "No receiver configured" } ": alerts show here but are sent nowhere. Set "
                code { "ALERT_WEBHOOK_URL" } ", " code { "ALERT_ALERTMANAGER_URL" } " or "
                code { "ALERT_CHAT_WEBHOOK_URL" } " to send them."
            }
        }
        .into_string();
    }
    html! {
        ul.receivers {
            @for receiver in &alerts.receivers { (receiver_item(receiver)) }
        }
        p.note {
            "Alerts carry " code { "instance=\"" (alerts.instance) "\"" } "."
            @if alerts.queued > 0 {
                " " strong data-queued=(alerts.queued) {
                    (count(u64::from(alerts.queued), "notification", "notifications"))
                    " waiting for delivery."
                }
            }
        }
    }
    .into_string()
}

fn receiver_item(receiver: &ReceiverRow) -> Markup {
    html! {
        li data-receiver=(receiver.name) data-kind=(receiver.kind) {
            strong { (receiver.name) }
            " · " span data-count="delivered" { (receiver.delivered) " delivered" }
            " · " span data-count="failed" {
                (count(receiver.failed_attempts, "failed attempt", "failed attempts"))
            }
            @if receiver.superseded > 0 {
                " · " span data-count="superseded" { (receiver.superseded) " superseded" }
            }
            @if receiver.dropped > 0 {
                " · " span data-count="dropped" { (receiver.dropped) " dropped" }
            }
        }
    }
}

/// The latest notifications, newest first, with where each delivery is, timed as the audit
/// log is ([`audit_rows`]); or a line saying there has been none.
pub fn notifications(notifications: &[NotificationRow], zone: Zone, now_ms: i64) -> String {
    if notifications.is_empty() {
        return html! { p.note data-notifications="none" { "No notification has been sent yet." } }
            .into_string();
    }
    html! {
        table.notifications aria-labelledby="alerts-notifications-title" {
            thead {
                tr {
                    th scope="col" { "When" }
                    th scope="col" { "Receiver" }
                    th scope="col" { "Kind" }
                    th scope="col" class="num" { "Alerts" }
                    th scope="col" { "Delivery" }
                }
            }
            tbody {
                @for note in notifications {
                    tr data-status=(note.status) data-kind=(note.kind)
                        data-receiver=(note.receiver) data-attempts=(note.attempts) {
                        td.when data-label="When" { (logged_at(note.at_ms, zone, now_ms)) }
                        td data-label="Receiver" { (note.receiver) }
                        td data-label="Kind" { (note.kind) }
                        td.num data-label="Alerts" { (note.alerts) }
                        td.delivery data-label="Delivery" { (delivery(note, zone)) }
                    }
                }
            }
        }
    }
    .into_string()
}

/// "delivered (1 attempt)", or "pending: 2 attempts failed" with when the next attempt comes
/// and the last error: where one notification's delivery is.
fn delivery(note: &NotificationRow, zone: Zone) -> Markup {
    let attempts = count(u64::from(note.attempts), "attempt", "attempts");
    html! {
        span.status data-status=(note.status) { (note.status) }
        @match note.status {
            DeliveryStatus::Delivered => { " (" (attempts) ")" }
            DeliveryStatus::Pending if note.attempts == 0 => { ": not tried yet" }
            DeliveryStatus::Pending => { ": " (attempts) " failed" }
            DeliveryStatus::Superseded => { ": a newer notification carries its alerts" }
            DeliveryStatus::Dropped => { " after " (attempts) }
        }
        @if let Some(next) = note.next_attempt_ms.filter(|_| note.status == DeliveryStatus::Pending) {
            span.detail data-next-attempt=(next) {
                "Next attempt " (time_markup(next, zone, Shown::Relative(Relative::Until)))
            }
        }
        @if let Some(error) = note.last_error.as_deref().filter(|_| note.status != DeliveryStatus::Delivered) {
            span.detail.error data-last-error { "Last error: " (clipped(error)) }
        }
    }
}

/// "1 attempt", "2 attempts".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
            target: Target::Primary,
        };
        let html = lease_rows(&[lease], false);
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
            target: Target::Primary,
        };
        assert_eq!(
            lease_rows(&[lease(3, true, Some(42)), lease(4, false, None)], false),
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
    fn with_replicas_the_lease_table_says_which_database_each_lease_is_on() {
        // One database: the header and rows as they always were.
        assert_eq!(
            lease_head(false),
            concat!(
                r#"<tr><th scope="col">Lease</th><th scope="col">Task</th><th scope="col">Run</th>"#,
                r#"<th scope="col">Backend</th><th scope="col" class="num">Held</th>"#,
                r#"<th scope="col">State</th></tr>"#,
            )
        );
        assert!(
            lease_head(true).contains(
                r#"<th scope="col">Run</th><th scope="col">Target</th><th scope="col">Backend</th>"#
            ),
            "{}",
            lease_head(true)
        );
        let lease = LeaseRow {
            id: 1,
            task: "replica_report".to_owned(),
            run_id: 9,
            backend_pid: Some(77),
            held_ms: 1_000,
            stale: false,
            target: Target::Replica(2),
        };
        assert_eq!(
            lease_rows(std::slice::from_ref(&lease), true),
            concat!(
                r#"<tr data-lease="1" data-task="replica_report" data-target="replica-2">"#,
                r#"<td>#1</td><td>replica_report</td><td>9</td><td>replica-2</td><td>pid 77</td>"#,
                r#"<td class="num">1.0 s</td><td>ok</td></tr>"#,
            )
        );
        assert!(!lease_rows(&[lease], false).contains("replica-2"));
    }

    /// When the databases' states began: 2026-12-02 14:03:07.250 UTC.
    const SINCE_MS: i64 = 1_796_220_187_250;

    fn target(target: Target, out: Option<&str>, events: Vec<RotationEvent>) -> TargetCard {
        TargetCard {
            target,
            address: "127.0.0.1:5432/app".to_owned(),
            in_rotation: out.is_none(),
            out: out.map(str::to_owned),
            since_ms: SINCE_MS,
            lag_secs: out.is_none().then_some(0.25),
            open: 3,
            idle: 1,
            active: 2,
            limit: 4,
            max: 20,
            leases: 2,
            stale: 0,
            bans: events.iter().filter(|e| e.out.is_some()).count() as u64,
            events,
        }
    }

    #[test]
    fn a_database_card_says_whether_it_takes_work_and_why_not() {
        let card = target(Target::Replica(1), None, vec![]);
        let html = target_card(&card, Zone::Utc, SINCE_MS + 60_000);
        assert!(
            html.starts_with(concat!(
                r#"<h3 id="database-replica-1-title">replica-1</h3>"#,
                r#"<p class="rotation" data-rotation="in"><strong>In rotation</strong> since "#,
                r#"<time datetime="2026-12-02T14:03:07.250Z" title="2026-12-02 14:03:07 UTC">"#,
                r#"14:03:07 UTC</time></p>"#,
            )),
            "{html}"
        );
        for fact in [
            r#"<div class="wide"><dt>Address</dt><dd><code>127.0.0.1:5432/app</code></dd></div>"#,
            r#"<dt>Replay lag</dt><dd data-fact="lag">0.2 s</dd>"#,
            concat!(
                r#"<dt>Pool</dt><dd data-fact="pool">open 3 · idle 1 · active 2 · limit 4"#,
                r#"<span class="detail"> (max 20)</span></dd>"#
            ),
            r#"<dt>Leases held</dt><dd data-fact="leases">2</dd>"#,
            r#"<dt>Bans</dt><dd data-fact="bans">0</dd>"#,
        ] {
            assert!(html.contains(fact), "{fact} in {html}");
        }

        let mut out = target(Target::Replica(2), Some("unreachable: <refused>"), vec![]);
        out.stale = 1;
        // Two days on: dated.
        let html = target_card(&out, Zone::Utc, SINCE_MS + 2 * 86_400_000);
        assert!(
            html.contains(concat!(
                r#"<p class="rotation" data-rotation="out"><strong>Out of rotation</strong> since "#,
                r#"<time datetime="2026-12-02T14:03:07.250Z" title="2026-12-02 14:03:07 UTC" "#,
                r#"data-zoned>2026-12-02 14:03:07 UTC</time>: "#,
                r#"<span class="why" data-out-reason>unreachable: &lt;refused&gt;</span></p>"#,
            )),
            "{html}"
        );
        assert!(
            html.contains(r#"<dd data-fact="lag">not read</dd>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"2 <span class="stale-count">(1 stale)</span>"#),
            "{html}"
        );
    }

    #[test]
    fn bans_and_recoveries_of_every_database_read_newest_first() {
        assert!(
            rotation_events(
                &[target(Target::Primary, None, vec![])],
                Zone::Utc,
                SINCE_MS
            )
            .contains(r#"data-rotation-events="none""#)
        );
        let event = |ago_s: i64, out: Option<&str>| RotationEvent {
            at_ms: SINCE_MS - ago_s * 1000,
            out: out.map(str::to_owned),
        };
        let targets = [
            target(Target::Primary, None, vec![]),
            target(
                Target::Replica(1),
                None,
                vec![event(10, None), event(30, Some("replay lags 12.0 s"))],
            ),
            target(
                Target::Replica(2),
                Some("unreachable: refused"),
                vec![event(20, Some("unreachable: refused")), event(40, None)],
            ),
        ];
        let html = rotation_events(&targets, Zone::Utc, SINCE_MS);
        let order: Vec<&str> = html
            .match_indices("<tr data-target=\"")
            .map(|(at, _)| {
                let rest = &html[at + 17..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        assert_eq!(
            order,
            ["replica-1", "replica-2", "replica-1", "replica-2"],
            "{html}"
        );
        assert!(
            html.contains(concat!(
                r#"<tr data-target="replica-1" data-rotation="in"><td class="when" data-label="When">"#,
                r#"<time datetime="2026-12-02T14:02:57.250Z" title="2026-12-02 14:02:57 UTC" "#,
                r#"data-rel="ago">2026-12-02 14:02:57 UTC</time></td><th scope="row">replica-1</th>"#,
                r#"<td data-label="Change">put in rotation</td></tr>"#,
            )),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<td data-label="Change">taken out of rotation: unreachable: refused</td>"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"<th scope="col">Database</th>"#), "{html}");
        // At most the latest few.
        let many: Vec<RotationEvent> = (0..50).map(|i| event(i, None)).collect();
        let html = rotation_events(
            &[target(Target::Replica(1), None, many)],
            Zone::Utc,
            SINCE_MS,
        );
        assert_eq!(
            html.matches("<tr data-target").count(),
            ROTATION_EVENTS_SHOWN
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
        // A day later: dated.
        assert_eq!(
            audit_rows(&audit, Zone::Utc, 1_714_979_289_999 + 86_400_000),
            concat!(
                r#"<tr data-outcome="ok" data-actor="operator"><td class="when">"#,
                r#"<time datetime="2024-05-06T07:08:09.999Z" title="2024-05-06 07:08:09 UTC" "#,
                r#"data-zoned>2024-05-06 07:08:09 UTC</time></td>"#,
                r#"<td>operator</td>"#,
                r#"<td>emergency cleanup <code>{&quot;dry_run&quot;:false}</code></td>"#,
                r#"<td>ok: revoked 1 lease &lt;held&gt;</td></tr>"#,
            )
        );
        // Within the hour: how long ago, worded by the browser; the date and time on hover.
        let recent = audit_rows(&audit, Zone::Utc, 1_714_979_289_999 + 59 * 60_000);
        assert!(
            recent.contains(concat!(
                r#"<td class="when"><time datetime="2024-05-06T07:08:09.999Z" "#,
                r#"title="2024-05-06 07:08:09 UTC" data-rel="ago">2024-05-06 07:08:09 UTC</time></td>"#
            )),
            "{recent}"
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
        let preview = audit_rows(
            &[entry(
                crate::wire::Actor::Operator,
                r#"{"dry_run":true}"#,
                true,
                "would revoke 1 lease",
            )],
            Zone::Utc,
            0,
        );
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
        let automatic = audit_rows(
            &[entry(
                Actor::System,
                r#"{"automatic":true}"#,
                false,
                "revoked 1 lease",
            )],
            Zone::Utc,
            0,
        );
        assert!(automatic.contains(r#"<td>Leasewatch <span class="detail">(system)</span></td><td>automatic cleanup</td>"#), "{automatic}");
    }

    /// When the test notifications were made: 2026-12-02 14:03:07.250 UTC.
    const NOTIFIED_MS: i64 = 1_796_220_187_250;

    fn notification(status: DeliveryStatus, attempts: u32) -> NotificationRow {
        NotificationRow {
            at_ms: NOTIFIED_MS,
            receiver: "webhook 127.0.0.1:9000".to_owned(),
            kind: crate::wire::NotificationKind::Test,
            alerts: 1,
            status,
            attempts,
            last_error: (attempts > 0).then(|| "HTTP 500 Internal Server Error".to_owned()),
            next_attempt_ms: (status == DeliveryStatus::Pending).then_some(1_796_220_191_000),
        }
    }

    #[test]
    fn firing_alerts_show_severity_task_and_since() {
        assert_eq!(
            firing_alerts(&[], Zone::Utc),
            r#"<p class="note" data-firing="none">No alert is firing.</p>"#
        );
        let alert = FiringRow {
            name: "stale_lease".to_owned(),
            severity: Severity::Warning,
            task: Some("leaky_report".to_owned()),
            summary: "A lease is held <past> the timeout".to_owned(),
            since_ms: 1_796_220_187_250,
        };
        let html = firing_alerts(&[alert], Zone::Utc);
        assert!(
            html.contains(concat!(
                r#"<tr class="severity warning" data-alert="stale_lease" data-task="leaky_report">"#,
                r#"<td data-label="Severity"><span class="badge">WARNING</span></td>"#,
                r#"<th scope="row">stale_lease</th><td data-label="Task">leaky_report</td>"#,
                r#"<td data-label="Summary">A lease is held &lt;past&gt; the timeout</td>"#,
                r#"<td class="when" data-label="Since"><time datetime="2026-12-02T14:03:07.250Z" "#,
                r#"title="2026-12-02 14:03:07 UTC" data-rel="ago">2026-12-02 14:03:07 UTC</time></td></tr>"#,
            )),
            "{html}"
        );
        assert!(html.contains(r#"<th scope="col">Severity</th>"#), "{html}");
    }

    #[test]
    fn receivers_show_their_counts_or_what_to_set() {
        let none = alert_receivers(&Alerts::default());
        assert!(none.contains(r#"data-receivers="none""#), "{none}");
        assert!(none.contains("No receiver configured"), "{none}");
        for var in [
            "ALERT_WEBHOOK_URL",
            "ALERT_ALERTMANAGER_URL",
            "ALERT_CHAT_WEBHOOK_URL",
        ] {
            assert!(none.contains(&format!("<code>{var}</code>")), "{none}");
        }
        let alerts = Alerts {
            instance: "web-1".to_owned(),
            receivers: vec![ReceiverRow {
                name: "webhook 127.0.0.1:9000".to_owned(),
                kind: crate::wire::ReceiverKind::Webhook,
                delivered: 3,
                failed_attempts: 1,
                superseded: 0,
                dropped: 2,
            }],
            queued: 1,
            ..Alerts::default()
        };
        let html = alert_receivers(&alerts);
        assert!(
            html.contains(concat!(
                r#"<li data-receiver="webhook 127.0.0.1:9000" data-kind="webhook">"#,
                r#"<strong>webhook 127.0.0.1:9000</strong> · "#,
                r#"<span data-count="delivered">3 delivered</span> · "#,
                r#"<span data-count="failed">1 failed attempt</span> · "#,
                r#"<span data-count="dropped">2 dropped</span></li>"#,
            )),
            "{html}"
        );
        assert!(!html.contains("superseded"), "{html}");
        assert!(
            html.contains("<code>instance=&quot;web-1&quot;</code>"),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<strong data-queued="1">1 notification waiting for delivery.</strong>"#
            ),
            "{html}"
        );
    }

    #[test]
    fn notifications_say_where_each_delivery_is() {
        assert!(notifications(&[], Zone::Utc, 0).contains("No notification has been sent yet."));
        let pending = notifications(
            &[notification(DeliveryStatus::Pending, 2)],
            Zone::Utc,
            NOTIFIED_MS + 60_000,
        );
        assert!(
            pending.contains(concat!(
                r#"<tr data-status="pending" data-kind="test" data-receiver="webhook 127.0.0.1:9000" data-attempts="2">"#,
                r#"<td class="when" data-label="When"><time datetime="2026-12-02T14:03:07.250Z" "#,
                r#"title="2026-12-02 14:03:07 UTC" data-rel="ago">2026-12-02 14:03:07 UTC</time></td>"#,
                r#"<td data-label="Receiver">webhook 127.0.0.1:9000</td>"#,
                r#"<td data-label="Kind">test</td><td class="num" data-label="Alerts">1</td>"#,
                r#"<td class="delivery" data-label="Delivery">"#,
                r#"<span class="status" data-status="pending">pending</span>: 2 attempts failed"#,
                r#"<span class="detail" data-next-attempt="1796220191000">Next attempt "#,
                r#"<time datetime="2026-12-02T14:03:11.000Z" title="2026-12-02 14:03:11 UTC" "#,
                r#"data-rel="until">at 14:03:11 UTC</time></span>"#,
                r#"<span class="detail error" data-last-error>Last error: HTTP 500 Internal Server Error</span>"#,
                r#"</td></tr>"#,
            )),
            "{pending}"
        );
        let untried = notifications(
            &[notification(DeliveryStatus::Pending, 0)],
            Zone::Utc,
            NOTIFIED_MS + 60_000,
        );
        assert!(untried.contains("</span>: not tried yet<span"), "{untried}");
        // Delivered after a failure: the error no longer matters, nor does a next attempt.
        let delivered = notifications(
            &[notification(DeliveryStatus::Delivered, 2)],
            Zone::Utc,
            NOTIFIED_MS + 60_000,
        );
        assert!(
            delivered.contains(
                r#"<span class="status" data-status="delivered">delivered</span> (2 attempts)</td>"#
            ),
            "{delivered}"
        );
        assert!(!delivered.contains("Last error"), "{delivered}");
        let dropped = notifications(
            &[notification(DeliveryStatus::Dropped, 1)],
            Zone::Utc,
            NOTIFIED_MS + 60_000,
        );
        assert!(
            dropped.contains("dropped</span> after 1 attempt<span"),
            "{dropped}"
        );
        assert!(dropped.contains("Last error: HTTP 500"), "{dropped}");
        assert!(!dropped.contains("Next attempt"), "{dropped}");
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
        let html = audit_rows(&[row], Zone::Utc, 0);
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
