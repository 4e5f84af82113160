/* Hafnium Portal: the drift report's charts. The figures are built on the server (Plotly JSON in the
 * json_script element "drift-charts", by element id); this draws each one where its element is. The same
 * file is inlined into the exported report, so it must not load anything. */
(function () {
  "use strict";

  var CONFIG = { responsive: true, displaylogo: false };

  function draw() {
    var source = document.getElementById("drift-charts");
    if (!source || !window.Plotly) {
      return;
    }
    var charts = JSON.parse(source.textContent);
    Object.keys(charts).forEach(function (id) {
      var element = document.getElementById(id);
      if (!element) {
        return;
      }
      var figure = charts[id];
      window.Plotly.newPlot(element, figure.data || [], figure.layout || {}, CONFIG).then(function () {
        element.setAttribute("data-rendered", "true");
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
