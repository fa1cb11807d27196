//! The model's shape as Hugging Face writes it (`config.json` of a `CLIPModel`), the tiny and
//! ViT-B/32-sized configurations the code builds itself, and which weights a run trains.

use candle_transformers::models::clip::{
    ClipConfig, text_model::Activation, text_model::ClipTextConfig, vision_model::ClipVisionConfig,
};
use serde::{Deserialize, Serialize};

/// `config.json` of a Hugging Face `CLIPModel`, reduced to what the architecture needs. Unknown
/// keys (HF writes dozens) are ignored; missing ones take HF's own defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f32,
    pub text_config: TextSpec,
    pub vision_config: VisionSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    /// The special tokens' ids, as transformers reads them. Absent from directories written
    /// before they were recorded; `RewardModel` then takes them from the tokenizer, which is
    /// what those models were trained with (see [`TextSpec::pooling`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

/// Which position's hidden state stands for the whole prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The largest id of each row: what OpenAI's CLIP does, and what transformers falls back
    /// to for configs whose `eos_token_id` is the placeholder 2 (openai/clip-* on the Hub).
    Argmax,
    /// The first position holding this id (position 0 when a row has none, as transformers'
    /// `argmax` over a row of zeros gives).
    FirstEos(u32),
}

/// transformers' marker for configs written before `eos_token_id` meant the end token.
const LEGACY_EOS_TOKEN_ID: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisionSpec {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub hidden_act: String,
}

fn default_model_type() -> String {
    "clip".into()
}
fn default_projection_dim() -> usize {
    512
}
fn default_logit_scale() -> f32 {
    2.6592
}

impl Default for TextSpec {
    /// HF's `CLIPTextConfig` defaults (the ViT-B/32 text tower).
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }
}

impl TextSpec {
    /// transformers' `CLIPTextTransformer` rule, mirrored so that a directory scores the same
    /// here and there. Without an `eos_token_id` the end token is assumed to be the largest id,
    /// which every tokenizer the code accepted before ids were recorded guaranteed.
    pub fn pooling(&self) -> Pooling {
        match self.eos_token_id {
            None | Some(LEGACY_EOS_TOKEN_ID) => Pooling::Argmax,
            Some(eos) => Pooling::FirstEos(eos),
        }
    }

    /// Fills in the ids from the tokenizer (`start`, `end`, and `largest`, its largest id), so
    /// that `config.json` tells transformers the truth; prompts are then padded with
    /// `pad_token_id` (0 when absent, as OpenAI pads). An `eos_token_id` of 2 is kept: it selects
    /// argmax pooling, as in transformers. Any other that is not the tokenizer's end token would
    /// pool a token the prompts do not end with, so it is refused.
    pub fn adopt_token_ids(
        &mut self,
        start: Option<u32>,
        end: u32,
        largest: u32,
    ) -> Result<(), ConfigProblem> {
        let pad = self.pad_token_id.unwrap_or(0);
        match self.eos_token_id {
            Some(LEGACY_EOS_TOKEN_ID) => {
                if pad > end {
                    return Err(ConfigProblem::ArgmaxPoolsPadding { pad, end });
                }
                if end != largest {
                    tracing::warn!(
                        "config.json: eos_token_id 2 asks for argmax pooling, but the tokenizer's \
                         end token {end} is not its largest id ({largest}): prompts holding a \
                         larger id pool the wrong token, here as in transformers; set \
                         eos_token_id to {end}"
                    );
                }
            }
            Some(eos) if eos != end => {
                return Err(ConfigProblem::EosNotEndToken { eos, end });
            }
            _ => self.eos_token_id = Some(end),
        }
        if start.is_some() {
            self.bos_token_id = start;
        }
        self.pad_token_id = Some(pad);
        Ok(())
    }
}

impl Default for VisionSpec {
    /// HF's `CLIPVisionConfig` defaults (ViT-B/32).
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 224,
            patch_size: 32,
            num_channels: 3,
            hidden_act: "quick_gelu".into(),
        }
    }
}

/// The longest prompt CLIP reads, in tokens (its context length).
pub const CLIP_MAX_TOKENS: usize = 77;

impl ClipSpec {
    /// A model small enough to train in seconds on one CPU core: tests and the embedded default.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            model_type: default_model_type(),
            projection_dim: 64,
            logit_scale_init_value: default_logit_scale(),
            text_config: TextSpec {
                vocab_size,
                hidden_size: 64,
                intermediate_size: 256,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                max_position_embeddings: 32,
                hidden_act: "quick_gelu".into(),
                bos_token_id: None,
                eos_token_id: None,
                pad_token_id: None,
            },
            vision_config: VisionSpec {
                hidden_size: 64,
                intermediate_size: 256,
                num_hidden_layers: 3,
                num_attention_heads: 4,
                image_size: 64,
                patch_size: 8,
                num_channels: 3,
                hidden_act: "quick_gelu".into(),
            },
        }
    }

    /// ViT-B/32's shape (random weights): benchmarks at a realistic size without downloads.
    pub fn vit_b32(vocab_size: usize) -> Self {
        Self {
            model_type: default_model_type(),
            projection_dim: 512,
            logit_scale_init_value: default_logit_scale(),
            text_config: TextSpec {
                vocab_size,
                ..TextSpec::default()
            },
            vision_config: VisionSpec::default(),
        }
    }

    pub fn parse(json: &[u8]) -> Result<Self, ConfigProblem> {
        let spec: Self = serde_json::from_slice(json)?;
        spec.check()?;
        Ok(spec)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn image_size(&self) -> usize {
        self.vision_config.image_size
    }

    /// Tokens a prompt is truncated to: CLIP's 77, or fewer when the model has fewer positions.
    pub fn max_tokens(&self) -> usize {
        self.text_config
            .max_position_embeddings
            .min(CLIP_MAX_TOKENS)
    }

    fn check(&self) -> Result<(), ConfigProblem> {
        if self.model_type != "clip" {
            return Err(ConfigProblem::NotClip {
                model_type: self.model_type.clone(),
            });
        }
        let (t, v) = (&self.text_config, &self.vision_config);
        let towers = [
            ("text", &t.hidden_act, t.hidden_size, t.num_attention_heads),
            (
                "vision",
                &v.hidden_act,
                v.hidden_size,
                v.num_attention_heads,
            ),
        ];
        for (tower, activation, _, _) in towers {
            if activation != "quick_gelu" {
                return Err(ConfigProblem::Activation {
                    tower,
                    activation: activation.clone(),
                });
            }
        }
        for (tower, _, hidden_size, heads) in towers {
            if heads == 0 || hidden_size % heads != 0 {
                return Err(ConfigProblem::AttentionHeads {
                    tower,
                    hidden_size,
                    heads,
                });
            }
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(ConfigProblem::PatchSize {
                image_size: v.image_size,
                patch_size: v.patch_size,
            });
        }
        if t.max_position_embeddings < 3 || t.vocab_size < 4 {
            return Err(ConfigProblem::TextTowerTooSmall {
                max_position_embeddings: t.max_position_embeddings,
                vocab_size: t.vocab_size,
            });
        }
        for (name, id) in [
            ("bos_token_id", t.bos_token_id),
            ("eos_token_id", t.eos_token_id),
            ("pad_token_id", t.pad_token_id),
        ] {
            if let Some(id) = id
                && id as usize >= t.vocab_size
            {
                return Err(ConfigProblem::TokenIdOutsideVocabulary {
                    name,
                    id,
                    vocab_size: t.vocab_size,
                });
            }
        }
        Ok(())
    }

    /// candle's own config type, which has no serde.
    pub fn to_candle(&self) -> ClipConfig {
        let (t, v) = (&self.text_config, &self.vision_config);
        ClipConfig {
            text_config: ClipTextConfig {
                vocab_size: t.vocab_size,
                embed_dim: t.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: t.intermediate_size,
                max_position_embeddings: t.max_position_embeddings,
                pad_with: None,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
                projection_dim: self.projection_dim,
            },
            vision_config: ClipVisionConfig {
                embed_dim: v.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                projection_dim: self.projection_dim,
                num_channels: v.num_channels,
                image_size: v.image_size,
                patch_size: v.patch_size,
            },
            logit_scale_init_value: self.logit_scale_init_value,
            image_size: v.image_size,
        }
    }
}

/// Why a `config.json` cannot be used: it does not read as a CLIP config, describes a model the
/// code cannot build, or has token ids that disagree with the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error(transparent)]
    Unreadable(#[from] serde_json::Error),
    #[error("model_type {model_type:?} is not \"clip\"")]
    NotClip { model_type: String },
    #[error("{tower} hidden_act {activation:?}: only quick_gelu (OpenAI CLIP) is supported")]
    Activation {
        tower: &'static str,
        activation: String,
    },
    #[error(
        "{tower} hidden_size {hidden_size} must be a multiple of num_attention_heads ({heads})"
    )]
    AttentionHeads {
        tower: &'static str,
        hidden_size: usize,
        heads: usize,
    },
    #[error("image_size {image_size} must be a multiple of patch_size ({patch_size})")]
    PatchSize {
        image_size: usize,
        patch_size: usize,
    },
    #[error(
        "text tower too small: max_position_embeddings {max_position_embeddings} (at least 3), \
         vocab_size {vocab_size} (at least 4)"
    )]
    TextTowerTooSmall {
        max_position_embeddings: usize,
        vocab_size: usize,
    },
    #[error("{name} {id} is outside the vocabulary ({vocab_size})")]
    TokenIdOutsideVocabulary {
        name: &'static str,
        id: u32,
        vocab_size: usize,
    },
    #[error(
        "eos_token_id {LEGACY_EOS_TOKEN_ID} asks for argmax pooling, which would pool the padding \
         (pad_token_id {pad}) instead of the end token ({end}); set eos_token_id to {end}"
    )]
    ArgmaxPoolsPadding { pad: u32, end: u32 },
    #[error("eos_token_id {eos} is not the tokenizer's end token ({end})")]
    EosNotEndToken { eos: u32, end: u32 },
}

/// Which weights a run updates; everything else stays frozen (and costs no backward pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Trainable {
    /// The paper's choice: the last 3 vision blocks and the post-layernorm; the last 2 text
    /// blocks, the final layernorm and the text projection.
    #[default]
    Paper,
    /// Every weight that the triplet loss reaches.
    All,
    /// Only the two projections.
    ProjectionOnly,
}

/// The name flags and pipeline files use (`paper`, `all`, `projection-only`).
impl std::fmt::Display for Trainable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trainable::Paper => "paper",
            Trainable::All => "all",
            Trainable::ProjectionOnly => "projection-only",
        })
    }
}

impl Trainable {
    /// Whether the weight named `name` (HF naming) is trained. `logit_scale` never is: the
    /// triplet loss does not use it, so it would sit in the optimizer with no gradient.
    pub fn trains(self, spec: &ClipSpec, name: &str) -> bool {
        if name == "logit_scale" {
            return false;
        }
        match self {
            Trainable::All => true,
            Trainable::ProjectionOnly => {
                name.starts_with("text_projection.") || name.starts_with("visual_projection.")
            }
            Trainable::Paper => {
                let last_blocks = |prefix: &str, layers: usize, keep: usize| {
                    name.strip_prefix(prefix)
                        .and_then(|rest| rest.split('.').next())
                        .and_then(|index| index.parse::<usize>().ok())
                        .is_some_and(|index| index + keep >= layers)
                };
                last_blocks(
                    "vision_model.encoder.layers.",
                    spec.vision_config.num_hidden_layers,
                    3,
                ) || name.starts_with("vision_model.post_layernorm.")
                    || last_blocks(
                        "text_model.encoder.layers.",
                        spec.text_config.num_hidden_layers,
                        2,
                    )
                    || name.starts_with("text_model.final_layer_norm.")
                    || name.starts_with("text_projection.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_hugging_face_config_with_extra_keys_and_defaults() {
        let json = br#"{
            "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 768,
            "torch_dtype": "float32",
            "text_config": {"hidden_size": 768, "num_attention_heads": 12,
                            "intermediate_size": 3072, "bos_token_id": 0},
            "vision_config": {"hidden_size": 1024, "intermediate_size": 4096,
                              "num_attention_heads": 16, "num_hidden_layers": 24,
                              "patch_size": 14, "image_size": 224}
        }"#;
        let spec = ClipSpec::parse(json).unwrap();
        assert_eq!(spec.projection_dim, 768);
        assert_eq!(spec.text_config.num_hidden_layers, 12);
        assert_eq!(spec.text_config.vocab_size, 49408);
        assert_eq!(spec.vision_config.patch_size, 14);
        let candle = spec.to_candle();
        assert_eq!(candle.vision_config.projection_dim, 768);
        assert!(matches!(
            ClipSpec::parse(br#"{"model_type":"clip"}"#),
            Err(ConfigProblem::Unreadable(_))
        ));
        let gelu = br#"{"text_config": {"hidden_act": "gelu"}, "vision_config": {}}"#;
        assert!(matches!(
            ClipSpec::parse(gelu),
            Err(ConfigProblem::Activation { tower: "text", .. })
        ));
        let mut odd = ClipSpec::tiny(100);
        odd.vision_config.num_attention_heads = 3;
        assert!(matches!(
            ClipSpec::parse(&odd.to_json()),
            Err(ConfigProblem::AttentionHeads {
                tower: "vision",
                hidden_size: 64,
                heads: 3,
            })
        ));
    }

    #[test]
    fn token_ids_round_trip_through_config_json_and_choose_the_pooling() {
        let mut spec = ClipSpec::tiny(100);
        assert_eq!(spec.text_config.pooling(), Pooling::Argmax);
        // An end token that is not the largest id, as transformers would then read it.
        spec.text_config.adopt_token_ids(Some(41), 42, 99).unwrap();
        let t = &spec.text_config;
        assert_eq!(
            (t.bos_token_id, t.eos_token_id, t.pad_token_id),
            (Some(41), Some(42), Some(0))
        );
        let json: serde_json::Value = serde_json::from_slice(&spec.to_json()).unwrap();
        assert_eq!(json["text_config"]["eos_token_id"], 42);
        assert_eq!(json["text_config"]["bos_token_id"], 41);
        assert_eq!(json["text_config"]["pad_token_id"], 0);
        let back = ClipSpec::parse(&spec.to_json()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.text_config.pooling(), Pooling::FirstEos(42));

        // openai/clip-* on the Hub: eos 2 means argmax, kept; the padding id is used as given.
        let mut legacy = ClipSpec::tiny(100);
        legacy.text_config.eos_token_id = Some(2);
        legacy.text_config.pad_token_id = Some(1);
        legacy
            .text_config
            .adopt_token_ids(Some(98), 99, 99)
            .unwrap();
        assert_eq!(legacy.text_config.pooling(), Pooling::Argmax);
        assert_eq!(legacy.text_config.eos_token_id, Some(2));
        assert_eq!(legacy.text_config.pad_token_id, Some(1));
        // Padding above the end token would be what argmax pools.
        legacy.text_config.pad_token_id = Some(99);
        assert!(matches!(
            legacy.text_config.adopt_token_ids(Some(97), 98, 99),
            Err(ConfigProblem::ArgmaxPoolsPadding { pad: 99, end: 98 })
        ));
        // An end token the tokenizer does not end prompts with, or outside the vocabulary.
        let mut wrong = ClipSpec::tiny(100);
        wrong.text_config.eos_token_id = Some(7);
        assert!(matches!(
            wrong.text_config.adopt_token_ids(Some(41), 42, 99),
            Err(ConfigProblem::EosNotEndToken { eos: 7, end: 42 })
        ));
        wrong.text_config.eos_token_id = Some(100);
        assert!(matches!(
            ClipSpec::parse(&wrong.to_json()),
            Err(ConfigProblem::TokenIdOutsideVocabulary {
                name: "eos_token_id",
                id: 100,
                vocab_size: 100,
            })
        ));
    }

    #[test]
    fn the_paper_trains_the_last_blocks_and_heads_only() {
        let mut spec = ClipSpec::vit_b32(49408);
        spec.vision_config.num_hidden_layers = 24;
        let paper = Trainable::Paper;
        assert!(paper.trains(&spec, "vision_model.encoder.layers.21.mlp.fc1.weight"));
        assert!(paper.trains(&spec, "vision_model.encoder.layers.23.layer_norm1.bias"));
        assert!(!paper.trains(&spec, "vision_model.encoder.layers.20.mlp.fc1.weight"));
        assert!(!paper.trains(&spec, "vision_model.encoder.layers.2.mlp.fc1.weight"));
        assert!(paper.trains(&spec, "vision_model.post_layernorm.weight"));
        assert!(!paper.trains(&spec, "visual_projection.weight"));
        assert!(paper.trains(
            &spec,
            "text_model.encoder.layers.10.self_attn.q_proj.weight"
        ));
        assert!(!paper.trains(&spec, "text_model.encoder.layers.9.self_attn.q_proj.weight"));
        assert!(paper.trains(&spec, "text_model.final_layer_norm.bias"));
        assert!(paper.trains(&spec, "text_projection.weight"));
        assert!(!paper.trains(&spec, "text_model.embeddings.token_embedding.weight"));
        assert!(!Trainable::All.trains(&spec, "logit_scale"));
        assert!(Trainable::ProjectionOnly.trains(&spec, "visual_projection.weight"));
        assert!(!Trainable::ProjectionOnly.trains(&spec, "text_model.final_layer_norm.bias"));
    }

    #[test]
    fn trainable_displays_as_flags_and_files_spell_it() {
        for trainable in [Trainable::Paper, Trainable::All, Trainable::ProjectionOnly] {
            let serde = serde_json::to_value(trainable).unwrap();
            assert_eq!(serde, trainable.to_string());
            let flag = clap::ValueEnum::to_possible_value(&trainable).unwrap();
            assert_eq!(flag.get_name(), trainable.to_string());
        }
    }
}
