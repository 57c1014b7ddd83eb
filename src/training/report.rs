//! The pictures of training: the learning curve written beside the weights,
//! `learning_curve.svg` (validation AUC and GAUC, and training loss, per epoch), and
//! `dumn ablate`'s bar chart of the variants, `ablation.svg`.

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::compare::Interval;
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

/// `dumn ablate`'s bar chart: one bar per variant at its mean test AUC, with its 95%
/// interval over the seeds as a whisker (none from one seed), as an SVG document.
pub fn ablation_chart_svg(bars: &[(String, Interval)], title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let width = (120 + 90 * bars.len()).max(400) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let values = bars
            .iter()
            .flat_map(|(_, i)| [Some(i.mean), i.low, i.high])
            .flatten()
            .filter(|v| v.is_finite());
        let (lo, hi) = values.fold((1.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo <= hi {
            ((lo - 0.02).max(0.0), (hi + 0.01).min(1.0))
        } else {
            (0.4, 1.0)
        };
        let n = bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..n - 0.5, lo..hi)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < bars.len() {
                bars[i as usize].0.clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1) * 2 + 1)
            .x_label_formatter(&label)
            .y_desc("test AUC")
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let x = i as f64;
            Rectangle::new([(x - 0.35, lo), (x + 0.35, v.mean)], BLUE.mix(0.5).filled())
        }))?;
        for (i, (_, v)) in bars.iter().enumerate() {
            if let (Some(l), Some(h)) = (v.low, v.high) {
                let x = i as f64;
                chart.draw_series(
                    [
                        vec![(x, l), (x, h)],
                        vec![(x - 0.1, l), (x + 0.1, l)],
                        vec![(x - 0.1, h), (x + 0.1, h)],
                    ]
                    .into_iter()
                    .map(|p| PathElement::new(p, BLACK)),
                )?;
            }
        }
        root.present().context("drawing the ablation chart")?;
    }
    Ok(svg)
}
