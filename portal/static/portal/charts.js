// Draw the dashboard charts: each <div data-chart="ID"> gets the Plotly figure embedded in the
// <script type="application/json" id="ID"> that json_script wrote. plotly.min.js is vendored
// (portal/static/vendor/plotly/, docs/dashboards.md). Without JavaScript the data tables next
// to the charts still carry every number.
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
      describeForScreenReaders(element);
      element.dataset.rendered = "true";
    });
  });
});

// The drawing is one image with the chart's name (data-chart-label); plotly's toolbar stays a
// toolbar of buttons beside it. role="img" on the container would hide those buttons inside an
// image (axe: nested-interactive), so it goes on the plot's own SVG. plotly's other SVG layers
// (legend, hover labels) repeat what the data table says and are hidden from screen readers.
function describeForScreenReaders(element) {
  element.querySelectorAll("svg.main-svg").forEach((svg, index) => {
    if (index === 0) {
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", element.dataset.chartLabel || "");
    } else {
      svg.setAttribute("aria-hidden", "true");
    }
  });
}
