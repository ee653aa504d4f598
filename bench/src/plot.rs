//! The latency distributions as one SVG: a panel per load, latency (log
//! scale) against percentile on a "nines" axis, where p90, p99, p99.9 and
//! p99.99 are evenly spaced, as HdrHistogram plots them.

use std::fmt::Write;

use crate::dataplane::Case;
use crate::setup::System;

const COLOURS: [(System, &str); 11] = [
    (System::Direct, "#555555"),
    (System::WeftGateway, "#1f77b4"),
    (System::WeftMesh, "#d62728"),
    (System::Nginx, "#2ca02c"),
    (System::Haproxy, "#ff7f0e"),
    (System::WeftGatewayNoTelemetry, "#9ecae1"),
    (System::WeftMeshNoTelemetry, "#ff9896"),
    (System::WeftGatewaySchedOther, "#6baed6"),
    (System::WeftMeshSchedOther, "#9467bd"),
    (System::NginxSchedBatch, "#98df8a"),
    (System::WeftMeshPlaintext, "#8c564b"),
];

fn colour(s: System) -> &'static str {
    COLOURS
        .iter()
        .find(|(x, _)| *x == s)
        .map(|(_, c)| *c)
        .unwrap_or("#000")
}

/// Percentile → position on the nines axis (p90 → 1, p99 → 2, …).
fn nines(q: f64) -> f64 {
    -(1.0 - q / 100.0).log10()
}

const W: f64 = 420.0;
const H: f64 = 260.0;
const PAD: f64 = 46.0;

pub fn svg(cases: &[Case]) -> String {
    // One panel per fixed-rate load, in the order they ran.
    let mut loads: Vec<(crate::oha::Proto, u32, u32)> = Vec::new();
    for c in cases {
        if let Some(rate) = c.rate {
            let key = (c.proto, rate, c.connections);
            if !loads.contains(&key) {
                loads.push(key);
            }
        }
    }
    let cols = 2.0_f64;
    let rows = (loads.len() as f64 / cols).ceil().max(1.0);
    let legend_h = 28.0;
    let (width, height) = (cols * W, rows * H + legend_h);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let mut x = 10.0;
    for (s, c) in COLOURS {
        if cases.iter().any(|k| k.system == s) {
            let _ = writeln!(
                out,
                r#"<rect x="{x}" y="9" width="14" height="4" fill="{c}"/><text x="{}" y="15">{}</text>"#,
                x + 18.0,
                escape(s.label())
            );
            x += 26.0 + s.label().len() as f64 * 6.0;
        }
    }
    for (i, (proto, rate, conns)) in loads.iter().enumerate() {
        let ox = (i as f64 % cols) * W;
        let oy = legend_h + (i as f64 / cols).floor() * H;
        let series: Vec<&Case> = cases
            .iter()
            .filter(|c| {
                c.proto == *proto
                    && c.rate == Some(*rate)
                    && c.connections == *conns
                    && c.round == 0
            })
            .collect();
        let all: Vec<f64> = series
            .iter()
            .flat_map(|c| c.outcome.percentiles.iter().map(|(_, v)| *v))
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min).max(0.001);
        let hi = all.iter().cloned().fold(0.0, f64::max).max(lo * 10.0);
        let (ylo, yhi) = (lo.log10().floor(), hi.log10().ceil());
        let xmax = nines(99.99);
        let px = |q: f64| ox + PAD + nines(q) / xmax * (W - PAD - 14.0);
        let py =
            |ms: f64| oy + H - PAD + 10.0 - (ms.log10() - ylo) / (yhi - ylo) * (H - PAD - 24.0);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-weight="bold">{} · {rate} requests/s · {conns} connections</text>"#,
            ox + PAD,
            oy + 14.0,
            proto.label()
        );
        for q in [10.0, 50.0, 90.0, 99.0, 99.9, 99.99] {
            let x = px(q);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">p{q}</text>"##,
                py(10f64.powf(yhi)),
                py(10f64.powf(ylo)),
                py(10f64.powf(ylo)) + 14.0
            );
        }
        let mut e = ylo;
        while e <= yhi {
            let y = py(10f64.powf(e));
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"##,
                px(10.0),
                px(99.99),
                px(10.0) - 4.0,
                y + 4.0,
                10f64.powf(e)
            );
            e += 1.0;
        }
        for c in series {
            let points: Vec<String> = c
                .outcome
                .percentiles
                .iter()
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .map(|(q, v)| format!("{:.1},{:.1}", px(*q), py(*v)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.6" points="{}"/>"#,
                colour(c.system),
                points.join(" ")
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_spaces_p90_p99_p999_evenly() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
    }
}
