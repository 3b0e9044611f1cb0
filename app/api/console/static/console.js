// The console's own script: the API token on htmx's requests, the timeline chart,
// and the action fields of the chosen action type. Everything else is htmx.
(function () {
  "use strict";
  var KEY = "hookstream-api-token";

  function token() {
    try { return window.sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }

  // Writes need the token, as in the API: sent as a header, never as a cookie.
  document.addEventListener("htmx:configRequest", function (event) {
    var value = token();
    if (value) { event.detail.headers["Authorization"] = "Bearer " + value; }
  });

  // A refusal is shown until the next request a person makes (not the history's polling).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var messages = document.getElementById("messages");
    if (messages && event.detail.elt.id !== "history") { messages.textContent = ""; }
  });

  function showTokenState() {
    var state = document.getElementById("token-state");
    if (state) { state.textContent = token() ? "token set for this tab" : ""; }
  }

  function drawCharts(root) {
    if (!window.uPlot) { return; }
    root.querySelectorAll("[data-timeline]").forEach(function (element) {
      var data = JSON.parse(element.getAttribute("data-timeline"));
      element.textContent = "";
      if (!data.times.length) {
        element.textContent = "No executions yet.";
        return;
      }
      var options = {
        width: Math.max(260, element.clientWidth || 600),
        height: 220,
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        series: [
          {},
          { label: "Firings", stroke: "#1d4ed8", width: 2, points: { show: true } },
          { label: "Finished", stroke: "#15803d", width: 2, points: { show: true } },
          { label: "Failed", stroke: "#b91c1c", width: 2, points: { show: true } }
        ]
      };
      element.uplot = new window.uPlot(
        options, [data.times, data.firings, data.finished, data.failed], element
      );
    });
  }

  function showActionFields(select) {
    var form = select.form;
    form.querySelectorAll("fieldset.action").forEach(function (fieldset) {
      var chosen = fieldset.getAttribute("data-action") === select.value;
      fieldset.hidden = !chosen;
      fieldset.disabled = !chosen;
    });
  }

  // The event type decides which scope types are offered (the contract's, from the
  // server) and whether the run filter's inputs are shown and sent.
  function showEventFields(select, scopesOnly) {
    var form = select.form;
    var scopesOf = JSON.parse(form.getAttribute("data-scopes-of") || "{}");
    var runEvents = JSON.parse(form.getAttribute("data-run-events") || "[]");
    var offered = scopesOf[select.value];
    var scope = form.elements.namedItem("scope.type");
    if (scope && offered) {
      Array.prototype.forEach.call(scope.options, function (option) {
        option.disabled = offered.indexOf(option.value) < 0;
      });
      if (offered.indexOf(scope.value) < 0) { scope.value = offered[0]; }
    }
    // On load the server has decided (a run input with an error stays in view).
    if (scopesOnly) { return; }
    var run = runEvents.indexOf(select.value) >= 0;
    form.querySelectorAll('fieldset[data-events="run"]').forEach(function (fieldset) {
      fieldset.hidden = !run;
      fieldset.disabled = !run;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.name === "action.type") { showActionFields(event.target); }
    // getAttribute: the form's `id` property is its input named "id".
    if (event.target.name === "event" && event.target.form &&
        event.target.form.getAttribute("id") === "automation-form") {
      showEventFields(event.target, false);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.detail.target); });

  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-timeline]").forEach(function (element) {
      if (element.uplot) { element.uplot.setSize({ width: Math.max(260, element.clientWidth), height: 220 }); }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("token-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var input = document.getElementById("api-token");
        try { window.sessionStorage.setItem(KEY, input.value); } catch (e) { /* private mode */ }
        input.value = "";
        showTokenState();
      });
    }
    showTokenState();
    drawCharts(document);
    var editor = document.getElementById("automation-form");
    if (editor && editor.elements.namedItem("event")) {
      showEventFields(editor.elements.namedItem("event"), true);
    }
  });
})();
