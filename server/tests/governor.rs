//! The connection-budget governor on a real server (the scenario is in `support/budget.rs`):
//! sampled every 100 ms, the web app is never refused, the instances' task connections stay
//! within the budget the governor last read, every task keeps completing (none lost, none run
//! twice), and the shares yield at the web app's peak and come back when it shrinks.

#[path = "support/budget.rs"]
mod budget;
mod support;

use std::time::Duration;

use budget::{INSTANCES, Sample, USABLE};

/// How long the governor may take to follow the server: a read every 2 s, then a window.
const REACTION: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_server_and_yield_to_the_web_app() {
    let Some(report) = budget::run(true).await else {
        return;
    };
    let r = &report;
    eprintln!(
        "shares {:?}, at the peak {:?}; {} samples, the instances' sessions peaked at {}; \
         {} runs done, {} skipped at the full limit; shares back {:?} after the web app began \
         to shrink, every task succeeded again {:?} after it was done",
        r.shares_before,
        r.shares_at_peak,
        r.samples.len(),
        r.peak_sessions(),
        r.completions,
        r.over_limit_skips,
        r.shares_back_after,
        r.recovered_after
    );
    assert_eq!(
        r.web_refused,
        Vec::<String>::new(),
        "the web app is never refused"
    );
    assert!(r.samples.len() > 200, "{} samples", r.samples.len());
    for (i, s) in r.samples.iter().enumerate() {
        assert!(
            s.tasks + s.overhead + s.foreign <= USABLE,
            "the server was full at sample {i}: {s:?}"
        );
        // Within the budget as the governor could have read it lately; the floor is one task
        // connection per instance, whatever the budget.
        let allowed = r.samples[..=i]
            .iter()
            .filter(|earlier| s.at.duration_since(earlier.at) <= REACTION)
            .map(Sample::budget)
            .max()
            .unwrap_or(USABLE)
            .max(INSTANCES as i64);
        assert!(
            s.tasks <= allowed,
            "sample {i}: {} task connections over a budget of {allowed}: {s:?}",
            s.tasks
        );
    }
    assert!(
        r.shares_at_peak
            .iter()
            .zip(&r.shares_before)
            .all(|(peak, before)| peak < before),
        "the shares yield to the web app: {:?} → {:?}",
        r.shares_before,
        r.shares_at_peak
    );
    // The web app gives a connection back every second, from 10 to 2: 8 s, then a read.
    let back = r.shares_back_after.expect("shares back within 20 s");
    assert!(
        back < Duration::from_secs(12),
        "shares back {back:?} after the web app began to shrink"
    );
    assert!(
        r.recovered_after < Duration::from_secs(10),
        "every task succeeded again {:?} after the web app shrank",
        r.recovered_after
    );
    for (issued, counted) in &r.issued_and_counted {
        assert_eq!(issued, counted, "every run has its outcome");
    }
    assert_eq!(
        r.not_after_peak,
        Vec::<String>::new(),
        "every task ran after the peak"
    );
    assert_eq!(
        r.duplicated_transitions, 0,
        "each transition is recorded once"
    );
    assert!(
        r.exits
            .iter()
            .all(|(code, panicked)| *code == Some(0) && !panicked),
        "{:?}",
        r.exits
    );
}
