//! Passwords written in a message ("the password is Tulip42", "pw: x",
//! "code to open it: 4821"), collected before the attachments are read so each
//! encrypted attachment can be tried with them.
//!
//! The candidates are kept in memory for the length of one scan and never
//! printed, logged or stored.

use std::sync::LazyLock;

use mail_parser::{Message, PartType};
use regex::Regex;

/// At most this many candidates per message are tried.
pub const MAX_CANDIDATES: usize = 16;

static PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(?:password|passcode|pass code|passphrase|pwd|pw|code to open(?: it| the (?:file|attachment|document|zip|spreadsheet|folder))?)\b(?:\s+for\s+(?:the|this|it|that)(?:\s+(?:file|attachment|document|zip|spreadsheet|folder|report|list))?)?(?:\s*(?:is|was|will be|=|:|-|–)\s*|\s+)["'“‘(]?([^\s"'”’)<>]{3,64})"#,
    )
    .expect("valid")
});

/// Candidates in one piece of text, appended to `out` (no duplicates, at most
/// [`MAX_CANDIDATES`]).
pub fn candidates(text: &str, out: &mut Vec<String>) {
    for c in PASSWORD.captures_iter(text) {
        if out.len() >= MAX_CANDIDATES {
            return;
        }
        let mut v = c[1].to_string();
        while v.ends_with(['.', ',', ';', '!', '?']) {
            v.pop();
        }
        if v.chars().count() < 3 || hallpass_core::words::is_not_a_secret(&v) || out.contains(&v) {
            continue;
        }
        out.push(v);
    }
}

/// Candidates from a message's subject and every text part (bodies and text
/// attachments), nested messages included.
pub fn from_message(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    collect(msg, &mut out, 0);
    out
}

fn collect(msg: &Message<'_>, out: &mut Vec<String>, depth: u32) {
    if let Some(s) = msg.subject() {
        candidates(s, out);
    }
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) => candidates(t, out),
            PartType::Html(h) => candidates(&crate::html::to_text(h), out),
            PartType::Message(m) if depth < 3 => collect(m, out, depth + 1),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::candidates;

    fn found(text: &str) -> Vec<String> {
        let mut v = Vec::new();
        candidates(text, &mut v);
        v
    }

    #[test]
    fn the_usual_ways_of_writing_a_password() {
        assert_eq!(found("The password is Tulip42."), vec!["Tulip42"]);
        assert_eq!(found("pw: Xk9!mm"), vec!["Xk9!mm"]);
        assert_eq!(found("Passcode 4821"), vec!["4821"]);
        assert_eq!(
            found("the code to open it is 'Blue-Door-7'"),
            vec!["Blue-Door-7"]
        );
        assert_eq!(
            found("Password for the file: Summer2026"),
            vec!["Summer2026"]
        );
    }

    #[test]
    fn sentences_about_passwords_give_none() {
        assert!(found("I've reset your password.").is_empty());
        assert!(found("The password will be sent separately.").is_empty());
        assert!(found("Please remember that the password is case sensitive").is_empty());
    }
}
