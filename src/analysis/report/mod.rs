//! The dataset's report: one self-contained HTML page with plots (inline SVG), tables and
//! sample pairs as thumbnails, computed from the same tables `query` reads.

mod bias;
mod charts;
mod columns;
mod page;
mod sections;
mod thumbs;

use std::time::Instant;

use serde::Serialize;

use super::{AnalysisError, QueryTables, TRIPLETS};
use crate::store::{Catalog, ObjectRoot};
use columns::{floats, ints, texts};
use page::{Section, paragraph};

/// The page's name under the output root.
pub const REPORT_FILE: &str = "index.html";

#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The curated dataset (triplets/split=…/dt=…).
    pub data: String,
    /// Root the triplets' picture paths are relative to (thumbnails); `None`: none drawn.
    pub images: Option<String>,
    /// Where index.html goes: a folder, file:// or s3:// URL.
    pub out: String,
    /// Sample pairs shown as thumbnails.
    pub samples: usize,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub page: String,
    pub bytes: usize,
    pub figures: usize,
    pub thumbnails: usize,
    pub triplets: usize,
    pub images: usize,
    pub seconds: f64,
}

pub async fn report(
    options: &ReportOptions,
    catalog: &Catalog,
) -> Result<ReportSummary, AnalysisError> {
    let started = Instant::now();
    let data = ObjectRoot::open(&options.data)?;
    let images = options
        .images
        .as_deref()
        .map(ObjectRoot::open)
        .transpose()?;
    let out = ObjectRoot::open(&options.out)?;
    let bar = crate::progress::bar(options.progress, 8, "writing the report");
    let tables = QueryTables::load(Some(&data), Some(catalog)).await?;
    bar.inc(1);
    let mut sections: Vec<Section> = vec![sections::overview(&tables)];
    type Make = fn(&QueryTables) -> Result<Section, AnalysisError>;
    let makers: [Make; 5] = [
        sections::per_day,
        sections::distributions,
        bias::bias,
        sections::splits,
        sections::accuracy,
    ];
    for make in makers {
        sections.push(make(&tables)?);
        bar.inc(1);
    }
    let (samples, thumbnails) = samples(&tables, images.as_ref(), options.samples).await;
    sections.push(samples);
    sections.push(sections::finetuning(&tables));
    bar.inc(1);
    let html = page::page(
        "social-reward: the curated dataset",
        &format!(
            "{} — {} triplets, {} published pictures; catalog: {} ",
            options.data,
            tables.frame(TRIPLETS).map_or(0, |f| f.height()),
            tables.frame("images").map_or(0, |f| f.height()),
            catalog.backend(),
        ),
        &sections,
    );
    let figures = html.matches("<figure class=\"plot\"").count();
    let bytes = html.len();
    out.put(REPORT_FILE, html.into_bytes()).await?;
    bar.finish_and_clear();
    Ok(ReportSummary {
        page: out.url_of(REPORT_FILE),
        bytes,
        figures,
        thumbnails,
        triplets: tables.frame(TRIPLETS).map_or(0, |f| f.height()),
        images: tables.frame("images").map_or(0, |f| f.height()),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The most confident pair of each of the first prompt clusters, test split first: what the
/// community preferred, shown as people judge it.
async fn samples(
    tables: &QueryTables,
    images: Option<&ObjectRoot>,
    wanted: usize,
) -> (Section, usize) {
    let frame = tables.frame(TRIPLETS);
    let prompts = texts(frame, "prompt");
    let clusters = texts(frame, "prompt_cluster");
    let splits = texts(frame, "split");
    let confidence = floats(frame, "confidence");
    let (pos, neg) = (texts(frame, "pos_path"), texts(frame, "neg_path"));
    let counts = |name: &str| ints(frame, name);
    let (pos_views, pos_remixes) = (counts("pos_views"), counts("pos_remixes"));
    let (neg_views, neg_remixes) = (counts("neg_views"), counts("neg_remixes"));
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by(|&a, &b| {
        let rank = |i: usize| {
            (
                splits[i] != Some("test"),
                std::cmp::Reverse(confidence[i].map(f64::to_bits)),
            )
        };
        rank(a).cmp(&rank(b)).then(a.cmp(&b))
    });
    let mut shown_clusters = std::collections::HashSet::new();
    let mut body = String::new();
    let mut thumbnails = 0;
    for i in order {
        if shown_clusters.len() >= wanted {
            break;
        }
        if !shown_clusters.insert(clusters[i]) {
            continue;
        }
        let (Some(pos_path), Some(neg_path)) = (pos[i], neg[i]) else {
            continue;
        };
        let preferred = thumbs::Side {
            path: pos_path,
            views: pos_views[i],
            remixes: pos_remixes[i],
        };
        let ignored = thumbs::Side {
            path: neg_path,
            views: neg_views[i],
            remixes: neg_remixes[i],
        };
        let pictures = [
            thumbs::thumbnail(images, pos_path).await,
            thumbs::thumbnail(images, neg_path).await,
        ];
        thumbnails += pictures.iter().filter(|p| p.is_ok()).count();
        body += &thumbs::pair_html(
            prompts[i].unwrap_or(""),
            confidence[i],
            [(&preferred, &pictures[0]), (&ignored, &pictures[1])],
        );
    }
    if body.is_empty() {
        body = paragraph("No triplets yet.");
    }
    let section = Section {
        id: "samples",
        title: "Sample pairs",
        body,
    };
    (section, thumbnails)
}
