//! Alerts: warning and critical recommendations (the forecast's among them) become alerts
//! with a stable identity and a lifecycle, grouped and timed as Alertmanager does
//! ([`policy`]), and delivered to the configured receivers: a webhook taking Alertmanager's
//! body, an Alertmanager's own API, a chat webhook ([`payload`], [`deliver`]).
//!
//! What receivers were told and every notification's delivery are in the database
//! ([`store`]), written before the next delivery attempt: a restart delivers what was pending
//! and repeats nothing delivered. Failed deliveries retry with backoff and full jitter; a
//! newer notification to the same receiver that carries every alert of an older pending one
//! supersedes it; the queue is bounded.
//!
//! [`Alerting::evaluate`] runs after every evaluation of the rules and takes no database
//! connection; [`Alerting::run`] writes and delivers, off that path.

pub mod deliver;
pub mod model;
pub mod payload;
pub mod policy;
mod store;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use leasewatch_types::{DeliveryStatus, NotificationKind, ReceiverKind};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use self::{
    deliver::Receiver,
    model::{Alert, Fingerprint, LabelSet},
    payload::SigningKey,
    policy::Timers,
};
use self::{policy::Group, store::StoredNote};
use crate::{
    db::Database,
    recommend::{Recommendation, Severity},
    tasks::RetryPolicy,
};

/// How many notifications may wait for delivery at once; beyond it the oldest is dropped.
pub const MAX_QUEUED: usize = 256;

/// How many delivered (or superseded, or dropped) notifications are kept in memory for the
/// dashboard, and in the database per instance.
pub const RECENT: usize = 50;
const KEPT_IN_DATABASE: usize = 1_000;

/// How often finished notifications beyond [`KEPT_IN_DATABASE`] are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often an Alertmanager is sent the alerts still firing (as Prometheus re-sends them).
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

/// How often the delivery loop looks for due work when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

/// Backoff between attempts to deliver one notification: 1 s doubling to 5 min, full jitter.
const BACKOFF: RetryPolicy = RetryPolicy {
    max_retries: u32::MAX,
    base_delay: Duration::from_secs(1),
    factor: 2,
    max_delay: Duration::from_secs(300),
};

/// The `alertname` of a test notification.
pub const TEST_ALERT: &str = "test_notification";

/// Where alerts go and when.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// The receivers (`ALERT_WEBHOOK_URL`, `ALERT_ALERTMANAGER_URL`, `ALERT_CHAT_WEBHOOK_URL`).
    pub receivers: Vec<Receiver>,
    /// `group_wait`, `group_interval`, `repeat_interval`.
    pub timers: Timers,
    /// Signs every body (`ALERT_HMAC_SECRET`).
    pub signing_key: Option<SigningKey>,
    /// The `instance` label (`ALERT_INSTANCE`); the host's name when unset.
    pub instance: Option<String>,
    /// The dashboard's address, for links in alerts (`PUBLIC_URL`).
    pub external_url: Option<Url>,
}

/// No receiver is configured, so a test notification has nowhere to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no alert receiver is configured: set ALERT_WEBHOOK_URL, ALERT_ALERTMANAGER_URL or \
     ALERT_CHAT_WEBHOOK_URL"
)]
pub struct NoReceivers;

/// The alerts, the receivers and recent notifications, for the dashboard and the status API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertsView {
    /// The `instance` label this Leasewatch's alerts carry.
    pub instance: String,
    /// The configured receivers, by name (kind and host; never the URL).
    pub receivers: Vec<ReceiverView>,
    /// Alerts firing now, worst first.
    pub firing: Vec<FiringAlert>,
    /// The latest notifications, newest first.
    pub notifications: Vec<NotificationView>,
    /// Notifications waiting for delivery.
    pub queued: usize,
}

/// One configured receiver and its delivery counts since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReceiverView {
    /// `webhook 127.0.0.1:9000`.
    pub name: String,
    /// What body it takes.
    pub kind: ReceiverKind,
    /// Notifications it accepted.
    pub delivered: u64,
    /// Attempts that failed (each retried later).
    pub failed_attempts: u64,
    /// Notifications replaced by newer ones before delivery.
    pub superseded: u64,
    /// Notifications given up (queue full).
    pub dropped: u64,
}

/// An alert firing now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FiringAlert {
    /// Its identity.
    pub fingerprint: Fingerprint,
    /// Its rule (`alertname`): the recommendation's id without its task.
    pub name: String,
    /// How urgent.
    pub severity: Severity,
    /// The task it is about, if any.
    pub task: Option<String>,
    /// The recommendation's title.
    pub summary: String,
    /// Since when it fires.
    pub starts_at: DateTime<Utc>,
}

/// One notification and its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotificationView {
    /// The receiver's name.
    pub receiver: String,
    /// What it says.
    pub kind: NotificationKind,
    /// How many alerts it carries.
    pub alerts: u32,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Where its delivery is.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A notification in memory: its stored form, and whether that has changed since written.
struct Note {
    /// Tells notes apart before they have a row.
    local: u64,
    stored: StoredNote,
    receiver: usize,
    /// Bumped on every change; a write clears `dirty` only for the version it wrote.
    version: u64,
    written: u64,
    in_flight: bool,
}

impl Note {
    fn is_pending(&self) -> bool {
        self.stored.status == DeliveryStatus::Pending
    }

    fn finish(&mut self, status: DeliveryStatus) {
        self.stored.status = status;
        self.version += 1;
    }
}

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
    superseded: AtomicU64,
    dropped: AtomicU64,
}

struct State {
    group: Group,
    group_version: u64,
    group_written: u64,
    /// Alerts firing when the last process stopped and not found again yet: kept firing for
    /// the clear time after start, as a shown recommendation is.
    restored: BTreeMap<Fingerprint, Alert>,
    /// What each Alertmanager was last pushed, and when.
    pushed: BTreeMap<Fingerprint, Severity>,
    pushed_at: Option<DateTime<Utc>>,
    notes: VecDeque<Note>,
    next_local: u64,
}

struct Inner {
    settings: AlertSettings,
    instance: String,
    /// Restored alerts resolve if not found again by then.
    grace_until: DateTime<Utc>,
    state: Mutex<State>,
    /// Set when the process begins to stop: evaluations are ignored from then on.
    frozen: AtomicBool,
    counts: Vec<Counts>,
    /// Whether the last write failed: the warning is logged once per outage, not per second.
    write_failing: AtomicBool,
    wake: tokio::sync::Notify,
    client: reqwest::Client,
}

/// Alerts and their delivery. Cheap to clone.
#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("instance", &self.inner.instance)
            .field("receivers", &self.inner.settings.receivers)
            .finish()
    }
}

impl Alerting {
    /// Loads what `instance`'s receivers were told and the notifications still pending.
    /// `clear` is how long a restored alert stays firing without being found again.
    pub async fn load(
        db: &Database,
        settings: AlertSettings,
        default_instance: &str,
        clear: Duration,
    ) -> Result<Self, sqlx::Error> {
        let instance = settings
            .instance
            .clone()
            .unwrap_or_else(|| default_instance.to_owned());
        let mut group = store::load_group(db, &instance).await?.unwrap_or_default();
        // The group's notifications go to webhooks and chats (Alertmanagers are pushed every
        // change themselves). When those changed, what was told is not known to all of them:
        // the alerts firing are notified again, after group_wait.
        let receivers: Vec<String> = settings
            .receivers
            .iter()
            .filter(|r| r.kind != ReceiverKind::Alertmanager)
            .map(|r| r.name.clone())
            .collect();
        let receivers_changed = group.receivers != receivers;
        let group_version = u64::from(receivers_changed);
        if receivers_changed {
            group.told.clear();
            group.notified_at = None;
            group.receivers = receivers;
        }
        let restored = group
            .alerts
            .iter()
            .filter(|(_, alert)| alert.is_firing())
            .map(|(fp, alert)| (fp.clone(), alert.clone()))
            .collect();
        let mut notes = VecDeque::new();
        for stored in store::load_notes(db, &instance, RECENT).await? {
            let receiver = settings
                .receivers
                .iter()
                .position(|r| r.name == stored.receiver);
            let mut note = Note {
                local: notes.len() as u64,
                stored,
                receiver: receiver.unwrap_or(usize::MAX),
                version: 0,
                written: 0,
                in_flight: false,
            };
            if note.is_pending() {
                // A restart delivers what was pending at once, not after the backoff the last
                // process had reached.
                note.stored.next_attempt_at = note.stored.next_attempt_at.min(Utc::now());
            }
            if receiver.is_none() && note.is_pending() {
                tracing::warn!(
                    receiver = note.stored.receiver,
                    "a pending notification's receiver is no longer configured: dropped"
                );
                note.finish(DeliveryStatus::Dropped);
            }
            notes.push_back(note);
        }
        let now = Utc::now();
        Ok(Self {
            inner: Arc::new(Inner {
                counts: settings
                    .receivers
                    .iter()
                    .map(|_| Counts::default())
                    .collect(),
                write_failing: AtomicBool::new(false),
                settings,
                instance,
                grace_until: now + chrono::Duration::from_std(clear).unwrap_or_default(),
                state: Mutex::new(State {
                    group,
                    group_version,
                    group_written: 0,
                    restored,
                    pushed: BTreeMap::new(),
                    pushed_at: None,
                    next_local: notes.len() as u64,
                    notes,
                }),
                frozen: AtomicBool::new(false),
                wake: tokio::sync::Notify::new(),
                client: deliver::client(),
            }),
        })
    }

    /// Stops taking evaluations, for good: called when the process begins to stop, so that
    /// the stop itself (the scheduler stopped while runs drain, runs cut off at the deadline)
    /// neither raises nor resolves an alert. What fires is kept as it is for the next start
    /// to restore; pending notifications are still delivered until [`Alerting::run`] ends.
    pub fn freeze(&self) {
        self.inner.frozen.store(true, Relaxed);
    }

    /// Takes the recommendations shown at `now`: alerts start, change and resolve, and the
    /// notifications due are queued. No database access. Ignored once [`Alerting::freeze`]d.
    pub fn evaluate(&self, now: DateTime<Utc>, shown: &[Recommendation]) {
        let inner = &*self.inner;
        if inner.frozen.load(Relaxed) {
            return;
        }
        let mut firing: Vec<Alert> = shown
            .iter()
            .filter_map(|r| Alert::of(r, &inner.instance))
            .collect();
        let mut state = self.inner.state.lock();
        let state = &mut *state;
        state
            .restored
            .retain(|fp, _| !firing.iter().any(|a| &a.fingerprint == fp));
        if now < inner.grace_until {
            firing.extend(state.restored.values().cloned());
        } else {
            state.restored.clear();
        }
        let before = state.group.told_now();
        state.group.observe(now, firing);
        if state.group.told_now() != before {
            state.group_version += 1;
        }
        // An Alertmanager groups and times notifications itself: it is told every change at
        // once, and re-sent what still fires.
        if let Some((kind, alerts)) = self.alertmanager_push(state, now) {
            self.queue_for(state, now, &[ReceiverKind::Alertmanager], kind, &alerts);
        }
        if let Some(decision) = state.group.decide(now, &inner.settings.timers) {
            state.group_version += 1;
            let kinds = [ReceiverKind::Webhook, ReceiverKind::Chat];
            self.queue_for(state, now, &kinds, decision.kind, &decision.alerts);
        }
    }

    /// What to push to Alertmanagers now, if anything: every change at once, and what still
    /// fires every [`ALERTMANAGER_RESEND`].
    fn alertmanager_push(
        &self,
        state: &mut State,
        now: DateTime<Utc>,
    ) -> Option<(NotificationKind, Vec<Alert>)> {
        let has_alertmanager = self
            .inner
            .settings
            .receivers
            .iter()
            .any(|r| r.kind == ReceiverKind::Alertmanager);
        if !has_alertmanager {
            return None;
        }
        let firing: BTreeMap<Fingerprint, Severity> = state
            .group
            .alerts
            .values()
            .filter(|a| a.is_firing())
            .map(|a| (a.fingerprint.clone(), a.severity))
            .collect();
        let resend = chrono::Duration::from_std(ALERTMANAGER_RESEND).unwrap_or_default();
        let kind = if firing != state.pushed {
            if firing.is_empty() {
                NotificationKind::Resolved
            } else {
                NotificationKind::Firing
            }
        } else if !firing.is_empty() && state.pushed_at.is_none_or(|at| now - at >= resend) {
            NotificationKind::Repeat
        } else {
            return None;
        };
        let mut alerts: Vec<Alert> = Vec::new();
        for alert in state.group.alerts.values() {
            let pushed = state.pushed.get(&alert.fingerprint);
            if !alert.is_firing() && pushed.is_none() {
                continue;
            }
            // Alertmanager tells alerts apart by all their labels, severity included: the
            // label set it was pushed with ends when the severity changes.
            if let Some(&before) = pushed
                && alert.is_firing()
                && before != alert.severity
            {
                let mut ended = alert.clone();
                ended.severity = before;
                ended
                    .labels
                    .insert("severity".to_owned(), before.as_str().to_owned());
                ended.ends_at = Some(now);
                alerts.push(ended);
            }
            alerts.push(alert.clone());
        }
        state.pushed = firing;
        state.pushed_at = Some(now);
        Some((kind, alerts))
    }

    /// Queues a notification to every receiver of `kinds`, superseding older pending ones it
    /// covers, within [`MAX_QUEUED`].
    fn queue_for(
        &self,
        state: &mut State,
        now: DateTime<Utc>,
        kinds: &[ReceiverKind],
        what: NotificationKind,
        alerts: &[Alert],
    ) {
        let external = self.inner.external_url();
        let fingerprints: Vec<Fingerprint> = alerts.iter().map(|a| a.fingerprint.clone()).collect();
        for (index, receiver) in self.inner.settings.receivers.iter().enumerate() {
            if !kinds.contains(&receiver.kind) {
                continue;
            }
            if what != NotificationKind::Test {
                for older in state.notes.iter_mut().filter(|n| {
                    n.receiver == index
                        && n.is_pending()
                        && !n.in_flight
                        && n.stored.kind != NotificationKind::Test
                        && n.stored
                            .fingerprints
                            .iter()
                            .all(|fp| fingerprints.contains(fp))
                }) {
                    older.finish(DeliveryStatus::Superseded);
                    self.inner.counts[index].superseded.fetch_add(1, Relaxed);
                }
            }
            let local = state.next_local;
            state.next_local += 1;
            state.notes.push_back(Note {
                local,
                stored: StoredNote {
                    row: None,
                    receiver: receiver.name.clone(),
                    kind: what,
                    body: payload::body(
                        receiver,
                        what,
                        now,
                        &self.inner.instance,
                        &external,
                        alerts,
                    ),
                    fingerprints: fingerprints.clone(),
                    alerts: u32::try_from(alerts.len()).unwrap_or(u32::MAX),
                    created_at: now,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    delivered_at: None,
                },
                receiver: index,
                version: 1,
                written: 0,
                in_flight: false,
            });
        }
        self.bound(state);
        self.inner.wake.notify_one();
    }

    /// Drops the oldest pending notifications beyond [`MAX_QUEUED`], and forgets finished ones
    /// beyond [`RECENT`] once written.
    fn bound(&self, state: &mut State) {
        let pending = state.notes.iter().filter(|n| n.is_pending()).count();
        let mut excess = pending.saturating_sub(MAX_QUEUED);
        for note in state.notes.iter_mut() {
            if excess == 0 {
                break;
            }
            if note.is_pending() && !note.in_flight {
                note.finish(DeliveryStatus::Dropped);
                if let Some(counts) = self.inner.counts.get(note.receiver) {
                    counts.dropped.fetch_add(1, Relaxed);
                }
                excess -= 1;
                tracing::error!(
                    receiver = note.stored.receiver,
                    "{MAX_QUEUED} notifications are waiting for delivery: the oldest is dropped"
                );
            }
        }
        let mut finished = state.notes.iter().filter(|n| !n.is_pending()).count();
        // Unwritten ones stay (up to ten times the limit, if the database is away that long).
        let mut index = 0;
        while finished > RECENT && index < state.notes.len() {
            let note = &state.notes[index];
            if !note.is_pending() && (note.written == note.version || finished > RECENT * 10) {
                state.notes.remove(index);
                finished -= 1;
            } else {
                index += 1;
            }
        }
    }

    /// Queues a test notification to every receiver; returns their names, or `Err` when there
    /// is none.
    pub fn send_test(&self, now: DateTime<Utc>) -> Result<Vec<String>, NoReceivers> {
        let receivers = &self.inner.settings.receivers;
        if receivers.is_empty() {
            return Err(NoReceivers);
        }
        let test = Alert::firing(
            TEST_ALERT,
            None,
            &self.inner.instance,
            Severity::Info,
            LabelSet::from([
                (
                    "summary".to_owned(),
                    "Test notification from Leasewatch".to_owned(),
                ),
                (
                    "description".to_owned(),
                    "Sent by an operator to check that alerts reach this receiver.".to_owned(),
                ),
            ]),
            now,
        );
        let mut state = self.inner.state.lock();
        self.queue_for(
            &mut state,
            now,
            ReceiverKind::ALL,
            NotificationKind::Test,
            &[test],
        );
        Ok(receivers.iter().map(|r| r.name.clone()).collect())
    }

    /// The alerts, receivers and latest notifications; no database access.
    pub fn view(&self) -> AlertsView {
        let state = self.inner.state.lock();
        let mut firing: Vec<FiringAlert> = state
            .group
            .alerts
            .values()
            .filter(|a| a.is_firing())
            .map(|a| FiringAlert {
                fingerprint: a.fingerprint.clone(),
                name: a.name().to_owned(),
                severity: a.severity,
                task: a.task().map(str::to_owned),
                summary: a.annotations.get("summary").cloned().unwrap_or_default(),
                starts_at: a.starts_at,
            })
            .collect();
        firing.sort_by(|a, b| (b.severity, a.starts_at).cmp(&(a.severity, b.starts_at)));
        AlertsView {
            instance: self.inner.instance.clone(),
            receivers: self
                .inner
                .settings
                .receivers
                .iter()
                .zip(&self.inner.counts)
                .map(|(r, c)| ReceiverView {
                    name: r.name.clone(),
                    kind: r.kind,
                    delivered: c.delivered.load(Relaxed),
                    failed_attempts: c.failed.load(Relaxed),
                    superseded: c.superseded.load(Relaxed),
                    dropped: c.dropped.load(Relaxed),
                })
                .collect(),
            firing,
            notifications: state
                .notes
                .iter()
                .rev()
                .take(RECENT)
                .map(|n| {
                    let s = &n.stored;
                    NotificationView {
                        receiver: s.receiver.clone(),
                        kind: s.kind,
                        alerts: s.alerts,
                        created_at: s.created_at,
                        status: s.status,
                        attempts: s.attempts,
                        last_error: s.last_error.clone(),
                        next_attempt_at: n.is_pending().then_some(s.next_attempt_at),
                        delivered_at: s.delivered_at,
                    }
                })
                .collect(),
            queued: state.notes.iter().filter(|n| n.is_pending()).count(),
        }
    }

    /// Writes and delivers until `shutdown`, then writes once more.
    pub async fn run(self, db: Database, shutdown: CancellationToken) {
        let mut pruned = tokio::time::Instant::now();
        loop {
            self.write(&db).await;
            self.deliver_due(&db).await;
            // By the clock: wakes for new notifications make the loop turn more than once a
            // second.
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = tokio::time::Instant::now();
                if let Err(err) = store::prune(&db, &self.inner.instance, KEPT_IN_DATABASE).await {
                    tracing::debug!(%err, "could not prune old notifications");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
        self.write(&db).await;
    }

    /// Writes what changed since the last write: the group, new and changed notifications.
    /// Returns whether everything is written.
    pub async fn write(&self, db: &Database) -> bool {
        let (group, versions, stored) = {
            let state = self.inner.state.lock();
            let group = (state.group_version != state.group_written)
                .then(|| (state.group.clone(), state.group_version));
            let (versions, stored): (Vec<(u64, u64)>, Vec<StoredNote>) = state
                .notes
                .iter()
                .filter(|n| n.written != n.version)
                .map(|n| ((n.local, n.version), n.stored.clone()))
                .unzip();
            (group, versions, stored)
        };
        if group.is_none() && stored.is_empty() {
            return true;
        }
        let written = group.as_ref().map(|(group, _)| group);
        match store::write(db, &self.inner.instance, written, &stored).await {
            Ok(rows) => {
                let mut state = self.inner.state.lock();
                if let Some((_, version)) = group {
                    state.group_written = version;
                }
                for ((local, version), row) in versions.iter().zip(rows) {
                    if let Some(note) = state.notes.iter_mut().find(|n| n.local == *local) {
                        note.stored.row = Some(row);
                        note.written = *version;
                    }
                }
                if self.inner.write_failing.swap(false, Relaxed) {
                    tracing::info!("alert state written again");
                }
                true
            }
            Err(err) => {
                if !self.inner.write_failing.swap(true, Relaxed) {
                    tracing::warn!(
                        %err,
                        "could not write alert state; deliveries go on, and it is written \
                         once the database is back"
                    );
                }
                false
            }
        }
    }

    /// Sends each receiver's oldest due notification, all receivers at once.
    async fn deliver_due(&self, db: &Database) {
        let now = Utc::now();
        let due: Vec<(usize, String)> = {
            let mut state = self.inner.state.lock();
            let mut taken = vec![false; self.inner.settings.receivers.len()];
            let mut due = Vec::new();
            for note in state.notes.iter_mut() {
                let receiver = note.receiver;
                if note.is_pending()
                    && !note.in_flight
                    && note.stored.next_attempt_at <= now
                    && taken.get(receiver) == Some(&false)
                {
                    taken[receiver] = true;
                    note.in_flight = true;
                    due.push((receiver, note.stored.body.clone()));
                }
            }
            due
        };
        if due.is_empty() {
            return;
        }
        let mut sends = tokio::task::JoinSet::new();
        for (receiver, body) in due {
            let client = self.inner.client.clone();
            let target = self.inner.settings.receivers[receiver].clone();
            let key = self.inner.settings.signing_key.clone();
            sends.spawn(async move {
                let sent = deliver::post(&client, &target, key.as_ref(), body).await;
                (receiver, sent)
            });
        }
        while let Some(Ok((receiver, sent))) = sends.join_next().await {
            let mut state = self.inner.state.lock();
            let Some(note) = state
                .notes
                .iter_mut()
                .find(|n| n.receiver == receiver && n.in_flight)
            else {
                continue;
            };
            note.in_flight = false;
            let counts = &self.inner.counts[receiver];
            match sent {
                Ok(()) => {
                    note.stored.attempts += 1;
                    note.stored.delivered_at = Some(Utc::now());
                    note.stored.last_error = None;
                    note.finish(DeliveryStatus::Delivered);
                    counts.delivered.fetch_add(1, Relaxed);
                }
                Err(error) => {
                    note.stored.attempts += 1;
                    let delay = BACKOFF.delay(note.stored.attempts, &mut rand::rng());
                    note.stored.next_attempt_at =
                        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    tracing::warn!(
                        receiver = note.stored.receiver,
                        attempts = note.stored.attempts,
                        %error,
                        "a notification was not delivered; it will be sent again"
                    );
                    note.stored.last_error = Some(error);
                    note.version += 1;
                    counts.failed.fetch_add(1, Relaxed);
                }
            }
        }
        // Delivered is written at once, so a restart does not send it again.
        self.write(db).await;
    }
}

impl Inner {
    fn external_url(&self) -> String {
        self.settings
            .external_url
            .as_ref()
            .map(Url::to_string)
            .unwrap_or_default()
    }
}
