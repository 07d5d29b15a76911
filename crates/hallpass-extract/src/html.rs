//! HTML to plain text for scanning: no tags, entities decoded, scripts and
//! styles dropped, blocks on their own lines, and tables read the way a person
//! reads them: when a table has a header row, every cell below it comes out as
//! `Header: value` on its own line, so a column headed "Date of birth" is the
//! context of every date in it.

use crate::table::Table;

/// Tags whose content is never shown.
/// (`noscript` is not among them: mail clients run no scripts, so they show it.)
const HIDDEN: &[&str] = &["script", "style", "head", "template", "title"];

/// Characters that draw nothing: dropped, so they cannot split a number.
const INVISIBLE: &[char] = &[
    '\u{00AD}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}',
];

/// Tags that start a new line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "pre",
    "address",
    "dt",
    "dd",
    "caption",
    "center",
    "form",
    "fieldset",
];

/// Converts HTML to text. Works on any input, well-formed or not.
pub fn to_text(html: &str) -> String {
    let mut out = Out {
        text: String::with_capacity(html.len() / 2),
        tables: Vec::new(),
        space_pending: false,
    };
    let b = html.as_bytes();
    let mut i = 0;
    let mut hidden: Option<&'static str> = None;
    // Where the next '>' is (or `None` once there is none left), so that a
    // run of '<' that start no tag costs linear time, not quadratic.
    let mut next_gt: Option<Option<usize>> = None;
    while i < b.len() {
        match b[i] {
            b'<' => {
                if b[i..].starts_with(b"<!--") {
                    i = find(b, i + 4, b"-->").map_or(b.len(), |e| e + 3);
                    continue;
                }
                // A '<' that does not start a tag is text, as browsers show it
                // (and data after it must not vanish from the scan).
                let starts_tag = b
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'/' | b'!' | b'?'));
                let gt = if starts_tag {
                    match next_gt {
                        Some(Some(p)) if p > i => Some(p),
                        Some(None) => None,
                        _ => {
                            let p = memchr::memchr(b'>', &b[i..]).map(|p| p + i);
                            next_gt = Some(p);
                            p
                        }
                    }
                } else {
                    None
                };
                let Some(close) = gt.map(|p| p - i) else {
                    if hidden.is_none() {
                        out.push_char('<');
                    }
                    i += 1;
                    continue;
                };
                let end = i + close + 1;
                let tag = &html[i + 1..end.saturating_sub(1).max(i + 1)];
                let (closing, name) = tag_name(tag);
                i = end;
                if let Some(h) = hidden {
                    // An unclosed <head> ends where the body starts.
                    let body = h == "head" && !closing && name.eq_ignore_ascii_case("body");
                    if closing && name.eq_ignore_ascii_case(h) || body {
                        hidden = None;
                    }
                    continue;
                }
                if !closing
                    && !tag.ends_with('/')
                    && let Some(h) = HIDDEN.iter().find(|h| name.eq_ignore_ascii_case(h))
                {
                    hidden = Some(h);
                    continue;
                }
                out.tag(closing, &name.to_ascii_lowercase());
            }
            _ if hidden.is_some() => {
                i += memchr::memchr(b'<', &b[i..]).unwrap_or(b.len() - i);
            }
            b'&' => {
                // An entity is short and ends with ';'.
                let limit = (i + 32).min(b.len());
                match memchr::memchr(b';', &b[i..limit]) {
                    Some(e) if e > 1 => {
                        let mut decoded = String::new();
                        mail_parser::decoders::html::add_html_token(
                            &mut decoded,
                            &b[i..=i + e],
                            false,
                        );
                        for c in decoded.chars() {
                            out.push_char(c);
                        }
                        i += e + 1;
                    }
                    _ => {
                        out.push_char('&');
                        i += 1;
                    }
                }
            }
            _ => {
                // Copy the run of text up to the next markup character.
                let run = b[i..]
                    .iter()
                    .position(|&c| c == b'<' || c == b'&')
                    .map_or(b.len(), |p| i + p);
                for c in html[i..run].chars() {
                    out.push_char(c);
                }
                i = run;
            }
        }
    }
    while !out.tables.is_empty() {
        out.end_table();
    }
    out.text
}

fn find(h: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&h[from.min(h.len())..], needle).map(|p| p + from)
}

fn tag_name(tag: &str) -> (bool, &str) {
    let t = tag.trim_start();
    let (closing, t) = match t.strip_prefix('/') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    let end = t
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(t.len());
    (closing, &t[..end])
}

struct Out {
    text: String,
    tables: Vec<TableState>,
    space_pending: bool,
}

struct TableState {
    table: Table,
    row: Vec<String>,
    row_th: usize,
    row_td: usize,
    cell: Option<String>,
}

impl Out {
    fn target(&mut self) -> &mut String {
        match self.tables.last_mut() {
            Some(TableState { cell: Some(c), .. }) => c,
            // Text in a table but outside any cell goes on as ordinary text.
            _ => &mut self.text,
        }
    }

    fn push_char(&mut self, c: char) {
        let c = if c == '\u{a0}' { ' ' } else { c };
        if INVISIBLE.contains(&c) {
            return;
        }
        if c.is_whitespace() {
            self.space_pending = true;
            return;
        }
        let pending = std::mem::take(&mut self.space_pending);
        let t = self.target();
        if pending && !t.is_empty() && !t.ends_with(['\n', ' ']) {
            t.push(' ');
        }
        t.push(c);
    }

    fn newline(&mut self) {
        self.space_pending = false;
        let t = self.target();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
    }

    fn tag(&mut self, closing: bool, name: &str) {
        match name {
            "table" if !closing => self.tables.push(TableState {
                table: Table::default(),
                row: Vec::new(),
                row_th: 0,
                row_td: 0,
                cell: None,
            }),
            "table" => self.end_table(),
            "tr" if !self.tables.is_empty() => {
                self.end_cell();
                self.end_row();
            }
            "td" | "th" if !self.tables.is_empty() => {
                self.end_cell();
                if !closing {
                    let t = self.tables.last_mut().expect("checked");
                    t.cell = Some(String::new());
                    if name == "th" {
                        t.row_th += 1;
                    } else {
                        t.row_td += 1;
                    }
                }
            }
            _ if BLOCKS.contains(&name) => self.newline(),
            _ => {}
        }
    }

    fn end_cell(&mut self) {
        self.space_pending = false;
        if let Some(t) = self.tables.last_mut()
            && let Some(c) = t.cell.take()
        {
            t.row.push(c.trim().to_string());
        }
    }

    fn end_row(&mut self) {
        if let Some(t) = self.tables.last_mut() {
            let row = std::mem::take(&mut t.row);
            // A row of <th> only is a header; <th> beside <td> is a label
            // and its value (a key/value table), read across.
            let th = std::mem::take(&mut t.row_th);
            let td = std::mem::take(&mut t.row_td);
            t.table.row(row, th > 0 && td == 0);
        }
    }

    fn end_table(&mut self) {
        self.end_cell();
        self.end_row();
        if let Some(t) = self.tables.pop() {
            let rendered = t.table.finish();
            self.newline();
            let target = self.target();
            target.push_str(&rendered);
            self.newline();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn tags_go_and_entities_are_decoded() {
        let t =
            to_text("<p>Dear Mr &amp; Mrs O&#39;Neil,</p><p>NHS&nbsp;no. 943&#160;476 5919</p>");
        assert_eq!(t, "Dear Mr & Mrs O'Neil,\nNHS no. 943 476 5919\n");
    }

    #[test]
    fn scripts_styles_and_comments_are_not_text() {
        let t = to_text(
            "<head><title>x</title><style>p{color:red}</style></head><body><!-- 943 476 5919 --><script>var a='<p>';</script>Hello</body>",
        );
        assert_eq!(t.trim(), "Hello");
    }

    #[test]
    fn a_header_row_labels_every_cell_below_it() {
        let t = to_text(
            "<table><tr><th>Name</th><th>Date of birth</th></tr><tr><td>Amy Pond</td><td>04/05/2014</td></tr><tr><td>Rory</td><td>01/02/2014</td></tr></table>",
        );
        assert!(
            t.contains("Name: Amy Pond\nDate of birth: 04/05/2014\n"),
            "{t}"
        );
        assert!(t.contains("Date of birth: 01/02/2014"), "{t}");
    }

    #[test]
    fn tables_without_a_header_keep_cells_apart() {
        let t =
            to_text("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></table>");
        assert_eq!(t.trim(), "1\t2\n3\t4");
    }

    #[test]
    fn broken_html_still_gives_its_text() {
        assert_eq!(
            to_text("<p>unclosed <b>bold <table><tr><td>cell").trim(),
            "unclosed bold\ncell"
        );
        assert_eq!(
            to_text("a < b & c 943 476 5919").trim(),
            "a < b & c 943 476 5919"
        );
        assert_eq!(
            to_text("x <b unclosed 943 476 5919").trim(),
            "x <b unclosed 943 476 5919"
        );
        assert_eq!(to_text("x &unknown; y"), "x &unknown; y");
    }
}

#[cfg(test)]
mod review_tests {
    use super::to_text;

    #[test]
    fn many_bare_angle_brackets_are_all_text() {
        // Quadratic scanning here would take minutes; linear, milliseconds.
        let input = format!("{}a>", "<a".repeat(200_000));
        assert_eq!(to_text(&input).trim(), "");
        let input = "<".repeat(200_000);
        assert_eq!(to_text(&input), input);
        let input = "<a ".repeat(200_000);
        assert_eq!(to_text(&input), input.trim_end());
    }

    #[test]
    fn an_unclosed_head_ends_at_body() {
        let t = to_text("<html><head><meta charset=utf-8><body><p>NHS number 999 526 0182");
        assert!(t.contains("NHS number 999 526 0182"), "{t:?}");
    }

    #[test]
    fn noscript_is_shown_by_mail_clients() {
        assert!(to_text("<noscript>NHS 999 526 0182</noscript>").contains("999 526 0182"));
    }

    #[test]
    fn invisible_characters_do_not_split_numbers() {
        assert_eq!(to_text("943&#8203;476&#x200B;5919").trim(), "9434765919");
    }

    #[test]
    fn a_key_value_table_keeps_label_and_value_on_one_line() {
        let t = to_text(
            "<table><tr><th>Date of birth</th><td>04/05/2014</td></tr><tr><th>UPN</th><td>X</td></tr></table>",
        );
        assert!(t.contains("Date of birth\t04/05/2014"), "{t:?}");
    }
}
