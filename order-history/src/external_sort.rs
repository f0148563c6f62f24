//! An external merge sort: any number of items sorted in bounded memory.
//!
//! Items are collected into a run of at most `run_size`; a full run is sorted and spilled to
//! an anonymous temporary file (in `$TMPDIR`, removed by the OS when closed) as JSON lines.
//! At the end the runs are merged k-way through a [`BinaryHeap`] holding one item per run.
//! So that the number of open files stays bounded too, every [`FAN_IN`] runs of one size are
//! merged into one run of the next size as soon as they exist (each item is rewritten
//! `log_FAN_IN(n / run_size)` times).
//!
//! Memory: one run of items, plus one item and one buffer per open run (at most [`FAN_IN`] per
//! level). The order is stable: items with equal keys come out in the order they were pushed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The most runs merged at once (and so the most files open per size of run).
pub const FAN_IN: usize = 64;

/// Read buffer of each run being merged.
const READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SortError {
    #[error("cannot spill a sorted run to a temporary file: {0}")]
    Io(#[from] std::io::Error),
    #[error("a spilled run does not read back: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Collects items, then hands them back sorted by `key` ([`ExternalSort::finish`]).
pub struct ExternalSort<T, K> {
    run_size: usize,
    key: fn(&T) -> K,
    run: Vec<T>,
    /// `levels[n]` holds the spilled runs made of `FAN_IN^n` first-level runs.
    levels: Vec<Vec<File>>,
}

impl<T, K> ExternalSort<T, K>
where
    T: Serialize + DeserializeOwned,
    K: Ord,
{
    /// `run_size` items at most are held in memory before a run is spilled (0 counts as 1).
    pub fn new(run_size: usize, key: fn(&T) -> K) -> Self {
        Self {
            run_size: run_size.max(1),
            key,
            run: Vec::new(),
            levels: Vec::new(),
        }
    }

    /// How many runs have been spilled to disk so far, at every level.
    pub fn spilled_runs(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    pub fn push(&mut self, item: T) -> Result<(), SortError> {
        self.run.push(item);
        if self.run.len() >= self.run_size {
            self.spill()?;
        }
        Ok(())
    }

    fn sort_run(&mut self) {
        self.run.sort_by_key(self.key);
    }

    fn spill(&mut self) -> Result<(), SortError> {
        self.sort_run();
        let file = write_run(self.run.drain(..).map(Ok))?;
        self.add_run(0, file)
    }

    /// Files `file` at `level`, merging that level up a level when it is full.
    fn add_run(&mut self, level: usize, file: File) -> Result<(), SortError> {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        self.levels[level].push(file);
        if self.levels[level].len() >= FAN_IN {
            let full = std::mem::take(&mut self.levels[level]);
            let merged = write_run(Merge::new(full, self.key)?)?;
            self.add_run(level + 1, merged)?;
        }
        Ok(())
    }

    /// Every item pushed, in order of `key` (ties in push order).
    pub fn finish(mut self) -> Result<Sorted<T, K>, SortError> {
        if self.levels.is_empty() {
            self.sort_run();
            return Ok(Sorted::Memory(self.run.into_iter()));
        }
        if !self.run.is_empty() {
            self.spill()?;
        }
        // Oldest runs first: the merge breaks ties by run, which keeps the push order.
        let runs: Vec<File> = self.levels.into_iter().rev().flatten().collect();
        Ok(Sorted::Merge(Merge::new(runs, self.key)?))
    }
}

/// Writes `items` (already in order) to a new temporary file, rewound for reading.
fn write_run<T: Serialize>(
    items: impl Iterator<Item = Result<T, SortError>>,
) -> Result<File, SortError> {
    let mut out = BufWriter::new(tempfile::tempfile()?);
    for item in items {
        serde_json::to_writer(&mut out, &item?)?;
        out.write_all(b"\n")?;
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// The sorted items: straight from memory when nothing was spilled.
pub enum Sorted<T, K> {
    Memory(std::vec::IntoIter<T>),
    Merge(Merge<T, K>),
}

impl<T: DeserializeOwned, K: Ord> Iterator for Sorted<T, K> {
    type Item = Result<T, SortError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Sorted::Memory(items) => items.next().map(Ok),
            Sorted::Merge(merge) => merge.next(),
        }
    }
}

type RunReader<T> =
    serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<File>>, T>;

/// The k-way merge of sorted runs: the heap holds the next item of each run.
pub struct Merge<T, K> {
    key: fn(&T) -> K,
    runs: Vec<RunReader<T>>,
    heap: BinaryHeap<Reverse<Head<K>>>,
    /// The item each run's head stands for (the heap holds keys only, so `T` needs no `Ord`).
    heads: Vec<Option<T>>,
    failed: bool,
}

struct Head<K> {
    key: K,
    run: usize,
}

impl<K: Ord> PartialEq for Head<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord> Eq for Head<K> {}
impl<K: Ord> PartialOrd for Head<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Head<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.run.cmp(&other.run))
    }
}

impl<T: DeserializeOwned, K: Ord> Merge<T, K> {
    fn new(files: Vec<File>, key: fn(&T) -> K) -> Result<Self, SortError> {
        let mut merge = Merge {
            key,
            runs: files
                .into_iter()
                .map(|f| {
                    serde_json::Deserializer::from_reader(BufReader::with_capacity(READ_BUFFER, f))
                        .into_iter()
                })
                .collect(),
            heap: BinaryHeap::new(),
            heads: Vec::new(),
            failed: false,
        };
        merge.heads.resize_with(merge.runs.len(), || None);
        for run in 0..merge.runs.len() {
            merge.advance(run)?;
        }
        Ok(merge)
    }

    /// Reads the next item of `run` into the heap (nothing when the run is exhausted).
    fn advance(&mut self, run: usize) -> Result<(), SortError> {
        if let Some(item) = self.runs[run].next().transpose()? {
            self.heap.push(Reverse(Head {
                key: (self.key)(&item),
                run,
            }));
            self.heads[run] = Some(item);
        }
        Ok(())
    }
}

impl<T: DeserializeOwned, K: Ord> Iterator for Merge<T, K> {
    type Item = Result<T, SortError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Reverse(Head { run, .. }) = self.heap.pop()?;
        let item = self.heads[run].take()?;
        if let Err(e) = self.advance(run) {
            self.failed = true;
            return Some(Err(e));
        }
        Some(Ok(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (key, sequence number): the number tells whether ties kept their push order.
    type Item = (u32, u32);

    fn key(item: &Item) -> u32 {
        item.0
    }

    fn sort(items: &[Item], run_size: usize) -> (Vec<Item>, usize) {
        let mut sorter = ExternalSort::new(run_size, key);
        for item in items {
            sorter.push(*item).expect("push");
        }
        let spilled = sorter.spilled_runs();
        let out = sorter
            .finish()
            .expect("finish")
            .collect::<Result<Vec<_>, _>>()
            .expect("read back");
        (out, spilled)
    }

    /// Pseudo-random keys in 0..modulus, numbered in push order.
    fn items(n: u32, modulus: u32) -> Vec<Item> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % u64::from(modulus)) as u32, i)
            })
            .collect()
    }

    fn stable_sorted(items: &[Item]) -> Vec<Item> {
        let mut expected = items.to_vec();
        expected.sort_by_key(key);
        expected
    }

    #[test]
    fn an_empty_input_gives_nothing_and_spills_nothing() {
        assert_eq!(sort(&[], 3), (vec![], 0));
    }

    #[test]
    fn fewer_items_than_a_run_are_sorted_in_memory() {
        let input = items(50, 1_000);
        let (out, spilled) = sort(&input, 100);
        assert_eq!(spilled, 0);
        assert_eq!(out, stable_sorted(&input));
    }

    #[test]
    fn full_runs_spill_to_disk_and_merge_back_in_key_order() {
        let input = items(1_000, 1_000_000);
        let (out, spilled) = sort(&input, 7);
        // 142 full runs of 7; every 64 of them merged into one on the way.
        assert_eq!(spilled, 142 - 2 * (FAN_IN - 1));
        assert_eq!(out, stable_sorted(&input));
    }

    #[test]
    fn equal_keys_across_runs_all_come_out_in_push_order() {
        // Ten distinct keys over 2,000 items: every run holds many ties, and so does every
        // merge, across two levels of runs.
        let input = items(2_000, 10);
        let (out, spilled) = sort(&input, 5);
        // 400 runs: six merges of 64 into the second level.
        assert_eq!(spilled, 400 - 6 * (FAN_IN - 1));
        assert_eq!(out.len(), input.len());
        assert_eq!(out, stable_sorted(&input));
    }

    #[test]
    fn a_run_size_of_exactly_the_input_spills_one_run() {
        let input = items(10, 5);
        let (out, spilled) = sort(&input, 10);
        assert_eq!(spilled, 1);
        assert_eq!(out, stable_sorted(&input));
    }
}
