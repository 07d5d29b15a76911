//! Tables (HTML tables, CSV, later spreadsheets) rendered for scanning: with a
//! header row, each cell becomes `Header: value` on its own line, rows apart by
//! a blank line; without one, cells are tab-separated.

/// Longest header label repeated before each cell.
const MAX_LABEL: usize = 40;
/// Widest table whose header is repeated (beyond this, cells are tab-separated).
const MAX_LABELLED_COLUMNS: usize = 256;

/// A table being read row by row.
#[derive(Debug, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows_seen: usize,
    out: String,
}

impl Table {
    /// Adds a row. `marked_header` is true when the source says it is one
    /// (every cell a `<th>`). The first row of two or more cells is taken as
    /// the header when it is marked, or when no cell holds more than two
    /// digits (labels such as "Year 7", not data). A one-cell row before it
    /// (a title) is passed through and does not count as the first row.
    pub fn row(&mut self, cells: Vec<String>, marked_header: bool) {
        if cells.iter().all(String::is_empty) {
            return;
        }
        if self.rows_seen == 0 && cells.len() == 1 {
            self.out.push_str(&cells[0]);
            self.out.push('\n');
            return;
        }
        let first = self.rows_seen == 0;
        self.rows_seen += 1;
        let label_like = |c: &String| {
            c.is_empty()
                || c.chars().any(char::is_alphabetic)
                    && c.bytes().filter(u8::is_ascii_digit).count() <= 2
        };
        if first
            && cells.len() >= 2
            && cells.len() <= MAX_LABELLED_COLUMNS
            && (marked_header || cells.iter().all(label_like))
        {
            self.out.push_str(&cells.join("\t"));
            self.out.push('\n');
            self.header = Some(cells.into_iter().map(|c| label(&c)).collect());
            return;
        }
        match &self.header {
            Some(h) => {
                for (i, c) in cells.iter().enumerate() {
                    if c.is_empty() {
                        continue;
                    }
                    if let Some(l) = h.get(i).filter(|l| !l.is_empty()) {
                        self.out.push_str(l);
                        self.out.push_str(": ");
                    }
                    self.out.push_str(c);
                    self.out.push('\n');
                }
                self.out.push('\n');
            }
            None => {
                self.out.push_str(&cells.join("\t"));
                self.out.push('\n');
            }
        }
    }

    /// The rendered text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn label(cell: &str) -> String {
    let one_line: String = cell.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(MAX_LABEL).collect()
}

/// Reads CSV (or TSV, or semicolon-separated as European Excel writes it) into
/// a table.
pub fn csv_to_text(text: &str) -> String {
    // The delimiter is the one most used on the first lines (a title line
    // above the table has none).
    let count = |c: char| text.lines().take(5).map(|l| l.matches(c).count()).max();
    let delimiter = [(b';', count(';')), (b'\t', count('\t')), (b',', count(','))]
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map_or(b',', |(d, _)| d);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut table = Table::default();
    for record in reader.records() {
        match record {
            Ok(r) => table.row(r.iter().map(|f| f.trim().to_string()).collect(), false),
            // Bad quoting: keep what is there as plain text rather than lose it.
            Err(_) => return text.to_string(),
        }
    }
    table.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_header_labels_each_field() {
        let t = csv_to_text("Name,UPN,DOB\r\n\"Pond, Amy\",A820200114001,04/05/2014\r\n");
        assert_eq!(
            t,
            "Name\tUPN\tDOB\nName: Pond, Amy\nUPN: A820200114001\nDOB: 04/05/2014\n\n"
        );
    }

    #[test]
    fn a_first_row_with_numbers_is_data_not_a_header() {
        let t = csv_to_text("1,2\n3,4\n");
        assert_eq!(t, "1\t2\n3\t4\n");
    }

    #[test]
    fn a_title_row_does_not_hide_the_header_below_it() {
        let t = csv_to_text("Class list 7B\nName,Year 7 UPN\nAmy,A820200114001\n");
        assert!(t.starts_with("Class list 7B\nName\tYear 7 UPN\n"), "{t}");
        assert!(t.contains("Year 7 UPN: A820200114001"), "{t}");
    }

    #[test]
    fn semicolons_and_tabs_are_recognised() {
        assert!(csv_to_text("Name;DOB\nAmy;04/05/2014\n").contains("DOB: 04/05/2014"));
        assert!(csv_to_text("Name\tDOB\nAmy\t04/05/2014\n").contains("DOB: 04/05/2014"));
    }
}
