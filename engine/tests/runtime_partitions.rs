//! Partition leases: engine instances share the cases fairly, and the partitions of an
//! instance that stops are taken over by the others.

use std::time::Duration;

use wangge_engine::runtime::{LeaseConfig, PartitionLeases, PARTITIONS};
use wangge_testkit::NatsServer;

fn config(instance: &str) -> LeaseConfig {
    LeaseConfig {
        ttl: Duration::from_secs(2),
        ..LeaseConfig::new(instance)
    }
}

#[tokio::test]
async fn a_single_instance_holds_every_partition() {
    let server = NatsServer::start();
    let mut leases = PartitionLeases::open(server.connect().await, config("a"))
        .await
        .unwrap();
    leases.round().await.unwrap();
    assert_eq!(
        leases.ownership().partitions().len(),
        usize::from(PARTITIONS)
    );
}

#[tokio::test]
async fn two_instances_split_the_partitions_without_overlap() {
    let server = NatsServer::start();
    let mut a = PartitionLeases::open(server.connect().await, config("a"))
        .await
        .unwrap();
    let mut b = PartitionLeases::open(server.connect().await, config("b"))
        .await
        .unwrap();
    // Both announce themselves, then each settles on its share.
    for _ in 0..3 {
        a.round().await.unwrap();
        b.round().await.unwrap();
    }
    let (owned_a, owned_b) = (a.ownership().partitions(), b.ownership().partitions());
    assert!(
        owned_a.is_disjoint(&owned_b),
        "a {owned_a:?} and b {owned_b:?} overlap"
    );
    assert_eq!(
        owned_a.len() + owned_b.len(),
        usize::from(PARTITIONS),
        "a {owned_a:?} b {owned_b:?}"
    );
    assert_eq!(owned_a.len(), usize::from(PARTITIONS) / 2);
}

#[tokio::test]
async fn the_partitions_of_an_instance_that_died_are_taken_over_after_its_leases_expire() {
    let server = NatsServer::start();
    let mut a = PartitionLeases::open(server.connect().await, config("a"))
        .await
        .unwrap();
    let mut b = PartitionLeases::open(server.connect().await, config("b"))
        .await
        .unwrap();
    for _ in 0..3 {
        a.round().await.unwrap();
        b.round().await.unwrap();
    }
    assert_eq!(
        b.ownership().partitions().len(),
        usize::from(PARTITIONS) / 2
    );
    // `a` dies without releasing anything; `b` keeps going.
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        b.round().await.unwrap();
        if b.ownership().partitions().len() == usize::from(PARTITIONS) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never took over: {:?}",
            b.ownership().partitions()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn an_instance_that_stops_cleanly_hands_its_partitions_over_at_once() {
    let server = NatsServer::start();
    let a = PartitionLeases::open(server.connect().await, config("a"))
        .await
        .unwrap();
    let mut b = PartitionLeases::open(server.connect().await, config("b"))
        .await
        .unwrap();
    let a_ownership = a.ownership();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(a.run(async {
        stopped.await.ok();
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        b.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(!a_ownership.partitions().is_empty());
    stop.send(()).unwrap();
    running.await.unwrap();
    assert!(a_ownership.partitions().is_empty());
    // No waiting for expiry: the very next rounds take everything.
    b.round().await.unwrap();
    b.round().await.unwrap();
    assert_eq!(b.ownership().partitions().len(), usize::from(PARTITIONS));
}
