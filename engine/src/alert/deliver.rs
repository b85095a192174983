//! Sending one notification over HTTP: JSON, signed when a key is set, bounded in time, no
//! redirects followed, and an error that never names the URL (a chat webhook's URL is its
//! secret).

use std::time::Duration;

use leasewatch_types::ReceiverKind;
use url::Url;

use super::payload::SigningKey;

/// How long one delivery may take, connecting included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest error kept for a failed attempt.
const MAX_ERROR: usize = 200;

/// Where notifications go: a kind and a URL, under a name that is safe to show.
#[derive(Clone, PartialEq, Eq)]
pub struct Receiver {
    /// What body it takes.
    pub kind: ReceiverKind,
    /// Where it is posted (for an Alertmanager: its base address).
    pub url: Url,
    /// `webhook hooks.example.com:443`: the kind and host only, for the dashboard, the audit
    /// log and the metrics' `receiver` label.
    pub name: String,
}

impl Receiver {
    /// A receiver of `kind` at `url`, named by kind and host; `n` tells apart several of the
    /// same kind on one host (the second is `… #2`).
    pub fn new(kind: ReceiverKind, url: Url, n: usize) -> Self {
        let host = url.host_str().unwrap_or("?");
        let port = url.port_or_known_default().unwrap_or(0);
        let mut name = format!("{kind} {host}:{port}");
        if n > 1 {
            name.push_str(&format!(" #{n}"));
        }
        Self { kind, url, name }
    }

    /// The address a body is posted to.
    pub fn endpoint(&self) -> Url {
        match self.kind {
            ReceiverKind::Alertmanager => {
                let mut base = self.url.clone();
                if !base.path().ends_with('/') {
                    base.set_path(&format!("{}/", base.path()));
                }
                base.join("api/v2/alerts")
                    .unwrap_or_else(|_| self.url.clone())
            }
            ReceiverKind::Webhook | ReceiverKind::Chat => self.url.clone(),
        }
    }
}

impl std::fmt::Debug for Receiver {
    // The URL may carry a token in its path or query: only the name is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.name)
            .finish()
    }
}

/// The HTTP client deliveries share.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(DELIVERY_TIMEOUT / 2)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("leasewatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with these settings always builds")
}

/// Posts `body` to `receiver`; `Err` says why it was not accepted, without the URL.
pub async fn post(
    client: &reqwest::Client,
    receiver: &Receiver,
    key: Option<&SigningKey>,
    body: String,
) -> Result<(), String> {
    let mut request = client
        .post(receiver.endpoint())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        let timestamp = chrono::Utc::now().timestamp();
        request = request
            .header("X-Leasewatch-Timestamp", timestamp.to_string())
            .header(
                "X-Leasewatch-Signature",
                key.sign(timestamp, body.as_bytes()),
            );
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|err| bounded(chain(&err.without_url())))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!("HTTP {status}: redirects are not followed"))
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// An error and its causes, "a: b: c" (connection refused, a TLS failure, a timeout are in the
/// causes; none of them holds the URL).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_show_kind_and_host_never_the_path_or_query() {
        let url = Url::parse("https://hooks.slack.com/services/T0/B0/SECRET?token=x").unwrap();
        let chat = Receiver::new(ReceiverKind::Chat, url, 1);
        assert_eq!(chat.name, "chat hooks.slack.com:443");
        assert!(!format!("{chat:?}").contains("SECRET"));
        let second = Receiver::new(
            ReceiverKind::Webhook,
            Url::parse("http://127.0.0.1:9000/b").unwrap(),
            2,
        );
        assert_eq!(second.name, "webhook 127.0.0.1:9000 #2");
    }

    #[tokio::test]
    async fn a_refused_connection_says_why_without_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/SECRET")).unwrap();
        let hook = Receiver::new(ReceiverKind::Webhook, url, 1);
        let err = post(&client(), &hook, None, "{}".into()).await.unwrap_err();
        assert!(err.contains("Connection refused"), "{err}");
        assert!(
            !err.contains("SECRET") && !err.contains(&port.to_string()),
            "{err}"
        );
    }

    #[test]
    fn alertmanager_alerts_go_to_its_v2_api_under_any_prefix() {
        for (base, endpoint) in [
            (
                "http://127.0.0.1:9093",
                "http://127.0.0.1:9093/api/v2/alerts",
            ),
            (
                "http://am:9093/prefix",
                "http://am:9093/prefix/api/v2/alerts",
            ),
            (
                "http://am:9093/prefix/",
                "http://am:9093/prefix/api/v2/alerts",
            ),
        ] {
            let am = Receiver::new(ReceiverKind::Alertmanager, Url::parse(base).unwrap(), 1);
            assert_eq!(am.endpoint().as_str(), endpoint);
        }
    }
}
