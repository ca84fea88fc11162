//! Who is asking: bearer tokens (JWT) and API keys on every route but the OpenAPI document
//! and the dashboard's static files, turned into a [`Caller`] whose scope the grid decides.
//!
//! - A **JWT** (`Authorization: Bearer eyJ…`) is checked by [`TokenVerifier`]: signature
//!   with the one algorithm the configured key is for (EdDSA, ES256, RS256 from a JWKS, or
//!   HS256 for development; never `none`, never another algorithm than the key's), `exp`
//!   (required), `nbf`, `iss` and `aud`. The token names a person (`sub`, a grid id) and
//!   optionally a `role`; without one, the grid's role for that id is taken.
//! - An **API key** (`Authorization: Bearer wk_…`) is looked up by its SHA-256 in an
//!   [`ApiKeyStore`](super::api_keys::ApiKeyStore) (PostgreSQL or a keys file); a revoked
//!   key is refused at once.
//!
//! The scope — which cells a supervisor or a district sees, whose cases a worker sees — is
//! always computed from the live grid ([`wangge_engine::domain::grid::access`]), never read
//! from the token. Handlers take a [`Caller`] and ask it: [`Caller::narrow`] limits or
//! refuses a query's cells, [`Caller::sees_case`] guards one case.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::debug;
use wangge_engine::domain::grid::access::{self, AccessRole, AccessScope};
use wangge_engine::grid::GridDirectory;

use super::api_keys::{ApiKeyStore, API_KEY_PREFIX};
use super::error::ApiError;
use super::state::ApiState;
use crate::query::CaseView;

/// The issuer `wangge auth token` signs and `wangge serve` expects unless told otherwise.
pub const DEFAULT_ISSUER: &str = "wangge";
/// The audience `wangge auth token` signs and `wangge serve` expects unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "wangge-api";

/// The authenticated caller of a request, with the scope the grid gives them.
///
/// Any handler can take it as an extractor (`caller: Caller`): the authentication layer
/// in front of every protected route has put it in the request already, so a handler never
/// sees an anonymous request. Use [`Caller::narrow`] before a list query,
/// [`Caller::sees_case`] before answering about one case, and [`Caller::grid_id`] to
/// record who did something (a reveal of personal data, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The person (a grid id: a worker, a supervisor, a supervision leader) or, for an API
    /// key, `apikey:<name>`.
    pub grid_id: String,
    pub role: AccessRole,
    pub scope: AccessScope,
    pub credential: Credential,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token,
    ApiKey {
        name: String,
    },
    /// `--auth-disabled-for-development`: nobody proved anything.
    Development,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized {
                reason: "no credentials were checked for this route".to_owned(),
            })
    }
}

/// The cells a query names, as mutable fields, so [`Caller::narrow`] can check and limit
/// them. Fields a query does not have are `None`.
#[derive(Debug, Default)]
pub struct QueryCells<'q> {
    pub district: Option<&'q mut Option<String>>,
    pub community: Option<&'q mut Option<String>>,
    /// The building a case was reported in.
    pub building: Option<&'q mut Option<String>>,
    /// A holding cell (any tier).
    pub cell: Option<&'q mut Option<String>>,
    /// The worker holding a case.
    pub assignee: Option<&'q mut Option<String>>,
}

impl<'q> QueryCells<'q> {
    /// A query that names cells by district and community only (the board, the reports).
    pub fn district_and_community(
        district: &'q mut Option<String>,
        community: &'q mut Option<String>,
    ) -> Self {
        Self {
            district: Some(district),
            community: Some(community),
            ..Self::default()
        }
    }
}

/// What [`Caller::narrow`] did to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narrowed {
    /// The query now asks only for what the caller may see.
    Exactly,
    /// The query could not express the caller's cell (a building supervisor on a report
    /// kept per community): it asks for the enclosing cell, and the handler must drop the
    /// rows outside the scope ([`Caller::sees_cell`]).
    FilterRows,
}

impl Caller {
    /// The caller the development mode pretends every request comes from.
    pub fn development() -> Self {
        Self {
            grid_id: "development".to_owned(),
            role: AccessRole::Admin,
            scope: AccessScope::Everything,
            credential: Credential::Development,
        }
    }

    /// Refuses a caller whose role does not read reports over cells (workers, metrics
    /// keys), naming the route.
    pub fn require_reports(&self, what: &str) -> Result<(), ApiError> {
        match &self.scope {
            AccessScope::Everything | AccessScope::Cells(_) => Ok(()),
            AccessScope::OwnCases { .. } => Err(ApiError::forbidden(
                None,
                format!("a grid worker reads their own cases and inbox only, not {what}"),
            )),
            AccessScope::MetricsOnly => Err(self.metrics_only()),
        }
    }

    fn metrics_only(&self) -> ApiError {
        ApiError::forbidden(None, "a metrics key reads /metrics only")
    }

    /// Checks the cells a query names against the caller's scope and limits the query to it.
    ///
    /// - A named cell outside the scope (neither inside one of the caller's cells nor
    ///   above it) is refused: 403 naming the parameter and the cell.
    /// - A query without cells, or naming only cells above the caller's, is limited to the
    ///   caller's cell. A scope of several cells needs the query to name one of them.
    /// - A grid worker's case list is limited to the cases they hold.
    pub fn narrow(
        &self,
        grid: &GridDirectory,
        mut cells: QueryCells<'_>,
    ) -> Result<Narrowed, ApiError> {
        let roots = match &self.scope {
            AccessScope::Everything => return Ok(Narrowed::Exactly),
            AccessScope::MetricsOnly => return Err(self.metrics_only()),
            AccessScope::OwnCases { worker } => {
                let Some(assignee) = cells.assignee.as_mut() else {
                    return Err(ApiError::forbidden(
                        None,
                        "a grid worker reads their own cases and inbox only",
                    ));
                };
                if let Some(asked) = assignee.as_deref() {
                    if asked != worker {
                        return Err(ApiError::forbidden(
                            Some("assignee"),
                            format!("a grid worker sees only their own cases, not `{asked}`'s"),
                        ));
                    }
                }
                **assignee = Some(worker.clone());
                return Ok(Narrowed::Exactly);
            }
            AccessScope::Cells(roots) => roots,
        };
        let named: Vec<(&'static str, String)> = [
            ("district", cells.district.as_deref()),
            ("community", cells.community.as_deref()),
            ("building", cells.building.as_deref()),
            ("cell", cells.cell.as_deref()),
        ]
        .into_iter()
        .filter_map(|(field, value)| Some((field, value?.as_ref()?.clone())))
        .collect();
        for (field, code) in &named {
            // An unknown cell is the grid check's 400, not a 403.
            if grid.cell(code).is_none() {
                continue;
            }
            let inside = roots.iter().any(|root| access::is_within(grid, code, root));
            let above = roots.iter().any(|root| access::is_within(grid, root, code));
            if !inside && !above {
                return Err(ApiError::forbidden(
                    Some(field),
                    format!(
                        "cell `{code}` ({}) is outside your scope ({})",
                        cell_name(grid, code),
                        describe_roots(grid, roots)
                    ),
                ));
            }
        }
        // The caller's cells this query can be about: those consistent with every cell it
        // names.
        let candidates: Vec<&String> = roots
            .iter()
            .filter(|root| {
                named.iter().all(|(_, code)| {
                    grid.cell(code).is_none()
                        || access::is_within(grid, code, root)
                        || access::is_within(grid, root, code)
                })
            })
            .collect();
        let root = match candidates.as_slice() {
            [root] => (*root).clone(),
            [] => {
                return Err(ApiError::forbidden(
                    None,
                    format!("the cells asked for are outside your scope ({})", describe_roots(grid, roots)),
                ))
            }
            _ => {
                return Err(ApiError::forbidden(
                    None,
                    format!(
                        "your scope spans several cells ({}): name one of them with `district`, `community` or `building`",
                        describe_roots(grid, roots)
                    ),
                ))
            }
        };
        let Some(root_cell) = grid.cell(&root) else {
            return Err(ApiError::forbidden(
                None,
                format!("your cell `{root}` is no longer in the grid"),
            ));
        };
        // Limit the query to the root: the field of the root's own tier, or (when the query
        // has no such field) the nearest enclosing cell it can name, filtering rows after.
        let mut target = root_cell;
        let mut exact = true;
        loop {
            let field = match target.tier {
                wangge_schemas::Tier::District => cells.district.as_mut(),
                wangge_schemas::Tier::Community => cells.community.as_mut(),
                wangge_schemas::Tier::Building => cells.building.as_mut(),
            };
            if let Some(field) = field {
                **field = Some(target.code.clone());
                break;
            }
            exact = false;
            match grid.parent(&target.code) {
                Some(parent) => target = parent,
                None => break,
            }
        }
        Ok(if exact {
            Narrowed::Exactly
        } else {
            Narrowed::FilterRows
        })
    }

    /// Whether a cell (of any tier) lies in the caller's scope.
    pub fn sees_cell(&self, grid: &GridDirectory, code: &str) -> bool {
        match &self.scope {
            AccessScope::Everything => true,
            AccessScope::Cells(roots) => {
                roots.iter().any(|root| access::is_within(grid, code, root))
            }
            AccessScope::OwnCases { .. } | AccessScope::MetricsOnly => false,
        }
    }

    /// Whether the caller may see this case: by where it was reported for supervisors and
    /// districts, by who holds it now for a grid worker.
    pub fn sees_case(&self, case: &CaseView) -> bool {
        let summary = &case.summary;
        match &self.scope {
            AccessScope::Everything => true,
            AccessScope::Cells(roots) => [
                &summary.location.district,
                &summary.location.community,
                &summary.location.building,
            ]
            .into_iter()
            .any(|code| roots.contains(code)),
            AccessScope::OwnCases { worker } => summary.assignee.as_deref() == Some(worker),
            AccessScope::MetricsOnly => false,
        }
    }

    /// A 403 for a case outside the scope.
    pub fn case_forbidden(&self, case: &CaseView) -> ApiError {
        let location = &case.summary.location;
        ApiError::forbidden(
            Some("case_id"),
            match &self.scope {
                AccessScope::OwnCases { worker } => {
                    format!("case {} is not held by `{worker}`", case.summary.case_id)
                }
                _ => format!(
                    "case {} was reported in cell `{}`, outside your scope",
                    case.summary.case_id, location.building
                ),
            },
        )
    }
}

fn cell_name(grid: &GridDirectory, code: &str) -> String {
    grid.cell(code)
        .map(|cell| cell.name.clone())
        .unwrap_or_else(|| "not in the grid".to_owned())
}

fn describe_roots(grid: &GridDirectory, roots: &BTreeSet<String>) -> String {
    roots
        .iter()
        .map(|code| format!("{code} {}", cell_name(grid, code)))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

/// The claims Wangge reads from a token. Others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The grid id of the person.
    pub sub: String,
    /// `grid_worker`, `supervisor`, `district`, `auditor` or `admin`; absent: the grid's
    /// role for `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AccessRole>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// A key a token may be signed with, and the one algorithm it is for.
#[derive(Clone)]
struct VerifyingKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Why an authentication setting cannot be used (at start-up, naming the file).
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// Checks bearer JWTs against configured keys.
#[derive(Clone)]
pub struct TokenVerifier {
    /// Replaced whole when a JWKS is fetched again ([`TokenVerifier::replace_keys_from_jwks`]).
    keys: Arc<std::sync::RwLock<Arc<Vec<VerifyingKey>>>>,
    /// Woken when a token names a key id the set lacks: a JWKS refresher fetches early (the
    /// provider may have rotated).
    unknown_key: Arc<tokio::sync::Notify>,
    issuer: String,
    audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    leeway: u64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "algorithms",
                &self
                    .current_keys()
                    .iter()
                    .map(|k| k.algorithm)
                    .collect::<Vec<_>>(),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (OID 1.3.101.112).
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// The DER of the id-ecPublicKey OID with the P-256 curve OID.
const EC_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The DER inside a PEM text's first block.
pub fn pem_body(text: &str) -> Option<(String, Vec<u8>)> {
    use base64::Engine as _;
    let begin = text.find("-----BEGIN ")?;
    let rest = &text[begin + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end = rest.find("-----END ")?;
    let body: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label, der))
}

impl TokenVerifier {
    /// A verifier for an Ed25519 (EdDSA) or P-256 (ES256) public key in PEM
    /// (`-----BEGIN PUBLIC KEY-----`, as `wangge auth keygen` or `openssl pkey -pubout`
    /// write it). The algorithm follows from the key, and only that one is accepted.
    pub fn from_public_key_pem(text: &str, what: &str) -> Result<Self, AuthConfigError> {
        let invalid = |reason: &str| AuthConfigError::Invalid {
            what: what.to_owned(),
            reason: reason.to_owned(),
        };
        let (label, der) = pem_body(text).ok_or_else(|| invalid("not a PEM file"))?;
        if label != "PUBLIC KEY" {
            return Err(invalid(&format!(
                "holds a `{label}`; give the public key (`-----BEGIN PUBLIC KEY-----`), never the signing key"
            )));
        }
        let (key, algorithm) = if contains(&der, ED25519_OID) {
            (DecodingKey::from_ed_pem(text.as_bytes()), Algorithm::EdDSA)
        } else if contains(&der, EC_OID) && contains(&der, P256_OID) {
            (DecodingKey::from_ec_pem(text.as_bytes()), Algorithm::ES256)
        } else {
            return Err(invalid(
                "only Ed25519 (EdDSA) and P-256 (ES256) public keys are supported",
            ));
        };
        let key = key.map_err(|error| invalid(&error.to_string()))?;
        Ok(Self::with_keys(vec![VerifyingKey {
            kid: None,
            key,
            algorithm,
        }]))
    }

    /// A verifier for HS256 with a shared secret: for development and tests only (anyone
    /// who can verify can also sign). At least 32 bytes.
    pub fn from_hmac_secret(secret: &[u8], what: &str) -> Result<Self, AuthConfigError> {
        if secret.len() < 32 {
            return Err(AuthConfigError::Invalid {
                what: what.to_owned(),
                reason: format!(
                    "an HS256 secret needs at least 32 bytes, got {}",
                    secret.len()
                ),
            });
        }
        let key = DecodingKey::from_secret(secret).map_err(|error| AuthConfigError::Invalid {
            what: what.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(Self::with_keys(vec![VerifyingKey {
            kid: None,
            key,
            algorithm: Algorithm::HS256,
        }]))
    }

    /// A verifier for the keys of a JWKS document (`{"keys":[…]}`, as an identity provider
    /// publishes it). Each key accepts only its own algorithm: its `alg`, or the one its
    /// type implies (OKP Ed25519 → EdDSA, EC P-256 → ES256, RSA → RS256). Symmetric keys
    /// are refused: a JWKS is public.
    pub fn from_jwks_json(text: &str, what: &str) -> Result<Self, AuthConfigError> {
        Ok(Self::with_keys(Self::jwks_keys(text, what)?))
    }

    /// Replaces the keys with a JWKS document's (a refreshed fetch); the old keys stay when
    /// the document has none usable. Returns how many keys there are now.
    pub fn replace_keys_from_jwks(&self, text: &str, what: &str) -> Result<usize, AuthConfigError> {
        let keys = Self::jwks_keys(text, what)?;
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    /// Notified when a token named a key id this verifier lacks.
    pub fn unknown_key_seen(&self) -> Arc<tokio::sync::Notify> {
        self.unknown_key.clone()
    }

    fn current_keys(&self) -> Arc<Vec<VerifyingKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn jwks_keys(text: &str, what: &str) -> Result<Vec<VerifyingKey>, AuthConfigError> {
        let invalid = |reason: String| AuthConfigError::Invalid {
            what: what.to_owned(),
            reason,
        };
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a JWKS: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let implied = match &jwk.algorithm {
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
                    Algorithm::ES384
                }
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            };
            let algorithm = match jwk.common.key_algorithm {
                Some(stated) => <Algorithm as std::str::FromStr>::from_str(&stated.to_string())
                    .ok()
                    .filter(|a| a.family() == implied.family())
                    .unwrap_or(implied),
                None => implied,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| invalid(format!("key {:?}: {e}", jwk.common.key_id)))?;
            keys.push(VerifyingKey {
                kid: jwk.common.key_id.clone(),
                key,
                algorithm,
            });
        }
        if keys.is_empty() {
            return Err(invalid("the JWKS has no usable public key".to_owned()));
        }
        Ok(keys)
    }

    fn with_keys(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys: Arc::new(std::sync::RwLock::new(Arc::new(keys))),
            unknown_key: Arc::new(tokio::sync::Notify::new()),
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            leeway: 30,
        }
    }

    /// The `iss` a token must carry.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `aud` a token must carry.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The claims of a valid token, or why it is not valid (for the 401's reason).
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| format!("the token is not a JWT this server accepts: {error}"))?;
        let keys = self.current_keys();
        let key = match &header.kid {
            Some(kid) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .or_else(|| {
                    // A single configured key need not know its id.
                    (keys.len() == 1 && keys[0].kid.is_none()).then(|| &keys[0])
                }),
            None => (keys.len() == 1).then(|| &keys[0]),
        }
        .ok_or_else(|| match &header.kid {
            Some(kid) => {
                self.unknown_key.notify_one();
                format!("no key `{kid}` is configured")
            }
            None => "the token names no key (`kid`) and several keys are configured".to_owned(),
        })?;
        // The algorithm is the key's, whatever the header claims: no alg confusion.
        if header.alg != key.algorithm {
            return Err(format!(
                "the token is signed with {:?}; this server accepts {:?} only",
                header.alg, key.algorithm
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.algorithms = vec![key.algorithm];
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|error| describe_jwt_error(&error, &self.issuer, &self.audience))
    }
}

fn describe_jwt_error(error: &jsonwebtoken::errors::Error, issuer: &str, audience: &str) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired (`exp`)".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidIssuer => format!("the token's issuer (`iss`) is not `{issuer}`"),
        ErrorKind::InvalidAudience => format!("the token's audience (`aud`) is not `{audience}`"),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not the key's".to_owned(),
        _ => format!("the token is not valid: {error}"),
    }
}

// ---------------------------------------------------------------------------------------
// The authenticator
// ---------------------------------------------------------------------------------------

/// Everything the server accepts as proof of identity.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Option<TokenVerifier>,
    api_keys: Option<Arc<dyn ApiKeyStore>>,
    development: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens)
            .field("api_keys", &self.api_keys.is_some())
            .field("development", &self.development)
            .finish()
    }
}

impl Authenticator {
    /// Accepts tokens the verifier accepts and, when given, the store's API keys.
    pub fn new(tokens: Option<TokenVerifier>, api_keys: Option<Arc<dyn ApiKeyStore>>) -> Self {
        Self {
            tokens,
            api_keys,
            development: false,
        }
    }

    /// Accepts nothing: what a state has until it is given an authenticator, so a server
    /// wired without authentication refuses instead of serving everyone.
    pub fn refuse_all() -> Self {
        Self::new(None, None)
    }

    /// Lets every request through as [`Caller::development`]. Only for a developer's own
    /// machine (`wangge serve --auth-disabled-for-development`).
    pub fn disabled_for_development() -> Self {
        Self {
            tokens: None,
            api_keys: None,
            development: true,
        }
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The caller an `Authorization` header proves, with their scope in `grid`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        grid: &GridDirectory,
    ) -> Result<Caller, ApiError> {
        if self.development {
            return Ok(Caller::development());
        }
        let unauthorized = |reason: String| ApiError::Unauthorized { reason };
        let Some(authorization) = authorization else {
            return Err(unauthorized(
                "missing `Authorization: Bearer <token>` header".to_owned(),
            ));
        };
        let Some(credential) = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|c| !c.is_empty())
        else {
            return Err(unauthorized(
                "the `Authorization` header is not `Bearer <token>`".to_owned(),
            ));
        };
        if credential.starts_with(API_KEY_PREFIX) {
            return self.api_key_caller(credential, grid).await;
        }
        let Some(tokens) = &self.tokens else {
            return Err(unauthorized(
                "this server accepts no tokens (no key configured)".to_owned(),
            ));
        };
        let claims = tokens.verify(credential).map_err(unauthorized)?;
        let role = match claims.role {
            Some(AccessRole::Metrics) => {
                return Err(unauthorized(
                    "the `metrics` role is for API keys, not tokens".to_owned(),
                ))
            }
            Some(role) => role,
            None => access::role_in_grid(grid, &claims.sub)
                .map_err(|error| ApiError::forbidden(None, error.to_string()))?,
        };
        let scope = access::scope_of(grid, &claims.sub, role)
            .map_err(|error| ApiError::forbidden(None, format!("role {role}: {error}")))?;
        Ok(Caller {
            grid_id: claims.sub,
            role,
            scope,
            credential: Credential::Token,
        })
    }

    async fn api_key_caller(&self, key: &str, grid: &GridDirectory) -> Result<Caller, ApiError> {
        let Some(store) = &self.api_keys else {
            return Err(ApiError::Unauthorized {
                reason: "this server accepts no API keys".to_owned(),
            });
        };
        let record = store
            .find_by_hash(&hash_api_key(key))
            .await
            .map_err(|error| ApiError::Unavailable(format!("api keys: {error}")))?
            .ok_or_else(|| ApiError::Unauthorized {
                reason: "unknown API key".to_owned(),
            })?;
        if let Some(revoked_at) = record.revoked_at {
            return Err(ApiError::Unauthorized {
                reason: format!("the API key `{}` was revoked at {revoked_at}", record.name),
            });
        }
        let scope = match (&record.district, record.role) {
            (Some(district), _) => access::district_scope(grid, district)
                .map_err(|error| ApiError::forbidden(None, error.to_string()))?,
            (None, AccessRole::Metrics) => AccessScope::MetricsOnly,
            (None, _) => AccessScope::Everything,
        };
        Ok(Caller {
            grid_id: format!("apikey:{}", record.name),
            role: record.role,
            scope,
            credential: Credential::ApiKey { name: record.name },
        })
    }
}

/// How an API key is stored: the hex SHA-256 of the whole key. The keys are 256 random
/// bits, so a fast hash is enough (nothing to guess, no dictionary to run).
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The layer in front of every protected route: proves the caller, or answers 401/403.
/// `/metrics` further needs the `admin`, `auditor` or `metrics` role.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let grid = state.grid();
    let caller = match state
        .authenticator()
        .authenticate(authorization.as_deref(), &grid)
        .await
    {
        Ok(caller) => caller,
        Err(error) => {
            debug!(path = %request.uri().path(), %error, "request refused");
            return error.into_response();
        }
    };
    let path = request.uri().path();
    let metrics_route = path == "/metrics";
    if metrics_route
        && !matches!(
            caller.role,
            AccessRole::Admin | AccessRole::Auditor | AccessRole::Metrics
        )
    {
        return ApiError::forbidden(None, "/metrics needs the admin, auditor or metrics role")
            .into_response();
    }
    if !metrics_route && caller.scope == AccessScope::MetricsOnly {
        return caller.metrics_only().into_response();
    }
    if caller.credential == Credential::Development {
        debug!(
            path,
            "request served without authentication (development mode)"
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

// ---------------------------------------------------------------------------------------
// Issuing tokens (`wangge auth keygen`, `wangge auth token`, the demo, tests)
// ---------------------------------------------------------------------------------------

/// PKCS#8 DER of an Ed25519 private key, before its 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// SubjectPublicKeyInfo DER of an Ed25519 public key, before its 32 bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// A new Ed25519 key pair as PEM: `(private PKCS#8, public SubjectPublicKeyInfo)`, 32
/// random bytes from the OS.
pub fn generate_ed25519_pem() -> Result<(String, String), AuthConfigError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| AuthConfigError::Invalid {
        what: "the key".to_owned(),
        reason: format!("no randomness from the OS: {error}"),
    })?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let private_der: Vec<u8> = ED25519_PKCS8_PREFIX
        .iter()
        .chain(seed.iter())
        .copied()
        .collect();
    let public_der: Vec<u8> = ED25519_SPKI_PREFIX
        .iter()
        .chain(public.iter())
        .copied()
        .collect();
    Ok((
        pem("PRIVATE KEY", &private_der),
        pem("PUBLIC KEY", &public_der),
    ))
}

/// The public key PEM of an Ed25519 private key PEM (what `--auth-public-key` wants).
pub fn ed25519_public_pem(private_pem: &str) -> Option<String> {
    let (label, der) = pem_body(private_pem)?;
    if label != "PRIVATE KEY" || der.len() != 48 || der[..16] != ED25519_PKCS8_PREFIX {
        return None;
    }
    let seed: [u8; 32] = der[16..].try_into().ok()?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let public_der: Vec<u8> = ED25519_SPKI_PREFIX
        .iter()
        .chain(public.iter())
        .copied()
        .collect();
    Some(pem("PUBLIC KEY", &public_der))
}

/// Signs tokens with a private key (Ed25519 → EdDSA, P-256 → ES256).
#[derive(Clone)]
pub struct TokenSigner {
    key: jsonwebtoken::EncodingKey,
    algorithm: Algorithm,
    pub issuer: String,
    pub audience: String,
    /// The `kid` put in the header, for a key published in a JWKS with others.
    pub kid: Option<String>,
}

impl TokenSigner {
    pub fn from_private_key_pem(text: &str, what: &str) -> Result<Self, AuthConfigError> {
        let invalid = |reason: String| AuthConfigError::Invalid {
            what: what.to_owned(),
            reason,
        };
        let (label, der) = pem_body(text).ok_or_else(|| invalid("not a PEM file".to_owned()))?;
        let (key, algorithm) = if contains(&der, ED25519_OID) {
            (
                jsonwebtoken::EncodingKey::from_ed_pem(text.as_bytes()),
                Algorithm::EdDSA,
            )
        } else if label == "PRIVATE KEY" && contains(&der, EC_OID) && contains(&der, P256_OID) {
            (
                jsonwebtoken::EncodingKey::from_ec_pem(text.as_bytes()),
                Algorithm::ES256,
            )
        } else {
            return Err(invalid(format!(
                "holds a `{label}`; give an Ed25519 or P-256 private key in PKCS#8 (`wangge auth keygen` writes one)"
            )));
        };
        Ok(Self {
            key: key.map_err(|error| invalid(error.to_string()))?,
            algorithm,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            kid: None,
        })
    }

    /// A token for `sub` (in `role`, or the grid's role when `None`), valid from `now` for
    /// `ttl`.
    pub fn issue(
        &self,
        sub: &str,
        role: Option<AccessRole>,
        now: chrono::DateTime<chrono::Utc>,
        ttl: std::time::Duration,
    ) -> Result<String, AuthConfigError> {
        let now_seconds = u64::try_from(now.timestamp()).unwrap_or(0);
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now_seconds + ttl.as_secs(),
            nbf: Some(now_seconds),
            iat: Some(now_seconds),
            iss: Some(self.issuer.clone()),
            aud: Some(self.audience.clone()),
        };
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|error| {
            AuthConfigError::Invalid {
                what: "the token".to_owned(),
                reason: error.to_string(),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// `GET /api/v1/me`
// ---------------------------------------------------------------------------------------

/// Who the credentials name, and what they may see: what the dashboard shows as the
/// signed-in identity, and how a client checks a token before using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    /// The grid id (or `apikey:<name>`, or `development`).
    pub grid_id: String,
    /// `grid_worker`, `supervisor`, `district`, `auditor`, `admin` or `metrics`.
    pub role: String,
    /// `token`, `api_key` or `development`.
    pub credential: String,
    /// `everything`, `cells` (see `cells`) or `own_cases`.
    pub scope: String,
    /// The cells the caller sees with everything below them (for `cells`), with names.
    pub cells: Vec<ScopeCell>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScopeCell {
    pub code: String,
    pub name: String,
}

/// The caller: identity, role and scope as the grid gives them.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    responses(
        (status = 200, body = Identity),
        (status = 400, description = "A parameter was given", body = super::error::ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = super::error::ApiErrorBody),
    )
)]
pub async fn me(
    State(state): State<ApiState>,
    caller: Caller,
    _: super::extract::ApiQuery<super::grid::NoParameters>,
) -> axum::Json<Identity> {
    let grid = state.grid();
    let (scope, cells) = match &caller.scope {
        AccessScope::Everything => ("everything", Vec::new()),
        AccessScope::MetricsOnly => ("metrics", Vec::new()),
        AccessScope::OwnCases { .. } => ("own_cases", Vec::new()),
        AccessScope::Cells(roots) => (
            "cells",
            roots
                .iter()
                .map(|code| ScopeCell {
                    code: code.clone(),
                    name: cell_name(&grid, code),
                })
                .collect(),
        ),
    };
    axum::Json(Identity {
        grid_id: caller.grid_id.clone(),
        role: caller.role.as_str().to_owned(),
        credential: match caller.credential {
            Credential::Token => "token",
            Credential::ApiKey { .. } => "api_key",
            Credential::Development => "development",
        }
        .to_owned(),
        scope: scope.to_owned(),
        cells,
    })
}

/// A JWKS document holding one Ed25519 public key (PEM) under `kid`: how a key from
/// `wangge auth keygen` is published to a server reading `--auth-jwks-url` or
/// `--auth-jwks-file`.
pub fn ed25519_jwks(public_pem: &str, kid: &str) -> Option<String> {
    use base64::Engine as _;
    let (label, der) = pem_body(public_pem)?;
    if label != "PUBLIC KEY" || der.len() != 44 || der[..12] != ED25519_SPKI_PREFIX {
        return None;
    }
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[12..]);
    Some(
        serde_json::json!({
            "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}]
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(kid: &str) -> (TokenSigner, String) {
        let (private, public) = generate_ed25519_pem().expect("a key pair");
        let mut signer = TokenSigner::from_private_key_pem(&private, "test").expect("signs");
        signer.kid = Some(kid.to_owned());
        (signer, public)
    }

    fn jwks_of(keys: &[(&str, &str)]) -> String {
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .map(|(public, kid)| {
                let one: serde_json::Value =
                    serde_json::from_str(&ed25519_jwks(public, kid).expect("a jwks")).unwrap();
                one["keys"][0].clone()
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    #[test]
    fn a_jwks_key_is_chosen_by_its_id_and_a_rotated_set_replaces_the_old_one() {
        let (old, old_public) = signer("2026-11");
        let (new, new_public) = signer("2026-12");
        let now = chrono::Utc::now();
        let hour = std::time::Duration::from_secs(3600);
        let verifier = TokenVerifier::from_jwks_json(
            &jwks_of(&[(&old_public, "2026-11"), (&new_public, "2026-12")]),
            "test",
        )
        .expect("a verifier");
        for signer in [&old, &new] {
            let token = signer
                .issue("audit-office", Some(AccessRole::Auditor), now, hour)
                .unwrap();
            assert_eq!(verifier.verify(&token).expect("valid").sub, "audit-office");
        }
        // The provider drops the old key: its tokens stop verifying once the set is fetched.
        verifier
            .replace_keys_from_jwks(&jwks_of(&[(&new_public, "2026-12")]), "test")
            .expect("replaced");
        let token = old.issue("audit-office", None, now, hour).unwrap();
        assert_eq!(
            verifier.verify(&token).unwrap_err(),
            "no key `2026-11` is configured"
        );
        let token = new.issue("audit-office", None, now, hour).unwrap();
        assert!(verifier.verify(&token).is_ok());
        // A set with nothing usable leaves the keys in hand.
        assert!(verifier
            .replace_keys_from_jwks(r#"{"keys":[]}"#, "test")
            .is_err());
        assert!(verifier.verify(&token).is_ok());
    }
}
