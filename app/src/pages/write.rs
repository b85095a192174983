//! What the history pages' content is written with: times, durations, the filter forms'
//! fields, the refusal beside them and the links between pages.

use maud::{Markup, html};

use crate::{
    prefs::{Shown, Zone, time_markup},
    wire::Refusal,
};

/// An instant as these pages show it: "2026-12-02 14:03:07 UTC", rewritten by the browser on
/// the reader's clock (the one place they write a time, so it follows the dashboard's toggle).
pub(super) fn when(at_ms: i64) -> Markup {
    time_markup(at_ms, Zone::Utc, Shown::DateTime)
}

/// "12 ms", "1.2 s", "3 min 4 s": a duration as the pages list it.
pub(super) fn took(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// What the page says instead of its data while the database cannot be read.
pub(super) fn unavailable(what: &str) -> Markup {
    html! {
        p.banner.error role="alert" data-banner="database" {
            strong { "The database cannot be read now." }
            " " (what) " are kept there: this page shows them once it answers again (reload it)."
        }
    }
}

/// The refusal beside a filter form, which the refused field points to.
pub(super) fn refusal_note(refusal: &Refusal) -> Markup {
    html! {
        p.banner.error #filter-error role="alert" data-refused=(refusal.field) {
            strong { (refusal.field) } ": " (refusal.message)
        }
    }
}

/// A labelled text field of a filter form, with its value as given, marked invalid when it is
/// the field refused. `list` names a datalist of suggestions.
pub(super) fn text_field(
    name: &str,
    label: &str,
    value: Option<&str>,
    (list, placeholder): (Option<&str>, Option<&str>),
    refused: Option<&Refusal>,
) -> Markup {
    let invalid = refused.is_some_and(|r| r.field == name);
    html! {
        div.field {
            label for={ "filter-" (name) } { (label) }
            input #{ "filter-" (name) } type="text" name=(name) value=[value] list=[list]
                placeholder=[placeholder] autocomplete="off" spellcheck="false"
                aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then_some("filter-error")];
        }
    }
}

/// A labelled select of a filter form: "any", then `choices`; a value given that is none of
/// them is kept as an option, so the form shows what the URL asks for.
pub(super) fn select_field(
    name: &str,
    label: &str,
    value: Option<&str>,
    choices: &[&str],
    refused: Option<&Refusal>,
) -> Markup {
    let invalid = refused.is_some_and(|r| r.field == name);
    let unknown = value.filter(|v| !choices.contains(v));
    html! {
        div.field {
            label for={ "filter-" (name) } { (label) }
            select #{ "filter-" (name) } name=(name)
                aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then_some("filter-error")] {
                option value="" selected[value.is_none()] { "any" }
                @for choice in choices {
                    option value=(choice) selected[value == Some(*choice)] { (choice) }
                }
                @if let Some(unknown) = unknown {
                    option value=(unknown) selected { (unknown) }
                }
            }
        }
    }
}

/// The from and to fields every filter form has (RFC 3339, UTC by default).
pub(super) fn span_fields(
    from: Option<&str>,
    to: Option<&str>,
    refused: Option<&Refusal>,
) -> Markup {
    let hint = Some("2026-12-01T00:00:00Z");
    html! {
        (text_field("from", "From (RFC 3339)", from, (None, hint), refused))
        (text_field("to", "To (RFC 3339)", to, (None, hint), refused))
    }
}

/// A page of a list: "Newest" back to the first page when on a later one, "Older …" on to the
/// next when there is one.
pub(super) fn pager(label: &str, newest: Option<String>, older: Option<(String, &str)>) -> Markup {
    html! {
        @if newest.is_some() || older.is_some() {
            nav.pager aria-label=(label) {
                @if let Some(href) = newest { a href=(href) data-page="newest" { "Newest" } }
                @if let Some((href, words)) = older {
                    a href=(href) rel="next" data-page="older" { (words) }
                }
            }
        }
    }
}

/// `path` (under the dashboard's prefix) with `query` (a query string, possibly empty).
pub(super) fn link(path: &str, query: String) -> String {
    let path = crate::base::href(path);
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_an_element_with_its_instant() {
        assert_eq!(
            when(1_796_220_187_250).into_string(),
            concat!(
                r#"<time datetime="2026-12-02T14:03:07.250Z" title="2026-12-02 14:03:07 UTC" "#,
                r#"data-zoned>2026-12-02 14:03:07 UTC</time>"#
            )
        );
    }

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(took(12), "12 ms");
        assert_eq!(took(1_250), "1.2 s");
        assert_eq!(took(184_000), "3 min 4 s");
    }

    #[test]
    fn a_form_keeps_what_it_was_given_and_marks_the_refused_field() {
        let refused = Refusal::new("outcome", "\"broken\" is not one of …");
        let html = select_field(
            "outcome",
            "Outcome",
            Some("broken"),
            &["failed"],
            Some(&refused),
        )
        .into_string();
        assert!(html.contains(r#"aria-invalid="true""#), "{html}");
        assert!(
            html.contains(r#"<option value="broken" selected>broken</option>"#),
            "{html}"
        );
        let html =
            text_field("task", "Task", Some(r#""><script>"#), (None, None), None).into_string();
        assert!(
            html.contains(r#"value="&quot;&gt;&lt;script&gt;""#),
            "{html}"
        );
        assert!(!html.contains("aria-invalid"), "{html}");
    }
}
