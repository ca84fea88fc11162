//! Sharing cases between engine instances: 16 partitions, each held by one instance at a time
//! through a lease in a JetStream key-value bucket.
//!
//! A case belongs to partition `shard >> 4`, where `shard` is the last byte of its id (the
//! same byte that names its subject, see `log::jetstream::shard_of`). Every instance writes a
//! heartbeat; from the number of live instances it computes its fair share and takes free
//! partitions (`create`, which only succeeds when nobody holds the key) until it has it,
//! renewing its own leases (`update` against the revision it holds) and releasing any extra.
//! Entries expire with the bucket's `max_age`, so the leases of an instance that died run out
//! and another instance takes them over.
//!
//! Leases decide who *acts* on a case (dispatches it, fires its timers), never what is
//! correct: every command is conditional on the case's version and idempotent, so two
//! instances that briefly both believe they hold a partition still write each fact once.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use tracing::{debug, info, warn};
use wangge_schemas::CaseId;

/// How many partitions the cases are split into.
pub const PARTITIONS: u8 = 16;

/// The partition a case belongs to.
pub fn partition_of(case_id: CaseId) -> u8 {
    case_id.0.as_bytes()[15] >> 4
}

/// Which partitions this instance holds right now. Cheap to clone and to query.
#[derive(Debug, Clone)]
pub struct Ownership {
    owned: Arc<RwLock<BTreeSet<u8>>>,
}

impl Ownership {
    /// Holds every partition: a single instance without leases (the demo, tests).
    pub fn everything() -> Self {
        Self {
            owned: Arc::new(RwLock::new((0..PARTITIONS).collect())),
        }
    }

    pub fn nothing() -> Self {
        Self {
            owned: Arc::new(RwLock::new(BTreeSet::new())),
        }
    }

    pub fn owns(&self, case_id: CaseId) -> bool {
        self.read().contains(&partition_of(case_id))
    }

    pub fn partitions(&self) -> BTreeSet<u8> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<u8>> {
        self.owned.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds exactly these partitions from now on: what the leases do as instances come and
    /// go (and what tests and fixed set-ups do by hand).
    pub fn set(&self, partitions: BTreeSet<u8>) {
        *self.owned.write().unwrap_or_else(|p| p.into_inner()) = partitions;
    }
}

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub bucket: String,
    /// This instance's name (unique per process).
    pub instance: String,
    /// A lease not renewed within this time expires and may be taken over.
    pub ttl: Duration,
    pub replicas: usize,
}

impl LeaseConfig {
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            bucket: "wangge_leases".to_owned(),
            instance: instance.into(),
            ttl: Duration::from_secs(6),
            replicas: 1,
        }
    }
}

/// Keeps this instance's partition leases: call [`PartitionLeases::run`] in a task.
pub struct PartitionLeases {
    store: kv::Store,
    config: LeaseConfig,
    ownership: Ownership,
    /// Revisions of the leases we hold, by partition.
    held: std::collections::BTreeMap<u8, u64>,
}

impl PartitionLeases {
    pub async fn open(client: async_nats::Client, config: LeaseConfig) -> anyhow::Result<Self> {
        let context = jetstream::new(client);
        // Replicas only ever rise here (`crate::nats::stream_rules`); 0 keeps the bucket's.
        let exists = crate::nats::streams::settle_bucket_replicas(
            &context,
            &format!("KV_{}", config.bucket),
            config.replicas,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let store = if exists {
            context.get_key_value(&config.bucket).await?
        } else {
            context
                .create_key_value(kv::Config {
                    bucket: config.bucket.clone(),
                    description: "Wangge: which engine instance acts on which partition of cases"
                        .into(),
                    history: 1,
                    max_age: config.ttl,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: config.replicas.max(1),
                    ..Default::default()
                })
                .await?
        };
        Ok(Self {
            store,
            config,
            ownership: Ownership::nothing(),
            held: Default::default(),
        })
    }

    pub fn ownership(&self) -> Ownership {
        self.ownership.clone()
    }

    /// Renews, takes and releases leases until `shutdown`; then releases everything so the
    /// others take over at once instead of waiting for expiry.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let period = self.config.ttl / 3;
        loop {
            if let Err(error) = self.round().await {
                warn!(%error, instance = %self.config.instance, "lease round failed");
                // Without a confirmed renewal we cannot be sure we still hold anything.
                self.held.clear();
                self.ownership.set(BTreeSet::new());
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = &mut shutdown => break,
            }
        }
        self.release_all().await;
    }

    /// One round: heartbeat, renew, rebalance.
    pub async fn round(&mut self) -> anyhow::Result<()> {
        let me = self.config.instance.clone();
        self.store
            .put(format!("instance.{me}"), me.clone().into())
            .await?;
        let live = self.live_instances().await?.max(1);
        let fair_share = (usize::from(PARTITIONS)).div_ceil(live);

        // Renew what we hold; a failed renewal means someone else has it now.
        let mut renewed = std::collections::BTreeMap::new();
        for (&partition, &revision) in &self.held {
            match self
                .store
                .update(partition_key(partition), me.clone().into(), revision)
                .await
            {
                Ok(new_revision) => {
                    renewed.insert(partition, new_revision);
                }
                Err(error) => debug!(partition, %error, "lost a partition lease"),
            }
        }
        self.held = renewed;

        // Give back what is over our share, so a new instance gets its part.
        while self.held.len() > fair_share {
            let Some((&partition, &revision)) = self.held.iter().next_back() else {
                break;
            };
            self.store
                .delete_expect_revision(partition_key(partition), Some(revision))
                .await
                .ok();
            self.held.remove(&partition);
            info!(partition, instance = %me, "released a partition to rebalance");
        }

        // Take free partitions up to our share.
        for partition in 0..PARTITIONS {
            if self.held.len() >= fair_share {
                break;
            }
            if self.held.contains_key(&partition) {
                continue;
            }
            if let Ok(revision) = self
                .store
                .create(partition_key(partition), me.clone().into())
                .await
            {
                info!(partition, instance = %me, "took a partition");
                self.held.insert(partition, revision);
            }
        }
        self.ownership.set(self.held.keys().copied().collect());
        Ok(())
    }

    async fn live_instances(&self) -> anyhow::Result<usize> {
        let mut keys = self.store.keys().await?;
        let mut live = 0;
        while let Some(key) = keys.next().await {
            if key?.starts_with("instance.") {
                live += 1;
            }
        }
        Ok(live)
    }

    async fn release_all(&mut self) {
        for (&partition, &revision) in &self.held {
            self.store
                .delete_expect_revision(partition_key(partition), Some(revision))
                .await
                .ok();
        }
        self.store
            .delete(format!("instance.{}", self.config.instance))
            .await
            .ok();
        self.held.clear();
        self.ownership.set(BTreeSet::new());
    }
}

fn partition_key(partition: u8) -> String {
    format!("partition.{partition:02}")
}
