// Vigie dashboard: the only script of our own. No inline script anywhere (the CSP forbids
// it): chart data comes in <script type="application/json"> blocks, read here.
"use strict";

// Every htmx request carries the session's CSRF token, read from the page's <meta>.
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});

// Time series: <div class="chart" data-series="id-of-json-block" data-label="...">.
function drawCharts(root) {
  if (typeof uPlot === "undefined") return;
  root.querySelectorAll(".chart[data-series]").forEach((box) => {
    if (box.dataset.drawn) return;
    const block = document.getElementById(box.dataset.series);
    if (!block) return;
    const data = JSON.parse(block.textContent);
    const palette = ["#b00020", "#d9822b", "#2f6ac1", "#6b7785"];
    const series = [{ label: "jour" }].concat(
      data.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2 })),
    );
    const width = Math.max(320, box.clientWidth || 640);
    const scales = { x: { time: true } };
    if (data.range) scales.y = { range: data.range }; // a fixed scale, e.g. a score's 0 to 100
    new uPlot(
      { width: width, height: 240, series: series, scales: scales },
      [data.x].concat(data.series.map((s) => s.values)),
      box,
    );
    box.dataset.drawn = "1";
  });
}

document.addEventListener("DOMContentLoaded", () => drawCharts(document));
document.addEventListener("htmx:afterSwap", (event) => drawCharts(event.target));
