//! Recordings on disk: where a call's file goes, what a day holds, and retention.
//!
//! ```text
//!  <recordings>/<YYYY-MM-DD>/<call-id>.wav     (the UTC day the call was bridged)
//! ```

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::wav;

/// The UTC day `YYYY-MM-DD` of a Unix millisecond time.
#[must_use]
pub fn day_of(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

/// The file of the call `call_id` bridged at `unix_ms`. Characters a file name should not
/// hold (`/`, control characters, spaces…) become `_`; a Call-ID is at most 128 of them.
#[must_use]
pub fn path_for(dir: &Path, unix_ms: i64, call_id: &str) -> PathBuf {
    let mut name: String = call_id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_+=~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    dir.join(day_of(unix_ms)).join(format!("{name}.wav"))
}

/// One recording file, as `GET /api/recordings` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingFile {
    /// The file name without `.wav` (the call's Call-ID, made safe for a file name).
    pub call_id: String,
    /// Where it is.
    pub path: String,
    /// Its size on disk.
    pub bytes: u64,
    /// The audio it holds, by its header (what a player plays).
    pub seconds: u64,
}

/// The recordings of `day` (`YYYY-MM-DD`), by name. A day with none is an empty list.
pub fn list(dir: &Path, day: &str) -> io::Result<Vec<RecordingFile>> {
    let entries = match std::fs::read_dir(dir.join(day)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "wav") {
            continue;
        }
        let bytes = std::fs::metadata(&path)?.len();
        let frames = std::fs::File::open(&path)
            .ok()
            .and_then(|f| wav::frames_of(&f))
            .unwrap_or(0);
        files.push(RecordingFile {
            call_id: path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            path: path.display().to_string(),
            bytes,
            seconds: frames / u64::from(wav::RATE),
        });
    }
    files.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    Ok(files)
}

/// Deletes the day directories older than `keep_days` days before the day of `unix_ms`
/// (`keep_days = 1` keeps only today's). Only directories named as a day are touched;
/// returns the days removed.
pub fn sweep(dir: &Path, keep_days: u32, unix_ms: i64) -> io::Result<Vec<String>> {
    let today: jiff::civil::Date = day_of(unix_ms).parse().map_err(io::Error::other)?;
    let oldest_kept = today
        .checked_sub(jiff::Span::new().days(i64::from(keep_days.saturating_sub(1))))
        .map_err(io::Error::other)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(day) = name.parse::<jiff::civil::Date>() else {
            continue;
        };
        if day < oldest_kept && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T10:00:00Z.
    const NOON_ISH: i64 = 1_796_205_600_000;

    #[test]
    fn a_call_goes_under_its_utc_day_with_a_safe_name() {
        let dir = Path::new("/rec");
        assert_eq!(day_of(NOON_ISH), "2026-12-02");
        assert_eq!(
            path_for(dir, NOON_ISH, "1-234@127.0.0.1"),
            Path::new("/rec/2026-12-02/1-234@127.0.0.1.wav")
        );
        assert_eq!(
            path_for(dir, NOON_ISH, "../../etc/x y"),
            Path::new("/rec/2026-12-02/_.._.._etc_x_y.wav")
        );
        assert_eq!(
            path_for(dir, NOON_ISH, ""),
            Path::new("/rec/2026-12-02/_.wav")
        );
    }

    #[test]
    fn sweeping_keeps_the_last_days_and_anything_not_a_day() {
        let dir = std::env::temp_dir().join(format!("holdfast-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for day in [
            "2026-11-29",
            "2026-11-30",
            "2026-12-01",
            "2026-12-02",
            "notes",
        ] {
            std::fs::create_dir_all(dir.join(day)).unwrap();
        }
        std::fs::write(dir.join("2026-12-01").join("a.wav"), wav::header(8_000)).unwrap();
        let listed = list(&dir, "2026-12-01").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].call_id.as_str(),
                listed[0].seconds,
                listed[0].bytes
            ),
            ("a", 1, 44)
        );
        assert!(list(&dir, "2020-01-01").unwrap().is_empty());
        assert_eq!(
            sweep(&dir, 2, NOON_ISH).unwrap(),
            ["2026-11-29", "2026-11-30"]
        );
        assert!(dir.join("2026-12-01").join("a.wav").exists());
        assert!(dir.join("notes").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
