//! `GET /metrics` scraped from the real binary, as Prometheus would, after real work
//! on simulated hosts (no engine needed).

mod common;

use reqwest::{Method, StatusCode};
use serde_json::json;

use common::serve::ServeProcess;
use common::unique;

/// The value of the sample `name{labels}` (labels in the exposition's order), if any.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let matches = if labels.is_empty() {
            rest.is_empty()
        } else {
            labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        };
        matches.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_applies_releases_clusters_and_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("pool.db").display());
    let serve = ServeProcess::start(
        &db,
        &[
            ("POOLMANAGER_RECONCILE_INTERVAL", "0"),
            ("POOLMANAGER_METRICS_TOKEN", "scraper-token"),
        ],
    )
    .await;
    let host = json!({"name": unique("sim"), "kind": "sim", "endpoint": format!("sim://{}", unique("m")),
                      "capacity": 3, "autofill": false});
    let (status, host) = serve.admin(Method::POST, "/hosts", Some(host)).await;
    assert_eq!(status, StatusCode::CREATED, "{host}");
    let host_id = host["id"].as_str().expect("host id");
    let bp = unique("bp");
    let blueprint =
        json!({"name": bp, "nodes": [{"name": "vp0", "image": "busybox", "ports": {"web": "80/tcp"}}]});
    let (status, body) = serve.admin(Method::POST, "/blueprints", Some(blueprint)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serve.fill(host_id).await;
    for user in ["ann", "ben"] {
        let (status, c) = serve
            .user(
                Method::POST,
                "/apply",
                Some(json!({"user_id": user, "blueprint": bp})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
    }
    let (status, _) = serve
        .user(Method::POST, "/release", Some(json!({"user_id": "ann"})))
        .await;
    assert_eq!(status, StatusCode::OK);

    let http = reqwest::Client::new();
    let scrape = |token: Option<&'static str>| {
        let mut req = http.get(format!("{}/metrics", serve.api.base.trim_end_matches("/api/v1")));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let denied = scrape(None).await.expect("scrape");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let denied = scrape(Some(common::USER)).await.expect("scrape");
    assert_eq!(
        denied.status(),
        StatusCode::UNAUTHORIZED,
        "the user token does not read metrics"
    );
    let answer = scrape(Some("scraper-token")).await.expect("scrape");
    assert_eq!(answer.status(), StatusCode::OK);
    let content_type = answer.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = answer.text().await.expect("text");

    assert_eq!(
        sample(&text, "poolmanager_applies_total", &[("outcome", "served")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "poolmanager_releases_total", &[("reason", "release")]),
        Some(1.0),
        "{text}"
    );
    let applied_count = sample(
        &text,
        "poolmanager_apply_duration_seconds_count",
        &[("outcome", "served")],
    );
    assert_eq!(applied_count, Some(2.0), "{text}");
    assert!(
        sample(
            &text,
            "poolmanager_apply_duration_seconds_bucket",
            &[("outcome", "served"), ("le", "+Inf")]
        ) == Some(2.0),
        "the apply latency is a histogram: {text}"
    );
    assert_eq!(
        sample(
            &text,
            "poolmanager_cluster_create_duration_seconds_count",
            &[("outcome", "ready")]
        )
        .map(|n| n >= 3.0),
        Some(true),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "poolmanager_operation_duration_seconds_count",
            &[("kind", "fill"), ("status", "succeeded")]
        ),
        Some(1.0),
        "{text}"
    );
    let applied = sample(
        &text,
        "poolmanager_clusters",
        &[("status", "applied"), ("blueprint", &bp)],
    );
    assert_eq!(applied, Some(1.0), "ben still holds one: {text}");
    assert_eq!(
        sample(&text, "poolmanager_hosts", &[("status", "active")]),
        Some(1.0),
        "{text}"
    );
    for operation in ["create_host", "create_blueprint"] {
        assert_eq!(
            sample(
                &text,
                "poolmanager_http_requests_total",
                &[("operation", operation), ("status", "201")]
            ),
            Some(1.0),
            "HTTP requests are counted by operation: {text}"
        );
    }
}
