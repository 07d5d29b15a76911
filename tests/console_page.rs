//! The held message's page end to end: the real `hallpass serve`, messages sent over SMTP with
//! generated NHS numbers (999 range, valid mod 11) in a plain body, an HTML body and a CSV
//! attachment, a DPO who logs in and opens each page. No value may appear unmasked anywhere in
//! the page's source; nothing of the message may run, load or submit; the `.eml` download is the
//! spooled file, byte for byte, and is in the audit trail.

mod common;

use common::*;

/// Four generated NHS numbers, as written (`999 123 4567`).
fn values() -> Vec<String> {
    let mut rng = hallpass_fixtures::Rng::new(2026);
    (0..4)
        .map(|_| hallpass_fixtures::nhs_number(&mut rng))
        .collect()
}

/// How a person (or a test) would spot a value: as written, without spaces, with dashes.
fn forms(v: &str) -> [String; 3] {
    [v.to_string(), v.replace(' ', ""), v.replace(' ', "-")]
}

/// What the console shows for a value: all but its last three digits hidden.
fn masked(v: &str) -> String {
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    format!("*******{}", &digits[7..])
}

/// A plain body (value 0) and a CSV attachment (values 2 and 3).
fn plain_with_csv(v: &[String]) -> Vec<u8> {
    format!(
        "From: Teacher <teacher@lumen.sch.uk>\r\n\
         To: parent@example.com\r\n\
         Subject: Referral for Sam\r\n\
         Message-ID: <plain-csv@lumen.sch.uk>\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mixed\"\r\n\
         \r\n\
         --mixed\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Dear Mrs Example,\r\n\
         The referral for Sam gives NHS number {} for the clinic on Tuesday.\r\n\
         Best wishes, Ann\r\n\
         --mixed\r\n\
         Content-Type: text/csv; name=\"pupils.csv\"\r\n\
         Content-Disposition: attachment; filename=\"pupils.csv\"\r\n\
         \r\n\
         Name,NHS number\r\n\
         Sam Example,{}\r\n\
         Alex Example,{}\r\n\
         --mixed--\r\n",
        v[0], v[2], v[3]
    )
    .into_bytes()
}

/// An HTML-only body (value 1, split by markup) with everything a preview must not carry.
fn html_only(v: &[String]) -> Vec<u8> {
    let (head, tail) = v[1].split_at(3);
    format!(
        "From: Teacher <teacher@lumen.sch.uk>\r\n\
         To: parent@example.com\r\n\
         Subject: Clinic letter\r\n\
         Message-ID: <html-only@lumen.sch.uk>\r\n\
         Date: Mon, 23 Nov 2026 09:05:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         \r\n\
         <html><head><style>p {{ color: red }}</style>\
         <script>document.location='https://example.com/x'</script></head>\
         <body><p onmouseover=\"steal()\">The clinic has NHS number <b>{head}</b>{tail} for Sam.</p>\
         <img src=\"https://example.com/pixel.png\" width=\"1\"><img src=\"http://example.org/logo.gif\">\
         <form action=\"https://example.com/submit\" method=\"post\"><input name=\"pw\"><button>Send</button></form>\
         <p>Read <a href=\"https://example.com/more\">the letter</a> online.</p></body></html>\r\n"
    )
    .into_bytes()
}

/// The context (masked) shown before `mark` on the page.
fn context_before<'a>(page: &'a str, mark: &str) -> &'a str {
    let at = page
        .find(&format!("<mark>{mark}</mark>"))
        .unwrap_or_else(|| panic!("{mark} is not on the page"));
    let start = page[..at]
        .rfind("<span class=\"context\">")
        .expect("a context span");
    &page[start + "<span class=\"context\">".len()..at]
}

#[test]
fn a_held_message_page_shows_no_value_unmasked_and_the_eml_download_is_audited() {
    let dir = temp_dir("console-page");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let v = values();
    let plain = plain_with_csv(&v);
    let html = html_only(&v);
    for data in [&plain, &html] {
        send_to_parent(relay.addr, data);
    }
    let held = relay.held();
    assert_eq!(held.len(), 2, "both held: {held:?}");
    let id_of = |mid: &str| {
        held.iter()
            .find(|h| h["message_id"] == mid)
            .and_then(|h| h["id"].as_str())
            .unwrap_or_else(|| panic!("{mid} not held: {held:?}"))
            .to_string()
    };
    let plain_id = id_of("plain-csv@lumen.sch.uk");
    let html_id = id_of("html-only@lumen.sch.uk");

    relay.add_user("dpo", "dpo", "a long dpo password");
    let cookie = login(relay.console, "dpo", "a long dpo password");
    let get = |path: &str| {
        let (status, head, body) = http(relay.console, "GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(status, 200, "{path}: {head}\n{body}");
        (head, body)
    };

    // The plain body and the CSV attachment.
    let (_, page) = get(&format!("/held/{plain_id}"));
    for value in &v {
        for f in forms(value) {
            assert!(!page.contains(&f), "a value is on the page unmasked");
        }
    }
    let before = context_before(&page, &masked(&v[0]));
    assert!(before.contains("NHS number"), "context: {before}");
    assert!(before.contains("Sam gives"), "context: {before}");
    for value in &v[2..] {
        let before = context_before(&page, &masked(value));
        assert!(before.to_ascii_lowercase().contains("nhs"), "{before}");
    }
    assert!(
        page.contains("<td>pupils.csv</td><td>csv</td>"),
        "the attachment with its type"
    );
    assert!(
        page.contains("<pre class=\"preview preview-text\">"),
        "the plain body shown as text"
    );
    assert!(page.contains("Dear Mrs Example,"), "the body's text");

    // The HTML body.
    let (_, page) = get(&format!("/held/{html_id}"));
    for value in &v {
        for f in forms(value) {
            assert!(!page.contains(&f), "a value is on the page unmasked");
        }
    }
    let (head, tail) = v[1].split_at(3);
    assert!(
        !page.contains(&format!("<b>{head}</b>{tail}")),
        "the value split by markup is masked too"
    );
    assert!(
        page.contains("<b>***</b> *** *"),
        "masked where it sits in the markup"
    );
    let before = context_before(&page, &masked(&v[1]));
    assert!(before.contains("NHS number"), "context: {before}");
    assert!(page.contains("<div class=\"preview preview-html\">"));
    for bad in [
        "<script",
        "document.location",
        "<style",
        "color: red",
        "onmouseover",
        "steal()",
        "<img",
        "example.com/pixel.png",
        "example.org/logo.gif",
        "example.com/submit",
        "name=\"pw\"",
        "example.com/more",
        "example.com/x",
    ] {
        assert!(!page.contains(bad), "{bad} from the message is on the page");
    }
    assert!(
        page.contains("the letter"),
        "a link's text stays, not the link"
    );

    // The JSON of the same message: masked matches with context, no value.
    let (_, json) = get(&format!("/api/held/{html_id}"));
    for value in &v {
        for f in forms(value) {
            assert!(!json.contains(&f), "a value in the API's answer");
        }
    }
    let m: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(m["matches"][0]["masked"], masked(&v[1]));
    assert!(
        m["matches"][0]["before"]
            .as_str()
            .unwrap()
            .contains("NHS number")
    );

    // The .eml: the spooled file, byte for byte, as an attachment.
    let (head, eml) = get(&format!("/held/{plain_id}/eml"));
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: message/rfc822"), "{head}");
    assert!(lower.contains("content-disposition: attachment;"), "{head}");
    let spooled: Vec<Vec<u8>> = std::fs::read_dir(dir.join("data/spool"))
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter(|b| b.ends_with(&plain))
        .collect();
    assert_eq!(spooled.len(), 1, "one spool file holds the message");
    assert_eq!(eml.as_bytes(), spooled[0].as_slice());

    // Audited: who, what, which message, from where.
    let (_, audit) = get("/api/audit?action=download");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "dpo");
    assert_eq!(entries[0]["target"], plain_id.as_str());
    assert_eq!(entries[0]["address"], "127.0.0.1");
    let (_, page) = get("/audit?action=download");
    assert!(
        page.contains(&format!("href=\"/held/{plain_id}\"")),
        "{page}"
    );

    // Without a session: no download.
    let (status, _, _) = http(
        relay.console,
        "GET",
        &format!("/api/held/{plain_id}/eml"),
        &[],
        "",
    );
    assert_eq!(status, 401);
}

/// A school adds its own detector with a plain `name`: the sender's notice, the held list, the
/// message page and the dashboard say "staff payroll numbers", and a change to the name reaches
/// them after a reload, with no restart.
#[test]
fn a_school_detector_is_called_by_its_plain_name_in_the_notice_and_the_console() {
    let dir = temp_dir("detector-name");
    let detectors = dir.join("detectors");
    std::fs::create_dir_all(&detectors).unwrap();
    for f in std::fs::read_dir(root().join("detectors")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&f, detectors.join(f.file_name().unwrap())).unwrap();
        }
    }
    let school = |name: &str| {
        format!(
            "[[detector]]\nid = \"staff_payroll\"\ndescription = \"Payroll number (PAY- and six digits)\"\nname = \"{name}\"\ncertain_patterns = ['\\bPAY-\\d{{6}}\\b']\nconfidence_with_context = \"high\"\nconfidence_without_context = \"high\"\n"
        )
    };
    std::fs::write(
        detectors.join("school.toml"),
        school("staff payroll numbers"),
    )
    .unwrap();
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        &format!("[detectors]\npath = \"{}\"\n", detectors.display()),
    );
    let data = message(
        "parent@example.com",
        "",
        "payroll",
        "Your payroll number is PAY-482913 for the claim.",
    );
    send_to_parent(relay.addr, &data);
    let notice = eventually("the held notice", || {
        notices(&relay.outbox()).into_iter().next()
    });
    let text = String::from_utf8_lossy(&notice.0);
    assert!(
        text.contains("- staff payroll numbers (1), in the message"),
        "{text}"
    );
    assert!(!text.contains("482913"), "never the value: {text}");
    let held = relay.held();
    assert_eq!(held.len(), 1, "{held:?}");
    let id = held[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        held[0]["findings"][0]["detector"], "staff_payroll",
        "the JSON keeps the id"
    );

    relay.add_user("dpo", "dpo", "a long dpo password");
    let cookie = login(relay.console, "dpo", "a long dpo password");
    let get = |path: &str| {
        let (status, head, body) = http(relay.console, "GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(status, 200, "{path}: {head}\n{body}");
        body
    };
    let list = get("/held");
    assert!(
        list.contains(
            r#"<span class="tag" title="staff_payroll">staff payroll numbers × 1</span>"#
        ),
        "{list}"
    );
    let page = get(&format!("/held/{id}"));
    assert!(
        page.contains(r#"<td>staff payroll numbers <code class="id">staff_payroll</code></td>"#),
        "{page}"
    );
    assert!(!page.contains("482913"), "never the value");
    let dashboard = get("/dashboard");
    assert!(
        dashboard.contains("staff payroll numbers</a>"),
        "{dashboard}"
    );

    // The admin rewords it; the file watch reloads the detectors.
    std::fs::write(
        detectors.join("school.toml"),
        school("payroll numbers of staff"),
    )
    .unwrap();
    eventually("the new name on the message page", || {
        get(&format!("/held/{id}"))
            .contains("<td>payroll numbers of staff <code")
            .then_some(())
    });
}
