// secretsd console: the little behaviour htmx does not cover. Served from /ui/static
// under a strict CSP (no inline script): everything hooks in via data- attributes.
(function () {
  "use strict";

  function addRow(button) {
    var form = button.closest("form");
    var rows = form.querySelector("[data-rows]");
    var all = rows.querySelectorAll("[data-row]");
    if (all.length >= 50) { return; }
    var copy = all[all.length - 1].cloneNode(true);
    var index = all.length;
    copy.querySelectorAll("input, textarea").forEach(function (field) {
      field.name = field.name.replace(/_\d+$/, "_" + index);
      if (field.type === "checkbox") { field.checked = false; } else { field.value = ""; }
    });
    rows.appendChild(copy);
    copy.querySelector("input").focus();
  }

  function filterRows(form) {
    var wanted = {};
    form.querySelectorAll("[data-facet]").forEach(function (select) {
      wanted[select.getAttribute("data-facet")] = select.value;
    });
    var shown = 0;
    var table = document.getElementById(form.getAttribute("data-table"));
    if (!table) { return; }
    table.querySelectorAll("tbody tr").forEach(function (row) {
      var ok = Object.keys(wanted).every(function (name) {
        return !wanted[name] || row.getAttribute("data-" + name) === wanted[name];
      });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var counter = form.parentNode.querySelector("[data-shown]");
    if (counter) { counter.textContent = String(shown); }
  }

  function drawChart() {
    var holder = document.getElementById("audit-chart");
    var source = document.getElementById("audit-chart-data");
    if (!holder || !source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    if (!data.t.length) { holder.textContent = "No records to chart."; return; }
    var width = Math.max(320, holder.clientWidth || 640);
    var first = data.t[0], last = data.t[data.t.length - 1];
    var pad = Math.max(60, (last - first) / 20);
    var points = { show: true, size: 6 };
    new uPlot({
      width: width,
      height: 240,
      scales: { x: { time: true, range: [first - pad, last + pad] } },
      series: [
        {},
        { label: "reads", stroke: "#2563eb", width: 2, points: points },
        { label: "writes", stroke: "#16a34a", width: 2, points: points },
        { label: "denials", stroke: "#dc2626", width: 2, points: points }
      ],
      axes: [{}, { label: "records" }]
    }, [data.t, data.reads, data.writes, data.denials], holder);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-add-row]");
    if (button) { event.preventDefault(); addRow(button); }
  });
  // A file over the server's limit is refused before it is sent (the server checks too).
  function checkSize(input) {
    var most = Number(input.getAttribute("data-max-bytes"));
    var file = input.files && input.files[0];
    input.setCustomValidity(file && most && file.size > most
      ? "This file is " + file.size + " bytes; a value holds at most " + most + " bytes."
      : "");
    input.reportValidity();
  }

  document.addEventListener("change", function (event) {
    var form = event.target.closest("[data-facets]");
    if (form) { filterRows(form); }
    if (event.target.matches("input[data-max-bytes]")) { checkSize(event.target); }
  });
  // An answer htmx does not swap (e.g. the server's 413 for an oversize body): say why.
  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("flash");
    var xhr = event.detail.xhr;
    if (!flash || !xhr) { return; }
    var message = "The request failed (HTTP " + xhr.status + ").";
    try { message = JSON.parse(xhr.responseText).error.message || message; } catch (e) { /* not JSON */ }
    var line = document.createElement("p");
    line.className = "error";
    line.setAttribute("role", "alert");
    line.textContent = message;
    flash.replaceChildren(line);
  });
  document.addEventListener("DOMContentLoaded", drawChart);
  // Leaving the page: drop revealed values, so no back/forward cache keeps one.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("code.revealed").forEach(function (node) {
      node.textContent = "";
    });
  });
})();
