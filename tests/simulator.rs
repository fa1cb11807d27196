//! The simulator is deterministic and its biases are really there: raw remix counts follow
//! followers and age, not only quality; reposts exist and are near their source in perceptual
//! hash; spam remixers, duplicates, late and corrupt deliveries show up.

use std::collections::HashMap;
use std::path::Path;

use image_hasher::{HashAlg, HasherConfig};
use social_reward::events::{Event, Timestamp, Validator};
use social_reward::sources::simulator::{Scenario, SimulateOptions, read_truth, simulate};

fn options(out: &Path, users: u64, days: f64, images: bool) -> SimulateOptions {
    SimulateOptions {
        out: out.to_path_buf(),
        scenario: Scenario {
            users,
            days,
            seed: 11,
            ..Scenario::default()
        },
        images,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka: None,
    }
}

fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let rel = entry.strip_prefix(dir).unwrap().display().to_string();
        out.push((rel, std::fs::read(&entry).unwrap()));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    simulate(&options(&a, 150, 1.0, true)).unwrap();
    simulate(&options(&b, 150, 1.0, true)).unwrap();
    let mut other = options(&c, 150, 1.0, true);
    other.scenario.seed = 12;
    simulate(&other).unwrap();
    let (fa, fb) = (files_under(&a), files_under(&b));
    assert!(
        fa.len() > 100,
        "events, truth, scenario and images: {}",
        fa.len()
    );
    assert_eq!(fa.len(), fb.len());
    for ((na, da), (nb, db)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        assert!(da == db, "{na} differs between identical runs");
    }
    let events = |d: &Path| std::fs::read(d.join("events.jsonl")).unwrap();
    assert_ne!(events(&a), events(&c));
}

struct Observed {
    views: u64,
    remixes: u64,
}

fn spearman(xs: &[f64], ys: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0;
            for k in i..=j {
                r[idx[k]] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (rx, ry) = (ranks(xs), ranks(ys));
    let n = xs.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn raw_remix_counts_carry_follower_and_age_bias_and_some_quality() {
    let dir = tempfile::tempdir().unwrap();
    let summary = simulate(&options(dir.path(), 3_000, 2.0, false)).unwrap();
    assert!(summary.counts.images > 3_000, "{:?}", summary.counts);
    assert!(summary.counts.duplicate_deliveries > 0);
    assert!(summary.counts.late_deliveries > 0);
    assert!(summary.counts.corrupt_lines > 0);
    assert!(summary.counts.spam_remixes > 0);

    let validator = Validator::new(Default::default(), Timestamp::now()).unwrap();
    let data = std::fs::read(&summary.events).unwrap();
    let mut per_image: HashMap<String, Observed> = HashMap::new();
    let mut per_user: HashMap<String, (u64, u64)> = HashMap::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match validator.parse(line) {
            Ok(Event::View(v)) => {
                per_image
                    .entry(v.image_id.to_string())
                    .or_insert(Observed {
                        views: 0,
                        remixes: 0,
                    })
                    .views += 1;
                per_user.entry(v.viewer_id.to_string()).or_default().0 += 1;
            }
            Ok(Event::Remix(r)) => {
                per_image
                    .entry(r.image_id.to_string())
                    .or_insert(Observed {
                        views: 0,
                        remixes: 0,
                    })
                    .remixes += 1;
                per_user.entry(r.remixer_id.to_string()).or_default().1 += 1;
            }
            _ => {}
        }
    }
    let truth = read_truth(&summary.truth).unwrap();
    let ids = truth.column("image_id").unwrap().str().unwrap().clone();
    let quality = truth.column("quality").unwrap().f64().unwrap().clone();
    let followers = truth
        .column("creator_followers")
        .unwrap()
        .u64()
        .unwrap()
        .clone();
    let published = truth
        .column("published_at")
        .unwrap()
        .cast(&polars::prelude::DataType::Int64)
        .unwrap();
    let published = published.i64().unwrap().clone();
    let repost_of = truth.column("repost_of").unwrap().str().unwrap().clone();
    let phash = truth.column("phash").unwrap().u64().unwrap().clone();

    let (mut remixes, mut rate, mut q, mut f, mut age) = (vec![], vec![], vec![], vec![], vec![]);
    let end = Timestamp::parse_rfc3339("2026-01-03T00:00:00Z")
        .unwrap()
        .as_micros();
    for i in 0..truth.height() {
        let id = ids.get(i).unwrap();
        let obs = per_image.get(id).map_or((0, 0), |o| (o.views, o.remixes));
        remixes.push(obs.1 as f64);
        rate.push((obs.1 as f64 + 0.5) / (obs.0 as f64 + 10.0));
        q.push(quality.get(i).unwrap());
        f.push(followers.get(i).unwrap() as f64);
        age.push((end - published.get(i).unwrap()) as f64);
    }
    let by_followers = spearman(&f, &remixes);
    let by_age = spearman(&age, &remixes);
    let by_quality = spearman(&q, &remixes);
    let rate_by_quality = spearman(&q, &rate);
    eprintln!(
        "spearman remixes~followers {by_followers:.3} ~age {by_age:.3} ~quality {by_quality:.3}; rate~quality {rate_by_quality:.3}"
    );
    assert!(
        by_followers > 0.25,
        "followers drive raw remixes: {by_followers}"
    );
    assert!(by_age > 0.1, "older images have more remixes: {by_age}");
    assert!(
        by_quality > 0.1 && by_quality < 0.6,
        "quality matters but does not dominate raw counts: {by_quality}"
    );
    assert!(
        rate_by_quality > by_quality,
        "view-normalised rates reveal quality better"
    );

    // Spam remixers remix about everything they view; ordinary users rarely do.
    let heavy: Vec<_> = per_user
        .values()
        .filter(|(views, remixes)| *views >= 20 && *remixes as f64 >= 0.9 * *views as f64)
        .collect();
    assert!(!heavy.is_empty(), "spam remixers are visible");
    assert!((heavy.len() as f64) < 0.05 * per_user.len() as f64);

    // Reposts exist, point at real images, and their synthetic hash is near the source's.
    let index: HashMap<&str, usize> = (0..truth.height())
        .map(|i| (ids.get(i).unwrap(), i))
        .collect();
    let mut reposts = 0;
    for i in 0..truth.height() {
        if let Some(source) = repost_of.get(i) {
            reposts += 1;
            let s = index[source];
            assert!((phash.get(i).unwrap() ^ phash.get(s).unwrap()).count_ones() <= 3);
            assert_eq!(
                quality.get(i),
                quality.get(s),
                "a repost is the same picture"
            );
        }
    }
    assert!(reposts > 20, "reposts: {reposts}");
}

#[test]
fn reposted_pictures_are_near_their_source_in_gradient_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 400, 1.0, true);
    opts.scenario.repost_rate = 0.2;
    opts.image_size = 128;
    let summary = simulate(&opts).unwrap();
    let truth = read_truth(&summary.truth).unwrap();
    let ids = truth.column("image_id").unwrap().str().unwrap().clone();
    let repost_of = truth.column("repost_of").unwrap().str().unwrap().clone();
    let hasher = HasherConfig::new()
        .hash_alg(HashAlg::Gradient)
        .resize_filter(image_hasher::FilterType::Triangle)
        .to_hasher();
    let images = summary.images.unwrap();
    let hash = |id: &str| {
        let img = image::open(images.join(format!("{id}.png"))).unwrap();
        hasher.hash_image(&img)
    };
    let (mut near, mut far) = (vec![], vec![]);
    for i in 0..truth.height() {
        let id = ids.get(i).unwrap();
        if let Some(source) = repost_of.get(i) {
            near.push(hash(id).dist(&hash(source)));
        } else if i + 7 < truth.height() {
            far.push(hash(id).dist(&hash(ids.get(i + 7).unwrap())));
        }
    }
    near.sort();
    far.sort();
    assert!(near.len() >= 10, "reposts: {}", near.len());
    let near_p95 = near[near.len() * 95 / 100];
    let far_p5 = far[far.len() * 5 / 100];
    eprintln!("repost distance p95 {near_p95}, distinct-image distance p5 {far_p5}");
    assert!(near_p95 < far_p5, "reposts separate from distinct images");
}
