/* The console's only script (no library, no build step): live progress of pending and running
   reports, the type's default sections on the report form, the browser's timezone as default,
   only the chosen format's options shown, and a question before a deletion. Every page works
   without it. */
(function () {
  "use strict";
  var FINAL = { completed: 1, failed: 1, expired: 1, missing: 1 };

  function liveReports() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-report-id]"));
    var waiting = boxes.filter(function (box) { return !FINAL[box.getAttribute("data-state")]; });
    if (!waiting.length) { return; }
    var ids = waiting.map(function (box) { return box.getAttribute("data-report-id"); });
    function poll() {
      fetch((document.body.getAttribute("data-root") || "") + "/reports/status.json?ids=" + encodeURIComponent(ids.join(",")), { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.json() : []; })
        .then(function (statuses) {
          statuses.forEach(function (status) {
            var box = document.querySelector('[data-report-id="' + status.report_id + '"]');
            if (!box) { return; }
            box.setAttribute("data-state", status.state);
            var state = box.querySelector('[data-field="state"]');
            if (state) { state.textContent = status.state; state.className = "badge badge-" + status.state; }
            var bar = box.querySelector('[data-field="bar"]');
            if (bar && typeof status.progress === "number") { bar.value = status.progress; bar.textContent = status.progress + " %"; }
            var percent = box.querySelector('[data-field="percent"]');
            if (percent && typeof status.progress === "number") { percent.textContent = status.progress + " %"; }
            var stage = box.querySelector('[data-field="stage"]');
            if (stage) { stage.textContent = FINAL[status.state] ? (status.error || "") : (status.stage || ""); }
            if (status.state === "completed") {
              document.querySelectorAll('[data-when-completed="' + status.report_id + '"]').forEach(function (link) {
                link.hidden = false;
              });
            }
          });
          ids = statuses.filter(function (s) { return !FINAL[s.state]; }).map(function (s) { return s.report_id; });
          if (ids.length) { window.setTimeout(poll, 700); }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    window.setTimeout(poll, 300);
  }

  function reportForm() {
    var form = document.getElementById("new-report");
    if (!form) { return; }
    var defaults = JSON.parse(form.getAttribute("data-defaults") || "{}");
    var type = form.querySelector("[data-section-defaults]");
    if (type) {
      type.addEventListener("change", function () {
        var wanted = defaults[type.value] || [];
        form.querySelectorAll('input[name="sections"]').forEach(function (box) {
          box.checked = wanted.indexOf(box.value) >= 0;
        });
      });
    }
    var zone = form.querySelector("[data-local-timezone]");
    if (zone && zone.value === "UTC" && !zone.getAttribute("aria-invalid")) {
      try { zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
    }
    var format = form.querySelector("[data-format-select]");
    function showFormat() {
      form.querySelectorAll("[data-format-options]").forEach(function (set) {
        set.hidden = set.getAttribute("data-format-options") !== format.value;
      });
    }
    if (format) { format.addEventListener("change", showFormat); showFormat(); }
  }

  function focusErrors() {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  }

  function confirmDeletions() {
    document.addEventListener("submit", function (event) {
      var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
      if (question && !window.confirm(question)) { event.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmDeletions();
    liveReports();
    reportForm();
    focusErrors();
  });
})();
