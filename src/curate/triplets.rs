//! Triplet rows: the cluster cap, split marks, a stable order, and Parquet encoding.

use std::collections::{BTreeMap, HashMap, HashSet};

use polars::prelude::*;

use super::config::Split;
use super::paths::PicturePaths;

/// The first three columns are what the official Social Reward training code reads. `split`
/// and `dt` are the hive keys of the file's folder (`split=…/dt=…`), not columns: a column
/// beside a key of the same name makes pandas and pyarrow datasets refuse to merge the two
/// types (string_view vs dictionary), and the folder already says it.
pub const COLUMNS: &[&str] = &[
    "prompt",
    "pos_path",
    "neg_path",
    "pos_image_id",
    "neg_image_id",
    "creator_id",
    "generation_id",
    "prompt_cluster",
    "unique_prompt",
    "pos_views",
    "pos_remixes",
    "neg_views",
    "neg_remixes",
    "pos_rate",
    "neg_rate",
    "confidence",
    "window_hours",
    "pipeline_version",
];

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Triplet {
    pub prompt: String,
    pub pos_path: String,
    pub neg_path: String,
    pub pos_image_id: String,
    pub neg_image_id: String,
    pub creator_id: String,
    pub generation_id: String,
    pub prompt_cluster: String,
    pub split: Split,
    pub unique_prompt: bool,
    pub pos_views: u32,
    pub pos_remixes: u32,
    pub neg_views: u32,
    pub neg_remixes: u32,
    pub pos_rate: f64,
    pub neg_rate: f64,
    pub confidence: f64,
    pub window_hours: f64,
    pub pipeline_version: String,
    /// UTC date of the session's first publish: the `dt=` partition.
    pub dt: String,
}

impl Triplet {
    fn sort_key(&self) -> (Split, &str, &str, &str, &str, &str) {
        (
            self.split,
            &self.dt,
            &self.creator_id,
            &self.generation_id,
            &self.pos_image_id,
            &self.neg_image_id,
        )
    }
}

/// Keeps at most `c` triplets per prompt cluster, the largest `c` for which every cluster stays
/// within `max_share` of what is kept; within a cluster the most confident survive (ties by the
/// stable key). Returns how many were dropped.
pub fn apply_cluster_cap(triplets: &mut Vec<Triplet>, max_share: f64) -> usize {
    if triplets.is_empty() || max_share >= 1.0 {
        return 0;
    }
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for t in triplets.iter() {
        *sizes.entry(t.prompt_cluster.as_str()).or_default() += 1;
    }
    let sizes: Vec<usize> = sizes.into_values().collect();
    let kept_with = |cap: usize| sizes.iter().map(|&n| n.min(cap)).sum::<usize>();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    // kept_with(c) grows with c, the condition c <= share * kept_with(c) flips once: bisect.
    let (mut lo, mut hi) = (1usize, largest);
    if (lo as f64) > max_share * kept_with(lo) as f64 {
        // Even one per cluster exceeds the share (fewer than 1/share clusters): one each.
        hi = 1;
    }
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if mid as f64 <= max_share * kept_with(mid) as f64 {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let cap = lo;
    let before = triplets.len();
    triplets.sort_by(|a, b| {
        a.prompt_cluster
            .cmp(&b.prompt_cluster)
            .then(b.confidence.total_cmp(&a.confidence))
            .then_with(|| a.sort_key().cmp(&b.sort_key()))
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    triplets.retain(|t| {
        let n = seen.entry(t.prompt_cluster.clone()).or_default();
        *n += 1;
        *n <= cap
    });
    before - triplets.len()
}

/// Marks val/test triplets whose prompt cluster occurs neither in these train triplets nor,
/// by `in_earlier_train`, in train triplets written before.
pub fn mark_unique_prompts(triplets: &mut [Triplet], in_earlier_train: impl Fn(&str) -> bool) {
    let train: HashSet<String> = triplets
        .iter()
        .filter(|t| t.split == Split::Train)
        .map(|t| t.prompt_cluster.clone())
        .collect();
    for t in triplets.iter_mut() {
        t.unique_prompt = t.split != Split::Train
            && !train.contains(&t.prompt_cluster)
            && !in_earlier_train(&t.prompt_cluster);
    }
}

/// Groups rows by (split, dt) partition, each sorted by the stable key.
pub fn partition(mut triplets: Vec<Triplet>) -> BTreeMap<(Split, String), Vec<Triplet>> {
    triplets.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut parts: BTreeMap<(Split, String), Vec<Triplet>> = BTreeMap::new();
    for t in triplets {
        parts.entry((t.split, t.dt.clone())).or_default().push(t);
    }
    parts
}

/// `pictures` decides how `pos_path` and `neg_path` are written.
pub fn to_frame(rows: &[Triplet], pictures: &PicturePaths) -> PolarsResult<DataFrame> {
    fn col<T, F: Fn(&Triplet) -> T>(rows: &[Triplet], f: F) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    DataFrame::new_infer_height(vec![
        Column::new("prompt".into(), col(rows, |t| t.prompt.clone())),
        Column::new("pos_path".into(), col(rows, |t| pictures.show(&t.pos_path))),
        Column::new("neg_path".into(), col(rows, |t| pictures.show(&t.neg_path))),
        Column::new("pos_image_id".into(), col(rows, |t| t.pos_image_id.clone())),
        Column::new("neg_image_id".into(), col(rows, |t| t.neg_image_id.clone())),
        Column::new("creator_id".into(), col(rows, |t| t.creator_id.clone())),
        Column::new(
            "generation_id".into(),
            col(rows, |t| t.generation_id.clone()),
        ),
        Column::new(
            "prompt_cluster".into(),
            col(rows, |t| t.prompt_cluster.clone()),
        ),
        Column::new("unique_prompt".into(), col(rows, |t| t.unique_prompt)),
        Column::new("pos_views".into(), col(rows, |t| t.pos_views)),
        Column::new("pos_remixes".into(), col(rows, |t| t.pos_remixes)),
        Column::new("neg_views".into(), col(rows, |t| t.neg_views)),
        Column::new("neg_remixes".into(), col(rows, |t| t.neg_remixes)),
        Column::new("pos_rate".into(), col(rows, |t| t.pos_rate)),
        Column::new("neg_rate".into(), col(rows, |t| t.neg_rate)),
        Column::new("confidence".into(), col(rows, |t| t.confidence)),
        Column::new("window_hours".into(), col(rows, |t| t.window_hours)),
        Column::new(
            "pipeline_version".into(),
            col(rows, |t| t.pipeline_version.clone()),
        ),
    ])
}

/// Files with fewer rows than this are not compressed: a zstd context costs more to set up
/// than a page of a few rows could save (a stream cut into many partitions writes many such
/// files, and setting up contexts was the largest part of its commits).
const COMPRESSED_FROM_ROWS: usize = 256;
// Small files are written uncompressed by `store::parquet`.
const _: () = assert!(crate::store::parquet::SMALL_ROWS < COMPRESSED_FROM_ROWS);

/// Files with fewer rows than this encode their columns on the calling thread: handing a few
/// rows' columns to the thread pool and waiting for them back cost more than encoding them.
const PARALLEL_FROM_ROWS: usize = 16_384;

/// Parquet bytes for one partition; the same rows always give the same bytes.
pub fn encode_parquet(rows: &[Triplet], pictures: &PicturePaths) -> PolarsResult<Vec<u8>> {
    let mut frame = to_frame(rows, pictures)?;
    if let Some(bytes) = crate::store::parquet::small_uncompressed(&frame)? {
        return Ok(bytes);
    }
    let mut bytes = Vec::new();
    let compression = match rows.len() >= COMPRESSED_FROM_ROWS {
        true => ParquetCompression::Zstd(None),
        false => ParquetCompression::Uncompressed,
    };
    ParquetWriter::new(&mut bytes)
        .with_compression(compression)
        .set_parallel(rows.len() >= PARALLEL_FROM_ROWS)
        .finish(&mut frame)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triplet(cluster: &str, i: usize, confidence: f64) -> Triplet {
        Triplet {
            prompt: "p".into(),
            pos_path: format!("a{i}.png"),
            neg_path: format!("b{i}.png"),
            pos_image_id: format!("a{i}"),
            neg_image_id: format!("b{i}"),
            creator_id: format!("u{i}"),
            generation_id: format!("g{i}"),
            prompt_cluster: cluster.into(),
            split: Split::Train,
            unique_prompt: false,
            pos_views: 10,
            pos_remixes: 3,
            neg_views: 10,
            neg_remixes: 0,
            pos_rate: 0.2,
            neg_rate: 0.05,
            confidence,
            window_hours: 24.0,
            pipeline_version: "t".into(),
            dt: "2026-01-01".into(),
        }
    }

    #[test]
    fn cap_keeps_every_cluster_within_its_share_and_the_most_confident() {
        let mut rows: Vec<Triplet> = (0..300)
            .map(|i| triplet("big", i, i as f64 / 300.0))
            .collect();
        rows.extend((0..400).map(|i| triplet(&format!("c{i}"), 1000 + i, 0.9)));
        let dropped = apply_cluster_cap(&mut rows, 0.01);
        let big: Vec<_> = rows.iter().filter(|t| t.prompt_cluster == "big").collect();
        assert_eq!(dropped, 300 - big.len());
        assert!(
            big.len() as f64 <= 0.01 * rows.len() as f64,
            "{} of {}",
            big.len(),
            rows.len()
        );
        assert!(
            big.len() >= 4,
            "the cap is the largest that satisfies the share"
        );
        assert!(
            big.iter().all(|t| t.confidence > 0.95),
            "most confident kept"
        );
    }

    #[test]
    fn unique_prompt_marks_only_held_out_clusters() {
        let mut rows = vec![
            triplet("a", 0, 0.9),
            triplet("a", 1, 0.9),
            triplet("b", 2, 0.9),
        ];
        rows[1].split = Split::Test;
        rows[2].split = Split::Val;
        mark_unique_prompts(&mut rows, |_| false);
        assert_eq!(
            rows.iter().map(|t| t.unique_prompt).collect::<Vec<_>>(),
            [false, false, true]
        );
        mark_unique_prompts(&mut rows, |cluster| cluster == "b");
        assert!(!rows[2].unique_prompt, "b was in an earlier day's train");
    }

    #[test]
    fn parquet_bytes_are_deterministic_and_columns_ordered() {
        let rows: Vec<Triplet> = (0..50).map(|i| triplet("a", i, 0.9)).collect();
        let (a, b) = (
            encode_parquet(&rows, &PicturePaths::default()).unwrap(),
            encode_parquet(&rows, &PicturePaths::default()).unwrap(),
        );
        assert_eq!(a, b);
        let frame = to_frame(&rows, &PicturePaths::default()).unwrap();
        let names: Vec<&str> = frame
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, COLUMNS);
    }

    /// Files written before small ones skipped polars' estimate keep their content-addressed
    /// names: a restarted stream must find and reuse them.
    #[test]
    fn small_files_have_the_bytes_polars_writer_gave_them() {
        for n in [1, 3, 128, 200] {
            let rows: Vec<Triplet> = (0..n)
                .map(|i| triplet(&format!("c{}", i % 4), i, 0.5 + i as f64 / 1000.0))
                .collect();
            let mut by_polars = Vec::new();
            ParquetWriter::new(&mut by_polars)
                .with_compression(ParquetCompression::Uncompressed)
                .finish(&mut to_frame(&rows, &PicturePaths::default()).unwrap())
                .unwrap();
            assert_eq!(
                encode_parquet(&rows, &PicturePaths::default()).unwrap(),
                by_polars,
                "{n} rows"
            );
        }
    }
}
