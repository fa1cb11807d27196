//! The built-in community simulator: the ground truth everything else is measured against.
//!
//! Writes `events.jsonl[.gz]` (delivery order), `truth.parquet` (one row per image, with the
//! latent quality no pipeline stage may read) and `images/<image_id>.png`. The generative model
//! is specified in `docs/simulator.md`.

pub mod community;
pub mod generator;
pub mod prompts;
pub mod render;
pub mod scenario;
pub mod truth;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

pub use generator::{GeneratedCounts, Generator, PictureSpec};
pub use scenario::{Scenario, ScenarioError};
pub use truth::{TruthRow, TruthTable, read_truth};

use crate::progress;
use crate::sinks::{EventSink, LineSink};

#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing truth table: {0}")]
    Truth(#[from] polars::error::PolarsError),
    #[error("rendering {image_id}: {message}")]
    Render { image_id: String, message: String },
    #[error("image size {0} is outside 16..=2048")]
    ImageSize(u32),
    #[error(transparent)]
    Kafka(#[from] crate::sinks::kafka::KafkaSinkError),
}

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub out: PathBuf,
    pub scenario: Scenario,
    pub images: bool,
    pub image_size: u32,
    pub gzip: bool,
    pub progress: bool,
    /// Also produce every event to this Kafka topic, keyed by creator id.
    pub kafka: Option<crate::sinks::kafka::KafkaTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimulationSummary {
    pub events: PathBuf,
    pub truth: PathBuf,
    pub images: Option<PathBuf>,
    pub start: String,
    pub end: String,
    #[serde(flatten)]
    pub counts: GeneratedCounts,
    pub peak_live_images: usize,
    /// Messages produced to Kafka and acknowledged, with `kafka`.
    pub kafka_messages: Option<u64>,
    pub seconds: f64,
}

pub fn simulate(options: &SimulateOptions) -> Result<SimulationSummary, SimulatorError> {
    if !(16..=2048).contains(&options.image_size) {
        return Err(SimulatorError::ImageSize(options.image_size));
    }
    let started = Instant::now();
    let out = &options.out;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimulatorError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let events_path = out.join(if options.gzip {
        "events.jsonl.gz"
    } else {
        "events.jsonl"
    });
    let truth_path = out.join("truth.parquet");
    let images_dir = out.join("images");
    if options.images {
        std::fs::create_dir_all(&images_dir).map_err(io(&images_dir))?;
    }
    let scenario_text = toml::to_string(&options.scenario).unwrap_or_default();
    std::fs::write(out.join("scenario.toml"), scenario_text).map_err(io(out))?;

    let mut generator = Generator::new(&options.scenario)?;
    let file = File::create(&events_path).map_err(io(&events_path))?;
    let mut sink = TeeSink {
        file: LineSink::new(file, options.gzip),
        kafka: match &options.kafka {
            Some(target) => Some(crate::sinks::kafka::KafkaSink::connect(target)?),
            None => None,
        },
    };
    let renderer = options
        .images
        .then(|| RenderPool::start(images_dir.clone(), options.image_size));
    let mut truth = TruthTable::default();
    let mut peak_live = 0;
    let (start, end) = (generator.start(), generator.end());
    let bar = progress::bar(
        options.progress,
        (end.hours_since(start) * 60.0) as u64,
        "simulating (minutes of community time)",
    );
    let sink_error = |e: TeeError| match e {
        TeeError::Io(source) => SimulatorError::Io {
            path: events_path.clone(),
            source,
        },
        TeeError::Kafka(e) => SimulatorError::Kafka(e),
    };
    while let Some((now, published)) = generator.step(&mut sink).map_err(sink_error)? {
        if let Some(published) = published {
            if let Some(pool) = &renderer {
                pool.submit(published.truth.image_id.clone(), published.picture)?;
            }
            truth.push(published.truth);
            peak_live = peak_live.max(generator.live_images());
        }
        if now <= end {
            bar.set_position((now.hours_since(start) * 60.0) as u64);
        }
    }
    bar.finish_and_clear();
    sink.file.finish().map_err(io(&events_path))?;
    let kafka_messages = match sink.kafka {
        Some(kafka) => Some(kafka.finish()?),
        None => None,
    };
    if let Some(pool) = renderer {
        pool.finish()?;
    }
    truth.write_parquet(&truth_path)?;
    Ok(SimulationSummary {
        events: events_path,
        truth: truth_path,
        images: options.images.then_some(images_dir),
        start: start.to_string(),
        end: end.to_string(),
        counts: generator.counts().clone(),
        peak_live_images: peak_live,
        kafka_messages,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The events file, and Kafka too when asked: the file is what batch curation and the tests
/// compare the stream against.
struct TeeSink {
    file: LineSink,
    kafka: Option<crate::sinks::kafka::KafkaSink>,
}

enum TeeError {
    Io(std::io::Error),
    Kafka(crate::sinks::kafka::KafkaSinkError),
}

impl EventSink for TeeSink {
    type Error = TeeError;
    fn deliver(&mut self, key: &str, line: &[u8]) -> Result<(), TeeError> {
        self.file.deliver(key, line).map_err(TeeError::Io)?;
        if let Some(kafka) = &mut self.kafka {
            kafka.deliver(key, line).map_err(TeeError::Kafka)?;
        }
        Ok(())
    }
}

type RenderJob = (String, PictureSpec);

/// Renders and encodes PNGs on all cores while the generator moves on; every file depends only
/// on its own spec, so the outputs do not depend on thread scheduling.
struct RenderPool {
    jobs: Option<SyncSender<RenderJob>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<SimulatorError>>>,
}

impl RenderPool {
    fn start(dir: PathBuf, size: u32) -> Self {
        let (jobs, receiver) = sync_channel::<RenderJob>(256);
        let receiver = Arc::new(Mutex::new(receiver));
        let failure = Arc::new(Mutex::new(None));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = (0..threads)
            .map(|_| {
                let (receiver, failure, dir) = (receiver.clone(), failure.clone(), dir.clone());
                std::thread::spawn(move || render_worker(&receiver, &failure, &dir, size))
            })
            .collect();
        Self {
            jobs: Some(jobs),
            workers,
            failure,
        }
    }

    fn submit(&self, image_id: String, picture: PictureSpec) -> Result<(), SimulatorError> {
        if let Some(error) = self.failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(error);
        }
        let sent = self
            .jobs
            .as_ref()
            .map(|jobs| jobs.send((image_id.clone(), picture)));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(SimulatorError::Render {
                image_id,
                message: "render workers stopped".into(),
            }),
        }
    }

    fn finish(mut self) -> Result<(), SimulatorError> {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                return Err(SimulatorError::Render {
                    image_id: String::new(),
                    message: "a render worker panicked".into(),
                });
            }
        }
        match self.failure.lock().ok().and_then(|mut f| f.take()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn render_worker(
    receiver: &Mutex<Receiver<RenderJob>>,
    failure: &Mutex<Option<SimulatorError>>,
    dir: &Path,
    size: u32,
) {
    loop {
        let job = match receiver.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok((image_id, picture)) = job else { return };
        if let Err(error) = render_one(dir, size, &image_id, &picture)
            && let Ok(mut slot) = failure.lock()
        {
            slot.get_or_insert(error);
        }
    }
}

fn render_one(
    dir: &Path,
    size: u32,
    image_id: &str,
    picture: &PictureSpec,
) -> Result<(), SimulatorError> {
    let spec = render::SceneSpec {
        prompt: &picture.prompt,
        seed: picture.render_seed,
        quality: picture.quality,
    };
    let mut image = render::render_scene(&spec, size);
    if let Some(repost_seed) = picture.repost_seed {
        // Re-uploads come back smaller and re-encoded, as they do on real platforms.
        image = render::repost_variant(&image, repost_seed, (size * 3 / 4).max(16));
    }
    let png = render::encode_png(&image).map_err(|e| SimulatorError::Render {
        image_id: image_id.to_owned(),
        message: e.to_string(),
    })?;
    let path = dir.join(format!("{image_id}.png"));
    std::fs::write(&path, png).map_err(|source| SimulatorError::Io { path, source })
}
