//! Invariants the fuzz targets share.

/// The longest error message any input may produce (the quoting rule keeps
/// every quoted value to a short prefix).
pub const MAX_MESSAGE: usize = 1024;

/// An error message is short and one line: it cannot flood a log or a
/// response body, nor forge a log line.
pub fn check_message(m: &str) {
    assert!(m.len() < MAX_MESSAGE, "{} bytes: {m:.300}", m.len());
    assert!(!m.contains(['\n', '\r']), "line break in: {m:?}");
}

/// `fields` as one CSV record, every field quoted.
pub fn csv_record<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = fields
        .into_iter()
        .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
        .collect();
    quoted.join(",") + "\n"
}
