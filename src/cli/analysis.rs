//! `query` and `report`: analysts' SQL over the curated triplets and the catalog, and the
//! dataset's HTML page.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use social_reward::analysis::{Format, QueryTables, ReportOptions, ReportSummary, write_frame};
use social_reward::store::{Catalog, DEFAULT_CATALOG_URL, ObjectRoot, redact_url};

#[derive(Args)]
pub struct QueryArgs {
    /// The SQL (polars SQL) over the tables triplets, images, dead_letters, triplet_files,
    /// runs, models, consumer_offsets and emissions.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    sql: Option<String>,
    /// Read the SQL from this file instead (e.g. one of sql/*.sql).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The curated dataset: the folder or URL curation wrote triplets/split=…/dt=… under.
    #[arg(long, default_value = "data/curated", value_name = "URL")]
    data: String,
    /// Catalog URL.
    #[arg(long, env = "SR_CATALOG__URL", default_value = DEFAULT_CATALOG_URL)]
    db: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the result here instead of stdout (a JSON summary line is printed).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// What `--out` wrote.
#[derive(Serialize)]
struct Written {
    out: String,
    format: &'static str,
    rows: usize,
    columns: Vec<String>,
}

pub async fn query(args: QueryArgs) -> Result<()> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the SQL in {}", file.display()))?,
        (None, None) => bail!("give the SQL, or --file with it"),
    };
    if args.format.is_binary() && args.out.is_none() {
        bail!("--format parquet needs --out FILE: Parquet is not for a terminal");
    }
    let data = ObjectRoot::open(&args.data)
        .with_context(|| format!("opening the dataset at {}", args.data))?;
    let catalog = open_existing_catalog(&args.db).await?;
    let mut tables = QueryTables::load(Some(&data), Some(&catalog)).await?;
    catalog.close().await;
    let mut frame = tables.query(&sql)?;
    match &args.out {
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            write_frame(&mut frame, args.format, &mut out)?;
        }
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            write_frame(&mut frame, args.format, &mut out)?;
            out.flush()?;
            let written = Written {
                out: path.display().to_string(),
                format: args.format.name(),
                rows: frame.height(),
                columns: frame
                    .get_column_names()
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
            };
            super::print(&written)?;
        }
    }
    Ok(())
}

/// A query reads: a SQLite catalog that does not exist is a mistyped path, not a new
/// database to create empty.
async fn open_existing_catalog(url: &str) -> Result<Catalog> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path != ":memory:" && !std::path::Path::new(path).exists() {
            bail!(
                "no catalog at {path}: give --db (or SR_CATALOG__URL) the catalog curation wrote \
                 to, e.g. sqlite:data/catalog.db after `run pipelines/local.toml`"
            );
        }
    }
    Catalog::open(url)
        .await
        .with_context(|| format!("opening the catalog {}", redact_url(url)))
}

#[derive(Args)]
pub struct ReportArgs {
    /// Where index.html goes: a folder, file:// or s3:// URL.
    #[arg(long, default_value = "data/report", value_name = "URL")]
    out: String,
    /// The curated dataset: the folder or URL curation wrote triplets/split=…/dt=… under.
    #[arg(long, default_value = "data/curated", value_name = "URL")]
    data: String,
    /// Root the triplets' pictures are relative to, for the sample pairs' thumbnails.
    #[arg(long, default_value = "data/sim/images", value_name = "URL")]
    images: String,
    /// Sample pairs shown as thumbnails.
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Catalog URL.
    #[arg(long, env = "SR_CATALOG__URL", default_value = DEFAULT_CATALOG_URL)]
    db: String,
}

pub async fn report(args: ReportArgs, progress: bool) -> Result<ReportSummary> {
    let catalog = open_existing_catalog(&args.db).await?;
    let options = ReportOptions {
        data: args.data,
        images: Some(args.images),
        out: args.out,
        samples: args.samples,
        progress,
    };
    let summary = social_reward::analysis::report(&options, &catalog).await;
    catalog.close().await;
    Ok(summary?)
}
