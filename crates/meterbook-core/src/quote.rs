//! Quoting input in messages: every error that repeats a value from a file, a
//! form or a URL shows it through [`quote`], so a message stays short whatever
//! the input (a 50 MB header name gives a 100-byte error, not a 50 MB one) and
//! a value cannot forge log lines (newlines and other control characters are
//! escaped).
//!
//! ```
//! use meterbook_core::quote::quote;
//! assert_eq!(quote("2026-13-01").to_string(), "2026-13-01");
//! assert_eq!(quote("a\nb").to_string(), "a\\nb");
//! let long = "x".repeat(1000);
//! assert_eq!(quote(&long).to_string(), format!("{}… (1000 bytes)", "x".repeat(40)));
//! ```

use std::fmt;

/// How many characters of a value a message shows.
pub const SHOWN_CHARS: usize = 40;

/// A value as shown in a message: see [`quote`].
#[derive(Clone, Copy, Debug)]
pub struct Quoted<'a>(&'a str);

/// `value` as a message shows it: at most its first [`SHOWN_CHARS`]
/// characters, escaped like [`str::escape_debug`] (quote marks excepted), then
/// `…` and the full length in bytes when it was cut. The caller adds the
/// punctuation around it (a message's backticks stay as they were).
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.char_indices();
        for (_, c) in chars.by_ref().take(SHOWN_CHARS) {
            write_escaped(f, c)?;
        }
        match chars.next() {
            None => Ok(()),
            Some(_) => write!(f, "… ({} bytes)", self.0.len()),
        }
    }
}

/// Shortens a message that may embed input verbatim (a third-party parser's
/// error text) to the same length budget, escaped the same way.
pub fn clip(message: &str) -> String {
    /// A message is allowed more than a value: it has words around the value.
    const MAX_CHARS: usize = 4 * SHOWN_CHARS;
    let mut out = String::new();
    let mut chars = message.chars();
    for c in chars.by_ref().take(MAX_CHARS) {
        // A String never fails to take a write.
        let _ = fmt::Write::write_fmt(&mut out, format_args!("{}", Escaped(c)));
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

struct Escaped(char);

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        // Quote marks are harmless in a message and common in JSON values.
        '"' | '\'' => fmt::Write::write_char(f, c),
        // Bidirectional controls are printable to escape_debug but can make a
        // log line read differently from what it holds.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => write!(f, "\\u{{{:x}}}", c as u32),
        _ => write!(f, "{}", c.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_shown_whole() {
        assert_eq!(quote("").to_string(), "");
        assert_eq!(quote("G-1").to_string(), "G-1");
        assert_eq!(quote(&"é".repeat(40)).to_string(), "é".repeat(40));
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let v = "é".repeat(41);
        assert_eq!(
            quote(&v).to_string(),
            format!("{}… (82 bytes)", "é".repeat(40))
        );
        let huge = "a".repeat(50 << 20);
        assert!(quote(&huge).to_string().len() < 100);
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let q = quote("x\n2026-11-01 ERROR forged\r\u{1b}[31m\u{202e}\\").to_string();
        assert!(!q.contains(['\n', '\r', '\u{1b}', '\u{202e}']), "{q}");
        assert!(q.starts_with("x\\n2026-11-01 ERROR forged\\r\\u{1b}[31m\\u{202e}\\\\"));
        // The worst case stays short: every shown character escaped to 10 bytes.
        assert!(quote(&"\u{10ffff}".repeat(1000)).to_string().len() < 450);
    }

    #[test]
    fn clip_bounds_third_party_messages() {
        assert_eq!(
            clip("expected value at line 1 column 2"),
            "expected value at line 1 column 2"
        );
        let m = clip(&format!(
            "invalid type: string \"{}\"\n",
            "z".repeat(10_000)
        ));
        assert!(m.ends_with('…') && m.chars().count() == 161, "{m}");
        assert!(!clip("a\nb").contains('\n'));
    }
}
