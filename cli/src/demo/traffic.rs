//! What reaches the engine in a simulated day: residents' reports through the mini-program,
//! the 12345 hotline and kiosks, grid workers' patrol findings, service requests — realistic
//! texts from the domain brief, over a day's curve, some of them retried and some broken the
//! ways real senders break them — and residents' evaluations of their closed cases.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;
use wangge_schemas::CaseId;

use super::dice::Dice;

/// Realistic report texts with their categories.
pub const RESIDENT_REPORTS: &[(&str, &str)] = &[
    ("12栋3单元1-6门口下水道堵塞", "drainage.blocked"),
    ("小区垃圾不分类,异味严重", "sanitation.garbage_unsorted"),
    ("绿化带暴露垃圾无人清理", "sanitation.garbage_exposed"),
    ("小区门口道路油污,行人易滑倒", "sanitation.road_dirty"),
    ("新起点A区路灯不亮", "lighting.street_light_out"),
    ("楼道灯坏了", "lighting.stairwell_light_out"),
    ("消防通道被私家车占用", "traffic.fire_lane_parking"),
    ("路口井盖缺失,有安全隐患", "facility.manhole_cover"),
    ("楼顶违章搭建阳光房", "construction.illegal"),
    ("整栋楼停水,没有通知", "utilities.water_outage"),
    ("市民卡丢了如何补办", "inquiry.citizen_card"),
];

pub const PATROL_FINDINGS: &[(&str, &str)] = &[
    ("楼道堆放杂物,堵塞消防通道", "fire_safety.corridor_blocked"),
    ("沿河步道护栏松动", "flood_safety.riverside_path"),
    ("绿化带暴露垃圾", "sanitation.garbage_exposed"),
    ("单元门口下水道返水", "drainage.blocked"),
    ("楼道灯不亮", "lighting.stairwell_light_out"),
];

pub const SERVICE_REQUESTS: &[(&str, &str)] = &[
    ("申请开具居住证明", "service.residence_certificate"),
    ("八十周岁高龄认证", "service.elderly_age_certification"),
    (
        "社会保险参保缴费证明",
        "service.social_insurance_certificate",
    ),
    ("申请临时社会救助", "service.social_assistance"),
    ("出租房屋登记", "service.rental_registration"),
    (
        "小区广场不锈钢大圆盘夏天烫冬天凉,能否拆除换成滑梯",
        "service.micro_wish",
    ),
];

/// How busy an hour of the day is (local hour → relative weight): a morning peak, a lunch
/// dip, an afternoon bump, a quiet evening.
pub fn hourly_weight(hour: u32) -> f64 {
    match hour {
        0..=6 => 0.1,
        7 => 0.6,
        8..=10 => 1.6,
        11 => 1.2,
        12 => 0.6,
        13 => 0.9,
        14..=16 => 1.3,
        17 => 1.0,
        18..=19 => 0.7,
        20..=21 => 0.4,
        _ => 0.2,
    }
}

/// One intake message: subject and body.
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
}

/// A resident's report or service request from somewhere in the city.
pub fn resident_message(dice: &mut Dice, n: u64, building: &str, now: DateTime<Utc>) -> Message {
    let message_id = format!("msg-{n:06}");
    let resident_number = dice.below(50_000);
    let resident = format!("resident-{resident_number}");
    let (kind, body) = if dice.chance(78) {
        let (title, category) = *dice.pick(RESIDENT_REPORTS);
        let (system, channel) = *dice.pick(&[
            ("miniprogram", "mini_program"),
            ("miniprogram", "mini_program"),
            ("hotline-12345", "hotline12345"),
            ("wechat-bot", "wechat_group"),
            ("kiosk-07", "kiosk"),
        ]);
        (
            "resident_report",
            json!({
                "kind": "resident_report", "schema_version": 1,
                "source": {"system": system, "message_id": message_id},
                "reported_at": now, "building": building, "channel": channel,
                // A made-up mobile number (sealed at intake; the dashboard shows it masked).
                "resident": {"id": resident, "phone": format!("138{:08}", resident_number * 1999)},
                "title": title, "description": format!("{title}。请尽快处理。"), "category": category,
                "media": [{"kind": "photo", "url": format!("oss://wangge-demo/{message_id}.jpg")}]
            }),
        )
    } else {
        let (title, service) = *dice.pick(SERVICE_REQUESTS);
        (
            "service_request",
            json!({
                "kind": "service_request", "schema_version": 1,
                "source": {"system": "kiosk-07", "message_id": message_id},
                "reported_at": now, "building": building, "channel": "kiosk",
                "resident": {"id": resident, "name": "王阿姨"},
                "service": service, "title": title, "description": title
            }),
        )
    };
    finish(dice, kind, body)
}

/// A grid worker's patrol finding in one of their cells.
pub fn patrol_message(
    dice: &mut Dice,
    n: u64,
    building: &str,
    worker_id: &str,
    now: DateTime<Utc>,
) -> Message {
    let (title, category) = *dice.pick(PATROL_FINDINGS);
    let patrol_kind = *dice.pick(&["fire_safety", "flood_safety", "daily", "daily"]);
    let body = json!({
        "kind": "patrol_finding", "schema_version": 1,
        "source": {"system": "grid-app", "message_id": format!("patrol-{n:06}")},
        "reported_at": now, "building": building, "worker_id": worker_id,
        "patrol_kind": patrol_kind, "title": title, "description": format!("巡查发现:{title}"),
        "category": category, "fixed_on_spot": dice.chance(45)
    });
    finish(dice, "patrol_finding", body)
}

/// What residents say when asked about a closed case: the comment, and whether the problem
/// was solved.
const EVALUATION_COMMENTS: &[(&str, bool)] = &[
    ("处理很及时,谢谢网格员", true),
    ("问题解决了,就是等得有点久", true),
    ("师傅态度很好", true),
    ("已经修好了,很满意", true),
    ("解决得挺快,希望以后多巡查", true),
    ("处理了,但是来回打了好几次电话", true),
    ("过两天又坏了,没有彻底解决", false),
    ("说是处理了,现场没有变化", false),
];

/// A resident's evaluation of a case they reported, as the system they answered in sends it:
/// most through the 12345 hotline calling them back (回访) with its three levels and the
/// question whether the problem was solved; the rest as stars in the mini-program, where the
/// question is optional.
pub fn evaluation_message(
    dice: &mut Dice,
    case_id: CaseId,
    resident: &str,
    at: DateTime<Utc>,
) -> Message {
    let (comment, solved) = *dice.pick(EVALUATION_COMMENTS);
    let mut body = if dice.chance(55) {
        let level = match (solved, dice.below(10)) {
            (true, 0..=6) => "satisfied",
            (true, _) => "basically_satisfied",
            (false, 0..=2) => "basically_satisfied",
            (false, _) => "dissatisfied",
        };
        json!({
            "kind": "evaluation", "schema_version": 1,
            "source": {"system": "hotline-12345", "message_id": format!("hf-{case_id}")},
            "evaluated_at": at, "case_id": case_id, "resident": {"id": resident},
            "channel": "hotline12345", "satisfaction": level, "resolved": solved
        })
    } else {
        let stars = if solved {
            *dice.pick(&[5, 5, 5, 4, 4, 3])
        } else {
            *dice.pick(&[3, 2, 1, 1])
        };
        let mut body = json!({
            "kind": "evaluation", "schema_version": 1,
            "source": {"system": "miniprogram", "message_id": format!("mp-eval-{case_id}")},
            "evaluated_at": at, "case_id": case_id, "resident": {"id": resident},
            "channel": "mini_program", "satisfaction": stars
        });
        if dice.chance(60) {
            body["resolved"] = json!(solved);
        }
        body
    };
    if dice.chance(40) {
        body["comment"] = json!(comment);
    }
    Message {
        subject: "wangge.intake.evaluation".to_owned(),
        payload: Bytes::from(body.to_string()),
    }
}

/// About one message in fifteen is broken, each in one of the ways senders break them.
fn finish(dice: &mut Dice, kind: &str, mut body: serde_json::Value) -> Message {
    let subject = format!("wangge.intake.{kind}");
    if dice.chance(7) {
        match dice.below(7) {
            0 => {
                return Message {
                    subject,
                    payload: Bytes::from_static(b"{\"kind\": \"resident_report\", "),
                }
            }
            1 => body["schema_version"] = json!(7),
            2 => {
                body.as_object_mut().map(|o| o.remove("building"));
            }
            3 => body["building"] = json!("999999999999999"),
            4 => body["title"] = json!("很长的标题".repeat(30)),
            5 => {
                if kind == "service_request" {
                    body["service"] = json!("service.unknown");
                } else {
                    body["category"] = json!("noise.unknown");
                }
            }
            _ => body["kind"] = json!("complaint"),
        }
    }
    Message {
        subject,
        payload: Bytes::from(body.to_string()),
    }
}
