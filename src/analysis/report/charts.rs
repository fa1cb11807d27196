//! The report's two kinds of plot, drawn as SVG by plotters: grouped bars over categories and
//! lines over a numeric axis. Both take the data ready to draw.

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use crate::analysis::AnalysisError;

const SIZE: (u32, u32) = (640, 300);
/// Colours in the order of the series; readable by the colour-blind (Okabe–Ito).
const PALETTE: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// One named series of values, one per category or point.
pub struct Series<T> {
    pub name: String,
    pub values: Vec<T>,
}

/// The axes' names and the figure's id (for the error that names it).
pub struct Axes<'a> {
    pub figure: &'static str,
    pub x: &'a str,
    pub y: &'a str,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// A value axis' tick: whole numbers without decimals, others with as few as tell them apart.
fn tick(value: &f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    if value.abs() < 1e-3 {
        return format!("{value:.1e}");
    }
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// An SVG document of `SIZE` with whatever `draw` puts on its white background.
fn render(
    figure: &'static str,
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<String, AnalysisError> {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
    };
    drawn.map_err(|e| AnalysisError::Plot {
        figure,
        message: e.to_string(),
    })?;
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The series' names in a box, when there is more than one to tell apart.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    series: usize,
) -> Drawn {
    if series > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// Grouped bars: for each category, one bar per series.
pub fn bars(
    axes: &Axes<'_>,
    categories: &[String],
    series: &[Series<f64>],
) -> Result<String, AnalysisError> {
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let n = categories.len().max(1);
    render(axes.figure, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top)?;
        let label = |x: &f64| {
            let index = x.round();
            match (index - x).abs() < 1e-6 && index >= 0.0 {
                true => categories.get(index as usize).cloned().unwrap_or_default(),
                false => String::new(),
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_labels(n.min(40))
            .x_label_formatter(&label)
            .y_label_formatter(&tick)
            .x_desc(axes.x)
            .y_desc(axes.y)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        let width = 0.8 / series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let left = |i: usize| i as f64 - 0.4 + k as f64 * width;
            chart
                .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                    Rectangle::new([(left(i), 0.0), (left(i) + width, v)], colour.filled())
                }))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        legend(&mut chart, series.len())
    })
}

/// Lines with their points marked, over a numeric x axis.
pub fn lines(axes: &Axes<'_>, series: &[Series<(f64, f64)>]) -> Result<String, AnalysisError> {
    let points = || series.iter().flat_map(|s| s.values.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, 0.0f64);
    for (x, y) in points() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let y1 = if y1 - y0 < 1e-9 { y0 + 1.0 } else { y1 * 1.1 };
    render(axes.figure, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc(axes.x)
            .y_desc(axes.y)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        for (k, s) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.values.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2))
                });
            chart.draw_series(
                s.values
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
            )?;
        }
        legend(&mut chart, series.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes() -> Axes<'static> {
        Axes {
            figure: "test",
            x: "x",
            y: "y",
        }
    }

    #[test]
    fn bars_draw_one_rectangle_per_value_and_name_their_categories() {
        let svg = bars(
            &axes(),
            &["train".into(), "val".into(), "test".into()],
            &[
                Series {
                    name: "a".into(),
                    values: vec![3.0, 1.0, 2.0],
                },
                Series {
                    name: "b".into(),
                    values: vec![1.0, 1.0, 0.5],
                },
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        for label in ["train", "val", "test"] {
            assert!(svg.contains(&format!("\n{label}\n")), "no {label} label");
        }
        // Background, plot area, 6 bars and 2 legend keys at the least.
        assert!(svg.matches("<rect").count() >= 8);
    }

    #[test]
    fn ticks_read_as_people_write_numbers() {
        let shown: Vec<String> = [2000.0, 0.85, 0.125, 1.5e-4, -3.0]
            .iter()
            .map(tick)
            .collect();
        assert_eq!(shown, ["2000", "0.85", "0.125", "1.5e-4", "-3"]);
    }

    #[test]
    fn lines_cope_with_a_single_point_and_with_nothing() {
        let one = Series {
            name: "one".into(),
            values: vec![(2.0, 5.0)],
        };
        assert!(lines(&axes(), &[one]).unwrap().contains("<circle"));
        assert!(lines(&axes(), &[]).unwrap().starts_with("<svg"));
    }
}
