//! `social-reward bench train`: training samples/s and scoring images/s of the tiny model and
//! of ViT-B/32's shape (random weights), on synthetic pixels and simulator prompts.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::TrainError;
use super::loss::{MARGIN, triplet_loss};
use super::model::{RewardModel, files_from_memory, tiny_model_files, vit_b32_model_files};
use super::spec::Trainable;
use crate::sources::simulator::prompts::fresh_prompt;

#[derive(Debug, Clone, Serialize)]
pub struct ModelBench {
    pub model: &'static str,
    pub device: String,
    pub image_size: usize,
    pub total_parameters: usize,
    pub trainable: Trainable,
    pub trainable_parameters: usize,
    pub batch_size: usize,
    pub train_steps: usize,
    pub train_samples_per_second: f64,
    pub score_images: usize,
    pub score_images_per_second: f64,
}

fn random_pixels(
    rng: &mut impl Rng,
    count: usize,
    size: usize,
    device: &Device,
) -> Result<Tensor, TrainError> {
    let values: Vec<f32> = (0..count * 3 * size * size)
        .map(|_| rng.random_range(-1.8f32..2.1))
        .collect();
    Ok(Tensor::from_vec(values, (count, 3, size, size), device)?)
}

/// One model's figures: `steps` timed training steps of `batch` triplets (after one warm-up
/// step), then `score_images` images scored in batches of 64.
pub fn bench_model(
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    trainable: Trainable,
    batch: usize,
    steps: usize,
    score_images: usize,
    device: &Device,
) -> Result<ModelBench, TrainError> {
    let files = files_from_memory(&files)?;
    let model = RewardModel::build(&files, trainable, true, device)?;
    let size = model.spec().image_size();
    let vars: Vec<_> = model.trainable_vars().into_iter().map(|(_, v)| v).collect();
    let trainable_parameters = vars.iter().map(|v| v.elem_count()).sum();
    let total_parameters = model.named_weights().values().map(Tensor::elem_count).sum();
    let mut optimizer = AdamW::new(vars, ParamsAdamW::default())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let prompts: Vec<String> = (0..batch).map(|_| fresh_prompt(&mut rng)).collect();
    let prompt_refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let mut step = |rng: &mut rand_chacha::ChaCha8Rng| -> Result<(), TrainError> {
        let images = model.embed_images(&random_pixels(rng, 2 * batch, size, device)?)?;
        let text = model.embed_prompts(&prompt_refs)?;
        let loss = triplet_loss(
            &text,
            &images.narrow(0, 0, batch)?,
            &images.narrow(0, batch, batch)?,
            MARGIN,
        )?;
        optimizer.backward_step(&loss)?;
        Ok(())
    };
    step(&mut rng)?;
    let started = Instant::now();
    for _ in 0..steps {
        step(&mut rng)?;
    }
    device.synchronize()?;
    let train_seconds = started.elapsed().as_secs_f64();

    let scorer = RewardModel::build(&files, trainable, false, device)?;
    let chunk = 64.min(score_images.max(1));
    let pixels = random_pixels(&mut rng, chunk, size, device)?;
    scorer.embed_images(&pixels)?;
    let started = Instant::now();
    let mut scored = 0;
    while scored < score_images {
        let prompts: Vec<&str> = vec![prompt_refs[0]; chunk];
        scorer.scores(&prompts, &pixels)?;
        scored += chunk;
    }
    device.synchronize()?;
    let score_seconds = started.elapsed().as_secs_f64();
    Ok(ModelBench {
        model: name,
        device: super::device::describe(device),
        image_size: size,
        total_parameters,
        trainable,
        trainable_parameters,
        batch_size: batch,
        train_steps: steps,
        train_samples_per_second: (steps * batch) as f64 / train_seconds.max(1e-9),
        score_images: scored,
        score_images_per_second: scored as f64 / score_seconds.max(1e-9),
    })
}

/// The tiny model and ViT-B/32's shape, with the paper's choice of trained layers.
pub fn run(quick: bool, cpu_only: bool) -> Result<Vec<ModelBench>, TrainError> {
    let device = super::device::pick(cpu_only)?;
    let (tiny_steps, big_steps, big_batch, big_scores) = if quick {
        (5, 1, 4, 16)
    } else {
        (40, 3, 32, 128)
    };
    Ok(vec![
        bench_model(
            "tiny",
            tiny_model_files(0)?,
            Trainable::Paper,
            32,
            tiny_steps,
            1024,
            &device,
        )?,
        bench_model(
            "vit-b32-shape",
            vit_b32_model_files(0)?,
            Trainable::Paper,
            big_batch,
            big_steps,
            big_scores,
            &device,
        )?,
    ])
}
