// casework console: live updates. The pages are complete without this
// script; it only refreshes the queue, the promises, the workflow and an
// open case when the server says cases changed (server-sent events from
// /live), by fetching the same page again and swapping its <main>.
"use strict";
(function () {
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var page = document.body.dataset.page;
  var here = document.body.dataset["case"] || "";
  if (["queue", "case", "promises", "workflow"].indexOf(page) < 0) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) main.replaceWith(document.adoptNode(fresh));
        document.body.dataset.refreshed = String(Date.now());
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var live = document.getElementById("live");
  var source = new EventSource("/live");
  source.onopen = function () { if (live) live.hidden = false; };
  source.onerror = function () { if (live) live.hidden = true; };
  source.addEventListener("change", function (e) {
    var data = {};
    try { data = JSON.parse(e.data); } catch (_) {}
    if (page === "case" && data.cases && data.cases.indexOf(here) < 0) return;
    refresh();
  });
})();
