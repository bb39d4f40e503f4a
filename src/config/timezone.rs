//! The time zone replies show their times in (`bot.timezone` /
//! `READBOT_TIMEZONE`, default [`defaults::TIMEZONE`](super::defaults::TIMEZONE)).
//!
//! Any IANA zone name is accepted (`Asia/Shanghai`, `Europe/Berlin`, `UTC`):
//! the zone rules come from `jiff`'s compiled-in copy of the IANA database, so
//! a zone with daylight saving time shows the right offset all year, and a
//! reply reads the same on a host without tzdata (distroless, a bare CI
//! runner) as on a desktop.

use jiff::tz::TimeZone;

/// A validated reply time zone: its IANA name (shown in replies) and rules.
#[derive(Clone)]
pub struct ReplyTimeZone {
    name: String,
    tz: TimeZone,
}

impl std::fmt::Debug for ReplyTimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReplyTimeZone").field(&self.name).finish()
    }
}

impl PartialEq for ReplyTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl ReplyTimeZone {
    /// Looks `name` up in the IANA database (case-insensitive); the message
    /// of an error says what to write instead.
    pub fn parse(name: &str) -> Result<Self, String> {
        let trimmed = name.trim();
        let tz = TimeZone::get(trimmed).map_err(|_| {
            format!(
                "{name:?} is not an IANA time zone name (examples: Asia/Shanghai, Asia/Tokyo, Europe/Berlin, UTC)"
            )
        })?;
        let name = tz.iana_name().unwrap_or(trimmed).to_owned();
        Ok(Self { name, tz })
    }

    /// UTC, for machine-facing text (API error messages, logs).
    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    /// The zone's IANA name, as replies show it (`Asia/Shanghai`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ms` (Unix epoch milliseconds) as `YYYY-MM-DD HH:MM` in this zone;
    /// `?` for a time outside the calendar's range.
    pub fn format_minutes(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned_datetime(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|_| String::from("?"))
    }

    /// The instant (epoch ms) of `hour:minute` today in this zone, as seen at
    /// `now` (or tomorrow); `None` for an hour or minute out of range. A
    /// time a daylight-saving change skips or repeats takes the offset in
    /// force before the change.
    pub fn at_clock(&self, now: i64, tomorrow: bool, hour: u8, minute: u8) -> Option<i64> {
        let today = jiff::Timestamp::from_millisecond(now)
            .ok()?
            .to_zoned_datetime(self.tz.clone())
            .date();
        let day = if tomorrow {
            today.tomorrow().ok()?
        } else {
            today
        };
        let time =
            jiff::civil::Time::new(i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, 0, 0)
                .ok()?;
        let at = jiff::civil::DateTime::from_parts(day, time)
            .to_zoned_datetime(self.tz.clone())
            .ok()?;
        Some(at.timestamp().as_millisecond())
    }
}

impl ReplyTimeZone {
    /// The calendar month (`year`, `month` 1–12) that `ms` (Unix epoch
    /// milliseconds) falls in, in this zone; `None` outside the calendar's range.
    pub fn year_month(&self, ms: i64) -> Option<(i32, u32)> {
        let z = jiff::Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned_datetime(self.tz.clone());
        Some((i32::from(z.year()), u32::try_from(z.month()).ok()?))
    }

    /// `ms` as `YYYY-MM-DD HH:MM:SS` in this zone (read times on the notice
    /// page); `?` outside the calendar's range.
    pub fn format_seconds(&self, ms: i64) -> String {
        self.strftime(ms, "%Y-%m-%d %H:%M:%S")
    }

    /// `ms` as RFC 3339 with this zone's offset (`2024-02-19T15:20:04+08:00`),
    /// for exports; `?` outside the calendar's range.
    pub fn format_rfc3339(&self, ms: i64) -> String {
        self.strftime(ms, "%Y-%m-%dT%H:%M:%S%:z")
    }

    fn strftime(&self, ms: i64, format: &str) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned_datetime(self.tz.clone())
                    .strftime(format)
                    .to_string()
            })
            .unwrap_or_else(|_| String::from("?"))
    }
}

impl Default for ReplyTimeZone {
    /// [`defaults::TIMEZONE`](super::defaults::TIMEZONE) (China has one zone
    /// and no daylight saving time: UTC+8 all year).
    fn default() -> Self {
        Self::parse(super::defaults::TIMEZONE).unwrap_or_else(|_| Self {
            name: "UTC+08:00".into(),
            tz: TimeZone::fixed(jiff::tz::offset(8)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_shanghai_utc_plus_8() {
        let z = ReplyTimeZone::default();
        assert_eq!(z.name(), "Asia/Shanghai");
        // 2024-02-19 07:20:04 UTC = 15:20 in UTC+8.
        assert_eq!(z.format_minutes(1_708_327_204_136), "2024-02-19 15:20");
        assert_eq!(z.format_minutes(0), "1970-01-01 08:00");
        assert_eq!(z.format_seconds(1_708_327_204_136), "2024-02-19 15:20:04");
        assert_eq!(
            z.format_rfc3339(1_708_327_204_136),
            "2024-02-19T15:20:04+08:00"
        );
        assert_eq!(z.format_seconds(i64::MAX), "?");
    }

    #[test]
    fn months_turn_at_local_midnight() {
        // 2025-02-28 16:30 UTC is already March 1st in Shanghai.
        let ms = 1_740_760_200_000;
        assert_eq!(ReplyTimeZone::default().year_month(ms), Some((2025, 3)));
        assert_eq!(ReplyTimeZone::utc().year_month(ms), Some((2025, 2)));
        assert_eq!(ReplyTimeZone::utc().year_month(i64::MAX), None);
    }

    #[test]
    fn zones_with_daylight_saving_follow_their_rules() {
        let berlin = ReplyTimeZone::parse("europe/berlin").unwrap();
        assert_eq!(berlin.name(), "Europe/Berlin");
        // 2024-01-15 12:00 UTC = 13:00 CET; 2024-07-15 12:00 UTC = 14:00 CEST.
        assert_eq!(berlin.format_minutes(1_705_320_000_000), "2024-01-15 13:00");
        assert_eq!(berlin.format_minutes(1_721_044_800_000), "2024-07-15 14:00");
        let utc = ReplyTimeZone::parse(" UTC ").unwrap();
        assert_eq!(utc.format_minutes(0), "1970-01-01 00:00");
    }

    #[test]
    fn clock_times_today_and_tomorrow_in_the_zone() {
        let z = ReplyTimeZone::default();
        // 2024-02-19 15:20 in Shanghai.
        let now = 1_708_327_204_136;
        let at = z.at_clock(now, false, 17, 0).unwrap();
        assert_eq!(z.format_minutes(at), "2024-02-19 17:00");
        let at = z.at_clock(now, true, 9, 5).unwrap();
        assert_eq!(z.format_minutes(at), "2024-02-20 09:05");
        // 23:30 UTC is already "tomorrow" in Shanghai.
        let late = 1_708_385_400_000; // 2024-02-19 23:30 UTC
        let at = z.at_clock(late, false, 9, 0).unwrap();
        assert_eq!(z.format_minutes(at), "2024-02-20 09:00");
        assert_eq!(z.at_clock(now, false, 24, 0), None);
        assert_eq!(z.at_clock(now, false, 7, 60), None);
    }

    #[test]
    fn unknown_names_and_absurd_times_are_refused_or_shown_as_unknown() {
        let err = ReplyTimeZone::parse("Mars/Olympus").unwrap_err();
        assert!(
            err.contains("Mars/Olympus") && err.contains("Asia/Shanghai"),
            "{err}"
        );
        assert!(ReplyTimeZone::parse("").is_err());
        assert_eq!(ReplyTimeZone::default().format_minutes(i64::MAX), "?");
        assert_eq!(ReplyTimeZone::default().format_minutes(i64::MIN), "?");
    }
}
