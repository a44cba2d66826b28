//! Times as the UI prints them: every time is a `<time datetime=...>` carrying its offset;
//! instants in the display zone (the settings cookie), session times in the workflow's zone,
//! and relative text ("in 42 min") beside the absolute time, never instead of it.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use maud::{html, Markup};

/// How times are shown on one page.
#[derive(Clone, Debug)]
pub struct Display {
    /// The zone instants are shown in.
    pub tz: TimeZone,
    /// Its name as shown (`UTC`, `Asia/Tokyo`).
    pub zone_name: String,
    pub h24: bool,
    /// The daemon's now (virtual under the test clock), for relative text.
    pub now: Timestamp,
}

/// RFC 3339 with the offset in `tz` (the `datetime` attribute).
pub fn machine(t: Timestamp, tz: &TimeZone) -> String {
    crate::schedule::format_rfc3339(t, tz)
}

/// `2026-03-08 03:00:00 -04:00`, or with a 12-hour clock `2026-03-08 3:00:00 AM -04:00`.
pub fn human(t: Timestamp, tz: &TimeZone, h24: bool) -> String {
    let z = t.to_zoned(tz.clone());
    let pattern = if h24 {
        "%Y-%m-%d %H:%M:%S %:z"
    } else {
        "%Y-%m-%d %-I:%M:%S %p %:z"
    };
    z.strftime(pattern).to_string()
}

/// "in 42 min", "3 h ago", "now".
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    let abs = secs.unsigned_abs();
    let amount = if abs < 45 {
        return "now".to_owned();
    } else if abs < 90 * 60 {
        format!("{} min", abs.div_ceil(60).max(1))
    } else if abs < 36 * 3600 {
        format!("{} h", (abs + 1800) / 3600)
    } else {
        format!("{} d", (abs + 43_200) / 86_400)
    };
    if secs > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

impl Display {
    /// An instant in the display zone, with relative text beside it.
    pub fn instant(&self, t: Timestamp) -> Markup {
        html! {
            time datetime=(machine(t, &self.tz)) { (human(t, &self.tz, self.h24)) }
            " " span.rel { "(" (relative(t, self.now)) ")" }
        }
    }

    /// A moment to wait for (a next run), with a countdown: the relative text carries the
    /// instant in milliseconds (`data-at`), so the script can keep it current; without the
    /// script it stays as the server rendered it. The page puts [`Display::now_ms`] in a
    /// `data-now` attribute of a container, which the script measures its clock against.
    pub fn countdown(&self, t: Timestamp) -> Markup {
        html! {
            time datetime=(machine(t, &self.tz)) { (human(t, &self.tz, self.h24)) }
            " " span.rel data-at=(t.as_millisecond()) { "(" (relative(t, self.now)) ")" }
        }
    }

    /// The daemon's now in milliseconds, for a `data-now` attribute beside countdowns.
    pub fn now_ms(&self) -> i64 {
        self.now.as_millisecond()
    }

    /// A stored instant (RFC 3339 text); unparsable text is shown as it is.
    pub fn stored(&self, text: &str) -> Markup {
        match text.parse::<Timestamp>() {
            Ok(t) => self.instant(t),
            Err(_) => html! { (text) },
        }
    }

    pub fn stored_opt(&self, text: Option<&str>) -> Markup {
        match text {
            Some(t) => self.stored(t),
            None => html! { span.none { "–" } },
        }
    }

    /// A session time in its workflow's zone (no relative text: it names a slot, not a moment
    /// to wait for).
    pub fn session(&self, t: Timestamp, tz: &TimeZone) -> Markup {
        html! { time datetime=(machine(t, tz)) { (human(t, tz, self.h24)) } }
    }

    pub fn session_text(&self, text: &str, zone: &str) -> Markup {
        let tz = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
        match text.parse::<Timestamp>() {
            Ok(t) => self.session(t, &tz),
            Err(_) => html! { (text) },
        }
    }
}

/// A duration as `1 h 02 min`, `3 min 05 s`, `4.2 s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{}.{} s", s, (ms % 1000) / 100)
    }
}

/// Milliseconds between two stored instants (the second defaulting to `now`).
pub fn between(start: &str, end: Option<&str>, now: Timestamp) -> Option<i64> {
    let start: Timestamp = start.parse().ok()?;
    let end: Timestamp = match end {
        Some(e) => e.parse().ok()?,
        None => now,
    };
    Some(end.as_millisecond() - start.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn times_carry_their_offset_in_both_clocks() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let at = t("2026-03-08T07:30:00Z");
        assert_eq!(machine(at, &ny), "2026-03-08T03:30:00-04:00");
        assert_eq!(human(at, &ny, true), "2026-03-08 03:30:00 -04:00");
        assert_eq!(human(at, &ny, false), "2026-03-08 3:30:00 AM -04:00");
    }

    #[test]
    fn relative_text_rounds_and_says_which_way() {
        let now = t("2026-01-01T00:00:00Z");
        assert_eq!(relative(t("2026-01-01T00:42:00Z"), now), "in 42 min");
        assert_eq!(relative(t("2025-12-31T21:00:00Z"), now), "3 h ago");
        assert_eq!(relative(t("2026-01-01T00:00:10Z"), now), "now");
        assert_eq!(relative(t("2026-01-04T00:00:00Z"), now), "in 3 d");
    }

    #[test]
    fn a_countdown_is_the_relative_text_with_its_instant_for_the_script() {
        let d = Display {
            tz: TimeZone::get("Asia/Tokyo").unwrap(),
            zone_name: "Asia/Tokyo".to_owned(),
            h24: true,
            now: t("2026-01-01T00:00:00Z"),
        };
        let at = t("2026-01-01T00:42:00Z");
        assert_eq!(
            d.countdown(at).into_string(),
            format!(
                "<time datetime=\"2026-01-01T09:42:00+09:00\">2026-01-01 09:42:00 +09:00</time> \
                 <span class=\"rel\" data-at=\"{}\">(in 42 min)</span>",
                at.as_millisecond()
            )
        );
        assert_eq!(d.now_ms(), 1_767_225_600_000);
    }

    #[test]
    fn relative_text_changes_unit_at_its_bounds() {
        let now = t("2026-01-01T00:00:00Z");
        let after = |s: i64| relative(now + jiff::SignedDuration::from_secs(s), now);
        assert_eq!(after(44), "now");
        assert_eq!(after(-44), "now");
        assert_eq!(after(45), "in 1 min");
        assert_eq!(after(61), "in 2 min");
        assert_eq!(after(5399), "in 90 min");
        assert_eq!(after(5400), "in 2 h");
        assert_eq!(after(-5400), "2 h ago");
        assert_eq!(after(36 * 3600 - 1), "in 36 h");
        assert_eq!(after(36 * 3600), "in 2 d");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(4_250), "4.2 s");
        assert_eq!(duration(185_000), "3 min 05 s");
        assert_eq!(duration(3_720_000), "1 h 02 min");
    }
}
