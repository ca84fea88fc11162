//! Why an SLA data file (calendars or policies) was refused.

use serde::de::DeserializeOwned;

/// A calendar or policy file that cannot be used. Both variants mean "nothing was loaded":
/// fix the file and load it again.
#[derive(Debug, thiserror::Error)]
pub enum SlaDataError {
    /// The text is not JSON of the expected shape; `path` names the offending field.
    #[error("{what} is not valid at `{path}`: {source}")]
    Parse {
        what: &'static str,
        path: String,
        source: serde_json::Error,
    },
    /// The shape is right but the content breaks a rule (a dangling id, a duplicate name).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl SlaDataError {
    pub(super) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Parses `json` as a `T`, naming the JSON path of the first problem.
pub(super) fn parse_json<T: DeserializeOwned>(
    json: &str,
    what: &'static str,
) -> Result<T, SlaDataError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        SlaDataError::Parse {
            what,
            path: error.path().to_string(),
            source: error.into_inner(),
        }
    })?;
    deserializer.end().map_err(|source| SlaDataError::Parse {
        what,
        path: ".".to_owned(),
        source,
    })?;
    Ok(value)
}
