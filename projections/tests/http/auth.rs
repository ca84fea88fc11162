//! Who may read what: every route refuses a request without valid credentials (401, with
//! `WWW-Authenticate: Bearer`), and each role sees the part of the city the grid gives it —
//! a grid worker their own cases, a supervisor their cells, a district its district, an
//! auditor everything and nothing writable; API keys for other systems are scoped and
//! revocable.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use wangge_engine::domain::grid::AccessRole;
use wangge_projections::http::api_keys::{new_api_key, ApiKeyFile, ApiKeyStore};
use wangge_projections::http::auth::{generate_ed25519_pem, Claims};
use wangge_projections::http::openapi::openapi;

use crate::support::{auditor_token, token, worker_of, Week, BUILDINGS, DISTRICT, OTHER_DISTRICT};

/// The supervisor of 翠苑街道 (the district cell 330106001).
const CUIYUAN_SUPERVISOR: &str = "sup-330106001";
/// 文新街道.
const WENXIN: &str = OTHER_DISTRICT;

/// GETs `url` with `token` (none when `None`): status, the `WWW-Authenticate` header, and
/// the JSON body.
async fn get_as(url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().expect("ASCII").to_owned());
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, challenge, body)
}

/// Every documented route, with its path parameters filled in.
fn documented_paths() -> Vec<String> {
    let document = serde_json::to_value(openapi()).expect("the document as JSON");
    document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(|path| {
            path.replace("{case_id}", "01936b2e-9c1d-7c3f-8a55-5c3f00000001")
                .replace("{worker_id}", &worker_of(BUILDINGS[0]))
        })
        .collect()
}

fn assert_unauthorized(
    path: &str,
    (status, challenge, body): &(u16, Option<String>, Value),
    why: &str,
) {
    assert_eq!(*status, 401, "{path}: {body}");
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer ")),
        "{path}: a 401 names the Bearer scheme, got {challenge:?}"
    );
    assert_eq!(body["status"], "rejected", "{path}: {body}");
    assert_eq!(body["code"], "unauthorized", "{path}: {body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(why),
        "{path}: the reason says `{why}`, got `{reason}`"
    );
}

#[tokio::test]
async fn every_route_without_a_token_is_refused_and_only_the_document_and_page_are_public() {
    let week = Week::new();
    let served = week.serve().await;
    let mut paths = documented_paths();
    // Loop over the document, so a new route cannot be forgotten; /metrics is not in it.
    assert!(paths.len() >= 14, "{paths:?}");
    paths.push("/metrics".to_owned());
    for path in &paths {
        let answer = get_as(&served.url(path), None).await;
        assert_unauthorized(path, &answer, "missing `Authorization: Bearer <token>`");
        let answer = get_as(&served.url(path), Some("not-a-jwt")).await;
        assert_unauthorized(path, &answer, "not a JWT");
    }
    for public in [
        "/api/openapi.json",
        "/",
        "/login",
        "/dashboard.js",
        "/dashboard.css",
    ] {
        let (status, _, _) = get_as(&served.url(public), None).await;
        assert_eq!(status, 200, "{public} is public");
    }
}

/// A token signed by `signer` with `claims`, in `algorithm`.
fn sign(claims: &Claims, signer_pem: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_ed_pem(signer_pem.as_bytes()).expect("a key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        claims,
        &key,
    )
    .expect("signed")
}

fn claims(sub: &str) -> Claims {
    let now = u64::try_from(Utc::now().timestamp()).expect("after 1970");
    Claims {
        sub: sub.to_owned(),
        role: Some(AccessRole::Auditor),
        exp: now + 3600,
        nbf: Some(now),
        iat: Some(now),
        iss: Some("wangge".to_owned()),
        aud: Some("wangge-api".to_owned()),
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn expired_forged_misaddressed_and_unsigned_tokens_are_refused_naming_why() {
    let week = Week::new();
    let served = week.serve().await;
    let url = served.url("/api/v1/cases");
    let ours = &crate::support::KEYS.0;
    let now = u64::try_from(Utc::now().timestamp()).expect("after 1970");

    let valid = sign(&claims("auditor-1"), ours);
    assert_eq!(
        get_as(&url, Some(&valid)).await.0,
        200,
        "the control token is accepted"
    );

    let expired = sign(
        &Claims {
            exp: now - 3600,
            ..claims("auditor-1")
        },
        ours,
    );
    assert_unauthorized("expired", &get_as(&url, Some(&expired)).await, "expired");

    let early = sign(
        &Claims {
            nbf: Some(now + 3600),
            ..claims("auditor-1")
        },
        ours,
    );
    assert_unauthorized(
        "not yet valid",
        &get_as(&url, Some(&early)).await,
        "not valid yet",
    );

    let (someone_elses_key, _) = generate_ed25519_pem().expect("a key");
    let forged = sign(&claims("auditor-1"), &someone_elses_key);
    assert_unauthorized("forged", &get_as(&url, Some(&forged)).await, "signature");

    let other_audience = sign(
        &Claims {
            aud: Some("another-api".to_owned()),
            ..claims("auditor-1")
        },
        ours,
    );
    assert_unauthorized(
        "audience",
        &get_as(&url, Some(&other_audience)).await,
        "audience",
    );

    let other_issuer = sign(
        &Claims {
            iss: Some("someone".to_owned()),
            ..claims("auditor-1")
        },
        ours,
    );
    assert_unauthorized("issuer", &get_as(&url, Some(&other_issuer)).await, "issuer");

    // `alg: none`, no signature: the classic.
    let payload = serde_json::to_vec(&claims("auditor-1")).expect("json");
    let unsigned = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(&payload)
    );
    assert_unauthorized(
        "alg none",
        &get_as(&url, Some(&unsigned)).await,
        "not a JWT",
    );

    // Algorithm confusion: HS256 "signed" with the public key as the shared secret.
    let public_pem = &crate::support::KEYS.1;
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("auditor-1"),
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()).expect("a secret"),
    )
    .expect("signed");
    assert_unauthorized(
        "alg confusion",
        &get_as(&url, Some(&confused)).await,
        "accepts EdDSA only",
    );

    // A grid role for someone the grid does not have: known signature, no scope.
    let stranger = token("mallory", Some(AccessRole::Supervisor));
    let (status, _, body) = get_as(&url, Some(&stranger)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("supervises no cell"),
        "{body}"
    );
}

#[tokio::test]
async fn a_grid_worker_sees_only_the_cases_they_hold_and_their_own_inbox() {
    let week = Week::realistic().await;
    week.caught_up().await;
    let served = week.serve().await;
    let all = crate::get_ok(&served.url("/api/v1/cases?limit=500")).await;
    let held = |worker: &str| -> Vec<String> {
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|case| case["assignee"] == worker)
            .map(|case| case["case_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Two workers who hold open cases this week.
    let mut holders: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|case| case["assignee"].as_str().map(str::to_owned))
        .filter(|assignee| assignee.starts_with("w-"))
        .collect();
    holders.sort();
    holders.dedup();
    let (worker, colleague) = (holders[0].clone(), holders[1].clone());
    assert!(
        !held(&worker).is_empty() && !held(&colleague).is_empty(),
        "both hold cases"
    );
    let mine = token(&worker, None);

    let (status, _, list) = get_as(&served.url("/api/v1/cases?limit=500"), Some(&mine)).await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["case_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, held(&worker), "exactly the cases they hold");

    let (status, _, body) = get_as(
        &served.url(&format!("/api/v1/cases?assignee={colleague}")),
        Some(&mine),
    )
    .await;
    assert_eq!(
        (status, &body["field"]),
        (403, &Value::from("assignee")),
        "{body}"
    );

    let theirs = &held(&colleague)[0];
    for suffix in ["", "/history", "/audit"] {
        let (status, _, body) = get_as(
            &served.url(&format!("/api/v1/cases/{theirs}{suffix}")),
            Some(&mine),
        )
        .await;
        assert_eq!(status, 403, "a colleague's case{suffix}: {body}");
    }
    let own = &held(&worker)[0];
    assert_eq!(
        get_as(
            &served.url(&format!("/api/v1/cases/{own}/history")),
            Some(&mine)
        )
        .await
        .0,
        200
    );

    assert_eq!(
        get_as(
            &served.url(&format!("/api/v1/workers/{worker}/inbox")),
            Some(&mine)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get_as(
            &served.url(&format!("/api/v1/workers/{colleague}/inbox")),
            Some(&mine)
        )
        .await
        .0,
        403
    );
    for report in [
        "/api/v1/board",
        "/api/v1/overdue",
        "/api/v1/indicators?from=2026-11-18&to=2026-11-24",
        "/metrics",
    ] {
        assert_eq!(
            get_as(&served.url(report), Some(&mine)).await.0,
            403,
            "{report}"
        );
    }
}

#[tokio::test]
async fn a_supervisor_of_cuiyuan_asking_for_wenxin_cases_is_refused_naming_the_cell() {
    let week = Week::realistic().await;
    week.caught_up().await;
    let served = week.serve().await;
    let supervisor = token(CUIYUAN_SUPERVISOR, None);

    let (status, _, body) = get_as(
        &served.url(&format!("/api/v1/cases?district={WENXIN}")),
        Some(&supervisor),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert_eq!(body["field"], "district");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains(WENXIN) && reason.contains("文新街道"),
        "{reason}"
    );
    // The same for a community or building of 文新街道, and for its board and indicators.
    for path in [
        format!("/api/v1/cases?building={}", BUILDINGS[6]),
        format!("/api/v1/board?district={WENXIN}"),
        format!("/api/v1/indicators?from=2026-11-18&to=2026-11-24&district={WENXIN}"),
    ] {
        assert_eq!(
            get_as(&served.url(&path), Some(&supervisor)).await.0,
            403,
            "{path}"
        );
    }

    // Without a filter, the list is 翠苑街道's: what the auditor sees with the filter.
    let (status, _, own) = get_as(&served.url("/api/v1/cases?limit=500"), Some(&supervisor)).await;
    assert_eq!(status, 200, "{own}");
    let expected =
        crate::get_ok(&served.url(&format!("/api/v1/cases?district={DISTRICT}&limit=500"))).await;
    assert!(!own["items"].as_array().unwrap().is_empty());
    assert_eq!(own["items"], expected["items"]);
    assert!(own["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|case| case["location"]["district"] == DISTRICT));

    // One of 文新街道's cases, by id: refused too.
    let wenxin =
        crate::get_ok(&served.url(&format!("/api/v1/cases?district={WENXIN}&limit=1"))).await;
    let case_id = wenxin["items"][0]["case_id"]
        .as_str()
        .expect("a 文新街道 case");
    assert_eq!(
        get_as(
            &served.url(&format!("/api/v1/cases/{case_id}")),
            Some(&supervisor)
        )
        .await
        .0,
        403
    );

    // The board without a filter: 翠苑街道's rows only.
    let (_, _, board) = get_as(
        &served.url("/api/v1/board?group=district"),
        Some(&supervisor),
    )
    .await;
    let codes: Vec<&str> = board
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec![DISTRICT]);
}

#[tokio::test]
async fn a_community_supervisor_sees_their_community_and_the_district_lead_their_district() {
    let week = Week::realistic().await;
    week.caught_up().await;
    let served = week.serve().await;
    let community = crate::support::COMMUNITY;
    let community_supervisor = token(&format!("sup-{community}"), None);
    let (status, _, own) = get_as(
        &served.url("/api/v1/cases?limit=500"),
        Some(&community_supervisor),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    let expected =
        crate::get_ok(&served.url(&format!("/api/v1/cases?community={community}&limit=500"))).await;
    assert_eq!(own["items"], expected["items"]);
    // Naming the district above is allowed, and still limited to the community.
    let (_, _, above) = get_as(
        &served.url(&format!("/api/v1/cases?district={DISTRICT}&limit=500")),
        Some(&community_supervisor),
    )
    .await;
    assert_eq!(above["items"], expected["items"]);

    let lead = token("lead-330106001-1", None);
    let (_, _, district) = get_as(&served.url("/api/v1/cases?limit=500"), Some(&lead)).await;
    let expected =
        crate::get_ok(&served.url(&format!("/api/v1/cases?district={DISTRICT}&limit=500"))).await;
    assert_eq!(district["items"], expected["items"]);
}

#[tokio::test]
async fn an_auditor_reads_every_route_and_can_write_nothing() {
    let week = Week::realistic().await;
    week.caught_up().await;
    let served = week.serve().await;
    let auditor = auditor_token();
    let client = reqwest::Client::new();
    for path in documented_paths() {
        let path = if path.contains("indicators")
            || path.contains("ranking")
            || path.contains("patrols")
        {
            format!("{path}?from=2026-11-18&to=2026-11-24")
        } else {
            path
        };
        if path.ends_with("/live") {
            let response = client
                .get(served.url(&path))
                .bearer_auth(&auditor)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
            continue;
        }
        let (status, _, body) = get_as(&served.url(&path), Some(&auditor)).await;
        assert!(
            status == 200 || (status == 404 && body["code"] == "not_found"),
            "{path}: {status} {body}"
        );
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            let response = client
                .request(method.clone(), served.url(&path))
                .bearer_auth(&auditor)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        }
    }
    assert_eq!(get_as(&served.url("/metrics"), Some(&auditor)).await.0, 200);
}

#[tokio::test]
async fn api_keys_are_scoped_shown_once_stored_hashed_and_revocable() {
    let week = Week::realistic().await;
    week.caught_up().await;
    let directory = tempfile::tempdir().unwrap();
    let store = Arc::new(ApiKeyFile::new(directory.path().join("keys.json")));
    let now = Utc::now();
    let (bi_key, bi) = new_api_key("bi-wenxin", AccessRole::District, Some(WENXIN), now).unwrap();
    let (prometheus_key, prometheus) =
        new_api_key("prometheus", AccessRole::Metrics, None, now).unwrap();
    let (hotline_key, hotline) = new_api_key("hotline", AccessRole::Auditor, None, now).unwrap();
    for record in [bi, prometheus, hotline] {
        store.insert(record).await.unwrap();
    }
    let stored = std::fs::read_to_string(store.path()).unwrap();
    assert!(
        !stored.contains(&bi_key) && !stored.contains(&hotline_key),
        "only hashes are stored"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        new_api_key("x", AccessRole::Supervisor, None, now).is_err(),
        "no person's role for a key"
    );
    assert!(
        new_api_key("x", AccessRole::District, None, now).is_err(),
        "a district key names its district"
    );
    let served = week.serve_with_api_keys(store.clone()).await;

    // The BI tool reads 文新街道's indicators, and nothing of 翠苑街道.
    let (status, _, _) = get_as(
        &served.url("/api/v1/indicators?from=2026-11-18&to=2026-11-24"),
        Some(&bi_key),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = get_as(
        &served.url(&format!("/api/v1/cases?district={DISTRICT}")),
        Some(&bi_key),
    )
    .await;
    assert_eq!(
        (status, &body["field"]),
        (403, &Value::from("district")),
        "{body}"
    );
    let (_, _, cases) = get_as(&served.url("/api/v1/cases?limit=500"), Some(&bi_key)).await;
    let expected =
        crate::get_ok(&served.url(&format!("/api/v1/cases?district={WENXIN}&limit=500"))).await;
    assert_eq!(cases["items"], expected["items"]);

    // Prometheus reads /metrics and nothing else.
    assert_eq!(
        get_as(&served.url("/metrics"), Some(&prometheus_key))
            .await
            .0,
        200
    );
    assert_eq!(
        get_as(&served.url("/api/v1/cases"), Some(&prometheus_key))
            .await
            .0,
        403
    );

    // The hotline reads everything until it is revoked; then it is refused at once.
    assert_eq!(
        get_as(&served.url("/api/v1/cases"), Some(&hotline_key))
            .await
            .0,
        200
    );
    assert!(store.revoke("hotline", Utc::now()).await.unwrap());
    let answer = get_as(&served.url("/api/v1/cases"), Some(&hotline_key)).await;
    assert_unauthorized("revoked key", &answer, "revoked");
    let answer = get_as(&served.url("/api/v1/cases"), Some("wk_made-up-key")).await;
    assert_unauthorized("unknown key", &answer, "unknown API key");
}

#[tokio::test]
async fn api_keys_in_postgresql_are_created_listed_found_and_revoked() {
    use wangge_projections::postgres::api_keys::PostgresApiKeys;
    let database = wangge_testkit::TestDatabase::create().await;
    let config = wangge_projections::postgres::pool::parse_url(&database.url()).unwrap();
    wangge_projections::postgres::schema::migrate(&config)
        .await
        .unwrap();
    let store = PostgresApiKeys::new(wangge_projections::postgres::pool::pool(&config, 2).unwrap());
    let (key, record) =
        new_api_key("kiosk", AccessRole::District, Some(DISTRICT), Utc::now()).unwrap();
    store.insert(record.clone()).await.unwrap();
    assert!(
        store.insert(record.clone()).await.is_err(),
        "names are unique"
    );
    let found = store
        .find_by_hash(&wangge_projections::http::auth::hash_api_key(&key))
        .await
        .unwrap()
        .expect("found by its hash");
    assert_eq!(
        (found.role, found.district.as_deref()),
        (AccessRole::District, Some(DISTRICT))
    );
    assert!(database
        .rows("api_keys")
        .await
        .iter()
        .all(|row| !row.contains(&key)));
    assert!(store.revoke("kiosk", Utc::now()).await.unwrap());
    assert!(
        !store.revoke("kiosk", Utc::now()).await.unwrap(),
        "revoked once"
    );
    assert!(store.list().await.unwrap()[0].revoked_at.is_some());
    assert!(store.revoke("nobody", Utc::now()).await.is_err());
}
