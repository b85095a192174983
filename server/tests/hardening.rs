//! The attacker's suite: each attack sent to the real listening binary, asserting the answer
//! it gets and that nothing changed (no action taken, nothing audited, no memory kept).

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode, header, redirect::Policy};
use serde_json::{Value, json};
use support::{OPERATOR, Server, leasewatch};

const VIEWER: &str = "viewer-token-for-tests-0002";
const STATUS: &str = "api/admin/background-jobs/status";

/// A client that shows redirects instead of following them, from `local` if given.
fn client(local: Option<IpAddr>) -> Client {
    Client::builder()
        .redirect(Policy::none())
        .local_address(local)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The binary on a fresh SQLite file in `dir`, with a viewer token.
fn start(dir: &Path, extra: &[(&str, &str)]) -> Server {
    Server::start(
        leasewatch(dir)
            .env("LEASEWATCH_VIEWER_TOKEN", VIEWER)
            .envs(extra.iter().copied()),
    )
}

/// The origin a page of `server` sends (`http://127.0.0.1:port`).
fn origin(server: &Server) -> String {
    server.url.trim_end_matches('/').to_owned()
}

/// Logs in through the form, as the page does; returns the cookie (`name=value`).
async fn log_in(server: &Server, token: &str) -> String {
    let reply = client(None)
        .post(format!("{}login", server.url))
        .header(header::ORIGIN, origin(server))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    let cookie = reply.headers()[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn status_with_cookie(server: &Server, cookie: &str) -> StatusCode {
    client(None)
        .get(format!("{}{STATUS}", server.url))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
}

async fn audit(server: &Server) -> Vec<Value> {
    let body: Value = client(None)
        .get(format!("{}api/admin/audit?limit=500", server.url))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Either a bare list or a page with `entries`.
    body.get("entries")
        .cloned()
        .unwrap_or(body)
        .as_array()
        .cloned()
        .unwrap()
}

async fn scheduler_running(server: &Server) -> bool {
    let status: Value = client(None)
        .get(format!("{}{STATUS}", server.url))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["scheduler"]["running"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_tampered_cookies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let viewer = log_in(&server, VIEWER).await;
    assert_eq!(status_with_cookie(&server, &viewer).await, StatusCode::OK);
    let (name, value) = viewer.split_once('=').unwrap();
    // The value is `<signature><id>.<expiry>`: change a signature byte, the id, the expiry.
    let flip = |i: usize| {
        let mut bytes = value.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        format!("{name}={}", String::from_utf8(bytes).unwrap())
    };
    let longer_expiry = format!("{viewer}9");
    let forged = [
        flip(0),
        flip(10),
        flip(value.len() - 20),
        longer_expiry,
        format!("{name}=operator.99999999999.0000"),
        format!("{name}={}", "A".repeat(4000)),
        format!("{name}="),
    ];
    for cookie in &forged {
        assert_eq!(
            status_with_cookie(&server, cookie).await,
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_state_changes_must_come_from_this_site() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let operator = log_in(&server, OPERATOR).await;
    let before = audit(&server).await.len();
    let site = origin(&server);
    let other_scheme = site.replacen("http://", "https://", 1);
    let origins: [Option<(&str, &str)>; 4] = [
        Some(("origin", "http://evil.example")),
        Some(("origin", &other_scheme)),
        Some(("referer", "http://evil.example/page")),
        None,
    ];
    let routes: [(&str, &str, Vec<u8>); 5] = [
        (STATUS, "application/json", br#"{"action":"stop"}"#.to_vec()),
        (
            "api/control",
            "application/x-www-form-urlencoded",
            b"action=stop".to_vec(),
        ),
        ("logout", "application/x-www-form-urlencoded", Vec::new()),
        (
            "login",
            "application/x-www-form-urlencoded",
            format!("token={VIEWER}").into_bytes(),
        ),
        (
            "api/dashboard",
            "application/x-www-form-urlencoded",
            Vec::new(),
        ),
    ];
    for (path, content_type, body) in &routes {
        for source in &origins {
            let mut request = client(None)
                .post(format!("{}{path}", server.url))
                .header(header::COOKIE, &operator)
                .header(header::CONTENT_TYPE, *content_type)
                .body(body.clone());
            if let Some((name, value)) = source {
                request = request.header(*name, *value);
            }
            let reply = request.send().await.unwrap();
            assert_eq!(
                reply.status(),
                StatusCode::FORBIDDEN,
                "{path} from {source:?}"
            );
            assert!(
                reply.headers().get(header::SET_COOKIE).is_none(),
                "{path}: no session"
            );
        }
    }
    assert!(scheduler_running(&server).await, "nothing was stopped");
    assert_eq!(audit(&server).await.len(), before, "nothing was audited");
    assert_eq!(
        status_with_cookie(&server, &operator).await,
        StatusCode::OK,
        "a refused logout ends nothing"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let operator = log_in(&server, OPERATOR).await;
    let viewer = log_in(&server, VIEWER).await;
    let before = audit(&server).await.len();
    // Twice the 16 KiB limit: small enough to be sent whole before the server answers (a
    // multi-megabyte body gets the same 413, but the client sees its write cut short).
    let huge_task = format!(r#"{{"action":"pause","task":"{}"}}"#, "x".repeat(32 << 10));
    let huge_form = format!("action=pause&task={}", "x".repeat(32 << 10));
    for cookie in [&operator, &viewer] {
        for (path, content_type, body) in [
            (STATUS, "application/json", huge_task.clone()),
            (
                "api/control",
                "application/x-www-form-urlencoded",
                huge_form.clone(),
            ),
            (
                "api/dashboard",
                "application/x-www-form-urlencoded",
                huge_form.clone(),
            ),
            (
                "login",
                "application/x-www-form-urlencoded",
                huge_form.clone(),
            ),
            (
                "logout",
                "application/x-www-form-urlencoded",
                huge_form.clone(),
            ),
        ] {
            let reply = client(None)
                .post(format!("{}{path}", server.url))
                .header(header::COOKIE, cookie)
                .header(header::ORIGIN, origin(&server))
                .header(header::CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        }
    }
    // Without a length up front (chunked), the body is cut off at the limit as it streams:
    // the server answers 413 and closes the connection. A client still writing the rest then
    // may see its write fail before it reads the answer (a broken pipe or a reset), which is
    // the same refusal seen from the other side; anything else is a failure.
    for path in [STATUS, "api/control"] {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..64).map(|_| Ok(b"x".repeat(1024))).collect();
        let sent = client(None)
            .post(format!("{}{path}", server.url))
            .header(header::COOKIE, &viewer)
            .header(header::ORIGIN, origin(&server))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await;
        match sent {
            Ok(reply) => assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}"),
            Err(err) => assert!(
                cut_off_while_sending(&err),
                "{path}: neither a 413 nor the connection closed mid-body: {err:?}"
            ),
        }
    }
    assert_eq!(audit(&server).await.len(), before, "nothing was audited");
    assert!(scheduler_running(&server).await);
    server.stop();
}

/// Whether a request failed because the server closed the connection while its body was
/// still being written (after answering early).
fn cut_off_while_sending(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            );
        }
        source = cause.source();
    }
    false
}

/// Resident memory of a process, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_logouts_keep_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let http = client(None);
    let logout = |i: usize| {
        let junk = format!("leasewatch_session={i:08}{}", "J".repeat(4000));
        http.post(format!("{}logout", server.url))
            .header(header::ORIGIN, origin(&server))
            .header(header::COOKIE, junk)
            .send()
    };
    // Warm up allocators and connection pools first, then measure.
    for i in 0..500 {
        assert_eq!(logout(i).await.unwrap().status(), StatusCode::SEE_OTHER);
    }
    let before = rss_kib(server.pid());
    let junk_bytes = 5_000 * 4_000 / 1024;
    for i in 500..5_500 {
        assert_eq!(logout(i).await.unwrap().status(), StatusCode::SEE_OTHER);
    }
    let grown = rss_kib(server.pid()).saturating_sub(before);
    // Kept, 5,000 junk cookies would be ~19.5 MiB; allow allocator noise only.
    assert!(
        grown < junk_bytes / 4,
        "RSS grew by {grown} KiB over 5,000 junk logouts ({junk_bytes} KiB of cookies)"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_is_locked_out_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let attacker = client(None);
    let status_url = format!("{}{STATUS}", server.url);
    for guess in 0..5 {
        let reply = attacker
            .get(&status_url)
            .bearer_auth(format!("guess-{guess}-0123456789"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    let locked = attacker
        .get(&status_url)
        .bearer_auth("guess-5-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = locked.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Locked out, even the right token from this client is refused: a guess learns nothing.
    let right = attacker
        .get(&status_url)
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let form = attacker
        .post(format!("{}login", server.url))
        .header(header::ORIGIN, origin(&server))
        .form(&[("token", OPERATOR)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client is not affected.
    let other = client(Some("127.0.0.2".parse().unwrap()));
    let reply = other
        .get(&status_url)
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_while_healthz_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr: SocketAddr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let opened = Instant::now();
    let slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    let http = client(None);
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let asked = Instant::now();
        let reply = http
            .get(format!("{}healthz", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        slowest < Duration::from_millis(500),
        "healthz took {slowest:?}"
    );
    // Every half-sent request is closed by the server within the header timeout (10 s).
    for mut stream in slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            read.is_ok(),
            "closed by the server, not timed out: {read:?}"
        );
    }
    let closed_after = opened.elapsed();
    assert!(
        closed_after < Duration::from_secs(16),
        "the last half-sent request was closed after {closed_after:?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_survives_a_restart_and_a_viewer_token_change_ends_viewer_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let kept = log_in(&server, OPERATOR).await;
    let ended = log_in(&server, OPERATOR).await;
    let viewer = log_in(&server, VIEWER).await;
    let logout = client(None)
        .post(format!("{}logout", server.url))
        .header(header::ORIGIN, origin(&server))
        .header(header::COOKIE, &ended)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        status_with_cookie(&server, &ended).await,
        StatusCode::UNAUTHORIZED
    );
    server.stop();

    // Restarted with the same tokens: the logged-out cookie stays refused, the others work.
    let server = start(dir.path(), &[]);
    assert_eq!(
        status_with_cookie(&server, &ended).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with_cookie(&server, &kept).await, StatusCode::OK);
    assert_eq!(status_with_cookie(&server, &viewer).await, StatusCode::OK);
    server.stop();

    // A new viewer token: the viewer's session ends; the operator's does not.
    let server = start(
        dir.path(),
        &[("LEASEWATCH_VIEWER_TOKEN", "another-viewer-token-0003")],
    );
    assert_eq!(
        status_with_cookie(&server, &viewer).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with_cookie(&server, &kept).await, StatusCode::OK);
    server.stop();
    // No viewer token at all: still refused.
    let server = Server::start(&mut leasewatch(dir.path()));
    assert_eq!(
        status_with_cookie(&server, &viewer).await,
        StatusCode::UNAUTHORIZED
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_pages_and_api_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let http = client(None);
    for path in ["", STATUS, "login", "healthz", "metrics", "no-such-page"] {
        let reply = http
            .get(format!("{}{path}", server.url))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        let headers = reply.headers().clone();
        let csp = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"), "/{path}: {csp}");
        assert!(csp.contains("script-src 'self' 'nonce-"), "/{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "/{path}: {csp}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "/{path}");
        assert_eq!(
            headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "/{path}"
        );
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin", "/{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "/{path}");
        if path.is_empty() {
            // Every script on the page carries this response's nonce.
            let nonce = csp
                .split("'nonce-")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            let html = reply.text().await.unwrap();
            let scripts = html.matches("<script").count();
            assert!(scripts > 0, "{html}");
            assert_eq!(
                html.matches(&format!("nonce=\"{nonce}\"")).count(),
                scripts,
                "{html}"
            );
        }
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_is_refused_on_a_localhost_bind() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let port = server
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let http = client(None);
    let ask = |host: String, path: &'static str| {
        http.get(format!("{}{path}", server.url))
            .header(header::HOST, host)
            .bearer_auth(OPERATOR)
            .send()
    };
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        let reply = ask(host.clone(), STATUS).await.unwrap();
        assert_eq!(reply.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unknown_host");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            ask(host.clone(), STATUS).await.unwrap().status(),
            StatusCode::OK,
            "{host}"
        );
    }
    // Probes answer whatever Host an orchestrator uses.
    assert_eq!(
        ask("10.1.2.3:8080".into(), "healthz")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_token_is_never_logged_and_its_login_link_works_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = leasewatch(dir.path());
    command.env_remove("LEASEWATCH_OPERATOR_TOKEN");
    let mut server = Server::start(&mut command);
    let link = server.url.clone();
    assert!(link.contains("/login?code="), "{link}");
    let token_file = dir.path().join("data/operator-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "only its owner can read the token file"
    );
    assert!(
        server.log().iter().all(|line| !line.contains(&token)),
        "{:?}",
        server.log()
    );
    assert!(
        server
            .log()
            .iter()
            .any(|line| line.contains(&*token_file.to_string_lossy())
                || line.contains("data/operator-token")),
        "the start-up line says where the token is: {:?}",
        server.log()
    );

    let http = client(None);
    let first = http.get(&link).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let base = link.split("login?").next().unwrap().to_owned();
    let logged_in = http
        .get(format!("{base}{STATUS}"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), StatusCode::OK);
    let again = http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "single use");
    assert!(again.headers().get(header::SET_COOKIE).is_none());
    // Scripts read the token from the file.
    let scripted = http
        .post(format!("{base}{STATUS}"))
        .bearer_auth(&token)
        .json(&json!({"action": "cleanup", "dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), StatusCode::OK);
    let (_, log) = server.stop();
    assert!(log.iter().all(|line| !line.contains(&token)), "{log:?}");
}
