//! Typed reads of one environment variable each. An empty value counts as unset; a bad one
//! is a [`ConfigError`] naming the variable, the value and what is allowed.

use std::time::Duration;

use leasewatch_engine::governor::Headroom;

use crate::auth::secret::Secret;

/// A configuration value that was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}={value:?}: {allowed}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// The value given (passwords redacted).
    pub value: String,
    /// What would have been accepted.
    pub allowed: String,
}

/// Shortest token accepted.
const MIN_TOKEN: usize = 16;

/// The variables, through a lookup (the process environment, or a map in tests).
pub struct Env<'a, F: Fn(&str) -> Option<String>>(pub &'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|value| !value.trim().is_empty())
    }

    pub fn integer(
        &self,
        var: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: format!("must be a whole number from {min} to {max}"),
            }),
        }
    }

    /// The seed's timeouts are plain milliseconds (`DB_IDLE_TIMEOUT=60000`).
    pub fn millis(
        &self,
        var: &'static str,
        default: Duration,
        min_ms: u64,
        max_ms: u64,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(ms) if (min_ms..=max_ms).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: format!(
                    "must be a whole number of milliseconds from {min_ms} to {max_ms}"
                ),
            }),
        }
    }

    /// A share written as a whole percentage, 1 to 100.
    pub fn percent(&self, var: &'static str, default: f64) -> Result<f64, ConfigError> {
        let default_percent = (default * 100.0).round() as u32;
        Ok(f64::from(self.integer(var, default_percent, 1, 100)?) / 100.0)
    }

    /// `on` or `off`.
    pub fn switch(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.trim() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: "must be on or off".into(),
            }),
        }
    }

    /// Slots held back: a count (`3`, at most 10000) or a whole percentage (`10%`, at most
    /// `100%`).
    pub fn headroom(&self, var: &'static str, default: Headroom) -> Result<Headroom, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        let text = raw.trim();
        let parsed = match text.strip_suffix('%') {
            Some(percent) => percent
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .map(Headroom::Percent),
            None => text
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 10_000)
                .map(Headroom::Slots),
        };
        parsed.ok_or_else(|| ConfigError {
            var,
            value: raw,
            allowed: "must be a number of connections from 0 to 10000 (like 3) or a percentage \
                      of the server's usable connections from 0% to 100% (like 10%)"
                .into(),
        })
    }

    /// A secret token: long enough, no whitespace. Its value is never echoed.
    pub fn token(&self, var: &'static str) -> Result<Option<Secret>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(None);
        };
        if raw.len() < MIN_TOKEN || raw.chars().any(char::is_whitespace) {
            return Err(ConfigError {
                var,
                value: format!("*** ({} characters)", raw.chars().count()),
                allowed: format!(
                    "must be at least {MIN_TOKEN} characters without spaces (try: openssl rand -hex 32)"
                ),
            });
        }
        Ok(Some(Secret::new(raw)))
    }

    /// Addresses separated by commas or spaces, each `http` or `https` with a host. A URL
    /// may hold a token (a chat webhook's path is its secret), so a refused one is shown as
    /// its scheme and host only.
    pub fn urls(&self, var: &'static str) -> Result<Vec<url::Url>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(Vec::new());
        };
        raw.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(|part| {
                let parsed = url::Url::parse(part).ok();
                let shown = parsed.as_ref().map_or_else(
                    || "an unreadable address".to_owned(),
                    |url| format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("")),
                );
                match parsed {
                    Some(url)
                        if matches!(url.scheme(), "http" | "https")
                            && url.host_str().is_some_and(|h| !h.is_empty())
                            && url.fragment().is_none() =>
                    {
                        Ok(url)
                    }
                    _ => Err(ConfigError {
                        var,
                        value: shown,
                        allowed: "must be http:// or https:// addresses with a host and no \
                                  #fragment, separated by commas"
                            .into(),
                    }),
                }
            })
            .collect()
    }

    /// A duration within `min..=max`, written as [`parse_duration`] reads it.
    pub fn duration(
        &self,
        var: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match parse_duration(raw.trim()) {
            Some(d) if (min..=max).contains(&d) => Ok(d),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: format!(
                    "must be a duration from {} to {}, written like 500ms, 30s, 15m, 1h or 1h30m",
                    format_duration(min),
                    format_duration(max)
                ),
            }),
        }
    }
}

/// Human durations (humantime's syntax): `500ms`, `30s`, `15m`, `1h`, `1h30m`, `2d`. A bare
/// number other than 0 is refused: it would leave the unit to guesswork.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text).ok()
}

/// How a duration is printed in messages, in the syntax [`parse_duration`] reads.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
