//! Connecting to NATS as the engine does ([`wangge_engine::nats::connect`]), against real
//! nats-servers of the test's own started with users, a token, nkeys and TLS: each way of
//! proving who we are gets in, a wrong secret gets a clear refusal that never contains the
//! secret, a list of URLs gets past a dead server, and a server older than the engine's
//! minimum (Debian's 2.9.10, when the machine has it) is refused with what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use wangge_engine::nats::connect::{pinned_server_version, ConnectError};
use wangge_engine::nats::{connect, NatsConnectOptions, Secret};
use wangge_testkit::NatsServer;

/// A server started with `config` (written to a file of the test's own) on top of the usual
/// port, store and log flags.
fn server_with_config(dir: &TempDir, config: &str) -> NatsServer {
    let path = dir.path().join("server.conf");
    std::fs::write(&path, config).expect("write the server config");
    NatsServer::start_with_args(&["-c", path.to_str().expect("utf-8 path")])
}

fn options(servers: &[String]) -> NatsConnectOptions {
    NatsConnectOptions {
        servers: servers.to_vec(),
        ..Default::default()
    }
}

/// The client got in: a request to the server's own `$JS.API.INFO` is answered.
async fn assert_usable(client: async_nats::Client) {
    let answer = client
        .request("$JS.API.INFO", "".into())
        .await
        .expect("the connected client can talk to the server");
    assert!(!answer.payload.is_empty());
}

/// The connection was refused, and the refusal names no secret.
async fn refused(options: &NatsConnectOptions, secrets: &[&str]) -> String {
    let error = match connect(options).await {
        Ok(_) => panic!("connecting with {options:?} must fail"),
        Err(error) => error,
    };
    let shown = format!("{error} / {error:?}");
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "the error shows the secret {secret:?}: {shown}"
        );
    }
    shown
}

const USERS: &str = r#"
authorization {
    users = [
        { user: "alice", password: "s3cret-Pa55" }
        { user: "bob", password: "p@ss:w/rd" }
    ]
}
"#;

#[tokio::test]
async fn a_user_and_password_from_options_or_in_the_url_gets_in() {
    let dir = TempDir::new().unwrap();
    let server = server_with_config(&dir, USERS);

    let mut given = options(&[server.url()]);
    given.user = Some("alice".into());
    given.password = Some(Secret::new("s3cret-Pa55"));
    assert_usable(connect(&given).await.expect("user and password")).await;

    let in_url = format!("nats://alice:s3cret-Pa55@127.0.0.1:{}", server.port());
    assert_usable(
        connect(&options(&[in_url]))
            .await
            .expect("credentials in the url"),
    )
    .await;

    // Characters that must be escaped in a URL's user information.
    let escaped = format!("nats://bob:p%40ss%3Aw%2Frd@127.0.0.1:{}", server.port());
    assert_usable(
        connect(&options(&[escaped]))
            .await
            .expect("escaped password"),
    )
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_it() {
    let dir = TempDir::new().unwrap();
    let server = server_with_config(&dir, USERS);

    let in_url = format!("nats://alice:Wr0ng-Secret-77@127.0.0.1:{}", server.port());
    let shown = refused(&options(&[in_url]), &["Wr0ng-Secret-77"]).await;
    assert!(shown.contains("authorization violation"), "{shown}");
    assert!(shown.contains("nats://***@127.0.0.1"), "{shown}");

    let mut given = options(&[server.url()]);
    given.user = Some("alice".into());
    given.password = Some(Secret::new("An0ther-Wr0ng-1"));
    let shown = refused(&given, &["An0ther-Wr0ng-1"]).await;
    assert!(shown.contains("authorization violation"), "{shown}");

    let anonymous = refused(&options(&[server.url()]), &[]).await;
    assert!(anonymous.contains("authorization violation"), "{anonymous}");
}

#[tokio::test]
async fn a_token_gets_in_and_a_wrong_one_is_refused_without_showing_it() {
    let dir = TempDir::new().unwrap();
    let server = server_with_config(&dir, r#"authorization { token: "t0ken-Of-The-Engine" }"#);

    let mut given = options(&[server.url()]);
    given.token = Some(Secret::new("t0ken-Of-The-Engine"));
    assert_usable(connect(&given).await.expect("token")).await;
    let in_url = format!("nats://t0ken-Of-The-Engine@127.0.0.1:{}", server.port());
    assert_usable(
        connect(&options(&[in_url]))
            .await
            .expect("token in the url"),
    )
    .await;

    given.token = Some(Secret::new("n0t-The-T0ken"));
    let shown = refused(&given, &["n0t-The-T0ken"]).await;
    assert!(shown.contains("authorization violation"), "{shown}");
}

#[tokio::test]
async fn an_nkey_seed_file_gets_in_and_another_users_seed_is_refused() {
    let dir = TempDir::new().unwrap();
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
        user.public_key()
    );
    let server = server_with_config(&dir, &config);
    let seed_file = |name: &str, pair: &nkeys::KeyPair| {
        let path = dir.path().join(name);
        let seed = pair.seed().unwrap();
        std::fs::write(&path, format!("# the engine's nkey\n{seed}\n")).unwrap();
        (path, seed)
    };

    let (path, _) = seed_file("engine.nk", &user);
    let mut given = options(&[server.url()]);
    given.nkey_seed_file = Some(path);
    assert_usable(connect(&given).await.expect("nkey")).await;

    let (path, seed) = seed_file("stranger.nk", &stranger);
    given.nkey_seed_file = Some(path);
    let shown = refused(&given, &[&seed]).await;
    assert!(shown.contains("authorization violation"), "{shown}");

    let garbage = dir.path().join("garbage.nk");
    std::fs::write(&garbage, "SUNOTASEEDATALL\n").unwrap();
    given.nkey_seed_file = Some(garbage.clone());
    let shown = refused(&given, &["SUNOTASEEDATALL"]).await;
    assert!(
        shown.contains("garbage.nk") && shown.contains("no valid nkey seed"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_list_of_urls_gets_past_a_server_that_is_down() {
    let server = NatsServer::start();
    let dead = {
        let gone = NatsServer::start();
        gone.url()
        // dropped: nothing listens there any more
    };
    let client = connect(&options(&[format!("{dead},{}", server.url())]))
        .await
        .expect("the live server of the list");
    assert_usable(client).await;
}

#[tokio::test]
async fn the_pinned_server_is_new_enough() {
    let server = NatsServer::start();
    let client = connect(&options(&[server.url()])).await.expect("connect");
    assert_eq!(client.server_info().version, pinned_server_version());
}

/// Debian bookworm's package; the machines of this project have it, a developer's may not.
const DEBIAN_NATS_SERVER: &str = "/usr/sbin/nats-server";

#[tokio::test]
async fn a_server_older_than_2_12_is_refused_with_what_to_install() {
    let binary = Path::new(DEBIAN_NATS_SERVER);
    let old_version = Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let Some(old_version) = old_version
        .strip_prefix("nats-server: v")
        .map(str::to_owned)
    else {
        eprintln!("skipped: no nats-server at {DEBIAN_NATS_SERVER} to play an old server");
        return;
    };
    let old = wangge_engine::nats::connect::ServerVersion::parse(&old_version).unwrap();
    if old >= wangge_engine::nats::connect::MINIMUM_SERVER_VERSION {
        eprintln!("skipped: {DEBIAN_NATS_SERVER} is {old_version}, not older than the minimum");
        return;
    }
    let server = NatsServer::start_binary(PathBuf::from(binary), &[]);

    let error = connect(&options(&[server.url()]))
        .await
        .expect_err("an old server is refused");

    assert!(
        matches!(error, ConnectError::ServerTooOld { .. }),
        "{error:?}"
    );
    let shown = error.to_string();
    assert!(
        shown.contains(&format!("nats-server {old_version}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("install nats-server {}", pinned_server_version())),
        "{shown}"
    );
    assert!(shown.contains(&server.url()), "{shown}");
}

/// A CA, and a server certificate for 127.0.0.1 signed by it, made with the openssl command.
fn certificates(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false)
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .ok()?;
    let made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=wangge test ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]) && openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    made.then(|| {
        (
            dir.join("ca.pem"),
            dir.join("server.pem"),
            dir.join("server.key"),
        )
    })
}

#[tokio::test]
async fn tls_with_our_ca_gets_in_and_without_it_is_refused() {
    let dir = TempDir::new().unwrap();
    let Some((ca, cert, key)) = certificates(dir.path()) else {
        eprintln!("skipped: the openssl command could not make test certificates");
        return;
    };
    let config = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\nauthorization {{ users = [ {{ user: \"alice\", password: \"tls-Pa55\" }} ] }}",
        cert.display(),
        key.display()
    );
    let server = server_with_config(&dir, &config);
    let url = format!("tls://alice:tls-Pa55@127.0.0.1:{}", server.port());

    let mut given = options(std::slice::from_ref(&url));
    given.tls_ca_file = Some(ca);
    assert_usable(connect(&given).await.expect("tls with our ca")).await;

    let shown = refused(&options(&[url]), &["tls-Pa55"]).await;
    assert!(shown.to_lowercase().contains("tls"), "{shown}");
}
