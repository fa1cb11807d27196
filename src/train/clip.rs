//! CLIP's two towers and projections, assembled from candle's public parts so that the text is
//! pooled where transformers pools it (`TextSpec::pooling`): candle's `ClipModel` takes the
//! largest id, right only when the end token has the largest id.

use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use candle_transformers::models::clip::vision_model::ClipVisionTransformer;

use super::TrainError;
use super::spec::{ClipSpec, Pooling};

/// The positions [`pool`] takes, one per row of `ids`.
pub fn pooled_positions(ids: &[Vec<u32>], pooling: Pooling) -> Vec<usize> {
    ids.iter()
        .map(|row| match pooling {
            // The first largest, as torch's argmax picks among equals.
            Pooling::Argmax => {
                let largest = row.iter().max();
                row.iter().position(|id| Some(id) == largest).unwrap_or(0)
            }
            Pooling::FirstEos(eos) => row.iter().position(|&id| id == eos).unwrap_or(0),
        })
        .collect()
}

/// `(batch, dim)`: each row's hidden state at its pooled position, from `hidden` of shape
/// `(batch, seq, dim)` and `ids` of shape `(batch, seq)`. Differentiable (an index select).
pub fn pool(hidden: &Tensor, ids: &Tensor, pooling: Pooling) -> Result<Tensor, TrainError> {
    let (batch, seq, dim) = hidden.dims3()?;
    let rows = ids.to_vec2::<u32>()?;
    let flat: Vec<u32> = pooled_positions(&rows, pooling)
        .into_iter()
        .enumerate()
        .map(|(row, at)| (row * seq + at) as u32)
        .collect();
    let index = Tensor::from_vec(flat, batch, hidden.device())?;
    Ok(hidden
        .reshape((batch * seq, dim))?
        .index_select(&index, 0)?)
}

/// CLIP's towers and projections, assembled here rather than through candle's `ClipModel`,
/// whose text tower pools at the largest id: right only when the end token has the largest id.
pub(super) struct Clip {
    text: ClipTextTransformer,
    vision: ClipVisionTransformer,
    text_projection: Linear,
    visual_projection: Linear,
    pooling: Pooling,
}

impl Clip {
    /// Asks `vb` for the same weights, under the same names, as candle's `ClipModel::new`.
    pub(super) fn new(vb: VarBuilder, spec: &ClipSpec) -> Result<Self, TrainError> {
        let config = spec.to_candle();
        let (text, vision) = (&config.text_config, &config.vision_config);
        let clip = Self {
            text: ClipTextTransformer::new(vb.pp("text_model"), text)?,
            vision: ClipVisionTransformer::new(vb.pp("vision_model"), vision)?,
            visual_projection: candle_nn::linear_no_bias(
                vision.embed_dim,
                vision.projection_dim,
                vb.pp("visual_projection"),
            )?,
            text_projection: candle_nn::linear_no_bias(
                text.embed_dim,
                text.projection_dim,
                vb.pp("text_projection"),
            )?,
            pooling: spec.text_config.pooling(),
        };
        // Unused by the reward, but part of the directory transformers loads.
        vb.get((), "logit_scale")?;
        Ok(clip)
    }

    pub(super) fn text_features(&self, ids: &Tensor) -> Result<Tensor, TrainError> {
        let hidden = self.text.forward_with_mask(ids, usize::MAX)?;
        Ok(pool(&hidden, ids, self.pooling)?.apply(&self.text_projection)?)
    }

    pub(super) fn image_features(&self, pixels: &Tensor) -> Result<Tensor, TrainError> {
        Ok(self
            .vision
            .forward(pixels)?
            .apply(&self.visual_projection)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pooling_takes_the_first_end_token_even_when_it_is_not_the_largest_id() {
        // Row 0 ends (id 7) at 2 and holds a larger id (9) before it; row 1 ends at 1 and is
        // padded with the end token; row 2 has no end token at all.
        let ids = vec![vec![5, 9, 7, 7], vec![5, 7, 7, 7], vec![5, 6, 0, 0]];
        assert_eq!(pooled_positions(&ids, Pooling::FirstEos(7)), vec![2, 1, 0]);
        assert_eq!(pooled_positions(&ids, Pooling::Argmax), vec![1, 1, 1]);

        let hidden = Tensor::arange(0f32, 24., &Device::Cpu)
            .unwrap()
            .reshape((3, 4, 2))
            .unwrap();
        let ids =
            Tensor::new(&[[5u32, 9, 7, 7], [5, 7, 7, 7], [5, 6, 0, 0]], &Device::Cpu).unwrap();
        let pooled = pool(&hidden, &ids, Pooling::FirstEos(7))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(pooled, vec![vec![4., 5.], vec![10., 11.], vec![16., 17.]]);
    }
}
