//! The display settings (zone, theme, clock), kept in a cookie so the server renders every
//! time in the chosen zone; `GET/POST /ui/settings`.

use super::guard::{Csrf, Ctx};
use super::{layout, UiResult};
use axum::extract::Form;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;
use serde::Deserialize;

/// The settings cookie's name; the browser's own zone (sent by the script) is in
/// [`BROWSER_ZONE_COOKIE`].
pub const COOKIE: &str = "spade_ui";
pub const BROWSER_ZONE_COOKIE: &str = "spade_tz";

/// Where instants are shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The daemon host's zone.
    Daemon,
    Utc,
    /// The browser's zone, as its script reports it in a cookie.
    Browser,
    Named(String),
}

tokio::task_local! {
    /// The theme of the request being answered (set by the guard), for what is drawn
    /// without a `Ctx`: the error page.
    pub static THEME: Theme;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Auto,
    Light,
    Dark,
}

impl Theme {
    pub fn name(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub zone: Zone,
    pub theme: Theme,
    pub h24: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            zone: Zone::Daemon,
            theme: Theme::Auto,
            h24: true,
        }
    }
}

impl Settings {
    /// Reads the cookie value (`zone=UTC&theme=dark&clock=24`); unknown or bad parts keep
    /// their defaults.
    pub fn parse(value: &str) -> Settings {
        let mut s = Settings::default();
        for (k, v) in url::form_urlencoded::parse(value.as_bytes()) {
            match (&*k, &*v) {
                ("zone", "daemon") => s.zone = Zone::Daemon,
                ("zone", "UTC") => s.zone = Zone::Utc,
                ("zone", "browser") => s.zone = Zone::Browser,
                ("zone", name) if jiff::tz::TimeZone::get(name).is_ok() => {
                    s.zone = Zone::Named(name.to_owned());
                }
                ("theme", "light") => s.theme = Theme::Light,
                ("theme", "dark") => s.theme = Theme::Dark,
                ("theme", _) => s.theme = Theme::Auto,
                ("clock", "12") => s.h24 = false,
                ("clock", _) => s.h24 = true,
                _ => {}
            }
        }
        s
    }

    pub fn encode(&self) -> String {
        let zone = match &self.zone {
            Zone::Daemon => "daemon",
            Zone::Utc => "UTC",
            Zone::Browser => "browser",
            Zone::Named(n) => n,
        };
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("zone", zone)
            .append_pair("theme", self.theme.name())
            .append_pair("clock", if self.h24 { "24" } else { "12" })
            .finish()
    }

    /// The zone instants are shown in and its name; `browser` falls back to the daemon's
    /// zone until the script has reported the browser's.
    pub fn resolve_zone(&self, browser: Option<&str>) -> (jiff::tz::TimeZone, String) {
        let daemon = || {
            let tz = jiff::tz::TimeZone::system();
            let name = tz.iana_name().unwrap_or("UTC").to_owned();
            (tz, name)
        };
        match &self.zone {
            Zone::Daemon => daemon(),
            Zone::Utc => (jiff::tz::TimeZone::UTC, "UTC".to_owned()),
            Zone::Named(n) => match jiff::tz::TimeZone::get(n) {
                Ok(tz) => (tz, n.clone()),
                Err(_) => daemon(),
            },
            Zone::Browser => {
                match browser.and_then(|b| Some((jiff::tz::TimeZone::get(b).ok()?, b))) {
                    Some((tz, name)) => (tz, name.to_owned()),
                    None => daemon(),
                }
            }
        }
    }
}

pub async fn page(Extension(ctx): Extension<Ctx>) -> Response {
    let s = &ctx.settings;
    let named = match &s.zone {
        Zone::Named(n) => n.as_str(),
        _ => "",
    };
    let body = html! {
        h1 { "Settings" }
        p { "Times are shown in " strong { (ctx.display.zone_name) } "; session times always in their workflow's zone." }
        form method="post" action="/ui/settings" class="settings" {
            (ctx.csrf_field())
            fieldset {
                legend { "Display zone" }
                @for (value, label) in [("daemon", "Daemon default"), ("UTC", "UTC"), ("browser", "This browser's zone"), ("named", "A zone by name:")] {
                    @let checked = matches!((&s.zone, value), (Zone::Daemon, "daemon") | (Zone::Utc, "UTC") | (Zone::Browser, "browser") | (Zone::Named(_), "named"));
                    label.choice { input type="radio" name="zone" value=(value) checked[checked]; " " (label) }
                }
                label { span.sr-only { "IANA zone name" } input type="text" name="zone_name" value=(named) placeholder="Asia/Tokyo" autocomplete="off"; }
            }
            fieldset {
                legend { "Theme" }
                @for t in [super::settings::Theme::Auto, Theme::Light, Theme::Dark] {
                    label.choice { input type="radio" name="theme" value=(t.name()) checked[s.theme == t]; " " (t.name()) }
                }
            }
            fieldset {
                legend { "Clock" }
                label.choice { input type="radio" name="clock" value="24" checked[s.h24]; " 24-hour" }
                label.choice { input type="radio" name="clock" value="12" checked[!s.h24]; " 12-hour" }
            }
            button type="submit" { "Save" }
        }
    };
    layout::page(&ctx, "Settings", layout::Nav::Settings, body)
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: String,
    zone: String,
    #[serde(default)]
    zone_name: String,
    theme: String,
    clock: String,
}

pub async fn save(
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<SettingsForm>,
) -> UiResult<Response> {
    ctx.check(&Csrf(f.csrf))?;
    let zone = match f.zone.as_str() {
        "named" => {
            let name = f.zone_name.trim();
            if jiff::tz::TimeZone::get(name).is_err() {
                return Err(super::UiError::bad_request(format!(
                    "unknown time zone `{name}`: use an IANA name such as Asia/Tokyo or America/New_York"
                )));
            }
            name.to_owned()
        }
        other => other.to_owned(),
    };
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("zone", &zone)
        .append_pair("theme", &f.theme)
        .append_pair("clock", &f.clock)
        .finish();
    let settings = Settings::parse(&encoded);
    let cookie = cookie::Cookie::build((COOKIE, settings.encode()))
        .path("/ui")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::days(400))
        .build();
    Ok((
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to("/ui/settings"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_refuse_unknown_zones() {
        let s = Settings {
            zone: Zone::Named("Asia/Tokyo".into()),
            theme: Theme::Dark,
            h24: false,
        };
        assert_eq!(Settings::parse(&s.encode()), s);
        assert_eq!(Settings::parse("zone=Mars%2FOlympus").zone, Zone::Daemon);
        assert_eq!(Settings::parse("").theme, Theme::Auto);
        let (_, name) = Settings::parse("zone=browser").resolve_zone(Some("Europe/Paris"));
        assert_eq!(name, "Europe/Paris");
    }
}
