//! Residents' data keys on a real nats-server: one key per resident however many instances
//! race to make it, a contact opened only for its own case, erasure for good, the KEK
//! checked and rotated, and day keys gone after the rejected stream's retention.

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use wangge_engine::residents::{ContactOpener, KekError, KeyStoreError};
use wangge_engine::residents::{Kek, KeyRing, Opened, ResidentKeys};
use wangge_schemas::{CaseId, ResidentContact};
use wangge_testkit::NatsServer;

fn contact() -> ResidentContact {
    ResidentContact {
        name: Some("张三".into()),
        phone: Some("13812341234".into()),
        id_number: None,
    }
}

async fn keys(server: &NatsServer, ring: KeyRing) -> Arc<ResidentKeys> {
    Arc::new(
        ResidentKeys::open(server.connect().await, 1, ring)
            .await
            .expect("open the key store"),
    )
}

#[tokio::test]
async fn two_instances_sealing_for_a_new_resident_at_once_end_up_with_one_key() {
    let server = NatsServer::start();
    let ring = KeyRing::new(Kek::generate());
    let (a, b) = (keys(&server, ring.clone()).await, keys(&server, ring).await);
    let case = CaseId::new_v7();
    let given = contact();
    let (sealed_a, sealed_b) = tokio::join!(
        a.seal_contact("miniprogram", "wx-1", case, &given),
        b.seal_contact("miniprogram", "wx-1", case, &given),
    );
    let (sealed_a, sealed_b) = (sealed_a.expect("seal"), sealed_b.expect("seal"));
    assert_eq!(sealed_a.key_id, sealed_b.key_id);
    // Each instance opens what the other sealed: the same key.
    assert_eq!(
        b.open_contact(case, &sealed_a).await.expect("open"),
        Opened::Plain(contact())
    );
    assert_eq!(
        a.open_contact(case, &sealed_b).await.expect("open"),
        Opened::Plain(contact())
    );
    // The key id names neither the system nor the resident.
    assert!(sealed_a.key_id.starts_with("rk-") && !sealed_a.key_id.contains("wx-1"));
    assert_ne!(
        a.resident_key_id("hotline", "wx-1").await.expect("id"),
        sealed_a.key_id,
        "the same id at another system is another resident"
    );
}

#[tokio::test]
async fn a_sealed_contact_opens_only_for_its_own_case() {
    let server = NatsServer::start();
    let store = keys(&server, KeyRing::new(Kek::generate())).await;
    let sealed = store
        .seal_contact("miniprogram", "wx-2", CaseId::new_v7(), &contact())
        .await
        .expect("seal");
    let moved = store.open_contact(CaseId::new_v7(), &sealed).await;
    assert!(
        matches!(moved, Err(KeyStoreError::Corrupt { ref reason, .. }) if reason.contains("altered or moved")),
        "{moved:?}"
    );
}

#[tokio::test]
async fn an_erased_residents_contacts_and_bytes_can_never_be_opened_again() {
    let server = NatsServer::start();
    let ring = KeyRing::new(Kek::generate());
    let (engine, other) = (keys(&server, ring.clone()).await, keys(&server, ring).await);
    let case = CaseId::new_v7();
    let sealed = engine
        .seal_contact("miniprogram", "wx-3", case, &contact())
        .await
        .expect("seal");
    let bytes = engine
        .seal_bytes(&sealed.key_id, b"{\"phone\":\"13812341234\"}")
        .await
        .expect("seal bytes");
    // The other instance has the key cached when the erasure happens.
    assert_eq!(
        other.open_contact(case, &sealed).await.expect("open"),
        Opened::Plain(contact())
    );
    let watcher = tokio::spawn(other.clone().watch_erasures(std::future::pending()));

    let at = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    let erasure = engine
        .erase("miniprogram", "wx-3", "dpo-zhang", at)
        .await
        .expect("erase");
    assert_eq!(erasure.resident_key, sealed.key_id);
    assert_eq!(erasure.key_revisions_destroyed, 1);
    assert_eq!(erasure.ordered_by, "dpo-zhang");

    assert_eq!(
        engine.open_contact(case, &sealed).await.expect("answer"),
        Opened::Erased
    );
    assert_eq!(
        engine
            .open_bytes(&sealed.key_id, &bytes.nonce, &bytes.ciphertext)
            .await
            .expect("answer"),
        Opened::Erased
    );
    // The other instance heard of it through its watch: its cached key is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while other.open_contact(case, &sealed).await.expect("answer") != Opened::Erased {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never dropped the key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    watcher.abort();

    // Reporting again after erasure gives a new key, which does not open the old contact.
    let again = engine
        .seal_contact("miniprogram", "wx-3", CaseId::new_v7(), &contact())
        .await
        .expect("seal again");
    assert_eq!(again.key_id, sealed.key_id);
    assert_eq!(
        engine.open_contact(case, &sealed).await.expect("answer"),
        Opened::Erased
    );
}

#[tokio::test]
async fn rotating_the_kek_rewraps_every_key_and_the_old_kek_is_needed_until_then() {
    let server = NatsServer::start();
    let (old, new) = (Kek::generate(), Kek::generate());
    let before = keys(&server, KeyRing::new(old.clone())).await;
    let case = CaseId::new_v7();
    let sealed = before
        .seal_contact("miniprogram", "wx-4", case, &contact())
        .await
        .expect("seal");

    // An engine holding only the new KEK says which one it lacks.
    let unready = keys(&server, KeyRing::new(new.clone())).await;
    let refused = unready.open_contact(case, &sealed).await;
    assert!(
        matches!(&refused, Err(KeyStoreError::UnknownKek { kek_id, .. }) if kek_id == old.id()),
        "{refused:?}"
    );

    let rotating = keys(&server, KeyRing::new(new.clone()).with_previous(old)).await;
    let report = rotating.rewrap().await.expect("rewrap");
    assert_eq!(report.rewrapped, 2, "the resident's key and the naming key");
    assert_eq!(rotating.rewrap().await.expect("again").rewrapped, 0);

    let after = keys(&server, KeyRing::new(new)).await;
    assert_eq!(
        after.open_contact(case, &sealed).await.expect("open"),
        Opened::Plain(contact())
    );
    assert_eq!(
        after
            .resident_key_id("miniprogram", "wx-4")
            .await
            .expect("id"),
        sealed.key_id,
        "rotation renames nothing"
    );
}

#[tokio::test]
async fn day_keys_older_than_the_retention_are_destroyed() {
    let server = NatsServer::start();
    let store = keys(&server, KeyRing::new(Kek::generate())).await;
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).expect("a date");
    let old = ResidentKeys::day_key_id(day(1));
    let recent = ResidentKeys::day_key_id(day(20));
    let old_bytes = store.seal_bytes(&old, b"13700001111").await.expect("seal");
    let recent_bytes = store
        .seal_bytes(&recent, b"13700002222")
        .await
        .expect("seal");

    assert_eq!(store.sweep_day_keys(day(2)).await.expect("sweep"), 1);
    assert_eq!(
        store
            .open_bytes(&old, &old_bytes.nonce, &old_bytes.ciphertext)
            .await
            .expect("answer"),
        Opened::Expired
    );
    assert_eq!(
        store
            .open_bytes(&recent, &recent_bytes.nonce, &recent_bytes.ciphertext)
            .await
            .expect("answer"),
        Opened::Plain(b"13700002222".to_vec())
    );
}

#[test]
fn a_kek_must_be_32_base64_bytes_in_a_file_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("kek");
    let kek = Kek::generate();
    std::fs::write(&path, kek.to_base64()).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = Kek::from_file(&path).expect_err("world-readable");
    assert!(matches!(error, KekError::WorldReadable { mode: 0o644, .. }));
    assert!(error.to_string().contains("chmod 600"));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(Kek::from_file(&path).expect("read").id(), kek.id());
    assert!(!format!("{:?}", Kek::from_file(&path).expect("read")).contains(&kek.to_base64()));

    let short = Kek::from_base64("c2hvcnQ=", "in WANGGE_KEK").expect_err("short");
    assert!(short.to_string().contains("5 bytes, not 32"), "{short}");
    let junk = Kek::from_base64("not base64!", "in WANGGE_KEK").expect_err("junk");
    assert!(junk.to_string().contains("not valid base64"), "{junk}");
    assert!(
        !junk.to_string().contains("not base64!"),
        "the key text is never shown"
    );
}

#[tokio::test]
async fn looking_up_a_residents_key_never_makes_one() {
    let server = NatsServer::start();
    let store = keys(&server, KeyRing::new(Kek::generate())).await;
    assert_eq!(
        store
            .existing_resident_key_id("spam", "made-up-1")
            .await
            .expect("lookup"),
        None
    );
    let sealed = store
        .seal_contact("miniprogram", "wx-5", CaseId::new_v7(), &contact())
        .await
        .expect("seal");
    assert_eq!(
        store
            .existing_resident_key_id("miniprogram", "wx-5")
            .await
            .expect("lookup"),
        Some(sealed.key_id)
    );
    assert_eq!(
        store
            .existing_resident_key_id("spam", "made-up-1")
            .await
            .expect("lookup"),
        None,
        "the first lookup made nothing"
    );
}
