//! The `wangge` command against a nats-server with users, as an operator runs it: credentials
//! from a URL, from flags or from the environment get in; a wrong secret is refused with a
//! message that names the server (its user information hidden) and never the secret; `--help`
//! does not echo a secret set in the environment; an older server is refused with what to
//! install.

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;
use wangge_testkit::{pinned_nats_server_version, NatsServer};

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");
/// Some case that does not exist: `case show` connects, opens the log and says "no case".
const NO_SUCH_CASE: &str = "01936b2e-0000-7000-8000-000000000001";

fn server_with_users(dir: &TempDir) -> NatsServer {
    let config = dir.path().join("users.conf");
    std::fs::write(
        &config,
        r#"authorization { users = [ { user: "engine", password: "Engine-Pa55-42" } ] }"#,
    )
    .unwrap();
    NatsServer::start_with_args(&["-c", config.to_str().unwrap()])
}

/// `wangge case show` with nothing from the developer's environment but `env`.
fn case_show(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(WANGGE);
    for (name, _) in std::env::vars() {
        if name.starts_with("WANGGE_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
        .arg("case")
        .args(args)
        .args(["show", NO_SUCH_CASE])
        .output()
        .expect("run wangge")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Connected: the command got as far as looking the case up.
fn assert_connected(output: &Output) {
    assert_eq!(output.status.code(), Some(2), "{}", text(output));
    assert!(text(output).contains("no case"), "{}", text(output));
}

#[test]
fn credentials_in_the_url_flags_or_environment_get_in() {
    let dir = TempDir::new().unwrap();
    let server = server_with_users(&dir);
    let port = server.port();

    let in_url = format!("nats://engine:Engine-Pa55-42@127.0.0.1:{port}");
    assert_connected(&case_show(&["--nats-url", &in_url], &[]));

    let flags = [
        "--nats-url",
        &server.url(),
        "--nats-user",
        "engine",
        "--nats-password",
        "Engine-Pa55-42",
    ];
    assert_connected(&case_show(&flags, &[]));

    let environment = [
        ("WANGGE_NATS_URL", server.url()),
        ("WANGGE_NATS_USER", "engine".to_owned()),
        ("WANGGE_NATS_PASSWORD", "Engine-Pa55-42".to_owned()),
    ];
    let environment: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    assert_connected(&case_show(&[], &environment));

    // A list of servers, the first of which is down.
    let list = format!("nats://127.0.0.1:1,{in_url}");
    assert_connected(&case_show(&["--nats-url", &list], &[]));
}

#[test]
fn a_wrong_password_is_refused_and_never_printed() {
    let dir = TempDir::new().unwrap();
    let server = server_with_users(&dir);
    let port = server.port();

    let in_url = format!("nats://engine:Wr0ng-In-Url-99@127.0.0.1:{port}");
    let output = case_show(&["--nats-url", &in_url], &[]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        !shown.contains("Wr0ng-In-Url-99"),
        "the password is printed: {shown}"
    );
    assert!(shown.contains("authorization violation"), "{shown}");
    assert!(
        shown.contains(&format!("nats://***@127.0.0.1:{port}")),
        "{shown}"
    );

    let url = server.url();
    let output = case_show(
        &["--nats-url", &url],
        &[
            ("WANGGE_NATS_USER", "engine"),
            ("WANGGE_NATS_PASSWORD", "Wr0ng-In-Env-77"),
        ],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        !shown.contains("Wr0ng-In-Env-77"),
        "the password is printed: {shown}"
    );
    assert!(shown.contains("authorization violation"), "{shown}");

    let output = case_show(&["--nats-url", &url, "--nats-token", "T0ken-Wr0ng-55"], &[]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        !shown.contains("T0ken-Wr0ng-55"),
        "the token is printed: {shown}"
    );
}

#[test]
fn help_does_not_echo_secrets_from_the_environment() {
    let output = Command::new(WANGGE)
        .args(["case", "--help"])
        .env("WANGGE_NATS_PASSWORD", "Hidden-Pa55-31")
        .env("WANGGE_NATS_TOKEN", "Hidden-T0ken-31")
        .env("WANGGE_NATS_URL", "nats://u:Hidden-Url-31@127.0.0.1:4222")
        .output()
        .expect("run wangge");
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    for option in [
        "--nats-creds",
        "--nats-nkey",
        "--nats-token",
        "--nats-tls-ca",
    ] {
        assert!(shown.contains(option), "{option} missing from: {shown}");
    }
    for secret in ["Hidden-Pa55-31", "Hidden-T0ken-31", "Hidden-Url-31"] {
        assert!(!shown.contains(secret), "--help shows {secret}: {shown}");
    }
}

#[test]
fn an_older_server_is_refused_with_what_to_install() {
    let old = Path::new("/usr/sbin/nats-server");
    let version = Command::new(old)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    if !(version.starts_with("nats-server: v2.9.") || version.starts_with("nats-server: v2.10.")) {
        eprintln!(
            "skipped: no nats-server older than 2.12 at {} ({version:?})",
            old.display()
        );
        return;
    }
    let server = NatsServer::start_binary(old.to_owned(), &[]);

    let output = case_show(&["--nats-url", &server.url()], &[]);

    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    let found = version.trim_start_matches("nats-server: v");
    assert!(shown.contains(&format!("nats-server {found}")), "{shown}");
    assert!(
        shown.contains(&format!(
            "install nats-server {}",
            pinned_nats_server_version()
        )),
        "{shown}"
    );
}
