//! The log viewer in the browser: a 100,000-line log found, copied, linked and downloaded;
//! a running try followed, paused by scrolling up and resumed; the time to first paint.

use super::Browser;
use crate::api::Daemon;
use crate::run::Project;

const LINES: usize = 100_000;

fn line(i: usize) -> String {
    format!("line {i} of the big log\n")
}

/// The log page of the only operator task of attempt `id` (from its attempt page).
fn log_url(b: &Browser, d: &Daemon, id: &str) -> String {
    b.goto(&format!("{}/ui/attempts/{id}", d.base));
    let mut href = String::new();
    b.wait_for("the task's log link", |b| {
        href = b
            .js("var a = document.querySelector(\"#tasks a[href$='/log']\"); return a ? a.href : ''")
            .as_str()
            .unwrap()
            .to_owned();
        !href.is_empty()
    });
    href
}

/// First contentful paint and DOMContentLoaded of the current page, in ms after navigation.
fn paint(b: &Browser) -> (f64, f64) {
    let mut v = serde_json::Value::Null;
    b.wait_for("the paint entry", |b| {
        v = b.js(
            "var p = performance.getEntriesByName('first-contentful-paint')[0]; \
             var n = performance.getEntriesByType('navigation')[0]; \
             return p && n && n.domContentLoadedEventEnd > 0 ? [p.startTime, n.domContentLoadedEventEnd] : null",
        );
        !v.is_null()
    });
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

#[test]
fn browser_log_viewer_on_a_100000_line_log_finds_copies_links_downloads_and_paints_fast() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write(
        "big.dig",
        "+big:\n  sh>: seq 1 100000 | sed 's/.*/line & of the big log/'\n",
    );
    let d = Daemon::start(&project, &[]);
    let id = crate::ui::start(&d, "big", "2026-01-05");
    assert_eq!(d.wait_done(&id)["status"], "success");
    let expected: String = (1..=LINES).map(line).collect();
    let url = log_url(&b, &d, &id);

    // Painted: the median of three loads.
    let mut paints = Vec::new();
    for _ in 0..3 {
        b.goto(&url);
        paints.push(paint(&b));
    }
    paints.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (fcp, dcl) = paints[1];
    eprintln!(
        "\nlog page of a {LINES}-line log: first contentful paint {fcp:.0} ms, DOMContentLoaded {dcl:.0} ms (median of 3 loads: {paints:?})\n"
    );
    assert!(fcp <= 500.0, "first contentful paint after {fcp:.0} ms");
    b.screenshot("log-1280");

    // One <pre> holding the text alone: the last 2,000 lines, numbers drawn by CSS.
    let tail: String = (LINES - 1999..=LINES).map(line).collect();
    let text = b.js("return [document.querySelectorAll('pre').length, document.getElementById('log').textContent]");
    assert_eq!(text[0], 1);
    assert!(
        text[1] == tail.as_str(),
        "the <pre>'s text is the log's last 2,000 lines, nothing else"
    );
    // The browser's find sees the text across the markup.
    assert_eq!(
        b.js("return window.find('line 99999 of the big log')"),
        true
    );
    // Copy: a selection over three lines carries their text and no numbers, because the
    // numbers are generated content of links that are not selectable.
    let copied = b.js(
        "getSelection().removeAllRanges(); var r = document.createRange(); \
         r.setStartBefore(document.getElementById('L99990')); \
         r.setEndAfter(document.getElementById('L99992')); getSelection().addRange(r); \
         var ln = document.querySelector('#L99990 a.ln'); \
         return [getSelection().toString(), getComputedStyle(ln).userSelect, \
                 getComputedStyle(ln, '::before').content, ln.textContent]",
    );
    assert_eq!(
        copied[0].as_str().unwrap(),
        (99990..=99992).map(line).collect::<String>()
    );
    assert_eq!(copied[1], "none", "line numbers are not selectable");
    assert_eq!(copied[2], "\"99990\"", "the number is drawn by CSS");
    assert_eq!(copied[3], "", "and is not in the document's text");

    // Search on the server: the match count of the whole log.
    let needle = "7777";
    let matches = (1..=LINES).filter(|i| line(*i).contains(needle)).count();
    b.fill("form.search input[name=q]", needle);
    b.click("form.search button[type=submit]");
    b.wait_for("the search results", |b| {
        b.count("section.results p.count") == 1
    });
    assert_eq!(
        b.text("section.results p.count"),
        format!("{matches} matching lines")
    );
    b.screenshot("log-search");
    // A listed match links to its line, on the page that holds it.
    b.click("ol.matches li:first-child a");
    b.wait_for("the first match's line", |b| {
        b.url().fragment() == Some("L7777")
    });
    assert_eq!(b.js("return document.querySelector(':target').id"), "L7777");

    // #L1234: the script finds the page holding the line, and a reload lands there again.
    b.goto(&format!("{url}#L1234"));
    let on_line = |b: &Browser| {
        b.js(
            "var t = document.getElementById('L1234'); if (!t) return false; \
             var r = t.getBoundingClientRect(); \
             return document.querySelector(':target') === t && r.top >= 0 && r.bottom <= innerHeight \
                && t.textContent === 'line 1234 of the big log\\n'",
        ) == true
    };
    b.wait_for("line 1234 shown and targeted", on_line);
    assert!(b.url().query().unwrap_or("").contains("line=1234"));
    b.run(b.c().refresh()).unwrap();
    b.wait_for("line 1234 after a reload", on_line);

    // Download: the whole log, byte for byte.
    let download = b.attr("a[href*='/log/download']", "href");
    let size = b.js_async(&format!(
        "var done = arguments[0]; fetch('{download}').then(function (r) {{ return r.arrayBuffer(); }})\
         .then(function (a) {{ done(a.byteLength); }}, function (e) {{ done(String(e)); }})"
    ));
    assert_eq!(size.as_u64(), Some(expected.len() as u64), "{size}");
    let body = reqwest::blocking::get(format!("{}{download}", d.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(body == expected, "the download is the log");
    assert!(b
        .text("form.search")
        .contains(&format!("Download ({} bytes)", expected.len())));
}

#[test]
fn browser_log_follow_scrolls_with_a_running_try_and_pauses_when_scrolled_up() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write(
        "ticks.dig",
        "+ticks:\n  sh>: seq 1 300 | sed 's/.*/early &/'; i=0; while [ ! -f stop ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.1; done; echo last\n",
    );
    let d = Daemon::start(&project, &[]);
    let id = crate::ui::start(&d, "ticks", "2026-01-05");
    let url = log_url(&b, &d, &id);
    b.goto(&url);
    b.wait_for("the first lines", |b| {
        b.js("return document.getElementById('log').textContent.indexOf('early 300') >= 0") == true
    });
    if b.count("pre[data-follow]") == 0 {
        // The first render came before the first tick: the page is of a running try anyway.
        b.goto(&url);
    }
    assert_eq!(b.count("pre[data-follow]"), 1, "a running try is followed");
    let state = |b: &Browser| {
        b.js("return [document.querySelectorAll('#log .line').length, \
             document.getElementById('follow-note').textContent, \
             innerHeight + scrollY >= document.documentElement.scrollHeight - 40, scrollY]")
    };
    // To the end of the page, where following happens (the script does not scroll there by
    // itself on load: see docs/ui.md).
    b.js("window.scrollTo(0, document.documentElement.scrollHeight)");
    let start = state(&b)[0].as_u64().unwrap();
    b.wait_for("new lines, scrolled into view", |b| {
        let s = state(b);
        s[0].as_u64().unwrap() >= start + 5 && s[2] == true
    });
    // Scrolling up pauses: nothing moves, and the note counts what arrived since.
    let at_pause = b
        .js("window.scrollTo(0, 0); return document.querySelectorAll('#log .line').length")
        .as_u64()
        .unwrap();
    b.wait_for("the pause to count lines", |b| {
        let s = state(b);
        s[0].as_u64().unwrap() >= at_pause + 5
    });
    let s = state(&b);
    let arrived = s[0].as_u64().unwrap() - at_pause;
    assert_eq!(
        s[1].as_str().unwrap(),
        format!("Paused: {arrived} new lines below; scroll to the bottom to follow."),
        "{s}"
    );
    assert_eq!(s[3], 0, "still where the reader scrolled to");
    b.screenshot("log-follow-paused");
    // Back at the bottom: following again.
    b.js("window.scrollTo(0, document.documentElement.scrollHeight)");
    b.wait_for("following again", |b| {
        state(b)[1].as_str().unwrap().starts_with("Following")
    });
    let again = state(&b)[0].as_u64().unwrap();
    b.wait_for("new lines followed", |b| {
        let s = state(b);
        s[0].as_u64().unwrap() >= again + 3 && s[2] == true
    });
    project.write("stop", "");
    assert_eq!(d.wait_done(&id)["status"], "success");
    let mut last = serde_json::Value::Null;
    let deadline = std::time::Instant::now() + super::PATIENCE;
    while last.get(1).and_then(|v| v.as_str()) != Some("This try has finished.") {
        assert!(
            std::time::Instant::now() < deadline,
            "the end of the try never shown: {last}"
        );
        crate::daemon::pause();
        last = state(&b);
    }
    assert!(
        b.text("#log").trim_end().ends_with("last"),
        "{}",
        b.text("#log")
    );
}
