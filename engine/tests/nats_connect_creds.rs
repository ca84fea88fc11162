//! A `.creds` file ([`NatsConnectOptions::credentials_file`]) against a real nats-server in
//! operator (decentralised JWT) mode: an operator, an account and a user made here with nkeys
//! and signed by hand as `nsc` would, the account preloaded into the server's memory resolver.
//! The user's creds get in; creds of a user the account never signed are refused.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tempfile::TempDir;
use wangge_engine::nats::{connect, NatsConnectOptions};
use wangge_testkit::NatsServer;

/// Unpadded URL-safe base64, as JWTs use.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | (u32::from(*byte) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A NATS JWT: `claims` about `subject`, issued and signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "jti": format!("WANGGETEST{subject}"),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let header = base64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = base64url(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).expect("sign the jwt");
    format!("{signed}.{}", base64url(&signature))
}

fn creds_file(user_jwt: &str, user: &nkeys::KeyPair) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    )
}

#[tokio::test]
async fn a_creds_file_gets_in_and_one_the_account_never_signed_is_refused() {
    let dir = TempDir::new().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let system = nkeys::KeyPair::new_account();
    let stranger_account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();

    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "wangge-test",
        json!({ "type": "operator", "version": 2, "system_account": system.public_key() }),
    );
    // The engine's account may use JetStream; the system account must not.
    let account_claims = |jetstream: bool| {
        let mut limits = json!({ "subs": -1, "data": -1, "payload": -1, "imports": -1,
                                 "exports": -1, "wildcards": true, "conn": -1, "leaf": -1 });
        if jetstream {
            for limit in ["mem_storage", "disk_storage", "streams", "consumer"] {
                limits[limit] = json!(-1);
            }
        }
        json!({ "type": "account", "version": 2, "limits": limits,
                "default_permissions": { "pub": {}, "sub": {} } })
    };
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "engine",
        account_claims(true),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        account_claims(false),
    );
    let user_claims = json!({ "type": "user", "version": 2, "pub": {}, "sub": {},
                              "subs": -1, "data": -1, "payload": -1 });
    let user_jwt = jwt(&account, &user.public_key(), "engine", user_claims.clone());
    // Signed by an account the server does not know.
    let stranger_jwt = jwt(&stranger_account, &stranger.public_key(), "x", user_claims);

    let config = format!(
        "operator: {operator_jwt}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {account_jwt}\n  {}: {system_jwt}\n}}\n",
        system.public_key(),
        account.public_key(),
        system.public_key(),
    );
    let config_path = dir.path().join("operator.conf");
    std::fs::write(&config_path, config).unwrap();
    let server = NatsServer::start_with_args(&["-c", config_path.to_str().unwrap()]);

    let creds = dir.path().join("engine.creds");
    std::fs::write(&creds, creds_file(&user_jwt, &user)).unwrap();
    let options = NatsConnectOptions {
        servers: vec![server.url()],
        credentials_file: Some(creds),
        ..Default::default()
    };
    let client = connect(&options).await.expect("the user's creds get in");
    client.flush().await.expect("a round trip to the server");

    let stranger_creds = dir.path().join("stranger.creds");
    std::fs::write(&stranger_creds, creds_file(&stranger_jwt, &stranger)).unwrap();
    let options = NatsConnectOptions {
        servers: vec![server.url()],
        credentials_file: Some(stranger_creds),
        ..Default::default()
    };
    let error = connect(&options)
        .await
        .expect_err("creds the account never signed are refused");
    let shown = error.to_string();
    assert!(shown.contains("authorization violation"), "{shown}");
    assert!(
        !shown.contains(&stranger.seed().unwrap()),
        "the seed is shown: {shown}"
    );

    let missing = NatsConnectOptions {
        servers: vec![server.url()],
        credentials_file: Some(dir.path().join("missing.creds")),
        ..Default::default()
    };
    let shown = connect(&missing)
        .await
        .expect_err("no such file")
        .to_string();
    assert!(
        shown.contains("credentials file") && shown.contains("missing.creds"),
        "{shown}"
    );
}
