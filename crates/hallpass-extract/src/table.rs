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
    /// (`<th>`). The first row is taken as the header when it is marked, or
    /// when it has at least two cells and no digits (labels, not data).
    pub fn row(&mut self, cells: Vec<String>, marked_header: bool) {
        if cells.iter().all(String::is_empty) {
            return;
        }
        let first = self.rows_seen == 0;
        self.rows_seen += 1;
        if first
            && cells.len() >= 2
            && cells.len() <= MAX_LABELLED_COLUMNS
            && (marked_header || cells.iter().all(|c| !c.bytes().any(|b| b.is_ascii_digit())))
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
    let first_line = text.lines().next().unwrap_or("");
    let count = |c: char| first_line.matches(c).count();
    let delimiter = [(b',', count(',')), (b'\t', count('\t')), (b';', count(';'))]
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
    fn semicolons_and_tabs_are_recognised() {
        assert!(csv_to_text("Name;DOB\nAmy;04/05/2014\n").contains("DOB: 04/05/2014"));
        assert!(csv_to_text("Name\tDOB\nAmy\t04/05/2014\n").contains("DOB: 04/05/2014"));
    }
}
