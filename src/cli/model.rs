//! The reward-model commands: train, eval, score.

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use social_reward::store::Catalog;
use social_reward::train::data::ImageLoader;
use social_reward::train::{
    self, EvalOptions, ModelChoice, RewardModel, TrainOptions, Trainable, device,
};

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
    /// `tiny` (a small random CLIP the code builds) or a Hugging Face CLIP directory/URL.
    #[arg(long, default_value = "tiny")]
    model: String,
    /// Total optimizer steps (overrides --epochs).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// AdamW learning rate (the paper's code: 3e-5; a tiny model from scratch wants ~1e-3).
    #[arg(long, default_value_t = 3e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0.3)]
    margin: f64,
    /// Which weights train.
    #[arg(long, value_enum, default_value_t = Trainable::Paper)]
    trainable: Trainable,
    /// Validation accuracy every N steps.
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 200)]
    checkpoint_every: usize,
    /// Validation triplets scored each time.
    #[arg(long, default_value_t = 2000)]
    val_limit: usize,
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

pub async fn train(args: TrainArgs, progress: bool) -> Result<train::TrainSummary> {
    let options = TrainOptions {
        triplets: args.triplets,
        images: args.images,
        out: args.out,
        model: ModelChoice::parse(&args.model),
        steps: args.steps,
        epochs: args.epochs,
        seed: args.seed,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        weight_decay: args.weight_decay,
        margin: args.margin,
        trainable: args.trainable,
        eval_every: args.eval_every,
        checkpoint_every: args.checkpoint_every,
        val_limit: args.val_limit,
        resume: !args.no_resume,
        cpu_only: args.cpu,
        progress,
        ..TrainOptions::default()
    };
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

#[derive(Args)]
pub struct EvalArgs {
    /// Model directory/URL, or train's OUT (its model/ is read).
    #[arg(long)]
    model: String,
    #[arg(long)]
    triplets: String,
    #[arg(long)]
    images: String,
    #[arg(long, default_value = "test")]
    split: String,
    /// Untrained model to compare with (default: the model card's base_model).
    #[arg(long)]
    baseline: Option<String>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Bootstrap resamples for the 95% interval.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Score only the first N triplets.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    cpu: bool,
}

pub async fn eval(args: EvalArgs) -> Result<train::EvalSummary> {
    let options = EvalOptions {
        model: args.model,
        triplets: args.triplets,
        images: args.images,
        split: args.split,
        baseline: args.baseline,
        batch_size: args.batch_size,
        bootstrap: args.bootstrap,
        seed: args.seed,
        limit: args.limit,
        cpu_only: args.cpu,
    };
    let summary = train::evaluate(&options).await?;
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
