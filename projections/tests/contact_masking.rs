//! What readers are shown of a resident's contact in a served payload: masked when the
//! process can open it, `已删除` once the resident is erased, `[encrypted]` without a KEK, and
//! a contact written before sealing masked like any other.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use wangge_engine::residents::{ContactOpener, Kek, KeyRing, ResidentKeys};
use wangge_projections::residents::mask_payload;
use wangge_schemas::{CaseId, ResidentContact};

fn contact() -> ResidentContact {
    ResidentContact {
        name: Some("张三丰".into()),
        phone: Some("13812341234".into()),
        id_number: Some("11010519491231002X".into()),
    }
}

fn reported_payload(resident: Value) -> Value {
    json!({"title": "井盖丢失", "details": {"intake": "resident_report", "channel": "kiosk", "resident": resident}})
}

async fn masked(opener: Option<&dyn ContactOpener>, case: CaseId, payload: &Value) -> Value {
    let mut payload = payload.clone();
    mask_payload(opener, case, &mut payload).await;
    payload["details"]["resident"].clone()
}

#[tokio::test]
async fn a_sealed_contact_is_served_masked_then_erased_and_encrypted_without_a_kek() {
    let keys = Arc::new(ResidentKeys::in_memory(KeyRing::new(Kek::generate())));
    let case = CaseId::new_v7();
    let sealed = keys
        .seal_contact("kiosk-07", "sbk-1", case, &contact())
        .await
        .expect("seal");
    let payload = reported_payload(json!({"id": "sbk-1", "contact": sealed}));

    let shown = masked(Some(keys.as_ref()), case, &payload).await;
    assert_eq!(
        shown,
        json!({"id": "sbk-1", "contact": {"name": "张**", "phone": "138****1234", "id_number": "1101**********002X"}})
    );
    assert_eq!(masked(None, case, &payload).await["contact"], "[encrypted]");

    keys.erase("kiosk-07", "sbk-1", "dpo", Utc::now())
        .await
        .expect("erase");
    assert_eq!(
        masked(Some(keys.as_ref()), case, &payload).await["contact"],
        "已删除"
    );
    assert_eq!(
        masked(Some(keys.as_ref()), case, &payload).await["id"],
        "sbk-1",
        "the pseudonymous id stays"
    );
}

#[tokio::test]
async fn a_contact_written_before_sealing_is_served_masked_too() {
    let payload = reported_payload(
        json!({"id": "wx-1", "legacy_contact": {"name": "王阿姨", "phone": "13900001111"}}),
    );
    let shown = masked(None, CaseId::new_v7(), &payload).await;
    assert_eq!(
        shown["legacy_contact"],
        json!({"name": "王**", "phone": "139****1111"})
    );
}

#[tokio::test]
async fn other_payloads_are_served_as_they_are() {
    let payload = json!({"worker_id": "gw-1", "notes": "已处理"});
    let mut served = payload.clone();
    mask_payload(None, CaseId::new_v7(), &mut served).await;
    assert_eq!(served, payload);
}
