// Shared by the portal's scripts: the message catalog embedded in the page and number formatting.
export const messages = JSON.parse(document.getElementById("aw-messages").textContent);

export function t(key, values) {
  let text = messages[key] || key;
  if (values) for (const [k, v] of Object.entries(values)) text = text.replace(`{${k}}`, String(v));
  return text;
}

export function fmt(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString(document.documentElement.lang === "uk" ? "uk-UA" : "en-GB",
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// The API's error message of a failed response (its JSON ``detail``), or its HTTP status.
export async function errorDetail(res) {
  return (await res.json().catch(() => ({}))).detail || `HTTP ${res.status}`;
}
