//! The command line: parse arguments, call the library, print one JSON summary line on stdout.

mod analysis;
mod model;
mod stream;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use social_reward::bench;
use social_reward::events::{Limits, Timestamp, Validator};
use social_reward::pipeline::{self, PipelineConfig, validate::validate_files};
use social_reward::sinks::kafka::TopicLayout;
use social_reward::sources::simulator::{self, Scenario, SimulateOptions};
use social_reward::store::Catalog;

#[derive(Parser)]
#[command(
    name = "social-reward",
    version,
    about = "Turn views and remixes of AI-generated images into debiased preference triplets, \
             and train a reward model on them.",
    after_help = "Every command prints a one-line JSON summary on stdout (`run` a table for \
                  people, JSON with --json; `query` its result); warnings and progress go to stderr (-v or \
                  RUST_LOG=info for the log, RUST_LOG=debug for more)."
)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Log what each step does (INFO); the default shows warnings and errors only, except for
    /// `ingest`, a long-running service, which logs at INFO.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a community: events.jsonl, truth.parquet and images/ with hidden ground truth.
    Simulate(SimulateArgs),
    /// Run a pipeline's stages in order (e.g. `run pipelines/local.toml`).
    Run {
        /// Pipeline file; `SR_<SECTION>__<KEY>` environment variables override its values.
        pipeline: PathBuf,
        /// Print the summary as one JSON line instead of tables.
        #[arg(long)]
        json: bool,
        /// Also write the JSON summary to this file.
        #[arg(long, value_name = "FILE")]
        summary_file: Option<PathBuf>,
        /// With a Kafka ingest stage: end it once every partition it holds was idle this many
        /// seconds at its high watermark (tests, backfills); without it the stage is the
        /// consumer service and runs until SIGTERM.
        #[arg(long, value_name = "SECS", value_parser = stream::seconds)]
        until_idle: Option<std::time::Duration>,
    },
    /// Curate event files into debiased preference triplets (Parquet on object storage).
    Curate(CurateArgs),
    /// Consume events from Kafka as a consumer group and curate them as windows close, with an
    /// exactly-once effect on the catalog and the triplet files.
    Ingest(stream::IngestArgs),
    /// Check event files: every line ends valid, duplicate or dead-lettered, with its reason.
    Validate(ValidateArgs),
    /// Train the reward model (CLIP + triplet loss) on curated triplets.
    Train(model::TrainArgs),
    /// Pairwise accuracy of a model and of its untrained baseline, with 95% intervals.
    Eval(model::EvalArgs),
    /// Score images against a prompt: one JSON line per image.
    Score(model::ScoreArgs),
    /// SQL over the curated triplets and the catalog (polars SQL), e.g.
    /// `query "SELECT split, count(*) FROM triplets GROUP BY split"` or `--file sql/X.sql`.
    Query(analysis::QueryArgs),
    /// Write the dataset's report: one self-contained HTML page with plots, tables and sample
    /// pairs (open data/report/index.html in a browser).
    Report(analysis::ReportArgs),
    /// Catalog administration.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Args)]
struct SimulateArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Scenario TOML (defaults: pipelines/scenarios/default.toml's values, built in).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Registered users (1,500,000 with --days 1 is Picsart scale: ~1.7M images, >100M events).
    #[arg(long)]
    users: Option<u64>,
    /// Length of the simulated period in days.
    #[arg(long)]
    days: Option<f64>,
    /// Random seed; the same seed and scenario give byte-identical outputs.
    #[arg(long)]
    seed: Option<u64>,
    /// Render images/<image_id>.png (default).
    #[arg(long, overrides_with = "no_images")]
    images: bool,
    /// Events and truth only.
    #[arg(long)]
    no_images: bool,
    /// Side of the square images, in pixels.
    #[arg(long, default_value_t = 256)]
    image_size: u32,
    /// Write events.jsonl.gz instead of events.jsonl.
    #[arg(long)]
    gzip: bool,
    /// Also produce every event to Kafka (bootstrap servers), keyed by creator id.
    #[arg(long, requires = "topic")]
    to_kafka: Option<String>,
    /// Topic for --to-kafka.
    #[arg(long, requires = "to_kafka")]
    topic: Option<String>,
    /// With --to-kafka: produce at most this many events a second (crash checks on a live
    /// stream, `scripts/chaos.sh`).
    #[arg(long, requires = "to_kafka", value_name = "EVENTS")]
    kafka_rate: Option<u64>,
    /// With --to-kafka: partitions of the topic if it does not exist yet and has to be created
    /// (an existing topic is left as it is).
    #[arg(long, requires = "to_kafka", default_value_t = TopicLayout::default().partitions,
          value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// With --to-kafka: replication factor of the topic if it has to be created.
    #[arg(long, requires = "to_kafka", default_value_t = TopicLayout::default().replication_factor,
          value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: i32,
}

#[derive(Args)]
struct CurateArgs {
    /// Event files (JSON lines, plain or gzip), read in order.
    #[arg(long, required = true, num_args = 1..)]
    events: Vec<PathBuf>,
    /// Root the events' image_uris are relative to: a folder, file:// or s3:// URL.
    #[arg(long)]
    images: Option<String>,
    /// Where triplets/split=…/dt=…/part-….parquet go: a folder, file:// or s3:// URL.
    #[arg(long)]
    out: String,
    /// Pipeline file whose [curate], [validation] and [catalog] tables to use.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Skip perceptual hashing (event-only runs and benchmarks); --images is then optional.
    #[arg(long, conflicts_with = "hashes")]
    no_image_dedup: bool,
    /// Perceptual hashes supplied as Parquet (image_id, phash), e.g. the simulator's truth.
    #[arg(long)]
    hashes: Option<PathBuf>,
    /// The simulator's truth.parquet: adds an evaluation block (precision, yield, biases).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Catalog URL (default: the config's, else sqlite:data/catalog.db).
    #[arg(long, env = "SR_CATALOG__URL")]
    db: Option<String>,
    /// Do not use a catalog: no manifest, no memory of curated sessions (benchmarks).
    #[arg(long, conflicts_with = "db")]
    no_catalog: bool,
    /// How the files name their pictures: as published (relative to --images), absolute
    /// paths, or URLs (default: the config's path_style, else relative).
    #[arg(long, value_enum)]
    path_style: Option<social_reward::curate::PathStyle>,
    /// Fail (exit 1) when the run writes no triplet, saying why.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct ValidateArgs {
    /// Event files (JSON lines, plain or gzip).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write each dead letter as a JSON line here.
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// Remember event ids this many hours of event time for de-duplication.
    #[arg(long, default_value_t = social_reward::events::DEFAULT_DEDUP_HORIZON_HOURS)]
    dedup_horizon_hours: f64,
    /// Validation limits as TOML (the `[validation]` table of a pipeline file).
    #[arg(long)]
    limits: Option<PathBuf>,
    /// Reference clock for the future-timestamp bound (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending migrations.
    Migrate {
        /// Catalog URL: sqlite:PATH or postgres://...
        #[arg(long, env = "SR_CATALOG__URL", default_value = social_reward::store::DEFAULT_CATALOG_URL)]
        db: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The perceptual-hash near-duplicate index alone (inserts/s as it fills).
    Dedup {
        #[arg(long, default_value_t = 1_000_000)]
        hashes: usize,
        #[arg(long, default_value_t = 9)]
        max_distance: u32,
    },
    /// The streaming consumer with its catalog commits beside a bare consume loop (same
    /// in-process broker and topic), and its peak memory over a stream `--scale` times longer.
    Ingest {
        #[arg(long, default_value_t = 2_000)]
        users: u64,
        #[arg(long, default_value_t = 1.0)]
        days: f64,
        #[arg(long, default_value_t = 10)]
        scale: u32,
        /// The mock broker keeps 5 MiB a partition: enough partitions for the longer stream.
        #[arg(long, default_value_t = 64)]
        partitions: i32,
        /// Catalog the consumer commits to (PostgreSQL for the figures that matter).
        #[arg(long, env = "SR_CATALOG__URL")]
        db: String,
        /// librdkafka settings for both the consumer and the bare loop, KEY=VALUE (repeatable).
        #[arg(long = "kafka-set", value_name = "KEY=VALUE", value_parser = kafka_setting)]
        kafka_set: Vec<(String, String)>,
    },
    /// Reward-model training samples/s and scoring images/s (tiny and ViT-B/32 shapes).
    Train {
        /// Fewer steps (a smoke run).
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        cpu: bool,
    },
    /// Parse + validate + de-duplicate + aggregate events, single-threaded, from memory.
    Parse {
        /// Events file; default: simulate one into a temporary folder.
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        users: u64,
        #[arg(long, default_value_t = 2.0)]
        days: f64,
        /// Passes over the data; the best is reported.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
    /// Batch curation of an image-free simulated stream (no catalog), beside DuckDB's windowed
    /// counting over the same JSON lines (`pip install duckdb`).
    Curate {
        /// Events file; default: simulate one (hashes then come from its truth table).
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        users: u64,
        #[arg(long, default_value_t = 2.0)]
        days: f64,
        #[arg(long, default_value_t = 12.0)]
        window_hours: f64,
        /// Skip the DuckDB comparison.
        #[arg(long)]
        no_duckdb: bool,
    },
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    let service = matches!(cli.command, Command::Ingest(_));
    init_logging(if cli.verbose || service {
        "info"
    } else {
        "warn"
    });
    let progress = !cli.quiet;
    match cli.command {
        Command::Simulate(args) => print(&simulate(args, progress)?),
        Command::Run {
            pipeline,
            json,
            summary_file,
            until_idle,
        } => {
            let config = PipelineConfig::load(&pipeline)?;
            let run = pipeline::RunOptions {
                progress,
                until_idle,
            };
            let summary = runtime()?.block_on(pipeline::run_pipeline(&config, &run))?;
            if let Some(path) = &summary_file {
                std::fs::write(path, serde_json::to_vec(&summary)?)
                    .with_context(|| format!("writing the summary to {}", path.display()))?;
            }
            match json {
                true => print(&summary),
                false => {
                    print!("{}", summary.table());
                    Ok(())
                }
            }
        }
        Command::Validate(args) => print(&validate(args)?),
        Command::Train(args) => print(&runtime()?.block_on(model::train(args, progress))?),
        Command::Eval(args) => print(&runtime()?.block_on(model::eval(args))?),
        Command::Score(args) => runtime()?.block_on(model::score(args)),
        Command::Curate(args) => print(&runtime()?.block_on(curate(args, progress))?),
        Command::Ingest(args) => print(&runtime()?.block_on(stream::ingest(args))?),
        Command::Query(args) => {
            // A terminal table shows every row the query asked for, not polars' first and
            // last few (POLARS_FMT_MAX_ROWS still decides when set). Set before any thread
            // is started.
            if std::env::var_os("POLARS_FMT_MAX_ROWS").is_none() {
                // SAFETY: single-threaded here; nothing reads the environment concurrently.
                unsafe { std::env::set_var("POLARS_FMT_MAX_ROWS", "-1") };
            }
            runtime()?.block_on(analysis::query(args))
        }
        Command::Report(args) => print(&runtime()?.block_on(analysis::report(args, progress))?),
        Command::Db {
            command: DbCommand::Migrate { db },
        } => {
            let migrations = runtime()?.block_on(async {
                let catalog = Catalog::connect(&db).await?;
                let applied = catalog.migrate().await?;
                catalog.close().await;
                Ok::<_, social_reward::store::CatalogError>((catalog.backend(), applied))
            })?;
            /// `applied`: the migrations this run applied (0 when already up to date).
            #[derive(Serialize)]
            struct Migrated {
                backend: &'static str,
                applied: usize,
            }
            print(&Migrated {
                backend: migrations.0,
                applied: migrations.1,
            })
        }
        Command::Bench {
            command:
                BenchCommand::Dedup {
                    hashes,
                    max_distance,
                },
        } => print(&bench::dedup(hashes, max_distance)),
        Command::Bench {
            command:
                BenchCommand::Ingest {
                    users,
                    days,
                    scale,
                    partitions,
                    db,
                    kafka_set,
                },
        } => {
            let options = bench::IngestOptions {
                users,
                days,
                scale,
                partitions,
                catalog: db,
                kafka: kafka_set,
            };
            print(&runtime()?.block_on(bench::ingest(&options))?)
        }
        Command::Bench {
            command: BenchCommand::Train { quick, cpu },
        } => print(&social_reward::train::bench::run(quick, cpu)?),
        Command::Bench {
            command:
                BenchCommand::Parse {
                    events,
                    users,
                    days,
                    repeat,
                },
        } => print(&bench::parse(events.as_deref(), users, days, repeat)?),
        Command::Bench {
            command:
                BenchCommand::Curate {
                    events,
                    users,
                    days,
                    window_hours,
                    no_duckdb,
                },
        } => print(&runtime()?.block_on(bench::curate(
            events.as_deref(),
            users,
            days,
            window_hours,
            !no_duckdb,
        ))?),
    }
}

fn simulate(args: SimulateArgs, progress: bool) -> Result<simulator::SimulationSummary> {
    let scenario =
        Scenario::load_with_overrides(args.scenario.as_deref(), args.users, args.days, args.seed)?;
    let options = SimulateOptions {
        out: args.out,
        scenario,
        images: !args.no_images,
        image_size: args.image_size,
        gzip: args.gzip,
        progress,
        kafka: args.to_kafka.zip(args.topic).map(|(brokers, topic)| {
            social_reward::sinks::kafka::KafkaTarget {
                brokers,
                topic,
                per_second: args.kafka_rate,
                create: TopicLayout {
                    partitions: args.partitions,
                    replication_factor: args.replication_factor,
                },
            }
        }),
    };
    Ok(simulator::simulate(&options)?)
}

async fn curate(args: CurateArgs, progress: bool) -> Result<social_reward::curate::CurateSummary> {
    use social_reward::curate::{CurateConfig, CurateOptions, ImageDedup, curate};
    let pipeline = match &args.config {
        Some(path) => Some(PipelineConfig::load(path)?),
        None => None,
    };
    let (mut config, limits) = match &pipeline {
        Some(p) => (p.curate.clone(), p.validation.clone()),
        None => (CurateConfig::default(), Limits::default()),
    };
    if let Some(style) = args.path_style {
        config.path_style = style;
    }
    let image_dedup = match (&args.hashes, args.no_image_dedup) {
        (Some(path), _) => ImageDedup::Supplied(path.clone()),
        (None, true) => ImageDedup::Off,
        (None, false) => ImageDedup::Pixels,
    };
    let run_id = social_reward::store::new_run_id("curate");
    let options = CurateOptions {
        events: args.events,
        images: args.images,
        out: args.out,
        config,
        limits,
        now: Timestamp::now(),
        dedup_horizon_hours: dedup_horizon_hours(pipeline.as_ref()),
        image_dedup,
        truth: args.truth,
        run_id,
        progress,
    };
    let catalog = if args.no_catalog {
        None
    } else {
        Some(Catalog::open(&catalog_url(args.db, pipeline.as_ref())).await?)
    };
    let summary = curate(&options, catalog.as_ref()).await?;
    if let Some(catalog) = catalog {
        catalog.close().await;
    }
    if let Some(evaluation) = &summary.evaluation {
        eprint!("{}", evaluation.table());
    }
    if args.strict && summary.triplets == 0 {
        match &summary.curated_before {
            Some(before) => anyhow::bail!("{}", before.explain(summary.sessions_already_curated)),
            None => anyhow::bail!(
                "no triplets: {} lines gave no pair that passed curation",
                summary.intake.lines
            ),
        }
    }
    Ok(summary)
}

/// `--kafka-set KEY=VALUE`: one librdkafka setting.
fn kafka_setting(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{pair:?}: expected KEY=VALUE")),
    }
}

/// `--db`, else the pipeline file's catalog, else the embedded default.
fn catalog_url(flag: Option<String>, pipeline: Option<&PipelineConfig>) -> String {
    flag.or_else(|| pipeline.map(|p| p.catalog.url.clone()))
        .unwrap_or_else(|| social_reward::store::DEFAULT_CATALOG_URL.to_owned())
}

/// How long event ids are remembered for de-duplication: the pipeline's, else the default.
fn dedup_horizon_hours(pipeline: Option<&PipelineConfig>) -> f64 {
    pipeline.map_or(social_reward::events::DEFAULT_DEDUP_HORIZON_HOURS, |p| {
        p.ingest.dedup_horizon_hours
    })
}

fn validate(args: ValidateArgs) -> Result<pipeline::validate::ValidationReport> {
    let limits = match &args.limits {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<Limits>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => Limits::default(),
    };
    let now = match &args.now {
        Some(text) => Timestamp::parse_rfc3339(text).context("--now")?,
        None => Timestamp::now(),
    };
    let validator = Validator::new(limits, now)?;
    Ok(validate_files(
        &args.files,
        validator,
        args.dedup_horizon_hours,
        args.dead_letters.as_deref(),
    )?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// RUST_LOG when set, else `default` (e.g. "warn").
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn print<T: Serialize>(summary: &T) -> Result<()> {
    use std::io::Write;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string(summary)?
    )?;
    Ok(())
}

/// The reader of stdout went away (`| head`): the output was not wanted further, which is no
/// error of ours.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            // polars' writers keep the io::Error inside, out of the chain, with its text.
            || cause.to_string().contains("Broken pipe (os error 32)")
    })
}

#[cfg(test)]
mod tests {
    use super::kafka_setting;

    #[test]
    fn kafka_settings_split_at_the_first_equals_sign() {
        assert_eq!(
            kafka_setting("sasl.jaas=a=b").unwrap(),
            ("sasl.jaas".to_owned(), "a=b".to_owned())
        );
        assert_eq!(
            kafka_setting("client.id=").unwrap(),
            ("client.id".to_owned(), String::new())
        );
        for bad in ["fetch.max.bytes", "=5", ""] {
            assert!(kafka_setting(bad).is_err(), "{bad:?}");
        }
    }
}
