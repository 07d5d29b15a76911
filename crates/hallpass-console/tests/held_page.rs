//! The held message's page and its `.eml` download, through the router (no socket), on a real
//! store in a temporary folder. The engine's part comes through the `inspect` hook; here a
//! stand-in hides every digit, as the engine would hide the values, and says what it was given.
//! Identifiers are synthetic (the never-issued 999 range and the documentation example).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use hallpass_console::{Attachment, ConsoleState, Inspect, Inspection, Match, router};
use hallpass_store::{
    AuditFilter, CopyKind, FindingRecord, NewCopy, NewMessage, Role, Store, new_id,
};
use serde_json::Value;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const CLIENT: &str = "192.0.2.10";
const T0: i64 = 1_795_425_242_000;

/// An HTML body with everything a preview must not carry, an NHS number split by markup, and a
/// CSV attachment.
const HTML_MESSAGE: &str = "From: Ann Teacher <teacher@lumen.sch.uk>\r\n\
To: parent@example.com\r\n\
Subject: Referral 943 476 5919\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><title>t</title><style>body{background:url(https://example.com/bg.png)}</style>\
<script>alert('x')</script></head><body><p onclick=\"steal()\">NHS no. <b>943</b> 476 5919 \
for Sam</p><img src=\"https://example.com/track.png\"><img src=\"http://example.com/t2.gif\">\
<form action=\"https://example.com/f\"><input name=\"q\" value=\"v\"></form>\
<a href=\"https://example.com/phish\">click here</a></body></html>\r\n\
--b1\r\n\
Content-Type: text/csv; name=\"list.csv\"\r\n\
Content-Disposition: attachment; filename=\"list.csv\"\r\n\
\r\n\
NHS number,Name\r\n\
9434765919,Sam\r\n\
--b1--\r\n";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the stand-in engine was given.
type Given = Arc<Mutex<Vec<String>>>;

struct Page {
    _dir: TempDir,
    store: Store,
    app: Router,
    token: String,
    given: Given,
}

/// The stand-in engine: every digit of every text hidden, and these matches and attachments.
fn stand_in(matches: Vec<Match>, attachments: Vec<Attachment>, given: Given) -> Inspect {
    Arc::new(move |_raw, _envelope, texts| {
        given.lock().unwrap().extend(texts.iter().cloned());
        Inspection {
            matches: matches.clone(),
            attachments: attachments.clone(),
            masked: texts
                .iter()
                .map(|t| {
                    t.chars()
                        .map(|c| if c.is_ascii_digit() { '*' } else { c })
                        .collect()
                })
                .collect(),
            partial: false,
        }
    })
}

fn nhs_match(i: usize) -> Match {
    Match {
        detector: "uk_nhs_number".into(),
        location: "body".into(),
        masked: format!("*******{:03}", 919 + i),
        before: "…for the clinic NHS no. ".into(),
        after: " for Sam on…".into(),
        confidence: "high".into(),
        context: Some("nhs no".into()),
    }
}

async fn page_with(name: &str, inspect: impl FnOnce(Given) -> Inspect) -> Page {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "hallpass-held-page-{name}-{}-{}",
        std::process::id(),
        new_id()
    )));
    let store = Store::open(&dir.0).await.unwrap();
    store.user_add("dpo1", Role::Dpo, PASSWORD).await.unwrap();
    store
        .user_add("relay1", Role::Relay, PASSWORD)
        .await
        .unwrap();
    let token = store.user_new_token("dpo1").await.unwrap();
    let given: Given = Arc::default();
    let state = ConsoleState {
        spool: store.spool().clone(),
        store: store.clone(),
        rewrite: Arc::new(|_| None),
        wake: Arc::new(tokio::sync::Notify::new()),
        decided: Arc::new(|_, _| Box::pin(async {})),
        inspect: inspect(given.clone()),
        names: Arc::new(|id: &str| match id {
            "uk_nhs_number" => "NHS numbers".to_string(),
            other => other.to_string(),
        }),
        secure_cookies: false,
        organisation: "Lumen Learning Trust".into(),
        trusted_proxies: Vec::new(),
    };
    Page {
        _dir: dir,
        app: router(state),
        store,
        token,
        given,
    }
}

async fn page(name: &str) -> Page {
    page_with(name, |given| {
        stand_in(
            vec![nhs_match(0)],
            vec![Attachment {
                location: "attachment:list.csv".into(),
                kind: "csv".into(),
                size: 33,
                encrypted: false,
                scanned: true,
                unscannable: None,
            }],
            given,
        )
    })
    .await
}

impl Page {
    /// Holds `bytes` (spool file + store record); the held copy's id.
    async fn hold(&self, bytes: &[u8]) -> String {
        let msg = new_id();
        let copy = new_id();
        self.store.spool().write(&msg, bytes).await.unwrap();
        self.store
            .accept(&NewMessage {
                id: msg.clone(),
                received_ms: T0,
                sender: "teacher@lumen.sch.uk".into(),
                message_id: None,
                size: bytes.len() as u64,
                spool_ids: vec![msg.clone()],
                copies: vec![NewCopy {
                    id: copy.clone(),
                    kind: CopyKind::Hold,
                    spool_id: msg,
                    recipients: vec!["parent@example.com".into()],
                    rules: vec!["personal_data_external".into()],
                    findings: vec![FindingRecord {
                        detector: "uk_nhs_number".into(),
                        location: "body".into(),
                        count: 2,
                        confidence: "high".into(),
                    }],
                }],
            })
            .await
            .unwrap();
        copy
    }

    async fn get(&self, uri: &str, auth: Option<(&str, &str)>) -> Response {
        let mut b = Request::builder().method(Method::GET).uri(uri);
        if let Some((name, value)) = auth {
            b = b.header(name, value);
        }
        let mut r = b.body(Body::empty()).unwrap();
        r.extensions_mut().insert(ConnectInfo::<SocketAddr>(
            format!("{CLIENT}:50000").parse().unwrap(),
        ));
        self.app.clone().oneshot(r).await.unwrap()
    }

    async fn get_as_dpo(&self, uri: &str) -> Response {
        let bearer = format!("Bearer {}", self.token);
        self.get(uri, Some(("authorization", &bearer))).await
    }

    async fn text(&self, uri: &str) -> String {
        let r = self.get_as_dpo(uri).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        body_text(r).await
    }

    async fn login(&self) -> String {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({"username": "dpo1", "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        r.extensions_mut().insert(ConnectInfo::<SocketAddr>(
            format!("{CLIENT}:50000").parse().unwrap(),
        ));
        let r = self.app.clone().oneshot(r).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }
}

async fn body_bytes(r: Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec()
}

async fn body_text(r: Response) -> String {
    String::from_utf8(body_bytes(r).await).unwrap()
}

/// The ways the test's NHS number could appear unmasked.
fn assert_no_value(html: &str) {
    for v in ["9434765919", "943 476 5919", "943</b> 476 5919", "943 476"] {
        assert!(!html.contains(v), "{v:?} shown unmasked");
    }
}

#[tokio::test]
async fn matches_show_masked_in_their_context() {
    let p = page("context").await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert!(
        html.contains("…for the clinic NHS no. <mark>*******919</mark> for Sam on…"),
        "{html}"
    );
    // The stored findings are still listed.
    assert!(
        html.contains(r#"<td>NHS numbers <code class="id">uk_nhs_number</code></td>"#),
        "{html}"
    );

    let r = p.get_as_dpo(&format!("/api/held/{id}")).await;
    let v: Value = serde_json::from_str(&body_text(r).await).unwrap();
    let m = &v["matches"][0];
    assert_eq!(m["detector"], "uk_nhs_number");
    assert_eq!(m["where"], "body");
    assert_eq!(m["masked"], "*******919");
    assert_eq!(m["before"], "…for the clinic NHS no. ");
    assert_eq!(m["after"], " for Sam on…");
    assert_eq!(m["context"], "nhs no");
    assert_eq!(v["matches_more"], 1, "two stored, one explained");
    assert!(v["note"].is_null());
}

#[tokio::test]
async fn the_preview_is_sanitised_and_masked_and_so_are_the_headers() {
    let p = page("preview").await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    if std::env::var_os("DUMP").is_some() {
        std::fs::write("/tmp/held_page.html", &html).unwrap();
    }
    assert_no_value(&html);
    for bad in [
        "<script",
        "alert(",
        "<style",
        "steal()",
        "onclick",
        "example.com/track.png",
        "example.com/t2.gif",
        "example.com/bg.png",
        "example.com/f",
        "name=\"q\"",
        "example.com/phish",
        "<img",
        "<iframe",
    ] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    // The body's text is there, masked where it sits; the split value too.
    assert!(
        html.contains("<p>NHS no. <b>***</b> *** **** for Sam</p>"),
        "{html}"
    );
    assert!(html.contains("click here"), "a link's text stays");
    assert!(
        html.contains("Referral *** *** ****"),
        "the subject, masked"
    );
    // The engine saw the text as a person reads it: the split value whole.
    let given = p.given.lock().unwrap().clone();
    assert!(
        given[0].contains("NHS no. 943 476 5919 for Sam"),
        "{given:?}"
    );

    let r = p.get_as_dpo(&format!("/api/held/{id}")).await;
    let text = body_text(r).await;
    assert_no_value(&text);
    let v: Value = serde_json::from_str(&text).unwrap();
    let subject = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "Subject")
        .unwrap();
    assert_eq!(subject["value"], "Referral *** *** ****");
}

#[tokio::test]
async fn attachments_are_listed_with_type_size_and_flags() {
    let p = page("attachments").await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert!(
        html.contains(
            "<tr><td>list.csv</td><td>csv</td><td class=\"num\">33 bytes</td>\n      \
             <td>no</td>\n      <td>yes</td></tr>"
        ),
        "{html}"
    );
    let r = p.get_as_dpo(&format!("/api/held/{id}")).await;
    let v: Value = serde_json::from_str(&body_text(r).await).unwrap();
    assert_eq!(
        v["attachments"][0],
        serde_json::json!({"name": "list.csv", "type": "csv", "size": 33,
            "encrypted": false, "scanned": true, "reason": null})
    );
}

#[tokio::test]
async fn a_plain_text_body_is_shown_as_text_and_long_ones_are_cut() {
    let p = page("plain").await;
    let body = format!(
        "Hello <b>not markup</b>, NHS no. 943 476 5919.\r\n{}",
        "All quiet on the western front. ".repeat(1000)
    );
    let raw = format!(
        "From: teacher@lumen.sch.uk\r\nTo: parent@example.com\r\nSubject: note\r\n\r\n{body}\r\n"
    );
    let id = p.hold(raw.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert_no_value(&html);
    assert!(
        html.contains("Hello &#60;b&#62;not markup&#60;/b&#62;, NHS no. *** *** ****.")
            || html.contains("Hello &lt;b&gt;not markup&lt;/b&gt;, NHS no. *** *** ****."),
        "{html}"
    );
    assert!(html.contains("Only the first 20 KB are shown"), "{html}");
    let shown = html.matches("All quiet on the western front.").count();
    assert!((500..1000).contains(&shown), "{shown} lines shown");
}

#[tokio::test]
async fn more_than_fifty_matches_are_counted_not_listed() {
    let p = page_with("cap", |given| {
        stand_in((0..60).map(nhs_match).collect(), Vec::new(), given)
    })
    .await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert_eq!(html.matches("<mark>").count(), 50);
    assert!(html.contains("and 10 more."), "{html}");
    let r = p.get_as_dpo(&format!("/api/held/{id}")).await;
    let v: Value = serde_json::from_str(&body_text(r).await).unwrap();
    assert_eq!(v["matches"].as_array().unwrap().len(), 50);
    assert_eq!(v["matches_more"], 10);
}

#[tokio::test]
async fn a_failed_inspection_still_shows_the_page_and_nothing_unmasked() {
    let p = page_with("panics", |_| {
        Arc::new(|_, _, _| panic!("the stand-in engine fails"))
    })
    .await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert_no_value(&html);
    assert!(html.contains("could not be scanned again"), "{html}");
    assert!(
        html.contains(r#"<td>NHS numbers <code class="id">uk_nhs_number</code></td>"#),
        "stored findings"
    );
    assert!(
        html.contains("Referral *** *** ****"),
        "headers, digits hidden"
    );
    assert!(!html.contains("preview-html"), "no preview");

    // An engine that does not mask what it was given: no preview either.
    let p = page_with("unmasked", |_| Arc::new(|_, _, _| Inspection::default())).await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert_no_value(&html);
    assert!(html.contains("could not be masked"), "{html}");
    assert!(!html.contains("preview-html"));
}

#[tokio::test]
async fn the_eml_downloads_exactly_as_spooled_and_each_download_is_audited() {
    let p = page("eml").await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let html = p.text(&format!("/held/{id}")).await;
    assert!(html.contains(&format!("href=\"/held/{id}/eml\"")), "{html}");

    // The page's link, with the session cookie.
    let cookie = p.login().await;
    let r = p
        .get(&format!("/held/{id}/eml"), Some(("cookie", &cookie)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "message/rfc822");
    assert_eq!(
        r.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"held-{id}.eml\"").as_str()
    );
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(body_bytes(r).await, HTML_MESSAGE.as_bytes());

    // The API's, with a token.
    let r = p.get_as_dpo(&format!("/api/held/{id}/eml")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_bytes(r).await, HTML_MESSAGE.as_bytes());

    let audit = p
        .store
        .audit_list(&AuditFilter {
            action: Some("download".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    for a in &audit {
        assert_eq!(a.actor.name, "dpo1");
        assert_eq!(a.actor.address.as_deref(), Some(CLIENT));
        assert_eq!(a.target.as_deref(), Some(id.as_str()));
    }
    // The audit page links the download to the message.
    let html = p.text("/audit?action=download").await;
    assert!(html.contains(&format!("href=\"/held/{id}\"")), "{html}");
}

#[tokio::test]
async fn no_download_without_an_account_or_a_file() {
    let p = page("eml-refused").await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let r = p.get(&format!("/api/held/{id}/eml"), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = p.get(&format!("/held/{id}/eml"), None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let relay = format!("Bearer {}", p.store.user_new_token("relay1").await.unwrap());
    let r = p
        .get(
            &format!("/api/held/{id}/eml"),
            Some(("authorization", &relay)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = p.get_as_dpo("/api/held/01NOSUCHMESSAGE/eml").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The file purged: 404, and nothing audited.
    let h = p.store.held_get(&id).await.unwrap().unwrap();
    p.store.spool().remove(&h.spool_id).await.unwrap();
    let r = p.get_as_dpo(&format!("/api/held/{id}/eml")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let audit = p
        .store
        .audit_list(&AuditFilter {
            action: Some("download".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(audit.is_empty());
    // And the page still opens, saying why there is no more to see.
    let html = p.text(&format!("/held/{id}")).await;
    assert!(html.contains("could not be read"), "{html}");
}

impl Page {
    async fn post_as_dpo(&self, uri: &str, body: &Value) -> Response {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        r.extensions_mut().insert(ConnectInfo::<SocketAddr>(
            format!("{CLIENT}:50000").parse().unwrap(),
        ));
        self.app.clone().oneshot(r).await.unwrap()
    }
}

fn subject(v: &Value) -> &Value {
    &v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "Subject")
        .expect("a Subject header")["value"]
}

#[tokio::test]
async fn decisions_answer_with_the_headers_and_reason_masked() {
    let p = page("decisions").await;
    for route in ["release", "false-positive"] {
        let id = p.hold(HTML_MESSAGE.as_bytes()).await;
        let r = p
            .post_as_dpo(&format!("/api/held/{id}/{route}"), &serde_json::json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{route}");
        let text = body_text(r).await;
        assert_no_value(&text);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "released", "{route}");
        assert_eq!(*subject(&v), "Referral *** *** ****", "{route}");
    }

    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let reason = "Wrong parent: NHS no. 943 476 5919 is another child's";
    let r = p
        .post_as_dpo(
            &format!("/api/held/{id}/reject"),
            &serde_json::json!({ "reason": reason }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = body_text(r).await;
    assert_no_value(&text);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "rejected");
    assert_eq!(*subject(&v), "Referral *** *** ****");
    assert_eq!(
        v["reason"],
        "Wrong parent: NHS no. *** *** **** is another child's"
    );
    // The store keeps what the DPO typed (the sender is told it); what is shown is masked.
    let h = p.store.held_get(&id).await.unwrap().unwrap();
    assert_eq!(h.reason.as_deref(), Some(reason));

    // Everywhere the decision shows again: the message, its page, the audit trail as JSON,
    // as a page and as CSV.
    let text = body_text(p.get_as_dpo(&format!("/api/held/{id}")).await).await;
    assert_no_value(&text);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["reason"],
        "Wrong parent: NHS no. *** *** **** is another child's"
    );
    let html = p.text(&format!("/held/{id}")).await;
    assert_no_value(&html);
    assert!(
        html.contains("NHS no. *** *** **** is another child"),
        "{html}"
    );

    let text = p.text("/api/audit?action=reject").await;
    assert_no_value(&text);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v[0]["detail"],
        "rejected: Wrong parent: NHS no. *** *** **** is another child's"
    );
    let html = p.text("/audit?action=reject").await;
    assert_no_value(&html);
    assert!(html.contains("NHS no. *** *** **** is another"), "{html}");
    let csv = p.text("/audit.csv").await;
    assert_no_value(&csv);
    assert!(csv.contains("NHS no. *** *** **** is another"), "{csv}");
    // Details hallpass writes itself are left as they are.
    assert!(
        csv.contains("released for delivery to 1 recipient(s)"),
        "{csv}"
    );
    let list = p.text("/api/held?status=all").await;
    assert_no_value(&list);
}

#[tokio::test]
async fn when_the_engine_cannot_mask_a_decision_shows_no_digits() {
    let p = page_with("decision-unmasked", |_| {
        Arc::new(|_, _, _| Inspection::default())
    })
    .await;
    let id = p.hold(HTML_MESSAGE.as_bytes()).await;
    let r = p
        .post_as_dpo(
            &format!("/api/held/{id}/reject"),
            &serde_json::json!({ "reason": "NHS no. 943 476 5919" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = body_text(r).await;
    assert_no_value(&text);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(*subject(&v), "Referral *** *** ****");
    assert_eq!(v["reason"], "NHS no. *** *** ****");
}
