//! Line charts with axes, ticks, labels and a legend, drawn by plotters with a bundled font
//! (DejaVu Sans, `fonts/`), so they look the same on every machine: learning curves, the
//! learning-rate finder's sweep.

use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::Canvas;

const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
/// Matplotlib's first colours, for the series in order.
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A chart of lines against a shared x axis.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic x axis (x must be positive).
    pub log_x: bool,
    /// The y axis' range, values beyond it drawn at its edge; `None` fits every value.
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series<'a>>,
    /// A vertical line at this x, with its legend text.
    pub mark: Option<(f64, String)>,
}

/// The corner of the plotting area where the fewest points lie, for the legend: each corner's
/// box is 40% of the width and 30% of the height. `to_unit` maps a point into `[0, 1]²`.
fn emptiest_corner(chart: &Chart, to_unit: impl Fn(f64, f64) -> (f64, f64)) -> SeriesLabelPosition {
    let units: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| to_unit(x, y))
        .collect();
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let crowd = |right: bool, upper: bool| {
        units
            .iter()
            .filter(|(x, y)| {
                (if right { *x > 0.6 } else { *x < 0.4 })
                    && (if upper { *y > 0.7 } else { *y < 0.3 })
            })
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, right, upper)| crowd(right, upper))
        .map_or(SeriesLabelPosition::UpperRight, |(corner, _, _)| corner)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            unreachable!("the bundled font is a valid TrueType file");
        }
    });
}

/// The range of `values` (finite ones), padded by 5% each side; `(0, 1)` if there are none.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// Where plotters draws: a white `width` x `height` area in memory.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// What `paint` draws on a white `width` x `height` area, as a canvas; text in
/// [`text_style`]s.
pub fn paint(
    width: u32,
    height: u32,
    paint: impl FnOnce(&Area) -> Result<(), Box<dyn std::error::Error>>,
) -> Canvas {
    register_font();
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        paint(&root)
            .and_then(|()| Ok(root.present()?))
            .unwrap_or_else(|e| unreachable!("drawing into memory cannot fail: {e}"));
    }
    let image = image::RgbImage::from_raw(width, height, buffer).expect("sized buffer");
    Canvas { image }
}

/// The bundled font at `size` pixels in `color`.
pub fn text_style(size: u32, color: [u8; 3]) -> TextStyle<'static> {
    (FONT, size as f64)
        .into_font()
        .color(&RGBColor(color[0], color[1], color[2]))
}

/// `chart` drawn on a `width` x `height` canvas.
pub fn line_chart(chart: &Chart, width: u32, height: u32) -> Canvas {
    paint(width, height, |root| draw(chart, root))
}

fn draw(chart: &Chart, root: &Area) -> Result<(), Box<dyn std::error::Error>> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = range(points().map(|p| p.0));
    let (y_lo, y_hi) = match chart.y_range {
        Some((lo, hi)) => range([lo, hi].into_iter()),
        None => range(points().map(|p| p.1)),
    };
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(chart.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64);
    if chart.log_x {
        let (lo, hi) = (
            points().map(|p| p.0).fold(f64::INFINITY, f64::min),
            points().map(|p| p.0).fold(0.0, f64::max),
        );
        let mut plot = builder.build_cartesian_2d((lo..hi).log_scale(), y_lo..y_hi)?;
        plot.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .label_style((FONT, 14))
            .draw()?;
        series(&mut plot, chart, y_lo, y_hi)?;
        let (l_lo, l_hi) = (lo.ln(), hi.ln());
        let corner = emptiest_corner(chart, |x, y| {
            ((x.ln() - l_lo) / (l_hi - l_lo), (y - y_lo) / (y_hi - y_lo))
        });
        legend(&mut plot, corner)?;
    } else {
        // Whole numbers (epochs) are labelled as such, one tick each while they are few.
        let xs: Vec<f64> = points().map(|p| p.0).collect();
        let whole = xs.iter().all(|x| x.fract() == 0.0);
        let ticks = if whole {
            (x_hi - x_lo).round().clamp(1.0, 10.0) as usize + 1
        } else {
            10
        };
        let mut plot = builder.build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        plot.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_labels(ticks)
            .x_label_formatter(&|x| {
                if whole {
                    format!("{x:.0}")
                } else {
                    format!("{x}")
                }
            })
            .label_style((FONT, 14))
            .draw()?;
        series(&mut plot, chart, y_lo, y_hi)?;
        let corner = emptiest_corner(chart, |x, y| {
            ((x - x_lo) / (x_hi - x_lo), (y - y_lo) / (y_hi - y_lo))
        });
        legend(&mut plot, corner)?;
    }
    Ok(())
}

type Plot<'a, 'b, X> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, RangedCoordf64>>;

fn series<X: Ranged<ValueType = f64>>(
    plot: &mut Plot<'_, '_, X>,
    chart: &Chart,
    y_lo: f64,
    y_hi: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    for (i, line) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let finite: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| (x, y.clamp(y_lo, y_hi)))
            .collect();
        plot.draw_series(LineSeries::new(finite.clone(), color.stroke_width(2)))?
            .label(line.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        if finite.len() < 40 {
            plot.draw_series(finite.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    if let Some((x, name)) = &chart.mark {
        let color = COLORS[3];
        plot.draw_series(LineSeries::new(
            [(*x, y_lo), (*x, y_hi)],
            color.stroke_width(1),
        ))?
        .label(name.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
    }
    Ok(())
}

fn legend<'b, X: Ranged<ValueType = f64>>(
    plot: &mut Plot<'b, 'b, X>,
    corner: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>> {
    plot.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .position(corner)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_where_the_lines_are_not() {
        let chart = |points: Vec<(f64, f64)>| Chart {
            title: "",
            x_label: "",
            y_label: "",
            log_x: false,
            y_range: None,
            series: vec![Series {
                name: "loss",
                points,
            }],
            mark: None,
        };
        let unit = |x: f64, y: f64| (x / 10.0, y);
        // Falling, then rising at the end: the upper right is taken.
        let valley: Vec<(f64, f64)> = [1.0, 0.6, 0.35, 0.2, 0.1, 0.05, 0.05, 0.1, 0.4, 0.8, 1.0]
            .into_iter()
            .enumerate()
            .map(|(i, y)| (i as f64, y))
            .collect();
        assert_eq!(
            emptiest_corner(&chart(valley), unit),
            SeriesLabelPosition::LowerRight
        );
        // Rising: the lower right and the upper left are free.
        let rising: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, i as f64 / 10.0)).collect();
        assert!(matches!(
            emptiest_corner(&chart(rising), unit),
            SeriesLabelPosition::LowerRight | SeriesLabelPosition::UpperLeft
        ));
    }

    fn dark_pixels(canvas: &Canvas) -> usize {
        canvas
            .image
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 100))
            .count()
    }

    #[test]
    fn charts_have_text_axes_and_lines_linear_and_logarithmic() {
        for log_x in [false, true] {
            let chart = Chart {
                title: "loss",
                x_label: "learning rate",
                y_label: "loss",
                log_x,
                y_range: None,
                series: vec![Series {
                    name: "training",
                    points: (1..50)
                        .map(|i| (1e-5 * 1.3f64.powi(i), 1.0 / i as f64))
                        .collect(),
                }],
                mark: Some((1e-3, "suggested".into())),
            };
            let canvas = line_chart(&chart, 480, 320);
            assert_eq!(canvas.image.dimensions(), (480, 320));
            let blue = canvas
                .image
                .pixels()
                .filter(|p| p.0 == [31, 119, 180])
                .count();
            assert!(blue > 100, "the line: {blue} pixels");
            assert!(dark_pixels(&canvas) > 500, "text and axes");
        }
    }
}
