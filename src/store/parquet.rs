//! Parquet bytes for small frames: the bytes polars' writer gives them, without its
//! per-column cardinality estimate.
//!
//! To choose between a dictionary and plain values, polars estimates each string and float
//! column's distinct values with a HyperLogLog of 16 KiB of registers, whatever the rows; for a
//! column of at most [`SMALL_ROWS`] rows it then encodes a dictionary whatever the estimate
//! said. A stream spread over many partitions writes thousands of such files (partitions ×
//! days × splits), and the estimates were the largest part of writing them (8% of the
//! consumer's CPU time in `bench ingest`). Here those columns are cast to dictionaries first,
//! as polars casts them after its estimate, so the file is the same to the byte.

use std::sync::Arc;

use polars::prelude::{CompatLevel, DataFrame, PolarsResult, SchemaExt};
use polars_arrow::array::{Array, ArrayRef};
use polars_arrow::datatypes::{ArrowDataType, IntegerType, PhysicalType, PrimitiveType};
use polars_arrow::record_batch::RecordBatchT;
use polars_parquet::write::{
    CompressionOptions, Encoding, FileWriter, RowGroupIterator, StatisticsOptions, Version,
    WriteOptions, get_dtype_encoding,
};

/// Up to this many rows polars dictionary-encodes every column it estimated.
pub const SMALL_ROWS: usize = 128;

/// Uncompressed Parquet bytes for a frame of 1 to [`SMALL_ROWS`] rows, equal to what
/// `ParquetWriter::new(..).with_compression(ParquetCompression::Uncompressed).finish(frame)`
/// writes. `None` for a frame of another height.
pub fn small_uncompressed(frame: &DataFrame) -> PolarsResult<Option<Vec<u8>>> {
    let height = frame.height();
    if !(1..=SMALL_ROWS).contains(&height) {
        return Ok(None);
    }
    let schema = frame.schema().to_arrow(CompatLevel::newest());
    let mut encodings = Vec::with_capacity(schema.len());
    let mut arrays = Vec::with_capacity(schema.len());
    for (array, field) in frame
        .rechunk_to_arrow(CompatLevel::newest())
        .into_iter()
        .zip(schema.iter_values())
    {
        let encoding = get_dtype_encoding(&field.dtype);
        let estimated = encoding == [Encoding::RleDictionary] && estimated_by_polars(array.dtype());
        let (array, encoding) = match estimated.then(|| as_dictionary(array.as_ref())) {
            Some(Ok(dictionary)) => (dictionary, encoding),
            // Where polars cannot cast (floats), it falls back to plain values.
            Some(Err(_)) => (array, vec![Encoding::Plain]),
            None => (array, encoding),
        };
        arrays.push(array);
        encodings.push(encoding);
    }
    let options = WriteOptions {
        statistics: StatisticsOptions::default(),
        version: Version::V1,
        compression: CompressionOptions::Uncompressed,
        data_page_size: None,
    };
    let batch = RecordBatchT::try_new(height, Arc::new(schema.clone()), arrays)?;
    let row_groups = RowGroupIterator::try_new(
        std::iter::once(Ok(batch)),
        &schema,
        options,
        encodings.into(),
    )?;
    let mut writer = FileWriter::try_new(Vec::new(), schema, options)?;
    for row_group in row_groups {
        writer.write(height as u64, row_group?)?;
    }
    writer.end(None)?;
    Ok(Some(writer.into_inner()))
}

/// Columns polars would estimate: not already a dictionary, and not an integer its min-max
/// shortcut decides without one.
fn estimated_by_polars(dtype: &ArrowDataType) -> bool {
    use PrimitiveType as P;
    !matches!(
        dtype.to_physical_type(),
        PhysicalType::Dictionary(_)
            | PhysicalType::Primitive(
                P::Int8
                    | P::Int16
                    | P::Int32
                    | P::Int64
                    | P::UInt8
                    | P::UInt16
                    | P::UInt32
                    | P::UInt64
            )
    )
}

/// polars' own cast, to the dictionary type it casts to.
fn as_dictionary(array: &dyn Array) -> PolarsResult<ArrayRef> {
    let dictionary =
        ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(array.dtype().clone()), false);
    polars::polars_compute::cast::cast(array, &dictionary, Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{Column, NamedFrom, ParquetCompression, ParquetWriter, Series};

    fn frame(rows: usize) -> DataFrame {
        let text: Vec<String> = (0..rows).map(|i| format!("prompt {}", i % 7)).collect();
        let ids: Vec<String> = (0..rows).map(|i| format!("img-{i:05}")).collect();
        let nullable: Vec<Option<&str>> = (0..rows).map(|i| (i % 3 != 0).then_some("x")).collect();
        let rates: Vec<f64> = (0..rows).map(|i| i as f64 / 7.0).collect();
        let counts: Vec<u32> = (0..rows).map(|i| (i % 5) as u32).collect();
        let wide: Vec<i64> = (0..rows).map(|i| i as i64 * 1_000_000_007).collect();
        let flags: Vec<bool> = (0..rows).map(|i| i % 2 == 0).collect();
        DataFrame::new_infer_height(vec![
            Column::new("text".into(), text),
            Column::new("id".into(), ids),
            Series::new("nullable".into(), nullable).into(),
            Column::new("rate".into(), rates),
            Column::new("count".into(), counts),
            Column::new("wide".into(), wide),
            Column::new("flag".into(), flags),
        ])
        .unwrap()
    }

    fn by_polars(frame: &mut DataFrame) -> Vec<u8> {
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes)
            .with_compression(ParquetCompression::Uncompressed)
            .finish(frame)
            .unwrap();
        bytes
    }

    #[test]
    fn small_frames_give_polars_own_bytes() {
        for rows in [1, 2, 17, 100, SMALL_ROWS] {
            let mut frame = frame(rows);
            let ours = small_uncompressed(&frame).unwrap().unwrap();
            assert_eq!(ours, by_polars(&mut frame), "{rows} rows");
        }
    }

    #[test]
    fn other_heights_are_left_to_polars() {
        assert!(small_uncompressed(&frame(0)).unwrap().is_none());
        assert!(
            small_uncompressed(&frame(SMALL_ROWS + 1))
                .unwrap()
                .is_none()
        );
    }
}
