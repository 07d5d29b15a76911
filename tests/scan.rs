//! End-to-end tests of `hallpass scan` and `hallpass check`: the real binary,
//! real files, real output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hallpass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hallpass"))
        .args(args)
        .current_dir(root())
        .env_remove("HALLPASS_CONFIG")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Deserialize)]
struct Manifest {
    message: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    file: String,
    about: String,
    verdict: String,
    rules: Vec<String>,
    detectors: Vec<String>,
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Scans every `.eml` directly in `dir` and compares with `dir/manifest.toml`;
/// writes `NAME.failed` beside a mismatch with what was found.
fn check_manifest(dir: &str, at_least: usize) {
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(root().join(dir).join("manifest.toml")).unwrap())
            .unwrap();
    assert!(
        manifest.message.len() >= at_least,
        "{dir} has at least {at_least} messages"
    );
    let paths: Vec<String> = manifest
        .message
        .iter()
        .map(|m| format!("{dir}/{}", m.file))
        .collect();
    let mut args = vec!["scan", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let out = hallpass(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    let on_disk = std::fs::read_dir(root().join(dir))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count();
    assert_eq!(
        manifest.message.len(),
        on_disk,
        "every .eml in {dir} is in its manifest"
    );
    assert_eq!(lines.len(), on_disk, "one line per message");

    let mut failures = Vec::new();
    for (want, got) in manifest.message.iter().zip(&lines) {
        let path = format!("{dir}/{}", want.file);
        assert_eq!(got["file"], path.as_str(), "output comes in input order");
        let verdict = got["verdict"].as_str().unwrap();
        let mut got_rules: Vec<&str> = got["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let mut detectors: Vec<&str> = got["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["detector"].as_str().unwrap())
            .collect();
        detectors.sort_unstable();
        detectors.dedup();
        got_rules.sort_unstable();
        let mut want_rules: Vec<&str> = want.rules.iter().map(String::as_str).collect();
        want_rules.sort_unstable();
        let mut want_det: Vec<&str> = want.detectors.iter().map(String::as_str).collect();
        want_det.sort_unstable();
        let failed = root().join(format!("{path}.failed"));
        if verdict != want.verdict || got_rules != want_rules || detectors != want_det {
            failures.push(format!(
                "{path} ({}):\n    want {} {:?} {:?}\n    got  {verdict} {got_rules:?} {detectors:?}",
                want.about, want.verdict, want_rules, want_det
            ));
            std::fs::write(failed, format!("{got}\n")).ok();
        } else {
            let _ = std::fs::remove_file(failed);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ from the manifest:\n{}",
        failures.len(),
        manifest.message.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_gets_the_verdict_rules_and_detectors_of_the_manifest() {
    check_manifest("fixtures", 60);
}

#[test]
fn every_attachment_fixture_gets_the_verdict_of_its_manifest() {
    check_manifest("fixtures/attachments", 20);
}

#[test]
fn json_fields_come_in_the_contract_order_and_carry_no_values() {
    let out = hallpass(&["scan", "--json", "fixtures/"]);
    let text = stdout(&out);
    for line in text.lines() {
        let keys: Vec<&str> = [
            "\"file\"",
            "\"verdict\"",
            "\"rules\"",
            "\"findings\"",
            "\"recipients\"",
            "\"attachments\"",
        ]
        .iter()
        .map(|k| {
            assert!(line.contains(k), "{k} missing in {line}");
            *k
        })
        .collect();
        let positions: Vec<usize> = keys.iter().map(|k| line.find(k).unwrap()).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "fields out of order: {line}"
        );
    }
    // No value a detector matched appears in the output: take every explained
    // match's location and check the unmasked digits of the fixture do not leak.
    let explained = hallpass(&["scan", "--json", "--explain", "fixtures/"]);
    for line in json_lines(&stdout(&explained)) {
        for e in line["explain"].as_array().into_iter().flatten() {
            let v = e["value"].as_str().unwrap();
            let shown = v.trim_start_matches('*');
            assert!(
                shown.chars().count() <= 3,
                "more than 3 characters shown: {v}"
            );
        }
    }
}

#[test]
fn plain_output_names_the_verdict_and_findings() {
    let out = hallpass(&["scan", "fixtures/"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(": hold (personal_data_external)"), "{text}");
    assert!(text.contains(": deliver\n"));
}

#[test]
fn stdin_is_scanned_with_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallpass"))
        .args(["scan", "--json", "--explain", "-"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"From: t@lumen.sch.uk\r\nTo: p@example.com\r\nSubject: hi\r\n\r\nHer NHS number is 943 476 5919.\r\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let line = &json_lines(&stdout(&out))[0];
    assert_eq!(line["file"], "-");
    assert_eq!(line["verdict"], "hold");
    assert_eq!(line["findings"][0]["detector"], "uk_nhs_number");
    assert_eq!(line["findings"][0]["where"], "body");
    assert_eq!(line["explain"][0]["value"], "*******919");
    assert!(
        !stdout(&out).contains("5919"),
        "the value itself never appears"
    );
}

#[test]
fn an_unreadable_file_is_an_error_line_and_the_rest_are_scanned() {
    let out = hallpass(&["scan", "--json", "fixtures/does-not-exist.eml", "fixtures/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read fixtures/does-not-exist.eml"),
        "{}",
        stderr(&out)
    );
    assert!(json_lines(&stdout(&out)).len() >= 60);
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hallpass-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn hostile_messages_still_get_a_verdict() {
    let dir = temp_dir("hostile");
    let mut many_parts =
        String::from("To: p@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
    for i in 0..10_000 {
        many_parts.push_str(&format!("--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"f{i}.txt\"\r\n\r\nx\r\n"));
    }
    many_parts.push_str("--b--\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.eml", Vec::new()),
        ("no-headers.eml", b"just text 943 476 5919 NHS".to_vec()),
        ("nul.eml", b"To: p@example.com\r\nSubject: a\0b\r\n\r\nNHS 943 476 5919 \0\0\0\r\n".to_vec()),
        ("long-line.eml", format!("To: p@example.com\r\n\r\n{}\r\n", "A".repeat(100_000)).into_bytes()),
        ("bad-base64.eml", b"To: p@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%not base64!!!!\r\n".to_vec()),
        ("bad-charset.eml", b"To: p@example.com\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nNHS 943 476 5919\r\n".to_vec()),
        ("many-parts.eml", many_parts.into_bytes()),
        ("binary-garbage.eml", (0..=255u8).cycle().take(70_000).collect()),
    ];
    for (name, bytes) in &cases {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let out = hallpass(&["scan", "--json", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), cases.len());
    let verdict = |name: &str| {
        lines
            .iter()
            .find(|l| l["file"].as_str().unwrap().ends_with(name))
            .unwrap()["verdict"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        verdict("many-parts.eml"),
        "hold",
        "over the part limit is unscannable, held for an external recipient"
    );
    assert_eq!(verdict("nul.eml"), "hold");
    assert_eq!(verdict("bad-charset.eml"), "hold");
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let detectors = root().join("detectors");
    let cfg = dir.join("hallpass.toml");
    std::fs::write(&cfg, format!("[organisation]\ninternal_domains = [\"lumen.sch.uk\"]\n[detectors]\npath = {:?}\n{extra}", detectors.display().to_string())).unwrap();
    cfg
}

#[test]
fn check_accepts_the_shipped_configuration() {
    let out = hallpass(&["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("ok; 12 detectors"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_points_at_bad_config_lines() {
    let dir = temp_dir("badconfig");
    let cfg = write_config(
        &dir,
        "[rules.bulk_send]\naction = \"quarantine\"\n[organisation2]\n",
    );
    let out = hallpass(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("{}:", cfg.display())), "{text}");
    assert!(
        text.contains("hallpass.toml:7:2: unknown field `organisation2`"),
        "names the line: {text}"
    );
    // scan refuses to run on a broken configuration, with the same message.
    let out = hallpass(&["--config", cfg.to_str().unwrap(), "scan", "fixtures/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hallpass check"));
}

#[test]
fn check_points_at_bad_detector_lines() {
    let dir = temp_dir("baddetector");
    let det = dir.join("detectors");
    std::fs::create_dir_all(&det).unwrap();
    std::fs::write(det.join("local.toml"), "[[detector]]\nid = \"staff_payroll\"\npatterns = ['PAY(\\d{6}']\nvalidator = \"mod12\"\naction = \"hold\"\nconfidence_with_context = \"high\"\nconfidence_without_context = \"low\"\n").unwrap();
    let cfg = dir.join("hallpass.toml");
    std::fs::write(&cfg, "[organisation]\ninternal_domains = [\"lumen.sch.uk\"]\n[detectors]\npath = \"detectors\"\n").unwrap();
    let out = hallpass(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("local.toml:5:1:"),
        "unknown key `action` at its line: {text}"
    );
    std::fs::write(det.join("local.toml"), "[[detector]]\nid = \"staff_payroll\"\npatterns = ['PAY(\\d{6}']\nvalidator = \"mod12\"\nconfidence_with_context = \"high\"\nconfidence_without_context = \"low\"\n").unwrap();
    let text = stdout(&hallpass(&["--config", cfg.to_str().unwrap(), "check"]));
    assert!(
        text.contains("local.toml:3:13: bad regular expression"),
        "{text}"
    );
    assert!(
        text.contains("local.toml:4:13: unknown validator `mod12`"),
        "{text}"
    );
}

#[test]
fn a_new_detector_file_works_without_a_rebuild() {
    let dir = temp_dir("newdetector");
    let det = dir.join("detectors");
    std::fs::create_dir_all(&det).unwrap();
    for f in std::fs::read_dir(root().join("detectors")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&f, det.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(det.join("local.toml"), "[[detector]]\nid = \"staff_payroll\"\ndescription = \"Trust payroll number\"\npatterns = ['\\bPAY\\d{6}\\b']\ncontext = [\"payroll\"]\nconfidence_with_context = \"high\"\nconfidence_without_context = \"medium\"\n").unwrap();
    let cfg = dir.join("hallpass.toml");
    std::fs::write(&cfg, "[organisation]\ninternal_domains = [\"lumen.sch.uk\"]\n[detectors]\npath = \"detectors\"\n").unwrap();
    let msg = dir.join("m.eml");
    std::fs::write(
        &msg,
        "To: a@example.com\r\nSubject: x\r\n\r\nPayroll no PAY123456\r\n",
    )
    .unwrap();
    let out = hallpass(&[
        "--config",
        cfg.to_str().unwrap(),
        "scan",
        "--json",
        msg.to_str().unwrap(),
    ]);
    let line = &json_lines(&stdout(&out))[0];
    assert_eq!(line["findings"][0]["detector"], "staff_payroll");
    assert_eq!(line["verdict"], "hold");
}

#[test]
fn no_configuration_anywhere_is_a_usage_error() {
    let dir = temp_dir("noconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_hallpass"))
        .args(["check"])
        .current_dir(&dir)
        .env_remove("HALLPASS_CONFIG")
        .output()
        .unwrap();
    if Path::new("/etc/hallpass/hallpass.toml").exists() {
        return;
    }
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no configuration found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_shows_each_value_masked_in_its_masked_context() {
    let mut rng = hallpass_fixtures::Rng::new(55);
    let nhs = hallpass_fixtures::nhs_number(&mut rng);
    let other = hallpass_fixtures::nhs_number(&mut rng);
    let digits: String = nhs.chars().filter(char::is_ascii_digit).collect();
    let message = format!(
        "From: t@lumen.sch.uk\r\nTo: p@example.com\r\nSubject: hi\r\n\r\n\
         The referral for the clinic gives NHS no. {nhs} for Sam, and {other} for his brother.\r\n"
    );
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hallpass"))
            .args(args)
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = stdout(&out);
        for v in [&nhs, &other] {
            let d: String = v.chars().filter(char::is_ascii_digit).collect();
            assert!(
                !text.contains(v.as_str()) && !text.contains(&d),
                "a value shown: {text}"
            );
            assert!(
                !text.contains(&v[..7]),
                "a value's first digits shown: {text}"
            );
        }
        text
    };
    let text = run(&["scan", "--json", "--explain", "-"]);
    let line = &json_lines(&text)[0];
    let e = &line["explain"][0];
    // The fields the contract's consumers already read, then the context.
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "detector",
            "where",
            "value",
            "confidence",
            "context",
            "before",
            "after"
        ]
    );
    assert_eq!(e["value"], format!("*******{}", &digits[7..]));
    let before = e["before"].as_str().unwrap();
    let after = e["after"].as_str().unwrap();
    assert!(before.ends_with("NHS no. "), "{before}");
    assert!(after.starts_with(" for Sam"), "{after}");
    assert!(
        after.contains('*'),
        "the neighbouring number masked too: {after}"
    );

    let text = run(&["scan", "--explain", "-"]);
    assert!(
        text.contains(&format!("{before}*******{}{after}", &digits[7..])),
        "{text}"
    );
}
