//! The reward model: candle's CLIP built from a Hugging Face layout directory (`config.json`,
//! `model.safetensors`, `tokenizer.json`), with the weights a run trains held as variables and
//! every other weight as a constant, so frozen layers cost no backward pass. The text tower
//! pools at the end token by transformers' rule (`TextSpec::pooling`, see `clip`), not
//! candle's argmax.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use candle_core::{D, DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use candle_transformers::models::clip::{ClipModel, div_l2_norm};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::TrainError;
use super::clip::Clip;
use super::preprocess::{CLIP_MEAN, CLIP_STD};
use super::spec::{ClipSpec, Trainable};
use super::tokenize::{DEFAULT_PAD_ID, PromptTokenizer, word_level_tokenizer_json};
use crate::store::ObjectRoot;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Read by transformers' `CLIPImageProcessor` only: the code preprocesses by itself.
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
/// What `train` says about the model it wrote: base model, settings, data, metrics.
pub const MODEL_CARD_FILE: &str = "model_card.json";
/// Where in train's OUT the trained model goes (the other entries are `base/` and
/// `checkpoints/`): a model is read from OUT as well as from OUT/model.
pub const MODEL_DIR: &str = "model";

/// Largest weights file read from a remote store (ViT-L/14 is 1.7 GB in f32).
const MAX_WEIGHTS_BYTES: u64 = 8 << 30;
const MAX_SMALL_FILE_BYTES: u64 = 64 << 20;

/// The three files of a model directory; weights stay on disk (memory-mapped) when local.
pub struct ModelFiles {
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
    weights: Weights,
}

enum Weights {
    Mapped(PathBuf),
    Bytes(Vec<u8>),
}

/// The folder behind a local path or `file://` URL; `None` for remote stores.
fn local_path(url: &str) -> Option<PathBuf> {
    match url.strip_prefix("file://") {
        Some(path) => Some(PathBuf::from(path)),
        None if url.contains("://") => None,
        None => Some(PathBuf::from(url)),
    }
}

/// The model directory a user means: `url` itself when it holds a `config.json`, else the model
/// that `train --out url` wrote (`url/model`), so that train's OUT can be passed wherever a model
/// is read. Works the same on local folders, `file://` and object store URLs.
pub async fn resolve_model_dir(url: &str) -> Result<String, TrainError> {
    // Opening a local root creates the folder: a mistyped path must not leave one behind.
    if let Some(path) = local_path(url)
        && !path.is_dir()
    {
        let url = url.to_owned();
        return Err(if path.exists() {
            TrainError::ModelDirNotADirectory { url }
        } else {
            TrainError::ModelDirMissing { url }
        });
    }
    let root = ObjectRoot::open(url)?;
    if root.exists(CONFIG_FILE).await? {
        tracing::info!("model directory {url}");
        return Ok(url.to_owned());
    }
    if root.exists(&format!("{MODEL_DIR}/{CONFIG_FILE}")).await? {
        let model = root.url_of(MODEL_DIR);
        tracing::info!("{url} is a `train --out` directory: model directory {model}");
        return Ok(model);
    }
    Err(TrainError::NotAModel {
        url: url.to_owned(),
    })
}

impl ModelFiles {
    /// Reads a model directory (or train's OUT, see [`resolve_model_dir`]) from a local path,
    /// `file://` or any object store URL. Returns the files and the model directory's URL.
    pub async fn fetch(url: &str) -> Result<(Self, String), TrainError> {
        let url = resolve_model_dir(url).await?;
        let root = ObjectRoot::open(&url)?;
        let config = root.get(CONFIG_FILE, MAX_SMALL_FILE_BYTES).await?;
        let tokenizer = root.get(TOKENIZER_FILE, MAX_SMALL_FILE_BYTES).await?;
        let weights = match local_path(&url) {
            Some(dir) => Weights::Mapped(dir.join(WEIGHTS_FILE)),
            None => Weights::Bytes(root.get(WEIGHTS_FILE, MAX_WEIGHTS_BYTES).await?),
        };
        let files = Self {
            config,
            tokenizer,
            weights,
        };
        Ok((files, url))
    }

    fn var_builder(&self, device: &Device) -> Result<VarBuilder<'static>, TrainError> {
        Ok(match &self.weights {
            Weights::Mapped(path) => {
                if !path.is_file() {
                    return Err(TrainError::MissingFile {
                        path: path.display().to_string(),
                    });
                }
                // SAFETY: the file is only read; a concurrent writer replacing it would be a
                // deployment error, and model directories are written once under a new name.
                unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device)? }
            }
            Weights::Bytes(bytes) => {
                VarBuilder::from_buffered_safetensors(bytes.clone(), DType::F32, device)?
            }
        })
    }
}

/// Where each weight comes from: the file (frozen, a constant) or a training variable.
struct ParamSource {
    file: VarBuilder<'static>,
    spec: ClipSpec,
    trainable: Trainable,
    train: bool,
    variables: VarMap,
    constants: Mutex<BTreeMap<String, Tensor>>,
}

impl ParamSource {
    /// `class_embedding` and `logit_scale` are invented by candle's CLIP when absent; answering
    /// "present" makes it ask us for them, so they are trained and saved like any weight.
    fn is_invented_by_candle(name: &str) -> bool {
        name.ends_with("class_embedding") || name == "logit_scale"
    }

    fn initial(&self, shape: &Shape, name: &str, init: Init) -> candle_core::Result<Tensor> {
        if self.file.contains_tensor(name) {
            return self.file.get_with_hints(shape.clone(), name, init);
        }
        let device = self.file.device();
        if name == "logit_scale" {
            return Tensor::new(self.spec.logit_scale_init_value, device)?.reshape(shape);
        }
        if name.ends_with("class_embedding") {
            let std = (self.spec.vision_config.hidden_size as f64).powf(-0.5);
            return Tensor::randn(0f32, std as f32, shape, device);
        }
        candle_core::bail!("weight {name} is missing from {WEIGHTS_FILE}")
    }
}

/// `VarBuilder` owns its backend; the model keeps a second handle to read the weights back.
struct SharedSource(Arc<ParamSource>);

impl SimpleBackend for SharedSource {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let source = &self.0;
        let tensor = source
            .initial(&shape, name, init)?
            .to_dtype(dtype)?
            .to_device(device)?;
        if source.train && source.trainable.trains(&source.spec, name) {
            let mut variables = source
                .variables
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?;
            let var = match variables.get(name) {
                Some(var) => var.clone(),
                None => {
                    let var = Var::from_tensor(&tensor)?;
                    variables.insert(name.to_owned(), var.clone());
                    var
                }
            };
            return Ok(var.as_tensor().clone());
        }
        source
            .constants
            .lock()
            .map_err(|_| candle_core::Error::Msg("constant map poisoned".into()))?
            .insert(name.to_owned(), tensor.clone());
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0
            .file
            .get_unchecked(name)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.file.contains_tensor(name) || ParamSource::is_invented_by_candle(name)
    }
}

/// Parses a directory's config and tokenizer, recording in the config the token ids the
/// tokenizer uses (older directories lack them) and padding with the config's.
fn spec_and_tokenizer(
    config: &[u8],
    tokenizer_json: &[u8],
) -> Result<(ClipSpec, PromptTokenizer), TrainError> {
    let mut spec = ClipSpec::parse(config)?;
    let tokenizer = PromptTokenizer::from_json(tokenizer_json, spec.max_tokens())?;
    if tokenizer.vocab_size() > spec.text_config.vocab_size {
        return Err(TrainError::VocabularyMismatch {
            tokenizer: tokenizer.vocab_size(),
            text_tower: spec.text_config.vocab_size,
        });
    }
    spec.text_config.adopt_token_ids(
        tokenizer.start_id(),
        tokenizer.end_id(),
        tokenizer.largest_id(),
    )?;
    let pad = spec.text_config.pad_token_id.unwrap_or(DEFAULT_PAD_ID);
    Ok((spec, tokenizer.with_pad(pad)))
}

/// transformers' `CLIPImageProcessor` settings closest to `preprocess::clip_pixels`: bicubic
/// resize of the shortest side, centre crop, CLIP's mean and deviation. Close, not identical:
/// PIL's bicubic and its rounding of odd margins differ from ours by a few levels in places.
fn preprocessor_config(image_size: usize) -> Vec<u8> {
    let json = serde_json::json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": true,
        "do_resize": true,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": true,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    });
    serde_json::to_vec_pretty(&json).unwrap_or_default()
}

/// CLIP plus its tokenizer and the bookkeeping of which weights train.
pub struct RewardModel {
    clip: Clip,
    spec: ClipSpec,
    tokenizer: PromptTokenizer,
    tokenizer_json: Vec<u8>,
    params: Arc<ParamSource>,
    device: Device,
    url: Option<String>,
}

impl RewardModel {
    /// The one way a model is built, whether the files hold OpenAI's weights or the tiny random
    /// model the code wrote itself. `train` turns the `trainable` weights into variables.
    pub fn build(
        files: &ModelFiles,
        trainable: Trainable,
        train: bool,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let (spec, tokenizer) = spec_and_tokenizer(&files.config, &files.tokenizer)?;
        let params = Arc::new(ParamSource {
            file: files.var_builder(device)?,
            spec: spec.clone(),
            trainable,
            train,
            variables: VarMap::new(),
            constants: Mutex::new(BTreeMap::new()),
        });
        let backend: Box<dyn SimpleBackend> = Box::new(SharedSource(params.clone()));
        let vb = VarBuilder::from_backend(backend, DType::F32, device.clone());
        let clip = Clip::new(vb, &spec)?;
        Ok(Self {
            clip,
            spec,
            tokenizer,
            tokenizer_json: files.tokenizer.clone(),
            params,
            device: device.clone(),
            url: None,
        })
    }

    /// Loads a model directory, or the one in train's OUT (see [`resolve_model_dir`]).
    pub async fn load(
        url: &str,
        trainable: Trainable,
        train: bool,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let (files, url) = ModelFiles::fetch(url).await?;
        let mut model = Self::build(&files, trainable, train, device)?;
        model.url = Some(url);
        Ok(model)
    }

    /// The model directory it was loaded from (`None` when built from memory).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    pub fn spec(&self) -> &ClipSpec {
        &self.spec
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn image_size(&self) -> u32 {
        self.spec.image_size() as u32
    }

    /// The trained variables, sorted by name (a stable order for the optimizer's state).
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let variables = match self.params.variables.data().lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut vars: Vec<(String, Var)> = variables
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Every weight by its Hugging Face name: frozen constants and current variable values.
    pub fn named_weights(&self) -> BTreeMap<String, Tensor> {
        let mut all = match self.params.constants.lock() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (name, var) in self.trainable_vars() {
            all.insert(name, var.as_tensor().clone());
        }
        all
    }

    /// The directory's files, as bytes, for an object store.
    pub fn to_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, TrainError> {
        Ok(vec![
            (CONFIG_FILE, self.spec.to_json()),
            (TOKENIZER_FILE, self.tokenizer_json.clone()),
            (
                PREPROCESSOR_FILE,
                preprocessor_config(self.spec.image_size()),
            ),
            (WEIGHTS_FILE, safetensors_bytes(&self.named_weights())?),
        ])
    }

    /// L2-normalised prompt embeddings, `(batch, projection_dim)`.
    pub fn embed_prompts(&self, prompts: &[&str]) -> Result<Tensor, TrainError> {
        let ids = self.tokenizer.batch(prompts, &self.device)?;
        Ok(div_l2_norm(&self.clip.text_features(&ids)?)?)
    }

    /// L2-normalised image embeddings of `(batch, 3, size, size)` preprocessed pixels.
    pub fn embed_images(&self, pixels: &Tensor) -> Result<Tensor, TrainError> {
        Ok(div_l2_norm(&self.clip.image_features(pixels)?)?)
    }

    /// Cosine similarity of each prompt with its image: the reward.
    pub fn scores(&self, prompts: &[&str], pixels: &Tensor) -> Result<Vec<f32>, TrainError> {
        let text = self.embed_prompts(prompts)?;
        let image = self.embed_images(pixels)?;
        Ok((text * image)?.sum(D::Minus1)?.to_vec1::<f32>()?)
    }

    /// Packs preprocessed images into a `(n, 3, size, size)` tensor on the model's device.
    pub fn pixel_batch(&self, images: &[&[f32]]) -> Result<Tensor, TrainError> {
        let size = self.spec.image_size();
        let mut flat = Vec::with_capacity(images.len() * 3 * size * size);
        for image in images {
            flat.extend_from_slice(image);
        }
        Ok(Tensor::from_vec(
            flat,
            (images.len(), 3, size, size),
            &self.device,
        )?)
    }
}

pub fn safetensors_bytes(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>, TrainError> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<_, candle_core::Error>>()?;
    safetensors::tensor::serialize(cpu.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|source| TrainError::WriteSafetensors { source })
}

/// A model built from random weights drawn from `seed`: the tiny model for tests and the
/// embedded default, or ViT-B/32's shape for benchmarks. Returns the directory's files.
pub fn random_model_files(
    spec: &ClipSpec,
    tokenizer_json: Vec<u8>,
    seed: u64,
) -> Result<Vec<(&'static str, Vec<u8>)>, TrainError> {
    let (spec, _) = spec_and_tokenizer(&spec.to_json(), &tokenizer_json)?;
    let spec = &spec;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // Registered first so that candle's CLIP finds them instead of inventing untracked ones.
    vb.get_with_hints(
        spec.vision_config.hidden_size,
        "vision_model.embeddings.class_embedding",
        Init::Const(0.),
    )?;
    vb.get_with_hints(
        (),
        "logit_scale",
        Init::Const(spec.logit_scale_init_value as f64),
    )?;
    ClipModel::new(vb, &spec.to_candle())?;
    // candle cannot seed its CPU generator, so the random weights are redrawn from our own.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut weights = BTreeMap::new();
    let data = varmap.data().lock().map_err(|_| TrainError::LockPoisoned {
        what: "variable map",
    })?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let tensor = data[name].as_tensor();
        let dims = tensor.dims().to_vec();
        let count = tensor.elem_count();
        let constant = tensor.flatten_all()?.min(0)?.to_scalar::<f32>()?
            == tensor.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let value = if name.ends_with("class_embedding") {
            draw(&mut rng, count, (dims[0] as f64).powf(-0.5))?
        } else if constant || dims.len() < 2 {
            // Norm scales stay 1, biases and the logit scale keep their defaults.
            if constant {
                tensor.flatten_all()?.to_vec1::<f32>()?
            } else {
                vec![0.0; count]
            }
        } else {
            let fan_in = count / dims[0];
            draw(&mut rng, count, (fan_in as f64).powf(-0.5))?
        };
        weights.insert(name.clone(), Tensor::from_vec(value, dims, &Device::Cpu)?);
    }
    Ok(vec![
        (CONFIG_FILE, spec.to_json()),
        (TOKENIZER_FILE, tokenizer_json),
        (PREPROCESSOR_FILE, preprocessor_config(spec.image_size())),
        (WEIGHTS_FILE, safetensors_bytes(&weights)?),
    ])
}

fn draw(rng: &mut rand_chacha::ChaCha8Rng, count: usize, std: f64) -> Result<Vec<f32>, TrainError> {
    let normal = Normal::new(0.0, std).map_err(|source| TrainError::RandomInit { std, source })?;
    Ok((0..count).map(|_| normal.sample(rng) as f32).collect())
}

/// A word-level `tokenizer.json` over the simulator's prompt vocabulary, and its size.
fn simulator_tokenizer() -> Result<(Vec<u8>, usize), TrainError> {
    let words = crate::sources::simulator::prompts::vocabulary();
    let tokenizer = word_level_tokenizer_json(words.iter().map(String::as_str))?;
    let vocab = PromptTokenizer::from_json(&tokenizer, 77)?.vocab_size();
    Ok((tokenizer, vocab))
}

/// The tiny model over the simulator's prompt vocabulary.
pub fn tiny_model_files(seed: u64) -> Result<Vec<(&'static str, Vec<u8>)>, TrainError> {
    let (tokenizer, vocab) = simulator_tokenizer()?;
    random_model_files(&ClipSpec::tiny(vocab), tokenizer, seed)
}

/// ViT-B/32's shape with the tiny vocabulary (the text tower's cost barely depends on it).
pub fn vit_b32_model_files(seed: u64) -> Result<Vec<(&'static str, Vec<u8>)>, TrainError> {
    let (tokenizer, vocab) = simulator_tokenizer()?;
    random_model_files(&ClipSpec::vit_b32(vocab), tokenizer, seed)
}

/// Writes a model directory's files under `url`.
pub async fn write_model_files(
    url: &str,
    files: Vec<(&'static str, Vec<u8>)>,
) -> Result<(), TrainError> {
    let root = ObjectRoot::open(url)?;
    // Weights first, config last: a directory with a config is complete.
    let mut files = files;
    files.sort_by_key(|(name, _)| *name == CONFIG_FILE);
    for (name, bytes) in files {
        root.put(name, bytes).await?;
    }
    Ok(())
}

/// Reads the files of a model directory held in memory (tests and freshly built models).
pub fn files_from_memory(files: &[(&'static str, Vec<u8>)]) -> Result<ModelFiles, TrainError> {
    let map: HashMap<&str, &Vec<u8>> = files.iter().map(|(n, b)| (*n, b)).collect();
    let get = |name: &str| {
        map.get(name)
            .map(|b| (*b).clone())
            .ok_or_else(|| TrainError::MissingFile {
                path: name.to_owned(),
            })
    };
    Ok(ModelFiles {
        config: get(CONFIG_FILE)?,
        tokenizer: get(TOKENIZER_FILE)?,
        weights: Weights::Bytes(get(WEIGHTS_FILE)?),
    })
}
