// The map page: MapLibre GL with vector tiles of the sites, detections and reference layers, a time slider,
// a legend with layer switches, place search and a permalink (#map=zoom/lat/lon&at=date&off=layers).
// Approved crowd reports are a point layer of their own (public fields only, from /tiles/reports); the site popup
// shows the volunteers' validation status and whether a field team checked the site.
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import { initAlerts } from "./alerts.js";
import { el, fmt, t } from "./common.js";

const cfg = JSON.parse(document.getElementById("aw-config").textContent);
const container = document.getElementById("map");
const origin = window.location.origin;
const dates = cfg.dates || [];
const REGION = [23.5, 49.5, 31.5, 52.5]; // north-west Ukraine
const REPORT_COLOUR = "#c51b8a";
const STATUS_COLOUR = ["match", ["get", "status"],
  ...cfg.statuses.flatMap((s) => [s, cfg.colours[s]]), "#555555"];
const LAYER_GROUPS = {
  reports: ["report-points"],
  mining_sites: ["sites-fill", "sites-line", "site-points"],
  detections: ["detections-fill"],
  protected_areas: ["protected-fill", "protected-line"],
  hromadas: ["hromadas-line"],
  raions: ["raions-line"],
  oblasts: ["oblasts-fill", "oblasts-line"],
  basemap: ["basemap"],
};

function readHash() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const out = { at: params.get("at"), off: (params.get("off") || "").split(",").filter(Boolean) };
  const m = (params.get("map") || "").split("/").map(Number);
  if (m.length === 3 && m.every(Number.isFinite)) out.view = { zoom: m[0], center: [m[2], m[1]] };
  return out;
}

const initial = readHash();
let dateIndex = dates.length - 1;
if (initial.at && dates.includes(initial.at)) dateIndex = dates.indexOf(initial.at);
const hidden = new Set(initial.off);

function atParam() {
  // the latest date shows the current state (no ?at=); an earlier date the state at the end of that day
  return dateIndex >= 0 && dateIndex < dates.length - 1 ? `?at=${dates[dateIndex]}` : "";
}

function tiles(layer, withTime) {
  return [`${origin}/tiles/${layer}/{z}/{x}/{y}.pbf${withTime ? atParam() : ""}`];
}

function vector(layer, withTime, maxzoom = 16, minzoom = 0) {
  return { type: "vector", tiles: tiles(layer, withTime), minzoom, maxzoom };
}

const sources = {
  oblasts: vector("oblasts", false, 12),
  raions: vector("raions", false, 14),
  hromadas: vector("hromadas", false, 14),
  protected_areas: vector("protected_areas", false, 14),
  detections: vector("detections", true, 16, 10), // drawn from zoom 11; the server has none below zoom 8
  sites: vector("mining_sites", true),
  reports: vector("reports", false, 14),
};
const layers = [{ id: "background", type: "background", paint: { "background-color": "#eef0ea" } }];
if (cfg.basemap_url) {
  sources.basemap = { type: "raster", tiles: [cfg.basemap_url], tileSize: 256,
    attribution: cfg.basemap_attribution || "" };
  layers.push({ id: "basemap", type: "raster", source: "basemap" });
}
layers.push(
  { id: "oblasts-fill", type: "fill", source: "oblasts", "source-layer": "oblasts",
    paint: { "fill-color": "#ffffff", "fill-opacity": cfg.basemap_url ? 0 : 0.7 } },
  { id: "protected-fill", type: "fill", source: "protected_areas", "source-layer": "protected_areas",
    paint: { "fill-color": "#807dba", "fill-opacity": 0.18 } },
  { id: "protected-line", type: "line", source: "protected_areas", "source-layer": "protected_areas",
    paint: { "line-color": "#6a51a3", "line-width": 1.2 } },
  { id: "hromadas-line", type: "line", source: "hromadas", "source-layer": "hromadas", minzoom: 7,
    paint: { "line-color": "#b0b0b0", "line-width": 0.8 } },
  { id: "raions-line", type: "line", source: "raions", "source-layer": "raions", minzoom: 5,
    paint: { "line-color": "#888888", "line-width": 1, "line-dasharray": [3, 2] } },
  { id: "oblasts-line", type: "line", source: "oblasts", "source-layer": "oblasts",
    paint: { "line-color": "#555555", "line-width": 1.6 } },
  { id: "detections-fill", type: "fill", source: "detections", "source-layer": "detections", minzoom: 11,
    paint: { "fill-color": ["match", ["get", "class"], "pond", "#3a86c8", "#e6c35c"],
      "fill-opacity": ["interpolate", ["linear"], ["get", "age_days"], 0, 0.85, 730, 0.35] } },
  // a dot per site at small scales; from zoom 11 it turns into a ring in the status colour around the polygons,
  // which stay visible inside it (sites are often only a few pixels across)
  { id: "site-points", type: "circle", source: "sites", "source-layer": "site_points", maxzoom: 17,
    paint: { "circle-color": STATUS_COLOUR,
      "circle-opacity": ["interpolate", ["linear"], ["zoom"], 11, 1, 12.5, 0],
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 4, 4, 11, 7, 13, 14, 16, 22],
      "circle-stroke-color": ["interpolate", ["linear"], ["zoom"], 11, "#ffffff", 12.5, STATUS_COLOUR],
      "circle-stroke-width": ["interpolate", ["linear"], ["zoom"], 11, 1.5, 13, 2.5] } },
  { id: "sites-fill", type: "fill", source: "sites", "source-layer": "mining_sites", minzoom: 11,
    paint: { "fill-color": STATUS_COLOUR, "fill-opacity": 0.45 } },
  { id: "sites-line", type: "line", source: "sites", "source-layer": "mining_sites", minzoom: 11,
    paint: { "line-color": STATUS_COLOUR, "line-width": 2 } },
  { id: "report-points", type: "circle", source: "reports", "source-layer": "reports",
    paint: { "circle-color": REPORT_COLOUR, "circle-radius": ["interpolate", ["linear"], ["zoom"], 4, 4, 14, 8],
      "circle-stroke-color": "#ffffff", "circle-stroke-width": 2 } },
);

function startView() {
  if (initial.view) return { center: initial.view.center, zoom: initial.view.zoom };
  return { bounds: cfg.extent || REGION, fitBoundsOptions: { padding: 60, maxZoom: 13 } };
}

// the module worker is a file of its own next to this bundle (MapLibre 6 loads it by URL)
maplibregl.setWorkerUrl(new URL(cfg.worker_url, origin).href);
let map;
try {
  map = new maplibregl.Map({
    container, style: { version: 8, sources, layers }, ...startView(), maxZoom: 19, attributionControl: false,
    preserveDrawingBuffer: true, // lets a visitor (and the tests) save or read the drawn map
  });
} catch (err) {
  container.dataset.state = "error";
  container.append(el("p", { class: "notice", text: t("map.no_webgl") }));
  throw err;
}
window.amberwatchMap = map;
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
map.addControl(new maplibregl.AttributionControl({ compact: true,
  customAttribution: "AmberWatch · Copernicus Sentinel data" }), "bottom-right");

// -- layer switches ---------------------------------------------------------------------------------
function applyVisibility() {
  for (const [group, ids] of Object.entries(LAYER_GROUPS)) {
    for (const id of ids) {
      if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", hidden.has(group) ? "none" : "visible");
    }
  }
}
for (const box of document.querySelectorAll('input[name="layer"]')) {
  box.checked = !hidden.has(box.value);
  box.addEventListener("change", () => {
    if (box.checked) hidden.delete(box.value); else hidden.add(box.value);
    applyVisibility();
    writeHash();
  });
}

// -- time slider ------------------------------------------------------------------------------------
const slider = document.getElementById("time");
const timeValue = document.getElementById("time-value");
function showDate() {
  const label = dates.length ? dates[dateIndex] : "–";
  timeValue.textContent = label;
  slider.setAttribute("aria-valuetext", label);
}
if (dates.length) slider.value = String(dateIndex);
showDate();
slider.addEventListener("input", () => {
  dateIndex = Number(slider.value);
  showDate();
  container.dataset.state = "loading";
  map.getSource("sites").setTiles(tiles("mining_sites", true));
  map.getSource("detections").setTiles(tiles("detections", true));
  writeHash();
});

// -- permalink --------------------------------------------------------------------------------------
const permalink = document.getElementById("permalink");
const langSwitch = document.getElementById("lang-switch");
function writeHash() {
  const c = map.getCenter();
  const parts = [`map=${map.getZoom().toFixed(2)}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}`];
  if (dates.length && dateIndex < dates.length - 1) parts.push(`at=${dates[dateIndex]}`);
  if (hidden.size) parts.push(`off=${[...hidden].join(",")}`);
  const hash = `#${parts.join("&")}`;
  window.history.replaceState(null, "", hash);
  permalink.value = window.location.href;
  if (langSwitch) langSwitch.href = langSwitch.getAttribute("href").split("#")[0] + hash;
}
map.on("moveend", writeHash);
document.getElementById("permalink-copy").addEventListener("click", async () => {
  permalink.select();
  try { await navigator.clipboard.writeText(permalink.value); } catch (e) { document.execCommand("copy"); }
  permalink.title = t("map.permalink.copied");
});

// -- popups -----------------------------------------------------------------------------------------
function sitePopup(feature, lngLat) {
  const p = feature.properties;
  const validation = el("div", { class: "validation", "data-validation": p.validation_status || "unvalidated" },
    `${t("map.validation")}: `, t(`validation.status.${p.validation_status || "unvalidated"}`));
  if (p.field_checked === true || p.field_checked === "true") {
    validation.append(" · ", el("strong", { class: "field-checked", text: t("validation.field_checked") }));
  }
  const box = el("div", {},
    el("h3", { text: `${t("kind.site")} ${p.site_id}` }),
    el("div", {}, el("span", { class: "badge", style: `background:${cfg.colours[p.status] || "#555"}`,
      text: t(`status.${p.status}`) })),
    validation,
    el("div", { text: `${t("site.first_seen")}: ${p.first_seen}` }),
    el("div", { text: `${t("site.area")}: ${fmt(p.area_ha)} ${t("unit.ha")}` }),
    el("a", { class: "open", href: `/sites/${p.site_id}`, text: t("map.open_site") }));
  new maplibregl.Popup({ maxWidth: "260px" }).setLngLat(lngLat).setDOMContent(box).addTo(map);
}
function reportPopup(feature, lngLat) {
  const p = feature.properties;
  const box = el("div", { class: "report-popup" },
    el("h3", { text: t("map.report.title", { id: p.report_id }) }),
    el("p", { class: "report-text", text: p.text || "" }));
  if (p.observed_at) box.append(el("div", { text: `${t("map.report.observed")}: ${p.observed_at}` }));
  box.append(el("div", { text: `${t("map.report.reported")}: ${p.reported_at}` }));
  if (p.photo_url) { // the approved-media route: 404 for anything not approved
    const img = el("img", { src: p.photo_url, alt: t("map.report.photo"), loading: "lazy", width: "220" });
    box.append(el("a", { href: p.photo_url, target: "_blank", rel: "noopener" }, img));
  }
  if (p.n_media > 1) box.append(el("div", { class: "muted", text: t("map.report.media", { n: p.n_media }) }));
  new maplibregl.Popup({ maxWidth: "260px" }).setLngLat(lngLat).setDOMContent(box).addTo(map);
}
const SITE_LAYERS = ["site-points", "sites-fill"];
for (const id of [...SITE_LAYERS, "report-points"]) {
  map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
}
const GROUP_OF = Object.fromEntries(Object.entries(LAYER_GROUPS).flatMap(([g, ids]) => ids.map((id) => [id, g])));
map.on("click", (e) => { // one popup per click: a report first (drawn on top), else a site, else a protected area
  const visible = (ids) => ids.filter((id) => map.getLayer(id) && !hidden.has(GROUP_OF[id]));
  const reports = map.queryRenderedFeatures(e.point, { layers: visible(["report-points"]) });
  if (reports.length) { reportPopup(reports[0], e.lngLat); return; }
  const sites = map.queryRenderedFeatures(e.point, { layers: visible(SITE_LAYERS) });
  if (sites.length) { sitePopup(sites[0], e.lngLat); return; }
  const areas = map.queryRenderedFeatures(e.point, { layers: visible(["protected-fill"]) });
  if (!areas.length) return;
  const p = areas[0].properties;
  new maplibregl.Popup().setLngLat(e.lngLat)
    .setDOMContent(el("div", {}, el("strong", { text: p.name }), el("div", { text: p.category || "" })))
    .addTo(map);
});

// -- search -----------------------------------------------------------------------------------------
const results = document.getElementById("search-results");
document.getElementById("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = document.getElementById("search-q").value.trim();
  results.replaceChildren();
  if (!q) return;
  const res = await fetch(`/api/places?q=${encodeURIComponent(q)}`);
  const data = res.ok ? await res.json() : { results: [] };
  if (!data.results.length) { results.append(el("li", { class: "muted", text: t("map.search.none") })); return; }
  for (const r of data.results) {
    const button = el("button", { type: "button" }, r.name, el("span", { class: "kind", text: t(`kind.${r.kind}`) }));
    button.addEventListener("click", () => {
      map.fitBounds(r.bbox, { padding: 40, maxZoom: r.kind === "site" ? 16 : 13 });
    });
    results.append(el("li", {}, button));
  }
});

map.on("load", () => { applyVisibility(); writeHash(); });
initAlerts(map);
map.on("idle", () => { container.dataset.state = "idle"; });
map.on("error", (e) => { console.warn("map error", e && e.error && e.error.message); });
