// The moderation queue (/moderation): pending crowd reports for a moderator's API key (kept in sessionStorage
// only), with their photos, approve or reject with a reason (POST /api/reports/{id}/moderation).
import "../css/crowd.css";
import { el, errorDetail, t } from "./common.js";

const $ = (id) => document.getElementById(id);
const KEY = "amberwatch.moderator_key";
const keyInput = $("mod-key");
keyInput.value = sessionStorage.getItem(KEY) || "";

function headers() {
  return { Authorization: `Bearer ${keyInput.value.trim()}` };
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!res.ok) throw new Error(await errorDetail(res));
  return res;
}

async function thumbnail(url) {
  const img = el("img", { alt: t("crowd.site.photo"), width: "160" });
  try {
    const blob = await (await api(url)).blob(); // pending media need the key: not a plain <img src>
    img.src = URL.createObjectURL(blob);
  } catch (err) {
    img.alt = err.message;
  }
  return img;
}

async function decide(report, decision, reason, item) {
  $("mod-error").textContent = "";
  try {
    await api(`/api/reports/${report.id}/moderation`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ decision, reason: reason || null }) });
    item.remove();
    $("mod-status").textContent = t(decision === "approve" ? "crowd.mod.approved" : "crowd.mod.rejected",
      { id: report.id });
  } catch (err) {
    $("mod-error").textContent = err.message;
  }
}

async function render(report) {
  const reason = el("input", { type: "text", maxlength: "1000", id: `mod-reason-${report.id}`,
    "aria-label": t("crowd.mod.reason") , placeholder: t("crowd.mod.reason") });
  const approve = el("button", { type: "button", class: "primary", text: t("crowd.mod.approve") });
  const reject = el("button", { type: "button", text: t("crowd.mod.reject") });
  const item = el("li", { "data-report-id": String(report.id) },
    el("h2", { text: `#${report.id} · ${report.reported_at.slice(0, 16).replace("T", " ")}` }),
    el("p", { text: report.text }),
    el("p", { class: "muted", text: t("crowd.mod.where", { lat: report.lat.toFixed(5), lon: report.lon.toFixed(5),
      source: report.location_source }) }),
    el("p", { class: "muted", text: `${t("crowd.contact")}: ${report.contact || "–"}` }));
  const media = el("div", { class: "buttons" });
  for (const m of report.media) media.append(await thumbnail(m.poster_url || m.url));
  item.append(media, el("div", { class: "row" }, reason, approve, reject));
  approve.addEventListener("click", () => decide(report, "approve", reason.value, item));
  reject.addEventListener("click", () => {
    if (!reason.value.trim()) { $("mod-error").textContent = t("crowd.mod.reason.required"); reason.focus(); return; }
    decide(report, "reject", reason.value, item);
  });
  return item;
}

$("mod-key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("mod-error").textContent = "";
  sessionStorage.setItem(KEY, keyInput.value.trim());
  const queue = $("mod-queue");
  queue.replaceChildren();
  try {
    const reports = await (await api("/api/reports?status=pending&limit=50")).json();
    $("mod-status").textContent = t("crowd.mod.count", { n: reports.length });
    for (const r of reports) queue.append(await render(r));
  } catch (err) {
    $("mod-error").textContent = err.message;
  }
});
