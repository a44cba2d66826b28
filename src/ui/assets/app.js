// spade's web UI script: everything works without it; it only adds live updates of a running
// attempt (server-sent HTML fragments), the browser's zone for the "browser" display setting,
// and #L1234 links that survive a reload of the log viewer. No inline script anywhere: the CSP
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

  // Live updates: the server sends the task table as HTML rendered by the page's own code.
  var live = document.querySelector("[data-live]");
  var region = document.getElementById("live");
  if (live && window.EventSource) {
    var source = null;
    var open = function () {
      if (source) return;
      source = new EventSource(live.dataset.live);
      var apply = function (e) {
        live.innerHTML = e.data;
        var status = live.querySelector(".status .badge");
        if (region && status) region.textContent = "Attempt " + status.textContent.trim();
      };
      source.addEventListener("tasks", apply);
      source.addEventListener("done", function (e) { apply(e); close(); });
    };
    var close = function () { if (source) { source.close(); source = null; } };
    // Closed while the tab is hidden; reopened (with the whole fragment, so nothing is
    // missed) when it shows again.
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
