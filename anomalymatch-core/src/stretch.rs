//! Stretches: how physical survey values (FITS fluxes, float HDF5 cubes) become pixels in
//! `[0, 1]`, band by band.
//!
//! Every stretch first finds limits `lo < hi` from the band's own values (the identity takes 0
//! and 1, for data already scaled), then maps a value `x` through
//! `u = clamp((x - lo) / (hi - lo), 0, 1)` and a curve `f(u)` with `f(0) = 0` and `f(1) = 1`.
//! Non-finite values (NaN, which is also what FITS `BLANK` pixels become, and infinities) take
//! no part in the limits and become 0. A band with no finite value, or whose limits coincide (a
//! constant band, under a stretch that takes its limits from the band), becomes all 0.
//!
//! Robust limits are the [`ROBUST_LOW_PERCENT`] and [`ROBUST_HIGH_PERCENT`] percentiles, with
//! numpy's default (linear) interpolation between order statistics.

use crate::config::{Check, key};
use serde::{Deserialize, Serialize};

/// Lower percentile of the robust limits used by [`Stretch::Asinh`] and [`Stretch::Log`].
pub const ROBUST_LOW_PERCENT: f64 = 0.5;
/// Upper percentile of the robust limits used by [`Stretch::Asinh`] and [`Stretch::Log`].
pub const ROBUST_HIGH_PERCENT: f64 = 99.5;
/// The `a` of [`Stretch::Log`]: `f(u) = ln(1 + a u) / ln(1 + a)` (astropy's `LogStretch` default).
pub const LOG_EXPONENT: f64 = 1000.0;
/// Pixels sampled by [`Stretch::ZScale`] (astropy's default; IRAF's is 600).
pub const ZSCALE_SAMPLES: usize = 1000;
/// Rejection threshold of the zscale line fit, in standard deviations of its residuals.
pub const ZSCALE_KREJ: f64 = 2.5;
/// Most zscale fitting rounds.
pub const ZSCALE_MAX_ITERATIONS: usize = 5;
/// Share of the samples that may be rejected before zscale gives up the fit.
pub const ZSCALE_MAX_REJECT: f64 = 0.5;
/// Fewest samples a zscale fit needs.
pub const ZSCALE_MIN_PIXELS: usize = 5;

/// How one band of physical values is mapped to `[0, 1]`; recorded in checkpoints, so it is
/// serialisable (`{ kind = "percentile", low = 0.5, high = 99.5 }` in TOML).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Stretch {
    /// Values kept as they are, clipped to `[0, 1]`: for float data already scaled to pixels
    /// (the output of another pipeline), whose contrast a per-band stretch would change.
    Identity,
    /// Linear between the band's smallest and largest finite values (the original
    /// AnomalyMatch's conversion of float data).
    MinMax,
    /// Linear between two percentiles, clipping outside them: robust to hot pixels and cosmic
    /// rays.
    Percentile {
        /// Lower percentile, in `[0, 100)`.
        #[serde(default = "default_low")]
        low: f64,
        /// Upper percentile, in `(low, 100]`.
        #[serde(default = "default_high")]
        high: f64,
    },
    /// `f(u) = asinh(u / softening) / asinh(1 / softening)` between the robust limits: faint
    /// structure is lifted while bright cores keep their gradations (Lupton et al. 1999).
    /// Small softening is log-like, large softening nearly linear.
    Asinh {
        /// Softening `a > 0`, in units of the normalised range (0.1 equals the original's
        /// `asinh_stretch = 10`).
        #[serde(default = "default_softening")]
        softening: f64,
    },
    /// `f(u) = ln(1 + a u) / ln(1 + a)` with `a =` [`LOG_EXPONENT`], between the robust limits.
    Log,
    /// Linear between IRAF's zscale limits: a line is fitted to the sorted sample of pixel
    /// values with iterative k-sigma rejection, and its slope divided by `contrast` sets a
    /// range around the median (see [`zscale_limits`]).
    #[serde(rename = "zscale")]
    ZScale {
        /// Contrast `> 0`; smaller values widen the range (IRAF's default 0.25).
        #[serde(default = "default_contrast")]
        contrast: f64,
    },
}

fn default_low() -> f64 {
    ROBUST_LOW_PERCENT
}

fn default_high() -> f64 {
    ROBUST_HIGH_PERCENT
}

fn default_softening() -> f64 {
    0.1
}

fn default_contrast() -> f64 {
    0.25
}

impl Default for Stretch {
    /// `Percentile { low: 0.5, high: 99.5 }`: linear like the original's min-max conversion,
    /// but a handful of hot pixels cannot squash a cutout to black.
    fn default() -> Self {
        Stretch::Percentile {
            low: ROBUST_LOW_PERCENT,
            high: ROBUST_HIGH_PERCENT,
        }
    }
}

impl Check for Stretch {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let field = |name: &str| key(prefix, name);
        match *self {
            Stretch::Identity | Stretch::MinMax | Stretch::Log => {}
            Stretch::Percentile { low, high } => {
                // NaN is in no range and fails both tests.
                if !(0.0..100.0).contains(&low) {
                    errors.push(format!("{}: must be in [0, 100), got {low}", field("low")));
                }
                if !(high > low && high <= 100.0) {
                    errors.push(format!(
                        "{}: must be in (low, 100] with low = {low}, got {high}",
                        field("high")
                    ));
                }
            }
            Stretch::Asinh { softening } => {
                if !(softening > 0.0 && softening.is_finite()) {
                    errors.push(format!(
                        "{}: must be a finite number > 0, got {softening}",
                        field("softening")
                    ));
                }
            }
            Stretch::ZScale { contrast } => {
                if !(contrast > 0.0 && contrast.is_finite()) {
                    errors.push(format!(
                        "{}: must be a finite number > 0, got {contrast}",
                        field("contrast")
                    ));
                }
            }
        }
    }
}

impl Stretch {
    /// The limits `(lo, hi)` this stretch maps to 0 and 1 for `band`, from its finite values;
    /// `None` when it has none.
    pub fn limits(&self, band: &[f32]) -> Option<(f64, f64)> {
        let mut finite: Vec<f32> = band.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        Some(match *self {
            Stretch::Identity => (0.0, 1.0),
            Stretch::MinMax => {
                let (lo, hi) = finite
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |a, &v| {
                        (a.0.min(v), a.1.max(v))
                    });
                (f64::from(lo), f64::from(hi))
            }
            Stretch::Percentile { low, high } => percentiles(&mut finite, low, high),
            Stretch::Asinh { .. } | Stretch::Log => {
                percentiles(&mut finite, ROBUST_LOW_PERCENT, ROBUST_HIGH_PERCENT)
            }
            Stretch::ZScale { contrast } => return zscale_limits(&finite, contrast),
        })
    }

    /// Maps one band to `[0, 1]` into `out` (same length as `band`).
    pub fn apply(&self, band: &[f32], out: &mut [f32]) {
        let Some((lo, hi)) = self.limits(band).filter(|(lo, hi)| hi > lo) else {
            out.fill(0.0);
            return;
        };
        let scale = 1.0 / (hi - lo);
        let curve = Curve::of(self);
        for (o, &x) in out.iter_mut().zip(band) {
            *o = if x.is_finite() {
                let u = ((f64::from(x) - lo) * scale).clamp(0.0, 1.0);
                curve.eval(u) as f32
            } else {
                0.0
            };
        }
    }

    /// Maps every band of a CHW array (`bands` planes of equal size) into `out`.
    pub fn apply_bands(&self, data: &[f32], bands: usize, out: &mut [f32]) {
        let plane = data.len().checked_div(bands).unwrap_or(0);
        if plane == 0 {
            return;
        }
        for (src, dst) in data.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
            self.apply(src, dst);
        }
    }
}

/// The shape `f` of a stretch between its limits, with its constants computed once per band.
#[derive(Debug, Clone, Copy)]
enum Curve {
    Linear,
    Asinh { inv_softening: f64, norm: f64 },
    Log { norm: f64 },
}

impl Curve {
    fn of(stretch: &Stretch) -> Curve {
        match *stretch {
            Stretch::Identity
            | Stretch::MinMax
            | Stretch::Percentile { .. }
            | Stretch::ZScale { .. } => Curve::Linear,
            Stretch::Asinh { softening } => Curve::Asinh {
                inv_softening: 1.0 / softening,
                norm: 1.0 / (1.0 / softening).asinh(),
            },
            Stretch::Log => Curve::Log {
                norm: 1.0 / LOG_EXPONENT.ln_1p(),
            },
        }
    }

    fn eval(self, u: f64) -> f64 {
        match self {
            Curve::Linear => u,
            Curve::Asinh {
                inv_softening,
                norm,
            } => (u * inv_softening).asinh() * norm,
            Curve::Log { norm } => (LOG_EXPONENT * u).ln_1p() * norm,
        }
    }
}

/// Percentiles `low` and `high` (in percent) of `values` (finite, non-empty, reordered in
/// place), interpolating linearly between order statistics as numpy does by default.
fn percentiles(values: &mut [f32], low: f64, high: f64) -> (f64, f64) {
    (percentile(values, low), percentile(values, high))
}

fn percentile(values: &mut [f32], percent: f64) -> f64 {
    let last = values.len() - 1;
    let rank = (percent / 100.0).clamp(0.0, 1.0) * last as f64;
    let below = (rank.floor() as usize).min(last);
    let fraction = rank - below as f64;
    let (_, &mut at, above) = values.select_nth_unstable_by(below, f32::total_cmp);
    let at = f64::from(at);
    if fraction == 0.0 || above.is_empty() {
        return at;
    }
    // The next order statistic is the smallest value above the selected one.
    let next = above.iter().copied().fold(f32::INFINITY, f32::min);
    at + fraction * (f64::from(next) - at)
}

/// IRAF's zscale limits of the finite `values` for `contrast > 0`; `None` when there are none.
///
/// Following the algorithm as IRAF's `display` task documents it: about [`ZSCALE_SAMPLES`]
/// values are taken at an even stride and sorted, giving `I(i)` for ranks `i = 1..=n`. A line
/// `I(i) = a + b i` is fitted by least squares; samples further than [`ZSCALE_KREJ`] standard
/// deviations of the residuals from it are rejected, together with their neighbours (a window
/// of `max(1, n / 100)` samples around each), and the fit is repeated on the rest, at most
/// [`ZSCALE_MAX_ITERATIONS`] times or until no sample is newly rejected. If fewer than
/// `max(`[`ZSCALE_MIN_PIXELS`]`, n * `[`ZSCALE_MAX_REJECT`]`)` samples remain, the limits are
/// the sample's extremes. Otherwise, with the median `I(m)` at rank `m = (n + 1) / 2` and the
/// slope `s = b / contrast`: `z1 = I(m) + s (1 - m)` and `z2 = I(m) + s (n - m)`, each kept
/// within the sample's extremes.
pub fn zscale_limits(values: &[f32], contrast: f64) -> Option<(f64, f64)> {
    let finite = values.iter().filter(|v| v.is_finite()).count();
    let stride = (finite / ZSCALE_SAMPLES).max(1);
    let mut samples: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .step_by(stride)
        .take(ZSCALE_SAMPLES)
        .map(|&v| f64::from(v))
        .collect();
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let (&min, &max) = (samples.first()?, samples.last()?);
    let min_good = ZSCALE_MIN_PIXELS.max((n as f64 * ZSCALE_MAX_REJECT) as usize);
    let grow = (n / 100).max(1);
    let mut rejected = vec![false; n];
    let mut good = n;
    let mut slope = None;
    for _ in 0..ZSCALE_MAX_ITERATIONS {
        if good < min_good {
            break;
        }
        let Some((intercept, b)) = fit_line(&samples, &rejected) else {
            break;
        };
        slope = Some(b);
        let residual = |i: usize| samples[i] - (intercept + b * (i + 1) as f64);
        let kept = (0..n).filter(|&i| !rejected[i]);
        let variance = kept.map(|i| residual(i).powi(2)).sum::<f64>() / good as f64;
        let threshold = ZSCALE_KREJ * variance.sqrt();
        let outliers: Vec<usize> = (0..n).filter(|&i| residual(i).abs() > threshold).collect();
        for i in outliers {
            let from = i.saturating_sub((grow - 1) / 2);
            let to = (i + grow / 2).min(n - 1);
            rejected[from..=to].fill(true);
        }
        let now_good = rejected.iter().filter(|r| !**r).count();
        let settled = now_good >= good;
        good = now_good;
        if settled {
            break;
        }
    }
    match slope {
        Some(b) if good >= min_good => {
            let s = b / contrast;
            let mid = n.div_ceil(2);
            let median = if n % 2 == 1 {
                samples[mid - 1]
            } else {
                0.5 * (samples[n / 2 - 1] + samples[n / 2])
            };
            let z1 = median + s * (1.0 - mid as f64);
            let z2 = median + s * (n as f64 - mid as f64);
            Some((z1.max(min), z2.min(max)))
        }
        _ => Some((min, max)),
    }
}

/// Least-squares line `y = a + b i` through the samples not rejected, with ranks `i` from 1;
/// `None` when fewer than two remain.
fn fit_line(samples: &[f64], rejected: &[bool]) -> Option<(f64, f64)> {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, (&y, &r)) in samples.iter().zip(rejected).enumerate() {
        if r {
            continue;
        }
        let x = (i + 1) as f64;
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let det = n * sxx - sx * sx;
    if n < 2.0 || det == 0.0 {
        return None;
    }
    let b = (n * sxy - sx * sy) / det;
    Some(((sy - b * sx) / n, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stretched(stretch: Stretch, band: &[f32]) -> Vec<f32> {
        let mut out = vec![-1.0; band.len()];
        stretch.apply(band, &mut out);
        out
    }

    #[test]
    fn min_max_is_linear_and_blanks_become_zero() {
        let out = stretched(Stretch::MinMax, &[2.0, f32::NAN, 4.0, 6.0, f32::INFINITY]);
        assert_eq!(out, [0.0, 0.0, 0.5, 1.0, 0.0]);
    }

    #[test]
    fn identity_keeps_scaled_values_and_clips_the_rest() {
        let out = stretched(Stretch::Identity, &[0.25, -0.5, 1.5, f32::NAN, 0.25]);
        assert_eq!(out, [0.25, 0.0, 1.0, 0.0, 0.25]);
        // A constant band keeps its level, unlike under the stretches that take their limits
        // from the band.
        assert_eq!(stretched(Stretch::Identity, &[0.5; 3]), [0.5; 3]);
        let parsed: Stretch = toml::from_str("kind = \"identity\"").unwrap();
        assert_eq!(parsed, Stretch::Identity);
    }

    #[test]
    fn constant_or_empty_bands_become_zero() {
        for stretch in [
            Stretch::MinMax,
            Stretch::default(),
            Stretch::Asinh { softening: 0.1 },
            Stretch::Log,
            Stretch::ZScale { contrast: 0.25 },
        ] {
            assert_eq!(stretched(stretch, &[3.0; 10]), [0.0; 10], "{stretch:?}");
            assert_eq!(stretched(stretch, &[f32::NAN; 4]), [0.0; 4], "{stretch:?}");
        }
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile(np.arange(11), [10, 95]) == [1.0, 9.5]
        let band: Vec<f32> = (0..=10).rev().map(|v| v as f32).collect();
        let p = Stretch::Percentile {
            low: 10.0,
            high: 95.0,
        };
        assert_eq!(p.limits(&band), Some((1.0, 9.5)));
        let out = stretched(p, &band);
        assert_eq!(out[10], 0.0); // 0 clipped
        assert!((out[5] - 4.0 / 8.5).abs() < 1e-6);
        assert_eq!(out[0], 1.0); // 10 clipped
    }

    #[test]
    fn asinh_and_log_curves_are_monotone_from_zero_to_one() {
        let band: Vec<f32> = (0..1000).map(|v| v as f32).collect();
        for stretch in [Stretch::Asinh { softening: 0.1 }, Stretch::Log] {
            let out = stretched(stretch, &band);
            assert_eq!(out[0], 0.0);
            assert_eq!(out[999], 1.0);
            assert!(out.windows(2).all(|w| w[1] >= w[0]), "{stretch:?}");
            // Both lift the faint end above the linear stretch.
            assert!(out[100] > 0.2, "{stretch:?}: {}", out[100]);
        }
        // asinh(u / a) / asinh(1 / a) at the robust limits' midpoint.
        let (lo, hi) = Stretch::Log.limits(&band).unwrap();
        let x = ((lo + hi) / 2.0) as f32;
        let out = stretched(
            Stretch::Asinh { softening: 0.5 },
            &[x, lo as f32, hi as f32],
        );
        let expected = (1.0f64).asinh() / 2.0f64.asinh();
        assert!((f64::from(out[0]) - expected).abs() < 1e-3, "{}", out[0]);
    }

    #[test]
    fn zscale_ignores_outliers_and_respects_contrast() {
        // A flat sky with noise-like spread and a few very bright pixels.
        let mut band: Vec<f32> = (0..4000).map(|i| 100.0 + ((i * 37) % 21) as f32).collect();
        for i in (0..4000).step_by(400) {
            band[i] = 1e5;
        }
        let (z1, z2) = zscale_limits(&band, 0.25).unwrap();
        assert!(z1 >= 100.0 && z2 <= 1e5, "{z1} {z2}");
        assert!(z2 < 1000.0, "bright pixels must not set the range: {z2}");
        let (w1, w2) = zscale_limits(&band, 0.1).unwrap();
        assert_eq!(zscale_limits(&[f32::NAN], 0.25), None);
        assert!(w2 - w1 >= z2 - z1, "smaller contrast, wider range");
    }

    #[test]
    fn check_names_the_bad_field() {
        let bad = Stretch::Percentile {
            low: 50.0,
            high: 20.0,
        };
        let err = bad.check().unwrap_err().to_string();
        assert!(err.contains("high:"), "{err}");
        let err = Stretch::Asinh { softening: 0.0 }
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("softening:"), "{err}");
        let err = Stretch::ZScale { contrast: f64::NAN }
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("contrast:"), "{err}");
        let err = Stretch::Percentile {
            low: -1.0,
            high: 101.0,
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(err.contains("low:") && err.contains("high:"), "{err}");
        assert!(Stretch::default().check().is_ok());
    }

    #[test]
    fn serialises_with_a_kind_tag_and_defaults() {
        let s: Stretch = toml::from_str("kind = \"asinh\"").unwrap();
        assert_eq!(s, Stretch::Asinh { softening: 0.1 });
        let s: Stretch = toml::from_str("kind = \"percentile\"\nhigh = 99.0").unwrap();
        assert_eq!(
            s,
            Stretch::Percentile {
                low: 0.5,
                high: 99.0
            }
        );
        let z = Stretch::ZScale { contrast: 0.3 };
        let json = serde_json::to_string(&z).unwrap();
        assert_eq!(json, r#"{"kind":"zscale","contrast":0.3}"#);
        assert_eq!(serde_json::from_str::<Stretch>(&json).unwrap(), z);
        assert!(toml::from_str::<Stretch>("kind = \"asinh\"\nsoft = 1.0").is_err());
        assert!(toml::from_str::<Stretch>("kind = \"gamma\"").is_err());
    }
}
