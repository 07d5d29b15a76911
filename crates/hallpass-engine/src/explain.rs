//! Masked views of text around matches, for people who must judge a match
//! without seeing its value: the short context window of an explained match,
//! and a whole text with every match masked (the console's body preview).
//!
//! Masking keeps the last three letters and digits of a match, as
//! [`hallpass_detect::mask`] does. Around a match, every digit is hidden too,
//! so a neighbouring identifier the detectors did not report (or a second one
//! in the window) never shows.

use std::ops::Range;

/// Characters of context on each side of a match, before the cut moves to a
/// word boundary.
pub const CONTEXT_CHARS: usize = 30;

/// Digits in a run (joined by at most one space, `-` or `.` each) from which
/// [`mask_digit_runs`] hides it: values the detectors find only with context
/// (or split by markup) are hidden in a preview all the same.
pub const DIGIT_RUN: usize = 6;

/// The masked context before and after `span` in `text`: about
/// [`CONTEXT_CHARS`] characters each side, cut at word boundaries, whitespace
/// collapsed to single spaces, every digit and every letter of `others` (the
/// other matches in the text) shown as `*`. A side cut short starts (or ends)
/// with `…`.
pub(crate) fn window(text: &str, span: &Range<usize>, others: &[Range<usize>]) -> (String, String) {
    let before_start = cut_before(text, span.start);
    let after_end = cut_after(text, span.end);
    let mut before = render(text, before_start..span.start, others);
    let mut after = render(text, span.end..after_end, others);
    // Context ends at the text's edges; inner whitespace next to the match stays one space.
    let trimmed = before.trim_start().len();
    before.drain(..before.len() - trimmed);
    after.truncate(after.trim_end().len());
    if before_start > 0 && !before.is_empty() {
        before.insert(0, '…');
    }
    if after_end < text.len() && !after.is_empty() {
        after.push('…');
    }
    (before, after)
}

/// Where the context before `at` starts: [`CONTEXT_CHARS`] back, then forward
/// to the start of a word if that cut a word in two.
fn cut_before(text: &str, at: usize) -> usize {
    let head = &text[..at];
    let Some((start, _)) = head.char_indices().rev().nth(CONTEXT_CHARS - 1) else {
        return 0;
    };
    if start == 0 || head[..start].ends_with(char::is_whitespace) {
        return start;
    }
    match head[start..].find(char::is_whitespace) {
        Some(i) => start + i,
        // One long word: cut it where the window ends.
        None => start,
    }
}

/// Where the context after `at` ends: [`CONTEXT_CHARS`] on, then back to the
/// end of a word if that cut a word in two.
fn cut_after(text: &str, at: usize) -> usize {
    let tail = &text[at..];
    let end = match tail.char_indices().nth(CONTEXT_CHARS) {
        Some((i, _)) => at + i,
        None => return text.len(),
    };
    if text[end..].starts_with(char::is_whitespace) {
        return end;
    }
    match text[at..end].rfind(char::is_whitespace) {
        Some(i) if i > 0 => at + i,
        _ => end,
    }
}

/// `text[range]` with whitespace (and control characters) collapsed to one
/// space, digits hidden, and other matches' letters hidden.
fn render(text: &str, range: Range<usize>, others: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(range.len());
    let mut space = false;
    for (i, c) in text[range.clone()].char_indices() {
        let at = range.start + i;
        if c.is_whitespace() || c.is_control() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        let in_other = others.iter().any(|o| o.start <= at && at < o.end);
        if c.is_numeric() || (in_other && c.is_alphanumeric()) {
            out.push('*');
        } else {
            out.push(c);
        }
    }
    out
}

/// Marks, in `hide` (one flag per character of `text`), every letter and
/// digit of `span` but its last three.
pub(crate) fn hide_span(text: &str, span: &Range<usize>, starts: &[usize], hide: &mut [bool]) {
    // Characters of the span, by index into `starts` (char start offsets of `text`).
    let first = starts.partition_point(|&s| s < span.start);
    let last = starts.partition_point(|&s| s < span.end);
    let alnum: Vec<usize> = (first..last)
        .filter(|&ci| {
            text[starts[ci]..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric)
        })
        .collect();
    let keep = alnum.len().min(3);
    for &ci in &alnum[..alnum.len() - keep] {
        hide[ci] = true;
    }
}

/// Hides every run of [`DIGIT_RUN`] or more digits, where one space, tab,
/// no-break space, `-` or `.` may join two digits, but its last three digits,
/// one `*` per digit. Everything else is left as it is.
pub fn mask_digit_runs(text: &str) -> String {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let mut hide = vec![false; starts.len()];
    hide_digit_runs(text, &mut hide);
    apply(text, &hide)
}

/// [`mask_digit_runs`]'s marks, in `hide` (one flag per character).
pub(crate) fn hide_digit_runs(text: &str, hide: &mut [bool]) {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A run: digits, joined by single separators.
        let mut digits = vec![i];
        let mut j = i + 1;
        loop {
            if j < chars.len() && chars[j].is_ascii_digit() {
                digits.push(j);
                j += 1;
            } else if j + 1 < chars.len() && is_joiner(chars[j]) && chars[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        if digits.len() >= DIGIT_RUN {
            for &d in &digits[..digits.len() - 3] {
                hide[d] = true;
            }
        }
        i = j;
    }
}

fn is_joiner(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{a0}' | '-' | '.')
}

/// `text` with each marked character replaced by `*`.
pub(crate) fn apply(text: &str, hide: &[bool]) -> String {
    text.chars()
        .zip(hide)
        .map(|(c, &h)| if h { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(text: &str, value: &str) -> (String, String) {
        let start = text.find(value).unwrap();
        window(text, &(start..start + value.len()), &[])
    }

    #[test]
    fn context_is_cut_at_word_boundaries_with_an_ellipsis() {
        let text = "The referral letter for the pupil said NHS no. 943 476 5919 for the clinic \
                    appointment next Tuesday morning at nine.";
        let (before, after) = win(text, "943 476 5919");
        assert_eq!(before, "…for the pupil said NHS no. ");
        assert_eq!(after, " for the clinic appointment…");
    }

    #[test]
    fn context_at_the_edges_has_no_ellipsis() {
        assert_eq!(
            win("NHS 943 476 5919", "943 476 5919"),
            ("NHS ".into(), String::new())
        );
        assert_eq!(
            win("943 476 5919 is hers", "943 476 5919"),
            (String::new(), " is hers".into())
        );
    }

    #[test]
    fn whitespace_collapses_and_digits_are_hidden() {
        let text = "Sib 401 023 2137\r\n\r\n   NHS:\t943 476 5919\n\nseen 12/03";
        let (before, after) = win(text, "943 476 5919");
        assert_eq!(before, "Sib *** *** **** NHS: ");
        assert_eq!(after, " seen **/**");
    }

    #[test]
    fn other_matches_in_the_window_are_hidden_letters_and_all() {
        let text = "NINO QQ123456C and NHS 943 476 5919";
        let nhs = text.find("943").unwrap();
        let nino = text.find("QQ").unwrap();
        let (before, _) = window(
            text,
            &(nhs..nhs + 12),
            std::slice::from_ref(&(nino..nino + 9)),
        );
        assert_eq!(before, "NINO ********* and NHS ");
    }

    #[test]
    fn one_long_word_is_cut_where_the_window_ends() {
        let text = format!("{}943 476 5919", "x".repeat(50));
        let (before, _) = win(&text, "943 476 5919");
        assert_eq!(before, format!("…{}", "x".repeat(30)));
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let text = format!("{} NHS 943 476 5919 {}", "é".repeat(40), "ü".repeat(40));
        let (before, after) = win(&text, "943 476 5919");
        assert!(
            before.starts_with('…') && before.ends_with("NHS "),
            "{before}"
        );
        assert!(after.ends_with('…'), "{after}");
    }

    #[test]
    fn digit_runs_are_hidden_but_for_the_last_three() {
        assert_eq!(mask_digit_runs("ref 9434765919."), "ref *******919.");
        assert_eq!(mask_digit_runs("ref 943 476 5919"), "ref *** *** *919");
        assert_eq!(mask_digit_runs("sort 12-34-56"), "sort **-*4-56");
        assert_eq!(mask_digit_runs("12345 and 2014"), "12345 and 2014");
        assert_eq!(mask_digit_runs("12  345 678"), "12  *** 678");
        assert_eq!(mask_digit_runs("04/05/2014"), "04/05/2014");
    }
}
