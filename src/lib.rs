//! social-reward: from implicit community feedback (views and remixes of AI-generated images) to
//! debiased preference triplets, a reward model trained on them, and a better image model.
//!
//! The modules follow the data: `sources` produce raw records, `events` decides what is valid,
//! `curate` turns events into triplets, `store` keeps state and results, `train` and `finetune`
//! consume the triplets, and `pipeline` runs the stages.

pub mod analysis;
pub mod bench;
pub mod curate;
pub mod events;
pub mod hashing;
pub mod pipeline;
pub mod progress;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod train;
