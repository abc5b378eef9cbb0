//! PNG plots (plotters, with an embedded DejaVu font, so nothing is needed from the system):
//! 2-D feature scatters coloured by class with centers marked, and ROC curves.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::{Error, Result};

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).ok();
    });
}

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Io { path: path.display().to_string(), source: std::io::Error::other(e) }
}

/// Draws a PNG with `draw` into a temporary file beside `path` and renames it into place:
/// a plot is replaced whole or not at all.
fn write_png(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    register_font();
    let mut staged = crate::files::Staged::new();
    staged.write_with(path, draw)?;
    staged.commit()
}

/// A distinct colour per class.
pub fn class_color(class: u32) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    let base = PALETTE[class as usize % 10];
    // Beyond ten classes, vary the shade.
    let shade = 1.0 - 0.3 * ((class as usize / 10) % 3) as f64;
    RGBColor((base.0 as f64 * shade) as u8, (base.1 as f64 * shade) as u8, (base.2 as f64 * shade) as u8)
}

fn bounds(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

/// Writes a scatter plot of 2-D `points` coloured by `labels`, with `centers` (one per
/// class) drawn as black-edged crosses: the paper's Figures 2 and 3.
pub fn scatter_2d(
    path: &Path,
    title: &str,
    points: &[[f32; 2]],
    labels: &[u32],
    centers: Option<&[[f32; 2]]>,
) -> Result<()> {
    write_png(path, |path| {
        let err = plot_err(path);
        let root = BitMapBackend::new(path, (800, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let all = points.iter().chain(centers.unwrap_or(&[]));
        let (x0, x1) = bounds(all.clone().map(|p| p[0]));
        let (y0, y1) = bounds(all.map(|p| p[1]));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart.configure_mesh().light_line_style(WHITE.mix(0.0)).draw().map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                points.iter().zip(labels).map(|(p, &l)| Circle::new((p[0], p[1]), 2, class_color(l).mix(0.6).filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        if let Some(centers) = centers {
            chart
                .draw_series(centers.iter().map(|p| Cross::new((p[0], p[1]), 8, BLACK.stroke_width(3))))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(
                    centers
                        .iter()
                        .enumerate()
                        .map(|(c, p)| Cross::new((p[0], p[1]), 6, class_color(c as u32).stroke_width(2))),
                )
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// Writes ROC curves (false-accept rate on a log axis against true-accept rate), one per
/// `(name, points)` with points sorted by FAR. With `lowest_far`, the rates below it (which
/// the impostor pairs do not resolve: fewer than 10 expected false accepts) are greyed out.
pub fn roc_curves(path: &Path, title: &str, curves: &[(&str, Vec<(f64, f64)>)], lowest_far: Option<f64>) -> Result<()> {
    write_png(path, |path| {
        let err = plot_err(path);
        let root = BitMapBackend::new(path, (800, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((1e-4f64..1.0f64).log_scale(), 0.0f64..1.0f64)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("false accept rate")
            .y_desc("true accept rate")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        if let Some(far) = lowest_far.filter(|&f| f > 1e-4) {
            let grey = RGBColor(200, 200, 200).mix(0.5);
            chart
                .draw_series([Rectangle::new([(1e-4, 0.0), (far.min(1.0), 1.0)], grey.filled())])
                .map_err(|e| err(e.to_string()))?
                .label("FAR not resolved (< 10 false accepts expected)")
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], grey.filled()));
        }
        for (i, (name, points)) in curves.iter().enumerate() {
            let color = class_color(i as u32);
            chart
                .draw_series(LineSeries::new(points.iter().map(|&(f, t)| (f.max(1e-4), t)), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))
    })
}
