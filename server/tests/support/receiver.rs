//! A webhook receiver on loopback: keeps every request it gets (path, headers, body, and the
//! status it answered) and answers the status the test sets, switchable while it runs.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// The status it was answered with.
    pub answered: u16,
}

#[derive(Clone)]
struct Shared {
    got: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
}

/// The receiver; it serves on the test's runtime until that ends.
pub struct Receiver {
    shared: Shared,
    address: SocketAddr,
}

impl Receiver {
    /// Listens on a free loopback port, answering 200 to a POST on any path.
    pub async fn start() -> Self {
        let shared = Shared {
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let app = Router::new()
            .fallback(
                |State(shared): State<Shared>, uri: Uri, headers: HeaderMap, body: String| async move {
                    let answered = shared.status.load(Relaxed);
                    shared.got.lock().unwrap().push(Request {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                        answered,
                    });
                    StatusCode::from_u16(answered).expect("a valid status")
                },
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { shared, address }
    }

    /// The URL of `path` (starting with `/`) on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Answers every request from now on with `status`.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Relaxed);
    }

    /// Every request so far to `path`, oldest first.
    pub fn at(&self, path: &str) -> Vec<Request> {
        let got = self.shared.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// Calls `probe` every 200 ms until it returns `Ok`, for at most `within`; then panics naming
/// `what` and the last `Err` (what was seen so far).
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(seen) if Instant::now() >= deadline => {
                panic!("waited {within:?} for {what}; seen so far:\n{seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
