//! What the stream tests compare against: batch `curate` over the same events, with settings
//! that make a small simulated community close many sessions.

use std::collections::BTreeMap;
use std::path::Path;

use social_reward::curate::{CurateConfig, CurateOptions, CurateSummary, ImageDedup, curate};
use social_reward::events::{Limits, Timestamp};

/// Short windows so that a simulated day closes many sessions; low evidence bars so that a
/// small community still yields triplets.
pub fn config() -> CurateConfig {
    let mut config = CurateConfig {
        window_hours: 3.0,
        session_grace_hours: 1.0,
        allowed_lateness_hours: 0.5,
        min_views: 3,
        min_confidence: 0.6,
        max_cluster_share: 0.2,
        ..CurateConfig::default()
    };
    config.split.val_share = 0.2;
    config.split.test_share = 0.2;
    config
}

/// Every file under `root/triplets`, by relative path.
pub fn triplet_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.join("triplets")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Batch `curate` over `events` into `out`, without a catalog: what every stream must write.
pub async fn batch_curate(events: &Path, out: &Path) -> (CurateSummary, BTreeMap<String, Vec<u8>>) {
    let summary = curate(
        &CurateOptions {
            events: vec![events.to_path_buf()],
            images: None,
            out: out.display().to_string(),
            config: config(),
            limits: Limits::default(),
            now: Timestamp::now(),
            dedup_horizon_hours: 6.0,
            image_dedup: ImageDedup::Off,
            truth: None,
            run_id: "batch".into(),
            progress: false,
        },
        None,
    )
    .await
    .unwrap();
    (summary, triplet_files(out))
}
