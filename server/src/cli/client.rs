//! The HTTP side: where the server is and the token (from the environment only), one request
//! with its timeout, and either the server's answer or the failure classified for the exit
//! status.

use std::{env::VarError, time::Duration};

use reqwest::{StatusCode, header};
use serde::Serialize;
use url::Url;

use super::CliError;
use crate::{auth::secret::Secret, error::ErrorBody};

/// The variable naming the server.
pub const URL_VAR: &str = "LEASEWATCH_URL";
/// The variable holding the token.
pub const TOKEN_VAR: &str = "LEASEWATCH_TOKEN";
/// The server when [`URL_VAR`] is unset: the default `BIND_ADDR`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// Connecting and a whole read each get this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A control action may take longer: ending backends, or a stop's 10 s for runs in flight.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and the token to show it, as the environment gives them.
#[derive(Debug)]
pub struct Settings {
    /// The server's base address, ending in `/` (it may have a path, behind a proxy).
    pub base: Url,
    token: Secret,
}

/// A setting that cannot be used: exit status 2, like a refused argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// Not an http(s) address with a host.
    #[error(
        "{URL_VAR}={0:?} is not a server address: use http:// or https:// with a host, like {DEFAULT_URL} (a path is kept; no credentials, query or fragment)"
    )]
    BadUrl(String),
    /// No token.
    #[error(
        "{TOKEN_VAR} is not set: export the operator or viewer token (it is read from the environment only)"
    )]
    MissingToken,
    /// A token that cannot go in a header (shown by its length only).
    #[error(
        "{TOKEN_VAR} is not a usable token ({0} characters): it must be printable ASCII without spaces"
    )]
    BadToken(usize),
    /// A variable that is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUnicode(&'static str),
}

impl Settings {
    /// From `lookup` (`std::env::var` outside the tests). An empty variable counts as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Result<String, VarError>,
    ) -> Result<Self, SettingError> {
        let read = |var: &'static str| match lookup(var) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => Err(SettingError::NotUnicode(var)),
        };
        let base = parse_base(read(URL_VAR)?.as_deref().unwrap_or(DEFAULT_URL))?;
        let token = read(TOKEN_VAR)?.ok_or(SettingError::MissingToken)?;
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SettingError::BadToken(token.chars().count()));
        }
        Ok(Self {
            base,
            token: Secret::new(token),
        })
    }
}

/// The server's address as a base the API's paths join onto.
fn parse_base(raw: &str) -> Result<Url, SettingError> {
    let refused = || SettingError::BadUrl(leasewatch_engine::db::redact_password(raw.trim()));
    let mut url = Url::parse(raw.trim()).map_err(|_| refused())?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|host| !host.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !usable {
        return Err(refused());
    }
    // `join` replaces the last segment of a path without a trailing slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// The body as sent (what `--json` prints).
    pub body: String,
    /// `X-Next-Before`: the cursor of the next page, when more remain.
    pub next_before: Option<String>,
}

/// The API over HTTP, with the token on every request.
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
}

impl Client {
    /// A client for `settings`.
    pub fn new(settings: Settings) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            // The API never redirects; a redirect means the address is not Leasewatch's API
            // (a login page, a proxy), and following it could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("leasewatch-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| CliError::Unexpected {
                url: settings.base.to_string(),
                what: format!("cannot set up the HTTP client: {}", innermost(&err)),
            })?;
        Ok(Self { http, settings })
    }

    /// The server's base address, as errors name it.
    pub fn base(&self) -> &Url {
        &self.settings.base
    }

    /// `GET path?query`, `query` encoded already (empty: none).
    pub async fn get(&self, path: &str, query: &str) -> Result<Answer, CliError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.set_query(Some(query));
        }
        self.send(self.http.get(url), path, TIMEOUT).await
    }

    /// `POST path` with a JSON body, given `timeout` to answer.
    pub async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<Answer, CliError> {
        let url = self.url(path)?;
        let body = serde_json::to_string(body).map_err(|err| CliError::Unexpected {
            url: url.to_string(),
            what: format!("cannot write the request: {err}"),
        })?;
        let request = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request, path, timeout).await
    }

    fn url(&self, path: &str) -> Result<Url, CliError> {
        // The API's paths are absolute; joined relative, they keep a proxy's path prefix.
        self.settings
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|err| CliError::Unexpected {
                url: self.settings.base.to_string(),
                what: format!("cannot form the address of {path}: {err}"),
            })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
        timeout: Duration,
    ) -> Result<Answer, CliError> {
        let base = self.settings.base.to_string();
        let transport = |err: reqwest::Error| {
            if err.is_timeout() {
                CliError::TimedOut {
                    url: base.clone(),
                    secs: timeout.as_secs(),
                }
            } else {
                CliError::Unreachable {
                    url: base.clone(),
                    reason: innermost(&err),
                }
            }
        };
        let response = request
            .bearer_auth(self.settings.token.expose())
            .header(header::ACCEPT, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let next_before = response
            .headers()
            .get(crate::api::audit::NEXT_BEFORE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        let body = response.text().await.map_err(transport)?;
        if status.is_success() && json {
            return Ok(Answer { body, next_before });
        }
        Err(refusal(status, json.then_some(body.as_str()), &base, path))
    }
}

/// What a non-2xx (or non-JSON) answer means, with the server's own message where it sent one.
fn refusal(status: StatusCode, body: Option<&str>, base: &str, path: &str) -> CliError {
    let error = body
        .and_then(|body| serde_json::from_str::<ErrorBody>(body).ok())
        .map(|body| body.error);
    let Some(error) = error else {
        let what = if status.is_success() {
            format!("HTTP {status} without JSON: is {URL_VAR} Leasewatch's address?")
        } else if status == StatusCode::NOT_FOUND {
            format!(
                "HTTP {status}: no {path} there; is the server older than this command line, or {URL_VAR} another service?"
            )
        } else if status.is_redirection() {
            format!("HTTP {status} (a redirect): is {URL_VAR} Leasewatch's address?")
        } else {
            format!("HTTP {status}")
        };
        return CliError::Unexpected {
            url: base.to_owned(),
            what,
        };
    };
    let message = if status == StatusCode::UNAUTHORIZED {
        // The server's words are for browsers ("log in at /login"); here a token was sent.
        format!("the server does not accept the token in {TOKEN_VAR}")
    } else {
        error.message
    };
    CliError::Refused {
        status: status.as_u16(),
        code: error.code,
        message,
    }
}

/// The deepest cause's words ("Connection refused (os error 111)"), without the wrappers'.
fn innermost(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingError> {
        Settings::from_lookup(|var| {
            vars.iter()
                .find(|(name, _)| *name == var)
                .map(|(_, value)| (*value).to_owned())
                .ok_or(VarError::NotPresent)
        })
    }

    const TOKEN: (&str, &str) = (TOKEN_VAR, "operator-token-for-tests-0001");

    #[test]
    fn the_address_defaults_to_the_default_bind_address_and_keeps_a_path() {
        let base = |url: &str| settings(&[(URL_VAR, url), TOKEN]).unwrap().base.to_string();
        assert_eq!(
            settings(&[TOKEN]).unwrap().base.as_str(),
            "http://127.0.0.1:3000/"
        );
        assert_eq!(base(""), "http://127.0.0.1:3000/");
        assert_eq!(base("https://lw.example.com"), "https://lw.example.com/");
        assert_eq!(base(" http://[::1]:8080 "), "http://[::1]:8080/");
        assert_eq!(
            base("https://ops.example/leasewatch"),
            "https://ops.example/leasewatch/"
        );
    }

    #[test]
    fn a_bad_address_or_token_is_one_line_naming_the_variable() {
        for url in [
            "127.0.0.1:3000",
            "ftp://127.0.0.1",
            "http://",
            "http://127.0.0.1:3000/?x=1",
            "http://me:pw-s3cret@127.0.0.1:3000",
            "not a url",
        ] {
            let err = settings(&[(URL_VAR, url), TOKEN]).unwrap_err().to_string();
            assert!(err.starts_with("LEASEWATCH_URL="), "{err}");
            assert!(err.contains("http:// or https://"), "{err}");
            assert!(!err.contains("pw-s3cret"), "{err}");
        }
        assert_eq!(settings(&[]).unwrap_err(), SettingError::MissingToken);
        assert_eq!(
            settings(&[(TOKEN_VAR, "  ")]).unwrap_err(),
            SettingError::MissingToken
        );
        let err = settings(&[(TOKEN_VAR, "two words-s3cret")]).unwrap_err();
        assert_eq!(err, SettingError::BadToken(16));
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn the_token_does_not_print_with_the_settings() {
        let settings = settings(&[TOKEN]).unwrap();
        assert!(!format!("{settings:?}").contains(TOKEN.1));
    }

    #[test]
    fn refusals_keep_the_servers_message_and_a_401_names_the_variable() {
        let body = r#"{"error":{"code":"forbidden","message":"the viewer role can read but not act; use the operator token"}}"#;
        let err = refusal(StatusCode::FORBIDDEN, Some(body), "http://x/", "/api/x");
        assert_eq!(
            err.to_string(),
            "the viewer role can read but not act; use the operator token (HTTP 403 forbidden)"
        );
        let body = r#"{"error":{"code":"unauthenticated","message":"log in at /login"}}"#;
        let err = refusal(StatusCode::UNAUTHORIZED, Some(body), "http://x/", "/api/x");
        assert_eq!(
            err.to_string(),
            "the server does not accept the token in LEASEWATCH_TOKEN (HTTP 401 unauthenticated)"
        );
        let err = refusal(StatusCode::BAD_GATEWAY, None, "http://x/", "/api/x");
        assert_eq!(
            err.to_string(),
            "unexpected answer from http://x/: HTTP 502 Bad Gateway"
        );
        let err = refusal(StatusCode::NOT_FOUND, None, "http://x/", "/api/admin/runs");
        assert!(
            err.to_string()
                .contains("HTTP 404 Not Found: no /api/admin/runs there"),
            "{err}"
        );
    }
}
