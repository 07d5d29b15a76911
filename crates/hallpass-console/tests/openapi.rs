//! `openapi.json` and the router agree: every route of the machine interface is in the
//! document with each method it answers, every operation in the document is routed (not a 404
//! or 405), and the document is served without a login.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::{Router, body};
use hallpass_console::{ConsoleState, Metrics, OPENAPI, api_paths, router_with_metrics};
use hallpass_store::{Store, new_id};
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

struct Console {
    dir: std::path::PathBuf,
    app: Router,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn console() -> Console {
    let dir = std::env::temp_dir().join(format!(
        "hallpass-console-openapi-{}-{}",
        std::process::id(),
        new_id()
    ));
    let store = Store::open(&dir).await.unwrap();
    let state = ConsoleState {
        spool: store.spool().clone(),
        store,
        rewrite: Arc::new(|_: &[u8]| None),
        wake: Arc::new(tokio::sync::Notify::new()),
        decided: Arc::new(|_, _| Box::pin(async {})),
        inspect: Arc::new(|_, _, _| hallpass_console::Inspection::default()),
        names: Arc::new(|id: &str| id.to_string()),
        secure_cookies: false,
        organisation: "Lumen Learning Trust".into(),
        trusted_proxies: Vec::new(),
    };
    let metrics = Metrics {
        render: Arc::new(|| "# nothing yet\n".to_string()),
        public: false,
    };
    Console {
        dir,
        app: router_with_metrics(state, Some(metrics)),
    }
}

impl Console {
    /// `method path` without credentials; the status.
    async fn status(&self, method: &str, path: &str) -> StatusCode {
        let path = path
            .replace("{id}", "01J9ZQ6W3X4Y5Z6A7B8C9D0E1F")
            .replace("{name}", "dpo1");
        let mut req = Request::builder()
            .method(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap())
            .uri(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ));
        self.app.clone().oneshot(req).await.unwrap().status()
    }
}

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

#[test]
fn the_document_is_openapi_3_1_and_its_references_resolve() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // Every local $ref names something in the document.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local references only");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[tokio::test]
async fn every_api_route_is_in_the_document_with_each_method_it_answers() {
    let c = console().await;
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    for path in api_paths() {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is routed but not in openapi.json"));
        for method in METHODS {
            let status = c.status(method, path).await;
            let routed =
                status != StatusCode::METHOD_NOT_ALLOWED && status != StatusCode::NOT_FOUND;
            assert_eq!(
                routed,
                item.get(method).is_some(),
                "{} {path}: the router answers {status}, the document {}",
                method.to_uppercase(),
                if item.get(method).is_some() {
                    "has it"
                } else {
                    "does not"
                }
            );
        }
    }
}

#[tokio::test]
async fn every_operation_in_the_document_is_routed() {
    let c = console().await;
    let doc = document();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            let status = c.status(method, path).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{} {path} is in openapi.json but answers {status}",
                method.to_uppercase()
            );
            operations += 1;
        }
    }
    assert!(operations >= 15, "{operations} operations");
}

#[tokio::test]
async fn the_document_is_served_without_a_login_and_the_data_is_not() {
    let c = console().await;
    let mut req = Request::get("/api/openapi.json")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(
        "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
    ));
    let r = c.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    assert_eq!(bytes, OPENAPI.as_bytes());
    assert_eq!(c.status("get", "/api/held").await, StatusCode::UNAUTHORIZED);
    assert_eq!(c.status("get", "/metrics").await, StatusCode::UNAUTHORIZED);
}
