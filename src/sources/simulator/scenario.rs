//! The knobs of the simulated community. Every field is documented here and in
//! `docs/simulator.md`; `pipelines/scenarios/*.toml` set them by name.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::events::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random choice; same seed and scenario give byte-identical outputs.
    pub seed: u64,
    /// Registered users (viewers, remixers, creators).
    pub users: u64,
    /// Length of the simulated period, in days.
    pub days: f64,
    /// Start of the simulated period (RFC 3339, UTC).
    pub start: String,

    /// Share of users who publish images.
    pub creator_share: f64,
    /// Tail index α of the Lomax (Pareto II) follower distribution; smaller is more unequal.
    pub follower_pareto_alpha: f64,
    /// Scale of the follower distribution (median ≈ scale·(2^{1/α} − 1)).
    pub follower_scale: f64,

    /// Images published per user per day, over the whole community.
    pub images_per_user_day: f64,
    /// Images per generation session, uniform in [min, max].
    pub session_min_images: u32,
    pub session_max_images: u32,
    /// A session's images are published over this many minutes (uniform offsets).
    pub session_spread_minutes: f64,
    /// Relative amplitude of the daily cycle of publishing (0 = flat).
    pub diurnal_amplitude: f64,

    /// Views per hour of a fresh image whose creator has no followers.
    pub view_rate_base: f64,
    /// Views grow as (1 + followers)^follower_exposure_exponent.
    pub follower_exposure_exponent: f64,
    /// Half-life of an image's view rate in the feed, in hours.
    pub exposure_half_life_hours: f64,
    /// σ of the log-normal per-image placement luck (mean 1).
    pub exposure_sigma: f64,
    /// Views stop after this many half-lives (keeps the number of live images bounded).
    pub max_age_half_lives: f64,

    /// σ of a session's mean quality and of an image's deviation from it (latent quality scale).
    pub session_quality_sigma: f64,
    pub image_quality_sigma: f64,
    /// Remix probability of a viewer: sigmoid(logit(remix_base_rate) + quality_effect · quality).
    pub remix_base_rate: f64,
    pub quality_effect: f64,
    /// Mean delay between a view and the remix it leads to, in minutes.
    pub remix_delay_minutes: f64,

    /// Share of sessions that use a trending prompt template instead of a fresh prompt.
    pub trending_prompt_share: f64,
    /// Number of trending templates; popularity follows Zipf with exponent `trending_zipf_s`.
    pub trending_templates: u32,
    pub trending_zipf_s: f64,
    /// Share of trending uses that are near-duplicate variants (case, punctuation, spacing, words).
    pub near_dup_prompt_rate: f64,

    /// Share of published images that are reposts of an earlier image by another creator.
    pub repost_rate: f64,
    /// Share of users who remix (almost) everything they view.
    pub spam_remixer_share: f64,
    pub spam_remix_probability: f64,

    /// Share of events delivered twice (producer retries), with the same event_id.
    pub duplicate_delivery_rate: f64,
    /// Share of events delivered late, after a uniform delay up to `late_delivery_max_hours`.
    pub late_delivery_rate: f64,
    pub late_delivery_max_hours: f64,
    /// Share of delivered lines that are corrupted (malformed, wrong type, unknown kind...).
    pub corrupt_line_rate: f64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            seed: 42,
            users: 20_000,
            days: 3.0,
            start: "2026-01-01T00:00:00Z".to_owned(),
            creator_share: 0.2,
            follower_pareto_alpha: 1.3,
            follower_scale: 20.0,
            images_per_user_day: 1.13,
            session_min_images: 2,
            session_max_images: 6,
            session_spread_minutes: 90.0,
            diurnal_amplitude: 0.3,
            view_rate_base: 2.0,
            follower_exposure_exponent: 0.5,
            exposure_half_life_hours: 6.0,
            exposure_sigma: 0.6,
            max_age_half_lives: 8.0,
            session_quality_sigma: 0.7,
            image_quality_sigma: 1.0,
            remix_base_rate: 0.04,
            quality_effect: 1.0,
            remix_delay_minutes: 20.0,
            trending_prompt_share: 0.3,
            trending_templates: 40,
            trending_zipf_s: 1.1,
            near_dup_prompt_rate: 0.5,
            repost_rate: 0.03,
            spam_remixer_share: 0.01,
            spam_remix_probability: 1.0,
            duplicate_delivery_rate: 0.001,
            late_delivery_rate: 0.0005,
            late_delivery_max_hours: 72.0,
            corrupt_line_rate: 0.0002,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing scenario {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("scenario knob {knob}: {why}")]
    Invalid { knob: &'static str, why: String },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ScenarioError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The scenario in `path` (or the built-in default) with the command line's or pipeline's
    /// overrides of its most used knobs.
    pub fn load_with_overrides(
        path: Option<&Path>,
        users: Option<u64>,
        days: Option<f64>,
        seed: Option<u64>,
    ) -> Result<Self, ScenarioError> {
        let mut scenario = match path {
            Some(path) => Self::load(path)?,
            None => Self::default(),
        };
        scenario.users = users.unwrap_or(scenario.users);
        scenario.days = days.unwrap_or(scenario.days);
        scenario.seed = seed.unwrap_or(scenario.seed);
        Ok(scenario)
    }

    pub fn start_ts(&self) -> Result<Timestamp, ScenarioError> {
        Timestamp::parse_rfc3339(&self.start).map_err(|e| ScenarioError::Invalid {
            knob: "start",
            why: e.to_string(),
        })
    }

    pub fn validate(&self) -> Result<(), ScenarioError> {
        fn check(ok: bool, knob: &'static str, why: &str) -> Result<(), ScenarioError> {
            if ok {
                Ok(())
            } else {
                Err(ScenarioError::Invalid {
                    knob,
                    why: why.to_owned(),
                })
            }
        }
        let share = |x: f64| (0.0..=1.0).contains(&x);
        let positive = |x: f64| x.is_finite() && x > 0.0;
        self.start_ts()?;
        check(self.users >= 2, "users", "at least 2")?;
        check(positive(self.days), "days", "must be > 0")?;
        check(
            share(self.creator_share) && self.creator_share > 0.0,
            "creator_share",
            "in (0, 1]",
        )?;
        check(
            positive(self.follower_pareto_alpha),
            "follower_pareto_alpha",
            "must be > 0",
        )?;
        check(
            positive(self.follower_scale),
            "follower_scale",
            "must be > 0",
        )?;
        check(
            positive(self.images_per_user_day),
            "images_per_user_day",
            "must be > 0",
        )?;
        check(
            self.session_min_images >= 1 && self.session_min_images <= self.session_max_images,
            "session_min_images",
            "1 <= min <= session_max_images",
        )?;
        check(
            self.session_spread_minutes >= 0.0,
            "session_spread_minutes",
            ">= 0",
        )?;
        check(
            share(self.diurnal_amplitude),
            "diurnal_amplitude",
            "in [0, 1]",
        )?;
        check(
            positive(self.view_rate_base),
            "view_rate_base",
            "must be > 0",
        )?;
        check(
            self.follower_exposure_exponent.is_finite(),
            "follower_exposure_exponent",
            "finite",
        )?;
        check(
            positive(self.exposure_half_life_hours),
            "exposure_half_life_hours",
            "> 0",
        )?;
        check(self.exposure_sigma >= 0.0, "exposure_sigma", ">= 0")?;
        check(
            positive(self.max_age_half_lives),
            "max_age_half_lives",
            "> 0",
        )?;
        check(
            self.session_quality_sigma >= 0.0,
            "session_quality_sigma",
            ">= 0",
        )?;
        check(
            self.image_quality_sigma >= 0.0,
            "image_quality_sigma",
            ">= 0",
        )?;
        check(
            self.remix_base_rate > 0.0 && self.remix_base_rate < 1.0,
            "remix_base_rate",
            "in (0, 1)",
        )?;
        check(self.quality_effect.is_finite(), "quality_effect", "finite")?;
        check(
            self.remix_delay_minutes >= 0.0,
            "remix_delay_minutes",
            ">= 0",
        )?;
        check(
            share(self.trending_prompt_share),
            "trending_prompt_share",
            "in [0, 1]",
        )?;
        check(self.trending_templates >= 1, "trending_templates", ">= 1")?;
        check(self.trending_zipf_s >= 0.0, "trending_zipf_s", ">= 0")?;
        check(
            share(self.near_dup_prompt_rate),
            "near_dup_prompt_rate",
            "in [0, 1]",
        )?;
        check(share(self.repost_rate), "repost_rate", "in [0, 1]")?;
        check(
            share(self.spam_remixer_share),
            "spam_remixer_share",
            "in [0, 1]",
        )?;
        check(
            share(self.spam_remix_probability),
            "spam_remix_probability",
            "in [0, 1]",
        )?;
        check(
            share(self.duplicate_delivery_rate),
            "duplicate_delivery_rate",
            "in [0, 1]",
        )?;
        check(
            share(self.late_delivery_rate),
            "late_delivery_rate",
            "in [0, 1]",
        )?;
        check(
            self.late_delivery_max_hours >= 0.0,
            "late_delivery_max_hours",
            ">= 0",
        )?;
        check(
            share(self.corrupt_line_rate),
            "corrupt_line_rate",
            "in [0, 1]",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_is_the_built_in_default_and_every_scenario_is_valid() {
        let default = Scenario::load(Path::new("pipelines/scenarios/default.toml")).unwrap();
        assert_eq!(default, Scenario::default());
        for entry in std::fs::read_dir("pipelines/scenarios").unwrap() {
            let path = entry.unwrap().path();
            let scenario = Scenario::load(&path).unwrap();
            scenario.validate().unwrap();
        }
    }

    #[test]
    fn nonsense_knobs_are_refused_by_name() {
        let scenario = Scenario {
            remix_base_rate: 1.5,
            ..Scenario::default()
        };
        let error = scenario.validate().unwrap_err().to_string();
        assert!(error.contains("remix_base_rate"), "{error}");
        assert!(Scenario::from_toml("user = 5").is_err(), "typos are errors");
    }
}
