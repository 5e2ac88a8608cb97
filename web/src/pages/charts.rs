//! Small charts drawn on the server as SVG: no script, no chart library,
//! no inline style (the pages' CSP forbids it), only attributes and
//! classes the stylesheet colours. Each chart's scale is labelled, and its
//! `aria-label` says what it shows.

use std::fmt::Write as _;

/// Width and height of every chart's drawing area, in SVG units (the
/// stylesheet sizes the element; `preserveAspectRatio="none"` stretches).
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 60.0;

/// A quota bar: `used` of `limit` (`None`: not known; negative: none).
pub(crate) fn quota_bar(used: i64, limit: Option<i64>) -> String {
    let fraction = match limit {
        Some(max) if max > 0 => (used as f64 / max as f64).clamp(0.0, 1.0),
        _ => 0.0,
    };
    let level = if fraction >= 0.9 {
        "full"
    } else if fraction >= 0.7 {
        "high"
    } else {
        "ok"
    };
    format!(
        "<svg class=\"bar\" viewBox=\"0 0 100 8\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"{:.0}% of the quota\"><rect class=\"track\" width=\"100\" height=\"8\"/>\
         <rect class=\"fill {level}\" width=\"{:.1}\" height=\"8\"/></svg>",
        fraction * 100.0,
        fraction * 100.0
    )
}

fn points(values: &[f64], max: f64) -> String {
    let step = if values.len() > 1 {
        WIDTH / (values.len() - 1) as f64
    } else {
        0.0
    };
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        let y = HEIGHT - (v / max).clamp(0.0, 1.0) * (HEIGHT - 2.0) - 1.0;
        let _ = write!(out, "{:.1},{:.1} ", i as f64 * step, y);
    }
    out.trim_end().to_owned()
}

/// A line of `values` (oldest first) under `title`, scaled to the larger
/// of their maximum and `floor`, with the maximum labelled in `unit`.
pub(crate) fn line(title: &str, values: &[f64], floor: f64, unit: &str) -> String {
    let max = values
        .iter()
        .copied()
        .fold(floor, f64::max)
        .max(f64::MIN_POSITIVE);
    let last = values.last().copied().unwrap_or(0.0);
    let mut svg = open(
        title,
        &format!("now {}, top {}", amount(last, unit), amount(max, unit)),
    );
    if values.is_empty() {
        svg.push_str(&empty());
    } else {
        let _ = write!(
            svg,
            "<polyline class=\"line\" fill=\"none\" points=\"{}\"/>",
            points(values, max)
        );
    }
    close(svg)
}

/// Bars per interval, stacked by kind (`series` oldest first; each entry
/// the counts by kind), a class per kind for its colour.
pub(crate) fn stacked_bars(title: &str, series: &[Vec<(&str, u64)>], floor: f64) -> String {
    let totals: Vec<f64> = series
        .iter()
        .map(|kinds| kinds.iter().map(|(_, n)| *n as f64).sum())
        .collect();
    let max = totals.iter().copied().fold(floor, f64::max).max(1.0);
    let sum: f64 = totals.iter().sum();
    let mut svg = open(title, &format!("{} in all, top {} per interval", sum, max));
    if series.is_empty() {
        svg.push_str(&empty());
    }
    let width = WIDTH / series.len().max(1) as f64;
    for (i, kinds) in series.iter().enumerate() {
        let mut y = HEIGHT;
        for (kind, n) in kinds {
            if *n == 0 {
                continue;
            }
            let h = *n as f64 / max * (HEIGHT - 2.0);
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"kind {kind}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\"><title>{n} {kind}</title></rect>",
                i as f64 * width,
                y,
                (width * 0.8).max(0.5),
                h
            );
        }
    }
    close(svg)
}

/// Health as a strip of coloured cells, one per interval.
pub(crate) fn health_strip(title: &str, healths: &[&str]) -> String {
    let mut svg = format!(
        "<svg class=\"strip\" viewBox=\"0 0 {WIDTH} 8\" preserveAspectRatio=\"none\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"{title}\">"
    );
    let width = WIDTH / healths.len().max(1) as f64;
    for (i, health) in healths.iter().enumerate() {
        let _ = write!(
            svg,
            "<rect class=\"health-cell {health}\" x=\"{:.2}\" width=\"{:.2}\" height=\"8\"/>",
            i as f64 * width,
            width + 0.05
        );
    }
    svg.push_str("</svg>");
    svg
}

fn open(title: &str, label: &str) -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"{title}: {label}\"><rect class=\"frame\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\"/>"
    )
}

fn close(mut svg: String) -> String {
    svg.push_str("</svg>");
    svg
}

fn empty() -> String {
    format!(
        "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no samples yet</text>",
        WIDTH / 2.0,
        HEIGHT / 2.0 + 4.0
    )
}

/// `12 ms`, `3`, `0.5 s`.
pub(crate) fn amount(value: f64, unit: &str) -> String {
    let number = if value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_bar_is_drawn_by_attributes_not_styles() {
        let bar = quota_bar(2, Some(20));
        assert!(bar.contains("width=\"10.0\""), "{bar}");
        assert!(!bar.contains("style"), "{bar}");
        assert!(quota_bar(19, Some(20)).contains("fill full"));
        assert!(quota_bar(5, Some(-1)).contains("width=\"0.0\""));
        assert!(quota_bar(5, None).contains("width=\"0.0\""));
        assert!(quota_bar(30, Some(20)).contains("width=\"100.0\""));
    }

    #[test]
    fn a_line_spans_the_width_and_is_scaled_to_its_top() {
        let svg = line("latency", &[0.0, 50.0, 100.0], 10.0, "ms");
        assert!(
            svg.contains("points=\"0.0,59.0 150.0,30.0 300.0,1.0\""),
            "{svg}"
        );
        assert!(svg.contains("now 100 ms, top 100 ms"), "{svg}");
        // Below the floor, the floor is the top: a flat 1 ms is no cliff.
        let flat = line("latency", &[1.0, 1.0], 10.0, "ms");
        assert!(flat.contains("top 10 ms"), "{flat}");
        assert!(line("x", &[], 1.0, "").contains("no samples yet"));
        assert!(!svg.contains("style"));
    }

    #[test]
    fn bars_stack_each_kind_in_its_class() {
        let svg = stacked_bars(
            "failures",
            &[
                vec![("transport", 2), ("quota", 2)],
                vec![],
                vec![("transport", 1)],
            ],
            1.0,
        );
        assert_eq!(svg.matches("class=\"kind transport\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("class=\"kind quota\"").count(), 1, "{svg}");
        assert!(svg.contains("5 in all, top 4 per interval"), "{svg}");
        assert!(svg.contains("<title>2 quota</title>"));
    }

    #[test]
    fn a_health_strip_has_a_cell_per_interval() {
        let svg = health_strip("health", &["healthy", "down", "down"]);
        assert_eq!(svg.matches("health-cell down").count(), 2);
        assert_eq!(svg.matches("health-cell healthy").count(), 1);
    }
}
