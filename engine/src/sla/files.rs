//! The operator's SLA files, read at start-up: `--sla-dir DIR` holds `calendars.json` and
//! `policies.json`; either may be absent, and the bundled one is used in its place. A file
//! that is there but wrong stops the start: the error names the file, the JSON path in it
//! and the reason, as `wangge sla publish` would be told.

use std::path::{Path, PathBuf};

use wangge_domain::sla::{
    read_calendar_file, read_policy_file, CalendarSet, PolicySet, SlaReference, SlaRejection,
};

/// The calendars file's name in an SLA directory.
pub const CALENDARS_FILE: &str = "calendars.json";
/// The policies file's name in an SLA directory.
pub const POLICIES_FILE: &str = "policies.json";

/// An SLA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SlaFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid{}: {} ({})", path.display(), at(&.rejection.field), .rejection.reason, .rejection.code)]
    Invalid {
        path: PathBuf,
        rejection: SlaRejection,
    },
}

fn at(field: &Option<String>) -> String {
    field
        .as_deref()
        .map(|field| format!(" at `{field}`"))
        .unwrap_or_default()
}

/// Where the SLA data of an instance comes from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaSource {
    Bundled,
    File(PathBuf),
}

impl std::fmt::Display for SlaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bundled => f.write_str("bundled"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The SLA data of `dir`, the bundled data for what it lacks (or for everything when there
/// is no directory), and where each part came from: `(reference, calendars, policies)`.
pub fn load_sla_dir(
    dir: Option<&Path>,
) -> Result<(SlaReference, SlaSource, SlaSource), SlaFileError> {
    let calendars_path = dir.map(|dir| dir.join(CALENDARS_FILE));
    let policies_path = dir.map(|dir| dir.join(POLICIES_FILE));
    let (calendars, calendars_from) = match read_if_there(calendars_path.as_deref())? {
        Some((path, text)) => (
            read_calendar_file(&text).map_err(|rejection| SlaFileError::Invalid {
                path: path.clone(),
                rejection,
            })?,
            SlaSource::File(path),
        ),
        None => (CalendarSet::bundled(), SlaSource::Bundled),
    };
    let (policies, policies_from) = match read_if_there(policies_path.as_deref())? {
        Some((path, text)) => (
            read_policy_file(&text).map_err(|rejection| SlaFileError::Invalid {
                path: path.clone(),
                rejection,
            })?,
            SlaSource::File(path),
        ),
        None => (PolicySet::bundled(), SlaSource::Bundled),
    };
    Ok((
        SlaReference::new(policies, calendars),
        calendars_from,
        policies_from,
    ))
}

fn read_if_there(path: Option<&Path>) -> Result<Option<(PathBuf, String)>, SlaFileError> {
    let Some(path) = path else { return Ok(None) };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some((path.to_path_buf(), text))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SlaFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
