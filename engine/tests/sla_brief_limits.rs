//! Every category of the bundled catalogue runs under the policy the domain brief
//! (`shared/domain/GRID-GOVERNANCE.md`, "Time limits") gives it: the catalogue is the one
//! category → policy mapping, and the limits are in the brief's units.

use wangge_engine::domain::sla::PolicySet;
use wangge_engine::grid::CategoryCatalogue;
use wangge_schemas::{Priority, SlaStep, TimeLimit, TimeUnit};

fn limit(amount: u32, unit: TimeUnit) -> TimeLimit {
    TimeLimit::new(amount, unit)
}

/// The handling (resolve) limit the brief names, by category, at the category's default
/// priority.
fn brief_handling_limit(category: &str) -> TimeLimit {
    use TimeUnit::*;
    match category {
        // "exposed rubbish 1 working day"
        "sanitation.garbage_exposed" => limit(1, WorkingDays),
        // "dirty road 5 working hours"
        "sanitation.road_dirty" => limit(5, WorkingHours),
        // "illegal construction 15 working days"
        "construction.illegal" => limit(15, WorkingDays),
        // "24 hours for water, power, gas and heating" (on the plain clock)
        "utilities.water_outage" => limit(24, ClockHours),
        // "rubbish not sorted … new sorted bins within a week": the standard five working
        // days of a normal case
        "sanitation.garbage_unsorted" => limit(5, WorkingDays),
        // Emergencies on the plain clock: a missing manhole cover made safe within 2 hours.
        "facility.manhole_cover" => limit(2, ClockHours),
        // Service requests: "7 days for general requests, 15 days for complex ones", in
        // working days; the complex ones are the low-priority requests.
        "service.residence_certificate"
        | "service.elderly_age_certification"
        | "service.social_insurance_certificate" => limit(7, WorkingDays),
        "service.rental_registration" | "service.micro_wish" | "inquiry.citizen_card" => {
            limit(15, WorkingDays)
        }
        // A high-priority service request (social assistance): 3 working days.
        "service.social_assistance" => limit(3, WorkingDays),
        // Everything else is a standard city-management case, by priority: 1 working day when
        // high, 5 when normal.
        "drainage.blocked"
        | "traffic.fire_lane_parking"
        | "fire_safety.corridor_blocked"
        | "flood_safety.riverside_path" => limit(1, WorkingDays),
        "lighting.street_light_out" | "lighting.stairwell_light_out" => limit(5, WorkingDays),
        other => panic!("the brief table has no line for category `{other}`: add one"),
    }
}

#[test]
fn every_category_handles_within_the_briefs_limit() {
    let catalogue = CategoryCatalogue::sample();
    let policies = PolicySet::bundled();
    assert!(catalogue.len() >= 19, "the whole catalogue is walked");
    for category in catalogue.iter() {
        let policy = policies.get(category.sla_policy()).unwrap_or_else(|| {
            panic!(
                "{}: policy `{}` exists",
                category.code,
                category.sla_policy()
            )
        });
        assert_eq!(
            policy.limit(SlaStep::Resolve, Some(category.default_priority)),
            Some(brief_handling_limit(&category.code)),
            "{} under policy `{}`",
            category.code,
            policy.name
        );
    }
}

#[test]
fn acceptance_and_dispatch_take_ten_clock_minutes_when_urgent_thirty_working_minutes_otherwise() {
    let catalogue = CategoryCatalogue::sample();
    let policies = PolicySet::bundled();
    for category in catalogue.iter() {
        let policy = policies.get(category.sla_policy()).expect("policy exists");
        let priority = category.default_priority;
        for step in [SlaStep::Accept, SlaStep::Dispatch] {
            let found = policy.limit(step, Some(priority));
            let expected = if priority == Priority::Urgent {
                limit(10, TimeUnit::ClockMinutes)
            } else if policy.name == "utilities" {
                // A utility outage is an emergency for the household: on the plain clock.
                limit(30, TimeUnit::ClockMinutes)
            } else {
                limit(30, TimeUnit::WorkingMinutes)
            };
            assert_eq!(found, Some(expected), "{} {step:?}", category.code);
        }
    }
}

#[test]
fn on_site_verification_takes_an_hour_and_emergencies_run_on_the_clock() {
    let policies = PolicySet::bundled();
    for name in ["standard", "sanitation", "sanitation_road", "construction"] {
        assert_eq!(
            policies.get(name).unwrap().limit(SlaStep::Verify, None),
            Some(limit(1, TimeUnit::WorkingHours)),
            "{name}"
        );
    }
    for name in ["urgent_facility", "utilities"] {
        let policy = policies.get(name).unwrap();
        assert_eq!(
            policy.limit(SlaStep::Verify, None),
            Some(limit(1, TimeUnit::ClockHours)),
            "{name}"
        );
        let every_limit = policy
            .targets
            .values()
            .flat_map(|targets| targets.limits())
            .chain(
                policy
                    .escalation
                    .values()
                    .flatten()
                    .map(|level| level.after),
            );
        for unit in every_limit.map(|limit| limit.unit) {
            assert!(
                !unit.is_working_time(),
                "{name}: {unit:?} is on the plain clock"
            );
        }
    }
}
