//! The store-and-forward spool: what the agent collected, on disk, until the server has it.
//!
//! Append-only segment files (`seg-<first sequence>.log`), each a run of records:
//!
//! ```text
//! record = len: u32 LE | crc32: u32 LE | appended_at_ms: i64 LE | payload: len bytes
//!          (the CRC covers appended_at_ms and the payload)
//! ```
//!
//! A record is written with one `write` and, by default, flushed to the device (`fsync`) before
//! `append` returns, so a kill -9 or a power cut loses at most the record being written. On open,
//! the tail of the newest segment is checked and a torn or corrupt record is cut off; earlier
//! records are never touched. Delivery is at-least-once: [`Spool::read`] hands out records after
//! the acknowledged position, [`Spool::ack`] moves that position (stored atomically in `cursor`),
//! and a restart redelivers anything not acknowledged.
//!
//! The spool is bounded by bytes and by age. When a bound is hit the oldest segment is dropped —
//! delivered or not — and the number of records lost that way is counted in the cursor file and
//! reported by [`Spool::stats`], never silently. Records of the batch in flight that leave the
//! disk this way are still in the forwarder's memory: they are counted as *held*, and become
//! dropped only if that batch is given up (a restart, or a new batch started without its
//! acknowledgement), so a record is counted as delivered or as dropped, never both.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 16;
const MAX_RECORD: usize = 64 << 20;

/// Spool bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Upper bound on all segments together, bytes.
    pub max_bytes: u64,
    /// Records older than this (ms) are dropped.
    pub max_age_ms: i64,
    /// A segment is closed and a new one started at this size.
    pub segment_bytes: u64,
    /// `fsync` after every append (durable against power cuts) or leave it to the OS.
    pub sync_every_append: bool,
    /// The agent's writer gathers what the poller collects for this long and appends it as one
    /// group with one `fsync`, so a busy tower costs about one flush per window instead of one
    /// per report. What was collected in the last window is lost if the agent dies or the power
    /// goes (as a poll running at that moment would be); zero appends each report as it comes.
    pub commit_window: std::time::Duration,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        // A 500-device tower at 60 s writes about 8 reports/s of ~2 KiB: ~1.4 GiB a day.
        Self {
            max_bytes: 2 << 30,
            max_age_ms: 72 * 3_600_000,
            segment_bytes: 16 << 20,
            sync_every_append: true,
            commit_window: std::time::Duration::from_secs(1),
        }
    }
}

/// Counters for `status`, `/metrics` and the upstream drop report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Records appended and not yet acknowledged.
    pub pending: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Records dropped because a bound was hit, ever.
    pub dropped: u64,
    /// Records of the batch in flight that a bound removed from disk: delivered from memory when
    /// the batch is acknowledged, added to `dropped` if it is given up.
    pub held: u64,
    /// Torn or corrupt records cut off at open, ever.
    pub repaired: u64,
    /// The next sequence number.
    pub next_seq: u64,
    /// Everything below this is acknowledged.
    pub acked: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    records: u64,
    bytes: u64,
    newest_ms: i64,
    path: PathBuf,
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    segments: VecDeque<Segment>,
    active: Option<File>,
    next_seq: u64,
    acked: u64,
    dropped: u64,
    repaired: u64,
    /// The last record of the batch being delivered, kept until it is acknowledged so a batch
    /// resent after a restart has the same extent (and so the same idempotency key).
    sending: Option<u64>,
    /// Records of that batch a bound removed from disk (see [`SpoolStats::held`]).
    held: u64,
    /// Where the last `read` stopped: (segment's first sequence, byte offset, sequence there),
    /// so delivering a long backlog reads each record once instead of rescanning segments.
    read_hint: std::cell::Cell<Option<(u64, u64, u64)>>,
}

/// One record handed out for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number (dense, increasing).
    pub seq: u64,
    /// When it was appended (ms since the epoch).
    pub appended_at_ms: i64,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

fn seg_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.log")
}

fn read_header(buf: &[u8]) -> (usize, u32, i64) {
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let at = i64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    (len, crc, at)
}

fn checksum(at: i64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&at.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// What a scan of a segment found.
struct Scan {
    records: u64,
    newest_ms: i64,
    valid_end: u64,
    file_len: u64,
}

/// Scans a segment: how many records are valid and where validity ends.
fn scan(path: &Path) -> io::Result<Scan> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut pos = 0usize;
    let (mut records, mut newest_ms) = (0u64, i64::MIN);
    while pos + HEADER <= data.len() {
        let (len, crc, at) = read_header(&data[pos..pos + HEADER]);
        if len > MAX_RECORD || pos + HEADER + len > data.len() {
            break;
        }
        if checksum(at, &data[pos + HEADER..pos + HEADER + len]) != crc {
            break;
        }
        records += 1;
        newest_ms = at;
        pos += HEADER + len;
    }
    Ok(Scan {
        records,
        newest_ms,
        valid_end: pos as u64,
        file_len: data.len() as u64,
    })
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, repairing a torn tail.
    pub fn open(dir: impl Into<PathBuf>, limits: SpoolLimits) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let mut firsts: Vec<u64> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let Cursor {
            acked,
            dropped,
            repaired,
            sending,
            held,
        } = read_cursor(&dir)?;
        let mut s = Self {
            dir,
            limits,
            segments: VecDeque::new(),
            active: None,
            next_seq: acked,
            acked,
            // The batch that held them was in the last run's memory: they are gone.
            dropped: dropped + held,
            repaired,
            sending,
            held: 0,
            read_hint: std::cell::Cell::new(None),
        };
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = s.dir.join(seg_name(first));
            let Scan {
                records,
                newest_ms,
                valid_end,
                file_len,
            } = scan(&path)?;
            if valid_end < file_len {
                // Only the newest segment can have a torn tail; anything after the last valid
                // record is cut off, so appends continue on a clean boundary.
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(valid_end)?;
                f.sync_all()?;
                s.repaired += 1;
                if i + 1 < count {
                    tracing::warn!(segment = %path.display(), "corrupt record inside a closed segment; later records of it are lost");
                }
            }
            s.next_seq = s.next_seq.max(first + records);
            s.segments.push_back(Segment {
                first_seq: first,
                records,
                bytes: valid_end,
                newest_ms,
                path,
            });
        }
        s.acked = s.acked.min(s.next_seq);
        if s.repaired > 0 || held > 0 {
            s.write_cursor()?;
        }
        Ok(s)
    }

    /// Counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            pending: self.next_seq - self.acked,
            bytes: self.segments.iter().map(|s| s.bytes).sum(),
            dropped: self.dropped,
            held: self.held,
            repaired: self.repaired,
            next_seq: self.next_seq,
            acked: self.acked,
        }
    }

    /// Appends several records with one flush at the end (group commit). Returns how many were
    /// appended, and the error that stopped it, if any: the first `n` are stored, the rest are
    /// not (with `sync_every_append`, the stored ones are on stable storage).
    pub fn append_many(&mut self, payloads: &[Vec<u8>], now_ms: i64) -> (usize, Option<io::Error>) {
        let sync = self.limits.sync_every_append;
        self.limits.sync_every_append = false;
        let mut appended = 0;
        let mut failure = None;
        for p in payloads {
            match self.append(p, now_ms) {
                Ok(_) => appended += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.limits.sync_every_append = sync;
        if sync
            && appended > 0
            && let Some(f) = self.active.as_mut()
            && let Err(e) = f.sync_data()
        {
            // Not known to be durable: report none as stored; a retry may duplicate, which
            // delivery de-duplicates, while a loss could not be undone.
            return (0, Some(e));
        }
        (appended, failure)
    }

    /// Appends one record and returns its sequence number. With `sync_every_append` it is on
    /// stable storage when this returns.
    pub fn append(&mut self, payload: &[u8], now_ms: i64) -> io::Result<u64> {
        if payload.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("record of {} bytes exceeds {MAX_RECORD}", payload.len()),
            ));
        }
        let rotate = self
            .segments
            .back()
            .is_none_or(|s| s.bytes >= self.limits.segment_bytes)
            || self.active.is_none();
        if rotate {
            self.start_segment()?;
        }
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&checksum(now_ms, payload).to_le_bytes());
        buf.extend_from_slice(&now_ms.to_le_bytes());
        buf.extend_from_slice(payload);
        let f = self.active.as_mut().expect("segment open");
        if let Err(e) = f.write_all(&buf) {
            // A full disk or I/O error: close this segment so a partial write is cut at next open,
            // and report the failure to the caller (who keeps the report in memory or drops it).
            self.active = None;
            return Err(e);
        }
        if self.limits.sync_every_append {
            f.sync_data()?;
        }
        let seg = self.segments.back_mut().expect("segment exists");
        seg.records += 1;
        seg.bytes += buf.len() as u64;
        seg.newest_ms = now_ms;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.enforce(now_ms)?;
        Ok(seq)
    }

    fn start_segment(&mut self) -> io::Result<()> {
        // Continue the newest segment if it still has room (after a restart), else start one.
        if let Some(last) = self.segments.back()
            && last.bytes < self.limits.segment_bytes
        {
            let f = OpenOptions::new().append(true).open(&last.path)?;
            // Cut whatever a failed write (full disk, I/O error) left after the last good record,
            // so new records never follow a torn one.
            f.set_len(last.bytes)?;
            self.active = Some(f);
            return Ok(());
        }
        let path = self.dir.join(seg_name(self.next_seq));
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        File::open(&self.dir)?.sync_all()?;
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            records: 0,
            bytes: 0,
            newest_ms: i64::MIN,
            path,
        });
        self.active = Some(f);
        Ok(())
    }

    /// Drops the oldest segments while the spool is over its byte bound or holds records older than
    /// its age bound. The newest segment is never dropped for size (it holds what was just written).
    pub fn enforce(&mut self, now_ms: i64) -> io::Result<()> {
        let mut changed = false;
        loop {
            let total: u64 = self.segments.iter().map(|s| s.bytes).sum();
            let Some(oldest) = self.segments.front() else { break };
            let too_big = total > self.limits.max_bytes && self.segments.len() > 1;
            let too_old = oldest.newest_ms != i64::MIN && oldest.newest_ms < now_ms - self.limits.max_age_ms;
            if !(too_big || too_old) {
                break;
            }
            let seg = self.segments.pop_front().expect("front exists");
            let end = seg.first_seq + seg.records;
            if end > self.acked {
                let from = self.acked.max(seg.first_seq);
                // The batch in flight starts at or before `from` (it was read from an earlier
                // acknowledged position), so its records here are `from ..= last`.
                let held = match self.sending {
                    Some(last) if last >= from => (last + 1).min(end) - from,
                    _ => 0,
                };
                self.held += held;
                self.dropped += end - from - held;
                self.acked = end;
            }
            if self.segments.is_empty() {
                self.active = None;
            }
            fs::remove_file(&seg.path)?;
            changed = true;
        }
        if changed {
            self.write_cursor()?;
        }
        Ok(())
    }

    /// Up to `max` records after the acknowledged position, oldest first.
    pub fn read(&self, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let bad = |seq: u64, what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("record {seq} {what}"));
        for seg in &self.segments {
            if out.len() >= max {
                break;
            }
            if seg.first_seq + seg.records <= self.acked {
                continue;
            }
            // Resume where the previous read stopped when that is exactly the first unread
            // record; otherwise walk the segment from its start.
            let (mut pos, mut seq) = match self.read_hint.get() {
                Some((first, pos, seq)) if first == seg.first_seq && seq <= self.acked => (pos, seq),
                _ => (0, seg.first_seq),
            };
            let mut f = io::BufReader::with_capacity(64 << 10, File::open(&seg.path)?);
            f.seek(SeekFrom::Start(pos))?;
            let mut header = [0u8; HEADER];
            while pos + HEADER as u64 <= seg.bytes && out.len() < max {
                f.read_exact(&mut header)?;
                let (len, crc, at) = read_header(&header);
                if pos + (HEADER + len) as u64 > seg.bytes {
                    return Err(bad(seq, "runs past the end of its segment"));
                }
                if seq >= self.acked {
                    let mut payload = vec![0u8; len];
                    f.read_exact(&mut payload)?;
                    if checksum(at, &payload) != crc {
                        return Err(bad(seq, "fails its checksum"));
                    }
                    out.push(Record {
                        seq,
                        appended_at_ms: at,
                        payload,
                    });
                } else {
                    f.seek_relative(len as i64)?;
                }
                pos += (HEADER + len) as u64;
                seq += 1;
                self.read_hint.set(Some((seg.first_seq, pos, seq)));
            }
        }
        Ok(out)
    }

    /// The last record of the batch handed to the uplink and not yet acknowledged, if any (as
    /// recorded by [`sending`](Self::sending), surviving restarts).
    pub fn in_flight(&self) -> Option<u64> {
        self.sending.filter(|&last| last >= self.acked)
    }

    /// Records that the records up to `last` are about to be sent as one batch. Until they are
    /// acknowledged, [`in_flight`](Self::in_flight) names `last`, even after a crash, so the
    /// batch is rebuilt with the same extent: the server, which de-duplicates whole batches by
    /// key, then recognises one it committed before the acknowledgement was lost.
    pub fn sending(&mut self, last: u64) -> io::Result<()> {
        if self.sending == Some(last) {
            return Ok(());
        }
        // The previous batch was given up without being acknowledged: what only it still held
        // is lost.
        self.dropped += std::mem::take(&mut self.held);
        self.sending = Some(last);
        self.write_cursor()
    }

    /// Acknowledges every record below `upto` (the server has committed them). Segments that are
    /// wholly acknowledged are deleted.
    pub fn ack(&mut self, upto: u64) -> io::Result<()> {
        let upto = upto.min(self.next_seq);
        // The batch in flight is delivered, even if a bound already removed all of it from disk.
        let delivered = self.sending.is_some_and(|last| last < upto);
        if upto <= self.acked && !delivered {
            return Ok(());
        }
        self.acked = self.acked.max(upto);
        if delivered {
            self.sending = None;
            self.held = 0;
        }
        // A segment is removed only once the cursor past it is durable (renamed and the directory
        // flushed); otherwise the rename may reach the disk later, at the next flush of the
        // directory. Losing it to a power cut re-sends the acknowledged batch under its own
        // key (the cursor still names it in flight), which the server recognises.
        let drops_segment = self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.first_seq + s.records <= self.acked);
        self.store_cursor(drops_segment)?;
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.first_seq + s.records <= self.acked)
        {
            let seg = self.segments.pop_front().expect("front exists");
            fs::remove_file(&seg.path)?;
        }
        Ok(())
    }

    /// Persists the cursor atomically (write, fsync, rename, fsync the directory).
    fn write_cursor(&self) -> io::Result<()> {
        self.store_cursor(true)
    }

    /// Writes the cursor to a new file, flushes it and renames it over the old one; with
    /// `durable`, also flushes the directory so the rename itself survives a power cut.
    fn store_cursor(&self, durable: bool) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        let mut f = File::create(&tmp)?;
        let (acked, dropped, repaired) = (self.acked, self.dropped, self.repaired);
        match (self.sending, self.held) {
            (Some(last), 0) => writeln!(f, "{acked} {dropped} {repaired} {last}")?,
            (Some(last), held) => writeln!(f, "{acked} {dropped} {repaired} {last} {held}")?,
            (None, _) => writeln!(f, "{acked} {dropped} {repaired}")?,
        }
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join("cursor"))?;
        if durable {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The cursor file: `acked dropped repaired [sending [held]]`.
#[derive(Debug, Default)]
struct Cursor {
    acked: u64,
    dropped: u64,
    repaired: u64,
    sending: Option<u64>,
    held: u64,
}

fn read_cursor(dir: &Path) -> io::Result<Cursor> {
    match fs::read_to_string(dir.join("cursor")) {
        Ok(text) => {
            let n: Vec<u64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if !(3..=5).contains(&n.len()) || n.len() != text.split_whitespace().count() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("spool cursor {:?} is not three to five numbers", text.trim()),
                ));
            }
            Ok(Cursor {
                acked: n[0],
                dropped: n[1],
                repaired: n[2],
                sending: n.get(3).copied(),
                held: n.get(4).copied().unwrap_or(0),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Cursor::default()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tod-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn small() -> SpoolLimits {
        SpoolLimits {
            max_bytes: 10_000,
            max_age_ms: 3_600_000,
            segment_bytes: 1_000,
            sync_every_append: false,
            commit_window: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn append_read_ack_and_reopen() {
        let d = dir("basic");
        let mut s = Spool::open(&d, small()).unwrap();
        for i in 0..50u64 {
            assert_eq!(s.append(format!("report {i}").as_bytes(), 1_000 + i as i64).unwrap(), i);
        }
        let first = s.read(10).unwrap();
        assert_eq!(first.len(), 10);
        assert_eq!(first[3].payload, b"report 3");
        s.ack(10).unwrap();
        assert_eq!(s.read(1).unwrap()[0].seq, 10);
        drop(s);
        let mut s = Spool::open(&d, small()).unwrap();
        let st = s.stats();
        assert_eq!((st.acked, st.next_seq, st.pending), (10, 50, 40));
        assert_eq!(
            s.read(100).unwrap().len(),
            40,
            "unacknowledged records are redelivered after a restart"
        );
        assert_eq!(s.append(b"after restart", 9_000).unwrap(), 50);
        s.ack(51).unwrap();
        assert_eq!(s.stats().pending, 0);
        assert!(s.stats().bytes < 1_100, "acknowledged segments are deleted");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn the_batch_in_flight_survives_a_restart_until_acknowledged() {
        let d = dir("inflight");
        let mut s = Spool::open(&d, small()).unwrap();
        for i in 0..20u64 {
            s.append(format!("r{i}").as_bytes(), 1_000).unwrap();
        }
        assert_eq!(s.in_flight(), None);
        s.sending(7).unwrap();
        drop(s);
        let mut s = Spool::open(&d, small()).unwrap();
        assert_eq!(s.in_flight(), Some(7), "remembered across a restart");
        s.ack(5).unwrap();
        assert_eq!(s.in_flight(), Some(7), "a partial acknowledgement keeps it");
        s.ack(8).unwrap();
        assert_eq!(s.in_flight(), None);
        drop(s);
        assert_eq!(fs::read_to_string(d.join("cursor")).unwrap().trim(), "8 0 0");
        assert_eq!(Spool::open(&d, small()).unwrap().in_flight(), None);
        fs::write(d.join("cursor"), "8 0 0 9 9 9").unwrap();
        let err = Spool::open(&d, small()).unwrap_err();
        assert!(err.to_string().contains("three to five numbers"), "{err}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn draining_a_backlog_in_chunks_returns_every_record_once_in_order() {
        let d = dir("drain");
        let mut s = Spool::open(
            &d,
            SpoolLimits {
                max_bytes: 1 << 30,
                ..small()
            },
        )
        .unwrap();
        for i in 0..200u64 {
            s.append(format!("r{i}").as_bytes(), i as i64).unwrap();
        }
        assert!(s.segments.len() > 3, "the backlog spans several segments");
        let mut got = Vec::new();
        loop {
            let chunk = s.read(7).unwrap();
            let Some(last) = chunk.last().map(|r| r.seq) else { break };
            got.extend(chunk.iter().map(|r| r.seq));
            // Acknowledge all but the last of each chunk (so the next read must resume at a record
            // it already handed out), except at the very end.
            s.ack(if chunk.len() > 1 { last } else { last + 1 }).unwrap();
        }
        got.dedup();
        assert_eq!(got, (0..200).collect::<Vec<u64>>());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_tail_is_cut_and_earlier_records_survive() {
        let d = dir("torn");
        let mut s = Spool::open(&d, small()).unwrap();
        for i in 0..5 {
            s.append(format!("r{i}").as_bytes(), i).unwrap();
        }
        drop(s);
        let seg = fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .unwrap()
            .path();
        // Half a record at the end, as a crash mid-write leaves it.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[42, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut s = Spool::open(&d, small()).unwrap();
        assert_eq!(s.stats().repaired, 1);
        let all = s.read(100).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(s.append(b"next", 10).unwrap(), 5);
        assert_eq!(s.read(100).unwrap().last().unwrap().payload, b"next");
        // A flipped byte in the last record: that record is cut, the rest stay.
        drop(s);
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let s = Spool::open(&d, small()).unwrap();
        assert_eq!(s.read(100).unwrap().len(), 5);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn appends_after_a_failed_write_start_on_a_clean_boundary() {
        let d = dir("failed-write");
        let mut s = Spool::open(&d, small()).unwrap();
        s.append(b"one", 1).unwrap();
        // What a write that failed halfway leaves behind, and the segment closed by the error.
        let path = s.segments.back().unwrap().path.clone();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[9, 0, 0, 0, 1])
            .unwrap();
        s.active = None;
        s.append(b"two", 2).unwrap();
        drop(s);
        let s = Spool::open(&d, small()).unwrap();
        let all: Vec<Vec<u8>> = s.read(10).unwrap().into_iter().map(|r| r.payload).collect();
        assert_eq!(all, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(s.stats().repaired, 0, "nothing torn was left in the file");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn bounds_drop_the_oldest_and_count_it() {
        let d = dir("bounds");
        let mut s = Spool::open(&d, small()).unwrap();
        let payload = [7u8; 84]; // 100 bytes a record with its header
        for i in 0..300 {
            s.append(&payload, 1_000 + i).unwrap();
        }
        let st = s.stats();
        assert!(st.bytes <= 10_000 + 1_000, "{st:?}");
        assert!(st.dropped >= 190, "{st:?}");
        assert_eq!(
            st.pending + st.dropped,
            300,
            "every record is delivered or counted as dropped"
        );
        // Age: everything older than an hour goes, even below the byte bound.
        let mut s2 = Spool::open(dir("age"), small()).unwrap();
        s2.append(b"old", 0).unwrap();
        for i in 0..12 {
            s2.append(&payload, 1 + i).unwrap();
        }
        s2.append(b"new", 3_600_000 + 500).unwrap();
        assert!(s2.stats().dropped >= 1);
        assert_ne!(s2.read(1).unwrap()[0].payload, b"old");
        let _ = fs::remove_dir_all(&d);
        let _ = fs::remove_dir_all(dir("age"));
    }

    #[test]
    fn records_of_the_batch_in_flight_are_delivered_or_dropped_never_both() {
        let d = dir("held");
        let limits = SpoolLimits {
            max_bytes: 1 << 30,
            ..small()
        };
        let mut s = Spool::open(&d, limits).unwrap();
        let payload = [7u8; 84]; // 100 bytes with its header: ten records a segment
        for _ in 0..30 {
            s.append(&payload, 0).unwrap();
        }
        // A batch of 15 (the first segment and half the second) is handed to the uplink, which
        // cannot reach the server; meanwhile all three segments age out: the batch's 15 are
        // held, the other 15 dropped.
        let batch = s.read(15).unwrap();
        s.sending(batch.last().unwrap().seq).unwrap();
        s.append(&payload, 3_600_000 + 1).unwrap();
        s.enforce(3_600_000 + 1).unwrap();
        let st = s.stats();
        assert_eq!((st.acked, st.held, st.dropped), (30, 15, 15), "{st:?}");
        // The batch (in memory) is delivered after all: nothing it carried was lost.
        s.ack(15).unwrap();
        let st = s.stats();
        assert_eq!((st.acked, st.held, st.dropped, st.pending), (30, 0, 15, 1), "{st:?}");
        assert_eq!(s.in_flight(), None);

        // The same, but the agent restarts before the batch gets through: the held records were
        // only in the last run's memory, so they are dropped.
        let first = s.stats().next_seq;
        assert_eq!(first, 31);
        for _ in 0..29 {
            s.append(&payload, 4_000_000).unwrap();
        }
        s.ack(first).unwrap();
        let batch = s.read(15).unwrap();
        s.sending(batch.last().unwrap().seq).unwrap();
        s.append(&payload, 8_000_000).unwrap();
        s.enforce(8_000_000).unwrap();
        assert_eq!(s.stats().held, 15);
        drop(s);
        let s = Spool::open(&d, limits).unwrap();
        let st = s.stats();
        assert_eq!((st.held, st.dropped), (0, 15 + 14 + 15), "{st:?}");
        assert_eq!(st.pending, 1);
        // And a new batch started without the last one's acknowledgement gives that one up.
        let mut s = s;
        for _ in 0..20 {
            s.append(&payload, 9_000_000).unwrap();
        }
        let batch = s.read(5).unwrap();
        s.sending(batch.last().unwrap().seq).unwrap();
        s.append(&payload, 13_000_000).unwrap();
        let st = s.stats();
        assert_eq!((st.held, st.dropped), (5, 44 + 15), "{st:?}");
        s.sending(st.acked).unwrap();
        assert_eq!((s.stats().held, s.stats().dropped), (0, 44 + 15 + 5), "{:?}", s.stats());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_bad_cursor_is_an_error_not_a_reset() {
        let d = dir("cursor");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("cursor"), "garbage").unwrap();
        assert_eq!(Spool::open(&d, small()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let _ = fs::remove_dir_all(&d);
    }
}
