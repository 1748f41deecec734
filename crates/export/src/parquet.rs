//! The op table as Apache Parquet, with the `parquet` and `arrow` crates.
//!
//! [`write_parquet`] writes rows as one Parquet file with the columns of
//! [`op_schema`]. [`write_partitioned`] lays rows out Hive-style,
//! `DIR/date=YYYY-MM-DD/host=HOST/PART.parquet`, by the UTC date of each
//! op's start and the recording host; the `date` and `host` columns then
//! live only in the directory names, as Hive, Spark, Trino and DuckDB
//! (`hive_partitioning`) expect. Files are written next to their final name
//! and renamed into place, so a reader never sees half a file.
//! [`partition_files`] makes the same files in memory, for a caller that
//! uploads them (this crate does no network I/O).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nixcap_capture::utc::UtcTime;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use crate::optable::OpRow;

/// Why the op table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ParquetExportError {
    /// Creating, writing or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The Parquet or Arrow layer refused the data.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// Building the record batch failed.
    #[error("building the Arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// The columns of the op table. With `partitioned`, `date` and `host` are
/// left out: they are the partition directories' names.
pub fn op_schema(partitioned: bool) -> SchemaRef {
    let utc = Some(Arc::from("UTC"));
    let mut fields = vec![Field::new("capture", DataType::Utf8, false)];
    if !partitioned {
        fields.push(Field::new("host", DataType::Utf8, false));
    }
    fields.extend([
        Field::new("conn", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("client_protocol", DataType::Utf8, true),
        Field::new("daemon_protocol", DataType::Utf8, true),
        Field::new("protocol", DataType::Utf8, true),
        Field::new("daemon_nix_version", DataType::Utf8, true),
        Field::new("client_nix_version", DataType::Utf8, true),
        Field::new("op", DataType::Utf8, false),
        Field::new(
            "start_time",
            DataType::Timestamp(TimeUnit::Microsecond, utc),
            false,
        ),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("bytes_client_to_daemon", DataType::Int64, false),
        Field::new("bytes_daemon_to_client", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("result", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("paths", DataType::Int64, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// A `u64` as a Parquet INT64, saturating (no count or duration here comes
/// near 2^63).
fn i64_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The rows as one Arrow batch in the layout of [`op_schema`].
pub fn op_batch(rows: &[OpRow], partitioned: bool) -> Result<RecordBatch, ParquetExportError> {
    let n = rows.len();
    let strings = |f: &dyn Fn(&OpRow) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 8);
        for row in rows {
            b.append_option(f(row));
        }
        Arc::new(b.finish())
    };
    let ints = |f: &dyn Fn(&OpRow) -> u64| -> ArrayRef {
        let mut b = Int64Builder::with_capacity(n);
        for row in rows {
            b.append_value(i64_of(f(row)));
        }
        Arc::new(b.finish())
    };
    let mut start = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for row in rows {
        start.append_value(i64_of(row.start_unix_nanos / 1000));
    }
    let mut columns = vec![strings(&|r| Some(&r.capture))];
    if !partitioned {
        columns.push(strings(&|r| Some(&r.host)));
    }
    columns.extend([
        ints(&|r| r.conn),
        ints(&|r| r.seq),
        strings(&|r| r.client_protocol.as_deref()),
        strings(&|r| r.daemon_protocol.as_deref()),
        strings(&|r| r.protocol.as_deref()),
        strings(&|r| r.daemon_nix_version.as_deref()),
        strings(&|r| r.client_nix_version.as_deref()),
        strings(&|r| Some(&r.op)),
        Arc::new(start.finish()) as ArrayRef,
        ints(&|r| r.duration_nanos),
        ints(&|r| r.bytes_client_to_daemon),
        ints(&|r| r.bytes_daemon_to_client),
        strings(&|r| Some(r.status)),
        strings(&|r| r.result.as_deref()),
        strings(&|r| r.error.as_deref()),
        ints(&|r| r.paths),
    ]);
    Ok(RecordBatch::try_new(op_schema(partitioned), columns)?)
}

/// Writes `rows` as one Parquet file (zstd-compressed columns) to `out`.
pub fn write_parquet<W: Write + Send>(
    rows: &[OpRow],
    out: W,
    partitioned: bool,
) -> Result<(), ParquetExportError> {
    let batch = op_batch(rows, partitioned)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("nixcap {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

/// Writes `rows` to the file `path`, through a temporary file beside it.
pub fn write_parquet_file(
    rows: &[OpRow],
    path: &Path,
    partitioned: bool,
) -> Result<(), ParquetExportError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ParquetExportError::Io { path, source }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let result = write_parquet(rows, io::BufWriter::new(&file), partitioned)
        .and_then(|()| file.sync_all().map_err(io_err(&tmp)))
        .and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A partition value as it may appear in a directory name: characters
/// other than ASCII letters, digits, `.`, `_` and `-` are percent-encoded,
/// as Hive escapes them; an empty value is Hive's default partition.
pub fn partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    if out.is_empty() {
        // Hive's name for a missing value.
        return "__HIVE_DEFAULT_PARTITION__".to_owned();
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

/// The file name (without `.parquet`) of a capture's part in each
/// partition: the capture's file stem and the start of the SHA-256 of its
/// full name, so captures with the same file name in different directories
/// (or buckets) get different parts, and exporting one again replaces its
/// own.
pub fn part_name(capture: &str) -> String {
    let base = capture.rsplit('/').next().unwrap_or(capture);
    let stem = base.strip_suffix(".nixcap").unwrap_or(base);
    let digest = Sha256::digest(capture.as_bytes());
    format!("{}-{}", partition_value(stem), hex::encode(&digest[..6]))
}

/// The partition directory (relative) of a row: `date=…/host=…`.
pub fn partition_of(row: &OpRow) -> PathBuf {
    let date = UtcTime::from_unix_nanos(row.start_unix_nanos).date();
    PathBuf::from(format!("date={date}")).join(format!("host={}", partition_value(&row.host)))
}

/// Groups `rows` by partition (`date=…/host=…`, in order).
fn group_by_partition(rows: &[OpRow]) -> BTreeMap<PathBuf, Vec<OpRow>> {
    let mut groups: BTreeMap<PathBuf, Vec<OpRow>> = BTreeMap::new();
    for row in rows {
        groups
            .entry(partition_of(row))
            .or_default()
            .push(row.clone());
    }
    groups
}

/// Writes `rows` under `dir` in Hive-style partitions, one file named
/// `PART.parquet` per partition (replacing a file of that name, so
/// exporting a capture again is idempotent). Returns the files written.
pub fn write_partitioned(
    rows: &[OpRow],
    dir: &Path,
    part: &str,
) -> Result<Vec<PathBuf>, ParquetExportError> {
    let mut written = Vec::new();
    for (partition, rows) in group_by_partition(rows) {
        let partition_dir = dir.join(partition);
        fs::create_dir_all(&partition_dir).map_err(|source| ParquetExportError::Io {
            path: partition_dir.clone(),
            source,
        })?;
        let path = partition_dir.join(format!("{part}.parquet"));
        write_parquet_file(&rows, &path, true)?;
        written.push(path);
    }
    Ok(written)
}

/// One Parquet file of a partitioned export, in memory: its path relative
/// to the export's root, with `/` separators, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFile {
    /// `date=YYYY-MM-DD/host=HOST/PART.parquet`.
    pub key: String,
    /// The Parquet file, byte for byte what [`write_partitioned`] writes.
    pub bytes: Vec<u8>,
}

/// The files [`write_partitioned`] would write for `rows`, in memory, for a
/// caller that puts them elsewhere (an object store).
pub fn partition_files(
    rows: &[OpRow],
    part: &str,
) -> Result<Vec<PartitionFile>, ParquetExportError> {
    let mut files = Vec::new();
    for (partition, rows) in group_by_partition(rows) {
        let mut bytes = Vec::new();
        write_parquet(&rows, &mut bytes, true)?;
        let dirs: Vec<String> = partition
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        files.push(PartitionFile {
            key: format!("{}/{part}.parquet", dirs.join("/")),
            bytes,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn row(host: &str, start_unix_nanos: u64) -> OpRow {
        OpRow {
            capture: "c.nixcap".to_owned(),
            host: host.to_owned(),
            conn: 1,
            seq: 0,
            client_protocol: Some("1.38".to_owned()),
            daemon_protocol: Some("1.38".to_owned()),
            protocol: Some("1.38".to_owned()),
            daemon_nix_version: None,
            client_nix_version: None,
            op: "IsValidPath".to_owned(),
            start_unix_nanos,
            duration_nanos: 1500,
            bytes_client_to_daemon: 16,
            bytes_daemon_to_client: 16,
            status: "ok",
            result: Some("valid".to_owned()),
            error: None,
            paths: 1,
        }
    }

    #[test]
    fn parts_of_captures_with_the_same_file_name_differ() {
        let a = part_name("nix-2.8/build.nixcap");
        let b = part_name("nix-2.34/build.nixcap");
        assert!(
            a.starts_with("build-") && b.starts_with("build-"),
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert_eq!(a, part_name("nix-2.8/build.nixcap"));
    }

    #[test]
    fn partition_values_are_escaped() {
        assert_eq!(partition_value("builder-1.example"), "builder-1.example");
        assert_eq!(partition_value("a/b=c"), "a%2Fb%3Dc");
        assert_eq!(partition_value(""), "__HIVE_DEFAULT_PARTITION__");
        assert_eq!(partition_value(".."), "%2E%2E");
    }

    #[test]
    fn rows_are_split_by_date_and_host() {
        let day = 86_400 * 1_000_000_000;
        let rows = [row("a", 0), row("a", 10), row("b", 0), row("a", day)];
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_partitioned(&rows, dir.path(), "part").expect("write");
        let relative: Vec<String> = files
            .iter()
            .map(|f| {
                f.strip_prefix(dir.path())
                    .expect("under dir")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            relative,
            [
                "date=1970-01-01/host=a/part.parquet",
                "date=1970-01-01/host=b/part.parquet",
                "date=1970-01-02/host=a/part.parquet",
            ]
        );
        let reader = SerializedFileReader::new(File::open(&files[0]).expect("open")).expect("read");
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let columns: Vec<&str> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        assert!(!columns.contains(&"host"), "{columns:?}");
        assert!(columns.contains(&"duration_ns"), "{columns:?}");
    }

    #[test]
    fn partition_files_in_memory_are_the_files_written_to_a_directory() {
        let day = 86_400 * 1_000_000_000;
        let rows = [row("a", 0), row("b c", 10), row("a", day)];
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_partitioned(&rows, dir.path(), "part").expect("write");
        let in_memory = partition_files(&rows, "part").expect("in memory");
        assert_eq!(in_memory.len(), written.len());
        for (file, path) in in_memory.iter().zip(&written) {
            let relative = path.strip_prefix(dir.path()).expect("under dir");
            assert_eq!(file.key, relative.display().to_string());
            assert_eq!(file.bytes, fs::read(path).expect("read"), "{}", file.key);
        }
        assert_eq!(in_memory[1].key, "date=1970-01-01/host=b%20c/part.parquet");
    }
}
