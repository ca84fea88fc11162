//! Who may see a reporter's contact in full (`may_reveal`), as the business rule reads: the
//! assigned worker while the case is open, a supervisor of the case's cell or above, an
//! auditor — and nobody else, each refusal saying why.

use wangge_engine::domain::CaseStatus;
use wangge_engine::grid::GridDirectory;
use wangge_projections::fold::CaseSummary;
use wangge_projections::residents::{may_reveal, RequesterRole};
use wangge_schemas::{CaseId, GridLocation};

/// A case in building 2栋 of 翠苑一区 (330106001001001), held by that building's cell and
/// assigned to `gw-1`.
fn case(status: CaseStatus) -> CaseSummary {
    let mut case = CaseSummary::new(
        CaseId::new_v7(),
        GridLocation {
            district: "330106001".into(),
            community: "330106001001".into(),
            building: "330106001001001".into(),
        },
    );
    case.status = status;
    case.assignee = Some("gw-1".into());
    case
}

fn verdict(case: &CaseSummary, requester: &str, role: RequesterRole) -> Result<(), String> {
    may_reveal(case, &GridDirectory::sample_city(), requester, role)
}

#[test]
fn the_assigned_worker_sees_the_contact_while_the_case_is_open() {
    assert_eq!(
        verdict(
            &case(CaseStatus::InProgress),
            "gw-1",
            RequesterRole::GridWorker
        ),
        Ok(())
    );
}

#[test]
fn the_assigned_worker_no_longer_sees_it_once_the_case_is_closed() {
    let refusal =
        verdict(&case(CaseStatus::Closed), "gw-1", RequesterRole::GridWorker).expect_err("closed");
    assert!(refusal.contains("closed"), "{refusal}");
}

#[test]
fn another_worker_does_not_see_it() {
    let refusal = verdict(
        &case(CaseStatus::InProgress),
        "gw-2",
        RequesterRole::GridWorker,
    )
    .expect_err("not theirs");
    assert!(
        refusal.contains("not the grid worker assigned"),
        "{refusal}"
    );
}

#[test]
fn supervisors_of_the_building_its_community_and_its_district_see_it() {
    for supervisor in ["sup-330106001001001", "sup-330106001001", "sup-330106001"] {
        assert_eq!(
            verdict(
                &case(CaseStatus::Closed),
                supervisor,
                RequesterRole::Supervisor
            ),
            Ok(()),
            "{supervisor}"
        );
    }
}

#[test]
fn a_supervisor_elsewhere_does_not_see_it() {
    let refusal = verdict(
        &case(CaseStatus::InProgress),
        "sup-330106002001001",
        RequesterRole::Supervisor,
    )
    .expect_err("another district's building");
    assert!(
        refusal.contains("supervises neither cell 330106001001001"),
        "{refusal}"
    );
}

#[test]
fn an_auditor_sees_it_and_nobody_else_does() {
    assert_eq!(
        verdict(
            &case(CaseStatus::Closed),
            "auditor-li",
            RequesterRole::Auditor
        ),
        Ok(())
    );
    assert!(verdict(&case(CaseStatus::InProgress), "gw-1", RequesterRole::Other).is_err());
}
