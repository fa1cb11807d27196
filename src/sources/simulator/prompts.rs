//! Prompts of the simulated community: fresh prompts composed from a vocabulary, a small set of
//! trending templates that many creators reuse, and near-duplicate variants of those templates.
//! The ground-truth prompt cluster is the hash of the template a prompt was made from.

use rand::Rng;
use rand::seq::IndexedRandom;

const SUBJECTS: &[&str] = &[
    "fox",
    "cat",
    "dog",
    "owl",
    "dragon",
    "castle",
    "mountain",
    "lighthouse",
    "robot",
    "city",
    "forest",
    "sun",
    "moon",
    "ship",
    "tree",
    "house",
    "bird",
    "whale",
    "tower",
    "garden",
    "astronaut",
    "samurai",
    "mushroom",
    "volcano",
    "bridge",
    "train",
    "lion",
    "jellyfish",
    "temple",
    "island",
];
const COLOURS: &[&str] = &[
    "red", "blue", "golden", "green", "purple", "silver", "orange", "pink", "teal", "crimson",
    "black", "white", "emerald", "amber",
];
const SETTINGS: &[&str] = &[
    "in a misty forest",
    "at sunset",
    "under the stars",
    "in the desert",
    "on a snowy peak",
    "by the sea",
    "in a neon city",
    "in the rain",
    "at dawn",
    "in a flower field",
    "on an alien planet",
    "in a cozy room",
    "underwater",
    "in the clouds",
    "in a cathedral",
];
const STYLES: &[&str] = &[
    "watercolor",
    "oil painting",
    "pixel art",
    "neon",
    "photorealistic",
    "studio ghibli style",
    "low poly",
    "ink sketch",
    "synthwave",
    "impressionist",
    "3d render",
    "concept art",
];
const EXTRAS: &[&str] = &[
    "highly detailed",
    "8k",
    "dramatic lighting",
    "soft light",
    "wide angle",
    "cinematic",
    "minimalist",
    "intricate",
    "vibrant colors",
    "bokeh",
];
const FILLERS: &[&str] = &[
    "very",
    "beautiful",
    "epic",
    "tiny",
    "giant",
    "ancient",
    "cute",
];

/// Every word a simulated prompt can contain (lowercase, sorted, without punctuation), plus
/// the numbers of trend tags: the tiny reward model's vocabulary.
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = [SUBJECTS, COLOURS, SETTINGS, STYLES, EXTRAS, FILLERS]
        .iter()
        .flat_map(|list| list.iter())
        .flat_map(|phrase| phrase.split(|c: char| !c.is_alphanumeric()))
        .chain(["a", "trending"])
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .chain((0..100).map(|d| d.to_string()))
        .collect();
    words.sort();
    words.dedup();
    words
}

/// A fresh prompt, e.g. "a golden fox at sunset, watercolor, highly detailed".
pub fn fresh_prompt<R: Rng>(rng: &mut R) -> String {
    let subject = pick(rng, SUBJECTS);
    let colour = pick(rng, COLOURS);
    let setting = pick(rng, SETTINGS);
    let style = pick(rng, STYLES);
    let mut prompt = format!("a {colour} {subject} {setting}, {style}");
    for _ in 0..rng.random_range(0..=2) {
        prompt.push_str(", ");
        prompt.push_str(pick(rng, EXTRAS));
    }
    prompt
}

/// Trending templates are fresh prompts dressed with a trend tag, fixed per seed.
pub fn trending_templates<R: Rng>(rng: &mut R, count: u32) -> Vec<String> {
    (0..count)
        .map(|i| format!("{}, trending #{}", fresh_prompt(rng), i + 1))
        .collect()
}

/// A near-duplicate of `template`: the kinds of edits people make when they copy a prompt.
pub fn near_duplicate<R: Rng>(rng: &mut R, template: &str) -> String {
    let mut text = template.to_owned();
    let edits = rng.random_range(1..=2);
    for _ in 0..edits {
        text = match rng.random_range(0..6) {
            0 => text.to_uppercase(),
            1 => title_case(&text),
            2 => text.replace(", ", " , ").replace(' ', "  "),
            3 => format!("{}!!", text.trim_end_matches(['.', '!'])),
            4 => insert_filler(rng, &text),
            _ => drop_a_word(rng, &text),
        };
    }
    if text == template {
        text.push('.');
    }
    text
}

/// Ground-truth cluster id: hash of the template (or fresh prompt) a prompt came from.
pub fn cluster_id(template: &str) -> String {
    let hash = blake3::hash(template.as_bytes());
    format!("pc-{}", &hash.to_hex()[..16])
}

fn pick<'a, R: Rng>(rng: &mut R, words: &'a [&'a str]) -> &'a str {
    words.choose(rng).copied().unwrap_or("thing")
}

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn insert_filler<R: Rng>(rng: &mut R, text: &str) -> String {
    let mut words: Vec<&str> = text.split(' ').collect();
    let at = rng.random_range(0..=words.len());
    words.insert(at, pick(rng, FILLERS));
    words.join(" ")
}

fn drop_a_word<R: Rng>(rng: &mut R, text: &str) -> String {
    let mut words: Vec<&str> = text.split(' ').collect();
    // Keep the subject-bearing head of the prompt: drop only from the decorations after it.
    if words.len() > 6 {
        let at = rng.random_range(4..words.len());
        words.remove(at);
    }
    words.join(" ")
}

/// Zipf sampler over `n` ranks by inverse CDF on a precomputed table.
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: u32, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / f64::from(k).powf(s);
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.iter().map(|c| c / total).collect();
        Self { cumulative }
    }

    pub fn sample<R: Rng>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .partition_point(|&c| c < u)
            .min(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn near_duplicates_differ_in_text_but_keep_most_words() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let templates = trending_templates(&mut rng, 5);
        for template in &templates {
            for _ in 0..20 {
                let variant = near_duplicate(&mut rng, template);
                assert_ne!(&variant, template);
                let words = |t: &str| {
                    t.to_lowercase()
                        .split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(str::to_owned)
                        .collect::<std::collections::BTreeSet<_>>()
                };
                let (a, b) = (words(template), words(&variant));
                let shared = a.intersection(&b).count() as f64;
                assert!(
                    shared / a.union(&b).count() as f64 > 0.6,
                    "{template} / {variant}"
                );
            }
        }
    }

    #[test]
    fn zipf_favours_low_ranks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let zipf = Zipf::new(40, 1.1);
        let mut counts = [0u32; 40];
        for _ in 0..10_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > 5 * counts[20]);
    }
}
