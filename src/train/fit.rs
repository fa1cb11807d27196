//! The training run: the paper's optimiser and loss over shuffled batches of train triplets,
//! validation accuracy as it goes, checkpoints (weights, optimiser moments, position) that a
//! restarted run resumes from, and the final model directory with its model card.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::data::{ImageLoader, TripletRow, read_triplets};
use super::evaluate::judge;
use super::loss::triplet_loss;
use super::model::{
    CONFIG_FILE, MODEL_CARD_FILE, MODEL_DIR, RewardModel, WEIGHTS_FILE, safetensors_bytes,
    tiny_model_files, write_model_files,
};
use super::options::{ModelChoice, TrainOptions, TrainSummary};
use super::{TrainError, Trainable, device};
use crate::store::{Catalog, ObjectRoot};

/// Where in OUT the tiny model is written when training starts from it.
const BASE_DIR: &str = "base";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
const LATEST_FILE: &str = "checkpoints/latest.json";

/// What a checkpoint must agree on with the run resuming it, so the data order continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    seed: u64,
    batch_size: usize,
    trainable: Trainable,
    dir: String,
}

/// The order of the train rows in `epoch`: a shuffle drawn from (seed, epoch) alone, so any
/// step's batch is known without replaying the ones before it.
fn epoch_order(seed: u64, epoch: usize, rows: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    order.shuffle(&mut rng);
    order
}

/// The base model's URL, writing the tiny model there first when that is the choice.
async fn base_model(options: &TrainOptions, out: &ObjectRoot) -> Result<String, TrainError> {
    match &options.model {
        ModelChoice::Directory(url) => Ok(url.clone()),
        ModelChoice::Tiny => {
            let url = out.url_of(BASE_DIR);
            if !out.exists(&format!("{BASE_DIR}/{CONFIG_FILE}")).await? {
                write_model_files(&url, tiny_model_files(options.seed)?).await?;
            }
            Ok(url)
        }
    }
}

async fn read_checkpoint(out: &ObjectRoot) -> Result<Option<CheckpointState>, TrainError> {
    if !out.exists(LATEST_FILE).await? {
        return Ok(None);
    }
    let bytes = out.get(LATEST_FILE, 1 << 20).await?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| TrainError::BadCheckpoint {
            url: out.url_of(LATEST_FILE),
            source,
        })
}

async fn write_checkpoint(
    out: &ObjectRoot,
    model: &RewardModel,
    optimizer: &AdamW,
    names: &[String],
    state: &CheckpointState,
) -> Result<(), TrainError> {
    write_model_files(&out.url_of(&state.dir), model.to_files()?).await?;
    let (step_t, moments) = optimizer.state();
    let mut tensors = BTreeMap::new();
    for (name, (m, v)) in names.iter().zip(moments) {
        tensors.insert(format!("m.{name}"), m);
        tensors.insert(format!("v.{name}"), v);
    }
    tensors.insert(
        "step_t".into(),
        Tensor::new(&[step_t as u32], &candle_core::Device::Cpu)?,
    );
    let dir = ObjectRoot::open(&out.url_of(&state.dir))?;
    dir.put(OPTIMIZER_FILE, safetensors_bytes(&tensors)?)
        .await?;
    let json = serde_json::to_vec_pretty(state).unwrap_or_default();
    dir.put(STATE_FILE, json.clone()).await?;
    // The pointer last: a crash before it leaves the previous checkpoint in charge.
    out.put(LATEST_FILE, json).await?;
    Ok(())
}

async fn restore_optimizer(
    out: &ObjectRoot,
    state: &CheckpointState,
    optimizer: &mut AdamW,
    names: &[String],
    device: &candle_core::Device,
) -> Result<(), TrainError> {
    let dir = ObjectRoot::open(&out.url_of(&state.dir))?;
    let bytes = dir.get(OPTIMIZER_FILE, 16 << 30).await?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)?;
    let get = |key: String| {
        tensors
            .get(&key)
            .ok_or_else(|| TrainError::CheckpointIncomplete {
                url: dir.url_of(OPTIMIZER_FILE),
                key,
            })
    };
    let mut moments = Vec::with_capacity(names.len());
    for name in names {
        let m = get(format!("m.{name}"))?;
        let v = get(format!("v.{name}"))?;
        moments.push((m.clone(), v.clone()));
    }
    let step_t = get("step_t".into())?
        .to_vec1::<u32>()?
        .first()
        .copied()
        .unwrap_or(0) as usize;
    optimizer.set_state(step_t, &moments)?;
    Ok(())
}

async fn val_accuracy(
    model: &RewardModel,
    rows: &[TripletRow],
    loader: &mut ImageLoader,
    batch_size: usize,
) -> Result<Option<f64>, TrainError> {
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(judge(model, rows, loader, batch_size).await?.accuracy())
}

pub async fn train(
    options: &TrainOptions,
    catalog: Option<&Catalog>,
    run_id: Option<&str>,
) -> Result<TrainSummary, TrainError> {
    let started = Instant::now();
    let device = device::pick(options.cpu_only)?;
    let out = ObjectRoot::open(&options.out)?;
    let base_url = base_model(options, &out).await?;
    let train_set = read_triplets(&options.triplets, Some("train")).await?;
    if train_set.rows.is_empty() {
        return Err(TrainError::NoTriplets {
            split: "train".into(),
            location: options.triplets.clone(),
        });
    }
    let val_set = read_triplets(&options.triplets, Some("val")).await?;
    let val_rows = &val_set.rows[..val_set.rows.len().min(options.val_limit)];
    let batch_size = options.batch_size.max(1);

    let checkpoint = if options.resume {
        read_checkpoint(&out).await?
    } else {
        None
    };
    if let Some(state) = &checkpoint
        && (state.seed, state.batch_size, state.trainable)
            != (options.seed, batch_size, options.trainable)
    {
        return Err(TrainError::CheckpointMismatch {
            out: options.out.clone(),
            seed: state.seed,
            batch_size: state.batch_size,
            trainable: state.trainable,
        });
    }

    let baseline = RewardModel::load(&base_url, options.trainable, false, &device).await?;
    let mut loader = ImageLoader::new(&options.images, baseline.image_size(), options.image_cache)?;
    let val_baseline_accuracy = val_accuracy(&baseline, val_rows, &mut loader, 64).await?;
    drop(baseline);

    let start_url = match &checkpoint {
        Some(state) => out.url_of(&state.dir),
        None => base_url.clone(),
    };
    let model = RewardModel::load(&start_url, options.trainable, true, &device).await?;
    let vars = model.trainable_vars();
    if vars.is_empty() {
        return Err(TrainError::NoTrainableWeights {
            trainable: options.trainable,
        });
    }
    let names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
    let trainable_parameters = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let total_parameters = model.named_weights().values().map(Tensor::elem_count).sum();
    let mut optimizer = AdamW::new(
        vars.into_iter().map(|(_, v)| v).collect(),
        ParamsAdamW {
            lr: options.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: options.weight_decay,
        },
    )?;
    let start_step = match &checkpoint {
        Some(state) => {
            restore_optimizer(&out, state, &mut optimizer, &names, &device).await?;
            info!(step = state.step, dir = %state.dir, "resuming from checkpoint");
            state.step
        }
        None => 0,
    };

    let rows = train_set.rows.len();
    let per_epoch = rows.div_ceil(batch_size);
    let total_steps = options.steps.unwrap_or(options.epochs * per_epoch);
    let bar = crate::progress::bar(
        options.progress,
        total_steps.saturating_sub(start_step) as u64,
        "training",
    );
    let mut order_epoch = usize::MAX;
    let mut order = Vec::new();
    let mut losses: Vec<f64> = Vec::new();
    let mut skipped = 0usize;
    let mut samples = 0usize;
    let mut train_seconds = 0f64;
    let mut val_accuracy_now = None;
    for step in start_step..total_steps {
        let step_started = Instant::now();
        let epoch = step / per_epoch;
        if epoch != order_epoch {
            order = epoch_order(options.seed, epoch, rows);
            order_epoch = epoch;
        }
        let from = (step % per_epoch) * batch_size;
        let batch: Vec<&TripletRow> = order[from..(from + batch_size).min(rows)]
            .iter()
            .map(|&i| &train_set.rows[i])
            .collect();
        let pairs = loader.load_pairs(&batch).await;
        skipped += pairs.skipped;
        if !pairs.rows.is_empty() {
            let kept = pairs.rows.len();
            let prompts: Vec<&str> = pairs.rows.iter().map(|r| r.prompt.as_str()).collect();
            let pixels: Vec<&[f32]> = pairs
                .positives
                .iter()
                .chain(&pairs.negatives)
                .map(|p| p.as_slice())
                .collect();
            let images = model.embed_images(&model.pixel_batch(&pixels)?)?;
            let text = model.embed_prompts(&prompts)?;
            let loss = triplet_loss(
                &text,
                &images.narrow(0, 0, kept)?,
                &images.narrow(0, kept, kept)?,
                options.margin,
            )?;
            optimizer.backward_step(&loss)?;
            losses.push(loss.to_scalar::<f32>()? as f64);
            samples += kept;
        }
        train_seconds += step_started.elapsed().as_secs_f64();
        bar.inc(1);
        let done = step + 1;
        if options.eval_every > 0 && done % options.eval_every == 0 && done < total_steps {
            val_accuracy_now = val_accuracy(&model, val_rows, &mut loader, 64).await?;
            info!(step = done, loss = ?losses.last(), val_accuracy = ?val_accuracy_now, "validation");
        }
        if (options.checkpoint_every > 0 && done % options.checkpoint_every == 0)
            || done == total_steps
        {
            let state = CheckpointState {
                step: done,
                seed: options.seed,
                batch_size,
                trainable: options.trainable,
                dir: format!("checkpoints/step-{done:08}"),
            };
            write_checkpoint(&out, &model, &optimizer, &names, &state).await?;
        }
    }
    bar.finish_and_clear();
    let val_accuracy_final = val_accuracy(&model, val_rows, &mut loader, 64).await?;

    let files = model.to_files()?;
    let weights = files
        .iter()
        .find(|(name, _)| *name == WEIGHTS_FILE)
        .map(|(_, bytes)| blake3::hash(bytes).to_hex()[..16].to_owned())
        .unwrap_or_default();
    let model_id = format!("reward-{weights}");
    let model_url = out.url_of(MODEL_DIR);
    write_model_files(&model_url, files).await?;
    let tail = &losses[losses.len().saturating_sub(20)..];
    let summary = TrainSummary {
        model_id: model_id.clone(),
        model_uri: model_url.clone(),
        base_model: base_url.clone(),
        device: device::describe(&device),
        steps: total_steps,
        resumed_from_step: checkpoint.as_ref().map(|s| s.step),
        train_triplets: rows,
        val_triplets: val_rows.len(),
        skipped_triplets: skipped,
        failed_images: loader.failures(),
        trainable_parameters,
        total_parameters,
        samples_per_second: if train_seconds > 0.0 {
            samples as f64 / train_seconds
        } else {
            0.0
        },
        first_loss: losses.first().copied(),
        final_loss: (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64),
        val_accuracy: val_accuracy_final.or(val_accuracy_now),
        val_baseline_accuracy,
        seconds: started.elapsed().as_secs_f64(),
    };
    let card = serde_json::json!({
        "model_id": model_id,
        "format": "huggingface-clip",
        "base_model": base_url,
        "pipeline_version": format!("social-reward/{}", env!("CARGO_PKG_VERSION")),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "loss": "triplet: mean(relu(|a-p|^2 - |a-n|^2 + margin)) on L2-normalised embeddings",
        "training": options.recorded(),
        "data": {
            "triplets": options.triplets,
            "images": options.images,
            "train_files": train_set.files,
            "val_files": val_set.files,
        },
        "metrics": summary,
    });
    ObjectRoot::open(&model_url)?
        .put(
            MODEL_CARD_FILE,
            serde_json::to_vec_pretty(&card).unwrap_or_default(),
        )
        .await?;
    if let Some(catalog) = catalog {
        let metrics = serde_json::to_value(&summary).unwrap_or_default();
        let config = options.recorded();
        catalog
            .record_model(&model_id, &model_url, run_id, &config, &metrics)
            .await?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_has_its_own_stable_order() {
        let a = epoch_order(7, 0, 100);
        assert_eq!(a, epoch_order(7, 0, 100));
        assert_ne!(a, epoch_order(7, 1, 100));
        assert_ne!(a, epoch_order(8, 0, 100));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
