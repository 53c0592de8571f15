// The console's charts: each <canvas data-chart="NAME"> is drawn from the page's embedded JSON (#cx-charts)
// with the vendored Chart.js. Charts are kept in window.cxCharts so tests (and curious users) can read them.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("cx-charts").textContent || "{}");
  const blue = "#1E88E5", red = "#E53935", grey = "#9E9E9E", green = "#43A047", amber = "#FB8C00";
  const quadrantColour = {"fix first": red, "maintain": green, "lower priority": grey, "over-invested": amber};
  window.cxCharts = {};

  // Dashed lines at the averages of a scatter's x and y (the key-driver quadrants).
  const averageLines = {
    id: "averageLines",
    afterDatasetsDraw(chart, args, options) {
      if (options.x === undefined) return;
      const {ctx, chartArea: area, scales: {x, y}} = chart;
      ctx.save();
      ctx.strokeStyle = grey; ctx.setLineDash([5, 4]); ctx.lineWidth = 1;
      const px = x.getPixelForValue(options.x), py = y.getPixelForValue(options.y);
      ctx.beginPath(); ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom);
      ctx.moveTo(area.left, py); ctx.lineTo(area.right, py); ctx.stroke();
      ctx.setLineDash([]); ctx.fillStyle = grey; ctx.font = "12px system-ui, sans-serif";
      ctx.fillText("fix first", area.left + 6, area.top + 14);
      ctx.textAlign = "right"; ctx.fillText("maintain", area.right - 6, area.top + 14);
      ctx.fillText("over-invested", area.right - 6, area.bottom - 6);
      ctx.textAlign = "left"; ctx.fillText("lower priority", area.left + 6, area.bottom - 6);
      ctx.restore();
    },
  };
  // Each point's label beside it.
  const pointLabels = {
    id: "pointLabels",
    afterDatasetsDraw(chart, args, options) {
      if (!options.on) return;
      const {ctx} = chart;
      ctx.save(); ctx.fillStyle = "#1f2933"; ctx.font = "12px system-ui, sans-serif";
      chart.getDatasetMeta(0).data.forEach((point, i) => {
        ctx.fillText(chart.data.datasets[0].data[i].label, point.x + 8, point.y - 6);
      });
      ctx.restore();
    },
  };

  const builders = {
    band_mix: (d) => ({
      type: "bar",
      data: {labels: d.labels, datasets: Object.entries(d.series).map(([name, values], i) => ({
        label: name, data: values, backgroundColor: i ? blue : grey}))},
      options: {scales: {y: {title: {display: true, text: "% of customers"}}}},
    }),
    trend: (d) => ({
      type: "line",
      data: {labels: d.labels, datasets: [{label: "observed score", data: d.values, borderColor: blue,
        backgroundColor: blue}]},
      options: {scales: {y: {title: {display: true, text: "score (100 × top − bottom share)"}}}},
    }),
    drivers: (d) => ({
      type: "bar",
      data: {labels: d.labels, datasets: [{label: "share of total |SHAP| (%)", data: d.values,
        backgroundColor: blue}]},
      options: {indexAxis: "y", plugins: {legend: {display: false}},
        scales: {x: {title: {display: true, text: "share of total |SHAP|, %"}}}},
    }),
    key_drivers: (d) => {
      const xs = d.points.map((p) => p.x), ys = d.points.map((p) => p.y);
      const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
      return {
        type: "scatter",
        data: {datasets: [{label: "rated attributes", data: d.points, pointRadius: 7, pointHoverRadius: 9,
          backgroundColor: d.points.map((p) => quadrantColour[p.quadrant] || blue)}]},
        options: {
          layout: {padding: {right: 90, top: 10}},  // room for the labels of the points at the edges
          plugins: {legend: {display: false}, averageLines: {x: mean(xs), y: 100 / d.points.length},
            pointLabels: {on: true},
            tooltip: {callbacks: {label: (c) => `${c.raw.label}: importance ${c.raw.y.toFixed(1)} %, ` +
              `mean rating ${c.raw.x.toFixed(2)} (${c.raw.quadrant})`}}},
          scales: {x: {title: {display: true, text: "performance: mean rating"}, grace: "5%",
            suggestedMin: Math.min(...xs) - 0.1, suggestedMax: Math.max(...xs) + 0.1},
            y: {title: {display: true, text: "importance: share of explained variance, %"}, beginAtZero: true}},
        },
        plugins: [averageLines, pointLabels],
      };
    },
    waterfall: (d) => {
      // Floating bars: each step starts where the previous one ended (the base first).
      let level = d.base;
      const bars = d.steps.map((s) => { const from = level; level += s.contribution; return [from, level]; });
      return {
        type: "bar",
        data: {labels: d.steps.map((s) => `${s.feature} = ${s.value === null ? "missing" : s.value}`),
          datasets: [{label: `contribution (${d.space})`, data: bars,
            backgroundColor: d.steps.map((s) => (s.contribution > 0 ? red : blue))}]},
        options: {indexAxis: "y", plugins: {legend: {display: false}},
          scales: {x: {title: {display: true, text: `${d.target} (${d.space}), from the average ${d.base.toFixed(3)}`}}}},
      };
    },
  };

  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const name = canvas.dataset.chart;
    if (!data[name] || !builders[name]) return;
    const config = builders[name](data[name]);
    config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false},
      config.options);
    window.cxCharts[name] = new Chart(canvas, config);
  });
  document.body.dataset.chartsReady = "true";
})();
