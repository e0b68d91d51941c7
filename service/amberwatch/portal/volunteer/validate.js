/* The volunteers' validation page (docs/validation.md): one task at a time from GET /api/validation/next, the
   answer to POST /api/validation/items/{id}/votes. The key stays in this browser tab (sessionStorage). */
(() => {
  "use strict";
  const uk = (navigator.language || "").toLowerCase().startsWith("uk");
  const T = uk ? {
    title: "Це видобуток бурштину?", key: "Ваш API-ключ (валідатор)", start: "Почати", before: "до",
    after: "після", outline: "контур", site_page: "сторінка ділянки", mining: "Видобуток", unsure: "Не впевнений",
    not_mining: "Не видобуток", reason: "Не видобуток, бо це:", choose: "— оберіть —",
    intro: "Порівняйте знімки до і після, подивіться на обведену ділянку й дайте відповідь. Кожну ділянку незалежно перевіряють кілька волонтерів.",
    need_reason: "Оберіть, що це, якщо не видобуток.", done: "Дякуємо! Завдань для вас поки немає.",
    thanks: "Відповідь збережено.", error: "Помилка: {d}", expert: "Спірні: ваше рішення (аналітики)",
    votes: "голоси", decided: "Рішення збережено.", none_disputed: "Спірних немає.",
  } : {
    title: "Is this amber mining?", key: "Your API key (validator)", start: "Start", before: "before",
    after: "after", outline: "outline", site_page: "site page", mining: "Mining", unsure: "Not sure",
    not_mining: "Not mining", reason: "Not mining, because it is:", choose: "— choose —",
    intro: "Compare the image before and after, look at the outlined area, and answer. Every area is checked by several volunteers independently.",
    need_reason: "Choose what it is when it is not mining.", done: "Thank you! There are no tasks for you now.",
    thanks: "Answer saved.", error: "Error: {d}", expert: "Disputed: your decision (analysts)",
    votes: "votes", decided: "Decision saved.", none_disputed: "Nothing disputed.",
  };
  const t = (k, v = {}) => (T[k] || k).replace(/\{(\w+)\}/g, (_, n) => v[n]);
  const $ = (id) => document.getElementById(id);
  let task = null;
  const auth = () => ({ Authorization: "Bearer " + (sessionStorage.getItem("aw-validator-key") || "") });

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

  async function next() {
    const res = await fetch("/api/validation/next", { headers: auth() });
    if (res.status === 403) { $("task").hidden = true; return; }  // an analyst's key: the expert queue only
    if (res.status === 204) { task = null; $("task").hidden = true; $("message").textContent = t("done"); return; }
    if (!res.ok) { $("message").textContent = t("error", { d: (await res.json()).detail }); return; }
    task = await res.json();
    $("task").hidden = false;
    $("task").dataset.itemId = task.id;
    $("before").src = task.chips ? task.chips.before : "";
    $("after").src = task.chips ? task.chips.after : "";
    $("site-link").href = task.site_page || "#";
    $("site-link").hidden = !task.site_page;
    outline(task.geometry);
    $("reason").replaceChildren($("reason").options[0], ...task.reasons.map((r) => {
      const o = document.createElement("option");
      o.value = r.code;
      o.textContent = uk ? r.uk : r.en;
      return o;
    }));
    $("reason").value = "";
  }

  async function answer(value) {
    if (!task) return;
    const reason = value === "not_mining" ? $("reason").value : null;
    if (value === "not_mining" && !reason) { $("message").textContent = t("need_reason"); return; }
    const res = await fetch(`/api/validation/items/${task.id}/votes`, {
      method: "POST", headers: { ...auth(), "Content-Type": "application/json" },
      body: JSON.stringify({ answer: value, reason }) });
    $("message").textContent = res.ok ? t("thanks") : t("error", { d: (await res.json()).detail });
    await next();
  }

  // -- analysts: the disputed items and the final decision -------------------------------------------------------
  function reasonSelect(reasons) {
    const select = document.createElement("select");
    select.append(new Option(t("choose"), ""), ...reasons.map((r) => new Option(uk ? r.uk : r.en, r.code)));
    return select;
  }

  async function loadDisputed() {
    const res = await fetch("/api/validation/disputed", { headers: auth() });
    $("expert").hidden = !res.ok;
    if (!res.ok) return;
    const items = await res.json();
    $("disputed").replaceChildren(...items.map((item) => {
      const li = document.createElement("li");
      li.dataset.itemId = item.id;
      const votes = item.votes.map((v) => (v.reason ? `${v.answer} (${v.reason})` : v.answer)).join(" · ");
      const p = document.createElement("p");
      p.textContent = `#${item.id} ${item.kind} — ${t("votes")}: ${votes}`;
      const imgs = ["before", "after"].map((w) => {
        const img = document.createElement("img");
        img.src = item.chips[w];
        img.alt = t(w);
        img.width = 120;
        img.height = 120;
        return img;
      });
      const select = reasonSelect(item.reasons);
      const yes = document.createElement("button");
      yes.textContent = t("mining");
      yes.className = "decide-mining";
      const no = document.createElement("button");
      no.textContent = t("not_mining");
      no.className = "decide-not-mining secondary";
      yes.addEventListener("click", () => decide(item.id, "mining", null));
      no.addEventListener("click", () => (select.value ? decide(item.id, "not_mining", select.value)
        : ($("message").textContent = t("need_reason"))));
      li.append(p, ...imgs, select, yes, no);
      return li;
    }));
    if (!items.length) $("disputed").replaceChildren(Object.assign(document.createElement("li"),
      { textContent: t("none_disputed") }));
  }

  async function decide(id, value, reason) {
    const res = await fetch(`/api/validation/items/${id}/decision`, {
      method: "POST", headers: { ...auth(), "Content-Type": "application/json" },
      body: JSON.stringify({ answer: value, reason }) });
    $("message").textContent = res.ok ? t("decided") : t("error", { d: (await res.json()).detail });
    await loadDisputed();
  }

  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  document.documentElement.lang = uk ? "uk" : "en";
  $("key").value = sessionStorage.getItem("aw-validator-key") || "";
  $("start").addEventListener("click", async () => {
    sessionStorage.setItem("aw-validator-key", $("key").value.trim());
    await next();
    await loadDisputed();
  });
  $("mining").addEventListener("click", () => answer("mining"));
  $("unsure").addEventListener("click", () => answer("unsure"));
  $("not-mining").addEventListener("click", () => answer("not_mining"));
})();
