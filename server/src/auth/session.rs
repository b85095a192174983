//! Browser sessions: a signed cookie `<id>.<expiry>` whose signing key is derived from a random
//! secret kept in the database and from the token the browser logged in with. So a cookie
//! reveals nothing about any token (testing a guess offline needs the database's secret), a
//! session ends when its role's token changes or is removed, and sessions survive a restart
//! and work on every instance sharing the database. Logout is durable: ended sessions are kept
//! in the database until they would have expired.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, Key, SameSite, SignedCookieJar};
use cookie::CookieBuilder;
use hmac::{Hmac, Mac as _};
use leasewatch_engine::{Engine, audit::NewEntry, control::Role};
use leasewatch_types::REPLACE_SESSION_SECRET;
use parking_lot::{Mutex, RwLock};
use sha2::Sha512;
use sqlx::AnyPool;

use super::secret::Secret;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "leasewatch_session";

/// Live revocations kept at most. Past this the database secret is replaced: every session
/// ends (each must log in again) and the list starts empty, so memory and the table stay
/// bounded whatever the rate of logins and logouts.
pub const MAX_REVOKED: usize = 100_000;

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The role whose key signed it.
    pub role: Role,
    /// Its random id (what a logout revokes).
    pub id: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
}

/// Issues and checks session cookies.
pub struct Sessions {
    engine: Arc<Engine>,
    operator: Secret,
    viewer: Option<Secret>,
    ttl: Duration,
    /// Signing keys, operator's first; replaced when the secret is.
    keys: RwLock<Vec<(Role, Key)>>,
    /// Ended sessions (id → expiry, Unix seconds), as last read from the database plus
    /// this process's own logouts.
    revoked: Mutex<HashMap<String, i64>>,
    /// [`MAX_REVOKED`], lower in tests.
    max_revoked: usize,
    /// The cookie's `Path`: the whole site, or the prefix it is mounted under.
    cookie_path: String,
}

/// Why the session store could not be read or written.
pub type StoreError = sqlx::Error;

impl Sessions {
    /// Loads (creating it on first start) the database secret and the live revocations.
    pub async fn load(
        engine: Arc<Engine>,
        operator: Secret,
        viewer: Option<Secret>,
        ttl: Duration,
    ) -> Result<Self, StoreError> {
        let sessions = Self {
            // Filled by the first refresh, below.
            keys: RwLock::new(Vec::new()),
            engine,
            operator,
            viewer,
            ttl,
            revoked: Mutex::new(HashMap::new()),
            max_revoked: MAX_REVOKED,
            cookie_path: "/".to_owned(),
        };
        sessions.refresh().await?;
        Ok(sessions)
    }

    /// A new session for `role`: a jar to return with the response (it sets the signed
    /// cookie). `None` when the role has no token.
    pub fn start(&self, role: Role, secure: bool) -> Option<SignedCookieJar> {
        let keys = self.keys.read();
        let (_, key) = keys.iter().find(|(r, _)| *r == role)?;
        let id = format!("{:032x}", rand::random::<u128>());
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let expires = unix_now() + ttl;
        let cookie = session_cookie(format!("{id}.{expires}"), ttl)
            .path(self.cookie_path.clone())
            .secure(secure);
        Some(SignedCookieJar::new(key.clone()).add(cookie.build()))
    }

    /// A jar that clears the browser's session cookie (sent at logout).
    pub fn cleared() -> CookieJar {
        CookieJar::new().add(session_cookie(String::new(), 0).build())
    }

    /// [`Sessions::cleared`] for the path this store's cookies are scoped to.
    pub(crate) fn cleared_here(&self) -> CookieJar {
        CookieJar::new().add(
            session_cookie(String::new(), 0)
                .path(self.cookie_path.clone())
                .build(),
        )
    }

    /// Scopes the session cookie to the path prefix `base` the site is mounted under (the
    /// whole site when it is empty), so a host app's other pages never receive it.
    pub(crate) fn scope_cookie_to(&mut self, base: &str) {
        self.cookie_path = if base.is_empty() {
            "/".to_owned()
        } else {
            base.to_owned()
        };
    }

    /// The session a request's cookie proves, if it is signed by a current key, unexpired and
    /// not ended by a logout.
    pub fn verify(&self, headers: &HeaderMap) -> Option<Session> {
        let keys = self.keys.read();
        keys.iter().find_map(|(role, key)| {
            let jar = SignedCookieJar::from_headers(headers, key.clone());
            let value = jar.get(SESSION_COOKIE)?.value().to_owned();
            let (id, expires) = value.split_once('.')?;
            let expires: i64 = expires.parse().ok()?;
            let live = expires > unix_now() && !self.revoked.lock().contains_key(id);
            live.then(|| Session {
                role: *role,
                id: id.to_owned(),
                expires,
            })
        })
    }

    /// Ends `session` everywhere: in memory at once, and in the database, so neither a
    /// restart nor another instance accepts it again.
    pub async fn revoke(&self, session: &Session) -> Result<(), StoreError> {
        let now = unix_now();
        let full = {
            let mut revoked = self.revoked.lock();
            revoked.retain(|_, expires| *expires > now);
            revoked.insert(session.id.clone(), session.expires);
            revoked.len() > self.max_revoked
        };
        sqlx::query(
            "INSERT INTO revoked_sessions (id, expires_at_ms) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(session.id.clone())
        .bind(session.expires.saturating_mul(1000))
        .execute(self.control())
        .await?;
        if full {
            self.replace_secret().await?;
        }
        Ok(())
    }

    /// Re-reads the secret (another instance may have replaced it) and the revocations, and
    /// drops expired ones from the table. The server calls this every few seconds.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let now_ms = unix_now().saturating_mul(1000);
        sqlx::query("DELETE FROM revoked_sessions WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(self.control())
            .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, expires_at_ms FROM revoked_sessions WHERE expires_at_ms > $1",
        )
        .bind(now_ms)
        .fetch_all(self.control())
        .await?;
        let secret = load_secret(self.control()).await?;
        *self.keys.write() = derive_keys(&secret, &self.operator, self.viewer.as_ref());
        let mut revoked = self.revoked.lock();
        revoked.retain(|_, expires| *expires > now_ms / 1000);
        revoked.extend(rows.into_iter().map(|(id, ms)| (id, ms / 1000)));
        Ok(())
    }

    /// Replaces the secret: every session ends and the revocation list empties.
    async fn replace_secret(&self) -> Result<(), StoreError> {
        let secret = Secret::generate().expose().to_owned();
        let mut tx = self.control().begin().await?;
        sqlx::query("UPDATE session_secret SET secret = $1 WHERE id = 1")
            .bind(secret.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM revoked_sessions")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        *self.keys.write() = derive_keys(&secret, &self.operator, self.viewer.as_ref());
        self.revoked.lock().clear();
        let result = format!(
            "more than {} ended sessions: the session secret was replaced, every \
             browser must log in again",
            self.max_revoked
        );
        tracing::warn!("{result}");
        let entry = NewEntry::system(REPLACE_SESSION_SECRET, serde_json::json!({}), result);
        self.engine
            .audit()
            .record(self.engine.database(), entry)
            .await;
        Ok(())
    }

    fn control(&self) -> &AnyPool {
        self.engine.database().control()
    }
}

async fn load_secret(control: &AnyPool) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO session_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(Secret::generate().expose().to_owned())
    .execute(control)
    .await?;
    sqlx::query_scalar("SELECT secret FROM session_secret WHERE id = 1")
        .fetch_one(control)
        .await
}

/// The session cookie's attributes, set and cleared alike: HttpOnly, SameSite=Strict, the
/// whole site (a store mounted under a prefix narrows it), for `max_age_secs`.
fn session_cookie(value: String, max_age_secs: i64) -> CookieBuilder<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
}

/// One key per role that has a token: HMAC-SHA-512 of the role and its token under the
/// database secret (64 bytes, what `Key::from` takes).
fn derive_keys(secret: &str, operator: &Secret, viewer: Option<&Secret>) -> Vec<(Role, Key)> {
    let derive = |role: Role, token: &Secret| {
        let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"leasewatch-session\0");
        mac.update(role.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(token.expose().as_bytes());
        (role, Key::from(&mac.finalize().into_bytes()))
    };
    let mut keys = vec![derive(Role::Operator, operator)];
    keys.extend(viewer.map(|token| derive(Role::Viewer, token)));
    keys
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, header};
    use leasewatch_engine::{DatabaseUrl, EngineConfig};
    use leasewatch_types::Actor;

    use super::*;

    fn cookie_header(jar: SignedCookieJar) -> HeaderMap {
        let response = axum::response::IntoResponse::into_response((jar, ()));
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let pair = set.split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        headers
    }

    #[tokio::test]
    async fn too_many_ended_sessions_replace_the_secret_and_the_audit_log_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::new(DatabaseUrl::Sqlite(dir.path().join("s.db")));
        let engine = Arc::new(Engine::start(config).await.unwrap());
        let operator = Secret::new("operator-token-0123456789");
        let mut sessions = Sessions::load(
            Arc::clone(&engine),
            operator.clone(),
            None,
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        sessions.max_revoked = 3;
        let alive = cookie_header(sessions.start(Role::Operator, false).unwrap());
        assert!(sessions.verify(&alive).is_some());
        for _ in 0..3 {
            let ended = cookie_header(sessions.start(Role::Operator, false).unwrap());
            let session = sessions.verify(&ended).unwrap();
            sessions.revoke(&session).await.unwrap();
            assert!(sessions.verify(&ended).is_none());
            assert!(
                sessions.verify(&alive).is_some(),
                "below the bound nothing else ends"
            );
        }
        let last = cookie_header(sessions.start(Role::Operator, false).unwrap());
        let session = sessions.verify(&last).unwrap();
        sessions.revoke(&session).await.unwrap();
        assert!(
            sessions.verify(&alive).is_none(),
            "the replaced secret ends every session"
        );
        assert!(
            sessions.revoked.lock().is_empty(),
            "and the list starts empty"
        );
        let fresh = cookie_header(sessions.start(Role::Operator, false).unwrap());
        assert!(sessions.verify(&fresh).is_some());
        let audited = engine.audit().recent(1);
        assert_eq!(audited[0].record.action, REPLACE_SESSION_SECRET);
        assert_eq!(audited[0].record.role, Actor::System);
        engine.shutdown().await;
    }
}
