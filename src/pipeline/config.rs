//! Pipeline configuration: readable TOML in `pipelines/*.toml`, overridable by environment
//! variables `SR_<SECTION>__<KEY>` (e.g. `SR_CATALOG__URL=postgres://…`, `SR_SIMULATE__USERS=500`),
//! so the same file serves the embedded default and production.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::Limits;

/// Every `SR_*` variable is an override, and an unknown key is an error rather than silently
/// ignored: other tools' variables must not use this prefix.
pub const ENV_PREFIX: &str = "SR_";
/// `SR_<SECTION>__<KEY>_FILE` names a file holding the value (a secret mounted as a file).
const SECRET_FILE_SUFFIX: &str = "_FILE";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub name: String,
    /// Stages to run, in order.
    pub stages: Vec<String>,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub simulate: SimulateConfig,
    #[serde(default)]
    pub validation: Limits,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub curate: crate::curate::CurateConfig,
    /// Where the streaming consumer reads (used when `ingest.source = "kafka"`).
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// Object storage for images and triplets: a local folder, `file://` or `s3://` URL.
    #[serde(default)]
    pub object_store: Option<ObjectStoreConfig>,
    /// The reward model stage: the settings `social-reward train` takes as flags, defaults
    /// included; where the data and the model go is the pipeline's to decide.
    #[serde(default)]
    pub train: crate::train::TrainOptions,
    /// The evaluation stage: pairwise accuracy of the trained model and its starting point.
    #[serde(default)]
    pub eval: crate::train::EvalOptions,
    /// The report stage: the dataset's HTML page.
    #[serde(default)]
    pub report: ReportConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// Folder (relative to `data_dir` unless absolute) or URL the page `index.html` goes to.
    pub out: String,
    /// Sample pairs shown as thumbnails.
    pub samples: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            out: "report".into(),
            samples: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// Invalid messages are copied here as well as to the catalog's dead-letter table.
    pub dead_letter_topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// Root for triplet files and model artefacts.
    pub out: String,
    /// Root the events' `image_uri`s are relative to.
    pub images: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IngestSource {
    /// JSON-lines files (`ingest.events`, or the simulate stage's output).
    #[default]
    Files,
    /// The Kafka consumer group in `[kafka]`.
    Kafka,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// `sqlite:data/catalog.db` or `postgres://user@host/db`.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulateConfig {
    /// Scenario file; its knobs are overridden by the fields below when set.
    pub scenario: Option<PathBuf>,
    pub users: Option<u64>,
    pub days: Option<f64>,
    pub seed: Option<u64>,
    pub images: bool,
    pub image_size: u32,
    pub gzip: bool,
    /// Output folder, relative to `data_dir` unless absolute.
    pub out: PathBuf,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        Self {
            scenario: None,
            users: None,
            days: None,
            seed: None,
            images: true,
            image_size: 256,
            gzip: false,
            out: PathBuf::from("sim"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    pub source: IngestSource,
    /// Event files; empty means the simulate stage's output.
    pub events: Vec<PathBuf>,
    /// How long event ids are remembered for de-duplication, in hours of event time.
    pub dedup_horizon_hours: f64,
    /// Messages per catalog transaction (a partition's micro-batch)…
    pub batch_size: usize,
    /// …or this long after the partition's first uncommitted message, whichever comes first.
    pub batch_interval_ms: u64,
    /// A partition's curation state is snapshotted with a commit at least this often: what a
    /// restart replays is bounded by it.
    pub snapshot_interval_secs: f64,
    /// With `source = "kafka"`: where the consumer serves /metrics and /health (none when
    /// unset).
    pub metrics_addr: Option<String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            source: IngestSource::Files,
            events: Vec::new(),
            dedup_horizon_hours: crate::events::DEFAULT_DEDUP_HORIZON_HOURS,
            batch_size: 20_000,
            batch_interval_ms: 1000,
            snapshot_interval_secs: 30.0,
            metrics_addr: None,
        }
    }
}

impl IngestConfig {
    /// At least one message per commit.
    pub fn batch_messages(&self) -> u64 {
        self.batch_size.max(1) as u64
    }

    pub fn batch_interval(&self) -> Duration {
        Duration::from_millis(self.batch_interval_ms)
    }

    /// A negative or absurd interval is refused when the file is read (`PipelineConfig::load`).
    pub fn snapshot_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.snapshot_interval_secs).unwrap_or(Duration::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading pipeline {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pipeline {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl PipelineConfig {
    /// Loads `path` and applies `SR_*` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_with_env(&text, std::env::vars()).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_toml_with_env(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut overrides: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        let given: std::collections::HashSet<String> =
            overrides.iter().map(|(k, _)| k.clone()).collect();
        for (key, value) in overrides {
            // `SR_X__Y_FILE=/run/secrets/y`: the value is the file's text (a mounted secret),
            // kept as a string, so that no secret has to sit in the environment itself.
            let (name, value) = match key.strip_suffix(SECRET_FILE_SUFFIX) {
                Some(name) => {
                    if given.contains(name) {
                        return Err(format!("{name} and {key} are both set: set one"));
                    }
                    let text = std::fs::read_to_string(&value)
                        .map_err(|e| format!("{key}: reading {value}: {e}"))?;
                    let text = text.trim_end_matches(['\n', '\r']).to_owned();
                    (name, toml::Value::String(text))
                }
                None => (key.as_str(), parse_env_value(&value)),
            };
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            set_path(&mut table, &path, value).map_err(|e| format!("{key}: {e}"))?;
        }
        let config: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        if Duration::try_from_secs_f64(config.ingest.snapshot_interval_secs).is_err() {
            return Err(format!(
                "ingest.snapshot_interval_secs = {}: expected a number of seconds from 0 up",
                config.ingest.snapshot_interval_secs
            ));
        }
        Ok(config)
    }

    /// The configuration as the catalog's `runs.params` keeps it: every value, secrets masked
    /// (the catalog URL's password).
    pub fn recorded(&self) -> serde_json::Value {
        let mut recorded = self.clone();
        recorded.catalog.url = crate::store::redact_url(&recorded.catalog.url);
        serde_json::to_value(&recorded).unwrap_or_default()
    }

    /// A path from the config, relative to `data_dir` unless absolute.
    pub fn data_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.data_dir.join(path)
        }
    }
}

/// Values that read as TOML (numbers, booleans, arrays) keep their type; anything else is a string.
fn parse_env_value(value: &str) -> toml::Value {
    let wrapped = format!("v = {value}");
    toml::from_str::<toml::Table>(&wrapped)
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
name = "t"
stages = ["simulate"]
[catalog]
url = "sqlite:data/catalog.db"
[simulate]
users = 10
"#;

    #[test]
    fn environment_overrides_keep_types_and_create_sections() {
        let vars = [
            ("SR_CATALOG__URL".to_owned(), "postgres://x@y/z".to_owned()),
            ("SR_SIMULATE__USERS".to_owned(), "500".to_owned()),
            ("SR_INGEST__BATCH_SIZE".to_owned(), "7".to_owned()),
            ("UNRELATED".to_owned(), "1".to_owned()),
        ];
        let config = PipelineConfig::from_toml_with_env(TEXT, vars).unwrap();
        assert_eq!(config.catalog.url, "postgres://x@y/z");
        assert_eq!(config.simulate.users, Some(500));
        assert_eq!(config.ingest.batch_size, 7);
    }

    /// A secret mounted as a file: its text, as a string, without the final newline.
    #[test]
    fn a_key_can_come_from_a_file_named_by_its_file_variable() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("catalog-url");
        std::fs::write(&secret, "postgres://u:12345@db/x\n").unwrap();
        let file = secret.display().to_string();
        let vars = [("SR_CATALOG__URL_FILE".to_owned(), file.clone())];
        let config = PipelineConfig::from_toml_with_env(TEXT, vars).unwrap();
        assert_eq!(config.catalog.url, "postgres://u:12345@db/x");

        let both = [
            ("SR_CATALOG__URL".to_owned(), "sqlite::memory:".to_owned()),
            ("SR_CATALOG__URL_FILE".to_owned(), file),
        ];
        let error = PipelineConfig::from_toml_with_env(TEXT, both).unwrap_err();
        assert!(error.contains("set one"), "{error}");
        let missing = [("SR_CATALOG__URL_FILE".to_owned(), "/nonexistent".to_owned())];
        let error = PipelineConfig::from_toml_with_env(TEXT, missing).unwrap_err();
        assert!(error.contains("/nonexistent"), "{error}");
    }

    #[test]
    fn shipped_pipelines_parse() {
        for name in ["local", "production", "nightly"] {
            let path = format!("pipelines/{name}.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            let config = PipelineConfig::from_toml_with_env(&text, []).unwrap();
            assert_eq!(config.name, name);
        }
    }

    #[test]
    fn unknown_keys_are_errors_not_silently_ignored() {
        let vars = [("SR_SIMULATE__USRES".to_owned(), "5".to_owned())];
        assert!(PipelineConfig::from_toml_with_env(TEXT, vars).is_err());
    }

    /// `[eval]` is `EvalOptions`: its own four keys, nothing a pipeline decides itself.
    #[test]
    fn the_eval_section_takes_its_settings_only() {
        let text =
            format!("{TEXT}[eval]\nsplit = \"val\"\nbootstrap = 10\nbatch_size = 4\nlimit = 9\n");
        let config = PipelineConfig::from_toml_with_env(&text, []).unwrap();
        let eval = &config.eval;
        assert_eq!(
            (
                eval.split.as_str(),
                eval.bootstrap,
                eval.batch_size,
                eval.limit
            ),
            ("val", 10, 4, Some(9))
        );
        assert_eq!(
            serde_json::to_string(eval).unwrap(),
            r#"{"split":"val","bootstrap":10,"batch_size":4,"limit":9}"#
        );
        for decided_by_the_pipeline in ["model = \"m\"", "seed = 1", "cpu_only = true"] {
            let text = format!("{TEXT}[eval]\n{decided_by_the_pipeline}\n");
            assert!(
                PipelineConfig::from_toml_with_env(&text, []).is_err(),
                "{decided_by_the_pipeline}"
            );
        }
        let defaults = PipelineConfig::from_toml_with_env(TEXT, []).unwrap().eval;
        assert_eq!(defaults, crate::train::EvalOptions::default());
    }
}
