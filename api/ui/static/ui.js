// loopwatch dashboard: progressive enhancement only. Pages work without this file; with it, charts
// are drawn from the <script type="application/json" data-chart> blocks the server rendered, and a
// few controls submit themselves. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  function drawCharts() {
    if (typeof window.Plotly === "undefined") { return; }
    var blocks = document.querySelectorAll("script[type='application/json'][data-chart]");
    Array.prototype.forEach.call(blocks, function (block) {
      var target = document.getElementById(block.id.replace(/-data$/, ""));
      if (!target) { return; }
      var spec = JSON.parse(block.textContent);
      var layout = spec.layout || {};
      if (!spec.data || spec.data.length === 0) {
        target.textContent = "No data in this range.";
        target.className += " empty";
        return;
      }
      window.Plotly.newPlot(target, spec.data, layout, {displayModeBar: false, responsive: true})
        .then(function () { target.setAttribute("data-rendered", "true"); });
    });
  }

  function autosubmit() {
    var selects = document.querySelectorAll("select[data-autosubmit]");
    Array.prototype.forEach.call(selects, function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
      var button = select.form.querySelector("button[type='submit']");
      if (button) { button.hidden = true; }
    });
  }

  function confirmations() {
    var forms = document.querySelectorAll("form[data-confirm]");
    Array.prototype.forEach.call(forms, function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  // Monitor form: show only the fields the chosen condition type / channel type uses. Without this
  // script every field shows, labelled with the type it belongs to, and the server ignores the rest.
  function dependentFields() {
    var condition = document.querySelector("select[data-shows='condition']");
    if (condition) {
      var showCondition = function () {
        var parts = condition.form.querySelectorAll("[data-condition]");
        Array.prototype.forEach.call(parts, function (part) {
          part.hidden = part.getAttribute("data-condition") !== condition.value;
        });
      };
      condition.addEventListener("change", showCondition);
      showCondition();
    }
    var channels = document.querySelectorAll("select[data-shows='channel']");
    Array.prototype.forEach.call(channels, function (select) {
      var row = select.closest("[data-channel]");
      var showChannel = function () {
        var parts = row.querySelectorAll("[data-channel-type]");
        Array.prototype.forEach.call(parts, function (part) {
          part.hidden = part.getAttribute("data-channel-type").split(" ").indexOf(select.value) < 0;
        });
      };
      select.addEventListener("change", showChannel);
      showChannel();
    });
    // Evaluator form: the judge's fields or the code check's, as the kind says.
    var kind = document.querySelector("select[data-shows='kind']");
    if (kind) {
      var showKind = function () {
        Array.prototype.forEach.call(kind.form.querySelectorAll("[data-kind]"), function (part) {
          part.hidden = part.getAttribute("data-kind") !== kind.value;
        });
      };
      kind.addEventListener("change", showKind);
      showKind();
    }
  }

  // Review page: keyboard first. Outside text boxes: digits / Y / N pick answers (data-key), Enter
  // submits, S skips, U undoes the last review; in a text box Ctrl+Enter submits and Esc leaves it.
  function reviewKeys() {
    var form = document.querySelector("form[data-review]");
    var undo = document.querySelector("button[data-action='undo']");
    if (!form && !undo) { return; }
    var click = function (action) {
      var button = document.querySelector("button[data-action='" + action + "']");
      if (button && !button.disabled) { button.click(); }
    };
    if (form) {
      var firstField = form.querySelector("input[type='number'], input[type='radio'], textarea");
      if (firstField) { firstField.focus(); }
    }
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      var typing = target.tagName === "TEXTAREA" ||
        (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox");
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); click("submit"); return; }
      if (typing) {
        if (event.key === "Escape") { target.blur(); }
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      var key = event.key.toLowerCase();
      if (key === "enter") { event.preventDefault(); click("submit"); return; }
      if (key === "s") { event.preventDefault(); click("skip"); return; }
      if (key === "u") { event.preventDefault(); click("undo"); return; }
      if (form) {
        var choice = form.querySelector("input[data-key='" + key + "']");
        if (choice) { event.preventDefault(); choice.checked = true; choice.focus(); }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    autosubmit();
    confirmations();
    dependentFields();
    reviewKeys();
  });
}());
