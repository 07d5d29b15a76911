//! Console sessions and the login throttle, with the time passed in, so expiry and lock-outs
//! are tested by moving time forward rather than by sleeping.
//!
//! Sessions are kept in the store (only a hash of each id), so every relay's console knows them
//! and a restart logs no one out; they end after 8 idle hours or a day. The throttle is plain
//! in-memory state, one per relay.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use hallpass_store::{PasswordStamp, SessionFlash, Store};

use crate::error::Failure;

/// A session ends after this long without a request.
pub(crate) const IDLE_TIMEOUT_MS: i64 = 8 * 3600 * 1000;
/// And in any case this long after the login.
pub(crate) const MAX_AGE_MS: i64 = 24 * 3600 * 1000;

/// Failed logins from one client address (to any accounts) that lock that address…
pub(crate) const MAX_FAILURES: usize = 5;
/// …and failed logins to one account from any addresses that lock the account (several addresses
/// guessing together). One address is stopped after [`MAX_FAILURES`], so a guesser on one
/// machine cannot lock the DPO out. When the client's address is unknown, [`MAX_FAILURES`]
/// locks the account.
pub(crate) const ACCOUNT_MAX_FAILURES: usize = 20;
/// …when they fall within this window…
pub(crate) const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// …for this long.
pub(crate) const LOCK_MS: i64 = 15 * 60 * 1000;

/// A logged-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The account name (its role is read from the store on every request).
    pub user: String,
    /// The token every state-changing request made with this session must carry.
    pub csrf: String,
}

/// A one-time message shown on the page a form post redirects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// The action failed (or was refused).
    pub error: bool,
    /// In words.
    pub text: String,
}

/// How often a session's last use is written to the store: not on every request. A session may
/// so end up to this much before [`IDLE_TIMEOUT_MS`] after its last use.
pub(crate) const SEEN_EVERY_MS: i64 = 60 * 1000;

/// Sessions by id (the 256-bit random cookie value), kept in the store so that every relay's
/// console shares them; this is the console's policy over them (idle and absolute expiry).
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    store: Store,
}

impl Sessions {
    pub fn new(store: Store) -> Sessions {
        Sessions { store }
    }

    /// Starts a session for `user`, whose password `stamp` was just checked, and returns its id
    /// and CSRF token; `None` when the password has changed since, or the account was disabled.
    /// Expired sessions (of anyone) are forgotten first.
    pub async fn create(
        &self,
        user: &str,
        now_ms: i64,
        stamp: &PasswordStamp,
    ) -> Result<Option<(String, String)>, Failure> {
        self.store
            .session_prune(now_ms - IDLE_TIMEOUT_MS, now_ms - MAX_AGE_MS)
            .await?;
        let random = |e: RandomError| Failure::internal("starting a session", e);
        let id = random_token().map_err(random)?;
        let csrf = random_token().map_err(random)?;
        let made = self
            .store
            .session_create(&id, user, &csrf, now_ms, stamp)
            .await?;
        Ok(made.then_some((id, csrf)))
    }

    /// The live session with this id, marked as seen now; an expired one is forgotten.
    pub async fn touch(&self, id: &str, now_ms: i64) -> Result<Option<Session>, Failure> {
        let Some(s) = self.store.session_get(id).await? else {
            return Ok(None);
        };
        let live = now_ms.saturating_sub(s.last_seen_ms) < IDLE_TIMEOUT_MS
            && now_ms.saturating_sub(s.created_ms) < MAX_AGE_MS;
        if !live {
            self.store.session_remove(id).await?;
            return Ok(None);
        }
        if now_ms.saturating_sub(s.last_seen_ms) >= SEEN_EVERY_MS {
            self.store.session_seen(id, now_ms).await?;
        }
        Ok(Some(Session {
            user: s.user,
            csrf: s.csrf,
        }))
    }

    /// Ends a session (logout, or the account went away).
    pub async fn remove(&self, id: &str) -> Result<(), Failure> {
        self.store.session_remove(id).await?;
        Ok(())
    }

    /// Sets the message for the session's next page. Failing to is logged, not an error: the
    /// action it reports has been done.
    pub async fn set_flash(&self, id: &str, flash: Flash) {
        let f = SessionFlash {
            error: flash.error,
            text: flash.text,
        };
        if let Err(e) = self.store.session_set_flash(id, &f).await {
            tracing::warn!(error = %e, "cannot keep the outcome to show on the next page");
        }
    }

    /// The message for this page, once (none when the store cannot say).
    pub async fn take_flash(&self, id: &str) -> Option<Flash> {
        match self.store.session_take_flash(id).await {
            Ok(f) => f.map(|f| Flash {
                error: f.error,
                text: f.text,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outcome to show on this page");
                None
            }
        }
    }
}

/// The system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("system random source: {0}")]
pub(crate) struct RandomError(String);

/// 256 random bits as 64 hex digits.
pub(crate) fn random_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failed logins per account and per client address.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    accounts: HashMap<String, Record>,
    addresses: HashMap<IpAddr, Record>,
}

#[derive(Debug, Default)]
struct Record {
    /// Times of recent failures (within the window).
    failures: VecDeque<i64>,
    /// Attempts being checked right now: they count against the limit until they end, so
    /// concurrent guesses cannot slip past it while a password is being hashed.
    pending: usize,
    /// Refuse attempts until then.
    locked_until: i64,
}

/// What a lock-out applies to, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Locked {
    /// The account name tried, after this many failures.
    Account(String, usize),
    /// The client address.
    Address(IpAddr),
}

impl Record {
    fn forget_old(&mut self, now_ms: i64) {
        while self
            .failures
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= FAILURE_WINDOW_MS)
        {
            self.failures.pop_front();
        }
    }

    /// `Err(ms to wait)` while locked or while the `limit` is taken up.
    fn check(&mut self, now_ms: i64, limit: usize) -> Result<(), i64> {
        if now_ms < self.locked_until {
            return Err(self.locked_until - now_ms);
        }
        self.forget_old(now_ms);
        if self.failures.len() + self.pending >= limit {
            // Full of attempts still being checked: try again shortly. Full of failures cannot
            // happen (the fifth one locks), but the oldest one's expiry is the honest answer.
            let wait = self
                .failures
                .front()
                .map_or(1000, |&t| FAILURE_WINDOW_MS - now_ms.saturating_sub(t));
            return Err(wait.max(1000));
        }
        Ok(())
    }

    /// Records a failure; true when it is the `limit`th and starts a lock.
    fn fail(&mut self, now_ms: i64, limit: usize) -> bool {
        self.forget_old(now_ms);
        self.failures.push_back(now_ms);
        if self.failures.len() >= limit {
            self.failures.clear();
            self.locked_until = now_ms.saturating_add(LOCK_MS);
            return true;
        }
        false
    }

    fn idle(&self, now_ms: i64) -> bool {
        self.pending == 0
            && now_ms >= self.locked_until
            && self
                .failures
                .back()
                .is_none_or(|&t| now_ms.saturating_sub(t) >= FAILURE_WINDOW_MS)
    }
}

/// The address failures are counted against: an IPv4 address itself, an IPv6 address's /64
/// (one host may use any address in its /64, so counting each would let it guess without end).
pub(crate) fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// How a locked address is named in the audit trail: `192.0.2.7`, or `2001:db8:1:2::/64`.
pub(crate) fn shown(address: IpAddr) -> String {
    match address {
        IpAddr::V6(v6) => format!("{v6}/64"),
        v4 => v4.to_string(),
    }
}

/// Failures that lock an account, for an attempt from `address`.
fn account_limit(address: Option<IpAddr>) -> usize {
    if address.is_some() {
        ACCOUNT_MAX_FAILURES
    } else {
        MAX_FAILURES
    }
}

/// An attempt under way: end it with [`Throttle::succeeded`] or [`Throttle::failed`].
#[derive(Debug)]
#[must_use]
pub(crate) struct Attempt {
    account: String,
    address: Option<IpAddr>,
}

impl Throttle {
    /// Starts an attempt for `account` from `address`; `Err(ms to wait)` when either is locked.
    pub fn begin(
        &mut self,
        account: &str,
        address: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<Attempt, i64> {
        let address = address.map(counted_as);
        if self.accounts.len() + self.addresses.len() > 10_000 {
            self.prune(now_ms);
        }
        let mut wait = 0;
        if let Some(r) = self.accounts.get_mut(account)
            && let Err(w) = r.check(now_ms, account_limit(address))
        {
            wait = w;
        }
        if let Some(a) = address
            && let Some(r) = self.addresses.get_mut(&a)
            && let Err(w) = r.check(now_ms, MAX_FAILURES)
        {
            wait = wait.max(w);
        }
        if wait > 0 {
            return Err(wait);
        }
        self.accounts
            .entry(account.to_string())
            .or_default()
            .pending += 1;
        if let Some(a) = address {
            self.addresses.entry(a).or_default().pending += 1;
        }
        Ok(Attempt {
            account: account.to_string(),
            address,
        })
    }

    /// The password was right: the account's failures are forgiven. The address's are not, so
    /// one good account cannot be used to reset a guesser's count against others.
    pub fn succeeded(&mut self, attempt: Attempt) {
        self.end(&attempt);
        self.accounts.remove(&attempt.account);
    }

    /// The attempt failed; returns what it locked.
    pub fn failed(&mut self, attempt: Attempt, now_ms: i64) -> Vec<Locked> {
        self.end(&attempt);
        let mut locked = Vec::new();
        let r = self.accounts.entry(attempt.account.clone()).or_default();
        let limit = account_limit(attempt.address);
        if r.fail(now_ms, limit) {
            locked.push(Locked::Account(attempt.account, limit));
        }
        if let Some(a) = attempt.address {
            let r = self.addresses.entry(a).or_default();
            if r.fail(now_ms, MAX_FAILURES) {
                locked.push(Locked::Address(a));
            }
        }
        locked
    }

    /// The attempt ended without a verdict (the store failed): it counts neither way.
    pub fn abandoned(&mut self, attempt: Attempt) {
        self.end(&attempt);
    }

    fn end(&mut self, attempt: &Attempt) {
        if let Some(r) = self.accounts.get_mut(&attempt.account) {
            r.pending = r.pending.saturating_sub(1);
        }
        if let Some(a) = attempt.address
            && let Some(r) = self.addresses.get_mut(&a)
        {
            r.pending = r.pending.saturating_sub(1);
        }
    }

    /// Forgets records that no longer restrict anything.
    fn prune(&mut self, now_ms: i64) {
        self.accounts.retain(|_, r| !r.idle(now_ms));
        self.addresses.retain(|_, r| !r.idle(now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_425_242_000;
    const MINUTE: i64 = 60_000;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn fail(t: &mut Throttle, account: &str, addr: Option<IpAddr>, now: i64) -> Vec<Locked> {
        let a = t.begin(account, addr, now).expect("not locked yet");
        t.failed(a, now)
    }

    fn folder(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "hallpass-console-sessions-{name}-{}",
            std::process::id()
        ))
    }

    const PASSWORD: &str = "a long test password";

    /// Sessions over a store of their own, in a fresh folder, with accounts dpo1 and dpo2.
    async fn sessions(name: &str) -> Sessions {
        let dir = folder(name);
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).await.unwrap();
        for user in ["dpo1", "dpo2"] {
            store
                .user_add(user, hallpass_store::Role::Dpo, PASSWORD)
                .await
                .unwrap();
        }
        Sessions::new(store)
    }

    /// A login: the password checked, then the session started.
    async fn log_in(s: &Sessions, user: &str, now: i64) -> String {
        let (_, stamp) = s
            .store
            .user_verify_stamped(user, PASSWORD)
            .await
            .unwrap()
            .unwrap();
        s.create(user, now, &stamp).await.unwrap().unwrap().0
    }

    #[tokio::test]
    async fn sessions_expire_after_eight_idle_hours() {
        let s = sessions("idle").await;
        let id = log_in(&s, "dpo1", T0).await;
        assert_eq!(id.len(), 64);
        let seen = T0 + IDLE_TIMEOUT_MS - 1;
        assert_eq!(s.touch(&id, seen).await.unwrap().unwrap().user, "dpo1");
        // Idle time counts from the last request, not from the login.
        assert!(
            s.touch(&id, seen + IDLE_TIMEOUT_MS - 1)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.touch(&id, seen + 2 * IDLE_TIMEOUT_MS)
                .await
                .unwrap()
                .is_none()
        );
        // Forgotten once expired.
        assert!(s.touch(&id, T0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_last_use_is_written_at_most_once_a_minute() {
        let s = sessions("seen").await;
        let id = log_in(&s, "dpo1", T0).await;
        // Requests within the minute after the login are not written…
        s.touch(&id, T0 + SEEN_EVERY_MS - 1).await.unwrap().unwrap();
        assert_eq!(
            s.store
                .session_get(&id)
                .await
                .unwrap()
                .unwrap()
                .last_seen_ms,
            T0
        );
        // …the first one after it is.
        s.touch(&id, T0 + SEEN_EVERY_MS).await.unwrap().unwrap();
        let last = s
            .store
            .session_get(&id)
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms;
        assert_eq!(last, T0 + SEEN_EVERY_MS);
        // So a session ends at most a minute early, never late.
        let end = T0 + SEEN_EVERY_MS + IDLE_TIMEOUT_MS;
        assert!(s.touch(&id, end - 1).await.unwrap().is_some());
        assert!(
            s.touch(&id, end - 1 + IDLE_TIMEOUT_MS)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn sessions_end_a_day_after_login_however_busy() {
        let s = sessions("day").await;
        let id = log_in(&s, "dpo1", T0).await;
        let mut now = T0;
        while now < T0 + MAX_AGE_MS - 60 * MINUTE {
            now += 60 * MINUTE;
            assert!(s.touch(&id, now).await.unwrap().is_some());
        }
        assert!(s.touch(&id, T0 + MAX_AGE_MS).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn each_session_has_its_own_id_and_csrf_token_and_the_store_keeps_no_id() {
        let s = sessions("ids").await;
        let a = log_in(&s, "dpo1", T0).await;
        let b = log_in(&s, "dpo1", T0).await;
        assert_ne!(a, b);
        let csrf_a = s.touch(&a, T0).await.unwrap().unwrap().csrf;
        let csrf_b = s.touch(&b, T0).await.unwrap().unwrap().csrf;
        assert_ne!(csrf_a, csrf_b);
        assert_ne!(csrf_a, a);
        // The database file holds neither id.
        let file = folder("ids").join(hallpass_store::DB_FILE);
        let db = std::fs::read(&file).unwrap();
        let wal = std::fs::read(file.with_extension("db-wal")).unwrap_or_default();
        for id in [&a, &b] {
            let held = |bytes: &[u8]| bytes.windows(id.len()).any(|w| w == id.as_bytes());
            assert!(!held(&db) && !held(&wal), "a session id in the store");
        }
        s.remove(&a).await.unwrap();
        assert!(s.touch(&a, T0).await.unwrap().is_none());
        assert!(s.touch(&b, T0).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_accounts_sessions_end_together_except_the_one_kept() {
        let s = sessions("user").await;
        let a = log_in(&s, "dpo1", T0).await;
        let b = log_in(&s, "dpo1", T0).await;
        let c = log_in(&s, "dpo1", T0).await;
        let other = log_in(&s, "dpo2", T0).await;
        assert_eq!(
            s.store.session_remove_user("dpo1", Some(&b)).await.unwrap(),
            2
        );
        assert!(s.touch(&a, T0).await.unwrap().is_none());
        assert!(s.touch(&c, T0).await.unwrap().is_none());
        assert!(s.touch(&b, T0).await.unwrap().is_some());
        assert!(s.touch(&other, T0).await.unwrap().is_some());
        assert_eq!(s.store.session_remove_user("dpo1", None).await.unwrap(), 1);
        assert!(s.touch(&b, T0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_flash_is_shown_once() {
        let s = sessions("flash").await;
        let id = log_in(&s, "dpo1", T0).await;
        assert_eq!(s.take_flash(&id).await, None);
        let flash = Flash {
            error: true,
            text: "Already released by dpo2.".into(),
        };
        s.set_flash(&id, flash.clone()).await;
        assert_eq!(s.take_flash(&id).await, Some(flash));
        assert_eq!(s.take_flash(&id).await, None);
    }

    #[tokio::test]
    async fn expired_sessions_are_pruned_at_the_next_login() {
        let s = sessions("prune").await;
        let mut old = Vec::new();
        for _ in 0..3 {
            old.push(log_in(&s, "dpo1", T0).await);
        }
        log_in(&s, "dpo2", T0 + IDLE_TIMEOUT_MS).await;
        for id in &old {
            assert_eq!(s.store.session_get(id).await.unwrap(), None);
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn failures_from_several_addresses_lock_the_account_for_fifteen_minutes() {
        let mut t = Throttle::default();
        // Four addresses, five guesses each: each address is stopped at its fifth…
        for i in 0..(ACCOUNT_MAX_FAILURES / MAX_FAILURES) as i64 {
            let from = ip(&format!("192.0.2.{i}"));
            for _ in 0..MAX_FAILURES - 1 {
                assert!(fail(&mut t, "dpo1", from, T0 + i).is_empty());
            }
            let mut locked = vec![Locked::Address(from.unwrap())];
            // …and the twentieth in all locks the account.
            if i == 3 {
                locked.insert(0, Locked::Account("dpo1".into(), ACCOUNT_MAX_FAILURES));
            }
            assert_eq!(fail(&mut t, "dpo1", from, T0 + i), locked);
        }
        // From anywhere, for 15 minutes from the twentieth failure (at T0 + 3).
        let wait = t.begin("dpo1", ip("198.51.100.1"), T0 + 4).unwrap_err();
        assert_eq!(wait, LOCK_MS - 1);
        assert!(t.begin("dpo1", None, T0 + 3 + LOCK_MS - 1).is_err());
        // Other accounts are not affected.
        let other = t.begin("dpo2", ip("198.51.100.1"), T0 + 5).unwrap();
        t.succeeded(other);
        // Then it may try again.
        let a = t
            .begin("dpo1", ip("198.51.100.1"), T0 + 3 + LOCK_MS)
            .unwrap();
        t.succeeded(a);
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_slash_64() {
        let mut t = Throttle::default();
        for i in 0..MAX_FAILURES - 1 {
            assert!(fail(&mut t, "dpo1", ip(&format!("2001:db8:1:2::{i:x}")), T0).is_empty());
        }
        let locked = fail(&mut t, "dpo1", ip("2001:db8:1:2:ffff::1"), T0);
        assert_eq!(locked, vec![Locked::Address(ip("2001:db8:1:2::").unwrap())]);
        assert_eq!(shown(ip("2001:db8:1:2::").unwrap()), "2001:db8:1:2::/64");
        assert!(t.begin("dpo2", ip("2001:db8:1:2::abcd"), T0 + 1).is_err());
        // The next /64 is another host; an IPv4-mapped address is its IPv4 address.
        let a = t.begin("dpo1", ip("2001:db8:1:3::1"), T0 + 1).unwrap();
        t.succeeded(a);
        assert_eq!(
            counted_as(ip("::ffff:192.0.2.1").unwrap()),
            ip("192.0.2.1").unwrap()
        );
    }

    #[test]
    fn a_guesser_on_one_address_cannot_lock_the_account_out() {
        let mut t = Throttle::default();
        for _ in 0..MAX_FAILURES - 1 {
            assert!(fail(&mut t, "dpo1", ip("203.0.113.7"), T0).is_empty());
        }
        assert_eq!(
            fail(&mut t, "dpo1", ip("203.0.113.7"), T0),
            vec![Locked::Address("203.0.113.7".parse().unwrap())]
        );
        assert!(t.begin("dpo1", ip("203.0.113.7"), T0 + 1).is_err());
        // The DPO at their own desk logs in.
        let a = t.begin("dpo1", ip("192.0.2.10"), T0 + 1).unwrap();
        t.succeeded(a);
    }

    #[test]
    fn five_failures_from_one_address_lock_it_for_every_account() {
        let mut t = Throttle::default();
        for i in 0..4 {
            assert!(fail(&mut t, &format!("guess{i}"), ip("203.0.113.7"), T0).is_empty());
        }
        assert_eq!(
            fail(&mut t, "guess4", ip("203.0.113.7"), T0),
            vec![Locked::Address("203.0.113.7".parse().unwrap())]
        );
        assert!(t.begin("dpo1", ip("203.0.113.7"), T0 + 1).is_err());
        let a = t.begin("dpo1", ip("203.0.113.8"), T0 + 1).unwrap();
        t.succeeded(a);
        let a = t.begin("dpo1", ip("203.0.113.7"), T0 + LOCK_MS).unwrap();
        t.succeeded(a);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut t = Throttle::default();
        for i in 0..4 {
            fail(&mut t, "dpo1", None, T0 + i * 4 * MINUTE);
        }
        // The first failure (T0) is 16 minutes old by now: only four remain.
        assert!(fail(&mut t, "dpo1", None, T0 + 16 * MINUTE).is_empty());
        assert_eq!(
            fail(&mut t, "dpo1", None, T0 + 17 * MINUTE),
            vec![Locked::Account("dpo1".into(), MAX_FAILURES)]
        );
    }

    #[test]
    fn a_success_forgives_the_account_but_not_the_address() {
        let mut t = Throttle::default();
        for _ in 0..4 {
            fail(&mut t, "dpo1", ip("192.0.2.1"), T0);
        }
        let a = t.begin("dpo1", ip("192.0.2.1"), T0).unwrap();
        t.succeeded(a);
        // The account starts again from zero…
        assert!(fail(&mut t, "dpo1", ip("192.0.2.2"), T0).is_empty());
        // …but the address has four failures behind it.
        assert_eq!(
            fail(&mut t, "other", ip("192.0.2.1"), T0),
            vec![Locked::Address("192.0.2.1".parse().unwrap())]
        );
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let mut t = Throttle::default();
        let attempts: Vec<Attempt> = (0..MAX_FAILURES)
            .map(|_| t.begin("dpo1", ip("192.0.2.1"), T0).unwrap())
            .collect();
        assert!(t.begin("dpo1", ip("192.0.2.1"), T0).is_err());
        for a in attempts {
            t.abandoned(a);
        }
        let a = t.begin("dpo1", ip("192.0.2.1"), T0).unwrap();
        t.succeeded(a);
    }

    #[test]
    fn idle_records_are_pruned() {
        let mut t = Throttle::default();
        fail(&mut t, "dpo1", ip("192.0.2.1"), T0);
        t.prune(T0 + FAILURE_WINDOW_MS - 1);
        assert_eq!((t.accounts.len(), t.addresses.len()), (1, 1));
        t.prune(T0 + FAILURE_WINDOW_MS);
        assert_eq!((t.accounts.len(), t.addresses.len()), (0, 0));
    }
}
