// The volunteers' validation page (/validate/, docs/validation.md): one task at a time from
// GET /api/validation/next, the answer to POST /api/validation/items/{id}/votes; analysts also see the disputed
// items and decide them. Texts come from the portal's catalog (uk/en); the key stays in this tab (sessionStorage).
import "../css/validate.css";
import { el, errorDetail, t } from "./common.js";

const $ = (id) => document.getElementById(id);
const KEY = "aw-validator-key";
const uk = document.documentElement.lang === "uk";
let task = null;
const auth = () => ({ Authorization: "Bearer " + (sessionStorage.getItem(KEY) || "") });
const say = (text) => { $("message").textContent = text; };

function outline(geometry) {
  const svg = $("shape");
  svg.replaceChildren();
  if (!geometry) return;
  const polys = geometry.type === "MultiPolygon" ? geometry.coordinates
    : geometry.type === "Polygon" ? [geometry.coordinates] : [];
  const pts = polys.flat(2);
  if (!pts.length) return;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const k = 180 / Math.max(x1 - x0, y1 - y0, 1e-9);
  const d = polys.map((poly) => poly.map((ring) => "M" + ring.map(
    ([x, y]) => `${(10 + (x - x0) * k).toFixed(1)},${(10 + (y1 - y) * k).toFixed(1)}`).join("L") + "Z").join(""))
    .join("");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "rgba(246,195,66,.4)");
  path.setAttribute("stroke", "#8c510a");
  path.setAttribute("stroke-width", "2");
  svg.append(path);
}

const reasonOptions = (reasons) => reasons.map((r) => new Option(uk ? r.uk : r.en, r.code));

async function next() {
  const res = await fetch("/api/validation/next", { headers: auth() });
  if (res.status === 403) { $("task").hidden = true; return; } // an analyst's key: the expert queue only
  if (res.status === 204) { task = null; $("task").hidden = true; say(t("validate.done")); return; }
  if (!res.ok) { say(t("validate.error", { d: await errorDetail(res) })); return; }
  task = await res.json();
  $("task").hidden = false;
  $("task").dataset.itemId = task.id;
  $("before").src = task.chips ? task.chips.before : "";
  $("after").src = task.chips ? task.chips.after : "";
  $("site-link").href = task.site_page || "#";
  $("site-link").hidden = !task.site_page;
  outline(task.geometry);
  $("reason").replaceChildren($("reason").options[0], ...reasonOptions(task.reasons));
  $("reason").value = "";
}

async function answer(value) {
  if (!task) return;
  const reason = value === "not_mining" ? $("reason").value : null;
  if (value === "not_mining" && !reason) { say(t("validate.need_reason")); return; }
  const res = await fetch(`/api/validation/items/${task.id}/votes`, {
    method: "POST", headers: { ...auth(), "Content-Type": "application/json" },
    body: JSON.stringify({ answer: value, reason }) });
  say(res.ok ? t("validate.thanks") : t("validate.error", { d: await errorDetail(res) }));
  await next();
}

// -- analysts: the disputed items and the final decision -------------------------------------------------------
function disputedItem(item) {
  const votes = item.votes.map((v) => (v.reason ? `${v.answer} (${v.reason})` : v.answer)).join(" · ");
  const imgs = ["before", "after"].map((w) => el("img", { src: item.chips[w], alt: t(`validate.${w}`),
    width: "120", height: "120" }));
  const select = el("select", { "aria-label": t("validate.reason") }, new Option(t("validate.choose"), ""),
    ...reasonOptions(item.reasons));
  const yes = el("button", { type: "button", class: "decide-mining", text: t("validate.mining") });
  const no = el("button", { type: "button", class: "decide-not-mining secondary", text: t("validate.not_mining") });
  yes.addEventListener("click", () => decide(item.id, "mining", null));
  no.addEventListener("click", () => (select.value ? decide(item.id, "not_mining", select.value)
    : say(t("validate.need_reason"))));
  const li = el("li", {}, el("p", { text: `#${item.id} ${item.kind} — ${t("validate.votes")}: ${votes}` }),
    ...imgs, el("div", { class: "answers" }, select, yes, no));
  li.dataset.itemId = item.id;
  return li;
}

async function loadDisputed() {
  const res = await fetch("/api/validation/disputed", { headers: auth() });
  $("expert").hidden = !res.ok;
  if (!res.ok) return;
  const items = await res.json();
  $("disputed").replaceChildren(...(items.length ? items.map(disputedItem)
    : [el("li", { text: t("validate.none_disputed") })]));
}

async function decide(id, value, reason) {
  const res = await fetch(`/api/validation/items/${id}/decision`, {
    method: "POST", headers: { ...auth(), "Content-Type": "application/json" },
    body: JSON.stringify({ answer: value, reason }) });
  say(res.ok ? t("validate.decided") : t("validate.error", { d: await errorDetail(res) }));
  await loadDisputed();
}

$("key").value = sessionStorage.getItem(KEY) || "";
$("key-section").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  say("");
  await next();
  await loadDisputed();
});
$("mining").addEventListener("click", () => answer("mining"));
$("unsure").addEventListener("click", () => answer("unsure"));
$("not-mining").addEventListener("click", () => answer("not_mining"));
