//! Temporary stub until the perceptual hash module lands.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("image {0} is larger than the {1}-byte limit")]
    TooLarge(String, u64),
    #[error("image {0} has {1}x{2} pixels, over the limit")]
    TooManyPixels(String, u32, u32),
    #[error("image {0} could not be decoded: {1}")]
    Corrupt(String, String),
}
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhashConfig {
    pub max_bytes: u64,
    pub max_pixels: u64,
    pub max_distance: u32,
}
impl Default for PhashConfig {
    fn default() -> Self {
        Self {
            max_bytes: 32 << 20,
            max_pixels: 64 << 20,
            max_distance: 10,
        }
    }
}
pub struct PerceptualHasher {
    hasher: image_hasher::Hasher,
}
impl PerceptualHasher {
    pub fn new(_config: PhashConfig) -> Self {
        Self {
            hasher: image_hasher::HasherConfig::new()
                .hash_alg(image_hasher::HashAlg::Gradient)
                .to_hasher(),
        }
    }
    pub fn hash_bytes(&self, name: &str, bytes: &[u8]) -> Result<u64, HashError> {
        let img = image::load_from_memory(bytes)
            .map_err(|e| HashError::Corrupt(name.into(), e.to_string()))?;
        Ok(self.hash_image(&img))
    }
    pub fn hash_image(&self, image: &image::DynamicImage) -> u64 {
        let h = self.hasher.hash_image(image);
        h.as_bytes()
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }
}
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}
pub struct NearDuplicateIndex {
    max: u32,
    all: Vec<(u64, u64)>,
}
impl NearDuplicateIndex {
    pub fn new(max_distance: u32) -> Self {
        Self {
            max: max_distance,
            all: Vec::new(),
        }
    }
    pub fn insert(&mut self, id: u64, hash: u64) -> Option<u64> {
        let found = self
            .all
            .iter()
            .find(|(_, h)| hamming(*h, hash) <= self.max)
            .map(|(i, _)| *i);
        self.all.push((id, hash));
        found
    }
    pub fn len(&self) -> usize {
        self.all.len()
    }
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}
