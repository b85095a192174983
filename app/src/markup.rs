//! Read-only parts of the page written as HTML markup, set as an element's inner HTML: the
//! status line, the pool's cards, the charts ([`crate::charts`]) and the rows of the lease,
//! auction and audit tables.
//!
//! They have nothing to click. As Leptos views, each element and attribute brings its own
//! building, updating and hydrating code into the WASM; as markup they cost one string each.
//! Leptos compares the new markup with the last and leaves the DOM alone when it is the same.

use std::fmt::Write;

use crate::wire::{AuditRow, Dashboard, LeaseRow, PoolCard, StatusCount, clock_utc};

/// Writes `text` with `&`, `<`, `>` and `"` escaped, for text and attribute values.
pub fn escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// The status line: backend, database, scheduler, when the data was taken and, once the
/// browser's clock is known (`now_ms`), how long ago.
pub fn status_line(dashboard: &Dashboard, now_ms: Option<f64>) -> String {
    let mut out = String::new();
    escaped(&mut out, &dashboard.backend);
    out.push_str(" · <code>");
    escaped(&mut out, &dashboard.database);
    let scheduler = if dashboard.scheduler_running {
        "running"
    } else {
        "stopped"
    };
    let _ = write!(
        out,
        r#"</code> · scheduler <strong data-scheduler="{scheduler}">{scheduler}</strong> · as of {} UTC"#,
        clock_utc(dashboard.taken_at_ms)
    );
    if let Some(now) = now_ms {
        let age_s = ((now - dashboard.taken_at_ms as f64) / 1000.0).max(0.0);
        let _ = write!(out, " · updated {age_s:.0} s ago");
    }
    out
}

/// The pool's cards: the counts (waiting and stale ones flagged when not zero) and the
/// utilization against the maximum.
pub fn cards(pool: &PoolCard) -> String {
    let mut out = String::new();
    for (key, name, value, alert) in [
        ("total", "Total", pool.total, false),
        ("idle", "Idle", pool.idle, false),
        ("active", "Active", pool.active, false),
        ("waiting", "Waiting", pool.waiting, pool.waiting > 0),
        ("stale", "Stale", pool.stale, pool.stale > 0),
    ] {
        let class = if alert { "card alert" } else { "card" };
        let _ = write!(
            out,
            r#"<div class="{class}" data-metric="{key}"><span class="label">{name}</span><span class="value">{value}</span></div>"#
        );
    }
    let pct = (pool.active * 100).checked_div(pool.max).unwrap_or(0);
    let _ = write!(
        out,
        concat!(
            r#"<div class="card" data-metric="utilization"><span class="label">Utilization</span>"#,
            r#"<span class="value">{pct} %</span>"#,
            r#"<meter min="0" max="100" low="80" high="95" optimum="0" value="{pct}"></meter>"#,
            r#"<span class="detail">{active} of max {max} (min {min})</span></div>"#,
        ),
        pct = pct,
        active = pool.active,
        max = pool.max,
        min = pool.min,
    );
    out
}

/// The lease table's rows.
pub fn lease_rows(leases: &[LeaseRow]) -> String {
    let mut out = String::new();
    for lease in leases {
        out.push_str("<tr");
        if lease.stale {
            out.push_str(r#" class="stale""#);
        }
        let _ = write!(out, r#" data-lease="{}" data-task=""#, lease.id);
        escaped(&mut out, &lease.task);
        let _ = write!(out, r#""><td>#{}</td><td>"#, lease.id);
        escaped(&mut out, &lease.task);
        let _ = write!(out, "</td><td>{}</td><td>", lease.run_id);
        match lease.backend_pid {
            Some(pid) => {
                let _ = write!(out, "pid {pid}");
            }
            None => out.push('—'),
        }
        let _ = write!(
            out,
            r#"</td><td class="num">{:.1} s</td><td>{}</td></tr>"#,
            lease.held_ms as f64 / 1000.0,
            if lease.stale { "STALE" } else { "ok" }
        );
    }
    out
}

/// The auction table's rows: one per status.
pub fn auction_rows(auctions: &[StatusCount]) -> String {
    let mut out = String::new();
    for row in auctions {
        out.push_str(r#"<tr data-status=""#);
        escaped(&mut out, &row.status);
        out.push_str(r#""><th scope="row">"#);
        escaped(&mut out, &row.status);
        let _ = write!(out, r#"</th><td class="num">{}</td></tr>"#, row.count);
    }
    out
}

/// The audit table's rows, newest first.
pub fn audit_rows(audit: &[AuditRow]) -> String {
    let mut out = String::new();
    for entry in audit {
        out.push_str(r#"<tr data-outcome=""#);
        escaped(&mut out, &entry.outcome);
        let _ = write!(out, r#""><td>{}</td><td>"#, clock_utc(entry.at_ms));
        escaped(&mut out, &entry.role);
        out.push_str("</td><td>");
        escaped(&mut out, &entry.action.replace('_', " "));
        out.push_str(" <code>");
        escaped(&mut out, &entry.arguments);
        out.push_str("</code></td><td>");
        escaped(&mut out, &entry.outcome);
        out.push_str(": ");
        escaped(&mut out, &entry.result);
        out.push_str("</td></tr>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut out = String::new();
        escaped(&mut out, r#"<a href="x">&</a>"#);
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
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
            status: "active".to_owned(),
            count: 12,
        }];
        assert_eq!(
            auction_rows(&auctions),
            r#"<tr data-status="active"><th scope="row">active</th><td class="num">12</td></tr>"#
        );
        let audit = [AuditRow {
            at_ms: 1_714_979_289_999,
            role: "operator".to_owned(),
            action: "emergency_cleanup".to_owned(),
            arguments: r#"{"dry_run":false}"#.to_owned(),
            outcome: "ok".to_owned(),
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
