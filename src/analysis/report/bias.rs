//! Bias before and after debiasing: how a picture's age and its creator's followers sway raw
//! remix counts, against how they sway which picture of a kept pair is the preferred one; and
//! prompt-cluster shares before and after the per-cluster cap.

use std::collections::HashMap;

use polars::prelude::DataFrame;

use super::charts::{Axes, Series, bars, lines};
use super::columns::{ints, texts, times};
use super::page::{Section, figure, table};
use crate::analysis::{AnalysisError, QueryTables, TRIPLETS};

/// Buckets of the bias plots.
const BIAS_BUCKETS: usize = 8;
/// Prompt clusters compared before and after the cap.
const TOP_CLUSTERS: usize = 12;

/// One property's two curves, over its equal-count buckets.
struct BiasCurves {
    /// Where each bucket after the first starts.
    edges: Vec<f64>,
    raw: Series<(f64, f64)>,
    kept: Series<(f64, f64)>,
}

/// Bucket edges at the quantiles of `values`, so each bucket holds about as many pictures.
fn quantile_edges(values: &[f64], buckets: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut edges: Vec<f64> = (1..buckets)
        .map(|k| sorted[(k * sorted.len() / buckets).min(sorted.len() - 1)])
        .collect();
    edges.dedup();
    edges
}

fn bucket_of(edges: &[f64], value: f64) -> usize {
    edges.partition_point(|edge| *edge <= value)
}

/// For one property of a picture: what raw remix counts say against what the triplets keep.
/// Raw: mean remixes per picture in each bucket, over the mean of all. Kept: how often a
/// picture of the bucket is the preferred one of its triplet, over one half. Both are 1 where
/// the property does not sway the signal.
fn bias_curve(
    property: &HashMap<&str, f64>,
    remixes: &HashMap<&str, f64>,
    triplets: Option<&DataFrame>,
) -> BiasCurves {
    let values: Vec<f64> = property.values().copied().collect();
    let edges = quantile_edges(&values, BIAS_BUCKETS);
    let buckets = edges.len() + 1;
    let (mut sum, mut n) = (vec![0.0; buckets], vec![0.0; buckets]);
    for (id, value) in property {
        let b = bucket_of(&edges, *value);
        sum[b] += remixes.get(id).copied().unwrap_or(0.0);
        n[b] += 1.0;
    }
    let overall = sum.iter().sum::<f64>() / n.iter().sum::<f64>().max(1.0);
    let raw = (0..buckets)
        .filter(|&b| n[b] > 0.0 && overall > 0.0)
        .map(|b| (b as f64, sum[b] / n[b] / overall))
        .collect();
    let (mut preferred, mut seen) = (vec![0.0; buckets], vec![0.0; buckets]);
    for (column, won) in [("pos_image_id", 1.0), ("neg_image_id", 0.0)] {
        for id in texts(triplets, column).into_iter().flatten() {
            if let Some(value) = property.get(id) {
                let b = bucket_of(&edges, *value);
                preferred[b] += won;
                seen[b] += 1.0;
            }
        }
    }
    let kept = (0..buckets)
        .filter(|&b| seen[b] > 0.0)
        .map(|b| (b as f64, preferred[b] / seen[b] / 0.5))
        .collect();
    BiasCurves {
        edges,
        raw: Series {
            name: "raw remixes".into(),
            values: raw,
        },
        kept: Series {
            name: "kept triplets".into(),
            values: kept,
        },
    }
}

/// Bias before and after debiasing: image age and creator followers against raw remixes and
/// against the kept pairs; prompt-cluster shares before and after the cap.
pub fn bias(tables: &QueryTables) -> Result<Section, AnalysisError> {
    let images = tables.frame("images");
    let triplets = tables.frame(TRIPLETS);
    let ids = texts(images, "image_id");
    let remixes: HashMap<&str, f64> = ids
        .iter()
        .zip(ints(images, "remixes"))
        .filter_map(|(id, n)| Some(((*id)?, n.unwrap_or(0) as f64)))
        .collect();
    let published = times(images, "published_at");
    let last = published.iter().flatten().max().copied().unwrap_or(0);
    let age: HashMap<&str, f64> = ids
        .iter()
        .zip(&published)
        .filter_map(|(id, at)| Some(((*id)?, (last - (*at)?) as f64 / 3.6e9)))
        .collect();
    let followers: HashMap<&str, f64> = ids
        .iter()
        .zip(ints(images, "creator_followers"))
        .filter_map(|(id, n)| Some(((*id)?, n? as f64)))
        .collect();
    let mut body = String::new();
    for (id, property, values, unit) in [
        (
            "bias-age",
            "picture age",
            &age,
            "hours before the last publish",
        ),
        (
            "bias-followers",
            "creator followers",
            &followers,
            "followers",
        ),
    ] {
        let BiasCurves { edges, raw, kept } = bias_curve(values, &remixes, triplets);
        let x = format!("{property} bucket (equal-count; edges below, {unit})");
        let plot = lines(
            &Axes {
                figure: id,
                x: &x,
                y: "relative to no bias (1)",
            },
            &[raw, kept],
        )?;
        let edges: Vec<String> = edges.iter().map(|e| format!("{e:.0}")).collect();
        body += &figure(
            id,
            &format!(
                "{property}: raw mean remixes per picture in each bucket over the mean of all \
                 (a naive ranking's bias), and how often a picture of the bucket is the \
                 preferred one of its triplet, over one half (what the triplets keep). \
                 Bucket edges: {}.",
                edges.join(", ")
            ),
            &plot,
        );
    }
    body += &cluster_shares(images, triplets)?;
    Ok(Section {
        id: "bias",
        title: "Bias before and after debiasing",
        body,
    })
}

fn cluster_shares(
    images: Option<&DataFrame>,
    triplets: Option<&DataFrame>,
) -> Result<String, AnalysisError> {
    let shares = |clusters: Vec<Option<&str>>| {
        let mut counts: HashMap<String, f64> = HashMap::new();
        let mut total = 0.0;
        for cluster in clusters.into_iter().flatten() {
            *counts.entry(cluster.to_owned()).or_default() += 1.0;
            total += 1.0;
        }
        counts.values_mut().for_each(|n| *n /= f64::max(total, 1.0));
        counts
    };
    let before = shares(texts(images, "prompt_cluster"));
    let after = shares(texts(triplets, "prompt_cluster"));
    let mut top: Vec<(&String, &f64)> = before.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    top.truncate(TOP_CLUSTERS);
    let names: Vec<String> = (1..=top.len()).map(|rank| rank.to_string()).collect();
    let plot = bars(
        &Axes {
            figure: "clusters",
            x: "prompt cluster, by rank among the catalog's pictures (table below)",
            y: "share",
        },
        &names,
        &[
            Series {
                name: "catalog pictures".into(),
                values: top.iter().map(|(_, s)| **s).collect(),
            },
            Series {
                name: "triplets".into(),
                values: top
                    .iter()
                    .map(|(c, _)| after.get(*c).copied().unwrap_or(0.0))
                    .collect(),
            },
        ],
    )?;
    // A cluster's name is a digest: its first prompt says what it is.
    let mut example: HashMap<&str, &str> = HashMap::new();
    for (cluster, prompt) in texts(images, "prompt_cluster")
        .into_iter()
        .zip(texts(images, "prompt"))
    {
        if let (Some(cluster), Some(prompt)) = (cluster, prompt) {
            example.entry(cluster).or_insert(prompt);
        }
    }
    let rows: Vec<Vec<String>> = top
        .iter()
        .enumerate()
        .map(|(rank, (cluster, share))| {
            vec![
                (rank + 1).to_string(),
                (*cluster).clone(),
                example
                    .get(cluster.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
                format!("{share:.4}"),
                format!("{:.4}", after.get(*cluster).copied().unwrap_or(0.0)),
            ]
        })
        .collect();
    let mut html = figure(
        "clusters",
        "Prompt-cluster shares before (the catalog's pictures) and after the per-cluster cap \
         (triplets).",
        &plot,
    );
    html += &table(
        &[
            "rank",
            "cluster",
            "a prompt of it",
            "pictures share",
            "triplets share",
        ],
        &rows,
    );
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_buckets_hold_about_as_many_each() {
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let edges = quantile_edges(&values, 4);
        assert_eq!(edges, [25.0, 50.0, 75.0]);
        let mut counts = [0; 4];
        for v in &values {
            counts[bucket_of(&edges, *v)] += 1;
        }
        assert_eq!(counts, [25; 4]);
    }

    #[test]
    fn an_unbiased_property_reads_one_on_both_curves() {
        // Remixes do not depend on the property; every triplet pairs two pictures of the same
        // bucket, preferred and ignored alike.
        let ids: Vec<String> = (0..80).map(|i| format!("i{i}")).collect();
        let property: HashMap<&str, f64> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), (i / 2) as f64))
            .collect();
        let remixes: HashMap<&str, f64> = ids.iter().map(|id| (id.as_str(), 3.0)).collect();
        let triplets = DataFrame::new_infer_height(vec![
            polars::prelude::Column::new(
                "pos_image_id".into(),
                ids.iter().step_by(2).cloned().collect::<Vec<_>>(),
            ),
            polars::prelude::Column::new(
                "neg_image_id".into(),
                ids.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>(),
            ),
        ])
        .unwrap();
        let BiasCurves { raw, kept, .. } = bias_curve(&property, &remixes, Some(&triplets));
        for (_, y) in raw.values.iter().chain(&kept.values) {
            assert!(
                (y - 1.0).abs() < 1e-9,
                "{raw:?} {kept:?}",
                raw = raw.values,
                kept = kept.values
            );
        }
    }
}
