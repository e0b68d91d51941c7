// The statistics page: charts of GET /api/stats (disturbed area by unit or year; new and abandoned per year).
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import { fmt, t } from "./common.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const by = document.body.dataset.by;

function label(group) {
  const name = group[by];
  return name === "(unknown)" ? t("stats.unknown") : String(name);
}

async function stats(grouping) {
  const res = await fetch(`/api/stats?by=${encodeURIComponent(grouping)}`);
  if (!res.ok) throw new Error(`GET /api/stats: ${res.status}`);
  return res.json();
}

function bar(canvas, labels, datasets, stacked = false) {
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets },
    options: {
      maintainAspectRatio: false, animation: false, indexAxis: labels.length > 8 ? "y" : "x",
      scales: { x: { stacked }, y: { stacked, beginAtZero: true } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.raw, c.dataset.digits)}` } } },
    },
  });
}

async function main() {
  const current = await stats(by);
  const groups = current.groups;
  const area = document.getElementById("chart-area");
  if (area && groups.length) {
    const datasets = by === "year"
      ? [{ label: t("stats.disturbed_year"), data: groups.map((g) => g.disturbed_area_ha), backgroundColor: "#d95f0e",
        digits: 2 }]
      : [{ label: t("stats.disturbed"), data: groups.map((g) => g.disturbed_area_ha), backgroundColor: "#d95f0e",
        digits: 2 },
      { label: t("stats.protected"), data: groups.map((g) => g.protected_disturbed_area_ha),
        backgroundColor: "#807dba", digits: 2 }];
    bar(area, groups.map(label), datasets);
    area.dataset.ready = "1";
  }
  const yearly = document.getElementById("chart-years");
  if (yearly) {
    const years = by === "year" ? current : await stats("year");
    bar(yearly, years.groups.map((g) => String(g.year)), [
      { label: t("stats.new_sites"), data: years.groups.map((g) => g.new_sites), backgroundColor: "#e31a1c",
        digits: 0 },
      { label: t("stats.abandoned_sites"), data: years.groups.map((g) => g.abandoned_sites),
        backgroundColor: "#969696", digits: 0 },
    ]);
    yearly.dataset.ready = "1";
  }
}
main().catch((e) => console.warn(e));
