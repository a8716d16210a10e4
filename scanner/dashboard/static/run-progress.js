// Live progress of a running run: poll the run's JSON (the API's Scan document)
// and update the page; reload once it is final so its findings appear.
// The only script of the dashboard; served from our origin (the CSP allows no other).
(function () {
  "use strict";
  var panel = document.getElementById("progress");
  if (!panel || panel.dataset.final === "true") {
    return;
  }
  var url = panel.dataset.progressUrl;
  var every = Number(panel.dataset.pollMs) || 1000;
  var FINAL = ["completed", "failed", "cancelled"];

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) {
      node.textContent = String(value);
    }
  }

  function render(run) {
    var p = run.progress;
    var bar = document.getElementById("run-progress");
    bar.max = Math.max(p.endpoints_total, 1);
    bar.value = p.endpoints_done;
    var badge = document.querySelector("#run-status .run");
    badge.textContent = run.status;
    badge.className = "run run-" + run.status;
    text("endpoints-done", p.endpoints_done);
    text("endpoints-total", p.endpoints_total);
    text("probes", p.probes.toLocaleString("en"));
    text("probe-errors", p.probe_errors);
    text("findings-total", run.findings.total);
    if (p.eta_seconds !== null && p.eta_seconds !== undefined) {
      text("eta", "about " + Math.round(p.eta_seconds) + " s left");
    } else if (run.status === "running") {
      text("eta", "running");
    }
  }

  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload(); // signed out meanwhile: the page shows why
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (run) {
        if (run === null) {
          return;
        }
        render(run);
        text("progress-note", "This page follows the run live.");
        if (FINAL.indexOf(run.status) >= 0) {
          window.location.replace(window.location.pathname); // the results, without the notice
          return;
        }
        window.setTimeout(tick, every);
      })
      .catch(function () {
        text("progress-note", "Lost contact with the server; retrying…");
        window.setTimeout(tick, every * 3);
      });
  }

  window.setTimeout(tick, every);
})();
