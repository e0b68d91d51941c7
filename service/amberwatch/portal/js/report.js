// The crowd report form (/report): a map click, the device's location or a photo's GPS position (read by the
// server), what was seen, photos and short videos; sent as multipart to POST /api/reports.
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import "../css/crowd.css";
import { t } from "./common.js";

const cfg = JSON.parse(document.getElementById("aw-config").textContent);
const $ = (id) => document.getElementById(id);
const form = $("report-form");
const lon = $("report-lon");
const lat = $("report-lat");
const info = $("report-location-info");
const error = $("report-error");
let source = null; // "map" or "gps"; none = the server reads a photo's GPS position
let marker = null;
let map = null;

function setPosition(lng, la, how) {
  lon.value = lng.toFixed(6);
  lat.value = la.toFixed(6);
  source = how;
  info.textContent = t(how === "gps" ? "crowd.where.gps" : "crowd.where.map",
    { lat: la.toFixed(5), lon: lng.toFixed(5) });
  if (map) {
    if (!marker) marker = new maplibregl.Marker({ color: "#7b3294" });
    marker.setLngLat([lng, la]).addTo(map);
  }
}

try {
  maplibregl.setWorkerUrl(new URL(cfg.worker_url, window.location.origin).href);
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#eef0ea" } }];
  if (cfg.basemap_url) {
    sources.basemap = { type: "raster", tiles: [cfg.basemap_url], tileSize: 256,
      attribution: cfg.basemap_attribution || "" };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  sources.oblasts = { type: "vector", tiles: [`${window.location.origin}/tiles/oblasts/{z}/{x}/{y}.pbf`],
    maxzoom: 12 };
  sources.sites = { type: "vector", tiles: [`${window.location.origin}/tiles/mining_sites/{z}/{x}/{y}.pbf`],
    maxzoom: 16 };
  layers.push(
    { id: "oblasts-line", type: "line", source: "oblasts", "source-layer": "oblasts",
      paint: { "line-color": "#555555", "line-width": 1.4 } },
    { id: "site-points", type: "circle", source: "sites", "source-layer": "site_points",
      paint: { "circle-color": "#fd8d3c", "circle-radius": 5, "circle-stroke-color": "#fff",
        "circle-stroke-width": 1 } },
  );
  map = new maplibregl.Map({ container: "report-map", style: { version: 8, sources, layers },
    bounds: cfg.extent || [23.5, 49.5, 31.5, 52.5], fitBoundsOptions: { padding: 20 }, maxZoom: 19,
    attributionControl: { compact: true } });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.on("click", (e) => setPosition(e.lngLat.lng, e.lngLat.lat, "map"));
  map.on("load", () => { $("report-map").dataset.state = "ready"; });
  window.amberwatchReportMap = map;
} catch (err) {
  $("report-map").dataset.state = "error";
  $("report-map").textContent = t("map.no_webgl");
}

for (const input of [lon, lat]) {
  input.addEventListener("change", () => {
    const x = Number(lon.value);
    const y = Number(lat.value);
    if (lon.value && lat.value && Number.isFinite(x) && Number.isFinite(y)) setPosition(x, y, "map");
  });
}

$("report-locate").addEventListener("click", () => {
  if (!navigator.geolocation) { info.textContent = t("crowd.locate.none"); return; }
  info.textContent = t("crowd.locate.wait");
  navigator.geolocation.getCurrentPosition(
    (pos) => {
      setPosition(pos.coords.longitude, pos.coords.latitude, "gps");
      if (map) map.jumpTo({ center: [pos.coords.longitude, pos.coords.latitude], zoom: 14 });
    },
    () => { info.textContent = t("crowd.locate.failed"); },
    { enableHighAccuracy: true, timeout: 15000 });
});

function isoWithOffset(value) {
  // a datetime-local value is local time without a zone: send it with the device's offset
  const d = new Date(value);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${value.length === 16 ? `${value}:00` : value}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const files = $("report-files").files;
  if (!$("report-text").value.trim()) { error.textContent = t("crowd.error.text"); return; }
  if (!files.length) { error.textContent = t("crowd.error.files"); return; }
  const body = new FormData();
  body.append("text", $("report-text").value);
  if (lon.value && lat.value) {
    body.append("lon", lon.value);
    body.append("lat", lat.value);
    body.append("location_source", source || "map");
  }
  body.append("share_location", $("report-share").checked ? "true" : "false");
  if ($("report-when").value) body.append("observed_at", isoWithOffset($("report-when").value));
  if ($("report-contact").value.trim()) body.append("contact", $("report-contact").value.trim());
  body.append("website", $("report-website").value);
  for (const f of files) body.append("files", f, f.name);
  const button = $("report-submit");
  button.disabled = true;
  button.textContent = t("crowd.sending");
  try {
    const res = await fetch("/api/reports", { method: "POST", body });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.detail || `HTTP ${res.status}`);
    $("report-id").textContent = `#${data.id}`;
    form.hidden = true;
    $("report-done").hidden = false;
    $("report-done-h").focus();
  } catch (err) {
    error.textContent = `${t("crowd.error")}: ${err.message}`;
  } finally {
    button.disabled = false;
    button.textContent = t("crowd.submit");
  }
});
