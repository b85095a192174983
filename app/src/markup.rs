//! Read-only parts of the page written as HTML markup, set as an element's inner HTML: the
//! status line, the pool's cards, the charts ([`crate::charts`]) and the rows of the lease,
//! auction and audit tables.
//!
//! They have nothing to click. As Leptos views, each element and attribute brings its own
//! building, updating and hydrating code into the WASM; as markup they cost one string each.
//! Leptos compares the new markup with the last and leaves the DOM alone when it is the same.
//! They are written with `maud`, which escapes every interpolated value unless told not to.

use maud::{Markup, html};

use crate::wire::{AuditRow, Dashboard, LeaseRow, PoolCard, StatusCount, clock_utc};

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

/// The pool's cards: the counts (waiting and stale ones flagged when not zero) and the
/// utilization against the maximum.
pub fn cards(pool: &PoolCard) -> String {
    let pct = (pool.active * 100).checked_div(pool.max).unwrap_or(0);
    let counts = [
        ("total", "Total", pool.total, false),
        ("idle", "Idle", pool.idle, false),
        ("active", "Active", pool.active, false),
        ("waiting", "Waiting", pool.waiting, pool.waiting > 0),
        ("stale", "Stale", pool.stale, pool.stale > 0),
    ];
    html! {
        @for (key, name, value, alert) in counts {
            div class=(if alert { "card alert" } else { "card" }) data-metric=(key) {
                span.label { (name) } span.value { (value) }
            }
        }
        div.card data-metric="utilization" {
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

/// The audit table's rows, newest first.
pub fn audit_rows(audit: &[AuditRow]) -> String {
    rows(audit, |entry| {
        html! {
            tr data-outcome=(entry.outcome) {
                td { (clock_utc(entry.at_ms)) }
                td { (entry.role) }
                td { (entry.action.replace('_', " ")) " " code { (entry.arguments) } }
                td { (entry.outcome) ": " (entry.result) }
            }
        }
    })
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
        assert!(html.contains(r#"<div class="card alert" data-metric="waiting">"#));
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
                r#"<tr data-outcome="ok"><td>07:08:09</td><td>operator</td>"#,
                r#"<td>emergency cleanup <code>{&quot;dry_run&quot;:false}</code></td>"#,
                r#"<td>ok: revoked 1 lease &lt;held&gt;</td></tr>"#,
            )
        );
    }
}
