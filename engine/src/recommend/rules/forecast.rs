//! The exhaustion forecast (PostgreSQL): the server's client connections are rising towards
//! its usable slots, fast and steadily enough to run out within the horizon.

use super::{Finding, Inputs, Thresholds};
use crate::recommend::Severity;

/// The forecaster's alarm is raised: critical, shown at once (the alarm has its own
/// hysteresis: several reads in a row raise it, more clear it).
pub(super) fn exhaustion_predicted(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    let Some(forecast) = inputs.forecast else {
        return Vec::new();
    };
    let Some(alarm) = &forecast.alarm else {
        return Vec::new();
    };
    let trend = forecast
        .trend
        .as_ref()
        .map(|t| format!(" (fit {:.2} over {:.0} s)", t.fit, t.window_secs))
        .unwrap_or_default();
    let acting = if forecast.acting {
        "Leasewatch has taken back its own long-held leases and idle connections and defers \
         scheduled runs that can wait; it never ends another application's sessions."
    } else {
        "Leasewatch does not act on the forecast (PREDICTIVE_CLEANUP=off)."
    };
    vec![
        Finding::new(
            "exhaustion_predicted",
            Severity::Critical,
            format!(
                "Exhaustion predicted in ~{}",
                leasewatch_types::rounded_span(alarm.eta_secs)
            ),
            format!(
                "The server's client connections are rising {:.1} per minute{trend}: {} of {} usable now, exhaustion predicted in ~{} (horizon {}). Growing: {}. {acting} Find what is growing and stop it, or give the server more connections.",
                alarm.per_minute,
                forecast.used,
                forecast.usable,
                leasewatch_types::rounded_span(alarm.eta_secs),
                leasewatch_types::rounded_span(forecast.horizon_secs as f64),
                alarm.growing_line(),
            ),
            None,
        )
        .at_once(),
    ]
}

#[cfg(test)]
mod tests {
    use crate::{
        predict::{Alarm, ForecastView, Growth, TrendView},
        recommend::{Severity, world::*},
    };

    fn forecast(alarm: bool, acting: bool) -> ForecastView {
        ForecastView {
            read_at: at(600),
            used: 12,
            usable: 17,
            trend: Some(TrendView {
                per_minute: 10.0,
                level: 12.0,
                fit: 0.93,
                window_secs: 20.0,
                eta_secs: Some(30.0),
            }),
            alarm: alarm.then(|| Alarm {
                since: at(590),
                eta_secs: 29.6,
                per_minute: 10.0,
                growing: vec![Growth {
                    application: "psql".into(),
                    user: "hog".into(),
                    from: 3,
                    to: 9,
                }],
            }),
            horizon_secs: 300,
            acting,
        }
    }

    #[test]
    fn a_raised_alarm_is_critical_and_names_the_forecast_the_trend_and_who_grows() {
        let mut w = World::new();
        w.forecast = Some(forecast(true, true));
        let f = w.one("exhaustion_predicted");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.title, "Exhaustion predicted in ~30 s");
        for part in [
            "rising 10.0 per minute (fit 0.93 over 20 s)",
            "12 of 17 usable now",
            "psql (user hog) 3 → 9",
            "never ends another application's sessions",
        ] {
            assert!(f.detail.contains(part), "{part:?} in {}", f.detail);
        }
        w.forecast = Some(forecast(true, false));
        assert!(
            w.one("exhaustion_predicted")
                .detail
                .contains("PREDICTIVE_CLEANUP=off")
        );
    }

    #[test]
    fn a_trend_without_the_alarm_says_nothing() {
        let mut w = World::new();
        w.forecast = Some(forecast(false, true));
        assert_eq!(w.ids(), ["all_clear"]);
    }
}
