//! `/runs`: the runs the history holds, filtered (task, outcome, failure kind, instance, time)
//! and a page at a time, newest first; and `/runs/{instance}/{run_id}`: one run, then each of
//! its attempts with its error, the delay after it and the leases it held.

use maud::{Markup, html};

use super::write::{
    link, pager, refusal_note, select_field, span_fields, text_field, took, unavailable, when,
};
use crate::{
    base::href,
    markup::clipped,
    wire::{
        AttemptRow, FailureKind, Read, RunDetail, RunOutcome, RunRow, RunsPage, RunsQuery, RunsView,
    },
};

/// The runs page's content: its heading, the filter form, the refusal beside it or the runs,
/// and the links to the other pages of them.
pub(super) fn runs_body(query: &RunsQuery, view: &RunsView) -> String {
    let refused = match &view.found {
        Read::Refused(refusal) => Some(refusal),
        _ => None,
    };
    let outcomes: Vec<&str> = RunOutcome::ALL.iter().map(|o| o.as_str()).collect();
    let failures: Vec<&str> = FailureKind::ALL.iter().map(|f| f.as_str()).collect();
    html! {
        h1 { "Runs" }
        form.filters method="get" action=(href("/runs")) aria-label="Filter runs" {
            (text_field("task", "Task", query.task.as_deref(), (Some("task-names"), None), refused))
            datalist #task-names { @for task in &view.tasks { option value=(task) {} } }
            (select_field("outcome", "Outcome", query.outcome.as_deref(), &outcomes, refused))
            (select_field("failure", "Failure", query.failure.as_deref(), &failures, refused))
            (text_field("instance", "Instance", query.instance.as_deref(), (None, None), refused))
            (span_fields(query.from.as_deref(), query.to.as_deref(), refused))
            @if let Some(limit) = query.limit { input type="hidden" name="limit" value=(limit); }
            div.buttons {
                button type="submit" { "Show runs" }
                a href=(href("/runs")) { "Clear filters" }
            }
        }
        @match &view.found {
            Read::Found(page) => (runs_list(query, page)),
            Read::Refused(refusal) => (refusal_note(refusal)),
            Read::Missing => {}
            Read::Unavailable => (unavailable("The runs")),
        }
    }
    .into_string()
}

fn runs_list(query: &RunsQuery, page: &RunsPage) -> Markup {
    let first = RunsQuery {
        before: None,
        ..query.clone()
    };
    let filtered = RunsQuery {
        limit: None,
        ..first.clone()
    } != RunsQuery::default();
    let newest = query
        .before
        .is_some()
        .then(|| link("/runs", first.to_query_string()));
    let older = page.next.as_ref().map(|next| {
        let next = RunsQuery {
            before: Some(next.clone()),
            ..query.clone()
        };
        (link("/runs", next.to_query_string()), "Older runs")
    });
    html! {
        @if page.runs.is_empty() {
            p.note data-empty="runs" {
                @if filtered {
                    "No runs match these filters."
                } @else {
                    "No runs in the history yet: each is written within seconds of finishing."
                }
            }
        } @else {
            table.runs-list {
                thead {
                    tr {
                        th scope="col" { "Started" }
                        th scope="col" { "Task" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "Failure" }
                        th.num scope="col" { "Took" }
                        th.num scope="col" { "Attempts" }
                        th.num scope="col" { "Rows" }
                        th scope="col" { "Instance" }
                        th scope="col" { span.sr-only { "Details" } }
                    }
                }
                tbody { @for run in &page.runs { (run_line(run)) } }
            }
        }
        (pager("Pages of runs", newest, older))
    }
}

/// Where a run's own page is.
fn run_href(run: &RunRow) -> String {
    format!(
        "{}/runs/{}/{}",
        crate::base::base(),
        leasewatch_types::percent_encode(&run.instance),
        run.run_id
    )
}

/// A run's row: when, what, how it ended and why, how long and how hard it tried, where.
fn run_line(run: &RunRow) -> Markup {
    html! {
        tr data-run=(run.run_id) data-instance=(run.instance) data-task=(run.task)
            data-outcome=(run.outcome) {
            td.when data-label="Started" { (when(run.started_at_ms)) }
            th scope="row" data-label="Task" {
                (run.task) @if run.manual { " " span.tag { "run now" } }
            }
            td.outcome data-label="Outcome" data-outcome=(run.outcome) {
                (run.outcome) span.detail { (clipped(&run.detail)) }
            }
            td data-label="Failure" data-failure=[run.failure] {
                (run.failure.map_or("—", FailureKind::as_str))
            }
            td.num data-label="Took" { (took(run.duration_ms)) }
            td.num data-label="Attempts" { (run.attempts) }
            td.num data-label="Rows" { (run.rows) }
            td data-label="Instance" { (run.instance) span.detail { (run.host) } }
            td {
                a href=(run_href(run)) {
                    "Details" span.sr-only { " of run " (run.run_id) " of " (run.task) }
                }
            }
        }
    }
}

/// A run's page's content: its heading and summary, then its attempts; or why it is not
/// there.
pub(super) fn run_body(instance: &str, run_id: u64, found: &Read<RunDetail>) -> String {
    html! {
        @match found {
            Read::Found(detail) => (run_detail(detail)),
            Read::Missing => {
                h1 { "Run " (run_id) }
                p.banner.error role="alert" data-banner="missing" {
                    strong { "No run " (run_id) " of instance " (instance) " in the history." }
                    " Runs are kept for " code { "HISTORY_RETENTION" } "; a run still going is on "
                    "the dashboard."
                }
                p { a href=(href("/runs")) { "All runs" } }
            }
            Read::Refused(refusal) => { h1 { "Run " (run_id) } (refusal_note(refusal)) }
            Read::Unavailable => { h1 { "Run " (run_id) } (unavailable("Runs")) }
        }
    }
    .into_string()
}

fn run_detail(detail: &RunDetail) -> Markup {
    let run = &detail.run;
    let of_task = RunsQuery {
        task: Some(run.task.clone()),
        ..RunsQuery::default()
    };
    html! {
        h1 { "Run " (run.run_id) " of " (run.task) }
        p.back { a href=(link("/runs", of_task.to_query_string())) { "All runs of " (run.task) } }
        dl.run-summary data-outcome=(run.outcome) {
            div {
                dt { "Outcome" }
                dd.outcome data-outcome=(run.outcome) {
                    (run.outcome) @if let Some(failure) = run.failure { " (" (failure) ")" }
                }
            }
            div { dt { "Detail" } dd.text { (run.detail) } }
            div {
                dt { "Started" }
                dd { (when(run.started_at_ms)) @if run.manual { " by “run now”" } }
            }
            @if let Some(due) = run.scheduled_at_ms { div { dt { "Due" } dd { (when(due)) } } }
            @if detail.deferred_ms > 0 {
                div {
                    dt { "Deferred" }
                    dd { (took(detail.deferred_ms)) ", while exhaustion of the server was predicted" }
                }
            }
            div { dt { "Took" } dd { (took(run.duration_ms)) ", retries included" } }
            div { dt { "Attempts" } dd { (run.attempts) } }
            div { dt { "Rows changed" } dd { (run.rows) } }
            div { dt { "Most leases at once" } dd { (run.leases) } }
            div { dt { "Instance" } dd { (run.instance) " on " (run.host) } }
        }
        h2 { "Attempts" }
        @if detail.attempts.is_empty() {
            p.note { "The run's record lists no attempts." }
        } @else {
            ol.attempts { @for attempt in &detail.attempts { (attempt_item(attempt)) } }
        }
    }
}

/// One attempt: when and how long, its error and failure kind, the delay before the next,
/// and each lease it held with its backend and how long it waited for a connection.
fn attempt_item(attempt: &AttemptRow) -> Markup {
    let heading = format!("attempt-{}", attempt.number);
    html! {
        li.attempt data-attempt=(attempt.number)
            data-failed=[attempt.error.is_some().then_some("true")] aria-labelledby=(heading) {
            h3 #(heading) { "Attempt " (attempt.number) }
            p { (when(attempt.started_at_ms)) " · took " (took(attempt.duration_ms)) }
            @match &attempt.error {
                Some(error) => p.error data-failure=[attempt.failure] {
                    strong { "Failed" @if let Some(failure) = attempt.failure { " (" (failure) ")" } }
                    ": " (error)
                },
                None => p { "No error." },
            }
            @if let Some(delay) = attempt.retry_delay_ms {
                p.retry-delay { "Then waited " (took(delay)) " before the next attempt." }
            }
            @if attempt.leases.is_empty() {
                p.note { "It held no lease." }
            } @else {
                table.leases-used {
                    thead {
                        tr {
                            th scope="col" { "Lease" }
                            th scope="col" { "Backend" }
                            th.num scope="col" { "Waited for a connection" }
                        }
                    }
                    tbody {
                        @for lease in &attempt.leases {
                            tr data-lease=(lease.lease_id) {
                                td { "#" (lease.lease_id) }
                                td {
                                    @match lease.backend_pid {
                                        Some(pid) => { "pid " (pid) }
                                        None => "—",
                                    }
                                }
                                td.num { (took(lease.waited_ms)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{LeaseUseRow, Refusal};

    fn run(run_id: u64, outcome: RunOutcome) -> RunRow {
        RunRow {
            instance: "4242-0a1b2c3d".to_owned(),
            host: "web-1".to_owned(),
            task: "health_check".to_owned(),
            run_id,
            manual: false,
            scheduled_at_ms: Some(1_796_220_180_000),
            started_at_ms: 1_796_220_187_250,
            duration_ms: 1_250,
            outcome,
            failure: (outcome == RunOutcome::Failed).then_some(FailureKind::AcquireTimeout),
            detail: "no connection <within> 5 s".to_owned(),
            rows: 3,
            attempts: 2,
            leases: 1,
        }
    }

    fn view(found: Read<RunsPage>) -> RunsView {
        RunsView {
            tasks: vec!["health_check".to_owned(), "status_transitions".to_owned()],
            found,
        }
    }

    #[test]
    fn runs_list_newest_first_with_their_detail_links_and_the_next_page() {
        let query = RunsQuery {
            task: Some("health_check".to_owned()),
            outcome: Some("failed".to_owned()),
            ..RunsQuery::default()
        };
        let html = runs_body(
            &query,
            &view(Read::Found(RunsPage {
                runs: vec![run(7, RunOutcome::Failed), run(6, RunOutcome::Succeeded)],
                next: Some("1796220187250.6.4242-0a1b2c3d".to_owned()),
            })),
        );
        assert!(
            html.contains(r#"<form class="filters" method="get" action="/runs""#),
            "{html}"
        );
        assert!(
            html.contains(r#"value="health_check" list="task-names""#),
            "{html}"
        );
        assert!(
            html.contains(r#"<option value="failed" selected>failed</option>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<datalist id="task-names"><option value="health_check"></option>"#)
        );
        let first = html.find(r#"data-run="7""#).unwrap();
        assert!(
            first < html.find(r#"data-run="6""#).unwrap(),
            "newest first"
        );
        assert!(
            html.contains(r#"<a href="/runs/4242-0a1b2c3d/7">Details"#),
            "{html}"
        );
        assert!(
            html.contains("no connection &lt;within&gt; 5 s"),
            "escaped: {html}"
        );
        assert!(html.contains(r#"data-failure="acquire_timeout">acquire_timeout</td>"#));
        assert!(
            html.contains(
                r#"<a href="/runs?task=health_check&amp;outcome=failed&amp;before=1796220187250.6.4242-0a1b2c3d" rel="next" data-page="older">Older runs</a>"#
            ),
            "{html}"
        );
        assert!(!html.contains("Newest"), "on the first page: {html}");
        // A later page links back to the first, with the same filters.
        let later = RunsQuery {
            before: Some("1.2.x".to_owned()),
            ..query
        };
        let html = runs_body(
            &later,
            &view(Read::Found(RunsPage {
                runs: vec![],
                next: None,
            })),
        );
        assert!(html.contains(r#"<a href="/runs?task=health_check&amp;outcome=failed" data-page="newest">Newest</a>"#), "{html}");
        assert!(html.contains("No runs match these filters."), "{html}");
    }

    #[test]
    fn a_refused_filter_is_named_beside_the_form_and_an_outage_says_so() {
        let query = RunsQuery {
            task: Some("DROP TABLE".to_owned()),
            ..RunsQuery::default()
        };
        let refusal = Refusal::new("task", r#""DROP TABLE" is not a name"#);
        let html = runs_body(&query, &view(Read::Refused(refusal)));
        assert!(html.contains(r#"data-refused="task""#), "{html}");
        assert!(
            html.contains("&quot;DROP TABLE&quot; is not a name"),
            "{html}"
        );
        assert!(html.contains(r#"aria-invalid="true" aria-describedby="filter-error""#));
        assert!(!html.contains("<table"), "{html}");
        let html = runs_body(&RunsQuery::default(), &view(Read::Unavailable));
        assert!(html.contains(r#"data-banner="database""#), "{html}");
        assert!(html.contains("The database cannot be read now."), "{html}");
    }

    #[test]
    fn a_run_shows_each_attempt_its_error_delay_and_leases() {
        let detail = RunDetail {
            run: run(7, RunOutcome::Failed),
            deferred_ms: 0,
            attempts: vec![
                AttemptRow {
                    number: 1,
                    started_at_ms: 1_796_220_187_250,
                    duration_ms: 5_000,
                    error: Some("no connection within 5 s".to_owned()),
                    failure: Some(FailureKind::AcquireTimeout),
                    retry_delay_ms: Some(1_000),
                    leases: vec![],
                },
                AttemptRow {
                    number: 2,
                    started_at_ms: 1_796_220_193_250,
                    duration_ms: 40,
                    error: None,
                    failure: None,
                    retry_delay_ms: None,
                    leases: vec![LeaseUseRow {
                        lease_id: 12,
                        backend_pid: Some(4321),
                        waited_ms: 3,
                    }],
                },
            ],
        };
        let html = run_body("4242-0a1b2c3d", 7, &Read::Found(detail));
        assert!(html.contains("<h1>Run 7 of health_check</h1>"), "{html}");
        assert!(html.contains(r#"<a href="/runs?task=health_check">All runs of health_check</a>"#));
        assert!(
            html.contains(r#"data-attempt="1" data-failed="true""#),
            "{html}"
        );
        assert!(
            html.contains("<strong>Failed (acquire_timeout)</strong>: no connection within 5 s")
        );
        assert!(
            html.contains("Then waited 1.0 s before the next attempt."),
            "{html}"
        );
        assert!(html.contains("It held no lease."), "{html}");
        assert!(
            html.contains(
                r#"<tr data-lease="12"><td>#12</td><td>pid 4321</td><td class="num">3 ms</td></tr>"#
            ),
            "{html}"
        );
        let missing = run_body("4242-0a1b2c3d", 8, &Read::Missing);
        assert!(missing.contains("No run 8 of instance 4242-0a1b2c3d in the history."));
    }
}
