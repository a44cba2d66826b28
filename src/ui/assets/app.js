// spade's web UI script: everything works without it; it only adds live updates of a running
// attempt (server-sent HTML fragments), the browser's zone for the "browser" display setting,
// #L1234 links that survive a reload of the log viewer, countdowns and grid keys. No inline script anywhere: the CSP
// allows this file only.
"use strict";
(function () {
  // The browser's zone, for zone=browser: a cookie the server reads, then one reload.
  if (document.body && document.body.dataset.zoneSetting === "browser") {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var have = document.cookie.split("; ").filter(function (c) { return c.indexOf("spade_tz=") === 0; })[0];
    if (zone && have !== "spade_tz=" + encodeURIComponent(zone)) {
      document.cookie = "spade_tz=" + encodeURIComponent(zone) + "; path=/ui; SameSite=Strict; max-age=34560000";
      if (!sessionStorage.getItem("spade_tz_reloaded")) {
        sessionStorage.setItem("spade_tz_reloaded", "1");
        location.reload();
        return;
      }
    }
  }

  // A #L1234 that is not on this page of the log: ask the server for the page holding it.
  var log = document.getElementById("log");
  var m = /^#L(\d+)$/.exec(location.hash);
  if (log && m && !document.getElementById("L" + m[1])) {
    var u = new URL(location.href);
    u.searchParams.delete("offset");
    u.searchParams.delete("before");
    u.searchParams.set("line", m[1]);
    location.replace(u.pathname + u.search + location.hash);
    return;
  }

  // Live updates: the server sends HTML rendered by the page's own code: the whole status
  // line and table (tasks, done), or the status line and the rows that changed (rows; clock
  // refreshes durations). Each event id is a position; a reopened stream asks for what came
  // after the last one (?after=, as a new EventSource sends no Last-Event-ID).
  var live = document.querySelector("[data-live]");
  var region = document.getElementById("live");
  if (live && window.EventSource) {
    var source = null;
    var last = "";
    var announce = function () {
      var status = live.querySelector(".status .badge");
      if (region && status) region.textContent = "Attempt " + status.textContent.trim();
    };
    var whole = function (e) { live.innerHTML = e.data; announce(); };
    var patch = function (e) {
      var t = document.createElement("template");
      t.innerHTML = e.data;
      var status = t.content.querySelector(".status");
      var old = live.querySelector(".status");
      if (status && old) old.replaceWith(status);
      var rows = t.content.querySelectorAll("tr[data-task]");
      for (var i = 0; i < rows.length; i++) {
        var row = live.querySelector('tr[data-task="' + rows[i].dataset.task + '"]');
        if (row) row.replaceWith(rows[i]);
      }
      announce();
    };
    var open = function () {
      if (source) return;
      source = new EventSource(live.dataset.live + (last ? "?after=" + encodeURIComponent(last) : ""));
      var track = function (handler) {
        return function (e) { if (e.lastEventId) last = e.lastEventId; handler(e); };
      };
      source.addEventListener("tasks", track(whole));
      source.addEventListener("rows", track(patch));
      source.addEventListener("clock", patch);
      source.addEventListener("done", track(function (e) { whole(e); delete live.dataset.live; close(); }));
    };
    var close = function () { if (source) { source.close(); source = null; } };
    // Closed while the tab is hidden; reopened after the last position when it shows again.
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { close(); } else if (live.dataset.live) { open(); }
    });
    open();
  }
})();

// Log follow for a running try: new lines are appended while the reader is at the bottom;
// scrolling up pauses the scrolling and counts what arrived.
(function () {
  var pre = document.querySelector("pre[data-follow]");
  if (!pre || !window.EventSource) return;
  var note = document.getElementById("follow-note");
  var waiting = 0;
  var atBottom = function () {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
  };
  var say = function (text) { if (note) note.textContent = text; };
  var source = new EventSource(pre.dataset.follow);
  // Follow is on by default: start at the end, unless a #L link asked for a line.
  if (!location.hash) window.scrollTo(0, document.documentElement.scrollHeight);
  source.addEventListener("lines", function (e) {
    var follow = atBottom();
    pre.insertAdjacentHTML("beforeend", e.data);
    var added = (e.data.match(/class="line"/g) || []).length;
    if (follow) {
      window.scrollTo(0, document.documentElement.scrollHeight);
    } else {
      waiting += added;
      say("Paused: " + waiting + " new lines below; scroll to the bottom to follow.");
    }
  });
  window.addEventListener("scroll", function () {
    if (waiting && atBottom()) { waiting = 0; say("Following this running try."); }
  });
  source.addEventListener("end", function () { source.close(); say("This try has finished."); });
})();

// Relative text as the server writes it (ui::time::relative): "now", "in 42 min", "3 h ago",
// "in 2 d", from two instants in milliseconds.
function spadeRelative(at, now) {
  var secs = Math.floor(at / 1000) - Math.floor(now / 1000);
  var abs = Math.abs(secs);
  var amount;
  if (abs < 45) return "now";
  if (abs < 90 * 60) amount = Math.max(1, Math.ceil(abs / 60)) + " min";
  else if (abs < 36 * 3600) amount = Math.floor((abs + 1800) / 3600) + " h";
  else amount = Math.floor((abs + 43200) / 86400) + " d";
  return secs > 0 ? "in " + amount : amount + " ago";
}

// Countdowns (next runs on the workflows and workflow pages): the server rendered the
// relative text against its own clock, given as data-now; this keeps it current without a
// reload, measured against that clock. Only text changes: nothing moves.
(function () {
  var clock = document.querySelector("[data-now]");
  if (!clock) return;
  var skew = Number(clock.dataset.now) - Date.now();
  var tick = function () {
    var now = Date.now() + skew;
    var items = document.querySelectorAll(".rel[data-at]");
    for (var i = 0; i < items.length; i++) {
      items[i].textContent = "(" + spadeRelative(Number(items[i].dataset.at), now) + ")";
    }
  };
  setInterval(tick, 10000);
})();

// Grid keys on the workflow page's task-by-attempt grid: one tab stop for the grid (roving
// tabindex), arrow keys move between cells (skipping empty ones), Home/End go to the ends of
// the row, Ctrl+Home/End to the first and last cell; Enter follows the cell's link (the
// browser's own). Without the script every cell is a plain link.
(function () {
  var grid = document.querySelector("table.grid");
  if (!grid || !grid.tBodies[0]) return;
  var cells = [];
  var trs = grid.tBodies[0].rows;
  for (var r = 0; r < trs.length; r++) {
    var row = [];
    for (var c = 0; c < trs[r].cells.length; c++) {
      var td = trs[r].cells[c];
      if (td.tagName === "TD") row.push(td.querySelector("a"));
    }
    cells.push(row);
  }
  var links = grid.querySelectorAll("td a");
  if (!links.length) return;
  var current = links[0];
  for (var i = 0; i < links.length; i++) links[i].tabIndex = -1;
  current.tabIndex = 0;
  var caption = grid.querySelector("caption");
  if (caption) caption.textContent += "; arrow keys move between cells";
  var where = function (a) {
    for (var r = 0; r < cells.length; r++) {
      var c = cells[r].indexOf(a);
      if (c >= 0) return [r, c];
    }
    return null;
  };
  var focus = function (a) {
    current.tabIndex = -1;
    current = a;
    a.tabIndex = 0;
    a.focus();
  };
  // The next cell with a link from (r, c) in steps of (dr, dc), or null.
  var walk = function (r, c, dr, dc) {
    for (r += dr, c += dc; r >= 0 && r < cells.length && c >= 0 && c < (cells[r] || []).length; r += dr, c += dc) {
      if (cells[r][c]) return cells[r][c];
    }
    return null;
  };
  grid.addEventListener("focusin", function (e) {
    if (where(e.target)) { current.tabIndex = -1; current = e.target; current.tabIndex = 0; }
  });
  grid.addEventListener("keydown", function (e) {
    var pos = where(e.target);
    if (!pos) return;
    var r = pos[0], c = pos[1], next = null, last = cells.length - 1;
    switch (e.key) {
      case "ArrowRight": next = walk(r, c, 0, 1); break;
      case "ArrowLeft": next = walk(r, c, 0, -1); break;
      case "ArrowDown": next = walk(r, c, 1, 0); break;
      case "ArrowUp": next = walk(r, c, -1, 0); break;
      case "Home": next = e.ctrlKey ? walk(0, -1, 0, 1) : walk(r, -1, 0, 1); break;
      case "End":
        next = e.ctrlKey ? walk(last, cells[last].length, 0, -1) : walk(r, cells[r].length, 0, -1);
        break;
      default: return;
    }
    e.preventDefault();
    if (next) focus(next);
  });
})();
