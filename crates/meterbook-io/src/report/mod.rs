//! The reports of design §4, streamed as CSV or JSON.

pub mod analysis;
pub mod balance;
pub mod export;
pub mod focus;
pub mod parquet;
pub mod prices;
pub mod table;
pub mod usage;

/// Output format of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Json,
}

/// What every report states about itself (design §4).
#[derive(Clone, Debug)]
pub struct ReportMeta {
    pub enrollment: String,
    /// `billingPeriod` or a date range.
    pub scope: ReportScope,
    pub generated_at: String,
    pub watermark: Option<String>,
    pub currency: String,
}

#[derive(Clone, Debug)]
pub enum ReportScope {
    Period(String),
    Range { from: String, to: String },
}

impl ReportMeta {
    /// The leading fields of a JSON report (without the braces).
    pub(crate) fn json_fields(&self) -> String {
        let mut s = format!(
            "\"enrollmentNumber\":{},",
            serde_json::to_string(&self.enrollment).expect("string")
        );
        match &self.scope {
            ReportScope::Period(p) => s.push_str(&format!("\"billingPeriodId\":\"{p}\",")),
            ReportScope::Range { from, to } => {
                s.push_str(&format!("\"startDate\":\"{from}\",\"endDate\":\"{to}\","))
            }
        }
        s.push_str(&format!(
            "\"currencyCode\":\"{}\",\"generatedAt\":\"{}\",\"usageCompleteThrough\":{}",
            self.currency,
            self.generated_at,
            self.watermark
                .as_ref()
                .map_or("null".to_string(), |w| format!("\"{w}\""))
        ));
        s
    }
}

/// Writes a JSON string literal.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    // Most values need no escaping: copy them between quotes.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_match_serde_json() {
        for s in [
            "plain",
            "",
            "quo\"te",
            "back\\slash",
            "tab\there",
            "nl\n",
            "é ✓ \u{7f}",
            "\u{1}",
        ] {
            let mut out = Vec::new();
            super::json_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }
}
