/* Hafnium Portal: draws the figures the server built (plotly, served locally).
 * Each <div data-figure="ID"> is drawn from the json_script element ID: {data: [...], layout: {...}}. */
(function () {
  "use strict";

  var CONFIG = { responsive: true, displaylogo: false };

  function draw() {
    if (!window.Plotly) {
      return;
    }
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-figure"));
      if (!source) {
        return;
      }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(element, figure.data, figure.layout, CONFIG).then(function () {
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
