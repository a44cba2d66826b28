//! An attempt watched live in the browser from its start to its success through a retry,
//! with no reload, then its timeline; and how long a committed task state takes to show.

use super::Browser;
use crate::api::Daemon;
use crate::daemon::rows;
use crate::run::Project;
use std::collections::HashMap;

/// A task that fails its first try and succeeds its second, each try waiting for a file the
/// test writes (`go1`, `go2`), then a chain of short tasks whose states the latency is
/// measured on.
fn workflow(steps: usize) -> String {
    let mut dig = String::from(
        "+flaky:\n  _retry:\n    limit: 2\n    interval: 2\n  \
         sh>: n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; \
         while [ ! -f go$n ]; do sleep 0.05; done; [ $n -ge 2 ]\n",
    );
    for i in 1..=steps {
        dig.push_str(&format!("+step{i:02}:\n  sh>: sleep 0.25\n"));
    }
    dig
}

/// Records, in the page, the first moment each (task, state word) shows in the task table,
/// and the attempt's badge: `[[task, word, try, epoch ms], ...]` in `window.spadeSeen`.
const WATCH: &str = r##"
window.spadeNoReload = true;
window.spadeSeen = [];
var seen = {};
var scan = function () {
  var now = performance.timeOrigin + performance.now();
  var note = function (name, word, tryText) {
    var key = name + "|" + word + "|" + tryText;
    if (!seen[key]) { seen[key] = true; window.spadeSeen.push([name, word, tryText, now]); }
  };
  document.querySelectorAll("#tasks tr[data-task]").forEach(function (tr) {
    note(tr.cells[0].getAttribute("title"), tr.cells[1].textContent.replace(/^\S+\s/, "").trim(),
      tr.cells[2].textContent.trim());
  });
  var badge = document.querySelector("#tasks p.status .badge");
  if (badge) note("(attempt)", badge.textContent.replace(/^\S+\s/, "").trim(), "");
};
new MutationObserver(scan).observe(document.getElementById("tasks"),
  {childList: true, subtree: true, characterData: true});
scan();
return performance.timeOrigin + performance.now();
"##;

/// The store's state for a word the UI shows.
fn state_of(word: &str) -> Option<&'static str> {
    Some(match word {
        "running" => "running",
        "retry waiting" => "retry_waiting",
        "success" => "succeeded",
        "error" => "failed",
        "ready" => "ready",
        _ => return None,
    })
}

fn millis(at: &str) -> f64 {
    at.parse::<jiff::Timestamp>().unwrap().as_millisecond() as f64
}

#[test]
fn browser_attempt_watched_live_through_a_retry_turns_green_with_no_reload() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write("flaky.dig", &workflow(12));
    let d = Daemon::start(&project, &[]);
    let db = project.path().join(".spade/spade.db");
    let id = crate::ui::start(&d, "flaky", "2026-01-05");
    b.goto(&format!("{}/ui/attempts/{id}", d.base));
    let watching_since = b.js(WATCH).as_f64().unwrap();
    let row = "#tasks tr[data-task] td[title='+flaky+flaky']";
    let cells = |b: &Browser| -> String {
        b.js(&format!(
            "var td = document.querySelector(\"{row}\"); return td ? td.parentNode.textContent : ''"
        ))
        .as_str()
        .unwrap()
        .to_owned()
    };
    b.wait_for("try 1/3 running", |b| {
        let c = cells(b);
        c.contains("running") && c.contains("try 1/3")
    });
    b.screenshot("attempt-live-try1");
    project.write("go1", "");
    b.wait_for("the retry wait", |b| cells(b).contains("retry waiting"));
    // The wait names the next try and when it starts.
    let waiting = cells(&b);
    assert!(
        waiting.contains("try 2/3 at "),
        "the retry wait says when try 2 starts: {waiting}"
    );
    assert!(b.text("#tasks p.status").contains("running"));
    b.screenshot("attempt-live-retry-waiting");
    b.wait_for("try 2/3 running", |b| {
        let c = cells(b);
        c.contains("running") && c.contains("try 2/3")
    });
    project.write("go2", "");
    b.wait_for("the attempt to succeed", |b| {
        b.text("#tasks p.status").contains("success")
    });
    let header = b.js("var e = document.querySelector('#tasks p.status .badge'); \
         return [e.className, getComputedStyle(e).color, window.spadeNoReload === true]");
    assert_eq!(header[0], "badge st-ok", "{header}");
    assert_eq!(
        header[1], "rgb(26, 127, 55)",
        "the header turned green: {header}"
    );
    assert_eq!(header[2], true, "the page was never reloaded");
    assert!(cells(&b).contains("try 2/3") && cells(&b).contains("success"));
    assert_eq!(d.get(&format!("/api/attempts/{id}")).1["status"], "success");
    b.screenshot("attempt-live-success");

    // Every state the page showed, against the moment its transition was committed.
    let seen = b.js("return window.spadeSeen");
    let transitions = rows(
        &db,
        &format!(
            "SELECT t.full_name, s.to_state, s.at FROM state_transitions s \
             JOIN tasks t ON t.id = s.task_id WHERE t.attempt_id = {id} ORDER BY s.id"
        ),
    );
    let mut by_task: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for t in &transitions {
        by_task
            .entry((t[0].clone(), t[1].clone()))
            .or_default()
            .push(millis(&t[2]));
    }
    let mut latencies = Vec::new();
    let mut words = Vec::new();
    for s in seen.as_array().unwrap() {
        let (name, word, at) = (
            s[0].as_str().unwrap(),
            s[1].as_str().unwrap(),
            s[3].as_f64().unwrap(),
        );
        words.push(format!("{name} {word} {}", s[2].as_str().unwrap()));
        let Some(state) = state_of(word) else {
            continue;
        };
        // The latest commit of that state before it showed; one from before the watch
        // began was in the first render, not a live update.
        let Some(committed) = by_task
            .get(&(name.to_owned(), state.to_owned()))
            .and_then(|v| {
                v.iter()
                    .copied()
                    .filter(|c| *c <= at + 5.0)
                    .reduce(f64::max)
            })
        else {
            continue;
        };
        if committed > watching_since {
            latencies.push((at - committed).max(0.0));
        }
    }
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("+flaky+flaky retry waiting"))
            && words.iter().any(|w| w == "+flaky+flaky running try 2/3")
            && words.iter().any(|w| w == "(attempt) success "),
        "{words:#?}"
    );
    assert!(
        latencies.len() >= 20,
        "{} samples: {words:#?}",
        latencies.len()
    );
    let p95 = crate::ui::p95(&latencies);
    let max = latencies.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "\ncommitted task state to the browser's DOM: p95 {p95:.0} ms, max {max:.0} ms over {} states\n",
        latencies.len()
    );
    assert!(p95 <= 500.0, "p95 {p95:.0} ms: {latencies:?}");

    // The timeline tab: one bar per try, the failed one red, the retry wait between them.
    b.click("nav.tabs a[href$='tab=timeline']");
    b.wait_for("the timeline", |b| b.count("figure.timeline svg") == 1);
    let bars = b.js(
        "return Array.from(document.querySelectorAll('figure.timeline rect.bar'))\
         .map(function (r) { return r.getAttribute('class') + ' ' + r.textContent; })",
    );
    let bars: Vec<&str> = bars
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(bars.len(), 14, "{bars:#?}");
    assert!(
        bars[0].starts_with("bar st-bad +flaky+flaky try 1: failed"),
        "{bars:#?}"
    );
    assert!(
        bars[1].starts_with("bar st-ok +flaky+flaky try 2: succeeded"),
        "{bars:#?}"
    );
    assert_eq!(b.count("figure.timeline line.wait"), 1);
    assert!(b.text("figure.timeline").contains("+flaky"));
    b.screenshot("attempt-timeline");
}
