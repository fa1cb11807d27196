//! A training run's settings (the pipeline's `[train]` section, what `train`'s flags override)
//! and what it reports.

use serde::{Deserialize, Serialize};

use super::Trainable;
use super::loss::MARGIN;

/// Where training starts from. Reads and writes as text: `tiny` or the directory's URL.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ModelChoice {
    /// The tiny random model, written by the code itself to `OUT/base`.
    #[default]
    Tiny,
    /// A Hugging Face layout directory (local path or object store URL).
    Directory(String),
}

impl ModelChoice {
    const TINY: &str = "tiny";

    pub fn parse(text: &str) -> Self {
        if text == Self::TINY {
            Self::Tiny
        } else {
            Self::Directory(text.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Tiny => Self::TINY,
            Self::Directory(url) => url,
        }
    }
}

impl Serialize for ModelChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ModelChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self::parse(&text))
    }
}

/// A training run's settings, with the paper's as defaults ([`TrainOptions::default`], the one
/// place they are written down). The same struct is a pipeline's `[train]` section
/// (deserialized: every key optional, unknown keys refused) and what `social-reward train`'s
/// flags override. Where the data and the output live, and how the run behaves on this machine,
/// are not settings of a section: those fields are neither read nor written by serde (a pipeline
/// decides them itself), so the section's keys are exactly the serialized fields, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// `tiny` or a Hugging Face CLIP directory/URL.
    pub model: ModelChoice,
    /// Steps to run in all (a resumed run counts the steps already done); overrides `epochs`.
    pub steps: Option<usize>,
    pub epochs: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub margin: f64,
    pub trainable: Trainable,
    /// Validation accuracy every N steps (0: only at the end).
    pub eval_every: usize,
    /// A checkpoint every N steps (and at the end).
    pub checkpoint_every: usize,
    /// Validation triplets scored at each evaluation (the first ones, a fixed set).
    pub val_limit: usize,
    pub cpu_only: bool,
    /// Triplet Parquet (curation's output).
    #[serde(skip)]
    pub triplets: String,
    /// The root the triplets' image paths are relative to.
    #[serde(skip)]
    pub images: String,
    /// Where `base/`, `checkpoints/` and `model/` go.
    #[serde(skip)]
    pub out: String,
    /// Preprocessed images kept in memory between batches.
    #[serde(skip)]
    pub image_cache: usize,
    /// Continue from OUT's checkpoint when there is one.
    #[serde(skip)]
    pub resume: bool,
    #[serde(skip)]
    pub progress: bool,
}

impl Default for TrainOptions {
    /// The paper's settings (its code's learning rate, 3e-5), from the tiny model.
    fn default() -> Self {
        Self {
            model: ModelChoice::Tiny,
            steps: None,
            epochs: 10,
            seed: 0,
            batch_size: 32,
            learning_rate: 3e-5,
            weight_decay: 0.01,
            margin: MARGIN,
            trainable: Trainable::Paper,
            eval_every: 100,
            checkpoint_every: 200,
            val_limit: 2000,
            cpu_only: false,
            triplets: String::new(),
            images: String::new(),
            out: String::new(),
            image_cache: 50_000,
            resume: true,
            progress: false,
        }
    }
}

impl TrainOptions {
    /// Every option as the model card and the catalog record them: the settings, where the data
    /// and the output were, and `model` in the form those records have always had (`"Tiny"` or
    /// `{"Directory": url}`).
    pub(super) fn recorded(&self) -> serde_json::Value {
        let mut recorded = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = recorded.as_object_mut() {
            let model = match &self.model {
                ModelChoice::Tiny => serde_json::json!("Tiny"),
                ModelChoice::Directory(url) => serde_json::json!({ "Directory": url }),
            };
            fields.insert("model".into(), model);
            fields.insert("triplets".into(), self.triplets.clone().into());
            fields.insert("images".into(), self.images.clone().into());
            fields.insert("out".into(), self.out.clone().into());
            fields.insert("image_cache".into(), self.image_cache.into());
            fields.insert("resume".into(), self.resume.into());
        }
        recorded
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub model_id: String,
    pub model_uri: String,
    pub base_model: String,
    pub device: String,
    pub steps: usize,
    pub resumed_from_step: Option<usize>,
    pub train_triplets: usize,
    pub val_triplets: usize,
    pub skipped_triplets: usize,
    pub failed_images: u64,
    pub trainable_parameters: usize,
    pub total_parameters: usize,
    pub samples_per_second: f64,
    pub first_loss: Option<f64>,
    pub final_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub val_baseline_accuracy: Option<f64>,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_reads_and_writes_only_the_settings_with_the_defaults_filled_in() {
        let defaults = TrainOptions::default();
        assert_eq!(
            serde_json::from_str::<TrainOptions>("{}").unwrap(),
            defaults
        );
        // A pipeline digests these bytes into its output folder's name: they must not drift.
        assert_eq!(
            serde_json::to_string(&defaults).unwrap(),
            "{\"model\":\"tiny\",\"steps\":null,\"epochs\":10,\"seed\":0,\"batch_size\":32,\
             \"learning_rate\":0.00003,\"weight_decay\":0.01,\"margin\":0.3,\"trainable\":\"paper\",\
             \"eval_every\":100,\"checkpoint_every\":200,\"val_limit\":2000,\"cpu_only\":false}"
        );
        let section: TrainOptions = toml::from_str(
            "model = \"s3://m/clip\"\nsteps = 5\ntrainable = \"projection-only\"\ncpu_only = true",
        )
        .unwrap();
        assert_eq!(
            section,
            TrainOptions {
                model: ModelChoice::Directory("s3://m/clip".into()),
                steps: Some(5),
                trainable: Trainable::ProjectionOnly,
                cpu_only: true,
                ..defaults
            }
        );
        // Locations and per-machine behaviour are the pipeline's, not the section's.
        for key in [
            "triplets",
            "images",
            "out",
            "image_cache",
            "resume",
            "progress",
            "lr",
        ] {
            let text = format!("{key} = 1");
            assert!(toml::from_str::<TrainOptions>(&text).is_err(), "{key}");
        }
    }

    #[test]
    fn model_cards_record_every_option_in_their_original_form() {
        let options = TrainOptions {
            triplets: "t".into(),
            images: "i".into(),
            out: "o".into(),
            model: ModelChoice::Directory("d".into()),
            ..TrainOptions::default()
        };
        assert_eq!(
            options.recorded(),
            serde_json::json!({
                "triplets": "t", "images": "i", "out": "o", "model": {"Directory": "d"},
                "steps": null, "epochs": 10, "seed": 0, "batch_size": 32, "learning_rate": 3e-5,
                "weight_decay": 0.01, "margin": 0.3, "trainable": "paper", "eval_every": 100,
                "checkpoint_every": 200, "val_limit": 2000, "image_cache": 50000, "resume": true,
                "cpu_only": false,
            })
        );
        assert_eq!(TrainOptions::default().recorded()["model"], "Tiny");
    }
}
