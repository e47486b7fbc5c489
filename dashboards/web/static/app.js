// Vigie dashboard: the only script of our own. No inline script anywhere (the CSP forbids
// it): chart data comes in <script type="application/json"> blocks, read here.
"use strict";

// Every htmx request carries the session's CSRF token, read from the page's <meta>.
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});

// Time series: <div class="chart" data-points='{"x": [...], "series": [...]}'> (an attribute:
// htmx drops <script> elements from what it swaps in, JSON ones included), or
// <div class="chart" data-series="id of a <script type="application/json"> block">.
function chartData(box) {
  if (box.dataset.points) return JSON.parse(box.dataset.points);
  const block = box.dataset.series && document.getElementById(box.dataset.series);
  return block ? JSON.parse(block.textContent) : null;
}

function drawCharts(root) {
  if (typeof uPlot === "undefined" || !root.querySelectorAll) return;
  root.querySelectorAll(".chart[data-points], .chart[data-series]").forEach((box) => {
    if (box.dataset.drawn) return;
    const data = chartData(box);
    if (!data) return;
    const palette = ["#b00020", "#d9822b", "#2f6ac1", "#6b7785"];
    const day = (t) =>
      new Date(t * 1000).toLocaleDateString("fr-FR", { day: "2-digit", month: "2-digit" });
    const series = [{ label: "jour", value: (u, v) => (v == null ? "--" : day(v)) }].concat(
      data.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2 })),
    );
    const width = Math.max(320, box.clientWidth || 640);
    const scales = { x: { time: true } };
    if (data.range) scales.y = { range: data.range }; // a fixed scale, e.g. a score's 0 to 100
    new uPlot(
      {
        width: width,
        height: 240,
        series: series,
        scales: scales,
        axes: [{ values: (u, ticks) => ticks.map(day) }, {}],
      },
      [data.x].concat(data.series.map((s) => s.values)),
      box,
    );
    box.dataset.drawn = "1";
  });
}

document.addEventListener("DOMContentLoaded", () => drawCharts(document));
// htmx:load fires on every piece of content htmx puts in the page (an outerHTML swap
// replaces the element afterSwap would name).
document.addEventListener("htmx:load", (event) => drawCharts(event.target));
