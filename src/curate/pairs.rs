//! Which image of a generation session the community preferred, and how sure we are.
//!
//! Each image's remix rate gets a Beta posterior, Beta(a + remixes, b + views − remixes). The
//! probability that one rate exceeds the other is exact when α is a whole number (the usual
//! case: a whole-number prior plus counts), by the closed-form sum
//! P(p_B > p_A) = Σ_{i<α_B} B(α_A+i, β_A+β_B) / ((β_B+i) · B(1+i, β_B) · B(α_A, β_A)).
//! Otherwise it falls back to a normal approximation of the difference of the posteriors'
//! log-odds, whose exact moments are ψ(α) − ψ(β) and ψ′(α) + ψ′(β).

use super::config::CurateConfig;
use super::window::ClosedImage;

#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    pub pos: usize,
    pub neg: usize,
    pub pos_rate: f64,
    pub neg_rate: f64,
    /// P(rate_pos > rate_neg).
    pub confidence: f64,
}

/// Posterior of an image's remix rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePosterior {
    alpha: f64,
    beta: f64,
}

impl RatePosterior {
    pub fn new(config: &CurateConfig, views: u32, remixes: u32) -> Self {
        // Spam-filtered remixes can exceed views only through blind remixes by ordinary users;
        // cap so the posterior stays proper.
        let remixes = remixes.min(views);
        Self {
            alpha: config.prior_remixes + f64::from(remixes),
            beta: config.prior_non_remixes + f64::from(views - remixes),
        }
    }

    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    fn log_odds_moments(&self) -> (f64, f64) {
        (
            digamma(self.alpha) - digamma(self.beta),
            trigamma(self.alpha) + trigamma(self.beta),
        )
    }

    /// P(this rate > other rate).
    pub fn prob_greater(&self, other: &RatePosterior) -> f64 {
        // The sum has α terms; past a few thousand the normal approximation is excellent anyway.
        if self.alpha.fract() == 0.0 && self.alpha <= 5_000.0 {
            let (a_a, b_a, a_b, b_b) = (other.alpha, other.beta, self.alpha, self.beta);
            let base = ln_beta(a_a, b_a);
            let mut total = 0.0;
            for i in 0..a_b as u64 {
                let i = i as f64;
                total +=
                    (ln_beta(a_a + i, b_a + b_b) - (b_b + i).ln() - ln_beta(1.0 + i, b_b) - base)
                        .exp();
            }
            return total.clamp(0.0, 1.0);
        }
        let (m1, v1) = self.log_odds_moments();
        let (m2, v2) = other.log_odds_moments();
        normal_cdf((m1 - m2) / (v1 + v2).sqrt())
    }
}

/// All confident preferences among the eligible images of one session, each unordered pair at
/// most once, in a stable order.
pub fn session_preferences(
    config: &CurateConfig,
    images: &[ClosedImage],
    eligible: &[bool],
) -> Vec<Preference> {
    let posteriors: Vec<RatePosterior> = images
        .iter()
        .map(|i| RatePosterior::new(config, i.views, i.remixes))
        .collect();
    let mut out = Vec::new();
    for i in 0..images.len() {
        for j in i + 1..images.len() {
            if !eligible[i] || !eligible[j] {
                continue;
            }
            let p = posteriors[i].prob_greater(&posteriors[j]);
            let (pos, neg, confidence) = if p >= 0.5 { (i, j, p) } else { (j, i, 1.0 - p) };
            if confidence >= config.min_confidence {
                out.push(Preference {
                    pos,
                    neg,
                    pos_rate: posteriors[pos].mean(),
                    neg_rate: posteriors[neg].mean(),
                    confidence,
                });
            }
        }
    }
    out
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = COEF[1..]
        .iter()
        .enumerate()
        .fold(COEF[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ψ(x) for x > 0: recurrence up to x ≥ 10, then the asymptotic series.
pub fn digamma(mut x: f64) -> f64 {
    let mut result = 0.0;
    while x < 10.0 {
        result -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    result + x.ln()
        - 0.5 / x
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// ψ′(x) for x > 0.
pub fn trigamma(mut x: f64) -> f64 {
    let mut result = 0.0;
    while x < 10.0 {
        result += 1.0 / (x * x);
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    result
        + 1.0 / x
        + f / 2.0
        + f / x * (1.0 / 6.0 - f * (1.0 / 30.0 - f * (1.0 / 42.0 - f / 30.0)))
}

/// Standard normal CDF via erfc (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    0.5 * erfc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions_match_known_values() {
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-10);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-10);
        assert!((trigamma(1.0) - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-10);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(101.0) - (1..=100).map(|k| (k as f64).ln()).sum::<f64>()).abs() < 1e-9);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.644_854) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn probability_agrees_with_monte_carlo() {
        use rand::SeedableRng;
        use rand_distr::{Beta, Distribution};
        let config = CurateConfig::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (v1, r1, v2, r2) in [
            (80, 9, 90, 3),
            (40, 2, 40, 2),
            (120, 10, 30, 1),
            (25, 0, 60, 6),
        ] {
            let a = RatePosterior::new(&config, v1, r1);
            let b = RatePosterior::new(&config, v2, r2);
            let (da, db) = (
                Beta::new(a.alpha, a.beta).unwrap(),
                Beta::new(b.alpha, b.beta).unwrap(),
            );
            let n = 200_000;
            let wins = (0..n)
                .filter(|_| da.sample(&mut rng) > db.sample(&mut rng))
                .count();
            let mc = wins as f64 / n as f64;
            let ours = a.prob_greater(&b);
            assert!(
                (mc - ours).abs() < 0.005,
                "{v1}/{r1} vs {v2}/{r2}: mc {mc} ours {ours}"
            );
            assert!(
                (ours + b.prob_greater(&a) - 1.0).abs() < 1e-9,
                "complementary"
            );
            // The approximation used for fractional priors stays close too.
            let fractional = |p: RatePosterior| RatePosterior {
                alpha: p.alpha + 1e-9,
                ..p
            };
            let approx = fractional(a).prob_greater(&fractional(b));
            assert!((mc - approx).abs() < 0.05, "approx {approx} vs mc {mc}");
        }
    }

    #[test]
    fn more_views_at_the_same_rate_means_more_confidence() {
        let config = CurateConfig::default();
        let small =
            RatePosterior::new(&config, 50, 5).prob_greater(&RatePosterior::new(&config, 50, 2));
        let large = RatePosterior::new(&config, 500, 50)
            .prob_greater(&RatePosterior::new(&config, 500, 20));
        assert!(large > small && large > 0.99, "{small} {large}");
    }
}
