//! The bandwidth chart (PNG): GB/s against copy size, one line per path, one panel per direction.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One line of the chart: a name and (bytes, GB/s) points for host-to-device and device-to-host.
pub struct Series {
    pub name: String,
    pub h2d: Vec<(usize, f64)>,
    pub d2h: Vec<(usize, f64)>,
}

/// Font files tried for the labels (`RGPU_BENCH_FONT` first).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Any other `.ttf` under the usual font folders (a few levels deep).
fn other_fonts() -> Vec<String> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && depth > 0 {
                walk(&p, depth - 1, out);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
                out.push(p.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    for d in ["/usr/share/fonts", "/usr/local/share/fonts"] {
        walk(Path::new(d), 4, &mut out);
    }
    out.sort();
    out
}

fn load_font() -> Result<()> {
    if std::env::var("RGPU_BENCH_FONT").is_ok_and(|v| v == "none") {
        return Err(anyhow!("RGPU_BENCH_FONT=none"));
    }
    let candidates = std::env::var("RGPU_BENCH_FONT")
        .ok()
        .into_iter()
        .chain(FONTS.iter().map(|s| s.to_string()))
        .chain(other_fonts());
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // The font lives as long as the process: plotters keeps a reference to it.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(anyhow!(
        "no TrueType font found for the chart's labels (install fonts-dejavu-core, or set RGPU_BENCH_FONT)"
    ))
}

fn size_label(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{}M", b >> 20)
    } else {
        format!("{}K", b >> 10)
    }
}

/// Writes the chart to `path` (PNG). Where no font is found for the labels, the chart is drawn
/// without text and its legend is returned for printing beside it.
pub fn write(path: &Path, title: &str, series: &[Series]) -> Result<Option<String>> {
    let text = match load_font() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("rgpu-bench: {e}; the chart has no text");
            false
        }
    };
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    draw(root, title, series, text).map_err(|e| anyhow!("{e}"))?;
    if text {
        return Ok(None);
    }
    let mut legend = format!(
        "{title}: left host to device, right device to host; x: 4 KiB, then x2 per grid line; y: GB/s from 0 (top {:.2})\n",
        ymax(series)
    );
    for (i, s) in series.iter().enumerate() {
        let c = Palette99::pick(i).to_rgba();
        legend += &format!("  rgb({},{},{}): {}\n", c.0, c.1, c.2, s.name);
    }
    Ok(Some(legend))
}

fn ymax(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.h2d.iter().chain(&s.d2h))
        .map(|p| p.1)
        .fold(0.1f64, f64::max)
        * 1.15
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Series],
    text: bool,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = if text {
        root.titled(title, ("sans-serif", 22)).map_err(e)?
    } else {
        root.margin(20, 20, 20, 20)
    };
    let panels = root.split_evenly((1, 2));
    let ymax = ymax(series);
    // The x axis is log2 of the size: one tick per power of two.
    let log2 = |b: usize| b.max(1).ilog2() as i32;
    let xmax = series
        .iter()
        .flat_map(|s| s.h2d.iter().chain(&s.d2h))
        .map(|p| log2(p.0))
        .max()
        .unwrap_or(20);
    for (panel, (dir, pick)) in panels.iter().zip([
        (
            "host to device",
            (|s: &Series| &s.h2d) as fn(&Series) -> &Vec<(usize, f64)>,
        ),
        ("device to host", |s: &Series| &s.d2h),
    ]) {
        let mut builder = ChartBuilder::on(panel);
        builder.margin(12);
        if text {
            builder
                .caption(dir, ("sans-serif", 18))
                .x_label_area_size(40)
                .y_label_area_size(55);
        }
        let mut chart = builder
            .build_cartesian_2d(12..xmax + 1, 0f64..ymax)
            .map_err(e)?;
        if text {
            chart
                .configure_mesh()
                .x_desc("copy size (bytes)")
                .y_desc("GB/s")
                .x_labels((xmax - 11) as usize)
                .x_label_formatter(&|x| size_label(1usize << *x))
                .draw()
                .map_err(e)?;
        } else {
            chart
                .configure_mesh()
                .x_labels((xmax - 11) as usize)
                .disable_axes()
                .x_label_formatter(&|_| String::new())
                .y_label_formatter(&|_| String::new())
                .draw()
                .map_err(e)?;
        }
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(i32, f64)> = pick(s).iter().map(|&(b, g)| (log2(b), g)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(e)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(e)?;
        }
        if !text {
            continue;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}
