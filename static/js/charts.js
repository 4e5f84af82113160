/* Hafnium Portal: the compare page's ROC and precision-recall charts (Plotly, served locally).
 * Reads the curves from the json_script element "compare-data": {series: [{label, roc, pr}, ...]}. */
(function () {
  "use strict";

  var COLOURS = ["#0d6efd", "#d63384"];
  var CONFIG = { responsive: true, displaylogo: false };

  function layout(xTitle, yTitle) {
    return {
      height: 360,
      margin: { l: 60, r: 20, t: 20, b: 50 },
      xaxis: { title: { text: xTitle }, range: [0, 1] },
      yaxis: { title: { text: yTitle }, range: [0, 1.02] },
      legend: { orientation: "h", y: -0.2 },
    };
  }

  function traces(series, curve, xKey, yKey) {
    var out = [];
    series.forEach(function (one, index) {
      var data = one[curve];
      if (!data || !data[xKey] || !data[yKey]) {
        return;
      }
      out.push({
        type: "scatter",
        mode: "lines",
        name: one.label,
        x: data[xKey],
        y: data[yKey],
        line: { color: COLOURS[index % COLOURS.length], width: 2, dash: index ? "dash" : "solid" },
      });
    });
    return out;
  }

  function draw() {
    var source = document.getElementById("compare-data");
    if (!source || !window.Plotly) {
      return;
    }
    var series = JSON.parse(source.textContent).series || [];
    var roc = document.querySelector('[data-testid="roc-chart"]');
    var pr = document.querySelector('[data-testid="pr-chart"]');
    if (roc) {
      var chance = { type: "scatter", mode: "lines", name: "chance", x: [0, 1], y: [0, 1],
                     line: { color: "#adb5bd", dash: "dot", width: 1 }, hoverinfo: "skip" };
      window.Plotly.newPlot(roc, traces(series, "roc", "fpr", "tpr").concat([chance]),
                            layout("False positive rate", "True positive rate"), CONFIG);
    }
    if (pr) {
      window.Plotly.newPlot(pr, traces(series, "pr", "recall", "precision"),
                            layout("Recall", "Precision"), CONFIG);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
