//! Configuration that only grows safer, on a real 3-node cluster: a `wangge` command run
//! without `--replicas` leaves an R3 stream at R3; one that asks for fewer replicas or a
//! lower limit is refused and names the deliberate command; `wangge streams set … --confirm`
//! is that command; and the engine takes the cluster as a list of URLs.

use std::process::{Command, Output, Stdio};

use wangge_testkit::NatsCluster;

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");
/// A case nobody reported: `wangge case` opens the event log and finds nothing.
const NO_CASE: &str = "01936d6e-0000-7000-8000-000000000001";

fn wangge(args: &[&str]) -> Output {
    let mut command = Command::new(WANGGE);
    for var in ["WANGGE_NATS_URL", "WANGGE_STREAM_REPLICAS", "WANGGE_LOG"] {
        command.env_remove(var);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wangge")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn max_msgs(cluster: &NatsCluster, stream: &str) -> i64 {
    let info = cluster.stream_info(stream).await.expect("stream info");
    info["config"]["max_msgs"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_limits_are_lowered_only_deliberately() {
    let cluster = NatsCluster::start(3).await;
    let urls = cluster.url_list();

    // Created at R3 through the list of all three nodes.
    let created = wangge(&[
        "case",
        "--nats-url",
        &urls,
        "--replicas",
        "3",
        "show",
        NO_CASE,
    ]);
    assert_eq!(
        cluster.stream_replicas("WANGGE_EVENTS").await,
        Some(3),
        "{}",
        text(&created.stderr)
    );

    // Any command without --replicas, through any one node, leaves it at R3.
    for node in 0..3 {
        let run = wangge(&["case", "--nats-url", &cluster.url(node), "show", NO_CASE]);
        assert!(
            !text(&run.stderr).contains("refusing"),
            "{}",
            text(&run.stderr)
        );
        assert_eq!(cluster.stream_replicas("WANGGE_EVENTS").await, Some(3));
    }

    // Asking for fewer is refused, with the setting and the deliberate command named.
    let lower = wangge(&[
        "case",
        "--nats-url",
        &urls,
        "--replicas",
        "1",
        "show",
        NO_CASE,
    ]);
    assert!(!lower.status.success());
    let refusal = text(&lower.stderr);
    assert!(
        refusal.contains("refusing to weaken stream WANGGE_EVENTS: num_replicas from 3 to 1")
            && refusal.contains("wangge streams set WANGGE_EVENTS")
            && refusal.contains("--confirm"),
        "{refusal}"
    );
    assert_eq!(cluster.stream_replicas("WANGGE_EVENTS").await, Some(3));

    // The deliberate command: without --confirm it shows the change and changes nothing.
    let asked = wangge(&[
        "streams",
        "set",
        "WANGGE_EVENTS",
        "--nats-url",
        &urls,
        "--replicas",
        "1",
    ]);
    assert_eq!(asked.status.code(), Some(2), "{}", text(&asked.stderr));
    let plan = text(&asked.stdout);
    assert!(
        plan.contains("num_replicas: 3 -> 1  (weaker)") && plan.contains("--confirm"),
        "{plan}"
    );
    assert_eq!(cluster.stream_replicas("WANGGE_EVENTS").await, Some(3));

    // A limit is lowered only the same way: a message limit on the log, asked and confirmed.
    let limit = wangge(&[
        "streams",
        "set",
        "WANGGE_EVENTS",
        "--nats-url",
        &urls,
        "--max-msgs",
        "1000000",
    ]);
    assert_eq!(limit.status.code(), Some(2));
    assert_eq!(max_msgs(&cluster, "WANGGE_EVENTS").await, -1);
    let confirmed = wangge(&[
        "streams",
        "set",
        "WANGGE_EVENTS",
        "--nats-url",
        &urls,
        "--max-msgs",
        "1000000",
        "--confirm",
    ]);
    assert!(confirmed.status.success(), "{}", text(&confirmed.stderr));
    assert_eq!(max_msgs(&cluster, "WANGGE_EVENTS").await, 1_000_000);
    // An engine's command puts its own (unlimited) setting back: that only strengthens.
    let again = wangge(&["case", "--nats-url", &urls, "show", NO_CASE]);
    assert!(
        !text(&again.stderr).contains("refusing"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(max_msgs(&cluster, "WANGGE_EVENTS").await, -1);

    // Replicas lowered deliberately, confirmed.
    let lowered = wangge(&[
        "streams",
        "set",
        "WANGGE_EVENTS",
        "--nats-url",
        &urls,
        "--replicas",
        "1",
        "--confirm",
    ]);
    assert!(lowered.status.success(), "{}", text(&lowered.stderr));
    assert_eq!(cluster.stream_replicas("WANGGE_EVENTS").await, Some(1));

    // `streams show` lists it with its replicas and limits.
    let shown = wangge(&["streams", "show", "--nats-url", &urls]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let listing = text(&shown.stdout);
    assert!(
        listing.contains("WANGGE_EVENTS") && listing.contains("replicas 1 (leader n"),
        "{listing}"
    );
}
