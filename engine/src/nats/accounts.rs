//! The users of the shipped NATS accounts (`deploy/nats/accounts.conf`): which account each
//! kind of party lives in, which file of `users/` lists it, and what it may publish and
//! subscribe to. `wangge nats users` writes the files from this; the benchmarks start servers
//! with it.

use std::fmt::Write as _;

use wangge_schemas::grid::GRID_COMMAND_SUBJECT;
use wangge_schemas::sla::SLA_COMMAND_SUBJECT;

use crate::intake::INTAKE_SUBJECT_PREFIX;
use crate::tasks::{WORKER_COMMAND_SUBJECT, WORKER_INBOX_SUBJECT};

/// What a user may publish and subscribe to.
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// The kinds of user, each written to its own file, in its own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserKind {
    Engine,
    Worker,
    Intake,
    GridAdmin,
}

impl UserKind {
    pub fn account(self) -> &'static str {
        match self {
            UserKind::Engine => "WANGGE",
            UserKind::Worker => "WORKERS",
            UserKind::Intake => "INTAKE",
            UserKind::GridAdmin => "GRID_ADMINS",
        }
    }

    pub fn file(self) -> &'static str {
        match self {
            UserKind::Engine => "engine.conf",
            UserKind::Worker => "workers.conf",
            UserKind::Intake => "intake.conf",
            UserKind::GridAdmin => "grid-admins.conf",
        }
    }

    /// `None`: unrestricted within its account (the engine alone).
    pub fn permissions(self, user: &str) -> Option<Permissions> {
        let own_replies = vec![format!("_INBOX_{user}.>")];
        let publish = match self {
            UserKind::Engine => return None,
            UserKind::Worker => vec![
                WORKER_COMMAND_SUBJECT.to_owned(),
                WORKER_INBOX_SUBJECT.to_owned(),
                format!("{INTAKE_SUBJECT_PREFIX}.patrol_finding"),
            ],
            UserKind::Intake => vec![
                format!("{INTAKE_SUBJECT_PREFIX}.>"),
                // Residents' verifications, passed on by the system that reported the case.
                WORKER_COMMAND_SUBJECT.to_owned(),
            ],
            UserKind::GridAdmin => vec![
                GRID_COMMAND_SUBJECT.to_owned(),
                SLA_COMMAND_SUBJECT.to_owned(),
            ],
        };
        Some(Permissions {
            publish,
            subscribe: own_replies,
        })
    }
}

/// Appends one user entry (`{ user, password, permissions }`) to a user file's list.
/// `password` is a bcrypt hash (`$2a$…`) in production files; the server accepts plain text
/// too, which the benchmarks use.
pub fn write_user(out: &mut String, name: &str, hash: &str, permissions: Option<Permissions>) {
    write!(out, "  {{ user: \"{name}\", password: \"{hash}\"").expect("string");
    if let Some(permissions) = permissions {
        let list = |subjects: &[String]| {
            subjects
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            out,
            ", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }}",
            list(&permissions.publish),
            list(&permissions.subscribe)
        )
        .expect("string");
    }
    out.push_str(" }\n");
}
