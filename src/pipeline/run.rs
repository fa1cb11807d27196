//! Runs a pipeline's stages in order, recording each in the catalog's `runs` table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::info;

use super::StageError;
use super::config::{IngestSource, PipelineConfig};
use crate::events::Timestamp;
use crate::sources::simulator::{self, Scenario, SimulateOptions};
use crate::store::{Catalog, RunStatus};

/// Stages this build can run, in their natural order.
pub const STAGES: &[&str] = &["simulate", "ingest", "curate", "train", "eval", "report"];

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub status: &'static str,
    pub seconds: f64,
    pub metrics: StageOutcome,
}

/// What a stage reports: its own command's summary, so `run --json` and the catalog's
/// `runs.metrics` hold exactly what `social-reward STAGE` prints, and the human summary can
/// read typed fields.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StageOutcome {
    Simulate(simulator::SimulationSummary),
    Ingest(crate::pipeline::stream::StreamReport),
    Curate(Box<crate::curate::CurateSummary>),
    Train(crate::train::TrainSummary),
    Eval(crate::train::EvalSummary),
    Report(crate::analysis::ReportSummary),
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineSummary {
    pub pipeline: String,
    pub run_id: String,
    pub catalog: &'static str,
    pub stages: Vec<StageSummary>,
    pub seconds: f64,
}

/// How `run` drives the stages, besides their configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub progress: bool,
    /// A Kafka ingest stage ends once every partition it holds was idle this long at its high
    /// watermark; without it the stage is the consumer service, which runs until SIGTERM.
    pub until_idle: Option<Duration>,
}

pub async fn run_pipeline(
    config: &PipelineConfig,
    run: &RunOptions,
) -> Result<PipelineSummary, StageError> {
    for stage in &config.stages {
        if !STAGES.contains(&stage.as_str()) {
            return Err(StageError::UnknownStage {
                name: stage.clone(),
                available: STAGES.join(", "),
            });
        }
    }
    let started = Instant::now();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StageError::io(&config.data_dir, e))?;
    let catalog = Catalog::open(&config.catalog.url).await?;
    let run_id = crate::store::new_run_id(&config.name);
    let mut stages = Vec::new();
    for (index, stage) in config.stages.iter().enumerate() {
        info!(stage = %stage, step = index + 1, of = config.stages.len(), "stage starting");
        let params = config.recorded();
        catalog
            .start_run(&run_id, stage, &config.name, &params)
            .await?;
        let stage_started = Instant::now();
        let outcome = run_stage(stage, config, &catalog, &run_id, run).await;
        let seconds = stage_started.elapsed().as_secs_f64();
        match outcome {
            Ok(metrics) => {
                let recorded =
                    serde_json::to_value(&metrics).map_err(|source| StageError::Record {
                        stage: stage.clone(),
                        source,
                    })?;
                catalog
                    .finish_run(&run_id, stage, RunStatus::Succeeded, &recorded, None)
                    .await?;
                info!(stage = %stage, seconds, "stage succeeded");
                stages.push(StageSummary {
                    stage: stage.clone(),
                    status: "succeeded",
                    seconds,
                    metrics,
                });
            }
            Err(error) => {
                let message = error.to_string();
                catalog
                    .finish_run(
                        &run_id,
                        stage,
                        RunStatus::Failed,
                        &serde_json::Value::Null,
                        Some(&message),
                    )
                    .await?;
                catalog.close().await;
                return Err(error);
            }
        }
    }
    catalog.close().await;
    Ok(PipelineSummary {
        pipeline: config.name.clone(),
        run_id,
        catalog: catalog.backend(),
        stages,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn run_stage(
    stage: &str,
    config: &PipelineConfig,
    catalog: &Catalog,
    run_id: &str,
    run: &RunOptions,
) -> Result<StageOutcome, StageError> {
    let progress = run.progress;
    Ok(match stage {
        "simulate" => {
            let options = simulate_options(config, progress)?;
            let summary = tokio::task::spawn_blocking(move || simulator::simulate(&options))
                .await
                .map_err(|source| StageError::Task {
                    stage: stage.into(),
                    source,
                })??;
            StageOutcome::Simulate(summary)
        }
        "ingest" => {
            let options = stream_options(config, run_id, run)?;
            let report = match config.ingest.source {
                // The consumer group's service: SIGTERM (or Ctrl-C) commits what was read and
                // ends the stage, which then succeeds like any other.
                IngestSource::Kafka => {
                    let shutdown = crate::pipeline::stream::shutdown_signal();
                    crate::pipeline::stream::run_stream(&options, catalog, shutdown).await?
                }
                IngestSource::Files => {
                    let files_end = std::future::pending();
                    crate::pipeline::stream::run_stream(&options, catalog, files_end).await?
                }
            };
            StageOutcome::Ingest(report)
        }
        "curate" => {
            let options = curate_options(config, run_id, progress)?;
            // After a streaming ingest the triplets are written and recorded already: batch
            // curation then checks that it writes exactly those files, and judges them.
            let streamed = config.stages.iter().any(|s| s == "ingest");
            let summary = crate::curate::curate(&options, (!streamed).then_some(catalog)).await?;
            if streamed {
                check_streamed_files(catalog, &summary.files).await?;
            }
            StageOutcome::Curate(Box::new(summary))
        }
        "train" => {
            let options = train_options(config, catalog, progress).await?;
            let summary = crate::train::train(&options, Some(catalog), Some(run_id)).await?;
            StageOutcome::Train(summary)
        }
        "eval" => {
            let train = train_options(config, catalog, false).await?;
            let summary = crate::train::evaluate(&crate::train::EvalOptions {
                model: format!("{}/model", train.out),
                triplets: train.triplets,
                images: train.images,
                baseline: None,
                seed: config.train.seed,
                cpu_only: config.train.cpu_only,
                ..config.eval.clone()
            })
            .await?;
            StageOutcome::Eval(summary)
        }
        "report" => {
            let options = report_options(config, progress)?;
            StageOutcome::Report(crate::analysis::report(&options, catalog).await?)
        }
        other => {
            return Err(StageError::UnknownStage {
                name: other.into(),
                available: STAGES.join(", "),
            });
        }
    })
}

/// Every file batch curation wrote is one the streaming ingest recorded, bytes included.
async fn check_streamed_files(
    catalog: &Catalog,
    files: &[crate::store::ManifestEntry],
) -> Result<(), StageError> {
    let recorded: std::collections::HashMap<String, String> = catalog
        .manifest()
        .await?
        .into_iter()
        .map(|entry| (entry.uri, entry.blake3))
        .collect();
    let differing: Vec<String> = files
        .iter()
        .filter(|f| recorded.get(&f.uri) != Some(&f.blake3))
        .map(|f| f.uri.clone())
        .collect();
    if differing.is_empty() {
        info!(files = files.len(), "batch curation agrees with the stream");
        return Ok(());
    }
    Err(StageError::StreamDisagrees {
        files: files.len(),
        differing,
    })
}

/// The scenario file, then the pipeline's overrides of it.
pub fn simulate_options(
    config: &PipelineConfig,
    progress: bool,
) -> Result<SimulateOptions, StageError> {
    let sim = &config.simulate;
    let scenario =
        Scenario::load_with_overrides(sim.scenario.as_deref(), sim.users, sim.days, sim.seed)?;
    Ok(SimulateOptions {
        out: config.data_path(&sim.out),
        scenario,
        images: sim.images,
        image_size: sim.image_size,
        gzip: sim.gzip,
        progress,
        kafka: None,
    })
}

/// Curation of the simulate stage's output (or `ingest.events`), judged against the
/// simulator's truth when it is there.
pub fn curate_options(
    config: &PipelineConfig,
    run_id: &str,
    progress: bool,
) -> Result<crate::curate::CurateOptions, StageError> {
    let sim_out = config.data_path(&config.simulate.out);
    let (images, out) = match &config.object_store {
        Some(store) => (store.images.clone(), store.out.clone()),
        None => (
            sim_out.join("images").display().to_string(),
            config
                .data_path(std::path::Path::new("curated"))
                .display()
                .to_string(),
        ),
    };
    let truth = sim_out.join("truth.parquet");
    let image_dedup = if config.simulate.images || config.object_store.is_some() {
        crate::curate::ImageDedup::Pixels
    } else if truth.exists() {
        crate::curate::ImageDedup::Supplied(truth.clone())
    } else {
        crate::curate::ImageDedup::Off
    };
    Ok(crate::curate::CurateOptions {
        events: ingest_files(config),
        images: Some(images),
        out,
        config: config.curate.clone(),
        limits: config.validation.clone(),
        now: Timestamp::now(),
        dedup_horizon_hours: config.ingest.dedup_horizon_hours,
        image_dedup,
        truth: truth.exists().then_some(truth),
        run_id: run_id.to_owned(),
        progress,
    })
}

/// The report over what curation wrote, with thumbnails from the pictures curation read.
pub fn report_options(
    config: &PipelineConfig,
    progress: bool,
) -> Result<crate::analysis::ReportOptions, StageError> {
    let curate = curate_options(config, "", false)?;
    let out = &config.report.out;
    let out = match out.contains("://") {
        true => out.clone(),
        false => config
            .data_path(std::path::Path::new(out))
            .display()
            .to_string(),
    };
    Ok(crate::analysis::ReportOptions {
        data: curate.out,
        images: curate.images,
        out,
        samples: config.report.samples,
        progress,
    })
}

/// The ingest stage: the streaming consumer's loop, over the event files (one partition per
/// file, offsets in the catalog; ends at their end) or as the `[kafka]` consumer group (ends on
/// SIGTERM, or once idle with `run --until-idle`), writing triplets as sessions close. A rerun
/// resumes from the stored offsets, so it never counts an event twice; a curate stage after a
/// file ingest then finds every file already written and recorded.
pub fn stream_options(
    config: &PipelineConfig,
    run_id: &str,
    run: &RunOptions,
) -> Result<crate::pipeline::stream::StreamOptions, StageError> {
    use crate::pipeline::stream::StreamInput;
    let curate = curate_options(config, run_id, run.progress)?;
    let (input, topic, group, dead_letter_topic, until_idle) = match config.ingest.source {
        IngestSource::Files => (
            StreamInput::Files(curate.events),
            "files".to_owned(),
            config.name.clone(),
            None,
            Some(Duration::ZERO),
        ),
        IngestSource::Kafka => {
            let kafka = config.kafka.as_ref().ok_or(StageError::NoKafkaSection)?;
            (
                StreamInput::Kafka {
                    brokers: kafka.brokers.clone(),
                },
                kafka.topic.clone(),
                kafka.group.clone(),
                kafka.dead_letter_topic.clone(),
                run.until_idle,
            )
        }
    };
    let metrics_addr = match &config.ingest.metrics_addr {
        Some(text) => Some(
            text.parse()
                .map_err(|_| StageError::MetricsAddress(text.clone()))?,
        ),
        None => None,
    };
    let pictures =
        crate::curate::PicturePaths::new(curate.config.path_style, curate.images.as_deref())?;
    // Without pictures the simulator's hashes stand in for them, in the stream as in batch.
    let supplied = match &curate.image_dedup {
        crate::curate::ImageDedup::Supplied(path) => {
            std::sync::Arc::new(crate::curate::curator::SuppliedHashes::load(path)?)
        }
        _ => std::sync::Arc::default(),
    };
    let images = match &curate.image_dedup {
        crate::curate::ImageDedup::Pixels => curate
            .images
            .as_deref()
            .map(crate::store::ObjectRoot::open)
            .transpose()?,
        _ => None,
    };
    Ok(crate::pipeline::stream::StreamOptions {
        input,
        topic,
        group,
        out: curate.out,
        run_id: run_id.to_owned(),
        settings: crate::curate::partition::PartitionSettings {
            config: curate.config,
            limits: curate.limits,
            now: curate.now,
            dedup_horizon_hours: curate.dedup_horizon_hours,
            image_dedup: curate.image_dedup,
            images,
            pictures,
            supplied,
        },
        batch_messages: config.ingest.batch_messages(),
        batch_interval: config.ingest.batch_interval(),
        snapshot_interval: config.ingest.snapshot_interval(),
        until_idle,
        abort_after: None,
        kafka: Vec::new(),
        dead_letter_topic,
        metrics_addr,
    })
}

/// Training on what curation wrote. The model goes to `reward/<key>` under the output root,
/// where the key digests the triplet files and the training settings: a restarted run with the
/// same data resumes from its checkpoint, new data or settings start a new model.
pub async fn train_options(
    config: &PipelineConfig,
    catalog: &Catalog,
    progress: bool,
) -> Result<crate::train::TrainOptions, StageError> {
    let curate = curate_options(config, "", false)?;
    let images = curate.images.unwrap_or_default();
    let t = &config.train;
    let mut key = blake3::Hasher::new();
    let mut manifest = catalog.manifest().await?;
    manifest.sort_by(|a, b| a.uri.cmp(&b.uri));
    if manifest.is_empty() {
        return Err(StageError::NoTripletFiles);
    }
    for entry in &manifest {
        key.update(entry.uri.as_bytes());
        key.update(entry.blake3.as_bytes());
    }
    key.update(&serde_json::to_vec(t).unwrap_or_default());
    let key = key.finalize().to_hex();
    let out = format!("{}/reward/{}", curate.out.trim_end_matches('/'), &key[..16]);
    Ok(crate::train::TrainOptions {
        triplets: curate.out,
        images,
        out,
        progress,
        ..t.clone()
    })
}

fn ingest_files(config: &PipelineConfig) -> Vec<PathBuf> {
    if config.ingest.events.is_empty() {
        let out = config.data_path(&config.simulate.out);
        let name = if config.simulate.gzip {
            "events.jsonl.gz"
        } else {
            "events.jsonl"
        };
        vec![out.join(name)]
    } else {
        config
            .ingest
            .events
            .iter()
            .map(|p| config.data_path(p))
            .collect()
    }
}
