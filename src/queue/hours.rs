//! Hours of operation, pure (docs/behaviour.md §3 "Hours"): `["Mon-Fri 08:00-18:00",
//! "Sat 09:00-13:00"]` in an IANA time zone. Whether a queue is open at a Unix time, and when
//! it next opens or closes; daylight saving time is the time-zone database's (jiff), so
//! "08:00" is 08:00 on the wall clock of that zone on both sides of a change.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

/// One line of `hours`: on these weekdays, from `start` to `end` minutes after midnight
/// (`end` up to 1440; a range does not cross midnight: write two).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    days: [bool; 7],
    start: u16,
    end: u16,
}

/// A queue's opening hours in its time zone; no ranges means always open.
#[derive(Debug, Clone)]
pub struct Schedule {
    ranges: Vec<Range>,
    tz: TimeZone,
}

fn day_index(name: &str) -> Option<usize> {
    DAYS.iter().position(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn minutes(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn parse_range(line: &str) -> Result<Range, String> {
    let shape = || format!("{line:?} is not like \"Mon-Fri 08:00-18:00\"");
    let (days_text, times) = line.trim().split_once(' ').ok_or_else(shape)?;
    let mut days = [false; 7];
    for part in days_text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (
                    day_index(from).ok_or_else(shape)?,
                    day_index(to).ok_or_else(shape)?,
                );
                // "Fri-Mon" wraps over the weekend.
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day_index(part).ok_or_else(shape)?] = true,
        }
    }
    let (start, end) = times.trim().split_once('-').ok_or_else(shape)?;
    let (start, end) = (
        minutes(start).ok_or_else(shape)?,
        minutes(end).ok_or_else(shape)?,
    );
    if start >= end {
        return Err(format!(
            "{line:?}: the range ends before it starts (a range cannot cross midnight; write two)"
        ));
    }
    Ok(Range { days, start, end })
}

impl Schedule {
    /// Parses `hours` in the zone named `timezone`; the error says what is wrong.
    pub fn parse(hours: &[String], timezone: &str) -> Result<Self, String> {
        let tz = TimeZone::get(timezone).map_err(|_| {
            format!("unknown time zone {timezone:?} (an IANA name such as \"Europe/Berlin\")")
        })?;
        let ranges = hours
            .iter()
            .map(|line| parse_range(line))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { ranges, tz })
    }

    /// Whether no hours are set (always open).
    pub fn is_always_open(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the queue is open at `unix_ms`.
    pub fn is_open(&self, unix_ms: i64) -> bool {
        if self.ranges.is_empty() {
            return true;
        }
        let Ok(at) = Timestamp::from_millisecond(unix_ms) else {
            return true;
        };
        let local = at.to_zoned_datetime(self.tz.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = u16::from(local.hour() as u8) * 60 + u16::from(local.minute() as u8);
        self.ranges
            .iter()
            .any(|r| r.days[day] && r.start <= minute && minute < r.end)
    }

    /// The next opening or closing after `unix_ms`, as Unix ms; `None` when always open.
    pub fn next_change(&self, unix_ms: i64) -> Option<i64> {
        if self.ranges.is_empty() {
            return None;
        }
        let at = Timestamp::from_millisecond(unix_ms).ok()?;
        let today = at.to_zoned_datetime(self.tz.clone()).date();
        let mut best: Option<i64> = None;
        for offset in 0..=8 {
            let Ok(date) = today.checked_add(offset.days()) else {
                continue;
            };
            let day = date.weekday().to_monday_zero_offset() as usize;
            for range in self.ranges.iter().filter(|r| r.days[day]) {
                for minute in [range.start, range.end] {
                    let Some(ms) = self.unix_at(date, minute) else {
                        continue;
                    };
                    if ms > unix_ms && best.is_none_or(|b| ms < b) {
                        best = Some(ms);
                    }
                }
            }
        }
        best
    }

    /// `minute` after midnight of `date` on this zone's wall clock, as Unix ms (a time in a
    /// daylight-saving gap is moved forward by the gap).
    fn unix_at(&self, date: Date, minute: u16) -> Option<i64> {
        let (date, minute) = if minute >= 1440 {
            (date.checked_add(1.day()).ok()?, minute - 1440)
        } else {
            (date, minute)
        };
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        let zoned = date
            .to_datetime(time)
            .to_zoned_datetime(self.tz.clone())
            .ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn berlin(hours: &[&str]) -> Schedule {
        let hours: Vec<String> = hours.iter().map(|s| (*s).to_owned()).collect();
        Schedule::parse(&hours, "Europe/Berlin").unwrap()
    }

    #[test]
    fn weekday_ranges_in_the_zones_wall_clock() {
        let s = berlin(&["Mon-Fri 08:00-18:00", "Sat 09:00-13:00"]);
        // Wednesday 2026-12-02, Berlin is UTC+1 in winter.
        assert!(!s.is_open(ms("2026-12-02T06:59:59Z")));
        assert!(s.is_open(ms("2026-12-02T07:00:00Z")));
        assert!(s.is_open(ms("2026-12-02T16:59:59Z")));
        assert!(!s.is_open(ms("2026-12-02T17:00:00Z")));
        // Saturday morning, Sunday closed.
        assert!(s.is_open(ms("2026-12-05T08:30:00Z")));
        assert!(!s.is_open(ms("2026-12-06T10:00:00Z")));
        // Friday evening: next opening is Saturday 09:00 Berlin.
        assert_eq!(
            s.next_change(ms("2026-12-04T18:00:00Z")),
            Some(ms("2026-12-05T08:00:00Z"))
        );
        assert!(berlin(&[]).is_open(0) && berlin(&[]).next_change(0).is_none());
    }

    #[test]
    fn opening_hours_follow_daylight_saving_time() {
        let s = berlin(&["Mon-Sun 08:00-18:00"]);
        // 2026-03-29: Berlin moves from UTC+1 to UTC+2 at 02:00.
        // The same UTC time, 06:30: 07:30 CET on Saturday (closed), 08:30 CEST on Sunday.
        assert!(!s.is_open(ms("2026-03-28T06:30:00Z")), "07:30 CET");
        assert!(s.is_open(ms("2026-03-29T06:30:00Z")), "08:30 CEST");
        assert!(s.is_open(ms("2026-03-29T06:00:00Z")), "08:00 CEST");
        assert!(!s.is_open(ms("2026-03-29T05:59:59Z")), "07:59:59 CEST");
        assert_eq!(
            s.next_change(ms("2026-03-28T18:00:00Z")),
            Some(ms("2026-03-29T06:00:00Z")),
            "the opening after the change is an hour earlier in UTC"
        );
        // A range starting inside the gap (02:30 does not exist that night) opens an hour
        // later on the wall clock, 03:30 CEST.
        let gap = berlin(&["Sun 02:30-04:00"]);
        assert_eq!(
            gap.next_change(ms("2026-03-29T00:00:00Z")),
            Some(ms("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn bad_lines_and_zones_are_named() {
        let parse = |line: &str, tz: &str| Schedule::parse(&[line.to_owned()], tz).map(|_| ());
        assert!(
            parse("Mon-Fri 08:00-18:00", "Mars/Olympus")
                .unwrap_err()
                .contains("unknown time zone")
        );
        assert!(
            parse("Monday 08:00-18:00", "UTC")
                .unwrap_err()
                .contains("not like")
        );
        assert!(
            parse("Mon 8:00-18:00", "UTC")
                .unwrap_err()
                .contains("not like")
        );
        assert!(
            parse("Mon 18:00-08:00", "UTC")
                .unwrap_err()
                .contains("cross midnight")
        );
        assert!(parse("Fri-Mon 00:00-24:00", "UTC").is_ok());
        let weekend = Schedule::parse(&["Sat,Sun 10:00-12:00".to_owned()], "UTC").unwrap();
        assert!(weekend.is_open(ms("2026-12-06T11:00:00Z")));
        assert!(!weekend.is_open(ms("2026-12-07T11:00:00Z")));
    }
}
