/* Dashboard charts (Chart.js, served from static/vendor) from the numbers embedded in the page. */
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var stats = data.stats;
  var bucket = stats.filters.bucket;
  var points = stats.p_chart.points;
  if (!points.length) return;

  var css = getComputedStyle(document.documentElement);
  var colour = function (name) { return css.getPropertyValue(name).trim(); };
  var C = {fg: colour("--fg"), muted: colour("--muted"), pass: colour("--pass"),
           fail: colour("--fail"), accent: colour("--accent"), line: colour("--line")};
  var PALETTE = ["#1f6feb", "#bf8700", "#8250df", "#0a7f88", "#bc4c00", "#57606a"];

  Chart.defaults.font.size = 14;
  Chart.defaults.color = C.muted;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 14;

  var labels = points.map(function (p) { return qc.bucketLabel(p.bucket, bucket); });
  var percent = function (v) { return v === null ? null : +(v * 100).toFixed(3); };
  var percentAxis = {beginAtZero: true, ticks: {callback: function (v) { return v + " %"; }}};
  var tooltipPercent = function (ctx) {
    return ctx.dataset.label + ": " + (ctx.parsed.y === null ? "–" : ctx.parsed.y.toFixed(2) + " %");
  };

  function trendChart() {
    var datasets = [{label: "All", data: points.map(function (p) { return percent(p.p); }),
                     borderColor: C.fg, backgroundColor: C.fg, borderWidth: 3, pointRadius: 2}];
    data.trend.forEach(function (s, i) {
      datasets.push({label: s.station, data: s.rates.map(percent), spanGaps: true,
                     borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
                     borderWidth: 1.5, pointRadius: 0});
    });
    return new Chart(document.getElementById("chart-trend"), {
      type: "line", data: {labels: labels, datasets: datasets},
      options: {interaction: {mode: "index", intersect: false},
                scales: {y: percentAxis}, plugins: {tooltip: {callbacks: {label: tooltipPercent}}}}});
  }

  function paretoChart() {
    var rows = stats.pareto;
    return new Chart(document.getElementById("chart-pareto"), {
      type: "bar",
      data: {labels: rows.map(function (r) { return r.defect_type; }), datasets: [
        {type: "bar", label: "Failed items", data: rows.map(function (r) { return r.count; }),
         backgroundColor: C.fail, yAxisID: "y", order: 2},
        {type: "line", label: "Cumulative share", yAxisID: "y1", order: 1,
         data: rows.map(function (r) { return percent(r.cumulative_share); }),
         borderColor: C.fg, backgroundColor: C.fg, pointRadius: 4}]},
      options: {scales: {y: {beginAtZero: true, title: {display: true, text: "items"}},
                         y1: {position: "right", min: 0, max: 100, grid: {drawOnChartArea: false},
                              ticks: {callback: function (v) { return v + " %"; }}}}}});
  }

  function pChart() {
    var out = points.map(function (p) { return p.out_of_control; });
    var limit = function (key, label, dash) {
      return {label: label, data: points.map(function (p) { return percent(p[key]); }), stepped: "middle",
              borderColor: C.fail, borderWidth: 1.5, borderDash: dash, pointRadius: 0, fill: false};
    };
    return new Chart(document.getElementById("chart-pchart"), {
      type: "line",
      data: {labels: labels, datasets: [
        {label: "p (defect rate)", data: points.map(function (p) { return percent(p.p); }),
         borderColor: C.accent, backgroundColor: out.map(function (o) { return o ? C.fail : C.accent; }),
         pointRadius: out.map(function (o) { return o ? 7 : 3; }),
         pointStyle: out.map(function (o) { return o ? "triangle" : "circle"; }), borderWidth: 2},
        {label: "p̄ (centre)", data: points.map(function () { return percent(stats.p_chart.center); }),
         borderColor: C.pass, borderWidth: 2, pointRadius: 0},
        limit("ucl", "UCL", [6, 4]), limit("lcl", "LCL", [2, 3])]},
      options: {interaction: {mode: "index", intersect: false}, scales: {y: percentAxis},
                plugins: {tooltip: {callbacks: {label: tooltipPercent, afterBody: function (items) {
                  var p = points[items[0].dataIndex];
                  return "n = " + p.n + ", failed = " + p.defective + (p.out_of_control ? "  ▲ out of control" : "");
                }}}}}});
  }

  function savingsChart() {
    var s = data.savings;
    return new Chart(document.getElementById("chart-savings"), {
      type: "bar",
      data: {labels: labels, datasets: [
        {type: "bar", label: "Per " + bucket, data: s.per_bucket, backgroundColor: C.pass, yAxisID: "y", order: 2},
        {type: "line", label: "Cumulative", data: s.cumulative, borderColor: C.fg, backgroundColor: C.fg,
         pointRadius: 0, borderWidth: 2.5, yAxisID: "y1", order: 1}]},
      options: {interaction: {mode: "index", intersect: false},
                scales: {y: {beginAtZero: true, title: {display: true, text: "per " + bucket}},
                         y1: {position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                              title: {display: true, text: "cumulative"}}},
                plugins: {tooltip: {callbacks: {label: function (ctx) {
                  return ctx.dataset.label + ": " + qc.money(ctx.parsed.y); }}}}}});
  }

  [trendChart, paretoChart, pChart, savingsChart].forEach(function (draw) { draw(); });
})();
