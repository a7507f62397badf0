// Draws every <canvas data-chart='{"type": …, "data": …}'> with Chart.js. Amounts come
// as decimal strings; Chart.js reads them as numbers only to place the points.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Chart) { return; }
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = JSON.parse(canvas.dataset.chart);
    spec.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false },
                                 spec.options || {});
    new window.Chart(canvas, spec);
  });
});
