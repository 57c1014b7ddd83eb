//! The pictures of training: the learning curve written beside the weights,
//! `learning_curve.svg` (validation AUC and GAUC, and training loss, per epoch; then the
//! kept model's ROC curve and calibration on the test split, which it scored once), and
//! `dumn ablate`'s bar chart of the variants, `ablation.svg`.

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::compare::Interval;
use super::fit::FitResult;

/// The learning curve of `result` as an SVG document.
pub fn learning_curve_svg(result: &FitResult, title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(400);
        let (left, right) = top.split_horizontally(450);
        let (roc_area, calibration_area) = bottom.split_horizontally(450);
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

        let test = &result.test_scored;
        let auc = result.test.auc.map_or("n/a".into(), |a| format!("{a:.4}"));
        let mut chart = unit_square(
            &roc_area,
            &format!("test ROC (AUC {auc})"),
            "false positive rate",
            "true positive rate",
        )?;
        chart.draw_series(LineSeries::new(
            roc_points(&test.scores, &test.labels),
            &BLUE,
        ))?;

        let bins = calibration_bins(&test.scores, &test.labels, 10);
        let mut chart = unit_square(
            &calibration_area,
            "test calibration",
            "mean predicted probability",
            "observed rate",
        )?;
        let points: Vec<(f64, f64)> = bins.iter().map(|b| (b.predicted, b.observed)).collect();
        chart.draw_series(LineSeries::new(points.clone(), &RED))?;
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, RED.filled())))?;
        root.present().context("drawing the learning curve")?;
    }
    Ok(svg)
}

/// A chart over the unit square, its diagonal drawn: the frame of the ROC and the
/// calibration panels.
fn unit_square<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (1.0, 1.0)],
        BLACK.mix(0.3),
    )))?;
    Ok(chart)
}

/// The ROC curve of `scores` against `labels`: (false positive rate, true positive rate)
/// from (0, 0) to (1, 1), one point per distinct score (tied scores move together), thinned
/// to at most about 500 points. Empty when a class is missing.
pub fn roc_points(scores: &[f32], labels: &[bool]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0f64, 0f64);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push((fp / neg, tp / pos));
    }
    let step = (points.len() / 500).max(1);
    let last = *points.last().expect("at least the origin");
    let mut thinned: Vec<(f64, f64)> = points.into_iter().step_by(step).collect();
    if thinned.last() != Some(&last) {
        thinned.push(last);
    }
    thinned
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationBin {
    /// The mean predicted probability of the bin's rows.
    pub predicted: f64,
    /// The fraction of them that are positive.
    pub observed: f64,
    pub rows: usize,
}

/// `bins` equal-width bins of predicted probability over [0, 1]; empty bins left out.
pub fn calibration_bins(scores: &[f32], labels: &[bool], bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut sum = vec![(0f64, 0f64, 0usize); bins];
    for (&s, &l) in scores.iter().zip(labels) {
        let b = ((f64::from(s) * bins as f64) as usize).min(bins - 1);
        sum[b].0 += f64::from(s);
        sum[b].1 += f64::from(u8::from(l));
        sum[b].2 += 1;
    }
    sum.into_iter()
        .filter(|b| b.2 > 0)
        .map(|(p, o, n)| CalibrationBin {
            predicted: p / n as f64,
            observed: o / n as f64,
            rows: n,
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::metrics::auc;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn the_roc_curve_runs_from_corner_to_corner_and_its_area_is_the_auc() {
        let mut rng = StdRng::seed_from_u64(3);
        let labels: Vec<bool> = (0..2000).map(|_| rng.random_bool(0.4)).collect();
        let scores: Vec<f32> = labels
            .iter()
            .map(|&l| f32::from(u8::from(l)) * 0.3 + rng.random::<f32>())
            .collect();
        let roc = roc_points(&scores, &labels);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        assert!(roc.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1));
        let area: f64 = roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!(
            (area - auc(&scores, &labels).unwrap()).abs() < 0.01,
            "{area}"
        );
        assert!(roc_points(&scores, &vec![true; scores.len()]).is_empty());
    }

    #[test]
    fn calibrated_probabilities_lie_on_the_diagonal() {
        let mut rng = StdRng::seed_from_u64(4);
        let scores: Vec<f32> = (0..50_000).map(|_| rng.random::<f32>()).collect();
        let labels: Vec<bool> = scores.iter().map(|&p| rng.random::<f32>() < p).collect();
        let bins = calibration_bins(&scores, &labels, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins.iter().map(|b| b.rows).sum::<usize>(), scores.len());
        for b in bins {
            assert!((b.predicted - b.observed).abs() < 0.03, "{b:?}");
        }
        // Over-confident scores: the top bin predicts far more than it observes.
        let squashed: Vec<f32> = scores
            .iter()
            .map(|&p| if p > 0.5 { 0.99 } else { p })
            .collect();
        let top = *calibration_bins(&squashed, &labels, 10).last().unwrap();
        assert!(top.predicted - top.observed > 0.2, "{top:?}");
    }
}
