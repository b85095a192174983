//! `/audit`: the audit log from the database, filtered (action, actor, outcome, time) and a page
//! at a time, newest first, in the dashboard's audit table.

use maud::html;

use super::write::{link, pager, refusal_note, select_field, span_fields, text_field, unavailable};
use crate::{
    base::href,
    markup::audit_rows,
    prefs::Zone,
    wire::{ActionName, Actor, AuditOutcome, AuditPage, AuditQuery, Read},
};

/// The actions the audit log records besides the control actions: Leasewatch's own.
const SYSTEM_ACTIONS: [&str; 2] = [
    leasewatch_types::PREDICTIVE_CLEANUP,
    leasewatch_types::REPLACE_SESSION_SECRET,
];

/// The audit page's content: its heading, the filter form, the refusal beside it or the
/// entries (as the dashboard's table has them: the last hour before `now_ms` relative), and the
/// links to the other pages of them.
pub(super) fn audit_body(query: &AuditQuery, found: &Read<AuditPage>, now_ms: i64) -> String {
    let refused = match found {
        Read::Refused(refusal) => Some(refusal),
        _ => None,
    };
    let actors: Vec<&str> = Actor::ALL.iter().map(|a| a.as_str()).collect();
    let outcomes: Vec<&str> = AuditOutcome::ALL.iter().map(|o| o.as_str()).collect();
    let actions = ActionName::ALL
        .iter()
        .map(|a| a.as_str())
        .chain(SYSTEM_ACTIONS);
    let first = AuditQuery {
        before: None,
        ..query.clone()
    };
    let filtered = AuditQuery {
        limit: None,
        ..first.clone()
    } != AuditQuery::default();
    html! {
        h1 { "Audit log" }
        form.filters method="get" action=(href("/audit")) aria-label="Filter the audit log" {
            (text_field("action", "Action", query.action.as_deref(), (Some("action-names"), None), refused))
            datalist #action-names { @for action in actions { option value=(action) {} } }
            (select_field("actor", "Who", query.actor.as_deref(), &actors, refused))
            (select_field("outcome", "Outcome", query.outcome.as_deref(), &outcomes, refused))
            (span_fields(query.from.as_deref(), query.to.as_deref(), refused))
            @if let Some(limit) = query.limit { input type="hidden" name="limit" value=(limit); }
            div.buttons {
                button type="submit" { "Show entries" }
                a href=(href("/audit")) { "Clear filters" }
            }
        }
        @match found {
            Read::Found(page) => {
                @if page.entries.is_empty() {
                    p.note data-empty="audit" {
                        @if filtered {
                            "No entries match these filters."
                        } @else {
                            "The audit log has no entries yet."
                        }
                    }
                } @else {
                    table.audit {
                        thead {
                            tr {
                                th scope="col" { "When" }
                                th scope="col" { "Who" }
                                th scope="col" { "Action" }
                                th scope="col" { "Result" }
                            }
                        }
                        tbody { (maud::PreEscaped(audit_rows(&page.entries, Zone::Utc, now_ms))) }
                    }
                }
                (pager(
                    "Pages of the audit log",
                    query.before.is_some().then(|| link("/audit", first.to_query_string())),
                    page.next_before.map(|before| {
                        let next = AuditQuery { before: Some(before), ..query.clone() };
                        (link("/audit", next.to_query_string()), "Older entries")
                    }),
                ))
            }
            Read::Refused(refusal) => (refusal_note(refusal)),
            Read::Missing => {}
            Read::Unavailable => (unavailable("The audit entries")),
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AuditRow, Refusal};

    fn entry(action: &str) -> AuditRow {
        AuditRow {
            at_ms: 1_796_220_187_250,
            role: Actor::Operator,
            action: action.to_owned(),
            arguments: r#"{"task":"health_check"}"#.to_owned(),
            dry_run: false,
            outcome: AuditOutcome::Ok,
            result: "health_check paused".to_owned(),
        }
    }

    #[test]
    fn entries_show_in_the_audit_table_with_the_next_page_and_the_first() {
        let query = AuditQuery {
            actor: Some("operator".to_owned()),
            limit: Some(2),
            before: Some(40),
            ..AuditQuery::default()
        };
        let html = audit_body(
            &query,
            &Read::Found(AuditPage {
                entries: vec![entry("pause"), entry("resume")],
                next_before: Some(37),
            }),
            1_796_220_187_250 + 86_400_000,
        );
        assert!(html.contains(r#"<option value="operator" selected>operator</option>"#));
        assert!(
            html.contains(r#"<input type="hidden" name="limit" value="2">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<option value="predictive_cleanup">"#),
            "{html}"
        );
        assert_eq!(
            html.matches(r#"<tr data-outcome="ok""#).count(),
            2,
            "{html}"
        );
        // A day old: dated, in UTC until the browser writes it on the reader's clock.
        assert!(
            html.contains(
                r#"title="2026-12-02 14:03:07 UTC" data-zoned>2026-12-02 14:03:07 UTC</time>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<a href="/audit?actor=operator&amp;limit=2" data-page="newest">Newest</a>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"<a href="/audit?actor=operator&amp;limit=2&amp;before=37" rel="next" data-page="older">Older entries</a>"#),
            "{html}"
        );
        let refused = audit_body(
            &AuditQuery::default(),
            &Read::Refused(Refusal::new("actor", r#""root" is not one of …"#)),
            0,
        );
        assert!(refused.contains(r#"data-refused="actor""#), "{refused}");
    }
}
