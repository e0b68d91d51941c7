// The site page: area through time (Chart.js) from the observations embedded in the page.
import { CategoryScale, Chart, Filler, Legend, LinearScale, LineController, LineElement, PointElement,
  Tooltip } from "chart.js";
import { fmt, t } from "./common.js";

Chart.register(CategoryScale, LinearScale, LineController, LineElement, PointElement, Filler, Legend, Tooltip);

const canvas = document.getElementById("area-chart");
if (canvas) {
  const data = JSON.parse(document.getElementById("aw-chart").textContent);
  const chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: data.dates,
      datasets: [
        { label: t("site.chart.cumulative"), data: data.cumulative, borderColor: "#7f3b08",
          backgroundColor: "rgba(179, 88, 6, 0.15)", fill: true, tension: 0, pointRadius: 4 },
        { label: t("site.chart.area"), data: data.area, borderColor: "#1f78b4", backgroundColor: "#1f78b4",
          tension: 0, pointRadius: 4 },
      ],
    },
    options: {
      maintainAspectRatio: false, animation: false,
      scales: { y: { beginAtZero: true, title: { display: true, text: t("unit.ha") } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.parsed.y)}` } } },
    },
  });
  canvas.dataset.ready = String(chart.data.datasets.length);
}
