//! Usage profiles: the eight descriptive fields of a usage record, stored once
//! per distinct combination as length-prefixed text (`len:value` × 8).

/// Appends the encoding of `fields` to `out` (once per ingested row: the
/// length is written by hand, not through `fmt`).
pub fn encode(fields: &[&str; 8], out: &mut String) {
    for f in fields {
        let mut digits = [0u8; 20];
        out.push_str(meterbook_core::fixed::u64_digits(
            f.len() as u64,
            &mut digits,
        ));
        out.push(':');
        out.push_str(f);
    }
}

/// A decoded profile: the text and where each field lies in it.
pub struct Profile {
    text: Box<str>,
    spans: [(u32, u32); 8],
}

impl Profile {
    /// Eight empty fields (profile id 0).
    pub fn empty() -> Profile {
        Profile {
            text: Box::from(""),
            spans: [(0, 0); 8],
        }
    }

    pub fn decode(text: String) -> Option<Profile> {
        let mut spans = [(0u32, 0u32); 8];
        let b = text.as_bytes();
        let mut at = 0usize;
        for span in spans.iter_mut() {
            let colon = at + b.get(at..)?.iter().position(|c| *c == b':')?;
            let len: usize = text.get(at..colon)?.parse().ok()?;
            let start = colon + 1;
            let end = start.checked_add(len)?;
            text.get(start..end)?;
            *span = (start as u32, end as u32);
            at = end;
        }
        (at == b.len()).then(|| Profile {
            text: text.into_boxed_str(),
            spans,
        })
    }

    pub fn field(&self, i: usize) -> &str {
        let (a, b) = self.spans[i];
        &self.text[a as usize..b as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_separators_inside_fields() {
        let f = [
            "/sub/x",
            "rg:1",
            "",
            "Compute",
            r#"{"a":"1:2"}"#,
            "",
            "9:",
            "é",
        ];
        let mut s = String::new();
        encode(&f, &mut s);
        assert!(s.starts_with("6:/sub/x4:rg:10:7:Compute11:"), "{s}");
        let p = Profile::decode(s).unwrap();
        for (i, v) in f.iter().enumerate() {
            assert_eq!(p.field(i), *v);
        }
        assert!(Profile::decode("3:ab".into()).is_none());
    }
}
