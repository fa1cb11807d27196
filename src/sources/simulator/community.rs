//! Who is in the simulated community: creators with power-law audiences, ordinary viewers, and
//! a small share of spam remixers. Per-user facts are derived from a hash of (seed, user) so the
//! community needs no memory proportional to the number of users.

use rand::Rng;

use super::scenario::Scenario;

pub struct Community {
    seed: u64,
    users: u64,
    creators: u64,
    followers: Vec<u64>,
    spam_threshold: u64,
}

impl Community {
    pub fn new<R: Rng>(scenario: &Scenario, rng: &mut R) -> Self {
        let creators = ((scenario.users as f64 * scenario.creator_share).ceil() as u64)
            .clamp(1, scenario.users);
        let cap = scenario.users.saturating_sub(1) as f64;
        let followers = (0..creators)
            .map(|_| {
                // Lomax: scale · (U^(-1/α) − 1), heavy-tailed with a mass of small accounts.
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                let f =
                    scenario.follower_scale * (u.powf(-1.0 / scenario.follower_pareto_alpha) - 1.0);
                f.min(cap).floor() as u64
            })
            .collect();
        Self {
            seed: scenario.seed,
            users: scenario.users,
            creators,
            followers,
            spam_threshold: (scenario.spam_remixer_share * u64::MAX as f64) as u64,
        }
    }

    pub fn users(&self) -> u64 {
        self.users
    }

    pub fn creators(&self) -> u64 {
        self.creators
    }

    /// Creators are users `0..creators`; ids do not reveal it.
    pub fn followers(&self, creator: u64) -> u64 {
        self.followers.get(creator as usize).copied().unwrap_or(0)
    }

    pub fn is_spam_remixer(&self, user: u64) -> bool {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..].copy_from_slice(&user.to_le_bytes());
        xxhash_rust::xxh3::xxh3_64(&key) < self.spam_threshold
    }

    /// A viewer for an image of `creator`: any user but the creator.
    pub fn random_viewer<R: Rng>(&self, rng: &mut R, creator: u64) -> u64 {
        let viewer = rng.random_range(0..self.users - 1);
        if viewer >= creator {
            viewer + 1
        } else {
            viewer
        }
    }
}
