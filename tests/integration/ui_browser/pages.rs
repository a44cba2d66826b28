//! Every page in the browser: axe-core (from the npm registry, `.ci/run` installs it under
//! `target/npm`) with no serious or critical violation in the light and dark themes, no CSP
//! violation, no horizontal scroll at 320 px, screenshots at 1280x800 and 390x844 in both
//! themes; a keyboard-only path from the workflows page to a failed task's log with the focus
//! always visible; and every page usable with JavaScript off.

use super::Browser;
use crate::api::Daemon;
use crate::run::Project;
use regex::Regex;

const AXE_VERSION: &str = "4.10.3";

/// axe-core's browser build, or None (and a failure under CI) when it is not installed.
fn axe_source() -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/npm/node_modules/axe-core/axe.min.js");
    let pinned = std::fs::read_to_string(path.with_file_name("package.json"))
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{AXE_VERSION}\"")));
    match std::fs::read_to_string(&path) {
        Ok(s) if pinned => Some(s),
        Ok(_) => {
            let why = format!(
                "axe-core at {} is not version {AXE_VERSION} (.ci/run installs it)",
                path.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n*** SKIPPED the axe-core checks: {why} ***\n");
            None
        }
        Err(e) => {
            let why = format!(
                "axe-core is not installed at {} ({e}): run `npm install --prefix target/npm axe-core@{AXE_VERSION}` (.ci/run does)",
                path.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n*** SKIPPED the axe-core checks: {why} ***\n");
            None
        }
    }
}

/// The serious and critical axe-core violations of the current page, one line each.
fn axe(b: &Browser, source: &str) -> Vec<String> {
    b.js(&format!("{source}\n;return typeof axe"));
    let found = b.js_async(
        "var done = arguments[arguments.length - 1]; \
         axe.run(document, {resultTypes: ['violations']}).then(function (r) { \
           if (r.passes.length === 0) { done(['axe checked nothing']); return; } \
           done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; }) \
             .map(function (v) { return v.impact + ' ' + v.id + ': ' + v.help + ' at ' + \
               v.nodes.slice(0, 4).map(function (n) { return n.target.join(' ') + ' (' + (n.failureSummary || '').replace(/\\s+/g, ' ') + ')'; }).join('; '); })); \
         }, function (e) { done(['axe failed: ' + e]); })",
    );
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The CSP violations the current document has seen since it loaded (a buffered
/// ReportingObserver also sees those from before it was made).
pub(crate) fn csp_violations(b: &Browser) -> Vec<String> {
    let v = b.js_async(
        "var done = arguments[0]; var got = []; \
         var keep = function (rs) { rs.forEach(function (r) { got.push(r.body.effectiveDirective + ' ' + r.body.blockedURL + ' ' + r.body.sourceFile + ':' + r.body.lineNumber); }); }; \
         var o = new ReportingObserver(keep, {types: ['csp-violation'], buffered: true}); o.observe(); \
         setTimeout(function () { keep(o.takeRecords()); o.disconnect(); done(got); }, 150);",
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The outermost elements that stick out of the viewport, to say what overflows.
const WIDE: &str = "var w = document.documentElement.clientWidth; var out = []; \
    document.querySelectorAll('body *').forEach(function (e) { \
      var p = e.parentElement; \
      if (e.getBoundingClientRect().right > w + 1 && p.getBoundingClientRect().right <= w + 1) \
        out.push(e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' in ' + p.tagName.toLowerCase() + (p.className ? '.' + p.className : '')); }); \
    return out.slice(0, 5).join(', ')";

fn horizontal_overflow(b: &Browser) -> i64 {
    b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .as_i64()
        .unwrap()
}

/// A project with a scheduled workflow whose attempt failed, one that succeeded and one that
/// runs; its pages, each with the selector of its content.
struct Site {
    project: Project,
    d: Daemon,
    failed: String,
    running: String,
    failed_task: String,
}

fn site() -> Site {
    let project = Project::new();
    project.write(
        "ops.dig",
        "timezone: America/New_York\nschedule:\n  daily>: 02:30:00\n\
         +prepare:\n  echo>: preparing ${session_date}\n+load:\n  sh>: echo loading the table; echo 'table missing' >&2; exit 3\n",
    );
    project.write("good.dig", "+a:\n  echo>: fine\n");
    project.write("slow.dig", "+wait:\n  sh>: sleep 56\n");
    let d = Daemon::start(&project, &[]);
    let good = crate::ui::start(&d, "good", "2026-01-05");
    d.wait_done(&good);
    let failed = crate::ui::start(&d, "ops", "2026-01-05");
    assert_eq!(d.wait_done(&failed)["status"], "error");
    let running = crate::ui::start(&d, "slow", "2026-01-05");
    let page = crate::ui::Tab::new(&d.base).get(&format!("/ui/attempts/{failed}"));
    let failed_task = Regex::new(&format!(
        r#"href="/ui/attempts/{failed}/tasks/(\d+)"><code>\+load<"#
    ))
    .unwrap()
    .captures(&page.body)
    .unwrap_or_else(|| panic!("{}", page.body))[1]
        .to_owned();
    Site {
        project,
        d,
        failed,
        running,
        failed_task,
    }
}

impl Site {
    /// `(name, path, selector of the page's content)` for every page.
    fn pages(&self) -> Vec<(&'static str, String, &'static str)> {
        let (f, r, t) = (&self.failed, &self.running, &self.failed_task);
        vec![
            ("overview", "/ui".to_owned(), "main h2"),
            (
                "workflows",
                "/ui/workflows".to_owned(),
                "table.workflows ol.strip",
            ),
            (
                "workflow",
                "/ui/workflows/ops".to_owned(),
                "table.slots tbody tr",
            ),
            (
                "sessions",
                "/ui/sessions".to_owned(),
                "table.sessions tbody tr",
            ),
            (
                "attempt",
                format!("/ui/attempts/{f}"),
                "table.tasks td.error",
            ),
            (
                "attempt-running",
                format!("/ui/attempts/{r}"),
                "table.tasks",
            ),
            (
                "timeline",
                format!("/ui/attempts/{f}?tab=timeline"),
                "figure.timeline svg rect.bar",
            ),
            (
                "task",
                format!("/ui/attempts/{f}/tasks/{t}"),
                "main pre.error",
            ),
            ("log", format!("/ui/attempts/{f}/tasks/{t}/log"), "pre#log"),
            (
                "log-search",
                format!("/ui/attempts/{f}/tasks/{t}/log?q=load"),
                "section.results p.count",
            ),
            ("settings", "/ui/settings".to_owned(), "form.settings"),
            (
                "confirm-kill",
                format!("/ui/confirm/kill?attempt={r}"),
                "form.confirm button",
            ),
            (
                "confirm-retry",
                format!("/ui/confirm/retry_failed?attempt={f}"),
                "form.confirm button",
            ),
            (
                "confirm-backfill",
                "/ui/confirm/backfill?workflow=ops&from=2026-01-01&to=2026-01-03".to_owned(),
                "ol.backfill li",
            ),
            ("login", "/ui/login".to_owned(), "main h1"),
            ("not-found", "/ui/attempts/999999".to_owned(), "p.error"),
        ]
    }
}

#[test]
fn browser_every_page_passes_axe_in_both_themes_reflows_at_320_px_and_breaks_no_csp() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let axe_js = axe_source();
    let s = site();
    let mut problems = Vec::new();
    for theme in ["light", "dark"] {
        b.resize(1280, 800);
        b.theme(&s.d.base, theme);
        for (width, height) in [(1280, 800), (390, 844), (320, 800)] {
            b.resize(width, height);
            for (name, path, content) in s.pages() {
                b.goto(&format!("{}{path}", s.d.base));
                if b.count(content) == 0 {
                    problems.push(format!("{name}: no {content}"));
                }
                if b.js("return document.documentElement.dataset.theme") != theme {
                    problems.push(format!("{name}: not in the {theme} theme"));
                }
                if width == 320 {
                    let overflow = horizontal_overflow(&b);
                    if overflow != 0 {
                        problems.push(format!(
                            "{name} ({theme}): {overflow} px of horizontal scroll at 320 px, from {}",
                            b.js(WIDE)
                        ));
                    }
                    continue;
                }
                b.screenshot(&format!("{name}-{theme}-{width}x{height}"));
                if width == 1280 {
                    for v in csp_violations(&b) {
                        problems.push(format!("{name} ({theme}): CSP violation {v}"));
                    }
                    if let Some(source) = &axe_js {
                        for v in axe(&b, source) {
                            problems.push(format!("{name} ({theme}): {v}"));
                        }
                    }
                }
            }
        }
    }
    // The check can fail: a button without a name is a critical violation.
    if let Some(source) = &axe_js {
        b.resize(1280, 800);
        b.goto(&format!("{}/ui", s.d.base));
        b.js("document.querySelector('main').appendChild(document.createElement('button'))");
        let found = axe(&b, source);
        assert!(
            found.iter().any(|v| v.starts_with("critical button-name")),
            "{found:?}"
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    drop(s.project);
}

/// The focused element: `[href or tag, outline style, outline width]`.
fn focused(b: &Browser) -> serde_json::Value {
    b.js(
        "var e = document.activeElement; var st = getComputedStyle(e); \
         return [e.getAttribute('href') || e.tagName, st.outlineStyle, parseFloat(st.outlineWidth)]",
    )
}

/// Presses Tab until the focused element's href matches `want`; every focus on the way must
/// be visible (a solid outline of 2 px or more).
fn tab_to(b: &Browser, want: &Regex) {
    for _ in 0..200 {
        b.key(fantoccini::key::Key::Tab);
        let f = focused(b);
        let target = f[0].as_str().unwrap_or("").to_owned();
        assert!(
            f[1] == "solid" && f[2].as_f64().unwrap_or(0.0) >= 2.0,
            "the focus on {target} is not visible: {f}"
        );
        if want.is_match(&target) {
            return;
        }
    }
    panic!("200 Tabs never reached a link matching {want}");
}

#[test]
fn browser_keyboard_only_from_the_workflows_page_to_a_failed_tasks_log() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let s = site();
    b.goto(&format!("{}/ui/workflows", s.d.base));
    // The first Tab reaches the skip link, which shows itself.
    b.key(fantoccini::key::Key::Tab);
    assert_eq!(focused(&b)[0], "#main");
    assert!(b.js("return document.activeElement.getBoundingClientRect().left >= 0") == true);
    tab_to(
        &b,
        &Regex::new(&format!("^/ui/attempts/{}$", s.failed)).unwrap(),
    );
    b.screenshot("keyboard-focus-strip");
    b.key(fantoccini::key::Key::Enter);
    b.wait_for("the failed attempt", |b| {
        b.path() == format!("/ui/attempts/{}", s.failed)
    });
    tab_to(
        &b,
        &Regex::new(&format!(
            "^/ui/attempts/{}/tasks/{}/log$",
            s.failed, s.failed_task
        ))
        .unwrap(),
    );
    b.key(fantoccini::key::Key::Enter);
    b.wait_for("the failed task's log", |b| {
        b.path() == format!("/ui/attempts/{}/tasks/{}/log", s.failed, s.failed_task)
    });
    assert!(b.text("h1").contains("+load"));
}

#[test]
fn browser_every_page_works_with_javascript_off() {
    let Some(b) = Browser::start_without_javascript("Asia/Tokyo") else {
        return;
    };
    let s = site();
    // The browser's zone is set by the script: with scripts off it never is, which shows
    // that they are off.
    b.goto(&format!("{}/ui/settings", s.d.base));
    b.click("input[name=zone][value='browser']");
    b.click("form.settings button[type=submit]");
    b.wait_for("the settings to save", |b| b.path() == "/ui/settings");
    b.goto(&format!("{}/ui/workflows", s.d.base));
    assert!(b.count("script[src]") == 1);
    assert!(
        !b.text("header .zone").contains("Tokyo"),
        "{}",
        b.text("header .zone")
    );
    for (name, path, content) in s.pages() {
        b.goto(&format!("{}{path}", s.d.base));
        assert!(
            b.count(content) > 0,
            "{name} without JavaScript: no {content}"
        );
    }
    // Forms work without script: a search, then a kill through its confirmation.
    b.goto(&format!(
        "{}/ui/attempts/{}/tasks/{}/log",
        s.d.base, s.failed, s.failed_task
    ));
    b.fill("form.search input[name=q]", "table missing");
    b.click("form.search button[type=submit]");
    b.wait_for("the search", |b| b.count("section.results") == 1);
    assert_eq!(b.text("section.results p.count"), "1 matching line");
    b.goto(&format!("{}/ui/attempts/{}", s.d.base, s.running));
    b.click("form[action='/ui/confirm/kill'] button");
    b.wait_for("the confirmation", |b| b.path() == "/ui/confirm/kill");
    b.click("form.confirm button[type=submit]");
    s.d.wait_done(&s.running);
    b.wait_for("the killed attempt", |b| {
        b.goto(&format!("{}/ui/attempts/{}", s.d.base, s.running));
        b.text("#tasks p.status").contains("killed")
    });
}
