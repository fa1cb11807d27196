//! The reward model: gradients reach every trained weight (the candle-nn backward passes this
//! project adds), weights survive a safetensors round trip, a resumed run equals an
//! uninterrupted one, simulate → curate → train → eval beats the untrained baseline, train's OUT
//! is accepted wherever a model is read, and the text tower pools where transformers does.

mod common;

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use candle_transformers::models::clip::{ClipModel, div_l2_norm};
use common::cli::Cli;
use social_reward::curate::{CurateConfig, CurateOptions, ImageDedup, curate};
use social_reward::events::{Limits, Timestamp};
use social_reward::sources::simulator::{Scenario, SimulateOptions, simulate};
use social_reward::store::Catalog;
use social_reward::train::loss::{MARGIN, triplet_loss};
use social_reward::train::model::{
    CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, files_from_memory, random_model_files,
    resolve_model_dir, tiny_model_files, write_model_files,
};
use social_reward::train::preprocess::preprocess;
use social_reward::train::tokenize::{PromptTokenizer, word_level_tokenizer_json};
use social_reward::train::{
    ClipSpec, EvalOptions, ModelChoice, RewardModel, TrainError, TrainOptions, Trainable, evaluate,
    train,
};

/// The binary with `args`, INFO logs on stderr.
fn cli(args: &[&str]) -> Cli {
    Cli::new()
        .args(["--quiet", "-v"])
        .args(args)
        .env_remove("RUST_LOG")
}

fn file_of(files: &[(&'static str, Vec<u8>)], name: &str) -> Vec<u8> {
    files
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| bytes.clone())
        .unwrap()
}

/// Cosine similarity, in f64, of two vectors of any length.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn tiny(trainable: Trainable, train: bool) -> RewardModel {
    let files = files_from_memory(&tiny_model_files(3).unwrap()).unwrap();
    RewardModel::build(&files, trainable, train, &Device::Cpu).unwrap()
}

fn random_pixels(model: &RewardModel, count: usize, seed: u64) -> Tensor {
    let size = model.image_size() as usize;
    let values: Vec<f32> = (0..count * 3 * size * size)
        .map(|i| (((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_vec(values, (count, 3, size, size), &Device::Cpu).unwrap()
}

fn loss_of(model: &RewardModel) -> Tensor {
    let prompts = [
        "a red fox at sunset, watercolor",
        "a tiny robot in space",
        "a cat",
    ];
    let images = model.embed_images(&random_pixels(model, 6, 1)).unwrap();
    let text = model.embed_prompts(&prompts).unwrap();
    triplet_loss(
        &text,
        &images.narrow(0, 0, 3).unwrap(),
        &images.narrow(0, 3, 3).unwrap(),
        MARGIN,
    )
    .unwrap()
}

#[test]
fn every_trainable_weight_receives_a_gradient() {
    for trainable in [Trainable::All, Trainable::Paper, Trainable::ProjectionOnly] {
        let model = tiny(trainable, true);
        let vars = model.trainable_vars();
        assert!(!vars.is_empty());
        let grads = loss_of(&model).backward().unwrap();
        let mut without = Vec::new();
        for (name, var) in &vars {
            let norm = grads
                .get(var.as_tensor())
                .map(|g| {
                    g.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                })
                .unwrap_or(0.0);
            if norm <= 0.0 || !norm.is_finite() {
                without.push(name.clone());
            }
        }
        assert!(
            without.is_empty(),
            "{trainable:?}: {} of {} weights get no gradient: {without:?}",
            without.len(),
            vars.len()
        );
        if trainable == Trainable::All {
            // Embeddings, the early blocks and the layer norms all sit behind fused layer
            // norms: they are where upstream candle-nn 0.11.1 silently loses gradients.
            for needle in [
                "vision_model.embeddings.class_embedding",
                "vision_model.embeddings.patch_embedding.weight",
                "vision_model.pre_layrnorm.weight",
                "vision_model.encoder.layers.0.layer_norm1.weight",
                "text_model.embeddings.token_embedding.weight",
                "text_model.encoder.layers.0.self_attn.q_proj.weight",
            ] {
                assert!(
                    vars.iter().any(|(n, _)| n == needle),
                    "{needle} not trained"
                );
            }
        }
    }
}

#[test]
fn frozen_weights_are_constants_and_the_paper_trains_a_small_part() {
    let paper = tiny(Trainable::Paper, true);
    let names: Vec<String> = paper.trainable_vars().into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| !n.contains("embeddings")), "{names:?}");
    assert!(names.iter().any(|n| n == "text_projection.weight"));
    assert!(!names.iter().any(|n| n == "visual_projection.weight"));
    // The weights file holds every weight, frozen or not, plus class_embedding and logit_scale.
    let all = paper.named_weights();
    assert!(all.contains_key("logit_scale"));
    assert!(all.contains_key("vision_model.embeddings.class_embedding"));
    assert!(
        all.len() > names.len() + 4,
        "{} weights, {} trained",
        all.len(),
        names.len()
    );
    assert!(tiny(Trainable::Paper, false).trainable_vars().is_empty());
}

#[test]
fn fused_layer_norm_and_softmax_backward_match_the_composed_ops() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(
        &Tensor::arange(0f32, 24., &dev)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap()
            .sin()
            .unwrap(),
    )
    .unwrap();
    let alpha = Var::from_tensor(&Tensor::new(&[1.5f32, -0.5, 2.0, 0.7], &dev).unwrap()).unwrap();
    let beta = Var::from_tensor(&Tensor::new(&[0.1f32, 0.2, -0.3, 0.0], &dev).unwrap()).unwrap();
    let weights = Tensor::arange(0f32, 24., &dev)
        .unwrap()
        .reshape((2, 3, 4))
        .unwrap()
        .cos()
        .unwrap();
    let grads_of = |fused: bool| {
        let y = if fused {
            candle_nn::ops::layer_norm(&x, &alpha, &beta, 1e-5).unwrap()
        } else {
            candle_nn::ops::layer_norm_slow(&x, &alpha, &beta, 1e-5).unwrap()
        };
        let s = if fused {
            candle_nn::ops::softmax_last_dim(&y).unwrap()
        } else {
            candle_nn::ops::softmax(&y, candle_core::D::Minus1).unwrap()
        };
        let loss = (s * &weights).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        [x.as_tensor(), alpha.as_tensor(), beta.as_tensor()].map(|t| {
            grads
                .get(t)
                .expect("gradient")
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
    };
    let (fused, composed) = (grads_of(true), grads_of(false));
    for (f, c) in fused.iter().zip(&composed) {
        for (a, b) in f.iter().zip(c) {
            assert!((a - b).abs() < 1e-4, "fused {a} vs composed {b}");
        }
    }
}

#[tokio::test]
async fn safetensors_round_trip_gives_identical_scores() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("m").display().to_string();
    write_model_files(&url, tiny_model_files(9).unwrap())
        .await
        .unwrap();
    let model = RewardModel::load(&url, Trainable::All, true, &Device::Cpu)
        .await
        .unwrap();
    // Move the weights away from the file's values, then save and reload.
    for (_, var) in model.trainable_vars() {
        let shifted = (var.as_tensor() * 1.01).unwrap();
        var.set(&shifted).unwrap();
    }
    let saved = dir.path().join("saved").display().to_string();
    write_model_files(&saved, model.to_files().unwrap())
        .await
        .unwrap();
    let reloaded = RewardModel::load(&saved, Trainable::Paper, false, &Device::Cpu)
        .await
        .unwrap();
    let prompts = ["a cat", "a dog", "an owl, oil painting"];
    let pixels = random_pixels(&model, 3, 4);
    let before = model.scores(&prompts, &pixels).unwrap();
    let after = reloaded.scores(&prompts, &pixels).unwrap();
    assert_eq!(before, after);
    let original = RewardModel::load(&url, Trainable::Paper, false, &Device::Cpu)
        .await
        .unwrap();
    assert_ne!(original.scores(&prompts, &pixels).unwrap(), before);
    // The same seed writes the same tiny model; a damaged directory is a clear error.
    assert_eq!(tiny_model_files(9).unwrap(), tiny_model_files(9).unwrap());
    std::fs::write(dir.path().join("saved/model.safetensors"), b"junk").unwrap();
    assert!(
        RewardModel::load(&saved, Trainable::Paper, false, &Device::Cpu)
            .await
            .is_err()
    );
    let _ = DType::F32;
}

fn simulate_and_curate(dir: &Path) -> (String, String) {
    let sim = dir.join("sim");
    simulate(&SimulateOptions {
        out: sim.clone(),
        scenario: Scenario {
            users: 1800,
            days: 2.0,
            seed: 7,
            ..Scenario::default()
        },
        images: true,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka: None,
    })
    .unwrap();
    (
        sim.join("images").display().to_string(),
        dir.join("curated").display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_curate_train_eval_beats_the_untrained_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (images, curated) = simulate_and_curate(dir.path());
    let sim = dir.path().join("sim");
    let summary = curate(
        &CurateOptions {
            events: vec![sim.join("events.jsonl")],
            images: Some(images.clone()),
            out: curated.clone(),
            config: CurateConfig::default(),
            limits: Limits::default(),
            now: Timestamp::now(),
            dedup_horizon_hours: 6.0,
            image_dedup: ImageDedup::Pixels,
            truth: None,
            run_id: "train-test".into(),
            progress: false,
        },
        None,
    )
    .await
    .unwrap();
    assert!(summary.triplets > 500, "{summary:?}");

    let db = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let catalog = Catalog::open(&db).await.unwrap();
    let out = dir.path().join("model").display().to_string();
    let options = TrainOptions {
        triplets: curated.clone(),
        images: images.clone(),
        out: out.clone(),
        model: ModelChoice::Tiny,
        steps: Some(120),
        learning_rate: 1e-3,
        trainable: Trainable::All,
        eval_every: 0,
        checkpoint_every: 60,
        val_limit: 100,
        seed: 1,
        ..TrainOptions::default()
    };
    let trained = train(&options, Some(&catalog), Some("run-1"))
        .await
        .unwrap();
    assert_eq!(trained.steps, 120);
    assert_eq!(trained.failed_images, 0);
    assert!(
        trained.final_loss.unwrap() < trained.first_loss.unwrap() / 2.0,
        "{trained:?}"
    );
    assert_eq!(
        catalog.models().await.unwrap(),
        vec![(trained.model_id.clone(), trained.model_uri.clone())]
    );
    catalog.close().await;

    let eval = evaluate(&EvalOptions {
        model: trained.model_uri.clone(),
        triplets: curated.clone(),
        images: images.clone(),
        split: "test".into(),
        ..EvalOptions::default()
    })
    .await
    .unwrap();
    let (accuracy, baseline) = (eval.accuracy.unwrap(), eval.baseline_accuracy.unwrap());
    assert!(eval.pairs >= 50, "{eval:?}");
    assert_eq!(
        eval.baseline_model.as_deref(),
        Some(trained.base_model.as_str())
    );
    assert!(
        accuracy >= baseline + 0.15,
        "trained {accuracy:.3} vs untrained {baseline:.3}: {eval:?}"
    );
    let [lo, hi] = eval.ci95.unwrap();
    assert!(lo <= accuracy && accuracy <= hi);

    // `eval` given train's OUT reads OUT/model: the same summary, naming the directory read.
    let eval_cli = |model: &str| {
        let args = [
            "eval",
            "--model",
            model,
            "--triplets",
            curated.as_str(),
            "--images",
            images.as_str(),
        ];
        cli(&args).run_json()
    };
    let via_out = eval_cli(&out);
    assert_eq!(via_out, eval_cli(&trained.model_uri));
    assert_eq!(via_out["model"], trained.model_uri.as_str());
    assert_eq!(via_out["accuracy"].as_f64(), Some(accuracy));

    // A run stopped at step 60 and started again resumes from its checkpoint (weights, Adam
    // moments, data order) and ends with the same weights as the uninterrupted run.
    let interrupted = TrainOptions {
        out: dir.path().join("interrupted").display().to_string(),
        ..options.clone()
    };
    let first_half = train(
        &TrainOptions {
            steps: Some(60),
            ..interrupted.clone()
        },
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(first_half.resumed_from_step, None);
    let resumed = train(&interrupted, None, None).await.unwrap();
    assert_eq!(resumed.resumed_from_step, Some(60));
    assert_eq!(
        resumed.model_id, trained.model_id,
        "same weights, byte for byte"
    );
    // A checkpoint made with another seed is refused rather than silently mixed.
    let other_seed = TrainOptions {
        seed: 2,
        ..interrupted.clone()
    };
    assert!(train(&other_seed, None, None).await.is_err());
}

#[tokio::test]
async fn score_prints_one_line_per_image_and_null_for_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model").display().to_string();
    write_model_files(&model, tiny_model_files(5).unwrap())
        .await
        .unwrap();
    let picture = dir.path().join("fox.png");
    image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([x as u8 * 3, y as u8 * 4, 90]))
        .save(&picture)
        .unwrap();
    std::fs::write(dir.path().join("broken.png"), b"\x89PNG not really").unwrap();
    let score = |images: &[&Path]| {
        Cli::new()
            .args([
                "--quiet",
                "score",
                "--model",
                &model,
                "--prompt",
                "a red fox",
            ])
            .args(images)
            .run_ok()
    };
    let broken = dir.path().join("broken.png");
    let missing = dir.path().join("missing.png");
    let lines = score(&[&picture, &broken, &missing]).json_lines();
    assert_eq!(lines.len(), 3);
    let score_of_fox = lines[0]["score"].as_f64().unwrap();
    // The reward is the cosine of the prompt's and the picture's embeddings: worked out here
    // from the embeddings, whatever their scale, with the picture preprocessed as `score` does.
    let reward_model = RewardModel::load(&model, Trainable::Paper, false, &Device::Cpu)
        .await
        .unwrap();
    let pixels = preprocess(&std::fs::read(&picture).unwrap(), reward_model.image_size()).unwrap();
    let image = reward_model
        .embed_images(&reward_model.pixel_batch(&[&pixels]).unwrap())
        .unwrap();
    let text = reward_model.embed_prompts(&["a red fox"]).unwrap();
    let expected = cosine(
        &text.to_vec2::<f32>().unwrap()[0],
        &image.to_vec2::<f32>().unwrap()[0],
    );
    assert!(
        (score_of_fox - expected).abs() < 1e-5,
        "score {score_of_fox}, cosine of the embeddings {expected}"
    );
    assert!(lines[1]["score"].is_null() && lines[1]["error"].is_string());
    assert!(lines[2]["score"].is_null());
    // Deterministic: the same model and picture score the same.
    let again = score(&[&picture]).json();
    assert_eq!(again["score"], lines[0]["score"]);
}

#[tokio::test]
async fn score_accepts_train_out_and_a_wrong_directory_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    write_model_files(&format!("{out}/model"), tiny_model_files(5).unwrap())
        .await
        .unwrap();
    let picture = dir.path().join("fox.png");
    image::RgbImage::from_fn(70, 50, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 40]))
        .save(&picture)
        .unwrap();
    let picture = picture.display().to_string();
    let score = |model: &str| {
        cli(&[
            "score",
            "--model",
            model,
            "--prompt",
            "a fox",
            picture.as_str(),
        ])
        .run_ok()
        .stdout
    };
    let direct = score(&format!("{out}/model"));
    assert!(direct.contains("\"score\":"), "{direct}");
    assert_eq!(score(&out), direct);
    assert_eq!(score(&format!("file://{out}")), direct);
    let logged = cli(&[
        "score",
        "--model",
        out.as_str(),
        "--prompt",
        "a fox",
        picture.as_str(),
    ])
    .run_ok();
    assert!(
        logged.stderr.contains("is a `train --out` directory"),
        "{logged}"
    );

    assert_eq!(
        resolve_model_dir(&format!("file://{out}")).await.unwrap(),
        format!("file://{out}/model")
    );
    assert_eq!(
        resolve_model_dir(&format!("{out}/model")).await.unwrap(),
        format!("{out}/model")
    );
    // A folder that is neither, through the library and through both commands.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.display().to_string();
    assert!(matches!(
        resolve_model_dir(&empty).await,
        Err(TrainError::NotAModel { .. })
    ));
    let empty = empty.as_str();
    for args in [
        vec![
            "score",
            "--model",
            empty,
            "--prompt",
            "a fox",
            picture.as_str(),
        ],
        vec![
            "eval",
            "--model",
            empty,
            "--triplets",
            empty,
            "--images",
            empty,
        ],
    ] {
        let failed = cli(&args).run_fail();
        assert!(
            failed.stderr.contains(
                "is neither a model directory (no config.json) nor a `train --out` \
                 directory (no model/config.json); pass train's OUT or OUT/model"
            ),
            "{failed}"
        );
    }
    // A mistyped path is reported, not created.
    let missing = dir.path().join("typo").display().to_string();
    assert!(resolve_model_dir(&missing).await.is_err());
    assert!(!dir.path().join("typo").exists());
}

#[test]
fn text_pooling_equals_candles_argmax_when_the_end_token_is_the_largest_id() {
    let files = tiny_model_files(3).unwrap();
    let spec = ClipSpec::parse(&file_of(&files, CONFIG_FILE)).unwrap();
    let weights =
        candle_core::safetensors::load_buffer(&file_of(&files, WEIGHTS_FILE), &Device::Cpu)
            .unwrap();
    // candle's own CLIP (argmax pooling) over variables holding the same weights.
    let varmap = VarMap::new();
    let reference = ClipModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &spec.to_candle(),
    )
    .unwrap();
    let reference_vars = varmap.data().lock().unwrap().clone();
    for (name, var) in &reference_vars {
        var.set(&weights[name]).unwrap();
    }
    let model = RewardModel::build(
        &files_from_memory(&files).unwrap(),
        Trainable::All,
        true,
        &Device::Cpu,
    )
    .unwrap();
    let tokenizer =
        PromptTokenizer::from_json(&file_of(&files, TOKENIZER_FILE), spec.max_tokens()).unwrap();
    let prompts = [
        "a red fox at sunset, watercolor",
        "a cat",
        "a tiny robot in space",
    ];
    let ids = tokenizer.batch(&prompts, &Device::Cpu).unwrap();
    let theirs = div_l2_norm(&reference.get_text_features(&ids).unwrap()).unwrap();
    let ours = model.embed_prompts(&prompts).unwrap();
    assert_eq!(
        ours.to_vec2::<f32>().unwrap(),
        theirs.to_vec2::<f32>().unwrap()
    );
    // The same gradients, bit for bit: training is unchanged where the pooling agrees.
    let mix = Tensor::arange(0f32, (3 * spec.projection_dim) as f32, &Device::Cpu)
        .unwrap()
        .reshape((3, spec.projection_dim))
        .unwrap()
        .sin()
        .unwrap();
    let their_grads = (theirs * &mix)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let our_grads = (ours * &mix)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut compared = 0;
    for (name, var) in model.trainable_vars() {
        if !name.starts_with("text_") {
            continue;
        }
        let bits = |grads: &candle_core::backprop::GradStore, var: &Var| {
            grads.get(var.as_tensor()).map(|g| {
                g.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .into_iter()
                    .map(f32::to_bits)
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            bits(&our_grads, &var),
            bits(&their_grads, &reference_vars[&name]),
            "{name}"
        );
        compared += 1;
    }
    assert!(compared > 20, "{compared} text weights compared");
}

#[test]
fn prompts_pool_at_their_end_token_when_it_is_not_the_largest_id() {
    // pad 0, unk 1, cat 2, dog 3, start 4, end 5; then dog becomes 9, above the end token.
    let tokenizer = String::from_utf8(word_level_tokenizer_json(["cat", "dog"]).unwrap())
        .unwrap()
        .replace("\"dog\": 3", "\"dog\": 9")
        .into_bytes();
    let files = random_model_files(&ClipSpec::tiny(16), tokenizer, 2).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&file_of(&files, CONFIG_FILE)).unwrap();
    let text_config = &config["text_config"];
    assert_eq!(
        (
            &text_config["bos_token_id"],
            &text_config["eos_token_id"],
            &text_config["pad_token_id"]
        ),
        (&4.into(), &5.into(), &0.into())
    );
    let model = RewardModel::build(
        &files_from_memory(&files).unwrap(),
        Trainable::Paper,
        false,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        model.spec().text_config.pooling(),
        social_reward::train::spec::Pooling::FirstEos(5)
    );
    // "cat dog" is [4, 2, 9, 5]: the end token sits at 3, the largest id at 2.
    let vb = VarBuilder::from_buffered_safetensors(
        file_of(&files, WEIGHTS_FILE),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let config = model.spec().to_candle();
    let text = ClipTextTransformer::new(vb.pp("text_model"), &config.text_config).unwrap();
    let projection = candle_nn::linear_no_bias(
        config.text_config.embed_dim,
        config.text_config.projection_dim,
        vb.pp("text_projection"),
    )
    .unwrap();
    let ids = Tensor::new(&[[4u32, 2, 9, 5]], &Device::Cpu).unwrap();
    let hidden = text.forward_with_mask(&ids, usize::MAX).unwrap();
    let at = |position: usize| {
        let pooled = hidden.i((.., position)).unwrap();
        div_l2_norm(&projection.forward(&pooled).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    };
    let ours = model
        .embed_prompts(&["cat dog"])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(ours, at(3));
    assert_ne!(ours, at(2), "argmax would pool at dog");
}
