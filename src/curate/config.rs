//! Curation rules and their thresholds, the `[curate]` table of a pipeline file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::phash::PhashConfig;
use super::prompt::ClusterConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurateConfig {
    /// Views and remixes count only in `[published_at, published_at + window_hours]`. The
    /// default covers four exposure half-lives of the default scenario (94% of an image's views).
    pub window_hours: f64,
    /// The watermark trails the newest event time by this much; events later than that for a
    /// closed window are dead-lettered as `late`.
    pub allowed_lateness_hours: f64,
    /// A generation session is closed once its last image's window has closed and no further
    /// image of it can still be published: `session_grace_hours` after its last publish.
    pub session_grace_hours: f64,
    /// How long closed images are remembered after their session closed: events for them in
    /// that time are `late` or `outside_window`; later ones look like events of an unknown
    /// image. Should cover how long feeds keep showing an image (the default scenario: 48 h).
    pub remember_closed_hours: f64,
    /// Beta(prior_remixes, prior_non_remixes) prior on an image's remix rate.
    pub prior_remixes: f64,
    pub prior_non_remixes: f64,
    /// Keep a pair only when P(rate_pos > rate_neg) reaches this.
    pub min_confidence: f64,
    /// Both images need at least this many views in their window.
    pub min_views: u32,
    pub spam: SpamRule,
    /// No prompt cluster may contribute more than this share of one day's (`dt=`) triplets, and
    /// hence of any run's.
    pub max_cluster_share: f64,
    /// Also pair images of one creator across sessions of the same prompt cluster published
    /// within this many hours of each other (0 = only within a generation session).
    pub same_cluster_fallback_hours: f64,
    /// Reposts and prompt clusters are recognised across this many days of publishing. It bounds
    /// the memory of the near-duplicate index and the prompt clusterer, which would otherwise
    /// grow with every image and prompt of the stream; the catalog remembers older hashes.
    pub recall_days: u32,
    pub split: SplitRule,
    pub clustering: ClusterConfig,
    pub phash: PhashConfig,
    /// How the triplet files name their pictures: as published (`relative`, to the pictures'
    /// root), `absolute` paths on this machine, or `url`s.
    pub path_style: super::paths::PathStyle,
}

impl Default for CurateConfig {
    fn default() -> Self {
        Self {
            window_hours: 12.0,
            allowed_lateness_hours: 1.0,
            session_grace_hours: 2.0,
            remember_closed_hours: 72.0,
            prior_remixes: 1.0,
            prior_non_remixes: 20.0,
            min_confidence: 0.9,
            min_views: 20,
            spam: SpamRule::default(),
            max_cluster_share: 0.01,
            same_cluster_fallback_hours: 0.0,
            recall_days: 3,
            split: SplitRule::default(),
            clustering: ClusterConfig::default(),
            phash: PhashConfig::default(),
            path_style: super::paths::PathStyle::Relative,
        }
    }
}

/// A user is a spam remixer once they have viewed at least `min_views` images and remixed at
/// least `max_remix_share` of what they viewed, or remixed `blind_remixes` times more often than
/// they viewed anything at all. Their remixes are dropped from every pair decided afterwards
/// (their views still count: a view is exposure whoever makes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamRule {
    pub min_views: u32,
    pub max_remix_share: f64,
    pub blind_remixes: u32,
}

impl Default for SpamRule {
    fn default() -> Self {
        Self {
            min_views: 8,
            max_remix_share: 0.5,
            blind_remixes: 5,
        }
    }
}

impl SpamRule {
    pub fn is_spam(&self, views: u32, remixes: u32) -> bool {
        (views >= self.min_views && f64::from(remixes) >= self.max_remix_share * f64::from(views))
            || remixes >= views.saturating_add(self.blind_remixes)
    }
}

/// Splits are decided by a salted hash of the creator, so a creator — and every picture they
/// publish — stays in one split across runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitRule {
    pub val_share: f64,
    pub test_share: f64,
    pub salt: String,
}

impl Default for SplitRule {
    fn default() -> Self {
        Self {
            val_share: 0.1,
            test_share: 0.1,
            salt: "social-reward/split/v1".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl SplitRule {
    pub fn split_of(&self, creator_id: &str) -> Split {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.salt.as_bytes());
        hasher.update(b"\0");
        hasher.update(creator_id.as_bytes());
        let bytes = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        let unit = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        if unit < self.test_share {
            Split::Test
        } else if unit < self.test_share + self.val_share {
            Split::Val
        } else {
            Split::Train
        }
    }
}

/// How reposts and near-duplicate pictures are found.
#[derive(Debug, Clone)]
pub enum ImageDedup {
    /// Perceptual hashes of the pixels, fetched from the images root.
    Pixels,
    /// Hashes supplied in a Parquet file with `image_id` and `phash` (u64) columns, e.g. the
    /// simulator's truth table, for image-free runs at scale.
    Supplied(PathBuf),
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_rule_flags_remix_everything_and_blind_remixers_only() {
        let rule = SpamRule::default();
        assert!(rule.is_spam(20, 20));
        assert!(rule.is_spam(8, 4));
        assert!(rule.is_spam(0, 5), "remixes without views");
        assert!(!rule.is_spam(0, 1));
        assert!(!rule.is_spam(50, 3));
        assert!(!rule.is_spam(4, 3), "too little evidence");
    }

    #[test]
    fn splits_are_stable_and_near_their_shares() {
        let rule = SplitRule::default();
        assert_eq!(rule.split_of("u42"), rule.split_of("u42"));
        let mut counts = [0u32; 3];
        for i in 0..20_000 {
            counts[rule.split_of(&format!("u{i}")) as usize] += 1;
        }
        assert!((15_600..16_400).contains(&counts[0]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[1]), "{counts:?}");
        let salted = SplitRule {
            salt: "other".into(),
            ..SplitRule::default()
        };
        let moved = (0..1000)
            .filter(|i| rule.split_of(&format!("u{i}")) != salted.split_of(&format!("u{i}")))
            .count();
        assert!(moved > 100, "the salt reshuffles");
    }
}
