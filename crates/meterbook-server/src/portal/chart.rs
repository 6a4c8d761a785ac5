//! Stacked bar charts as inline SVG, drawn on the server (no script, no
//! library). Geometry is integer arithmetic on the exact values.

/// A stacked bar chart: one bar per label, one stack segment per series.
pub struct Stacked {
    pub title: String,
    pub labels: Vec<String>,
    /// (series name, one value per label); values are non-negative integers
    /// in any unit (minor currency units, millionths).
    pub series: Vec<(String, Vec<i128>)>,
    /// How a value reads (a closure: money needs its currency's exponent).
    pub format: Box<dyn Fn(i128) -> String + Send>,
}

/// Colour-blind-safe palette (Okabe–Ito), cycled.
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#666666",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Stacked {
    pub fn svg(&self) -> String {
        let (w, h, left, bottom, top) = (720i128, 260i128, 8i128, 28i128, 16i128);
        let plot_h = h - bottom - top;
        let n = self.labels.len().max(1) as i128;
        let totals: Vec<i128> = (0..self.labels.len())
            .map(|i| {
                self.series
                    .iter()
                    .map(|(_, v)| v.get(i).copied().unwrap_or(0).max(0))
                    .sum()
            })
            .collect();
        // A bar's label is its signed total (credits included), the figure the
        // page's tables show; its height stacks the positive segments.
        let sums: Vec<i128> = (0..self.labels.len())
            .map(|i| {
                self.series
                    .iter()
                    .map(|(_, v)| v.get(i).copied().unwrap_or(0))
                    .sum()
            })
            .collect();
        let max = totals.iter().copied().max().unwrap_or(0).max(1);
        let slot = (w - left) / n;
        let bar = (slot * 7 / 10).max(2);
        let mut out = format!(
            r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
            esc(&self.title),
            esc(&self.title)
        );
        out.push_str(&format!(
            r##"<line x1="{left}" y1="{}" x2="{w}" y2="{}" stroke="#999" stroke-width="1"/>"##,
            h - bottom,
            h - bottom
        ));
        for (i, label) in self.labels.iter().enumerate() {
            let x = left + slot * i as i128 + (slot - bar) / 2;
            let mut y = h - bottom;
            for (k, (name, values)) in self.series.iter().enumerate() {
                let v = values.get(i).copied().unwrap_or(0).max(0);
                if v == 0 {
                    continue;
                }
                let bh = (v * plot_h / max).max(1);
                y -= bh;
                out.push_str(&format!(
                    r#"<rect x="{x}" y="{y}" width="{bar}" height="{bh}" fill="{}"><title>{}: {} ({})</title></rect>"#,
                    PALETTE[k % PALETTE.len()],
                    esc(label),
                    esc(name),
                    esc(&(self.format)(v))
                ));
            }
            if totals[i] > 0 || sums[i] != 0 {
                // The bar's total above it: the chart reads without hovering.
                out.push_str(&format!(
                    r##"<text x="{}" y="{}" text-anchor="middle" font-size="10" fill="#333">{}</text>"##,
                    x + bar / 2,
                    (y - 3).max(9),
                    esc(&(self.format)(sums[i]))
                ));
            }
            out.push_str(&format!(
                r#"<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
                x + bar / 2,
                h - bottom + 16,
                esc(label)
            ));
        }
        out.push_str("</svg>");
        out
    }

    /// The legend as HTML (text and colour swatch for each series).
    pub fn legend(&self) -> String {
        let mut out = String::from(r#"<ul class="legend">"#);
        for (k, (name, _)) in self.series.iter().enumerate() {
            out.push_str(&format!(
                r#"<li><span class="swatch sw{}"></span>{}</li>"#,
                k % PALETTE.len(),
                esc(name)
            ));
        }
        out.push_str("</ul>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_total_and_escape_text() {
        let c = Stacked {
            title: "Usage <by> dept".into(),
            labels: vec!["Jan".into(), "Feb".into()],
            series: vec![("A&B".into(), vec![100, 50]), ("C".into(), vec![100, 0])],
            format: Box::new(|v| v.to_string()),
        };
        let svg = c.svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Usage &lt;by&gt; dept"));
        assert!(svg.contains("A&amp;B"));
        // Jan's total (200) fills the plot height (216): two bars of 108.
        assert_eq!(svg.matches(r#"height="108""#).count(), 2);
        // Each bar's total is written above it.
        assert!(svg.contains(">200</text>") && svg.contains(">50</text>"));
        assert_eq!(
            svg.matches("<rect").count(),
            3,
            "zero segments are not drawn"
        );
        assert!(c.legend().contains("A&amp;B"));
    }

    #[test]
    fn a_bar_reads_its_signed_total() {
        // A credit (negative segment) lowers the total the bar is labelled with.
        let c = Stacked {
            title: "t".into(),
            labels: vec!["Jan".into()],
            series: vec![("A".into(), vec![500]), ("B".into(), vec![-120])],
            format: Box::new(|v| v.to_string()),
        };
        assert!(c.svg().contains(">380</text>"), "{}", c.svg());
    }
}
