//! Read-only parts of the page written as HTML markup, set as an element's inner HTML: the
//! charts ([`crate::charts`]) and the rows of the lease, auction and audit tables.
//!
//! They have nothing to click. As Leptos views, each element and attribute brings its own
//! building, updating and hydrating code into the WASM; as markup they cost one string each.
//! Leptos compares the new markup with the last and leaves the DOM alone when it is the same.

use std::fmt::Write;

use crate::wire::{AuditRow, LeaseRow, StatusCount, clock_utc};

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
