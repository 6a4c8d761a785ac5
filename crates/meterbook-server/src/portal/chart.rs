//! Stacked bar charts as inline SVG, drawn on the server (no script, no
//! library). Geometry is integer arithmetic on the exact values.
//!
//! Legibility: text is sized for the chart's smallest width (the page keeps
//! the chart at least 40rem wide, scrolling inside its own box on a phone),
//! a bar's total is turned upright when it is wider than its bar's slot, and
//! month labels are thinned out when they would overlap. A y axis with
//! labelled ticks reads the scale; a bar of 0 is labelled 0.
//!
//! Colours: a series is coloured by its name ([`slots`]), so the same
//! department or service has the same colour on every page.

use std::collections::BTreeMap;

/// A stacked bar chart: one bar per label, one stack segment per series.
pub struct Stacked {
    pub title: String,
    pub labels: Vec<String>,
    /// (series name, one value per label); values are non-negative integers
    /// in any unit (minor currency units, millionths).
    pub series: Vec<(String, Vec<i128>)>,
    /// How a value reads (a closure: money needs its currency's exponent).
    pub format: Box<dyn Fn(i128) -> String + Send>,
    /// Each series' palette slot (from [`slots`]); missing: its position.
    pub colours: Vec<usize>,
}

/// Colour-blind-safe palette (Okabe–Ito). Slot [`OTHER`] (grey) is kept for
/// "Other", the series beyond the largest seven.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#666666",
];

/// The slot of the "Other" series.
pub const OTHER: usize = 7;

/// FNV-1a: a hash that is the same in every build and on every machine.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Palette slots for a set of names: each name takes the slot its hash
/// points at, or the next free one (names taken in sorted order), so names
/// of a set of at most seven never share a colour. The slots depend only on
/// the set, not on the page: callers pass the same set (every name of that
/// kind in the viewer's scope over the term) on every page. Past seven names,
/// a name keeps its hash's slot.
pub fn slots<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let mut taken = [false; OTHER];
    let mut out = BTreeMap::new();
    for name in names {
        let want = (fnv(name) % OTHER as u64) as usize;
        let slot = (0..OTHER)
            .map(|k| (want + k) % OTHER)
            .find(|s| !taken[*s])
            .unwrap_or(want);
        taken[slot] = true;
        out.insert(name.to_string(), slot);
    }
    out
}

/// The slot of series `name` at position `k` of a chart, from `slots`.
pub fn slot_of(slots: &BTreeMap<String, usize>, name: &str, k: usize) -> usize {
    if name == "Other" {
        return OTHER;
    }
    slots.get(name).copied().unwrap_or(k % OTHER)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text widths are estimated from the character count (digits and month
/// names; a system font's are about 0.6 em wide).
fn text_w(s: &str, font: i128) -> i128 {
    s.chars().count() as i128 * font * 6 / 10
}

/// The smallest of 1, 2 or 5 times a power of ten that splits `largest`
/// into at most 4 steps.
fn round_step(largest: i128) -> i128 {
    let mut p = 1i128;
    loop {
        for m in [1, 2, 5] {
            if p * m * 4 >= largest {
                return p * m;
            }
        }
        p *= 10;
    }
}

/// Font sizes in the viewBox's units (720 wide, shown at least 640 px wide).
const FONT: i128 = 14;
const VALUE_FONT: i128 = 13;

impl Stacked {
    fn colour(&self, k: usize) -> usize {
        self.colours.get(k).copied().unwrap_or(k % PALETTE.len()) % PALETTE.len()
    }

    pub fn svg(&self) -> String {
        let (w, h, bottom) = (720i128, 300i128, 30i128);
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
        // The y axis: round steps (1, 2 or 5 times a power of ten) from 0 to
        // the first step at or above the largest total, labelled.
        let largest = totals.iter().copied().max().unwrap_or(0).max(1);
        let step = round_step(largest);
        let max = (largest + step - 1) / step * step;
        let ticks: Vec<(i128, String)> = (0..=max / step)
            .map(|k| (k * step, (self.format)(k * step)))
            .collect();
        let left = ticks.iter().map(|(_, t)| text_w(t, 12)).max().unwrap_or(0) + 10;
        let slot = ((w - left) / n).max(1);
        // Bars no wider than 90 units: one month alone is a bar, not a block.
        let bar = (slot * 7 / 10).clamp(2, 90);
        let values: Vec<String> = sums.iter().map(|v| (self.format)(*v)).collect();
        let widest = values
            .iter()
            .map(|v| text_w(v, VALUE_FONT))
            .max()
            .unwrap_or(0);
        // Totals wider than a slot stand upright above their bars.
        let upright = widest + 4 > slot;
        let top = if upright { widest + 8 } else { VALUE_FONT + 8 };
        let plot_h = h - bottom - top;
        // Month labels: every `step`-th, so they never overlap.
        let label_w = self
            .labels
            .iter()
            .map(|l| text_w(l, FONT))
            .max()
            .unwrap_or(0)
            + 6;
        let step = ((label_w + slot - 1) / slot).max(1) as usize;
        let mut out = format!(
            r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
            esc(&self.title),
            esc(&self.title)
        );
        for (v, t) in &ticks {
            let y = h - bottom - v * plot_h / max;
            out.push_str(&format!(
                r##"<line class="tick" x1="{left}" y1="{y}" x2="{w}" y2="{y}" stroke="#ddd" stroke-width="1"/><text class="axis" x="{}" y="{}" text-anchor="end" font-size="12" fill="#555">{}</text>"##,
                left - 4,
                y + 4,
                esc(t)
            ));
        }
        out.push_str(&format!(
            r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#999" stroke-width="1"/><line x1="{left}" y1="{}" x2="{w}" y2="{}" stroke="#999" stroke-width="1"/>"##,
            h - bottom,
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
                    PALETTE[self.colour(k)],
                    esc(label),
                    esc(name),
                    esc(&(self.format)(v))
                ));
            }
            // The bar's total above it (0 for an empty bar): the chart reads
            // without hovering.
            let cx = x + bar / 2;
            if upright {
                out.push_str(&format!(
                    r##"<text x="{cx}" y="{}" text-anchor="start" font-size="{VALUE_FONT}" transform="rotate(-90 {cx} {})" dy="4" fill="#333">{}</text>"##,
                    y - 4,
                    y - 4,
                    esc(&values[i])
                ));
            } else {
                out.push_str(&format!(
                    r##"<text x="{cx}" y="{}" text-anchor="middle" font-size="{VALUE_FONT}" fill="#333">{}</text>"##,
                    y - 4,
                    esc(&values[i])
                ));
            }
            if i % step == 0 {
                out.push_str(&format!(
                    r#"<text x="{cx}" y="{}" text-anchor="middle" font-size="{FONT}">{}</text>"#,
                    h - bottom + 18,
                    esc(label)
                ));
            }
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
                self.colour(k),
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

    fn chart(labels: &[&str], series: Vec<(&str, Vec<i128>)>) -> Stacked {
        Stacked {
            title: "t".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            series: series
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
            format: Box::new(|v| v.to_string()),
            colours: Vec::new(),
        }
    }

    /// The `height` attributes of the chart's bars.
    fn heights(svg: &str) -> Vec<i128> {
        svg.split("<rect")
            .skip(1)
            .map(|r| {
                let i = r.find("height=\"").expect("a height") + 8;
                r[i..i + r[i..].find('"').expect("end")]
                    .parse()
                    .expect("a number")
            })
            .collect()
    }

    #[test]
    fn bars_scale_to_the_largest_total_and_escape_text() {
        let mut c = chart(
            &["Jan", "Feb"],
            vec![("A&B", vec![100, 50]), ("C", vec![100, 0])],
        );
        c.title = "Usage <by> dept".into();
        let svg = c.svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Usage &lt;by&gt; dept"));
        assert!(svg.contains("A&amp;B"));
        // Jan's total (200) fills the plot: its two segments are equal and
        // twice Feb's single one.
        let hs = heights(&svg);
        assert_eq!(hs.len(), 3, "zero segments are not drawn");
        assert_eq!(hs[0], hs[1]);
        assert_eq!(hs[2], hs[0] / 2);
        // Each bar's total is written above it.
        assert!(svg.contains(">200</text>") && svg.contains(">50</text>"));
        assert!(c.legend().contains("A&amp;B"));
    }

    #[test]
    fn a_bar_reads_its_signed_total() {
        // A credit (negative segment) lowers the total the bar is labelled with.
        let c = chart(&["Jan"], vec![("A", vec![500]), ("B", vec![-120])]);
        assert!(c.svg().contains(">380</text>"), "{}", c.svg());
    }

    #[test]
    fn an_empty_bar_reads_0_and_the_axis_is_labelled() {
        // A used-up month (0) is labelled 0, not left blank; the y axis has
        // labelled ticks at 0, half and the largest total.
        let c = chart(&["Jan", "Feb", "Mar"], vec![("Left", vec![930, 0, 0])]);
        let svg = c.svg();
        let values = svg.matches(r##"fill="#333">0</text>"##).count();
        assert_eq!(values, 2, "Feb and Mar read 0: {svg}");
        // Round steps up to the first at or above 930.
        assert_eq!(svg.matches(r#"class="axis""#).count(), 3);
        for tick in ["0", "500", "1000"] {
            assert!(
                svg.contains(&format!(r##"fill="#555">{tick}</text>"##)),
                "axis tick {tick}: {svg}"
            );
        }
    }

    #[test]
    fn labels_are_legible_and_do_not_overlap() {
        // 36 months of wide totals: the totals stand upright, month labels
        // are thinned to fit, and no text is smaller than 12 units.
        let labels: Vec<String> = (0..36).map(|i| format!("M{i:02} 26")).collect();
        let labels: Vec<&str> = labels.iter().map(|s| s.as_str()).collect();
        let mut c = chart(&labels, vec![("A", vec![123_456_789; 36])]);
        c.format = Box::new(|v| format!("{v}.00 USD"));
        let svg = c.svg();
        assert_eq!(svg.matches("rotate(-90").count(), 36, "upright totals");
        let shown = labels
            .iter()
            .filter(|l| svg.contains(&format!(">{l}</text>")))
            .count();
        assert!((6..36).contains(&shown), "{shown} month labels");
        for size in svg.split("font-size=\"").skip(1) {
            let n: i128 = size[..size.find('"').expect("end")].parse().expect("size");
            assert!(n >= 12, "font-size {n}");
        }
        // Few bars: totals stay level.
        let c = chart(&["Jan", "Feb"], vec![("A", vec![5, 7])]);
        assert!(!c.svg().contains("rotate("));
    }

    #[test]
    fn a_name_keeps_its_colour_whatever_else_is_on_the_page() {
        let all = [
            "Finance",
            "Marketing",
            "Operations",
            "Research",
            "Shared IT",
        ];
        let s = slots(all.iter().copied());
        // Distinct for up to seven names, never the grey of "Other".
        let mut used: Vec<usize> = s.values().copied().collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), all.len());
        assert!(used.iter().all(|u| *u < OTHER));
        // The same set in another order gives the same slots.
        let again = slots(all.iter().rev().copied());
        assert_eq!(s, again);
        // A chart showing only some of them, in another order, uses the same colours.
        let mut c = chart(&["Jan"], vec![("Research", vec![1]), ("Finance", vec![2])]);
        c.colours = c
            .series
            .iter()
            .enumerate()
            .map(|(k, (n, _))| slot_of(&s, n, k))
            .collect();
        let legend = c.legend();
        assert!(legend.contains(&format!("sw{}\"></span>Research", s["Research"])));
        assert!(legend.contains(&format!("sw{}\"></span>Finance", s["Finance"])));
        assert_eq!(slot_of(&s, "Other", 0), OTHER);
    }
}
