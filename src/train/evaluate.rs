//! Pairwise accuracy: the share of (prompt, pos, neg) triplets where the model scores the
//! preferred image at least as high as the other (ties count as correct, as in the paper), with
//! a bootstrap 95% interval, for a trained model and its untrained starting point side by side.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::data::{ImageLoader, TripletRow, read_triplets};
use super::model::{MODEL_CARD_FILE, RewardModel};
use super::{TrainError, Trainable, device};
use crate::store::ObjectRoot;

/// Triplets scored, with what the model got right.
#[derive(Debug, Default)]
pub struct Judged {
    pub correct: Vec<bool>,
    pub unique_prompt: Vec<bool>,
    /// Triplets dropped because an image could not be used.
    pub skipped: usize,
}

impl Judged {
    pub fn accuracy(&self) -> Option<f64> {
        share(&self.correct)
    }

    pub fn unique_prompt_accuracy(&self) -> Option<f64> {
        let subset: Vec<bool> = self
            .correct
            .iter()
            .zip(&self.unique_prompt)
            .filter(|(_, unique)| **unique)
            .map(|(c, _)| *c)
            .collect();
        share(&subset)
    }
}

fn share(flags: &[bool]) -> Option<f64> {
    (!flags.is_empty()).then(|| flags.iter().filter(|c| **c).count() as f64 / flags.len() as f64)
}

/// Scores every row's two images against its prompt.
pub async fn judge(
    model: &RewardModel,
    rows: &[TripletRow],
    loader: &mut ImageLoader,
    batch_size: usize,
) -> Result<Judged, TrainError> {
    let mut judged = Judged::default();
    for chunk in rows.chunks(batch_size.max(1)) {
        let chunk: Vec<&TripletRow> = chunk.iter().collect();
        let pairs = loader.load_pairs(&chunk).await;
        judged.skipped += pairs.skipped;
        if pairs.rows.is_empty() {
            continue;
        }
        // Each prompt twice, beside its positive then its negative image.
        let doubled: Vec<&str> = pairs
            .rows
            .iter()
            .flat_map(|r| [r.prompt.as_str(), r.prompt.as_str()])
            .collect();
        let images: Vec<&[f32]> = pairs
            .positives
            .iter()
            .zip(&pairs.negatives)
            .flat_map(|(p, n)| [p.as_slice(), n.as_slice()])
            .collect();
        let scores = model.scores(&doubled, &model.pixel_batch(&images)?)?;
        for (row, pair) in pairs.rows.iter().zip(scores.chunks(2)) {
            judged.correct.push(pair[0] >= pair[1]);
            judged.unique_prompt.push(row.unique_prompt);
        }
    }
    Ok(judged)
}

/// Percentile bootstrap of the mean of `flags`: (low, high) of the central 95%.
pub fn bootstrap_ci95(flags: &[bool], resamples: usize, seed: u64) -> Option<[f64; 2]> {
    if flags.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = flags.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let hits = (0..n).filter(|_| flags[rng.random_range(0..n)]).count();
            hits as f64 / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Some([at(0.025), at(0.975)])
}

/// An evaluation's settings. The same struct is a pipeline's `[eval]` section (deserialized:
/// every key optional, unknown keys refused) and what `social-reward eval`'s flags override;
/// which model, data and machine are not settings of the section (a pipeline takes them from
/// its `[train]` and its outputs), so serde neither reads nor writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalOptions {
    /// The split scored: `test` (or `val`, `train`).
    pub split: String,
    /// Bootstrap resamples for the 95% intervals.
    pub bootstrap: usize,
    pub batch_size: usize,
    /// Score at most this many pairs (the first ones).
    pub limit: Option<usize>,
    #[serde(skip)]
    pub model: String,
    #[serde(skip)]
    pub triplets: String,
    #[serde(skip)]
    pub images: String,
    /// The untrained model compared against; by default the `base_model` of the model card.
    #[serde(skip)]
    pub baseline: Option<String>,
    #[serde(skip)]
    pub seed: u64,
    #[serde(skip)]
    pub cpu_only: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            model: String::new(),
            triplets: String::new(),
            images: String::new(),
            split: "test".into(),
            baseline: None,
            batch_size: 64,
            bootstrap: 1000,
            seed: 0,
            limit: None,
            cpu_only: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    pub model: String,
    pub baseline_model: Option<String>,
    pub split: String,
    pub device: String,
    pub pairs: usize,
    pub skipped: usize,
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub baseline_accuracy: Option<f64>,
    pub baseline_ci95: Option<[f64; 2]>,
    /// The same on the val/test rows whose prompt cluster never occurs in train.
    pub unique_prompt_pairs: usize,
    pub unique_prompt_accuracy: Option<f64>,
    pub baseline_unique_prompt_accuracy: Option<f64>,
}

impl EvalSummary {
    /// The accuracies as a plain-text table for people (`eval` and `run` print it).
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", 100.0 * v));
        let ci = |v: Option<[f64; 2]>| {
            v.map_or("-".to_owned(), |[lo, hi]| {
                format!("[{:.1}, {:.1}]", 100.0 * lo, 100.0 * hi)
            })
        };
        format!(
            "pairwise accuracy on {} ({} pairs, {} skipped)\n  trained   {:>7} {}\n  baseline  {:>7} {}\n  unique-prompt subset ({} pairs): trained {}, baseline {}\n",
            self.split,
            self.pairs,
            self.skipped,
            pct(self.accuracy),
            ci(self.ci95),
            pct(self.baseline_accuracy),
            ci(self.baseline_ci95),
            self.unique_prompt_pairs,
            pct(self.unique_prompt_accuracy),
            pct(self.baseline_unique_prompt_accuracy),
        )
    }
}

/// The model card's `base_model`, when the model directory has one.
async fn base_model_of(model_url: &str) -> Option<String> {
    let root = ObjectRoot::open(model_url).ok()?;
    let card = root.get(MODEL_CARD_FILE, 16 << 20).await.ok()?;
    let card: serde_json::Value = serde_json::from_slice(&card).ok()?;
    card.get("base_model")?.as_str().map(str::to_owned)
}

pub async fn evaluate(options: &EvalOptions) -> Result<EvalSummary, TrainError> {
    let device = device::pick(options.cpu_only)?;
    // The model first: a wrong --model is reported before any triplet is read.
    let model = RewardModel::load(&options.model, Trainable::Paper, false, &device).await?;
    // The directory actually read: `options.model` may be train's OUT rather than OUT/model.
    let model_url = model.url().unwrap_or(&options.model).to_owned();
    let mut rows = read_triplets(&options.triplets, Some(&options.split))
        .await?
        .rows;
    if let Some(limit) = options.limit {
        rows.truncate(limit);
    }
    let mut loader = ImageLoader::new(&options.images, model.image_size(), 100_000)?;
    let judged = judge(&model, &rows, &mut loader, options.batch_size).await?;
    let image_size = model.image_size();
    drop(model);
    let baseline_url = match &options.baseline {
        Some(url) => Some(url.clone()),
        None => base_model_of(&model_url).await,
    };
    let baseline = match &baseline_url {
        Some(url) => {
            let base = RewardModel::load(url, Trainable::Paper, false, &device).await?;
            // Same input size: the pictures already preprocessed for the model serve again.
            if base.image_size() != image_size {
                loader = ImageLoader::new(&options.images, base.image_size(), 100_000)?;
            }
            Some(judge(&base, &rows, &mut loader, options.batch_size).await?)
        }
        None => None,
    };
    Ok(EvalSummary {
        model: model_url,
        baseline_model: baseline_url,
        split: options.split.clone(),
        device: device::describe(&device),
        pairs: judged.correct.len(),
        skipped: judged.skipped,
        accuracy: judged.accuracy(),
        ci95: bootstrap_ci95(&judged.correct, options.bootstrap, options.seed),
        baseline_accuracy: baseline.as_ref().and_then(Judged::accuracy),
        baseline_ci95: baseline
            .as_ref()
            .and_then(|b| bootstrap_ci95(&b.correct, options.bootstrap, options.seed)),
        unique_prompt_pairs: judged.unique_prompt.iter().filter(|u| **u).count(),
        unique_prompt_accuracy: judged.unique_prompt_accuracy(),
        baseline_unique_prompt_accuracy: baseline.as_ref().and_then(Judged::unique_prompt_accuracy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_brackets_the_mean_and_narrows_with_more_pairs() {
        let small: Vec<bool> = (0..50).map(|i| i % 4 != 0).collect();
        let large: Vec<bool> = (0..5000).map(|i| i % 4 != 0).collect();
        let [lo, hi] = bootstrap_ci95(&small, 2000, 1).unwrap();
        assert!(lo < 0.75 && 0.75 < hi, "{lo} {hi}");
        let [lo2, hi2] = bootstrap_ci95(&large, 2000, 1).unwrap();
        assert!(lo2 < 0.75 && 0.75 < hi2);
        assert!(hi2 - lo2 < (hi - lo) / 5.0);
        assert_eq!(bootstrap_ci95(&[], 100, 1), None);
        assert_eq!(bootstrap_ci95(&[true; 10], 100, 1), Some([1.0, 1.0]));
    }

    #[test]
    fn ties_count_as_correct_and_unique_prompts_are_a_subset() {
        let judged = Judged {
            correct: vec![true, false, true, true],
            unique_prompt: vec![true, true, false, false],
            skipped: 0,
        };
        assert_eq!(judged.accuracy(), Some(0.75));
        assert_eq!(judged.unique_prompt_accuracy(), Some(0.5));
        assert_eq!(Judged::default().accuracy(), None);
    }
}
