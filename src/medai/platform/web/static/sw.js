// medai service worker: caches the app shell (styles, scripts, icons) for fast, installable
// start-up. It never caches API answers or pages: patient data stays on the server.
const CACHE = "medai-shell-v1";
const SHELL = ["/ui/app.css", "/ui/app.js", "/ui/login.js", "/ui/triage.js",
  "/ui/worklist.js", "/ui/study.js", "/ui/chat.js", "/ui/admin.js",
  "/ui/history.js", "/ui/icons/icon-192.png", "/ui/icons/icon-512.png",
  "/manifest.webmanifest"];
self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!(url.pathname.startsWith("/ui/") || url.pathname === "/manifest.webmanifest")) return;
  // ignoreSearch: pages ask for app.js?v=<release>; this worker's cache is that release's
  e.respondWith(caches.match(e.request, { ignoreSearch: true }).then((hit) => hit || fetch(e.request)));
});
