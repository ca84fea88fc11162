//! `wangge demo`, the README's first command: a whole simulated day on the embedded
//! default, with no server running, ending with the indicators.

use std::process::Command;

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");

#[test]
fn the_demo_runs_a_day_on_the_embedded_default_and_reports_its_indicators() {
    let output = Command::new(WANGGE)
        .args([
            "demo",
            "--speed",
            "0",
            "--reports",
            "300",
            "--seed",
            "7",
            "--http-listen",
            "127.0.0.1:0",
        ])
        // No server of any kind: the embedded default must be enough.
        .env_remove("WANGGE_DEMO_NATS_URL")
        .output()
        .expect("run wangge demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for section in [
        "embedded in-memory log",
        "dashboard: http://127.0.0.1:",
        // The dashboard needs a token: the demo signs login links with a key of its own.
        "login (auditor, the whole city, 12 h): http://127.0.0.1:",
        "/login#token=eyJ",
        "login (翠苑街道 district, 12 h)",
        "intake",
        "SLA timers",
        "indicators of the day, by district",
        "红黑榜",
        "open at the end of the day",
        "patrol coverage",
        "event log",
    ] {
        assert!(stdout.contains(section), "no `{section}` in:\n{stdout}");
    }
    // The day has late steps, and the timers act on them.
    assert!(stdout.contains("breaches"), "{stdout}");
    assert!(
        stdout.contains("escalated a tier") || stdout.contains("reassigned in the cell"),
        "{stdout}"
    );
    // Broken messages are refused and kept.
    assert!(
        stdout.contains("refused messages kept for operators"),
        "{stdout}"
    );
    let city = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("city"))
        .expect("a city row");
    let registered: u64 = city.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(registered > 100, "{city}");
    // Residents evaluate through intake, so the day has a resolution and a satisfaction rate.
    let evaluations: u64 = stdout
        .lines()
        .skip_while(|l| !l.starts_with("residents' evaluations"))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of recorded evaluations in:\n{stdout}"));
    assert!(evaluations > 0, "{stdout}");
    // city, 立案, 应结案, 结案, 结案率, 按期结案率, 返工率, 响应率, then 解决率 and 满意率.
    let rates: Vec<&str> = city.split_whitespace().skip(8).take(2).collect();
    assert!(
        rates.iter().all(|rate| rate.ends_with('%')),
        "解决率 and 满意率 of the city: {city}"
    );
    // Every commit of the day is sealed with the run's own key, and every trail verifies.
    let log_line = stdout
        .lines()
        .find(|l| l.starts_with("event log: "))
        .expect("the event log line");
    let commits = log_line.split_whitespace().nth(2).unwrap();
    assert!(
        log_line.contains(&format!("{commits} commits ({commits} sealed)")),
        "{log_line}"
    );
    assert!(
        stdout.contains("against the run's seal key, 0 problems"),
        "{stdout}"
    );
}

/// The seed fixes what arrives and how each person reacts to each event; the engine's own
/// concurrent actors may still order a few writes differently, so only the intake is
/// compared exactly.
#[test]
fn the_same_seed_sends_the_same_day_of_messages() {
    let run = || {
        let output = Command::new(WANGGE)
            .args([
                "demo",
                "--speed",
                "0",
                "--reports",
                "120",
                "--seed",
                "11",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .output()
            .expect("run wangge demo");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| {
                l.contains("new cases") || l.contains("refused:") && !l.contains("moved on")
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
