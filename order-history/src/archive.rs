//! The archive: the log as Parquet files partitioned by the UTC day of `occurredAt`, in the
//! Hive layout that Athena's partition projection and DuckDB's `hive_partitioning` both read:
//!
//! ```text
//! DIR/_archive.json                                   the manifest: the last sequence archived
//! DIR/day=2025-01-01/part-<first seq>-<last seq>.parquet
//! DIR/day=2025-01-02/part-…
//! ```
//!
//! Each file holds exactly the columns of the export row ([`export_row`](crate::export_row),
//! the same Parquet writer as `orders events --format parquet`); the partition column `day`
//! is in the path only.
//!
//! **Incremental.** The log is read in its global sequence (the order it was written in) from
//! just after the manifest's `lastSeq`, up to a head read before the run starts. Every run adds
//! new files and never rewrites one; the manifest moves on only once every file of the run is
//! durable (written to a hidden temporary name, synced, renamed, the directory synced). A run
//! that stops half-way leaves files whose first sequence is after `lastSeq`, or hidden
//! temporary files: the next run removes both before it starts, so nothing is archived twice
//! by a crash. Queries still deduplicate on `eventId` (the AWS archive is delivered at least
//! once).
//!
//! **Bounded memory.** A page of the log, and at most [`OPEN_DAYS`] open files with a Parquet
//! batch each: the log is written roughly in time order, so a day's file is closed when
//! [`OPEN_DAYS`] later days have been opened since it was last written (an event that arrives
//! for it later starts another file of that day).
//!
//! One run at a time: the run holds an exclusive lock on `DIR/_archive.lock` (released by the
//! system if the process dies).

use std::collections::HashMap;
use std::fs::{self, File};
use std::future::Future;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use events_schema::EventEnvelope;
use order_ports::StoreError;
use serde::{Deserialize, Serialize};

use crate::export::{sink, Format, Sink};
use crate::HistoryError;

/// The manifest's file name in the archive directory. Athena and DuckDB's `day=*/*.parquet`
/// globs ignore it (a leading `_`, and it is not in a partition).
pub const MANIFEST: &str = "_archive.json";
/// The lock file one run holds.
pub const LOCK: &str = "_archive.lock";
/// The partition column, named in every partition directory (`day=YYYY-MM-DD`).
pub const PARTITION: &str = "day";
/// Day files a run keeps open at once.
pub const OPEN_DAYS: usize = 8;
/// The manifest's format.
const MANIFEST_FORMAT: u32 = 1;
/// Bytes buffered before a write to a day file.
const OUT_BUFFER: usize = 256 * 1024;

/// What the archive holds so far: `DIR/_archive.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    /// The log's global sequence up to which (inclusive) every event is archived.
    pub last_seq: u64,
    /// Events archived over every run.
    pub events: u64,
    /// Files written over every run.
    pub files: u64,
}

/// What one run added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    pub events: u64,
    /// The new files, relative to the archive directory.
    pub files: Vec<PathBuf>,
    /// The manifest's `lastSeq` after the run.
    pub last_seq: u64,
}

/// An archive directory, locked for one run.
pub struct Archive {
    dir: PathBuf,
    manifest: Manifest,
    _lock: File,
}

impl Archive {
    /// Opens (creating it if need be) the archive at `dir`: takes the lock, reads the manifest
    /// (none: nothing archived yet) and removes what a run that stopped half-way left behind.
    pub fn open(dir: &Path) -> Result<Self, HistoryError> {
        fs::create_dir_all(dir).map_err(|source| HistoryError::Create {
            path: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| HistoryError::Create {
                path: lock_path.clone(),
                source,
            })?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| {
                if e == rustix::io::Errno::WOULDBLOCK {
                    HistoryError::Archive(format!(
                        "{} is being written by another run (it holds {})",
                        dir.display(),
                        lock_path.display()
                    ))
                } else {
                    HistoryError::Io(e.into())
                }
            },
        )?;
        let manifest_path = dir.join(MANIFEST);
        let manifest = match fs::read(&manifest_path) {
            Ok(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    HistoryError::Archive(format!(
                        "{} is not an archive manifest: {e}",
                        manifest_path.display()
                    ))
                })?;
                if manifest.format != MANIFEST_FORMAT {
                    return Err(HistoryError::Archive(format!(
                        "{} has format {}; this build writes format {MANIFEST_FORMAT}",
                        manifest_path.display(),
                        manifest.format
                    )));
                }
                manifest
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
                format: MANIFEST_FORMAT,
                ..Manifest::default()
            },
            Err(e) => return Err(HistoryError::Io(e)),
        };
        let archive = Archive {
            dir: dir.to_owned(),
            manifest,
            _lock: lock,
        };
        archive.remove_uncommitted()?;
        Ok(archive)
    }

    /// What the archive holds so far.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Removes hidden temporary files, and part files starting after `lastSeq`: what a run
    /// that stopped before its manifest was written left behind.
    fn remove_uncommitted(&self) -> Result<(), HistoryError> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let is_partition = name
                .to_str()
                .is_some_and(|n| n.starts_with(&format!("{PARTITION}=")));
            if !is_partition || !entry.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(entry.path())? {
                let file = file?;
                let Some(name) = file.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let leftover = (name.starts_with(".part-") && name.ends_with(".tmp"))
                    || part_range(&name).is_some_and(|(first, _)| first > self.manifest.last_seq);
                if leftover {
                    tracing::warn!(file = %file.path().display(), "removing what an interrupted archive run left");
                    fs::remove_file(file.path())?;
                }
            }
        }
        Ok(())
    }

    /// Archives the events after the manifest's `lastSeq` up to `up_to` (inclusive), reading
    /// the log with `read_after(seq)` — the next events after `seq` in sequence order, empty at
    /// the end — and telling `progress` how many events each page added. Writes the manifest
    /// once every new file is durable.
    pub async fn append<Read, Fut>(
        &mut self,
        up_to: u64,
        mut read_after: Read,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Appended, HistoryError>
    where
        Read: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<Vec<(u64, EventEnvelope)>, StoreError>>,
    {
        let mut writer = DayFiles::new(&self.dir);
        let mut after = self.manifest.last_seq;
        let mut events = 0;
        let written = async {
            while after < up_to {
                let page = read_after(after).await?;
                if page.is_empty() {
                    break;
                }
                let mut added = 0;
                for (seq, event) in &page {
                    if *seq > up_to {
                        break;
                    }
                    writer.write(*seq, event)?;
                    after = *seq;
                    added += 1;
                }
                events += added;
                progress(added);
                if added < page.len() as u64 {
                    break;
                }
            }
            writer.finish_all()
        }
        .await;
        let files = match written {
            Ok(files) => files,
            Err(e) => {
                writer.abandon();
                return Err(e);
            }
        };
        if events == 0 {
            return Ok(Appended {
                last_seq: self.manifest.last_seq,
                ..Appended::default()
            });
        }
        sync_dirs(&self.dir, &files)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            last_seq: after,
            events: self.manifest.events + events,
            files: self.manifest.files + files.len() as u64,
        };
        write_durably(
            &self.dir.join(MANIFEST),
            &serde_json::to_vec_pretty(&manifest).map_err(|e| HistoryError::Io(e.into()))?,
        )?;
        sync_dir(&self.dir)?;
        self.manifest = manifest;
        Ok(Appended {
            events,
            files,
            last_seq: after,
        })
    }
}

/// The partition directory of `day`, relative to the archive: `day=YYYY-MM-DD`.
pub fn partition_dir(day: NaiveDate) -> String {
    format!("{PARTITION}={}", day.format("%Y-%m-%d"))
}

/// The name of the part file holding sequences `first..=last`.
fn part_name(first: u64, last: u64) -> String {
    format!("part-{first:020}-{last:020}.parquet")
}

/// The sequence range in a part file's name, if it is one.
fn part_range(name: &str) -> Option<(u64, u64)> {
    let range = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// An open file of one day.
struct DayFile {
    sink: Box<dyn Sink>,
    /// The hidden temporary path it is written to.
    temporary: PathBuf,
    first: u64,
    last: u64,
    /// When it was last written, in events written by the run so far.
    used: u64,
}

/// The open day files of a run.
struct DayFiles<'a> {
    dir: &'a Path,
    open: HashMap<NaiveDate, DayFile>,
    /// Finished files, relative to `dir`.
    done: Vec<PathBuf>,
    written: u64,
}

impl<'a> DayFiles<'a> {
    fn new(dir: &'a Path) -> Self {
        DayFiles {
            dir,
            open: HashMap::new(),
            done: Vec::new(),
            written: 0,
        }
    }

    fn write(&mut self, seq: u64, event: &EventEnvelope) -> Result<(), HistoryError> {
        let day = event.occurred_at.date_naive();
        if !self.open.contains_key(&day) {
            if self.open.len() >= OPEN_DAYS {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, file)| file.used)
                    .map(|(day, _)| *day);
                if let Some(oldest) = oldest {
                    self.finish(oldest)?;
                }
            }
            let partition = self.dir.join(partition_dir(day));
            fs::create_dir_all(&partition).map_err(|source| HistoryError::Create {
                path: partition.clone(),
                source,
            })?;
            let temporary = partition.join(format!(".part-{seq:020}.tmp"));
            let file = File::create(&temporary).map_err(|source| HistoryError::Create {
                path: temporary.clone(),
                source,
            })?;
            let sink = sink(
                Format::Parquet,
                Box::new(BufWriter::with_capacity(OUT_BUFFER, file)),
            )?;
            self.open.insert(
                day,
                DayFile {
                    sink,
                    temporary,
                    first: seq,
                    last: seq,
                    used: 0,
                },
            );
        }
        self.written += 1;
        let file = self
            .open
            .get_mut(&day)
            .ok_or_else(|| HistoryError::Archive("internal: the day file is not open".into()))?;
        file.sink.write(event)?;
        file.last = seq;
        file.used = self.written;
        Ok(())
    }

    /// Writes `day`'s footer, syncs it and gives it its final name.
    fn finish(&mut self, day: NaiveDate) -> Result<(), HistoryError> {
        let Some(file) = self.open.remove(&day) else {
            return Ok(());
        };
        let temporary = file.temporary.clone();
        let finished = (|| {
            file.sink.finish()?;
            File::open(&temporary)?.sync_all()?;
            let name = Path::new(&partition_dir(day)).join(part_name(file.first, file.last));
            fs::rename(&temporary, self.dir.join(&name))?;
            Ok::<_, HistoryError>(name)
        })();
        match finished {
            Ok(name) => {
                self.done.push(name);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&temporary);
                Err(e)
            }
        }
    }

    /// Finishes every open file; the files of the run, in the order they were finished.
    fn finish_all(&mut self) -> Result<Vec<PathBuf>, HistoryError> {
        let mut days: Vec<NaiveDate> = self.open.keys().copied().collect();
        days.sort();
        for day in days {
            self.finish(day)?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// After a failure: removes the run's files, open or finished (the manifest does not name
    /// them; the next run would remove them anyway).
    fn abandon(&mut self) {
        for (_, file) in self.open.drain() {
            let _ = fs::remove_file(&file.temporary);
        }
        for name in self.done.drain(..) {
            let _ = fs::remove_file(self.dir.join(name));
        }
    }
}

/// Syncs the partition directories of `files`, so their renames survive a power loss.
fn sync_dirs(dir: &Path, files: &[PathBuf]) -> Result<(), HistoryError> {
    let mut partitions: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    partitions.sort();
    partitions.dedup();
    for partition in partitions {
        sync_dir(&dir.join(partition))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), HistoryError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Replaces `path` with `bytes`, all or nothing: a temporary file synced, then renamed.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), HistoryError> {
    let temporary = path.with_extension("json.tmp");
    let written = (|| {
        let mut file = File::create(&temporary)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::{CorrelationId, OrderEvent, OrderId, OrderRequest, Version};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("a test time")
            .with_timezone(&chrono::Utc)
    }

    /// A log of `n` orders, one received a day from 2025-01-01 at 23:59:59.900, each
    /// completed 200 ms later (the next day): each order's events span two partitions.
    fn log(n: u32) -> Vec<(u64, EventEnvelope)> {
        let mut log = Vec::new();
        for i in 0..n {
            let order = OrderRequest::validate(&serde_json::json!({
                "customerId": "c-1",
                "items": [{"productId": "p", "quantity": 1, "unitPrice": 100}],
                "currency": "EUR",
            }))
            .expect("valid");
            let id = OrderId::new_random();
            let correlation = CorrelationId::generate();
            let received = at("2025-01-01T23:59:59.900Z") + chrono::Duration::days(i.into());
            for (version, event, time) in [
                (Version::FIRST, OrderEvent::OrderReceived(order), received),
                (
                    Version::FIRST.next(),
                    OrderEvent::OrderCompleted { total: 100 },
                    received + chrono::Duration::milliseconds(200),
                ),
            ] {
                let seq = log.len() as u64 + 1;
                let event = EventEnvelope::at(id, version, correlation.clone(), event, time);
                log.push((seq, event));
            }
        }
        log
    }

    async fn run(dir: &Path, log: &[(u64, EventEnvelope)], up_to: u64) -> Appended {
        let mut archive = Archive::open(dir).expect("open");
        archive
            .append(
                up_to,
                |after| {
                    let page: Vec<(u64, EventEnvelope)> = log
                        .iter()
                        .filter(|(seq, _)| *seq > after)
                        .take(3)
                        .cloned()
                        .collect();
                    async move { Ok(page) }
                },
                &|_| {},
            )
            .await
            .expect("append")
    }

    fn rows(path: &Path) -> i64 {
        SerializedFileReader::new(File::open(path).expect("open"))
            .expect("a Parquet file")
            .metadata()
            .file_metadata()
            .num_rows()
    }

    #[tokio::test]
    async fn a_second_run_adds_only_the_new_events_in_new_files_by_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(3);
        let first = run(dir.path(), &log, 3).await;
        assert_eq!(first.events, 3);
        assert_eq!(first.last_seq, 3);
        assert_eq!(
            first.files,
            [
                PathBuf::from(
                    "day=2025-01-01/part-00000000000000000001-00000000000000000001.parquet"
                ),
                PathBuf::from(
                    "day=2025-01-02/part-00000000000000000002-00000000000000000003.parquet"
                ),
            ]
        );
        let before: Vec<(PathBuf, Vec<u8>)> = first
            .files
            .iter()
            .map(|f| (f.clone(), fs::read(dir.path().join(f)).expect("read")))
            .collect();

        let second = run(dir.path(), &log, 6).await;
        assert_eq!(second.events, 3);
        assert_eq!(second.last_seq, 6);
        assert_eq!(
            second.files,
            [
                PathBuf::from(
                    "day=2025-01-03/part-00000000000000000004-00000000000000000005.parquet"
                ),
                PathBuf::from(
                    "day=2025-01-04/part-00000000000000000006-00000000000000000006.parquet"
                ),
            ]
        );
        for (file, bytes) in before {
            assert_eq!(fs::read(dir.path().join(file)).expect("read"), bytes);
        }
        let total: i64 = first
            .files
            .iter()
            .chain(&second.files)
            .map(|f| rows(&dir.path().join(f)))
            .sum();
        assert_eq!(total, 6);
        let manifest: Manifest =
            serde_json::from_slice(&fs::read(dir.path().join(MANIFEST)).expect("manifest"))
                .expect("JSON");
        assert_eq!(
            manifest,
            Manifest {
                format: 1,
                last_seq: 6,
                events: 6,
                files: 4
            }
        );

        let nothing = run(dir.path(), &log, 6).await;
        assert_eq!(
            nothing,
            Appended {
                last_seq: 6,
                ..Appended::default()
            }
        );
    }

    #[tokio::test]
    async fn what_an_interrupted_run_left_is_removed_and_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(2);
        run(dir.path(), &log, 2).await;
        // A run that stopped before its manifest: a finished file after lastSeq, a temporary one.
        let partition = dir.path().join("day=2025-01-03");
        fs::create_dir_all(&partition).expect("mkdir");
        fs::write(partition.join(part_name(3, 4)), b"half").expect("write");
        fs::write(partition.join(".part-00000000000000000004.tmp"), b"half").expect("write");

        let again = run(dir.path(), &log, 4).await;
        assert_eq!(again.events, 2);
        let names: Vec<String> = fs::read_dir(&partition)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [part_name(4, 4)]);
        assert_eq!(rows(&partition.join(part_name(4, 4))), 1);
    }

    #[tokio::test]
    async fn many_days_in_one_run_keep_a_bounded_number_of_files_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = (OPEN_DAYS * 2) as u32;
        let log = log(n);
        let appended = run(dir.path(), &log, u64::from(n) * 2).await;
        assert_eq!(appended.events, u64::from(n) * 2);
        let total: i64 = appended
            .files
            .iter()
            .map(|f| rows(&dir.path().join(f)))
            .sum();
        assert_eq!(total, i64::from(n) * 2);
        assert_eq!(appended.files.len(), n as usize + 1, "{:?}", appended.files);
    }

    #[test]
    fn a_second_run_on_the_same_directory_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Archive::open(dir.path()).expect("open");
        let second = Archive::open(dir.path()).err().expect("refused");
        assert!(second.to_string().contains("another run"), "{second}");
    }
}
