// "Alerts for this area" on the map page: subscribe a webhook (POST /api/subscriptions) to an admin unit found
// with /api/places or to the current map view (its bounds as a GeoJSON polygon, drawn on the map), then show the
// secret and unsubscribe token once, the Atom feed and how to verify signatures (docs/portal.md "alerts").
import { fmt, t } from "./common.js";

const ADMIN = ["oblast", "raion", "hromada"];
const MAX_HA = 5000000; // the server's limit (usecases/alerts.py)

const $ = (id) => document.getElementById(id);

function ring(b) {
  const [w, s, e, n] = b;
  return [[[w, s], [e, s], [e, n], [w, n], [w, s]]];
}

function approxHectares(b) { // a spherical estimate of the rectangle, good enough to warn before the server does
  const [w, s, e, n] = b;
  const r = 6371008.8;
  const rad = Math.PI / 180;
  return (r * r * (e - w) * rad * Math.abs(Math.sin(n * rad) - Math.sin(s * rad))) / 1e4;
}

async function copy(input, status) {
  input.select();
  try { await navigator.clipboard.writeText(input.value); } catch (e) { document.execCommand("copy"); }
  status.textContent = t("alerts.copied");
}

export function initAlerts(map) {
  const toggle = $("alerts-toggle");
  const panel = $("alerts-panel");
  const form = $("alerts-form");
  const result = $("alerts-result");
  const error = $("alerts-error");
  const unitSelect = $("alerts-unit");
  const unitHint = $("alerts-unit-hint");
  const viewInfo = $("alerts-view-info");
  let units = [];
  let viewBounds = null;

  function mode() { return form.querySelector('input[name="alerts-area"]:checked').value; }

  function drawArea(bounds) {
    const data = { type: "FeatureCollection", features: bounds
      ? [{ type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: ring(bounds) } }] : [] };
    const source = map.getSource("alerts-area");
    if (source) { source.setData(data); return; }
    if (!map.isStyleLoaded()) { map.once("load", () => drawArea(bounds)); return; }
    map.addSource("alerts-area", { type: "geojson", data });
    map.addLayer({ id: "alerts-area-fill", type: "fill", source: "alerts-area",
      paint: { "fill-color": "#1f78b4", "fill-opacity": 0.06 } });
    map.addLayer({ id: "alerts-area-line", type: "line", source: "alerts-area",
      paint: { "line-color": "#1f78b4", "line-width": 2.5, "line-dasharray": [2, 1.5] } });
  }

  function takeView() {
    const b = map.getBounds();
    viewBounds = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => Number(v.toFixed(5)));
    const ha = approxHectares(viewBounds);
    const [w, s, e, n] = viewBounds;
    viewInfo.textContent = t("alerts.view.area", { west: fmt(w, 3), east: fmt(e, 3), south: fmt(s, 3),
      north: fmt(n, 3), ha: fmt(ha, 0) }) + (ha > MAX_HA ? ` ${t("alerts.view.too_big")}` : "");
    drawArea(viewBounds);
  }

  function showMode() {
    const view = mode() === "view";
    $("alerts-unit-box").hidden = view;
    $("alerts-view-box").hidden = !view;
    if (view && !viewBounds) takeView();
    drawArea(view ? viewBounds : null);
  }

  function setOpen(open) {
    toggle.setAttribute("aria-expanded", String(open));
    toggle.querySelector(".chevron").textContent = open ? "▾" : "▸";
    panel.hidden = !open;
    if (open) showMode(); else drawArea(null);
  }

  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    setOpen(open);
    if (open) form.querySelector('input[name="alerts-area"]:checked').focus();
  });
  panel.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { setOpen(false); toggle.focus(); }
  });
  for (const radio of form.querySelectorAll('input[name="alerts-area"]')) radio.addEventListener("change", showMode);
  $("alerts-view-use").addEventListener("click", takeView);

  async function findUnits() {
    const q = $("alerts-unit-q").value.trim();
    if (!q) return;
    const res = await fetch(`/api/places?q=${encodeURIComponent(q)}&limit=50`);
    const data = res.ok ? await res.json() : { results: [] };
    units = data.results.filter((r) => ADMIN.includes(r.kind));
    unitSelect.replaceChildren();
    for (const [i, u] of units.entries()) {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = `${u.name} (${t(`kind.${u.kind}`)})`;
      unitSelect.append(option);
    }
    unitSelect.disabled = !units.length;
    unitHint.textContent = units.length ? "" : t("alerts.unit.none");
    if (!units.length) {
      const option = document.createElement("option");
      option.value = "";
      option.textContent = "–";
      unitSelect.append(option);
    } else {
      unitSelect.dispatchEvent(new Event("change"));
      unitSelect.focus();
    }
  }
  $("alerts-unit-find").addEventListener("click", findUnits);
  $("alerts-unit-q").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); findUnits(); }
  });
  unitSelect.addEventListener("change", () => {
    const u = units[Number(unitSelect.value)];
    if (u && u.bbox) map.fitBounds(u.bbox, { padding: 40, maxZoom: 13 });
  });

  function fail(message) {
    error.textContent = message;
    $("alerts-submit").disabled = false;
    $("alerts-submit").textContent = t("alerts.subscribe");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const url = $("alerts-url");
    if (!url.checkValidity()) { fail(`${t("alerts.error")} ${url.validationMessage}`); url.focus(); return; }
    const body = { webhook_url: url.value.trim() };
    if (mode() === "unit") {
      const u = units[Number(unitSelect.value)];
      if (unitSelect.disabled || !u) { fail(t("alerts.error.unit")); $("alerts-unit-q").focus(); return; }
      body.admin = { kind: u.kind, name: u.name };
    } else {
      if (!viewBounds) { fail(t("alerts.error.view")); return; }
      body.area = { type: "Polygon", coordinates: ring(viewBounds) };
    }
    const boxes = [...form.querySelectorAll('input[name="alerts-status"]')];
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    if (chosen.length < boxes.length) body.statuses = chosen;
    $("alerts-submit").disabled = true;
    $("alerts-submit").textContent = t("alerts.sending");
    let res;
    let data = {};
    try {
      res = await fetch("/api/subscriptions", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
      data = await res.json().catch(() => ({}));
    } catch (err) {
      fail(`${t("alerts.error")} ${err.message}`);
      return;
    }
    if (res.status === 429) { fail(t("alerts.error.rate")); return; }
    if (!res.ok) {
      const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
      fail(`${t("alerts.error")} ${detail || res.status}`);
      return;
    }
    showResult(data);
  });

  function showResult(data) {
    form.hidden = true;
    result.hidden = false;
    $("alerts-id").textContent = data.id;
    $("alerts-area-name").textContent = data.area_name
      ? `${data.area_name} (${t(`kind.${data.area_kind}`)})` : t("alerts.area.view");
    $("alerts-secret").value = data.secret;
    $("alerts-token").value = data.unsubscribe_token;
    $("alerts-feed").href = data.feed_url;
    $("alerts-unsub").textContent = t("alerts.unsubscribe", { url: `/api/subscriptions/${data.id}` });
    $("alerts-verify").textContent = t("alerts.verify", { header: data.signature_header });
    $("alerts-copied").textContent = "";
    $("alerts-done-h").focus();
  }
  for (const button of result.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copy($(button.dataset.copy), $("alerts-copied")));
  }
  $("alerts-again").addEventListener("click", () => { // the secret is not kept anywhere once it is replaced
    $("alerts-secret").value = "";
    $("alerts-token").value = "";
    result.hidden = true;
    form.hidden = false;
    fail("");
    $("alerts-url").focus();
  });
}
