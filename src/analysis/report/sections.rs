//! What each section of the report shows, computed from the query tables.

use std::collections::BTreeMap;

use super::charts::{Axes, Series, bars, lines};
use super::columns::{day, floats, ints, texts, times};
use super::page::{Section, figure, paragraph, table};
use crate::analysis::{AnalysisError, QueryTables, TRIPLETS};

fn count(map: &mut BTreeMap<String, f64>, key: Option<String>, by: f64) {
    if let Some(key) = key {
        *map.entry(key).or_default() += by;
    }
}

/// Publishes, remixes and triplets per day, and dead letters per day and reason.
pub fn per_day(tables: &QueryTables) -> Result<Section, AnalysisError> {
    let images = tables.frame("images");
    let published = times(images, "published_at");
    let remixes = ints(images, "remixes");
    let (mut publishes, mut remixed, mut triplets) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (i, at) in published.iter().enumerate() {
        let Some(day) = at.and_then(day) else {
            continue;
        };
        count(&mut publishes, Some(day.clone()), 1.0);
        count(&mut remixed, Some(day), remixes[i].unwrap_or(0) as f64);
    }
    for dt in texts(tables.frame(TRIPLETS), "dt") {
        count(&mut triplets, dt.map(str::to_owned), 1.0);
    }
    let days: Vec<String> = publishes
        .keys()
        .chain(triplets.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let on =
        |map: &BTreeMap<String, f64>| days.iter().map(|d| *map.get(d).unwrap_or(&0.0)).collect();
    let activity = bars(
        &Axes {
            figure: "per-day",
            x: "day (UTC) the picture was published",
            y: "count",
        },
        &days,
        &[
            Series {
                name: "pictures in the catalog".into(),
                values: on(&publishes),
            },
            Series {
                name: "their remixes".into(),
                values: on(&remixed),
            },
            Series {
                name: "triplets (dt)".into(),
                values: on(&triplets),
            },
        ],
    )?;
    let yields: Vec<f64> = days
        .iter()
        .map(|d| match publishes.get(d) {
            Some(&images) if images > 0.0 => triplets.get(d).unwrap_or(&0.0) / images,
            _ => 0.0,
        })
        .collect();
    let yield_plot = bars(
        &Axes {
            figure: "yield",
            x: "day (UTC)",
            y: "triplets per catalog picture",
        },
        &days,
        &[Series {
            name: "yield".into(),
            values: yields,
        }],
    )?;
    let letters = tables.frame("dead_letters");
    let mut by_reason: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (at, reason) in times(letters, "created_at")
        .into_iter()
        .zip(texts(letters, "reason"))
    {
        if let (Some(day), Some(reason)) = (at.and_then(day), reason) {
            *by_reason.entry((day, reason.to_owned())).or_default() += 1.0;
        }
    }
    let rows: Vec<Vec<String>> = days
        .iter()
        .map(|d| {
            vec![
                d.clone(),
                format!("{}", publishes.get(d).unwrap_or(&0.0)),
                format!("{}", remixed.get(d).unwrap_or(&0.0)),
                format!("{}", triplets.get(d).unwrap_or(&0.0)),
            ]
        })
        .collect();
    let letter_rows: Vec<Vec<String>> = by_reason
        .iter()
        .map(|((day, reason), n)| vec![day.clone(), reason.clone(), format!("{n}")])
        .collect();
    let mut body = figure(
        "per-day",
        "Pictures in the catalog by the day they were published, the remixes they received, and \
         the triplets of each dt= partition. The streaming ingest records every publish; batch \
         curation the pictures of the sessions it curated.",
        &activity,
    );
    body += &figure(
        "yield",
        "Yield: triplets per catalog picture, day by day.",
        &yield_plot,
    );
    body += &table(&["day", "pictures", "remixes", "triplets"], &rows);
    body += &paragraph("Dead letters by the day they were written and their reason:");
    body += &match letter_rows.is_empty() {
        true => paragraph("none"),
        false => table(&["day", "reason", "dead letters"], &letter_rows),
    };
    Ok(Section {
        id: "days",
        title: "Day by day",
        body,
    })
}

/// Pictures by how many views and remixes they collected (powers of two).
pub fn distributions(tables: &QueryTables) -> Result<Section, AnalysisError> {
    let images = tables.frame("images");
    let bucket = |n: i64| -> usize {
        match n {
            n if n <= 0 => 0,
            n => 1 + (63 - n.leading_zeros() as usize),
        }
    };
    let histogram = |values: Vec<Option<i64>>| {
        let mut counts = vec![0.0; 16];
        for n in values.into_iter().flatten() {
            counts[bucket(n).min(15)] += 1.0;
        }
        counts
    };
    let views = histogram(ints(images, "views"));
    let remixes = histogram(ints(images, "remixes"));
    let used = views
        .iter()
        .zip(&remixes)
        .rposition(|(v, r)| *v > 0.0 || *r > 0.0)
        .map_or(1, |last| last + 1);
    let labels: Vec<String> = (0..used)
        .map(|b| match b {
            0 => "0".into(),
            1 => "1".into(),
            b => format!("{}–{}", 1u64 << (b - 1), (1u64 << b) - 1),
        })
        .collect();
    let plot = bars(
        &Axes {
            figure: "distributions",
            x: "views or remixes of a picture",
            y: "pictures",
        },
        &labels,
        &[
            Series {
                name: "views".into(),
                values: views[..used].to_vec(),
            },
            Series {
                name: "remixes".into(),
                values: remixes[..used].to_vec(),
            },
        ],
    )?;
    Ok(Section {
        id: "distributions",
        title: "Views and remixes",
        body: figure(
            "distributions",
            "Pictures by the views and remixes they collected in all (the catalog's counters).",
            &plot,
        ),
    })
}

/// Triplets per split, with their clusters and held-out prompts.
pub fn splits(tables: &QueryTables) -> Result<Section, AnalysisError> {
    let triplets = tables.frame(TRIPLETS);
    let mut rows: BTreeMap<String, (f64, f64, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    let splits = texts(triplets, "split");
    let mut unique_flags: Vec<bool> = triplets
        .and_then(|f| f.column("unique_prompt").ok())
        .and_then(|c| c.bool().ok())
        .map(|c| c.iter().map(|b| b.unwrap_or(false)).collect())
        .unwrap_or_default();
    unique_flags.resize(splits.len(), false);
    for ((split, cluster), unique) in splits
        .into_iter()
        .zip(texts(triplets, "prompt_cluster"))
        .zip(unique_flags)
    {
        let entry = rows.entry(split.unwrap_or("?").to_owned()).or_default();
        entry.0 += 1.0;
        entry.1 += f64::from(u8::from(unique));
        if let Some(cluster) = cluster {
            entry.2.insert(cluster.to_owned());
        }
    }
    let total: f64 = rows.values().map(|r| r.0).sum();
    let names: Vec<String> = rows.keys().cloned().collect();
    let plot = bars(
        &Axes {
            figure: "splits",
            x: "split",
            y: "triplets",
        },
        &names,
        &[Series {
            name: "triplets".into(),
            values: rows.values().map(|r| r.0).collect(),
        }],
    )?;
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(split, (n, unique, clusters))| {
            vec![
                split.clone(),
                format!("{n}"),
                format!("{:.3}", n / total.max(1.0)),
                format!("{}", clusters.len()),
                format!("{unique}"),
            ]
        })
        .collect();
    let mut body = figure("splits", "Triplets per split.", &plot);
    body += &table(
        &[
            "split",
            "triplets",
            "share",
            "prompt clusters",
            "unique-prompt rows",
        ],
        &table_rows,
    );
    Ok(Section {
        id: "splits",
        title: "Split balance",
        body,
    })
}

/// One evaluation the `eval` stage recorded.
struct Evaluation {
    finished: i64,
    accuracy: f64,
    baseline: Option<f64>,
    model: String,
}

/// Accuracy of the reward models, run by run (the `eval` stage's records).
pub fn accuracy(tables: &QueryTables) -> Result<Section, AnalysisError> {
    let runs = tables.frame("runs");
    let mut evaluations: Vec<Evaluation> = Vec::new();
    for (((stage, status), metrics), finished) in texts(runs, "stage")
        .into_iter()
        .zip(texts(runs, "status"))
        .zip(texts(runs, "metrics"))
        .zip(times(runs, "finished_at"))
    {
        if stage != Some("eval") || status != Some("succeeded") {
            continue;
        }
        let Some(metrics) = metrics.and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        else {
            continue;
        };
        if let Some(accuracy) = metrics["accuracy"].as_f64() {
            evaluations.push(Evaluation {
                finished: finished.unwrap_or(0),
                accuracy,
                baseline: metrics["baseline_accuracy"].as_f64(),
                model: metrics["model"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    evaluations.sort_by_key(|e| e.finished);
    if evaluations.is_empty() {
        return Ok(Section {
            id: "accuracy",
            title: "Reward model",
            body: paragraph("No evaluation recorded in the catalog yet (the eval stage)."),
        });
    }
    let series = |name: &str, pick: fn(&Evaluation) -> Option<f64>| Series {
        name: name.into(),
        values: evaluations
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i as f64 + 1.0, pick(e)?)))
            .collect(),
    };
    let plot = lines(
        &Axes {
            figure: "accuracy",
            x: "evaluation run (oldest first)",
            y: "pairwise accuracy on test",
        },
        &[
            series("trained", |e| Some(e.accuracy)),
            series("untrained baseline", |e| e.baseline),
        ],
    )?;
    let rows: Vec<Vec<String>> = evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                format!("{}", i + 1),
                day(e.finished).unwrap_or_default(),
                format!("{:.3}", e.accuracy),
                e.baseline.map_or("".into(), |b| format!("{b:.3}")),
                e.model.clone(),
            ]
        })
        .collect();
    let mut body = figure(
        "accuracy",
        "Pairwise accuracy of the trained reward model and of its untrained baseline on the \
         test split, evaluation by evaluation.",
        &plot,
    );
    body += &table(&["run", "day", "trained", "baseline", "model"], &rows);
    Ok(Section {
        id: "accuracy",
        title: "Reward model",
        body,
    })
}

/// The fine-tuning section: what the catalog holds of it.
pub fn finetuning(tables: &QueryTables) -> Section {
    let runs = texts(tables.frame("runs"), "stage");
    let finetunes = runs.iter().filter(|s| **s == Some("finetune")).count();
    Section {
        id: "finetune",
        title: "Fine-tuning",
        body: paragraph(&format!(
            "{finetunes} fine-tuning runs recorded: generations of the base and the fine-tuned \
             model appear here once the finetune stage has run."
        )),
    }
}

/// Counts of the tables the report read.
pub fn overview(tables: &QueryTables) -> Section {
    let names = [
        TRIPLETS,
        "images",
        "dead_letters",
        "triplet_files",
        "runs",
        "models",
    ];
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            vec![
                (*name).to_owned(),
                tables
                    .frame(name)
                    .map_or("not read".into(), |f| f.height().to_string()),
            ]
        })
        .collect();
    let confidence = floats(tables.frame(TRIPLETS), "confidence");
    let mean = confidence.iter().flatten().sum::<f64>() / confidence.len().max(1) as f64;
    let mut body = table(&["table", "rows"], &rows);
    body += &paragraph(&format!(
        "Mean confidence of the kept pairs (posterior probability that the preferred picture's \
         remix rate is the higher): {mean:.3}."
    ));
    Section {
        id: "overview",
        title: "Overview",
        body,
    }
}
