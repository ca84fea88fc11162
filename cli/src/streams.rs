//! `wangge streams`: the streams as the server has them, and the one way to weaken one on
//! purpose.
//!
//! Every other command opens its streams under the rule of
//! `wangge_engine::nats::stream_rules`: settings only grow safer, and a command given fewer
//! replicas or a lower limit than a stream has is refused. `streams set … --confirm` is where
//! an operator lowers replicas or limits deliberately (moving a cluster to fewer nodes, say);
//! without `--confirm` it only prints what would change. Running `wangge serve` instances
//! hold their streams to at least the settings they started with: after a deliberate
//! weakening they stop loudly, and are started again to take the new settings as theirs.

use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use wangge_engine::nats::guard::OwnedSettings;
use wangge_engine::nats::stream_rules::weakenings;

use crate::NatsArgs;

#[derive(Debug, Args)]
pub struct StreamsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Every stream on the server: replicas and their state, limits, deny flags, contents.
    Show {
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Change a stream's replicas (`--replicas`) or limits deliberately, lowering included.
    /// Without `--confirm`, prints what would change and changes nothing (exit code 2).
    Set {
        #[command(flatten)]
        nats: NatsArgs,
        /// The stream (`WANGGE_EVENTS`, `WANGGE_REJECTED`, `KV_WANGGE_PARTITIONS`, …).
        stream: String,
        /// Keep messages this long: `90d`, `12h`, `30m`, `45s`; `0` forever.
        #[arg(long, value_parser = parse_age)]
        max_age: Option<Duration>,
        /// Most bytes the stream holds; `-1` unlimited.
        #[arg(long, allow_negative_numbers = true)]
        max_bytes: Option<i64>,
        /// Most messages the stream holds; `-1` unlimited.
        #[arg(long, allow_negative_numbers = true)]
        max_msgs: Option<i64>,
        /// Most messages per subject; `-1` unlimited.
        #[arg(long, allow_negative_numbers = true)]
        max_msgs_per_subject: Option<i64>,
        /// Apply the change, weakening included.
        #[arg(long)]
        confirm: bool,
    },
}

pub async fn run(args: StreamsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Show { nats } => show(&nats).await,
        Action::Set {
            nats,
            stream,
            max_age,
            max_bytes,
            max_msgs,
            max_msgs_per_subject,
            confirm,
        } => {
            let change = Change {
                replicas: nats.replicas.map(usize::from),
                max_age,
                max_bytes,
                max_msgs,
                max_msgs_per_subject,
            };
            set(&nats, &stream, &change, confirm).await
        }
    }
}

/// `90d`, `12h`, `30m`, `45s` or a plain number of seconds; `0` for no limit.
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not an age: give e.g. 90d, 12h, 30m, 45s or 0"))?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be d, h, m or s")),
    };
    Ok(Duration::from_secs(amount * unit_seconds))
}

struct Change {
    replicas: Option<usize>,
    max_age: Option<Duration>,
    max_bytes: Option<i64>,
    max_msgs: Option<i64>,
    max_msgs_per_subject: Option<i64>,
}

impl Change {
    fn is_empty(&self) -> bool {
        self.replicas.is_none()
            && self.max_age.is_none()
            && self.max_bytes.is_none()
            && self.max_msgs.is_none()
            && self.max_msgs_per_subject.is_none()
    }

    fn applied_to(&self, config: &stream::Config) -> stream::Config {
        let mut changed = config.clone();
        if let Some(replicas) = self.replicas {
            changed.num_replicas = replicas;
        }
        if let Some(age) = self.max_age {
            changed.max_age = age;
        }
        if let Some(bytes) = self.max_bytes {
            changed.max_bytes = bytes;
        }
        if let Some(messages) = self.max_msgs {
            changed.max_messages = messages;
        }
        if let Some(messages) = self.max_msgs_per_subject {
            changed.max_messages_per_subject = messages;
        }
        changed
    }
}

async fn set(
    nats: &NatsArgs,
    name: &str,
    change: &Change,
    confirm: bool,
) -> anyhow::Result<ExitCode> {
    if change.is_empty() {
        anyhow::bail!(
            "nothing to change: give --replicas, --max-age, --max-bytes, --max-msgs or \
             --max-msgs-per-subject"
        );
    }
    let client = nats.connect().await?;
    let context = jetstream::new(client);
    let mut stream = context
        .get_stream(name)
        .await
        .map_err(|e| anyhow::anyhow!("stream {name}: {e}"))?;
    let current = stream.info().await?.config.clone();
    let wanted = change.applied_to(&current);
    let before = OwnedSettings::of(&current);
    let after = OwnedSettings::of(&wanted);
    if before == after {
        println!("{name}: already so; nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    let weakened = weakenings(&before, &after);
    println!("{name}:");
    for (setting, from, to) in before.differences_from(&after) {
        let marker = if weakened.iter().any(|w| w.setting == setting) {
            "  (weaker)"
        } else {
            ""
        };
        println!("  {setting}: {from} -> {to}{marker}");
    }
    if !confirm {
        println!("nothing changed: run again with --confirm to apply");
        return Ok(ExitCode::from(2));
    }
    context
        .update_stream(&wanted)
        .await
        .map_err(|e| anyhow::anyhow!("the server refused the change to {name}: {e}"))?;
    println!("{name}: changed");
    if !weakened.is_empty() {
        println!(
            "running `wangge serve` instances hold {name} to the settings they started with: \
             they stop on this change; start them again to take it as theirs"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(nats: &NatsArgs) -> anyhow::Result<ExitCode> {
    let client = nats.connect().await?;
    let context = jetstream::new(client);
    let mut streams: Vec<stream::Info> = context.streams().try_collect().await?;
    streams.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    for info in &streams {
        let config = &info.config;
        let limit = |value: i64| {
            if value <= 0 {
                "unlimited".to_owned()
            } else {
                value.to_string()
            }
        };
        let age = if config.max_age.is_zero() {
            "forever".to_owned()
        } else {
            format!("{}s", config.max_age.as_secs())
        };
        println!("{}", config.name);
        let placement = match &info.cluster {
            Some(cluster) => {
                let mut peers = vec![format!(
                    "leader {}",
                    cluster.leader.as_deref().unwrap_or("none (electing)")
                )];
                for replica in &cluster.replicas {
                    peers.push(format!(
                        "{} {}",
                        replica.name,
                        if replica.current { "current" } else { "behind" }
                    ));
                }
                peers.join(", ")
            }
            None => "one server".to_owned(),
        };
        println!("  replicas {} ({placement})", config.num_replicas.max(1));
        println!(
            "  messages {}, bytes {}, subjects {}",
            info.state.messages, info.state.bytes, info.state.subjects_count
        );
        println!(
            "  keep {age}; max_msgs {}, max_bytes {}, max_msgs_per_subject {}, max_msg_size {}, discard {:?}",
            limit(config.max_messages),
            limit(config.max_bytes),
            limit(config.max_messages_per_subject),
            limit(i64::from(config.max_message_size)),
            config.discard,
        );
        println!(
            "  deny_delete {}, deny_purge {}, allow_rollup {}, duplicate_window {}s",
            config.deny_delete,
            config.deny_purge,
            config.allow_rollup,
            config.duplicate_window.as_secs()
        );
    }
    if streams.is_empty() {
        println!("no streams on this server");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_age;
    use std::time::Duration;

    #[test]
    fn ages_are_read_with_their_units_and_zero_is_forever() {
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("0"), Ok(Duration::ZERO));
        assert!(parse_age("3w").unwrap_err().contains("unit"));
        assert!(parse_age("soon").unwrap_err().contains("not an age"));
    }
}
