//! What the commands that send one message to the engine share (`wangge publish`, `wangge
//! worker act`, `wangge grid publish`): reading the message, and asking by request-reply.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::de::DeserializeOwned;

/// The bytes of `file`, or of stdin when there is none or it is `-`.
pub fn read_message(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read stdin")?;
            Ok(body)
        }
    }
}

/// Sends `body` on `subject` and decodes the engine's answer, waiting at most `timeout`
/// seconds.
pub async fn ask<Reply: DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    body: Vec<u8>,
    timeout: u64,
) -> anyhow::Result<Reply> {
    let response = tokio::time::timeout(
        Duration::from_secs(timeout),
        client.request(subject.to_owned(), body.into()),
    )
    .await
    .with_context(|| format!("no answer on {subject} within {timeout} s"))?
    .with_context(|| format!("request on {subject} failed (is `wangge serve` running?)"))?;
    serde_json::from_slice(&response.payload).with_context(|| {
        format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&response.payload)
        )
    })
}
