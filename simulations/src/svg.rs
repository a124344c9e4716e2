//! Small SVG charts for reports: grouped bars, no dependencies, readable in any browser.

use std::fmt::Write;

const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A chart's opening: the `<svg>` element, a white background and the title.
fn open(w: f64, h: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<rect width="{w}" height="{h}" fill="white"/><text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    s
}

/// A "nice" axis maximum at or above `v`.
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Grouped bars: one group per category, one bar per series, with a legend. Negative values
/// are drawn as 0.
pub fn bars(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
    y_max: Option<f64>,
) -> String {
    let (w, h) = (860.0, 420.0);
    let (left, right, top, bottom) = (70.0, 170.0, 40.0, 80.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = y_max.unwrap_or_else(|| {
        nice(
            series
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .fold(0.0, f64::max),
        )
    });
    let mut s = open(w, h, title);
    for k in 0..=5 {
        let v = max * f64::from(k) / 5.0;
        let y = top + plot_h - plot_h * f64::from(k) / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
    }
    let _ = write!(
        s,
        r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        esc(y_label)
    );
    let groups = categories.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (g, cat) in categories.iter().enumerate() {
        let gx = left + group_w * g as f64 + group_w * 0.1;
        for (k, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(g).copied().unwrap_or(0.0).max(0.0).min(max);
            let bh = plot_h * v / max;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                gx + bar_w * k as f64,
                top + plot_h - bh,
                (bar_w - 1.0).max(1.0),
                PALETTE[k % PALETTE.len()],
                esc(cat),
                fmt_tick(vals.get(g).copied().unwrap_or(0.0))
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" transform="rotate(-30 {:.1} {:.1})">{}</text>"#,
            gx + group_w * 0.4,
            top + plot_h + 16.0,
            gx + group_w * 0.4,
            top + plot_h + 16.0,
            esc(cat)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" stroke="#333"/><line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    for (k, (name, _)) in series.iter().enumerate() {
        let y = top + 16.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{y}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            w - right + 14.0,
            PALETTE[k % PALETTE.len()],
            w - right + 30.0,
            y + 9.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Changes against a reference, as horizontal bars either side of zero: one row per category
/// (e.g. a store), one bar per series (e.g. a rule set), gains to the right in the series'
/// colour, losses to the left, each bar labelled with its value.
pub fn changes(title: &str, unit: &str, rows: &[String], series: &[(String, Vec<f64>)]) -> String {
    let bar_h = 12.0;
    let row_h = bar_h * series.len().max(1) as f64 + 8.0;
    let (left, right, top, bottom) = (170.0, 40.0, 40.0, 40.0 + 16.0 * series.len() as f64);
    let w = 860.0;
    let plot_w = w - left - right;
    let h = top + bottom + row_h * rows.len().max(1) as f64;
    let max = nice(
        series
            .iter()
            .flat_map(|(_, v)| v.iter().map(|x| x.abs()))
            .fold(0.0, f64::max),
    );
    let zero = left + plot_w / 2.0;
    let x_of = |v: f64| zero + (v / max).clamp(-1.0, 1.0) * plot_w / 2.0;
    let mut s = open(w, h, title);
    let plot_bottom = top + row_h * rows.len().max(1) as f64;
    for k in -2..=2 {
        let v = max * f64::from(k) / 2.0;
        let x = x_of(v);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{plot_bottom:.1}" stroke="{}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}{}</text>"##,
            if k == 0 { "#333" } else { "#ddd" },
            plot_bottom + 14.0,
            if v > 0.0 { "+" } else { "" },
            fmt_tick(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{zero}" y="{:.1}" text-anchor="middle">{}</text>"#,
        plot_bottom + 28.0,
        esc(&format!("change, {unit} (less ← → more)"))
    );
    for (r, name) in rows.iter().enumerate() {
        let y0 = top + row_h * r as f64 + 4.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + row_h / 2.0,
            esc(name)
        );
        for (k, (label, vals)) in series.iter().enumerate() {
            let v = vals.get(r).copied().unwrap_or(0.0);
            let (a, b) = (x_of(v.min(0.0)), x_of(v.max(0.0)));
            let y = y0 + bar_h * k as f64;
            let _ = write!(
                s,
                r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}, {}: {}{}</title></rect>"#,
                (b - a).max(0.5),
                bar_h - 2.0,
                PALETTE[k % PALETTE.len()],
                esc(name),
                esc(label),
                if v > 0.0 { "+" } else { "" },
                fmt_tick(v)
            );
        }
    }
    for (k, (name, _)) in series.iter().enumerate() {
        let y = plot_bottom + 36.0 + 16.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{left}" y="{y:.1}" width="10" height="10" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
            PALETTE[k % PALETTE.len()],
            left + 16.0,
            y + 9.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_go_either_side_of_zero() {
        let svg = changes(
            "t",
            "yuan",
            &["S<1>".to_string(), "S2".to_string()],
            &[("a".to_string(), vec![100.0, -50.0])],
        );
        assert!(svg.contains("S&lt;1&gt;, a: +100"), "{svg}");
        assert!(svg.contains("S2, a: -50"), "{svg}");
        // Zero is the middle of the plot (170 + 650 / 2); +100 reaches the right edge.
        assert!(
            svg.contains(r#"<rect x="495.0" y="44.0" width="325.0""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect x="332.5" y="64.0" width="162.5""#),
            "{svg}"
        );
    }

    #[test]
    fn bars_are_drawn_to_scale_with_escaped_labels() {
        let svg = bars(
            "a <title>",
            "share",
            &["p&q".into(), "r".into()],
            &[
                ("s1".into(), vec![0.5, 1.0]),
                ("s2".into(), vec![0.25, -1.0]),
            ],
            Some(1.0),
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;title&gt;") && svg.contains("p&amp;q"));
        // Plot height 300: 0.5 → 150, 1.0 → 300, 0.25 → 75, negative → 0.
        for h in [
            "height=\"150.0\"",
            "height=\"300.0\"",
            "height=\"75.0\"",
            "height=\"0.0\"",
        ] {
            assert!(svg.contains(h), "{h}");
        }
        assert_eq!(nice(0.83), 1.0);
        assert_eq!(nice(1234.0), 2000.0);
    }
}
