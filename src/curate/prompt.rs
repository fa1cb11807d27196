//! Temporary: exact-match clustering until the near-duplicate clusterer lands.
use std::collections::HashMap;
pub fn normalize(prompt: &str) -> String {
    prompt
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
pub fn prompt_key(normalized: &str) -> String {
    blake3::hash(normalized.as_bytes()).to_hex()[..16].to_owned()
}
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub min_jaccard: f64,
    pub bands: usize,
    pub rows: usize,
}
impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            min_jaccard: 0.75,
            bands: 16,
            rows: 4,
        }
    }
}
pub struct PromptClusterer {
    known: HashMap<String, String>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAssignment {
    pub prompt_key: String,
    pub cluster_id: String,
}
impl PromptClusterer {
    pub fn new(_config: ClusterConfig) -> Self {
        Self {
            known: HashMap::new(),
        }
    }
    pub fn assign(&mut self, prompt: &str) -> ClusterAssignment {
        let key = prompt_key(&normalize(prompt));
        let cluster = self
            .known
            .entry(key.clone())
            .or_insert_with(|| format!("pk-{key}"))
            .clone();
        ClusterAssignment {
            prompt_key: key,
            cluster_id: cluster,
        }
    }
    pub fn clusters(&self) -> usize {
        self.known.len()
    }
    pub fn distinct_prompts(&self) -> usize {
        self.known.len()
    }
}
