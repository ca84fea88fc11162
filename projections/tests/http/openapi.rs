//! The OpenAPI document is generated from the handlers, served, and committed.

use std::path::Path;

use wangge_projections::http::openapi::{openapi, render};

use crate::get_ok;
use crate::support::Week;

const REGENERATE: &str =
    "regenerate with `cargo run -p wangge-projections --bin generate-openapi` and commit the result";

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

#[test]
fn the_committed_document_is_the_one_the_handlers_generate() {
    let committed = std::fs::read_to_string(committed_path())
        .unwrap_or_else(|error| panic!("projections/openapi.json: {error}; {REGENERATE}"));
    let generated = render(&openapi());
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |n| format!("line {}", n + 1));
        panic!("projections/openapi.json has drifted from the handlers (first difference at {line}); {REGENERATE}");
    }
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(render(&openapi()), render(&openapi()));
}

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_every_documented_path_is_routed() {
    let week = Week::new();
    let served = week.serve().await;
    let document = get_ok(&served.url("/api/openapi.json")).await;
    let generated: serde_json::Value = serde_json::from_str(&render(&openapi())).unwrap();
    assert_eq!(document, generated);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 17, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, item) in paths {
        assert!(item.get("get").is_some(), "{path} is read with GET");
        let concrete = path
            .replace("{case_id}", "01936b2e-9c1d-7c3f-8a55-5c3f00000001")
            .replace("{worker_id}", "w-330106001001001");
        let response = crate::support::authorized_get(served.url(&concrete))
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 404 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_ne!(
                body["code"], "unknown_route",
                "{path} is documented but not routed"
            );
        }
    }
    // Every refusal is documented with the error body.
    let cases = &paths["/api/v1/cases"]["get"];
    assert!(
        cases["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("ApiErrorBody")
    );
    let parameters: Vec<&str> = cases["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(parameters.contains(&"reported_from") && parameters.contains(&"cursor"));
}

/// Every `$ref` in the document points at something the document defines (it once referred to
/// `BoardGroup` and `IndicatorGroup` without defining them), and every operation is complete.
#[test]
fn every_reference_in_the_document_resolves_and_every_operation_is_complete() {
    let document: serde_json::Value = serde_json::from_str(&render(&openapi())).unwrap();
    fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields {
                    match (key.as_str(), field) {
                        ("$ref", serde_json::Value::String(target)) => out.push(target),
                        _ => refs(field, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
            _ => {}
        }
    }
    let mut targets = Vec::new();
    refs(&document, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} is not a local reference"));
        assert!(
            document.pointer(pointer).is_some(),
            "{target} is referred to but not defined"
        );
    }
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(operation_ids.insert(id.to_owned()), "{id} is used twice");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
        }
    }
}

/// The committed document read by an independent OpenAPI 3.1 parser (`oas3`): it parses as
/// OpenAPI 3.1 into typed objects, every reference resolves through the parser, and every
/// operation states its security (the JWT and the API key schemes, both defined) and
/// documents its 401. (No crate ships the OAS 3.1 JSON Schema; a typed parse plus the
/// reference walk above is the check.)
#[test]
fn the_document_is_valid_openapi_31_and_every_operation_states_its_security() {
    let text = std::fs::read_to_string(committed_path()).unwrap();
    let spec = oas3::from_json(&text).unwrap_or_else(|error| panic!("not OpenAPI 3.1: {error}"));
    spec.validate_version().expect("an OpenAPI 3.1 version");
    let components = spec.components.as_ref().expect("components");
    for scheme in ["bearerAuth", "apiKey"] {
        let scheme = components.security_schemes[scheme]
            .resolve(&spec)
            .unwrap_or_else(|error| panic!("{scheme}: {error}"));
        assert!(
            matches!(scheme, oas3::spec::SecurityScheme::Http { ref scheme, .. } if scheme == "bearer"),
            "{scheme:?}"
        );
    }
    let mut operations = 0;
    for (path, method, operation) in spec.operations() {
        operations += 1;
        let names: Vec<&String> = operation.security.iter().flat_map(|r| r.0.keys()).collect();
        assert!(
            names.iter().any(|n| *n == "bearerAuth") && names.iter().any(|n| *n == "apiKey"),
            "{method} {path} states no security: {names:?}"
        );
        let responses = operation.responses.as_ref().expect("responses");
        assert!(
            responses.contains_key("401"),
            "{method} {path} documents no 401"
        );
        for (status, response) in responses {
            let response = response
                .resolve(&spec)
                .unwrap_or_else(|error| panic!("{method} {path} {status}: {error}"));
            for media in response.content.values() {
                if let Some(schema) = &media.schema {
                    schema
                        .resolve(&spec)
                        .unwrap_or_else(|error| panic!("{method} {path} {status}: {error}"));
                }
            }
        }
        for parameter in &operation.parameters {
            parameter
                .resolve(&spec)
                .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        }
    }
    assert!(operations >= 14);
}
