/* AmberWatch field app: the service worker. It keeps the app shell, the form's lists and the field team's assigned
   sites in the Cache Storage, so the app opens and works with no network; everything is fetched from the network
   first while online (always fresh) and served from the cache when the network fails. Submissions are not cached
   here: the page queues them in IndexedDB and sends them when the phone is online again (app.js). */
const CACHE = "aw-field-v2";  // bump when the app shell changes
const SHELL = ["/field/", "/field/app.js", "/field/field.css", "/field/manifest.webmanifest", "/field/icon.svg",
               "/api/field/form"];
const CACHED_API = ["/api/field/form", "/api/field/sites"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;  // uploads go to the network as they are
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const shell = url.pathname === "/field" || url.pathname.startsWith("/field/");
  if (!shell && !CACHED_API.includes(url.pathname)) return;
  const key = url.pathname === "/field" ? "/field/" : url.pathname;  // one copy per path (no query strings)
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok) await cache.put(key, response.clone());
      return response;
    } catch (err) {
      const cached = await cache.match(key);
      if (cached) return cached;
      throw err;
    }
  })());
});
