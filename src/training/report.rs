//! The training report written beside the weights: `report.json` and a learning curve,
//! `learning_curve.svg` (validation AUC and GAUC, and training loss, per epoch).

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::fit::FitResult;

/// The learning curve of `result` as an SVG document.
pub fn learning_curve_svg(result: &FitResult, title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(450);
        let epochs = result.epochs.len().max(1) as f64;
        let x_range = 0.5..epochs + 0.5;

        let metrics: Vec<(f64, f64, f64)> = result
            .epochs
            .iter()
            .map(|e| {
                (
                    e.epoch as f64,
                    e.valid.auc.unwrap_or(f64::NAN),
                    e.valid.gauc.unwrap_or(f64::NAN),
                )
            })
            .collect();
        let finite = metrics
            .iter()
            .flat_map(|m| [m.1, m.2])
            .filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((1.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo <= hi {
            (lo - 0.01, hi + 0.01)
        } else {
            (0.4, 1.0)
        };
        let mut chart = ChartBuilder::on(&left)
            .caption(format!("{title}: validation"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.clone(), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("AUC")
            .draw()?;
        chart
            .draw_series(LineSeries::new(metrics.iter().map(|m| (m.0, m.1)), &BLUE))?
            .label("AUC")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
        chart
            .draw_series(LineSeries::new(metrics.iter().map(|m| (m.0, m.2)), &RED))?
            .label("GAUC")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
        let best = result.best_epoch as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(best, lo), (best, hi)],
            BLACK.mix(0.3),
        )))?;
        chart.configure_series_labels().border_style(BLACK).draw()?;

        let losses: Vec<(f64, f64)> = result
            .epochs
            .iter()
            .map(|e| (e.epoch as f64, e.train_loss))
            .collect();
        let (llo, lhi) = losses
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), l| (a.min(l.1), b.max(l.1)));
        let pad = ((lhi - llo) * 0.1).max(1e-3);
        let mut chart = ChartBuilder::on(&right)
            .caption("training loss", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range, (llo - pad)..(lhi + pad))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .draw()?;
        chart.draw_series(LineSeries::new(losses, &BLUE))?;
        root.present().context("drawing the learning curve")?;
    }
    Ok(svg)
}
