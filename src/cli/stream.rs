//! `ingest`: the streaming consumer group (see `pipeline::stream`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use social_reward::curate::partition::PartitionSettings;
use social_reward::curate::{CurateConfig, ImageDedup, PicturePaths};
use social_reward::events::{Limits, Timestamp};
use social_reward::pipeline::PipelineConfig;
use social_reward::pipeline::stream::{
    StreamInput, StreamOptions, StreamReport, run_stream, shutdown_signal,
};
use social_reward::store::{Catalog, ObjectRoot};

#[derive(Args)]
pub struct IngestArgs {
    /// Pipeline file whose [kafka], [curate], [validation], [catalog] and [object_store]
    /// tables to use; every flag below overrides it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read these JSON-lines files instead of Kafka (the embedded default): each file is a
    /// partition whose offsets are its line numbers, so a rerun resumes where the catalog says.
    #[arg(long, num_args = 1.., conflicts_with = "brokers")]
    events: Vec<PathBuf>,
    #[arg(long)]
    brokers: Option<String>,
    /// The topic; with --events, the name the files' offsets are kept under (default "files").
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// Catalog URL: postgres://… or sqlite:PATH.
    #[arg(long, env = "SR_CATALOG__URL")]
    db: Option<String>,
    /// Root the events' image_uris are relative to (perceptual de-duplication).
    #[arg(long)]
    images: Option<String>,
    /// Where triplet files go: a folder, file:// or s3:// URL.
    #[arg(long)]
    out: Option<String>,
    /// Skip perceptual hashing.
    #[arg(long)]
    no_image_dedup: bool,
    /// Exit after SECS without a message, with every closable window emitted (tests, backfills),
    /// once this consumer holds a partition and has read each one it holds up to its high
    /// watermark at the start. Quiet for max(SECS, 60) s while holding none, or short of those
    /// watermarks, it fails (exit status 1) with its report, lag included, on stdout.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    until_idle: Option<Duration>,
    /// Commit a partition after this many messages (or after --batch-ms) [default: [ingest]
    /// batch_size, else 20000].
    #[arg(long)]
    batch_messages: Option<usize>,
    /// [default: [ingest] batch_interval_ms, else 1000]
    #[arg(long)]
    batch_ms: Option<u64>,
    /// Snapshot each partition's curation state at least this often [default: [ingest]
    /// snapshot_interval_secs, else 30].
    #[arg(long, value_parser = seconds)]
    snapshot_secs: Option<Duration>,
    /// Copy dead letters to this topic too (default: [kafka] dead_letter_topic).
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// Serve /metrics (Prometheus) and /health here (default: the config's
    /// `[ingest] metrics_addr`, else 127.0.0.1:9464).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Serve no metrics.
    #[arg(long)]
    no_metrics: bool,
    /// librdkafka settings, KEY=VALUE (repeatable).
    #[arg(long = "kafka-set", value_name = "KEY=VALUE", value_parser = super::kafka_setting)]
    kafka_set: Vec<(String, String)>,
    /// Crash testing: stop dead after N messages without committing the batch in flight.
    #[arg(long, hide = true)]
    abort_after: Option<u64>,
}

pub async fn ingest(args: IngestArgs) -> Result<StreamReport> {
    let pipeline = match &args.config {
        Some(path) => Some(PipelineConfig::load(path)?),
        None => None,
    };
    let kafka = pipeline.as_ref().and_then(|p| p.kafka.clone());
    let need = |flag: Option<String>, from_config: Option<String>, name: &str| {
        flag.or(from_config)
            .with_context(|| format!("--{name} (or [kafka] {name} in --config) is required"))
    };
    let (input, topic, group) = match args.events.is_empty() {
        true => (
            StreamInput::Kafka {
                brokers: need(
                    args.brokers,
                    kafka.as_ref().map(|k| k.brokers.clone()),
                    "brokers",
                )?,
            },
            need(args.topic, kafka.as_ref().map(|k| k.topic.clone()), "topic")?,
            need(args.group, kafka.as_ref().map(|k| k.group.clone()), "group")?,
        ),
        false => (
            StreamInput::Files(args.events),
            args.topic.unwrap_or_else(|| "files".into()),
            args.group.unwrap_or_else(|| "ingest".into()),
        ),
    };
    let store = pipeline.as_ref().and_then(|p| p.object_store.clone());
    let out = args
        .out
        .or_else(|| store.as_ref().map(|s| s.out.clone()))
        .context("--out (or [object_store] out in --config) is required")?;
    let images = args.images.or_else(|| store.map(|s| s.images));
    let (config, limits) = match &pipeline {
        Some(p) => (p.curate.clone(), p.validation.clone()),
        None => (CurateConfig::default(), Limits::default()),
    };
    let image_dedup = if args.no_image_dedup {
        ImageDedup::Off
    } else {
        ImageDedup::Pixels
    };
    let pictures = PicturePaths::new(config.path_style, images.as_deref())?;
    let images = match (&image_dedup, images) {
        (ImageDedup::Pixels, None) => bail!("--images is required (or pass --no-image-dedup)"),
        (_, images) => images.map(|url| ObjectRoot::open(&url)).transpose()?,
    };
    let catalog = Catalog::open(&super::catalog_url(args.db, pipeline.as_ref())).await?;
    // The pipeline's [ingest] section, with the flags given over it.
    let mut ingest = pipeline
        .as_ref()
        .map(|p| p.ingest.clone())
        .unwrap_or_default();
    if let Some(messages) = args.batch_messages {
        ingest.batch_size = messages;
    }
    if let Some(ms) = args.batch_ms {
        ingest.batch_interval_ms = ms;
    }
    let snapshot_interval = args
        .snapshot_secs
        .unwrap_or_else(|| ingest.snapshot_interval());
    let options = StreamOptions {
        input,
        topic,
        group,
        out,
        run_id: social_reward::store::new_run_id("ingest"),
        settings: PartitionSettings {
            config,
            limits,
            now: Timestamp::now(),
            dedup_horizon_hours: ingest.dedup_horizon_hours,
            image_dedup,
            images,
            pictures,
            supplied: Default::default(),
        },
        batch_messages: ingest.batch_messages(),
        batch_interval: ingest.batch_interval(),
        snapshot_interval,
        until_idle: args.until_idle,
        abort_after: args.abort_after,
        kafka: args.kafka_set,
        dead_letter_topic: args
            .dead_letter_topic
            .or_else(|| kafka.as_ref().and_then(|k| k.dead_letter_topic.clone())),
        metrics_addr: match (args.no_metrics, args.metrics_addr, &ingest.metrics_addr) {
            (true, _, _) => None,
            (false, Some(flag), _) => Some(flag),
            (false, None, Some(configured)) => Some(configured.parse().with_context(|| {
                format!("[ingest] metrics_addr {configured:?} is not an address to listen on")
            })?),
            (false, None, None) => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464))),
        },
    };
    let ended = run_stream(&options, &catalog, shutdown_signal()).await;
    catalog.close().await;
    match ended {
        Ok(report) => Ok(report),
        Err(error) => {
            // What it did read and its lag are what the operator needs next to the error.
            if let Some(report) = error.report() {
                super::print(report)?;
            }
            Err(error.into())
        }
    }
}

/// A number of seconds, whole or not: negative, infinite and absurdly large values are refused
/// here rather than panicking where they become a `Duration`.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{text:?}: expected a number of seconds from 0 to about 10^19"))
}

#[cfg(test)]
mod tests {
    use super::seconds;
    use std::time::Duration;

    #[test]
    fn seconds_refuse_what_no_duration_holds() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "inf", "NaN", "1e30", "soon", ""] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }
}
