//! A query's result as people and tools read it: a table on the terminal, CSV, JSON lines or
//! Parquet. Times print as RFC 3339 in UTC in every text format.

use std::io::Write;

use polars::prelude::*;

use super::AnalysisError;

/// How times print in CSV and JSON: what pandas, DuckDB and `date -d` all read.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for a terminal.
    #[default]
    Table,
    /// A header line, then one line per row.
    Csv,
    /// One JSON object per row (JSON lines).
    Json,
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Parquet => "parquet",
        }
    }

    /// Whether the output is bytes no terminal should be sent.
    pub fn is_binary(self) -> bool {
        self == Self::Parquet
    }
}

/// Writes `frame` to `out` as `format`.
pub fn write_frame(
    frame: &mut DataFrame,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AnalysisError> {
    let failed = |source| AnalysisError::Output {
        format: format.name(),
        source,
    };
    match format {
        Format::Table => writeln!(out, "{frame}")?,
        Format::Csv => CsvWriter::new(&mut *out)
            .include_header(true)
            .with_datetime_format(Some(TIME_FORMAT.into()))
            .finish(frame)
            .map_err(failed)?,
        Format::Json => {
            let mut texts = times_as_text(frame).map_err(failed)?;
            JsonWriter::new(&mut *out)
                .with_json_format(JsonFormat::JsonLines)
                .finish(&mut texts)
                .map_err(failed)?
        }
        Format::Parquet => {
            ParquetWriter::new(&mut *out)
                .finish(frame)
                .map_err(failed)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// JSON has no time type: times become RFC 3339 text, as in CSV.
fn times_as_text(frame: &DataFrame) -> PolarsResult<DataFrame> {
    let mut texts = frame.clone();
    for name in frame.get_column_names_owned() {
        let column = frame.column(&name)?;
        if matches!(column.dtype(), DataType::Datetime(..)) {
            let text = column.datetime()?.to_string(TIME_FORMAT)?;
            texts.with_column(text.into_column().with_name(name))?;
        }
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        let micros = Column::new("at".into(), [Some(1_764_547_200_000_000i64), None])
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap();
        DataFrame::new_infer_height(vec![
            Column::new("name".into(), ["a, \"quoted\"", "b"]),
            Column::new("n".into(), [1i64, 2]),
            micros,
        ])
        .unwrap()
    }

    fn written(format: Format) -> String {
        let mut out = Vec::new();
        write_frame(&mut frame(), format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_quotes_text_and_prints_times_in_rfc_3339() {
        assert_eq!(
            written(Format::Csv),
            "name,n,at\n\"a, \"\"quoted\"\"\",1,2025-12-01T00:00:00.000000Z\nb,2,\n"
        );
    }

    #[test]
    fn json_lines_carry_times_as_text_and_nulls_as_null() {
        let text = written(Format::Json);
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["at"], "2025-12-01T00:00:00.000000Z");
        assert_eq!(rows[0]["name"], "a, \"quoted\"");
        assert!(rows[1]["at"].is_null());
    }

    #[test]
    fn parquet_reads_back_the_same_frame() {
        let mut out = Vec::new();
        write_frame(&mut frame(), Format::Parquet, &mut out).unwrap();
        let back = ParquetReader::new(std::io::Cursor::new(out))
            .finish()
            .unwrap();
        assert!(back.equals_missing(&frame()));
    }
}
