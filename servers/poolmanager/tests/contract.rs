//! The REST contract: the committed spec is the served one, the spec keeps its rules,
//! and the HTTP edge (body limit, content types, methods, unknown fields, events)
//! answers as the spec says.

mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::contract::{spec, validate};
use common::{TestServer, ADMIN, USER};

const REGENERATE: &str =
    "cargo build -p poolmanager && target/debug/poolmanager openapi > openapi.json.new && mv openapi.json.new docs/openapi.json";

#[test]
fn the_committed_spec_is_the_served_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let served = poolmanager::api::spec();
    assert!(
        committed.trim_end() == served.trim_end(),
        "docs/openapi.json differs from the spec the server serves; review the change and run `{REGENERATE}`"
    );
}

/// Every operation, by id, as `METHOD path`.
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("list_hosts", "get", "/hosts"),
    ("get_host", "get", "/hosts/{id}"),
    ("create_host", "post", "/hosts"),
    ("update_host", "patch", "/hosts/{id}"),
    ("delete_host", "delete", "/hosts/{id}"),
    ("fill_host", "post", "/hosts/{id}/fill"),
    ("clean_host", "post", "/hosts/{id}/clean"),
    ("reset_host", "post", "/hosts/{id}/reset"),
    ("list_blueprints", "get", "/blueprints"),
    ("get_blueprint", "get", "/blueprints/{name}"),
    ("create_blueprint", "post", "/blueprints"),
    ("update_blueprint", "patch", "/blueprints/{name}"),
    ("create_blueprint_version", "post", "/blueprints/{name}/versions"),
    ("get_blueprint_rollout", "get", "/blueprints/{name}/rollout"),
    ("delete_blueprint", "delete", "/blueprints/{name}"),
    ("list_clusters", "get", "/clusters"),
    ("get_cluster", "get", "/clusters/{id}"),
    ("create_cluster", "post", "/clusters"),
    ("delete_cluster", "delete", "/clusters/{id}"),
    ("start_cluster", "post", "/clusters/{id}/start"),
    ("stop_cluster", "post", "/clusters/{id}/stop"),
    ("restart_cluster", "post", "/clusters/{id}/restart"),
    ("renew_lease", "post", "/clusters/{id}/renew"),
    ("apply", "post", "/apply"),
    ("release", "post", "/release"),
    ("get_stats", "get", "/stats"),
    ("get_stats_history", "get", "/stats/history"),
    ("list_leases", "get", "/leases"),
    ("list_operations", "get", "/operations"),
    ("get_operation", "get", "/operations/{id}"),
    ("stream_events", "get", "/events"),
    ("get_health", "get", "/health"),
];

fn operations() -> impl Iterator<Item = (&'static str, &'static Value)> {
    spec()["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(_, item)| item.as_object().expect("path item").values())
        .map(|op| (op["operationId"].as_str().expect("every operation has an id"), op))
}

#[test]
fn every_operation_has_its_id_and_only_its_statuses() {
    let ids: Vec<&str> = operations().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), OPERATIONS.len(), "{ids:?}");
    for (id, method, path) in OPERATIONS {
        let op = &spec()["paths"][path][method];
        assert_eq!(op["operationId"], *id, "{method} {path}");
    }
    for (id, op) in operations() {
        let statuses: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
        let has_503 = statuses.iter().any(|s| *s == "503");
        let may_be_unavailable = [
            "apply",
            "create_host",
            "delete_host",
            "delete_cluster",
            "start_cluster",
            "stop_cluster",
            "restart_cluster",
        ];
        assert_eq!(has_503, may_be_unavailable.contains(&id), "{id}: {statuses:?}");
        if has_503 {
            assert_eq!(
                op["responses"]["503"]["headers"]["Retry-After"]["required"], true,
                "{id}"
            );
        }
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            statuses.iter().any(|s| *s == "401"),
            "{id}: 401 where a token is needed"
        );
        if let Some(body) = op.get("requestBody") {
            for status in ["400", "413", "415"] {
                assert!(
                    statuses.iter().any(|s| *s == status),
                    "{id} takes a body: {status}"
                );
            }
            let optional = [
                "fill_host",
                "start_cluster",
                "stop_cluster",
                "restart_cluster",
                "renew_lease",
            ];
            assert_eq!(body["required"] == false, optional.contains(&id), "{id}");
        }
    }
}

#[test]
fn schemas_are_named_as_users_say_them_and_never_copied() {
    let text = poolmanager::api::spec();
    assert!(!text.contains("allOf"), "a $ref wrapped in allOf makes a copy");
    assert!(
        !text.contains("nullable"),
        "absent values are left out, never null"
    );
    let schemas = spec()["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Host",
        "NewHost",
        "HostPatch",
        "Blueprint",
        "NewBlueprint",
        "NodeSpec",
        "Cluster",
        "Error",
        "Lease",
        "Operation",
        "Stats",
        "Event",
        "ErrorCode",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    for name in schemas.keys() {
        assert!(!name.ends_with("Dto") && !name.contains('_'), "{name}");
    }
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in poolcore::Error::CODES.iter().chain(&[
        "unauthorized",
        "payload_too_large",
        "unsupported_media_type",
        "method_not_allowed",
    ]) {
        assert!(codes.contains(code), "{code}");
    }
}

/// Every number a request may carry is bounded, and the bounds are the pool's.
#[test]
fn request_numbers_are_bounded_by_the_pool_limits() {
    use poolcore::limits;
    let schemas = &spec()["components"]["schemas"];
    let bound = |schema: &str, field: &str| {
        let f = &schemas[schema]["properties"][field];
        (f["minimum"].as_f64(), f["maximum"].as_f64())
    };
    assert_eq!(
        bound("NewHost", "capacity"),
        (Some(0.0), Some(f64::from(limits::CAPACITY_MAX)))
    );
    assert_eq!(
        bound("Apply", "ttl_seconds"),
        (Some(1.0), Some(limits::TTL_MAX_SECONDS as f64))
    );
    assert_eq!(
        bound("HealthCheck", "retries").1,
        Some(f64::from(limits::HEALTH_RETRIES_MAX))
    );
    assert_eq!(
        schemas["NodeSpec"]["properties"]["command"]["maxItems"],
        limits::COMMAND_MAX
    );
    assert_eq!(
        schemas["NewBlueprint"]["properties"]["nodes"]["maxItems"],
        limits::NODES_MAX
    );
    assert_eq!(
        schemas["NewHost"]["properties"]["name"]["pattern"],
        limits::NAME_PATTERN
    );
    assert_eq!(schemas["Labels"]["maxProperties"], limits::LABELS_MAX);
    for (id, op) in operations() {
        for param in op["parameters"].as_array().into_iter().flatten() {
            if param["schema"]["type"] == "integer" {
                let (min, max) = (&param["schema"]["minimum"], &param["schema"]["maximum"]);
                assert!(min.is_number() && max.is_number(), "{id} {}", param["name"]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_edge_answers_as_the_spec_says() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let url = |path: &str| format!("{}{path}", s.base);

    // 413 for a large body, declared or chunked, with the JSON error body.
    let big = format!(
        "{{\"user_id\": \"u\", \"metadata\": {{\"k\": \"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let resp = s
        .http
        .post(url("/apply"))
        .bearer_auth(USER)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["code"],
        "payload_too_large"
    );
    let answer = post_chunked(&s.base, "/apply", big.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "chunked, without Content-Length: {answer}"
    );
    assert!(answer.contains("payload_too_large"), "{answer}");

    // 415 for a body that is not JSON; 400 for a required body left out.
    let resp = s
        .http
        .post(url("/apply"))
        .bearer_auth(USER)
        .header("content-type", "text/plain")
        .body("user_id=u")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["code"],
        "unsupported_media_type"
    );
    let resp = s
        .http
        .post(url("/apply"))
        .bearer_auth(USER)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Unknown fields are refused, named; a long id is not echoed back.
    let (status, err) = s
        .admin(
            Method::POST,
            "/blueprints",
            Some(json!({"name": "b", "nodes": [{"name": "a", "image": "x"}], "endpoint": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("endpoint")),
        "{err}"
    );
    let (status, err) = s
        .admin(Method::GET, &format!("/clusters/{}", "x".repeat(5000)), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["message"].as_str().is_some_and(|m| m.len() < 400), "{err}");

    let (status, err) = s
        .user(
            Method::POST,
            "/apply",
            Some(json!({"user_id": "u", "blueprint": null})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "null is refused: {err}");
    let (status, leases) = s.admin(Method::GET, "/leases?user_id=nobody-at-all", None).await;
    assert_eq!(
        (status, &leases["total"]),
        (StatusCode::OK, &json!(0)),
        "{leases}"
    );

    // 405 names the methods a path takes.
    for method in [Method::TRACE, Method::PUT] {
        let resp = s
            .http
            .request(method.clone(), url("/hosts"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        let allow = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            allow.contains("GET") && allow.contains("POST"),
            "{method}: Allow {allow:?}"
        );
        assert_eq!(
            resp.json::<Value>().await.expect("json")["code"],
            "method_not_allowed"
        );
    }

    // The new reads.
    let (status, ops) = s.admin(Method::GET, "/operations?kind=fill&limit=5", None).await;
    assert_eq!(
        (status, &ops["limit"], &ops["offset"]),
        (StatusCode::OK, &json!(5), &json!(0)),
        "{ops}"
    );
    let (status, _) = s.admin(Method::GET, "/operations?status=bogus", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, history) = s
        .admin(
            Method::GET,
            "/stats/history?bucket=1&since=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let since =
        chrono::DateTime::parse_from_rfc3339(history["since"].as_str().expect("since")).expect("date");
    assert!(
        chrono::Utc::now().signed_duration_since(since) <= chrono::Duration::seconds(1001),
        "at most 1000 buckets: {history}"
    );
    let (status, _) = s.admin(Method::GET, "/stats/history?bucket=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The event stream: `text/event-stream`, each `data:` an Event.
    let resp = s
        .http
        .get(url("/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .is_ok_and(|ct| ct.starts_with("text/event-stream")));
    let host = s.add_host(1, false).await;
    let mut resp = resp;
    let mut text = String::new();
    let data = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let chunk = resp.chunk().await.expect("chunk").expect("stream open");
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(line) = text.lines().find(|l| l.starts_with("data:")) {
                return line.trim_start_matches("data:").trim().to_owned();
            }
        }
    })
    .await
    .expect("an event within 30 s");
    let event: Value = serde_json::from_str(&data).expect("event JSON");
    let mut errors = Vec::new();
    validate(
        &json!({"$ref": "#/components/schemas/Event"}),
        &event,
        "$",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}: {event}");
    assert_eq!(event["kind"], "host", "{event}");
    s.remove_host(&host).await;
}

/// POSTs `body` in chunks (`Transfer-Encoding: chunked`, no `Content-Length`) with the
/// user token over a plain socket; returns the answer as text.
async fn post_chunked(base: &str, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = base.strip_prefix("http://").expect("http base");
    let (authority, prefix) = rest.split_once('/').expect("base path");
    let mut stream = tokio::net::TcpStream::connect(authority).await.expect("connect");
    let head = format!(
        "POST /{prefix}{path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {USER}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for chunk in body.chunks(64 << 10) {
        let sent = async {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            stream.write_all(chunk).await?;
            stream.write_all(b"\r\n").await
        };
        // The server may answer and close before the whole body is sent.
        if sent.await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
