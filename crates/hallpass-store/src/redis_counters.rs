//! The per-sender sliding window in Redis, shared by several relays (`[counters] url`).
//!
//! One sorted set per sender under `<prefix>window:<sha256 of the lower-cased address>` (the
//! address itself never reaches Redis): each message adds one member `<unique id>:<n>` scored
//! with its time in milliseconds. A Lua script prunes what left the window, adds, sums and sets
//! the key to expire one window after its newest event, in one atomic step, so relays counting
//! at the same moment never lose an event and idle senders leave nothing behind.
//!
//! Every count is also written to the local store. When Redis does not answer within
//! [`REDIS_TIMEOUT`] the store's count is used instead (never "no limit"): a warning is logged
//! once when Redis goes away and a line when it is back; in between Redis is tried again at most
//! every [`RETRY_EVERY`], so an outage costs SMTP replies nothing. When both answer, the larger
//! count is used, so a Redis that restarted empty still sees this relay's recent sends.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use crate::counters::Counters;
use crate::error::StoreError;
use crate::store::Store;

/// The longest one Redis call may take before the store's count is used.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// While Redis is unreachable, how often it is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// KEYS[1]: the sender's sorted set. ARGV: now (ms), window (ms), n, the event's unique id.
/// Events at or before `now - window` leave; the rest are summed (members end in `:<n>`).
const SCRIPT: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if n > 0 then
  redis.call('ZADD', key, now, ARGV[4] .. ':' .. ARGV[3])
end
local total = 0
for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  total = total + (tonumber(string.match(m, ':(%d+)$')) or 0)
end
if total > 0 then
  redis.call('PEXPIRE', key, window + 1000)
end
return total
";

/// Per-sender counters in Redis with the local store as the fallback (see the module docs).
pub struct RedisCounters {
    redis: ConnectionManager,
    script: redis::Script,
    prefix: String,
    local: Store,
    health: Mutex<Health>,
}

/// Whether Redis answered last time, and when to try it again if not.
#[derive(Debug, Default)]
struct Health {
    down: bool,
    retry_at: Option<Instant>,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Counters in the Redis at `url` (`redis://host:port[/db]`), keys starting with `prefix`,
    /// with `local` as the fallback. Connects lazily: a Redis that is down at start-up is a
    /// warning at the first message, not a failure to start. Must be called within a tokio
    /// runtime.
    pub fn new(url: &str, prefix: &str, local: Store) -> Result<RedisCounters, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Redis(format!("invalid [counters] url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let redis = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Redis(e.to_string()))?;
        Ok(RedisCounters {
            redis,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_string(),
            local,
            health: Mutex::new(Health::default()),
        })
    }

    /// Checks that Redis answers (`PING`), within [`REDIS_TIMEOUT`]; an outage found here is
    /// logged (and a recovery later) as one found while counting.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.redis.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut c);
        let error = match tokio::time::timeout(REDIS_TIMEOUT, ping).await {
            Ok(Ok(_)) => {
                self.answered();
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()),
        };
        self.failed(&error);
        Err(StoreError::Redis(error))
    }

    /// The Redis key of a sender's window.
    fn key(&self, sender: &str) -> String {
        let digest = Sha256::digest(sender.to_lowercase().as_bytes());
        let mut key = String::with_capacity(self.prefix.len() + 7 + 64);
        key.push_str(&self.prefix);
        key.push_str("window:");
        for b in digest {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    /// Should Redis be asked now (up, or down and due for another try)?
    fn worth_trying(&self) -> bool {
        let h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        !h.down || h.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    fn answered(&self) {
        let mut h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if h.down {
            *h = Health::default();
            tracing::info!(
                "Redis answers again: the senders' windows are counted in Redis, shared by the relays"
            );
        }
    }

    fn failed(&self, error: &str) {
        let mut h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if !h.down {
            tracing::warn!(
                error,
                "Redis does not answer: counting the senders' windows in this relay's store until it is back (bulk_send still applies, but does not see other relays' sends)"
            );
        }
        h.down = true;
        h.retry_at = Some(Instant::now() + RETRY_EVERY);
    }

    async fn redis_count(
        &self,
        sender: &str,
        event: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u64, String> {
        let mut c = self.redis.clone();
        let key = self.key(sender);
        let mut call = self.script.key(&key);
        call.arg(now_ms).arg(window_ms).arg(n).arg(event);
        match tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async::<u64>(&mut c)).await {
            Ok(Ok(total)) => Ok(total),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", REDIS_TIMEOUT.as_millis())),
        }
    }
}

impl Counters for RedisCounters {
    async fn add_event_and_count(
        &self,
        sender: &str,
        event: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u64, StoreError> {
        let local = self
            .local
            .add_event_and_count(sender, event, n, now_ms, window_ms);
        if !self.worth_trying() {
            return local.await;
        }
        let (shared, local) =
            tokio::join!(self.redis_count(sender, event, n, now_ms, window_ms), local);
        match shared {
            Ok(total) => {
                self.answered();
                // The store's count can only be larger when Redis lost its data.
                Ok(local.map_or(total, |l| l.max(total)))
            }
            Err(e) => {
                self.failed(&e);
                local
            }
        }
    }

    /// Out of both: the store's count is the fallback and the floor of Redis's. An error when
    /// either keeps the event (Redis unreachable: it stays there until it leaves the window).
    async fn take_back(&self, sender: &str, event: &str, n: u64) -> Result<(), StoreError> {
        let local = self.local.take_back(sender, event, n);
        if !self.worth_trying() {
            return local.await;
        }
        let (shared, local) = tokio::join!(self.redis_take_back(sender, event, n), local);
        local?;
        match shared {
            Ok(()) => {
                self.answered();
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                // Redis keeps the event until it leaves the window, and its count wins.
                Err(StoreError::Redis(e))
            }
        }
    }
}

impl RedisCounters {
    /// Removes the event's member (`<event>:<n>`, as [`SCRIPT`] added it) from Redis.
    async fn redis_take_back(&self, sender: &str, event: &str, n: u64) -> Result<(), String> {
        let mut c = self.redis.clone();
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(self.key(sender)).arg(format!("{event}:{n}"));
        match tokio::time::timeout(REDIS_TIMEOUT, zrem.query_async::<i64>(&mut c)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", REDIS_TIMEOUT.as_millis())),
        }
    }
}

/// The per-sender window as configured: the store's, or Redis shared by several relays.
#[derive(Debug)]
pub enum WindowCounters {
    /// In the store (`[counters] url` not set).
    Store(Store),
    /// In Redis, with the store as the fallback.
    Redis(Box<RedisCounters>),
}

impl Counters for WindowCounters {
    async fn add_event_and_count(
        &self,
        sender: &str,
        event: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u64, StoreError> {
        match self {
            WindowCounters::Store(s) => {
                s.add_event_and_count(sender, event, n, now_ms, window_ms)
                    .await
            }
            WindowCounters::Redis(r) => {
                r.add_event_and_count(sender, event, n, now_ms, window_ms)
                    .await
            }
        }
    }

    async fn take_back(&self, sender: &str, event: &str, n: u64) -> Result<(), StoreError> {
        match self {
            WindowCounters::Store(s) => s.take_back(sender, event, n).await,
            WindowCounters::Redis(r) => r.take_back(sender, event, n).await,
        }
    }
}
