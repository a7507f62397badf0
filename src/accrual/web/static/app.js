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

// A live countdown for <span class="countdown" data-left="seconds">: the server says how
// long is left by its own clock (and in words); the page only keeps counting down.
document.addEventListener("DOMContentLoaded", function () {
  var zh = document.documentElement.lang.indexOf("zh") === 0;
  var start = Date.now();
  function show(node) {
    var left = Math.max(0, Number(node.dataset.left) - (Date.now() - start) / 1000);
    var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600), m = Math.floor(left % 3600 / 60);
    node.textContent = zh ? "剩余 " + d + " 天 " + h + " 小时 " + m + " 分"
                          : d + " d " + h + " h " + m + " min left";
  }
  var nodes = document.querySelectorAll(".countdown[data-left]");
  nodes.forEach(show);
  if (nodes.length) { setInterval(function () { nodes.forEach(show); }, 30000); }
});
