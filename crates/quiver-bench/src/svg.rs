//! A recall-vs-QPS plot as a standalone SVG file, drawn by hand: recall@10 on the x axis
//! (linear), queries per second on the y axis (log scale, since ef sweeps span orders of
//! magnitude), one polyline with markers per series, and a legend.

use std::fmt::Write as _;

/// One line of the plot: `(recall, qps)` points in sweep order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 720.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders `series` with `title`.
pub fn recall_qps(title: &str, series: &[Series]) -> String {
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.1 > 0.0);
    let (mut rmin, mut qmin, mut qmax) = (1.0f64, f64::MAX, 0.0f64);
    for &(r, q) in pts {
        rmin = rmin.min(r);
        qmin = qmin.min(q);
        qmax = qmax.max(q);
    }
    if qmax <= 0.0 {
        (qmin, qmax) = (1.0, 10.0);
    }
    let x0 = ((rmin * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    let (l0, l1) = (
        qmin.log10().floor(),
        qmax.log10().ceil().max(qmin.log10().floor() + 1.0),
    );
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |r: f64| LEFT + (r - x0) / (1.0 - x0) * pw;
    let py = |q: f64| TOP + ph - (q.max(1e-9).log10() - l0) / (l1 - l0) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        LEFT + pw / 2.0,
        esc(title)
    );
    // Grid and tick labels.
    let steps = 10;
    for i in 0..=steps {
        let r = x0 + (1.0 - x0) * f64::from(i) / f64::from(steps);
        let x = px(r);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{r:.2}</text>",
            TOP + ph,
            TOP + ph + 16.0
        );
    }
    let mut decade = l0;
    while decade <= l1 {
        let y = py(10f64.powf(decade));
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            10f64.powf(decade)
        );
        decade += 1.0;
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">recall@10</text>\n\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">queries per second (log)</text>",
        LEFT + pw / 2.0,
        H - 10.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, series) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let coords: Vec<String> = series
            .points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|&(r, q)| format!("{:.1},{:.1}", px(r), py(q)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            coords.join(" ")
        );
        for c in &coords {
            let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                s,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        let ly = TOP + 14.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            W - RIGHT + 12.0,
            W - RIGHT + 36.0,
            W - RIGHT + 42.0,
            ly + 4.0,
            esc(&series.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_one_line_and_marker_per_point() {
        let s = [
            Series {
                name: "quiver <1t>".into(),
                points: vec![(0.8, 5000.0), (0.95, 2000.0), (0.99, 800.0)],
            },
            Series {
                name: "hnswlib".into(),
                points: vec![(0.9, 3000.0), (0.97, 1500.0)],
            },
        ];
        let svg = recall_qps("ann & recall", &s);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("quiver &lt;1t&gt;") && svg.contains("ann &amp; recall"));
        // Decades 100..10000 are labelled.
        assert!(svg.contains(">100</text>") && svg.contains(">10000</text>"));
        assert!(!svg.contains("NaN"));
    }
}
