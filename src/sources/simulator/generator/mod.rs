//! Generates the community's events in delivery order without materialising them.
//!
//! A single priority queue holds what happens next: the next generation session, each pending
//! publish, each live image's next view, pending remixes and delayed deliveries. Views of an image
//! are an inhomogeneous Poisson process whose rate halves every `exposure_half_life_hours`; its
//! arrivals are drawn one at a time by inverting the cumulative intensity, so an image costs one
//! queue entry however many views it gets, and memory is bounded by the images still in the feed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::f64::consts::LN_2;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};

use super::community::Community;
use super::prompts::{self, Zipf};
use super::scenario::{Scenario, ScenarioError};
use super::truth::TruthRow;
use crate::events::timestamp::{MICROS_PER_HOUR, MICROS_PER_SECOND};
use crate::events::{Event, Publish, Remix, Timestamp, View};
use crate::sinks::EventSink;

const MODELS: &[&str] = &["sdxl-1.0", "sd-1.5", "flux-schnell", "kandinsky-3"];
/// Reposts copy one of the most recent images; older ones have left the feed.
const REPOST_SOURCE_POOL: usize = 20_000;

/// What a published image looks like, for the renderer.
#[derive(Debug, Clone)]
pub struct PictureSpec {
    pub prompt: Arc<str>,
    pub render_seed: u64,
    pub quality: f64,
    /// Set for a repost: the re-upload's own seed for resizing, noise and re-encoding.
    pub repost_seed: Option<u64>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GeneratedCounts {
    pub sessions: u64,
    pub images: u64,
    pub reposts: u64,
    pub views: u64,
    pub remixes: u64,
    pub spam_remixes: u64,
    pub lines: u64,
    pub duplicate_deliveries: u64,
    pub late_deliveries: u64,
    pub corrupt_lines: u64,
}

struct Session {
    generation_id: String,
    creator: u64,
    creator_id: String,
    prompt: Arc<str>,
    prompt_cluster: Arc<str>,
    model: &'static str,
}

struct LiveImage {
    image_id: String,
    session: Arc<Session>,
    published_at: i64,
    quality: f64,
    /// Views per hour at publish time.
    initial_rate: f64,
    /// Cumulative intensity reached so far, and where the image leaves the feed.
    intensity: f64,
    intensity_cap: f64,
    pending_remixes: u32,
    views_done: bool,
}

enum Action {
    NextSession,
    Publish(Box<PendingPublish>),
    NextView(u64),
    Remix { image: u64, remixer: u64 },
    Deliver { key: String, line: Vec<u8> },
}

struct PendingPublish {
    number: u64,
    session: Arc<Session>,
    quality: f64,
    repost_of: Option<RecentImage>,
}

#[derive(Clone)]
struct RecentImage {
    image_id: String,
    creator: u64,
    spec: PictureSpec,
    quality: f64,
    phash: u64,
}

struct Pending {
    due: i64,
    seq: u64,
    action: Action,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap and the earliest (then first scheduled) must pop first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

pub struct Generator<'s> {
    scenario: &'s Scenario,
    rng: ChaCha8Rng,
    community: Community,
    templates: Vec<String>,
    template_clusters: Vec<Arc<str>>,
    zipf: Zipf,
    start: i64,
    end: i64,
    queue: BinaryHeap<Pending>,
    seq: u64,
    live: HashMap<u64, LiveImage>,
    recent: VecDeque<RecentImage>,
    next_image: u64,
    next_session: u64,
    next_event: u64,
    next_remix_image: u64,
    line: Vec<u8>,
    counts: GeneratedCounts,
}

/// A newly published image, handed to the caller for the truth table and the renderer.
pub struct Published {
    pub truth: TruthRow,
    pub picture: PictureSpec,
}

impl<'s> Generator<'s> {
    pub fn new(scenario: &'s Scenario) -> Result<Self, ScenarioError> {
        scenario.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let community = Community::new(scenario, &mut rng);
        let templates = prompts::trending_templates(&mut rng, scenario.trending_templates);
        let template_clusters = templates
            .iter()
            .map(|t| Arc::from(prompts::cluster_id(t)))
            .collect();
        let start = scenario.start_ts()?.as_micros();
        let end = start + (scenario.days * 24.0 * MICROS_PER_HOUR as f64) as i64;
        let mut generator = Self {
            zipf: Zipf::new(scenario.trending_templates, scenario.trending_zipf_s),
            scenario,
            rng,
            community,
            templates,
            template_clusters,
            start,
            end,
            queue: BinaryHeap::new(),
            seq: 0,
            live: HashMap::new(),
            recent: VecDeque::new(),
            next_image: 0,
            next_session: 0,
            next_event: 0,
            next_remix_image: 0,
            line: Vec::with_capacity(512),
            counts: GeneratedCounts::default(),
        };
        let first = generator.next_session_time(start);
        generator.schedule(first, Action::NextSession);
        Ok(generator)
    }

    pub fn start(&self) -> Timestamp {
        Timestamp::from_micros(self.start)
    }

    pub fn end(&self) -> Timestamp {
        Timestamp::from_micros(self.end)
    }

    pub fn counts(&self) -> &GeneratedCounts {
        &self.counts
    }

    pub fn live_images(&self) -> usize {
        self.live.len()
    }

    pub fn is_spam_remixer(&self, user: u64) -> bool {
        self.community.is_spam_remixer(user)
    }

    /// Advances to the next queued happening. Returns `Ok(None)` when the period is over and
    /// every delayed delivery has been made; otherwise the current simulated time and, for a
    /// publish, the image's truth.
    pub fn step<S: EventSink>(
        &mut self,
        sink: &mut S,
    ) -> Result<Option<(Timestamp, Option<Published>)>, S::Error> {
        let Some(Pending { due, action, .. }) = self.queue.pop() else {
            return Ok(None);
        };
        let mut published = None;
        match action {
            Action::NextSession => self.start_session(due),
            Action::Publish(pending) => published = Some(self.publish(due, *pending, sink)?),
            Action::NextView(image) => self.view(due, image, sink)?,
            Action::Remix { image, remixer } => self.remix(due, image, remixer, sink)?,
            Action::Deliver { key, line } => {
                self.counts.lines += 1;
                sink.deliver(&key, &line)?;
            }
        }
        Ok(Some((Timestamp::from_micros(due), published)))
    }

    fn schedule(&mut self, due: i64, action: Action) {
        self.seq += 1;
        self.queue.push(Pending {
            due,
            seq: self.seq,
            action,
        });
    }

    /// Thinning of a Poisson process whose rate follows a daily cycle peaking mid-afternoon.
    fn next_session_time(&mut self, after: i64) -> i64 {
        let s = self.scenario;
        let mean_session = f64::from(s.session_min_images + s.session_max_images) / 2.0;
        let per_hour = s.users as f64 * s.images_per_user_day / 24.0 / mean_session;
        let max_rate = per_hour * (1.0 + s.diurnal_amplitude);
        let mut t = after;
        loop {
            let gap_hours: f64 = Exp1.sample(&mut self.rng);
            t += (gap_hours / max_rate * MICROS_PER_HOUR as f64).max(1.0) as i64;
            let hour_of_day = t.rem_euclid(24 * MICROS_PER_HOUR) as f64 / MICROS_PER_HOUR as f64;
            let phase = 2.0 * std::f64::consts::PI * (hour_of_day - 9.0) / 24.0;
            let rate = per_hour * (1.0 + s.diurnal_amplitude * phase.sin());
            if self.rng.random::<f64>() * max_rate <= rate {
                return t;
            }
        }
    }

    fn start_session(&mut self, now: i64) {
        if now >= self.end {
            return;
        }
        let s = self.scenario;
        self.counts.sessions += 1;
        let creator = self.rng.random_range(0..self.community.creators());
        let (prompt, cluster): (String, Arc<str>) =
            if self.rng.random::<f64>() < s.trending_prompt_share {
                let k = self.zipf.sample(&mut self.rng);
                let text = if self.rng.random::<f64>() < s.near_dup_prompt_rate {
                    prompts::near_duplicate(&mut self.rng, &self.templates[k])
                } else {
                    self.templates[k].clone()
                };
                (text, self.template_clusters[k].clone())
            } else {
                let text = prompts::fresh_prompt(&mut self.rng);
                let cluster = Arc::from(prompts::cluster_id(&text));
                (text, cluster)
            };
        let model = MODELS[self.rng.random_range(0..MODELS.len())];
        let session = Arc::new(Session {
            generation_id: format!("g{}", self.next_session),
            creator,
            creator_id: format!("u{creator}"),
            prompt: Arc::from(prompt),
            prompt_cluster: cluster,
            model,
        });
        self.next_session += 1;
        let session_mean = s.session_quality_sigma * self.normal();
        let images = self
            .rng
            .random_range(s.session_min_images..=s.session_max_images);
        let spread = (s.session_spread_minutes * 60.0 * MICROS_PER_SECOND as f64) as i64;
        for i in 0..images {
            let offset = if i == 0 || spread == 0 {
                0
            } else {
                self.rng.random_range(0..spread)
            };
            let repost_of = if self.rng.random::<f64>() < s.repost_rate {
                self.pick_repost_source(creator)
            } else {
                None
            };
            let quality = match &repost_of {
                Some(source) => source.quality,
                None => session_mean + s.image_quality_sigma * self.normal(),
            };
            let number = self.next_image;
            self.next_image += 1;
            let pending = PendingPublish {
                number,
                session: session.clone(),
                quality,
                repost_of,
            };
            self.schedule(now + offset, Action::Publish(Box::new(pending)));
        }
        let next = self.next_session_time(now);
        self.schedule(next, Action::NextSession);
    }

    fn pick_repost_source(&mut self, creator: u64) -> Option<RecentImage> {
        if self.recent.is_empty() {
            return None;
        }
        for _ in 0..4 {
            let i = self.rng.random_range(0..self.recent.len());
            if self.recent[i].creator != creator {
                return Some(self.recent[i].clone());
            }
        }
        None
    }

    fn publish<S: EventSink>(
        &mut self,
        now: i64,
        pending: PendingPublish,
        sink: &mut S,
    ) -> Result<Published, S::Error> {
        let s = self.scenario;
        let PendingPublish {
            number,
            session,
            quality,
            repost_of,
        } = pending;
        let image_id = format!("i{number}");
        let followers = self.community.followers(session.creator);
        let exposure = (s.exposure_sigma * self.normal() - s.exposure_sigma.powi(2) / 2.0).exp();
        let initial_rate = s.view_rate_base
            * (1.0 + followers as f64).powf(s.follower_exposure_exponent)
            * exposure;
        let half_life = s.exposure_half_life_hours;
        let intensity_cap =
            initial_rate * half_life / LN_2 * (1.0 - (-s.max_age_half_lives * LN_2).exp());
        let (picture, phash) = match &repost_of {
            Some(source) => {
                self.counts.reposts += 1;
                let picture = PictureSpec {
                    repost_seed: Some(self.rng.random()),
                    ..source.spec.clone()
                };
                let flips = (0..3).fold(0u64, |mask, _| mask | 1 << self.rng.random_range(0..64));
                (picture, source.phash ^ flips)
            }
            None => (
                PictureSpec {
                    prompt: session.prompt.clone(),
                    render_seed: self.rng.random(),
                    quality,
                    repost_seed: None,
                },
                self.rng.random(),
            ),
        };
        if repost_of.is_none() {
            if self.recent.len() == REPOST_SOURCE_POOL {
                self.recent.pop_front();
            }
            self.recent.push_back(RecentImage {
                image_id: image_id.clone(),
                creator: session.creator,
                spec: picture.clone(),
                quality,
                phash,
            });
        }
        let event = Event::Publish(Box::new(Publish {
            event_id: self.new_event_id().into(),
            ts: Timestamp::from_micros(now),
            image_id: image_id.as_str().into(),
            creator_id: session.creator_id.as_str().into(),
            generation_id: session.generation_id.as_str().into(),
            prompt: session.prompt.as_ref().into(),
            image_uri: format!("{image_id}.png").into(),
            model: session.model.into(),
            creator_followers: followers,
        }));
        self.emit(now, &session.creator_id, &event, sink)?;
        self.counts.images += 1;
        let truth = TruthRow {
            image_id: image_id.clone(),
            creator_id: session.creator_id.clone(),
            generation_id: session.generation_id.clone(),
            quality,
            prompt_cluster: session.prompt_cluster.to_string(),
            repost_of: repost_of.map(|r| r.image_id),
            published_at: Timestamp::from_micros(now),
            creator_followers: followers,
            exposure,
            phash,
        };
        let mut live = LiveImage {
            image_id,
            session,
            published_at: now,
            quality,
            initial_rate,
            intensity: 0.0,
            intensity_cap,
            pending_remixes: 0,
            views_done: false,
        };
        if let Some(due) = self.next_view_time(&mut live) {
            self.live.insert(number, live);
            self.schedule(due, Action::NextView(number));
        }
        Ok(Published { truth, picture })
    }

    /// Next arrival of the view process: Λ(t) = r₀·h/ln2·(1 − 2^(−t/h)); draw Λ += Exp(1) and
    /// invert. `None` once the image has left the feed or the period is over.
    fn next_view_time(&mut self, image: &mut LiveImage) -> Option<i64> {
        let step: f64 = Exp1.sample(&mut self.rng);
        image.intensity += step;
        if image.intensity >= image.intensity_cap {
            return None;
        }
        let h = self.scenario.exposure_half_life_hours;
        let fraction = image.intensity * LN_2 / (image.initial_rate * h);
        let age_hours = -h * (1.0 - fraction).log2();
        let due = image.published_at + (age_hours * MICROS_PER_HOUR as f64) as i64;
        (due < self.end).then_some(due)
    }

    fn view<S: EventSink>(&mut self, now: i64, number: u64, sink: &mut S) -> Result<(), S::Error> {
        let Some(mut image) = self.live.remove(&number) else {
            return Ok(());
        };
        let viewer = self
            .community
            .random_viewer(&mut self.rng, image.session.creator);
        let event = Event::View(View {
            event_id: self.new_event_id().into(),
            ts: Timestamp::from_micros(now),
            image_id: image.image_id.as_str().into(),
            viewer_id: format!("u{viewer}").into(),
        });
        self.emit(now, &image.session.creator_id, &event, sink)?;
        self.counts.views += 1;

        let s = self.scenario;
        let remix_probability = if self.community.is_spam_remixer(viewer) {
            s.spam_remix_probability
        } else {
            let logit = (s.remix_base_rate / (1.0 - s.remix_base_rate)).ln()
                + s.quality_effect * image.quality;
            1.0 / (1.0 + (-logit).exp())
        };
        if self.rng.random::<f64>() < remix_probability {
            let delay: f64 = Exp1.sample(&mut self.rng);
            let due =
                now + (delay * s.remix_delay_minutes * 60.0 * MICROS_PER_SECOND as f64) as i64;
            if due < self.end {
                image.pending_remixes += 1;
                self.schedule(
                    due,
                    Action::Remix {
                        image: number,
                        remixer: viewer,
                    },
                );
            }
        }
        if let Some(due) = self.next_view_time(&mut image) {
            self.live.insert(number, image);
            self.schedule(due, Action::NextView(number));
        } else if image.pending_remixes > 0 {
            // Out of the feed, but remixes already decided still need the image's ids.
            image.views_done = true;
            self.live.insert(number, image);
        }
        Ok(())
    }

    fn remix<S: EventSink>(
        &mut self,
        now: i64,
        number: u64,
        remixer: u64,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let Some(image) = self.live.get_mut(&number) else {
            return Ok(());
        };
        image.pending_remixes -= 1;
        let (image_id, creator_id) = (image.image_id.clone(), image.session.creator_id.clone());
        if image.views_done && image.pending_remixes == 0 {
            self.live.remove(&number);
        }
        let remix_image_id = format!("r{}", self.next_remix_image);
        self.next_remix_image += 1;
        let event = Event::Remix(Remix {
            event_id: self.new_event_id().into(),
            ts: Timestamp::from_micros(now),
            image_id: image_id.into(),
            remixer_id: format!("u{remixer}").into(),
            remix_image_id: remix_image_id.into(),
        });
        self.emit(now, &creator_id, &event, sink)?;
        self.counts.remixes += 1;
        if self.community.is_spam_remixer(remixer) {
            self.counts.spam_remixes += 1;
        }
        Ok(())
    }

    fn new_event_id(&mut self) -> String {
        let id = format!("e{}", self.next_event);
        self.next_event += 1;
        id
    }

    fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }
}

mod delivery;
