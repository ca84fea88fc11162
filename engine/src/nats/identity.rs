//! Who sent a message, as NATS proved it — never as the message says.
//!
//! # How NATS proves a sender
//!
//! The shipped server configuration (`deploy/nats/accounts.conf`) puts the engine alone in
//! the account that holds the streams (`WANGGE`), and every other party in an account of its
//! own kind: grid workers and supervisors in `WORKERS`, intake systems (hotline, mini-program
//! back end, kiosks, sensor platforms) in `INTAKE`, grid and SLA administrators in
//! `GRID_ADMINS`. Those accounts reach the engine only through service imports of its
//! request subjects, each declared with `share: true`. For a shared import the server adds
//! the header `Nats-Request-Info` to every request: JSON naming the account and the user the
//! connection *authenticated* as, written by the server and overwriting any header of that
//! name the client sent. That is the proof the engine reads ([`ProvenSender::from_headers`]).
//!
//! A message without the header came from inside the engine's own account (or from a server
//! without the shipped accounts): under [`IdentityPolicy::Proven`] it is refused, so a
//! misconfigured server fails closed.
//!
//! # Who may do what ([`Party`])
//!
//! | account | NATS user | may |
//! |---|---|---|
//! | workers | the worker's grid id | act on cases as that worker (or as supervisor of their cells); report patrol findings as that worker |
//! | intake | the system's name | publish intake with `source.system` = that name; verify or evaluate a case *it* reported, for the resident it named |
//! | grid admins | the admin's id | change the grid and the SLA reference data, recorded as that actor |
//!
//! [`IdentityPolicy::Claimed`] keeps the old behaviour — the body names the actor — for the
//! embedded demo and for development servers without accounts; `wangge serve` runs it only
//! when told to, and says so loudly.

use serde::Deserialize;

/// The header a NATS server adds to requests arriving through a shared service import.
pub const REQUEST_INFO_HEADER: &str = "Nats-Request-Info";

/// The account names of the shipped configuration.
pub const DEFAULT_WORKERS_ACCOUNT: &str = "WORKERS";
pub const DEFAULT_INTAKE_ACCOUNT: &str = "INTAKE";
pub const DEFAULT_GRID_ADMINS_ACCOUNT: &str = "GRID_ADMINS";

/// The sender of one request, as the NATS server authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenSender {
    /// The account the connection belongs to.
    pub account: String,
    /// The user it authenticated as: the user name of a user/password login, the name tag of
    /// a user JWT when it has one, otherwise the user's public nkey.
    pub user: String,
}

/// The fields of `Nats-Request-Info` the engine uses (the server sends more).
#[derive(Debug, Deserialize)]
struct RequestInfo {
    acc: Option<String>,
    user: Option<String>,
    /// A user JWT's `name`, present for operator-mode (JWT) users.
    name_tag: Option<String>,
}

impl ProvenSender {
    /// Reads the server's `Nats-Request-Info` header from `headers`. `None` when there is
    /// none, or when it names no account or user (then nothing is proven).
    pub fn from_headers(headers: &[(String, String)]) -> Option<Self> {
        let value = headers
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case(REQUEST_INFO_HEADER))
            .map(|(_, value)| value)?;
        let info: RequestInfo = serde_json::from_str(value).ok()?;
        let account = info.acc.filter(|acc| !acc.is_empty())?;
        let user = info
            .name_tag
            .filter(|name| !name.is_empty())
            .or(info.user)
            .filter(|user| !user.is_empty())?;
        Some(Self { account, user })
    }
}

/// Which NATS accounts hold which kind of party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyAccounts {
    pub workers: String,
    pub intake: String,
    pub grid_admins: String,
}

impl Default for PartyAccounts {
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS_ACCOUNT.to_owned(),
            intake: DEFAULT_INTAKE_ACCOUNT.to_owned(),
            grid_admins: DEFAULT_GRID_ADMINS_ACCOUNT.to_owned(),
        }
    }
}

/// Where the engine takes a sender's identity from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdentityPolicy {
    /// From the body of the message: anyone may claim to be anyone. For the embedded demo
    /// and development servers only.
    #[default]
    Claimed,
    /// From `Nats-Request-Info`, which only the server writes; a message without it is
    /// refused.
    Proven(PartyAccounts),
}

/// A proven sender, by the kind of party its account holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// A grid worker or supervisor, by grid id.
    Worker(String),
    /// An intake system, by name.
    IntakeSystem(String),
    /// A grid (and SLA) administrator, by id.
    GridAdmin(String),
}

/// Why a message's sender is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRefusal {
    /// `unauthenticated`, `forbidden` or `identity_mismatch`.
    pub code: &'static str,
    /// The field of the message at fault, if one is.
    pub field: Option<&'static str>,
    pub reason: String,
}

impl IdentityRefusal {
    pub fn mismatch(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code: "identity_mismatch",
            field: Some(field),
            reason: reason.into(),
        }
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self {
            code: "forbidden",
            field: None,
            reason: reason.into(),
        }
    }
}

impl From<IdentityRefusal> for wangge_domain::grid::GridRejection {
    fn from(refusal: IdentityRefusal) -> Self {
        Self {
            code: refusal.code,
            field: refusal.field.map(str::to_owned),
            reason: refusal.reason,
        }
    }
}

impl From<IdentityRefusal> for wangge_domain::sla::SlaRejection {
    fn from(refusal: IdentityRefusal) -> Self {
        Self {
            code: refusal.code,
            field: refusal.field.map(str::to_owned),
            reason: refusal.reason,
        }
    }
}

/// What the engine knows of a message's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// Identity is taken from the body ([`IdentityPolicy::Claimed`]).
    Claimed,
    /// NATS proved who sent it.
    Proven(Party),
}

impl IdentityPolicy {
    /// The sender of a message with `headers`, or why it is refused before it is read.
    pub fn sender(&self, headers: &[(String, String)]) -> Result<Sender, IdentityRefusal> {
        let accounts = match self {
            Self::Claimed => return Ok(Sender::Claimed),
            Self::Proven(accounts) => accounts,
        };
        let Some(proven) = ProvenSender::from_headers(headers) else {
            return Err(IdentityRefusal {
                code: "unauthenticated",
                field: None,
                reason: format!(
                    "the message carries no `{REQUEST_INFO_HEADER}`: connect as a user of the workers, intake or grid-admin account of the server's configuration (deploy/nats/accounts.conf), whose imports of the engine's subjects are shared"
                ),
            });
        };
        let party = if proven.account == accounts.workers {
            Party::Worker(proven.user)
        } else if proven.account == accounts.intake {
            Party::IntakeSystem(proven.user)
        } else if proven.account == accounts.grid_admins {
            Party::GridAdmin(proven.user)
        } else {
            return Err(IdentityRefusal::forbidden(format!(
                "account `{}` may not send to the engine",
                proven.account
            )));
        };
        Ok(Sender::Proven(party))
    }
}

/// Whether `sender` may change the grid or the SLA reference data as `actor_id` (the
/// command's `actor.id`): only a grid administrator, only as themselves.
pub fn may_change_reference_data(sender: &Sender, actor_id: &str) -> Result<(), IdentityRefusal> {
    match sender {
        Sender::Claimed => Ok(()),
        Sender::Proven(Party::GridAdmin(user)) if user == actor_id => Ok(()),
        Sender::Proven(Party::GridAdmin(user)) => Err(IdentityRefusal::mismatch(
            "actor.id",
            format!(
                "this connection is authenticated as `{user}`; its commands must name `{user}` as `actor.id`, not `{actor_id}`"
            ),
        )),
        Sender::Proven(Party::Worker(user)) | Sender::Proven(Party::IntakeSystem(user)) => {
            Err(IdentityRefusal::forbidden(format!(
                "`{user}` is not a grid administrator: only grid administrators change the grid and the SLA reference data"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: &str) -> Vec<(String, String)> {
        vec![(REQUEST_INFO_HEADER.to_owned(), json.to_owned())]
    }

    fn proven() -> IdentityPolicy {
        IdentityPolicy::Proven(PartyAccounts::default())
    }

    #[test]
    fn the_server_header_names_account_and_user() {
        let headers = info(r#"{"acc":"WORKERS","user":"w-1","rtt":1000,"kind":"Client"}"#);
        assert_eq!(
            proven().sender(&headers),
            Ok(Sender::Proven(Party::Worker("w-1".into())))
        );
    }

    #[test]
    fn a_jwt_users_name_tag_is_preferred_to_its_public_key() {
        let headers = info(r#"{"acc":"INTAKE","user":"UABC","name_tag":"hotline-12345"}"#);
        assert_eq!(
            proven().sender(&headers),
            Ok(Sender::Proven(Party::IntakeSystem("hotline-12345".into())))
        );
    }

    #[test]
    fn a_message_without_proof_is_refused_under_the_proven_policy() {
        let refusal = proven().sender(&[]).unwrap_err();
        assert_eq!(refusal.code, "unauthenticated");
        let refusal = proven().sender(&info("not json")).unwrap_err();
        assert_eq!(refusal.code, "unauthenticated");
        let refusal = proven().sender(&info(r#"{"acc":"WORKERS"}"#)).unwrap_err();
        assert_eq!(refusal.code, "unauthenticated");
    }

    #[test]
    fn an_account_of_no_known_kind_is_forbidden() {
        let refusal = proven()
            .sender(&info(r#"{"acc":"$G","user":"anyone"}"#))
            .unwrap_err();
        assert_eq!(refusal.code, "forbidden");
    }

    #[test]
    fn the_claimed_policy_ignores_the_header() {
        let headers = info(r#"{"acc":"WORKERS","user":"w-1"}"#);
        assert_eq!(
            IdentityPolicy::Claimed.sender(&headers),
            Ok(Sender::Claimed)
        );
    }
}
