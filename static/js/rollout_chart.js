/* Hafnium Portal: a rollout's canary-vs-stable chart (Plotly, served locally). The figure is built on the
 * server and read from the json_script element "rollout-chart-data"; drawn again each time htmx swaps the
 * chart's section in. */
(function () {
  "use strict";

  var CONFIG = { responsive: true, displaylogo: false };

  function draw(root) {
    var source = root.querySelector ? root.querySelector("#rollout-chart-data") : null;
    if (!source && root.id === "rollout-chart-data") {
      source = root;
    }
    var target = document.getElementById("rollout-chart");
    if (!source || !target || !window.Plotly) {
      return;
    }
    var figure = JSON.parse(source.textContent);
    window.Plotly.react(target, figure.data, figure.layout, CONFIG).then(function () {
      target.setAttribute("data-drawn", "true");
    });
  }

  if (window.htmx) {
    window.htmx.onLoad(draw); // the page itself, then each swapped-in section
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else {
    draw(document);
  }
})();
