//! The web UI in a real browser: Debian's `chromium`, headless, driven through
//! `chromium-driver` (WebDriver) with fantoccini, against a real `spade serve`. `.ci/run`
//! installs both; when they are missing or cannot start, these tests say so and fail under
//! `CI=true` (and skip loudly otherwise). chromedriver and every chromium process of the
//! test's own profile are killed by pid when the test ends, however it ends. Screenshots go to
//! `target/ui-screenshots/`.
//!
//! One module per part of the UI: `live` (an attempt watched through a retry, and the
//! latency of a committed state), `log` (the log viewer on a 100,000-line log), `actions`
//! (kill, retries, backfill), `security` (cross-origin POST, CSP, login), `pages` (axe-core
//! in both themes, keyboard path, 320 px reflow, no JavaScript, screenshots).

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::api::Daemon;
use crate::daemon::processes_matching;
use crate::run::Project;
use fantoccini::{Client, Locator};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod actions;
mod live;
mod log;
mod pages;
mod security;

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A headless chromium behind its chromedriver; both killed on drop.
pub(crate) struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
}

/// Refuses to pass silently: a missing or broken browser fails under CI, and is a loud skip
/// on a developer's machine.
fn unavailable(why: &str) -> Option<Browser> {
    assert!(
        std::env::var_os("CI").is_none(),
        "browser tests cannot run: {why} (.ci/run installs chromium and chromium-driver)"
    );
    eprintln!("\n*** SKIPPED browser test: {why}; install them with `apt-get install -y chromium chromium-driver` ***\n");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a chromium session; the browser's zone is `tz`.
    pub(crate) fn start(tz: &str) -> Option<Browser> {
        Browser::start_with(tz, true)
    }

    /// A chromium whose pages run no script at all (Blink's `scriptEnabled=false`; WebDriver's
    /// own script commands still work, as they do not run as the page).
    pub(crate) fn start_without_javascript(tz: &str) -> Option<Browser> {
        Browser::start_with(tz, false)
    }

    fn start_with(tz: &str, javascript: bool) -> Option<Browser> {
        for bin in [CHROMIUM, DRIVER] {
            if !Path::new(bin).exists() {
                return unavailable(&format!("{bin} is not installed"));
            }
        }
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        #[allow(clippy::disallowed_methods)] // the WebDriver server is a test fixture, not a task
        let driver = std::process::Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let driver = match driver {
            Ok(d) => d,
            Err(e) => return unavailable(&format!("{DRIVER} does not start: {e}")),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut browser = Browser {
            rt,
            client: None,
            driver,
            profile,
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return unavailable("chromedriver did not listen within 30 s");
            }
            crate::daemon::pause();
        }
        let profile_arg = format!("--user-data-dir={}", browser.profile.path().display());
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,800".to_owned(),
            profile_arg,
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let caps: fantoccini::wd::Capabilities = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }))
        .unwrap();
        let connected = browser.rt.block_on(async {
            fantoccini::ClientBuilder::new(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                )
                .capabilities(caps)
                .connect(&url)
                .await
        });
        match connected {
            Ok(c) => {
                browser.client = Some(c);
                Some(browser)
            }
            Err(e) => unavailable(&format!("chromium does not start under chromedriver: {e}")),
        }
    }

    pub(crate) fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub(crate) fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    pub(crate) fn goto(&self, url: &str) {
        self.run(self.c().goto(url)).unwrap();
    }

    pub(crate) fn attr(&self, css: &str, name: &str) -> String {
        self.run(async {
            let e = self.c().find(Locator::Css(css)).await.unwrap();
            e.attr(name).await.unwrap().unwrap_or_default()
        })
    }

    /// The text of the first element matching `css`, read in one step (a live update may
    /// replace the element between a find and a read).
    pub(crate) fn text(&self, css: &str) -> String {
        let v = self
            .run(self.c().execute(
                "var e = document.querySelector(arguments[0]); return e ? e.innerText : null",
                vec![serde_json::Value::from(css)],
            ))
            .unwrap();
        v.as_str()
            .unwrap_or_else(|| panic!("no {css} on {}", self.url()))
            .to_owned()
    }

    pub(crate) fn click(&self, css: &str) {
        self.run(async {
            self.c()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"))
                .click()
                .await
                .unwrap();
        });
    }

    pub(crate) fn path(&self) -> String {
        self.run(self.c().current_url()).unwrap().path().to_owned()
    }

    /// Polls `ready` against the live page (no reloads) until it holds.
    pub(crate) fn wait_for(&self, what: &str, mut ready: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !ready(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            crate::daemon::pause();
        }
    }

    pub(crate) fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.run(self.c().screenshot()).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Browser {
    /// Runs `script` (a function body) in the page; returns its value.
    pub(crate) fn js(&self, script: &str) -> serde_json::Value {
        self.run(self.c().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` with a callback as its last argument (`arguments[0]`).
    pub(crate) fn js_async(&self, script: &str) -> serde_json::Value {
        self.run(self.c().execute_async(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub(crate) fn count(&self, css: &str) -> usize {
        self.run(self.c().find_all(Locator::Css(css)))
            .unwrap()
            .len()
    }

    pub(crate) fn url(&self) -> url::Url {
        self.run(self.c().current_url()).unwrap()
    }

    /// Types `text` into the field `css` (cleared first).
    pub(crate) fn fill(&self, css: &str, text: &str) {
        self.run(async {
            let field = self.c().find(Locator::Css(css)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(text).await.unwrap();
        });
    }

    /// Sends one key to whatever has the focus.
    pub(crate) fn key(&self, key: fantoccini::key::Key) {
        self.run(async {
            let e = self.c().active_element().await.unwrap();
            e.send_keys(&char::from(key).to_string()).await.unwrap();
        });
    }

    /// The viewport's width in CSS pixels (the window size is set, the viewport follows).
    pub(crate) fn resize(&self, width: u32, height: u32) {
        self.run(self.c().set_window_size(width, height)).unwrap();
    }

    /// The settings cookie's theme, set through the settings form as a reader would.
    pub(crate) fn theme(&self, base: &str, theme: &str) {
        self.goto(&format!("{base}/ui/settings"));
        self.click(&format!("input[name=theme][value='{theme}']"));
        self.click("form.settings button[type=submit]");
        self.wait_for("the theme to be saved", |b| {
            b.js("return document.documentElement.dataset.theme") == theme
        });
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        // Whatever chromium left running under this test's own profile, by pid.
        for pid in processes_matching(&self.profile.path().display().to_string()) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill takes two integers; the pid runs this test's profile.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The next-run `<time>` of the first workflow on the workflows page.
fn next_run(b: &Browser, base: &str) -> String {
    b.goto(&format!("{base}/ui/workflows"));
    b.attr("table.workflows tbody tr td:nth-child(5) time", "datetime")
}

fn choose_zone(b: &Browser, base: &str, value: &str, name: &str) {
    b.goto(&format!("{base}/ui/settings"));
    b.click(&format!("input[name=zone][value='{value}']"));
    b.run(async {
        let field = b
            .c()
            .find(Locator::Css("input[name=zone_name]"))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(name).await.unwrap();
    });
    b.click("form.settings button[type=submit]");
    b.wait_for("the settings to save", |b| b.path() == "/ui/settings");
}

#[test]
fn browser_workflows_page_renders_and_follows_the_display_zone_setting() {
    let Some(b) = Browser::start("Asia/Tokyo") else {
        return;
    };
    let project = Project::new();
    project.write("ny.dig", crate::ui::NEW_YORK);
    let d = Daemon::start(&project, &[]);
    b.goto(&format!("{}/ui/workflows", d.base));
    assert_eq!(b.run(b.c().title()).unwrap(), "Workflows · spade");
    assert!(b.text("table.workflows").contains("daily> 02:30:00"));
    b.screenshot("workflows-1280");
    choose_zone(&b, &d.base, "named", "Asia/Kolkata");
    let t = next_run(&b, &d.base);
    assert!(t.ends_with("+05:30"), "{t}");
    assert!(b
        .text("table.workflows tbody tr td:nth-child(5)")
        .contains("+05:30"));
    choose_zone(&b, &d.base, "UTC", "");
    assert!(next_run(&b, &d.base).ends_with("+00:00"));
    // The browser's own zone (TZ of the browser process): the script reports it once.
    choose_zone(&b, &d.base, "browser", "");
    b.goto(&format!("{}/ui/workflows", d.base));
    b.wait_for("the browser's zone to be used", |b| {
        b.attr("table.workflows tbody tr td:nth-child(5) time", "datetime")
            .ends_with("+09:00")
    });
    assert!(b.text("header .zone").contains("Asia/Tokyo"));
    // Reflow at 320 px: nothing wider than the viewport outside the scrolling tables.
    b.run(b.c().set_window_size(320, 800)).unwrap();
    let overflow = b
        .run(b.c().execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        ))
        .unwrap();
    assert_eq!(overflow.as_i64(), Some(0), "horizontal scroll at 320 px");
    b.screenshot("workflows-320");
}

#[test]
fn browser_schedule_preview_on_new_york_dst_days_matches_spade_schedule_preview() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write("ny.dig", crate::ui::NEW_YORK);
    let d = Daemon::start(&project, &[]);
    for after in ["2026-03-05T00:00:00-05:00", "2026-10-29T00:00:00-04:00"] {
        let q: String = url::form_urlencoded::byte_serialize(after.as_bytes()).collect();
        b.goto(&format!("{}/ui/workflows/ny?after={q}", d.base));
        let shown: Vec<String> = b.run(async {
            let mut out = Vec::new();
            for row in b
                .c()
                .find_all(Locator::Css("table.slots tbody tr"))
                .await
                .unwrap()
            {
                let s = row.find(Locator::Css("td.session time")).await.unwrap();
                let r = row.find(Locator::Css("td.run time")).await.unwrap();
                out.push(format!(
                    "{} {}",
                    s.attr("datetime").await.unwrap().unwrap(),
                    r.attr("datetime").await.unwrap().unwrap()
                ));
            }
            out
        });
        assert_eq!(
            shown,
            crate::ui::preview(&project, "ny.dig", after),
            "after {after}"
        );
        assert!(b.text("tr.offset-change").contains("offset changes"));
    }
    b.screenshot("workflow-dst");
}
