//! What each RTP port last sent, in a file mapped into memory, so that a holdfast started
//! after a crash continues the same RTP streams (docs/behaviour.md §13).
//!
//! A held caller's receiver knows holdfast's stream by its SSRC and expects the sequence
//! number to go on by one per packet (RFC 3550 §5.1). The counters change 50 times a second
//! per stream, far too often for the store; a write into a shared file mapping costs a
//! store instruction, and the kernel keeps the page when the process dies (`kill -9`
//! included), so the next process reads it back. A machine that loses power loses the
//! page and the calls with it, which is the same durability as the calls' SIP state.
//!
//! Layout: a 64-byte header (magic, first port, number of records), then one 32-byte record
//! per even port of `[sip] rtp_ports`, four little-endian `u64` words:
//!
//! | word | holds |
//! |---|---|
//! | 0 | SSRC `<< 32`, bit 0 set when the record is valid |
//! | 1 | timestamp `<< 32` \| sequence `<< 16` of the last packet sent |
//! | 2 | the IPv4 peer it latched to `<< 32` \| its port `<< 16`, bit 0 set when latched |
//! | 3 | Unix milliseconds of that last packet |
//!
//! Each process writes a new file and renames it over the old one, having read the old one
//! first: a mapping is never shared between two processes, and one process never truncates
//! a file another has mapped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: u64 = u64::from_le_bytes(*b"HFLEDGR1");
const HEADER_WORDS: usize = 8;
const RECORD_WORDS: usize = 4;
const VALID: u64 = 1;

/// Where an RTP stream was when its process stopped: enough to continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Sequence number of the last packet sent.
    pub sequence: u16,
    /// Timestamp of the last packet sent.
    pub timestamp: u32,
    /// When it was sent, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The peer the stream had latched to (symmetric RTP), when it is an IPv4 address.
    pub latched: Option<SocketAddr>,
}

/// The mapped file of one process.
pub struct Ledger {
    words: NonNull<AtomicU64>,
    len: usize,
    first_port: u16,
    records: usize,
}

// SAFETY: the mapping is only ever accessed through `&AtomicU64` (see `word`), which is
// `Sync`; the pointer is owned by this value and unmapped only in `Drop`, after every
// shard holding an `Arc<Ledger>` is gone.
unsafe impl Send for Ledger {}
// SAFETY: as above: shared access is atomic access.
unsafe impl Sync for Ledger {}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("first_port", &self.first_port)
            .field("records", &self.records)
            .finish()
    }
}

impl Ledger {
    /// Reads what `path` held (the streams of the process before), then replaces it with a
    /// fresh ledger for the even ports of `port_min..=port_max`.
    pub fn replace(
        path: &Path,
        port_min: u16,
        port_max: u16,
    ) -> io::Result<(Ledger, HashMap<u16, Resume>)> {
        let previous = match std::fs::read(path) {
            Ok(bytes) => parse(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        let first_port = port_min + port_min % 2;
        let records = if first_port > port_max {
            0
        } else {
            usize::from((port_max - first_port) / 2) + 1
        };
        let words = HEADER_WORDS + records * RECORD_WORDS;
        let len = words * 8;
        let fresh = path.with_extension("new");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh)?;
        file.set_len(len as u64)?;
        let ledger = Ledger::map(&file, len, first_port, records)?;
        ledger.word(0).store(MAGIC, Ordering::Relaxed);
        ledger
            .word(1)
            .store(u64::from(first_port), Ordering::Relaxed);
        ledger.word(2).store(records as u64, Ordering::Relaxed);
        std::fs::rename(&fresh, path)?;
        Ok((ledger, previous))
    }

    fn map(file: &File, len: usize, first_port: u16, records: usize) -> io::Result<Ledger> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of `len` bytes of a file this process just created
        // and sized to `len`; the kernel picks the address. Nothing else in this process
        // maps the file, and other processes only `read` it or rename a new file over its
        // path (the mapping keeps the old inode), so it is never truncated under us.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let words = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Ledger {
            words,
            len,
            first_port,
            records,
        })
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        assert!(index * 8 < self.len, "ledger word out of range");
        // SAFETY: `index` is inside the mapping (checked above), which is page-aligned
        // (so 8-aligned, as `AtomicU64` needs), valid for reads and writes for as long as
        // `self` lives, and only ever accessed atomically, by this process.
        unsafe { &*self.words.as_ptr().add(index) }
    }

    /// The record of `port`, when it is an even port of the range.
    pub fn record(&self, port: u16) -> Option<usize> {
        let offset = port.checked_sub(self.first_port)?;
        let record = usize::from(offset / 2);
        (offset % 2 == 0 && record < self.records).then_some(record)
    }

    fn base(record: usize) -> usize {
        HEADER_WORDS + record * RECORD_WORDS
    }

    /// A new stream on the port of `record`: what an earlier one sent is forgotten.
    pub fn clear(&self, record: usize) {
        let base = Self::base(record);
        for w in 0..RECORD_WORDS {
            self.word(base + w).store(0, Ordering::Relaxed);
        }
    }

    /// The RTP packet whose fixed header is `header` (RFC 3550 §5.1, clear text) was sent
    /// from the port of `record` to `peer` (`latched`: learnt from the peer's own RTP) at
    /// `at_ms` (Unix milliseconds).
    #[inline]
    pub fn sent(&self, record: usize, header: &[u8], peer: SocketAddr, latched: bool, at_ms: i64) {
        let Some(fixed) = header.get(..12) else {
            return;
        };
        let sequence = u16::from_be_bytes([fixed[2], fixed[3]]);
        let timestamp = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let ssrc = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        let peer = match peer.ip() {
            IpAddr::V4(ip) if latched => {
                (u64::from(u32::from(ip)) << 32) | (u64::from(peer.port()) << 16) | VALID
            }
            _ => 0,
        };
        let base = Self::base(record);
        self.word(base)
            .store((u64::from(ssrc) << 32) | VALID, Ordering::Relaxed);
        self.word(base + 1).store(
            (u64::from(timestamp) << 32) | (u64::from(sequence) << 16),
            Ordering::Relaxed,
        );
        self.word(base + 2).store(peer, Ordering::Relaxed);
        self.word(base + 3).store(at_ms as u64, Ordering::Relaxed);
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no reference into it outlives
        // `&self`.
        unsafe {
            libc::munmap(self.words.as_ptr().cast(), self.len);
        }
    }
}

/// The valid records of a ledger file, by port; nothing for a file that is not one.
fn parse(bytes: &[u8]) -> HashMap<u16, Resume> {
    let word = |i: usize| -> Option<u64> {
        let b = bytes.get(i * 8..i * 8 + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let mut found = HashMap::new();
    if word(0) != Some(MAGIC) {
        return found;
    }
    let (Some(first), Some(records)) = (word(1), word(2)) else {
        return found;
    };
    for record in 0..records.min(u64::from(u16::MAX)) as usize {
        let base = HEADER_WORDS + record * RECORD_WORDS;
        let (Some(w0), Some(w1), Some(w2), Some(w3)) =
            (word(base), word(base + 1), word(base + 2), word(base + 3))
        else {
            break;
        };
        if w0 & VALID == 0 {
            continue;
        }
        let Ok(port) = u16::try_from(first + 2 * record as u64) else {
            break;
        };
        let latched = (w2 & VALID != 0).then(|| {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from((w2 >> 32) as u32)),
                (w2 >> 16) as u16,
            )
        });
        found.insert(
            port,
            Resume {
                ssrc: (w0 >> 32) as u32,
                sequence: (w1 >> 16) as u16,
                timestamp: (w1 >> 32) as u32,
                sent_at_ms: w3 as i64,
                latched,
            },
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ledger_reads_what_the_old_one_last_wrote_and_starts_empty() {
        let dir = std::env::temp_dir().join(format!("holdfast-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rtp.ledger");
        let _ = std::fs::remove_file(&path);
        let (first, previous) = Ledger::replace(&path, 40_001, 40_011).unwrap();
        assert!(previous.is_empty());
        assert_eq!(first.record(40_001), None, "odd");
        assert_eq!(first.record(40_002), Some(0));
        assert_eq!(first.record(40_010), Some(4));
        assert_eq!(first.record(40_012), None, "past the range");
        let peer: SocketAddr = "127.0.0.1:7078".parse().unwrap();
        let v6: SocketAddr = "[::1]:7078".parse().unwrap();
        let header = |ssrc: u32, sequence: u16, timestamp: u32| {
            let mut h = vec![0x80, 0];
            h.extend(sequence.to_be_bytes());
            h.extend(timestamp.to_be_bytes());
            h.extend(ssrc.to_be_bytes());
            h
        };
        first.sent(
            0,
            &header(0xdead_beef, 100, 16_000),
            peer,
            false,
            1_700_000_000_000,
        );
        first.sent(
            0,
            &header(0xdead_beef, 101, 16_160),
            peer,
            true,
            1_700_000_000_020,
        );
        first.sent(4, &header(7, u16::MAX, u32::MAX), v6, true, 5);
        first.sent(2, &header(9, 1, 1), peer, true, 1);
        first.sent(3, &[0x80], peer, true, 1);
        first.clear(2);
        // The process dies: the file keeps what was written. The next one reads it.
        drop(first);
        let (second, previous) = Ledger::replace(&path, 40_000, 40_100).unwrap();
        assert_eq!(previous.len(), 2, "{previous:?}");
        assert_eq!(
            previous[&40_002],
            Resume {
                ssrc: 0xdead_beef,
                sequence: 101,
                timestamp: 16_160,
                sent_at_ms: 1_700_000_000_020,
                latched: Some(peer),
            }
        );
        assert_eq!(previous[&40_010].sequence, u16::MAX);
        assert_eq!(previous[&40_010].latched, None);
        drop(second);
        let (_, previous) = Ledger::replace(&path, 40_000, 40_100).unwrap();
        assert!(previous.is_empty(), "the second process sent nothing");
        assert!(parse(b"not a ledger").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
