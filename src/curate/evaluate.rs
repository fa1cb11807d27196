//! Curation measured against the simulator's hidden ground truth, next to a naive baseline that
//! pairs any two images of a prompt and lets the one with more raw remixes win.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;
use serde::Serialize;

use super::triplets::Triplet;

struct TruthImage {
    quality: f64,
    published_at: i64,
    cluster: String,
    /// The original picture this one is (itself for originals).
    root: String,
    split_creator: String,
}

pub struct Truth {
    images: HashMap<String, TruthImage>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Quality {
    pub triplets: u64,
    /// Share of triplets whose preferred image has the higher latent quality.
    pub precision: f64,
    /// Triplets per published image.
    pub yield_per_image: f64,
    /// Share of triplets whose preferred image was published first (0.5 = no age bias).
    pub age_bias: f64,
    /// Largest share of triplets from one ground-truth prompt cluster.
    pub largest_cluster_share: f64,
    /// Triplets with the same picture (reposts resolved to their original) on both sides.
    pub near_duplicate_pairs: u64,
    /// Pictures used under two or more image ids (an original and its repost, say).
    pub pictures_used_twice: u64,
    /// Pictures (reposts resolved to their original) that appear in more than one split.
    pub pictures_in_two_splits: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    pub published_images: u64,
    pub curated: Quality,
    pub naive_baseline: Quality,
}

/// What the naive baseline needs of every published image: its prompt and all its remixes.
#[derive(Default)]
pub struct RawCounts {
    pub images: HashMap<String, (Arc<str>, u32)>,
}

impl Truth {
    pub fn load(path: &Path) -> PolarsResult<Self> {
        let frame = crate::sources::simulator::read_truth(path)?;
        let ids = frame.column("image_id")?.str()?.clone();
        let creators = frame.column("creator_id")?.str()?.clone();
        let quality = frame.column("quality")?.f64()?.clone();
        let clusters = frame.column("prompt_cluster")?.str()?.clone();
        let repost_of = frame.column("repost_of")?.str()?.clone();
        let published = frame.column("published_at")?.cast(&DataType::Int64)?;
        let published = published.i64()?.clone();
        let mut images = HashMap::with_capacity(frame.height());
        for i in 0..frame.height() {
            let (Some(id), Some(q), Some(t)) = (ids.get(i), quality.get(i), published.get(i))
            else {
                continue;
            };
            images.insert(
                id.to_owned(),
                TruthImage {
                    quality: q,
                    published_at: t,
                    cluster: clusters.get(i).unwrap_or_default().to_owned(),
                    root: repost_of.get(i).unwrap_or(id).to_owned(),
                    split_creator: creators.get(i).unwrap_or_default().to_owned(),
                },
            );
        }
        Ok(Self { images })
    }

    fn quality_of(&self, pairs: &[(&str, &str, Option<&str>)], published_images: u64) -> Quality {
        let mut known = 0u64;
        let (mut correct, mut older, mut near_dups) = (0u64, 0u64, 0u64);
        let mut clusters: HashMap<&str, u64> = HashMap::new();
        let mut splits_of_picture: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut ids_of_picture: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (pos, neg, split) in pairs {
            let (Some(p), Some(n)) = (self.images.get(*pos), self.images.get(*neg)) else {
                continue;
            };
            known += 1;
            correct += u64::from(p.quality > n.quality);
            older += u64::from(p.published_at < n.published_at);
            *clusters.entry(p.cluster.as_str()).or_default() += 1;
            near_dups += u64::from(p.root == n.root);
            ids_of_picture
                .entry(p.root.as_str())
                .or_default()
                .insert(pos);
            ids_of_picture
                .entry(n.root.as_str())
                .or_default()
                .insert(neg);
            if let Some(split) = split {
                splits_of_picture
                    .entry(p.root.as_str())
                    .or_default()
                    .insert(split);
                splits_of_picture
                    .entry(n.root.as_str())
                    .or_default()
                    .insert(split);
            }
        }
        let share = |x: u64| {
            if known == 0 {
                0.0
            } else {
                x as f64 / known as f64
            }
        };
        Quality {
            triplets: known,
            precision: share(correct),
            yield_per_image: known as f64 / published_images.max(1) as f64,
            age_bias: share(older),
            largest_cluster_share: share(clusters.values().copied().max().unwrap_or(0)),
            near_duplicate_pairs: near_dups,
            pictures_used_twice: ids_of_picture.values().filter(|s| s.len() > 1).count() as u64,
            pictures_in_two_splits: splits_of_picture.values().filter(|s| s.len() > 1).count()
                as u64,
        }
    }

    pub fn evaluate(&self, triplets: &[Triplet], raw: &RawCounts) -> Evaluation {
        let published = raw.images.len() as u64;
        let curated: Vec<_> = triplets
            .iter()
            .map(|t| {
                (
                    t.pos_image_id.as_str(),
                    t.neg_image_id.as_str(),
                    Some(t.split.as_str()),
                )
            })
            .collect();
        let naive = naive_pairs(raw);
        let naive: Vec<_> = naive
            .iter()
            .map(|(p, n)| (p.as_str(), n.as_str(), None))
            .collect();
        let mut baseline = self.quality_of(&naive, published);
        // The baseline has no splits of its own; judge its leaks with the same creator split.
        baseline.pictures_in_two_splits = self.cross_split_pictures(&naive);
        Evaluation {
            published_images: published,
            curated: self.quality_of(&curated, published),
            naive_baseline: baseline,
        }
    }

    fn cross_split_pictures(&self, pairs: &[(&str, &str, Option<&str>)]) -> u64 {
        let rule = super::config::SplitRule::default();
        let mut splits: HashMap<&str, HashSet<super::config::Split>> = HashMap::new();
        for (pos, neg, _) in pairs {
            for id in [pos, neg] {
                if let Some(t) = self.images.get(*id) {
                    splits
                        .entry(t.root.as_str())
                        .or_default()
                        .insert(rule.split_of(&t.split_creator));
                }
            }
        }
        splits.values().filter(|s| s.len() > 1).count() as u64
    }
}

/// Every two images of one exact prompt, the one with more raw remixes preferred (ties
/// skipped). Groups are capped at 300 images (by id) to bound the quadratic pairing.
fn naive_pairs(raw: &RawCounts) -> Vec<(String, String)> {
    let mut groups: BTreeMap<&str, Vec<(&str, u32)>> = BTreeMap::new();
    for (id, (prompt, remixes)) in &raw.images {
        groups
            .entry(prompt.as_ref())
            .or_default()
            .push((id.as_str(), *remixes));
    }
    let mut pairs = Vec::new();
    for members in groups.values_mut() {
        members.sort();
        members.truncate(300);
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                let ((a, ra), (b, rb)) = (members[i], members[j]);
                if ra > rb {
                    pairs.push((a.to_owned(), b.to_owned()));
                } else if rb > ra {
                    pairs.push((b.to_owned(), a.to_owned()));
                }
            }
        }
    }
    pairs
}

impl Evaluation {
    /// The evaluation as a plain-text table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rows: [(&str, &Quality); 2] = [
            ("curated", &self.curated),
            ("naive baseline", &self.naive_baseline),
        ];
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>10} {:>10} {:>9} {:>13} {:>10} {:>12} {:>6}",
            "",
            "triplets",
            "precision",
            "yield/img",
            "age bias",
            "max cluster",
            "near-dups",
            "cross-split",
            "twice"
        );
        for (name, q) in rows {
            let _ = writeln!(
                out,
                "{:<16} {:>10} {:>10.4} {:>10.3} {:>9.3} {:>13.4} {:>10} {:>12} {:>6}",
                name,
                q.triplets,
                q.precision,
                q.yield_per_image,
                q.age_bias,
                q.largest_cluster_share,
                q.near_duplicate_pairs,
                q.pictures_in_two_splits,
                q.pictures_used_twice
            );
        }
        let _ = writeln!(out, "published images: {}", self.published_images);
        out
    }
}
