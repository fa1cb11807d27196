//! The optional fallback pairing: images of one creator from *different* generation sessions of
//! the same prompt cluster, published within a short time of each other. Same creator keeps the
//! follower base out of the comparison, same cluster the prompt, a short gap the audience and the
//! moment; it is off by default because it is weaker than pairing within one session.

use std::collections::{HashMap, VecDeque};

use crate::events::Timestamp;

use super::window::{ClosedImage, ClosedSession};

/// An eligible image remembered for pairing with the creator's next sessions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PooledImage {
    pub image: ClosedImage,
    pub generation_id: String,
}

/// Recent eligible images per (creator, prompt cluster), forgotten once older than the horizon.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FallbackPool {
    horizon_micros: i64,
    by_key: HashMap<(String, String), VecDeque<PooledImage>>,
    latest: Timestamp,
    since_sweep: usize,
}

/// Sessions between sweeps of keys that are never looked up again.
const SWEEP_EVERY: usize = 4096;

impl FallbackPool {
    /// `None` when the fallback is off (`hours` <= 0).
    pub fn new(hours: f64) -> Option<Self> {
        (hours > 0.0).then(|| Self {
            horizon_micros: Timestamp::from_hours_f64(hours),
            by_key: HashMap::new(),
            latest: Timestamp::default(),
            since_sweep: 0,
        })
    }

    /// Pairs (earlier image, index of an image of `session`) within the horizon, then remembers
    /// the session's eligible images for the sessions after it.
    pub fn match_and_remember(
        &mut self,
        cluster: &str,
        session: &ClosedSession,
        eligible: &[bool],
    ) -> Vec<(PooledImage, usize)> {
        let key = (session.creator_id.clone(), cluster.to_owned());
        let horizon = self.horizon_micros;
        let mut matches = Vec::new();
        let pool = self.by_key.entry(key).or_default();
        for (index, image) in session.images.iter().enumerate() {
            if !eligible[index] {
                continue;
            }
            let at = image.record.published_at;
            for earlier in pool.iter() {
                let gap = at.as_micros() - earlier.image.record.published_at.as_micros();
                if earlier.generation_id != session.generation_id && gap.abs() <= horizon {
                    matches.push((earlier.clone(), index));
                }
            }
        }
        for (image, ok) in session.images.iter().zip(eligible) {
            if *ok {
                pool.push_back(PooledImage {
                    image: image.clone(),
                    generation_id: session.generation_id.clone(),
                });
            }
            if image.record.published_at > self.latest {
                self.latest = image.record.published_at;
            }
        }
        let cutoff = self.latest.as_micros() - horizon;
        pool.retain(|p| p.image.record.published_at.as_micros() >= cutoff);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.by_key.retain(|_, pool| {
                pool.retain(|p| p.image.record.published_at.as_micros() >= cutoff);
                !pool.is_empty()
            });
        }
        matches
    }

    /// Images held, for tests and memory accounting.
    pub fn len(&self) -> usize {
        self.by_key.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::curate::window::ImageRecord;

    fn session(creator: &str, generation: &str, hour: f64, ids: &[&str]) -> ClosedSession {
        let base = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        ClosedSession {
            creator_id: creator.into(),
            generation_id: generation.into(),
            images: ids
                .iter()
                .map(|id| ClosedImage {
                    record: ImageRecord {
                        image_id: (*id).into(),
                        creator_id: creator.into(),
                        generation_id: generation.into(),
                        prompt: Arc::from("a fox"),
                        image_uri: format!("{id}.png"),
                        model: "m".into(),
                        creator_followers: 10,
                        published_at: base.plus_micros(Timestamp::from_hours_f64(hour)),
                        publish_event_id: format!("e-{id}"),
                    },
                    views: 100,
                    remixes: 5,
                    spam_remixes: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn pairs_only_the_same_creator_and_cluster_within_the_horizon() {
        let mut pool = FallbackPool::new(3.0).unwrap();
        assert!(FallbackPool::new(0.0).is_none());
        let first = session("c1", "g1", 0.0, &["a", "b"]);
        assert!(
            pool.match_and_remember("k", &first, &[true, false])
                .is_empty()
        );
        assert_eq!(pool.len(), 1, "only the eligible image is remembered");
        // Another creator, another cluster: nothing.
        let other_creator = session("c2", "g2", 1.0, &["x"]);
        assert!(
            pool.match_and_remember("k", &other_creator, &[true])
                .is_empty()
        );
        let other_cluster = session("c1", "g3", 1.0, &["y"]);
        assert!(
            pool.match_and_remember("k2", &other_cluster, &[true])
                .is_empty()
        );
        // Same creator and cluster two hours later: paired with "a".
        let second = session("c1", "g4", 2.0, &["c", "d"]);
        let matches = pool.match_and_remember("k", &second, &[true, true]);
        let pairs: Vec<(&str, usize)> = matches
            .iter()
            .map(|(p, i)| (p.image.record.image_id.as_str(), *i))
            .collect();
        assert_eq!(pairs, vec![("a", 0), ("a", 1)]);
        // Five hours after "a" is beyond the horizon; "c" and "d" (two hours old) still pair.
        let third = session("c1", "g5", 5.0, &["e"]);
        let matches = pool.match_and_remember("k", &third, &[true]);
        let earlier: Vec<&str> = matches
            .iter()
            .map(|(p, _)| p.image.record.image_id.as_str())
            .collect();
        assert_eq!(earlier, vec!["c", "d"]);
    }
}
