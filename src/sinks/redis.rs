//! The Redis online feature store (SPEC "Feature store").
//!
//! One hash per entity, `rift:{entity}:{id}`: a field per feature, plus
//! `event_time` (the latest window end its values are valid at),
//! `updated_at`, and per feature set `event_time:{set}`. Every update runs a
//! Lua script on the server, atomically: an update older than what the
//! entity already holds for its feature set is skipped, so replays and
//! re-ordered writes never move a key back in event time. Keys get the
//! configured TTL. Updates of a commit are pipelined in one round trip.
//!
//! When Redis is unreachable the write fails as retryable; the sink keeps
//! its updates and retries with back-off, reconnecting (the connection
//! manager redials; a restarted server gets the script loaded again), so no
//! update is lost.

use super::embedded::{entity_key, FeatureStore, FeatureUpdate, WriteStats};
use crate::error::{Result, RiftError};
use crate::util::block_on;
use redis::aio::ConnectionManager;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Guarded updates per pipeline (one round trip each).
const PIPELINE_COMMANDS: usize = 2_048;

const GUARDED_UPDATE: &str = r#"
local guard = 'event_time:' .. ARGV[1]
local held = redis.call('HGET', KEYS[1], guard)
if held and tonumber(held) > tonumber(ARGV[2]) then
  return 0
end
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[1], guard, ARGV[2])
local latest = redis.call('HGET', KEYS[1], 'event_time')
if (not latest) or tonumber(latest) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'event_time', ARGV[2])
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
"#;

fn redis_err(e: redis::RedisError) -> RiftError {
    // The client's own judgement (connection lost, LOADING, TRYAGAIN, READONLY
    // during failover, …), plus NOSCRIPT: the script is loaded again on retry.
    let retryable = !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript);
    RiftError::external_caused("redis", e, retryable)
}

/// The Redis feature store.
pub struct RedisStore {
    client: redis::Client,
    /// Dialed on first use and re-dialed after a failure.
    connection: Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    ttl_ms: i64,
}

impl RedisStore {
    /// Applies `updates` in one pipeline of guarded updates.
    fn write_pipeline(&self, con: &ConnectionManager, updates: &[FeatureUpdate], now: i64) -> Result<WriteStats> {
        let mut pipe = redis::pipe();
        for u in updates {
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(1)
                .arg(entity_key(&u.entity, &u.id));
            cmd.arg(&u.feature_set).arg(u.event_time).arg(now).arg(self.ttl_ms);
            for (name, value) in &u.values {
                cmd.arg(name).arg(value.map(|v| v.to_string()).unwrap_or_default());
            }
        }
        let script = self.script.clone();
        let mut con = con.clone();
        let result: std::result::Result<Vec<i64>, redis::RedisError> = block_on(async move {
            match pipe.query_async::<Vec<i64>>(&mut con).await {
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    // A new or restarted server: load the script, then replay the pipeline.
                    script.load_async(&mut con).await?;
                    pipe.query_async::<Vec<i64>>(&mut con).await
                }
                other => other,
            }
        });
        match result {
            Ok(flags) => {
                let written = flags.iter().filter(|f| **f == 1).count() as u64;
                Ok(WriteStats {
                    written,
                    stale: flags.len() as u64 - written,
                })
            }
            Err(e) => {
                self.forget_connection();
                Err(redis_err(e))
            }
        }
    }

    /// A store at `url` (`redis://host:port/db`) with entity TTL `ttl`.
    pub fn open(url: &str, ttl: Duration) -> Result<RedisStore> {
        let client = redis::Client::open(url).map_err(|e| RiftError::Usage(format!("redis url `{url}`: {e}")))?;
        Ok(RedisStore {
            client,
            connection: Mutex::new(None),
            script: redis::Script::new(GUARDED_UPDATE),
            ttl_ms: ttl.as_millis() as i64,
        })
    }

    fn connection(&self) -> Result<ConnectionManager> {
        let mut slot = self
            .connection
            .lock()
            .map_err(|_| RiftError::Internal("redis lock poisoned".into()))?;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = self.client.clone();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let manager =
            block_on(async move { ConnectionManager::new_with_config(client, config).await }).map_err(redis_err)?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    fn forget_connection(&self) {
        if let Ok(mut slot) = self.connection.lock() {
            *slot = None;
        }
    }
}

impl FeatureStore for RedisStore {
    fn write(&self, updates: &[FeatureUpdate]) -> Result<WriteStats> {
        let mut stats = WriteStats::default();
        if updates.is_empty() {
            return Ok(stats);
        }
        let con = self.connection()?;
        let now = crate::util::now_ms();
        // Bounded pipelines: one for a whole epoch held its commands three
        // times over (arguments, encoded request, send buffer).
        for chunk in updates.chunks(PIPELINE_COMMANDS) {
            let written = self.write_pipeline(&con, chunk, now)?;
            stats.written += written.written;
            stats.stale += written.stale;
        }
        Ok(stats)
    }

    fn get(&self, entity: &str, id: &str) -> Result<Option<BTreeMap<String, String>>> {
        let mut con = self.connection()?;
        let key = entity_key(entity, id);
        let map: std::collections::HashMap<String, String> =
            block_on(async move { redis::cmd("HGETALL").arg(key).query_async(&mut con).await }).map_err(redis_err)?;
        Ok((!map.is_empty()).then(|| map.into_iter().collect()))
    }
}
