//! The Social Reward triplet loss: the prompt embedding is the anchor, the preferred image the
//! positive and the other image the negative.

use candle_core::{D, Tensor};
use candle_transformers::models::clip::div_l2_norm;

/// The paper's margin.
pub const MARGIN: f64 = 0.3;

/// `mean(relu(||a - p||² - ||a - n||² + margin))` over L2-normalised rows.
pub fn triplet_loss(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    margin: f64,
) -> candle_core::Result<Tensor> {
    let a = div_l2_norm(anchor)?;
    let p = div_l2_norm(positive)?;
    let n = div_l2_norm(negative)?;
    let to_pos = (&a - &p)?.sqr()?.sum(D::Minus1)?;
    let to_neg = (&a - &n)?.sqr()?.sum(D::Minus1)?;
    ((to_pos - to_neg)? + margin)?.relu()?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_value_computed_by_hand() {
        let dev = Device::Cpu;
        let anchor = Tensor::new(&[[1f32, 0.], [2., 0.], [0., 1.]], &dev).unwrap();
        // Row 1: p = (0.6, 0.8) after normalising (3, 4): |a-p|² = 0.16 + 0.64 = 0.8,
        //        n = (0, 1): |a-n|² = 2 -> 0.8 - 2 + 0.3 < 0 -> 0.
        // Row 2: p = (0, 1): 2, n = (1, 0): 0 -> 2 - 0 + 0.3 = 2.3.
        // Row 3: p = (1, 0): 2, n = (0.6, 0.8): 0.36 + 0.04 = 0.4 -> 2 - 0.4 + 0.3 = 1.9.
        let pos = Tensor::new(&[[3f32, 4.], [0., 5.], [1., 0.]], &dev).unwrap();
        let neg = Tensor::new(&[[0f32, 1.], [7., 0.], [0.6, 0.8]], &dev).unwrap();
        let loss = triplet_loss(&anchor, &pos, &neg, MARGIN)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let expected = (0.0 + 2.3 + 1.9) / 3.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }
}
