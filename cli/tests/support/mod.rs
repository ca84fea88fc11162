//! What the tests that run `wangge serve` as a process share.

#![allow(dead_code)] // each test binary uses its own part

use std::process::Command;

pub const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");

/// `wangge`, with none of the test runner's `WANGGE_*` settings but the pinned server's path:
/// every flag the test means is on its command line.
pub fn wangge_command() -> Command {
    let mut command = Command::new(WANGGE);
    for (name, _) in std::env::vars() {
        if name.starts_with("WANGGE_") && name != "WANGGE_NATS_SERVER" {
            command.env_remove(name);
        }
    }
    command
}

/// A log as written, without the terminal colours the logger may add.
pub fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence: up to and including its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
