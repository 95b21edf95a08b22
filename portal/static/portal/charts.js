// Draw the dashboard charts: each <div data-chart="ID"> gets the Plotly figure embedded in the
// <script type="application/json" id="ID"> that json_script wrote. plotly.min.js comes from the
// installed `plotly` Python package (portal/staticfinders.py). Without JavaScript the data
// tables next to the charts still carry every number.
document.addEventListener("DOMContentLoaded", () => {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-chart]").forEach((element) => {
    const source = document.getElementById(element.dataset.chart);
    if (!source) return;
    const figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(element, figure.data, figure.layout, {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    }).then(() => {
      element.dataset.rendered = "true";
    });
  });
});
