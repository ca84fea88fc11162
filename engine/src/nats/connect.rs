//! Connecting to NATS like any real client, in one place for every `wangge` command and
//! benchmark: a list of server URLs, one way of proving who we are (a credentials file, an nkey
//! seed file, a user and password — given apart or inside a URL — or a token), TLS with a CA of
//! our own and optionally a client certificate; and the server's version, read from the INFO it
//! sends at connect, checked against the oldest the engine runs on.
//!
//! Secrets never reach a message or a log: URLs are shown with their user information replaced
//! (`nats://***@host:4222`), passwords, tokens and seeds are held as [`Secret`] (whose `Debug`
//! prints nothing of them), and every error text is scrubbed of them once more before it leaves
//! this module.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use async_nats::ServerAddr;

/// The oldest nats-server the engine runs on. Older servers lack `sync_interval` (fsync per
/// write), auth callout and atomic batches, and before 2.9.21 a replicated stream could accept
/// two appends at one expected position (nats-server#4320), which optimistic concurrency — the
/// heart of the event log — cannot survive.
pub const MINIMUM_SERVER_VERSION: ServerVersion = ServerVersion {
    major: 2,
    minor: 12,
    patch: 0,
    pre_release: false,
};

/// The project's pin (`deploy/dev/nats-server.pin`): the release tests, CI and benchmarks run.
const PIN_FILE: &str = include_str!("../../../deploy/dev/nats-server.pin");

/// The nats-server release the project pins and tests, e.g. `2.15.1`: what to install.
pub fn pinned_server_version() -> &'static str {
    static PINNED: OnceLock<String> = OnceLock::new();
    PINNED.get_or_init(|| {
        PIN_FILE
            .lines()
            .find_map(|line| line.strip_prefix("NATS_SERVER_VERSION="))
            .map(|version| version.trim().to_owned())
            .unwrap_or_default()
    })
}

/// A secret given on the command line or in the environment: a password, a token. Its `Debug`
/// and `Display` say only that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that hands it to the client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

/// Where NATS is and how to prove who we are. At most one way of authenticating may be given
/// (a user and password in the URLs count as one).
#[derive(Debug, Clone, Default)]
pub struct NatsConnectOptions {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`, `host:4222`); user information in
    /// a URL (`nats://user:password@host`, `nats://token@host`) is used and never shown.
    pub servers: Vec<String>,
    /// A `.creds` file: a user JWT and its nkey seed (decentralised auth, `nsc`).
    pub credentials_file: Option<PathBuf>,
    /// A file holding a user's nkey seed (`SU…`), for servers configured with nkey users.
    pub nkey_seed_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    /// A PEM file of the CA(s) that signed the server's certificate; implies TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients; implies TLS.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The connection's name, shown in the server's monitoring (`connz`).
    pub name: Option<String>,
    /// The prefix of reply subjects (default `_INBOX`). The shipped NATS accounts let each
    /// worker, system and administrator subscribe only to `_INBOX_<user>.>`, so no one can
    /// read the replies others get; such users connect with `_INBOX_<user>`.
    pub inbox_prefix: Option<String>,
}

/// Why we are not connected. Every text is free of secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The options themselves are wrong: tell the operator which.
    #[error("nats connection options: {0}")]
    BadOptions(String),
    #[error("cannot read the nats {what} {path}: {reason}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The server refused who we said we were, or never let us in.
    #[error("cannot connect to nats at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    /// The server is older than the engine needs.
    #[error(
        "the nats server at {servers} is nats-server {found}; wangge needs nats-server >= {minimum}: install nats-server {pinned} (the version this project pins and tests; `bash deploy/dev/ensure-services.sh` installs it for development)"
    )]
    ServerTooOld {
        servers: String,
        found: String,
        minimum: ServerVersion,
        pinned: &'static str,
    },
}

/// Connects and checks the server's version: the one way the engine's commands reach NATS.
pub async fn connect(options: &NatsConnectOptions) -> Result<async_nats::Client, ConnectError> {
    let prepared = prepare(options)?;
    let shown = prepared.shown_servers.clone();
    let scrub = |text: String| scrub_secrets(text, &prepared.secrets);
    let builder = builder(options, &prepared)
        .await
        .map_err(|error| match error {
            ConnectError::ReadFile { what, path, reason } => ConnectError::ReadFile {
                what,
                path,
                reason: scrub(reason),
            },
            other => other,
        })?;
    let client = builder
        .connect(prepared.addresses.clone())
        .await
        .map_err(|error| ConnectError::Connect {
            servers: shown.clone(),
            reason: scrub(explain_connect_error(&error)),
        })?;
    let found = client.server_info().version;
    match check_server_version(&found) {
        Ok(version) => {
            tracing::info!(servers = %shown, server_version = %version, "connected to nats");
            Ok(client)
        }
        Err(error) => {
            let _ = client.drain().await;
            Err(match error {
                ConnectError::ServerTooOld {
                    found,
                    minimum,
                    pinned,
                    ..
                } => ConnectError::ServerTooOld {
                    servers: shown,
                    found,
                    minimum,
                    pinned,
                },
                other => other,
            })
        }
    }
}

/// The server's version if it is new enough; otherwise the refusal (its `servers` left for the
/// caller to fill in).
pub fn check_server_version(found: &str) -> Result<ServerVersion, ConnectError> {
    let too_old = || ConnectError::ServerTooOld {
        servers: String::new(),
        found: if found.is_empty() {
            "of unknown version".to_owned()
        } else {
            found.to_owned()
        },
        minimum: MINIMUM_SERVER_VERSION,
        pinned: pinned_server_version(),
    };
    match ServerVersion::parse(found) {
        Some(version) if version >= MINIMUM_SERVER_VERSION => Ok(version),
        _ => Err(too_old()),
    }
}

/// A nats-server release: `2.14.6`, `v2.12.0`, `2.12.0-RC.1` (a pre-release comes before its
/// release, so 2.12.0-RC.1 < 2.12.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre_release: bool,
}

impl ServerVersion {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let (numbers, pre_release) = match text.split_once(['-', '+']) {
            Some((numbers, rest)) => {
                let pre_release = text[numbers.len()..].starts_with('-') && !rest.is_empty();
                (numbers, pre_release)
            }
            None => (text, false),
        };
        let mut parts = numbers.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre_release,
        })
    }
}

impl Ord for ServerVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.major, self.minor, self.patch, !self.pre_release).cmp(&(
            other.major,
            other.minor,
            other.patch,
            !other.pre_release,
        ))
    }
}

impl PartialOrd for ServerVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if self.pre_release {
            f.write_str(" (pre-release)")?;
        }
        Ok(())
    }
}

/// A URL as it may be shown: its user information (a user and password, or a token) replaced.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The options turned into what the client library takes, with what may be shown.
struct Prepared {
    addresses: Vec<ServerAddr>,
    shown_servers: String,
    /// User information found in the URLs: a user and password, or a token.
    url_auth: Option<UrlAuth>,
    /// Every secret in play, to scrub from any text before it is shown.
    secrets: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

fn prepare(options: &NatsConnectOptions) -> Result<Prepared, ConnectError> {
    let urls: Vec<&str> = options
        .servers
        .iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(ConnectError::BadOptions(
            "no nats server url given (--nats-url)".into(),
        ));
    }
    let mut addresses = Vec::with_capacity(urls.len());
    let mut url_auth: Option<UrlAuth> = None;
    let mut secrets = Vec::new();
    for url in &urls {
        let address: ServerAddr = url.parse().map_err(|_| {
            ConnectError::BadOptions(format!(
                "{} is not a nats server url (nats://host:port, tls://host:port or host:port)",
                redact_url(url)
            ))
        })?;
        let mut inner = address.into_inner();
        let found = match (inner.username(), inner.password()) {
            ("", None) => None,
            (user, Some(password)) => Some(UrlAuth::UserPassword(
                percent_decode(user),
                percent_decode(password),
            )),
            (token, None) => Some(UrlAuth::Token(percent_decode(token))),
        };
        if let Some(found) = found {
            match &found {
                UrlAuth::UserPassword(_, password) => secrets.push(password.clone()),
                UrlAuth::Token(token) => secrets.push(token.clone()),
            }
            match &url_auth {
                Some(earlier) if *earlier != found => {
                    return Err(ConnectError::BadOptions(
                        "the server urls carry different credentials; give them once (e.g. --nats-user/--nats-password) for all servers".into(),
                    ))
                }
                _ => url_auth = Some(found),
            }
            // The library ignores user information in a URL, and would show it in its logs.
            let stripped = inner.set_username("").is_ok() && inner.set_password(None).is_ok();
            if !stripped {
                return Err(ConnectError::BadOptions(format!(
                    "{} cannot carry credentials",
                    redact_url(url)
                )));
            }
        }
        let address = ServerAddr::from_url(inner).map_err(|_| {
            ConnectError::BadOptions(format!("{} is not a nats server url", redact_url(url)))
        })?;
        addresses.push(address);
    }
    let shown_servers = urls
        .iter()
        .map(|url| redact_url(url))
        .collect::<Vec<_>>()
        .join(",");

    let mut ways = Vec::new();
    if options.credentials_file.is_some() {
        ways.push("--nats-creds");
    }
    if options.nkey_seed_file.is_some() {
        ways.push("--nats-nkey");
    }
    if options.user.is_some() || options.password.is_some() {
        ways.push("--nats-user/--nats-password");
    }
    if options.token.is_some() {
        ways.push("--nats-token");
    }
    if url_auth.is_some() {
        ways.push("credentials in the server url");
    }
    if ways.len() > 1 {
        return Err(ConnectError::BadOptions(format!(
            "give one way of authenticating, not {}",
            ways.join(" and ")
        )));
    }
    if options.user.is_some() != options.password.is_some() {
        return Err(ConnectError::BadOptions(
            "--nats-user and --nats-password go together".into(),
        ));
    }
    if options.tls_cert_file.is_some() != options.tls_key_file.is_some() {
        return Err(ConnectError::BadOptions(
            "--nats-tls-cert and --nats-tls-key go together".into(),
        ));
    }
    secrets.extend(options.password.iter().map(|s| s.expose().to_owned()));
    secrets.extend(options.token.iter().map(|s| s.expose().to_owned()));
    secrets.retain(|secret| !secret.is_empty());
    Ok(Prepared {
        addresses,
        shown_servers,
        url_auth,
        secrets,
    })
}

async fn builder(
    options: &NatsConnectOptions,
    prepared: &Prepared,
) -> Result<async_nats::ConnectOptions, ConnectError> {
    let mut builder = match &options.credentials_file {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|error| ConnectError::ReadFile {
                what: "credentials file",
                path: path.clone(),
                reason: error.to_string(),
            })?,
        None => async_nats::ConnectOptions::new(),
    };
    builder = builder.name(options.name.as_deref().unwrap_or("wangge"));
    if let Some(prefix) = &options.inbox_prefix {
        builder = builder.custom_inbox_prefix(prefix.clone());
    }
    if let Some(path) = &options.nkey_seed_file {
        builder = builder.nkey(read_nkey_seed(path)?);
    }
    if let (Some(user), Some(password)) = (&options.user, &options.password) {
        builder = builder.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(token) = &options.token {
        builder = builder.token(token.expose().to_owned());
    }
    match &prepared.url_auth {
        Some(UrlAuth::UserPassword(user, password)) => {
            builder = builder.user_and_password(user.clone(), password.clone());
        }
        Some(UrlAuth::Token(token)) => builder = builder.token(token.clone()),
        None => {}
    }
    if let Some(ca) = &options.tls_ca_file {
        require_file(ca, "tls ca file")?;
        builder = builder.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&options.tls_cert_file, &options.tls_key_file) {
        require_file(cert, "tls client certificate")?;
        require_file(key, "tls client key")?;
        builder = builder
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(builder)
}

fn require_file(path: &Path, what: &'static str) -> Result<(), ConnectError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|error| ConnectError::ReadFile {
            what,
            path: path.to_owned(),
            reason: error.to_string(),
        })
}

/// The user seed in an nkey seed file: its first line that is not blank or a comment. Checked
/// here so that a wrong file is named; the seed itself is never shown.
fn read_nkey_seed(path: &Path) -> Result<String, ConnectError> {
    let unreadable = |reason: String| ConnectError::ReadFile {
        what: "nkey seed file",
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("//"))
        .ok_or_else(|| unreadable("it holds no seed".into()))?;
    match nkeys::KeyPair::from_seed(seed) {
        Ok(pair) if pair.public_key().starts_with('U') => Ok(seed.to_owned()),
        Ok(_) => Err(unreadable(
            "its seed is not a user's (a user seed starts with SU)".into(),
        )),
        Err(_) => Err(unreadable("it holds no valid nkey seed".into())),
    }
}

/// What went wrong, in words an operator can act on.
fn explain_connect_error(error: &async_nats::ConnectError) -> String {
    use async_nats::ConnectErrorKind as Kind;
    let hint = match error.kind() {
        Kind::AuthorizationViolation => {
            " (the server refused our credentials: check --nats-creds, --nats-nkey, --nats-user/--nats-password or --nats-token)"
        }
        Kind::Authentication => " (the nkey or credentials could not sign the server's challenge)",
        Kind::Tls => " (check --nats-tls-ca, and that the url's host matches the server's certificate)",
        Kind::TimedOut | Kind::Io | Kind::Dns => " (is the server running and reachable?)",
        _ => "",
    };
    format!("{error}{hint}")
}

/// Replaces every occurrence of a secret in a text with `***`.
fn scrub_secrets(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// `%xx` escapes of a URL's user information decoded (a password may hold `@` or `:`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> ServerVersion {
        ServerVersion::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert!(version("2.10.26") < version("2.12.0"));
        assert!(version("2.9.10") < version("2.12.0"));
        assert!(version("2.12.0") < version("2.12.10"));
        assert!(version("2.12.10") < version("2.14.6"));
        assert!(version("2.14.6") < version("3.0.0"));
        assert_eq!(version("v2.14.6"), version("2.14.6"));
        assert!(version("2.12.0-RC.1") < version("2.12.0"));
        assert!(version("2.11.9") < version("2.12.0-RC.1"));
    }

    #[test]
    fn the_minimum_lets_2_12_and_later_in_and_keeps_older_out() {
        for accepted in ["2.12.0", "2.12.8", "2.14.6", "2.15.1", "v3.0.0"] {
            assert!(check_server_version(accepted).is_ok(), "{accepted}");
        }
        for refused in [
            "2.9.10",
            "2.10.26",
            "2.11.9",
            "2.12.0-RC.1",
            "",
            "garbage",
            "2.12",
        ] {
            assert!(
                matches!(
                    check_server_version(refused),
                    Err(ConnectError::ServerTooOld { .. })
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_version_found_and_what_to_install() {
        let error = check_server_version("2.9.10").unwrap_err().to_string();
        assert!(error.contains("nats-server 2.9.10"), "{error}");
        assert!(error.contains(">= 2.12.0"), "{error}");
        assert!(
            error.contains(&format!("install nats-server {}", pinned_server_version())),
            "{error}"
        );
        assert!(error.contains("deploy/dev/ensure-services.sh"), "{error}");
    }

    #[test]
    fn the_pinned_version_meets_the_minimum() {
        let pinned = pinned_server_version();
        assert!(
            version(pinned) >= MINIMUM_SERVER_VERSION,
            "the pin {pinned} is older than the engine's minimum"
        );
    }

    #[test]
    fn urls_are_shown_without_their_user_information() {
        assert_eq!(
            redact_url("nats://alice:s3cret@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        assert_eq!(
            redact_url("tls://tok3n@nats.example:4222/x"),
            "tls://***@nats.example:4222/x"
        );
        assert_eq!(redact_url("bob:p@ss@host:4222"), "***@host:4222");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn credentials_in_urls_are_taken_out_of_the_addresses_and_remembered() {
        let options = NatsConnectOptions {
            servers: vec![
                "nats://alice:p%40ss@127.0.0.1:4222,nats://alice:p%40ss@127.0.0.2:4222".into(),
            ],
            ..Default::default()
        };
        let prepared = prepare(&options).unwrap();
        assert_eq!(
            prepared.url_auth,
            Some(UrlAuth::UserPassword("alice".into(), "p@ss".into()))
        );
        assert_eq!(prepared.addresses.len(), 2);
        for address in &prepared.addresses {
            assert!(!address.has_user_pass(), "{}", address.as_url_str());
        }
        assert_eq!(
            prepared.shown_servers,
            "nats://***@127.0.0.1:4222,nats://***@127.0.0.2:4222"
        );
        let token = NatsConnectOptions {
            servers: vec!["nats://t0ken@127.0.0.1:4222".into()],
            ..Default::default()
        };
        assert_eq!(
            prepare(&token).unwrap().url_auth,
            Some(UrlAuth::Token("t0ken".into()))
        );
    }

    #[test]
    fn one_way_of_authenticating_at_a_time() {
        let both = NatsConnectOptions {
            servers: vec!["nats://alice:pw@127.0.0.1:4222".into()],
            token: Some(Secret::new("tok")),
            ..Default::default()
        };
        let Err(ConnectError::BadOptions(why)) = prepare(&both) else {
            panic!("two ways of authenticating must be refused")
        };
        assert!(why.contains("--nats-token"), "{why}");
        assert!(!why.contains("pw") && !why.contains("tok "), "{why}");
        let differing = NatsConnectOptions {
            servers: vec!["nats://a:1@h1:4222".into(), "nats://b:2@h2:4222".into()],
            ..Default::default()
        };
        assert!(matches!(
            prepare(&differing),
            Err(ConnectError::BadOptions(_))
        ));
        let half = NatsConnectOptions {
            servers: vec!["nats://h1:4222".into()],
            user: Some("alice".into()),
            ..Default::default()
        };
        assert!(matches!(prepare(&half), Err(ConnectError::BadOptions(_))));
    }

    #[test]
    fn secrets_are_never_in_debug_output() {
        let options = NatsConnectOptions {
            servers: vec!["nats://127.0.0.1:4222".into()],
            user: Some("alice".into()),
            password: Some(Secret::new("hunter2")),
            token: Some(Secret::new("t0ken-xyz")),
            ..Default::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken-xyz"),
            "{shown}"
        );
        assert_eq!(
            scrub_secrets("bad hunter2 here".into(), &["hunter2".into()]),
            "bad *** here"
        );
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("p%40ss%3Aw"), "p@ss:w");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }
}
