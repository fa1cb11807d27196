//! The reward-model commands: train, eval, score.

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use social_reward::store::Catalog;
use social_reward::train::data::ImageLoader;
use social_reward::train::{
    self, EvalOptions, ModelChoice, RewardModel, TrainOptions, Trainable, device,
};

/// Each setting flag overrides one field of [`TrainOptions::default`] (the paper's settings,
/// as in a pipeline's `[train]` section); an absent flag keeps it.
#[derive(Args)]
pub struct TrainArgs {
    /// Curation's output (or any folder/URL of triplet Parquet with split= partitions).
    #[arg(long)]
    triplets: String,
    /// Root the triplets' pos_path/neg_path are relative to.
    #[arg(long)]
    images: String,
    /// Where base/, checkpoints/ and model/ go: a folder, file:// or s3:// URL.
    #[arg(long)]
    out: String,
    /// `tiny` (a small random CLIP the code builds, the default) or a Hugging Face CLIP
    /// directory/URL.
    #[arg(long)]
    model: Option<String>,
    /// Total optimizer steps (overrides --epochs).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// AdamW learning rate (default: the paper's code's; a tiny model from scratch wants ~1e-3).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Triplet loss margin (default: the paper's).
    #[arg(long)]
    margin: Option<f64>,
    /// Which weights train (default: the paper's choice).
    #[arg(long, value_enum)]
    trainable: Option<Trainable>,
    /// Validation accuracy every N steps.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Checkpoint every N steps (and at the end).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Validation triplets scored each time.
    #[arg(long)]
    val_limit: Option<usize>,
    /// Start afresh even when OUT holds a checkpoint.
    #[arg(long)]
    no_resume: bool,
    /// Stay on the CPU even when a GPU is present.
    #[arg(long)]
    cpu: bool,
    /// Catalog to record the model in (default: none).
    #[arg(long, env = "SR_CATALOG__URL")]
    db: Option<String>,
}

/// Replaces `field` with the flag's value when the flag was given.
fn set<T>(field: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *field = value;
    }
}

impl TrainArgs {
    /// The defaults with the given flags on top.
    fn options(&self, progress: bool) -> TrainOptions {
        let mut options = TrainOptions {
            triplets: self.triplets.clone(),
            images: self.images.clone(),
            out: self.out.clone(),
            progress,
            ..TrainOptions::default()
        };
        set(
            &mut options.model,
            self.model.as_deref().map(ModelChoice::parse),
        );
        set(&mut options.steps, self.steps.map(Some));
        set(&mut options.epochs, self.epochs);
        set(&mut options.seed, self.seed);
        set(&mut options.batch_size, self.batch_size);
        set(&mut options.learning_rate, self.lr);
        set(&mut options.weight_decay, self.weight_decay);
        set(&mut options.margin, self.margin);
        set(&mut options.trainable, self.trainable);
        set(&mut options.eval_every, self.eval_every);
        set(&mut options.checkpoint_every, self.checkpoint_every);
        set(&mut options.val_limit, self.val_limit);
        options.resume &= !self.no_resume;
        options.cpu_only |= self.cpu;
        options
    }
}

pub async fn train(args: TrainArgs, progress: bool) -> Result<train::TrainSummary> {
    let options = args.options(progress);
    let catalog = match &args.db {
        Some(url) => Some(Catalog::open(url).await?),
        None => None,
    };
    let summary = train::train(&options, catalog.as_ref(), None).await?;
    if let Some(catalog) = catalog {
        catalog.close().await;
    }
    Ok(summary)
}

/// Like train's, each flag overrides one field of [`EvalOptions::default`].
#[derive(Args)]
pub struct EvalArgs {
    /// Model directory/URL, or train's OUT (its model/ is read).
    #[arg(long)]
    model: String,
    #[arg(long)]
    triplets: String,
    #[arg(long)]
    images: String,
    /// The split scored.
    #[arg(long)]
    split: Option<String>,
    /// Untrained model to compare with (default: the model card's base_model).
    #[arg(long)]
    baseline: Option<String>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Bootstrap resamples for the 95% interval.
    #[arg(long)]
    bootstrap: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Score only the first N triplets.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    cpu: bool,
}

impl EvalArgs {
    fn options(self) -> EvalOptions {
        let mut options = EvalOptions {
            model: self.model,
            triplets: self.triplets,
            images: self.images,
            ..EvalOptions::default()
        };
        set(&mut options.split, self.split);
        set(&mut options.baseline, self.baseline.map(Some));
        set(&mut options.limit, self.limit.map(Some));
        set(&mut options.batch_size, self.batch_size);
        set(&mut options.bootstrap, self.bootstrap);
        set(&mut options.seed, self.seed);
        options.cpu_only |= self.cpu;
        options
    }
}

pub async fn eval(args: EvalArgs) -> Result<train::EvalSummary> {
    let summary = train::evaluate(&args.options()).await?;
    eprint!("{}", summary.table());
    Ok(summary)
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Model directory/URL, or train's OUT (its model/ is read).
    #[arg(long)]
    model: String,
    #[arg(long)]
    prompt: String,
    /// Image files or URLs.
    #[arg(required = true)]
    images: Vec<String>,
    #[arg(long)]
    cpu: bool,
}

#[derive(Serialize)]
struct Scored<'a> {
    image: &'a str,
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// Prints one JSON line per image; an unreadable image gets `"score": null` and an error.
pub async fn score(args: ScoreArgs) -> Result<()> {
    let device = device::pick(args.cpu)?;
    let model = RewardModel::load(&args.model, Trainable::Paper, false, &device)
        .await
        .with_context(|| format!("loading {}", args.model))?;
    let mut loader = ImageLoader::new(".", model.image_size(), args.images.len())?;
    for chunk in args.images.chunks(64) {
        let paths: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let pixels = loader.load(&paths).await;
        let good: Vec<&[f32]> = pixels.iter().flatten().map(|p| p.as_slice()).collect();
        let scores = if good.is_empty() {
            Vec::new()
        } else {
            let prompts = vec![args.prompt.as_str(); good.len()];
            model.scores(&prompts, &model.pixel_batch(&good)?)?
        };
        let mut scores = scores.into_iter();
        for (image, pixels) in paths.iter().zip(&pixels) {
            let line = match pixels {
                Some(_) => Scored {
                    image,
                    score: scores.next(),
                    error: None,
                },
                None => Scored {
                    image,
                    score: None,
                    error: Some("unreadable image"),
                },
            };
            println!("{}", serde_json::to_string(&line)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[derive(Parser)]
    struct Eval {
        #[command(flatten)]
        args: EvalArgs,
    }

    const WHERE: [&str; 7] = ["x", "--triplets", "T", "--images", "I", "--out", "O"];

    #[test]
    fn absent_train_flags_keep_the_defaults_and_given_ones_override_them() {
        let plain = Train::parse_from(WHERE).args.options(true);
        let expected = TrainOptions {
            triplets: "T".into(),
            images: "I".into(),
            out: "O".into(),
            progress: true,
            ..TrainOptions::default()
        };
        assert_eq!(plain, expected);
        let mut argv = WHERE.to_vec();
        argv.extend([
            "--model",
            "/m",
            "--steps",
            "5",
            "--lr",
            "0.001",
            "--trainable",
            "all",
            "--no-resume",
            "--cpu",
        ]);
        let flagged = Train::parse_from(argv).args.options(false);
        assert_eq!(
            flagged,
            TrainOptions {
                model: ModelChoice::Directory("/m".into()),
                steps: Some(5),
                learning_rate: 0.001,
                trainable: Trainable::All,
                resume: false,
                cpu_only: true,
                progress: false,
                ..expected
            }
        );
    }

    #[test]
    fn absent_eval_flags_keep_the_defaults() {
        let argv = ["x", "--model", "M", "--triplets", "T", "--images", "I"];
        let options = Eval::parse_from(argv).args.options();
        let defaults = EvalOptions::default();
        assert_eq!(
            (
                options.split,
                options.batch_size,
                options.bootstrap,
                options.seed
            ),
            (
                defaults.split,
                defaults.batch_size,
                defaults.bootstrap,
                defaults.seed
            )
        );
        assert_eq!((options.baseline, options.limit), (None, None));
        let argv = [
            "x",
            "--model",
            "M",
            "--triplets",
            "T",
            "--images",
            "I",
            "--split",
            "val",
        ];
        assert_eq!(Eval::parse_from(argv).args.options().split, "val");
    }
}
