/* AmberWatch field app (docs/validation.md#field-checks): a form that works offline. Each check gets a UUID on the
   phone (crypto.randomUUID) and waits in IndexedDB until it is sent; the server stores a UUID once, so sending a
   check again after a lost answer stores nothing new. */
(() => {
  "use strict";
  const uk = (navigator.language || "").toLowerCase().startsWith("uk");
  const T = uk ? {
    title: "AmberWatch: польові перевірки", key: "API-ключ (польова команда)",
    save_key: "Зберегти ключ і завантажити мої ділянки", site: "Ділянка", date: "Дата відвідання",
    observer: "Спостерігач", state: "Стан на місці", disturbance: "Ступінь порушення (1–5)",
    photos: "Фото (JPEG/PNG)", position: "GPS-позиція", locate: "Взяти мою позицію", notes: "Нотатки",
    submit: "Зберегти (надішлеться, коли буде зв'язок)", sync: "Надіслати ті, що чекають",
    online: "онлайн", offline: "офлайн", waiting: "Чекають надсилання: {n}", sent: "Надіслано: {n}",
    saved: "Збережено на телефоні; надішлеться, коли буде зв'язок.", no_sites: "Немає призначених ділянок.",
    need_key: "Введіть API-ключ.", missing: "Заповніть: {f}", failed: "Не прийнято: {d}",
    state_active: "активний видобуток", state_abandoned: "покинута", state_recultivated: "рекультивована",
    state_not_mining: "не видобуток",
  } : {
    title: "AmberWatch field checks", key: "API key (field team)", save_key: "Save key and load my sites",
    site: "Site", date: "Date of the visit", observer: "Observer", state: "Observed state",
    disturbance: "Degree of disturbance (1–5)", photos: "Photos (JPEG/PNG)", position: "GPS position",
    locate: "Use my position", notes: "Notes", submit: "Save (sent when online)", sync: "Send waiting checks now",
    online: "online", offline: "offline", waiting: "Waiting to be sent: {n}", sent: "Sent: {n}",
    saved: "Saved on this phone; it is sent when the phone is online.", no_sites: "No sites assigned.",
    need_key: "Enter the API key.", missing: "Fill in: {f}", failed: "Refused: {d}",
    state_active: "active mining", state_abandoned: "abandoned", state_recultivated: "recultivated",
    state_not_mining: "not mining",
  };
  const t = (k, v = {}) => (T[k] || k).replace(/\{(\w+)\}/g, (_, n) => v[n]);
  const $ = (id) => document.getElementById(id);
  const KEY = "aw-field-key", OBSERVER = "aw-field-observer";
  let inflight = null, lastSent = 0, lastError = "";

  // -- IndexedDB queue ------------------------------------------------------------------------------------------
  const db = new Promise((resolve, reject) => {
    const req = indexedDB.open("aw-field", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("queue", { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const tx = async (mode, fn) => {
    const store = (await db).transaction("queue", mode).objectStore("queue");
    return new Promise((resolve, reject) => {
      const req = fn(store);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  };
  const queued = () => tx("readonly", (s) => s.getAll());
  const enqueue = (rec) => tx("readwrite", (s) => s.put(rec));
  const dequeue = (id) => tx("readwrite", (s) => s.delete(id));

  // -- sending --------------------------------------------------------------------------------------------------
  function formOf(rec) {
    const form = new FormData();
    for (const k of ["id", "site_id", "checked_on", "observer", "state", "disturbance", "lon", "lat",
                     "accuracy_m", "notes"]) {
      if (rec[k] !== null && rec[k] !== undefined && rec[k] !== "") form.append(k, String(rec[k]));
    }
    (rec.photos || []).forEach((p, i) => form.append("photos", p, p.name || `photo${i}.jpg`));
    return form;
  }

  async function send(rec) {
    const res = await fetch("/api/field-checks", { method: "POST", body: formOf(rec),
      headers: { Authorization: "Bearer " + (localStorage.getItem(KEY) || "") } });
    const body = await res.json().catch(() => ({}));
    return { status: res.status, body };
  }

  // one sync at a time: a second call (the "online" event, the button) waits for the one under way
  function syncQueue() {
    if (!inflight) inflight = sendQueued().finally(() => { inflight = null; });
    return inflight;
  }

  async function sendQueued() {
    let sent = 0;
    try {
      for (const rec of await queued()) {
        let out;
        try { out = await send(rec); } catch (err) { break; }  // no network: keep everything for later
        if (out.status === 200 || out.status === 201) {
          await dequeue(rec.id);
          sent += 1;
        } else if (out.status >= 500 || out.status === 429) {
          break;  // try again later
        } else {
          lastError = t("failed", { d: out.body.detail || out.status });
          rec.error = lastError;
          await enqueue(rec);
        }
      }
    } finally {
      lastSent += sent;
      await showStatus();
    }
    return { sent };
  }

  // -- the form -------------------------------------------------------------------------------------------------
  async function showStatus(extra = "") {
    const n = (await queued()).length;
    $("status").textContent = [extra, t("waiting", { n }), lastSent ? t("sent", { n: lastSent }) : "", lastError]
      .filter(Boolean).join(" · ");
    $("net").textContent = navigator.onLine ? t("online") : t("offline");
    $("net").className = navigator.onLine ? "" : "offline";
  }

  async function loadSites() {
    const key = localStorage.getItem(KEY);
    if (!key) { await showStatus(t("need_key")); return; }
    const [form, sites] = await Promise.all([
      fetch("/api/field/form").then((r) => r.json()),
      fetch("/api/field/sites", { headers: { Authorization: "Bearer " + key } }).then((r) => r.ok ? r.json() : []),
    ]);
    const select = $("site");
    select.replaceChildren(...sites.map((s) => {
      const o = document.createElement("option");
      o.value = s.site_id;
      o.textContent = `#${s.site_id} ${s.hromada || s.raion || s.oblast || ""} (${s.lat.toFixed(4)}, ${s.lon.toFixed(4)})`;
      return o;
    }));
    $("scale").replaceChildren(...Object.entries(form.disturbance_scale).map(([, d]) => {
      const li = document.createElement("li");
      li.textContent = uk ? d.uk : d.en;
      return li;
    }));
    await showStatus(sites.length ? "" : t("no_sites"));
  }

  async function submit(event) {
    event.preventDefault();
    const f = $("check");
    const missing = ["site", "checked_on", "observer"].filter((id) => !$(id).value);
    if (missing.length) { await showStatus(t("missing", { f: missing.join(", ") })); return; }
    localStorage.setItem(OBSERVER, $("observer").value);
    const rec = { id: crypto.randomUUID(), site_id: Number($("site").value), checked_on: $("checked_on").value,
      observer: $("observer").value, state: $("state").value, disturbance: Number($("disturbance").value),
      lon: $("lon").value, lat: $("lat").value, accuracy_m: $("accuracy_m").value, notes: $("notes").value,
      photos: Array.from($("photos").files || []), created: new Date().toISOString() };
    await enqueue(rec);
    f.reset();
    $("observer").value = rec.observer;
    $("checked_on").value = new Date().toISOString().slice(0, 10);
    await showStatus(t("saved"));
    if (navigator.onLine) await syncQueue();
  }

  function locate() {
    navigator.geolocation.getCurrentPosition((pos) => {
      $("lon").value = pos.coords.longitude.toFixed(6);
      $("lat").value = pos.coords.latitude.toFixed(6);
      $("accuracy_m").value = Math.round(pos.coords.accuracy);
    }, () => {}, { enableHighAccuracy: true, timeout: 20000 });
  }

  // a text without a translation keeps the page's own (English) words rather than showing its key
  document.querySelectorAll("[data-t]").forEach((el) => { if (T[el.dataset.t]) el.textContent = t(el.dataset.t); });
  document.documentElement.lang = uk ? "uk" : "en";
  $("checked_on").value = new Date().toISOString().slice(0, 10);
  $("observer").value = localStorage.getItem(OBSERVER) || "";
  $("key").value = localStorage.getItem(KEY) || "";
  $("save-key").addEventListener("click", () => { localStorage.setItem(KEY, $("key").value.trim()); loadSites(); });
  $("check").addEventListener("submit", submit);
  $("sync").addEventListener("click", syncQueue);
  $("locate").addEventListener("click", locate);
  window.addEventListener("online", syncQueue);
  window.addEventListener("offline", () => showStatus());
  window.awField = { syncQueue, queued, ready: null };
  const ready = (async () => {
    if ("serviceWorker" in navigator) await navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" });
    await loadSites().catch(() => showStatus());
    if (navigator.onLine) await syncQueue();
  })();
  window.awField.ready = ready;
})();
