// videoconverter dashboard: plain JavaScript, no build step. Talks to the HTTP API of the same server.
"use strict";

// The jobs shown: pages of /api/jobs (newest first) for the filter, merged with live updates that match it.
const PAGE_SIZE = Math.min(500, Math.max(1, Number(new URLSearchParams(location.search).get("page_size")) || 100));
const state = {
  settings: null, jobs: new Map(), queues: [], filter: { state: "", rendition: "", prefix: "" }, cursor: null, total: null,
};
const $ = (selector, root = document) => root.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "style") Object.assign(node.style, value);  // the CSP forbids style attributes, not this
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};
const jobId = (j) => `${j.key}\u0000${j.source_etag}\u0000${j.rendition}`;
const keyPath = (key) => key.split("/").map(encodeURIComponent).join("/");
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const bytes = (n) => {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};

// The server refuses a write that carries no JSON body, token or X-Requested-With: another site's page could
// send one. Every write from here carries the header.
const WRITE_HEADERS = { "X-Requested-With": "videoconverter-dashboard" };

async function api(path, options = {}) {
  const method = (options.method || "GET").toUpperCase();
  const headers = method === "GET" || method === "HEAD" ? options.headers : { ...WRITE_HEADERS, ...options.headers };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

// --- live updates and pages -------------------------------------------------------------------------------
const matches = (job) => (!state.filter.state || job.state === state.filter.state) &&
  (!state.filter.rendition || job.rendition === state.filter.rendition) && job.key.startsWith(state.filter.prefix);

function mergeJobs(jobs, live = false) {
  // A live update may move a shown job out of the filter (it goes) but never brings in one the pages left out
  // unless it matches: a new upload, or a job that entered the filtered state.
  for (const job of jobs) {
    if (matches(job)) state.jobs.set(jobId(job), job);
    else if (live) state.jobs.delete(jobId(job));
  }
}

// A handler that fails shows why and leaves the page running: the next update is another chance.
const guarded = (handler) => (...args) => {
  try {
    const result = handler(...args);
    if (result && typeof result.catch === "function") result.catch(showProblem);
  } catch (error) { showProblem(error); }
};

function showProblem(error) {
  console.warn(error);
  $("#problem").textContent = `Something went wrong on this page: ${error.message}`;
  $("#problem").hidden = false;
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("jobs", guarded((event) => { mergeJobs(JSON.parse(event.data).jobs, true); render(); }));
  source.addEventListener("queues", guarded((event) => { state.queues = JSON.parse(event.data).queues; renderQueues(); }));
  source.addEventListener("reload", guarded(() => { source.close(); return loadJobs().then(connect); }));
}

async function loadJobs(more = false) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.filter.state) query.set("state", state.filter.state);
  if (state.filter.rendition) query.set("rendition", state.filter.rendition);
  if (state.filter.prefix) query.set("key_prefix", state.filter.prefix);
  if (more && state.cursor) query.set("cursor", state.cursor);
  const wanted = JSON.stringify(state.filter);
  const page = await api(`/api/jobs?${query}`);
  if (JSON.stringify(state.filter) !== wanted) return;  // the filter changed meanwhile: a newer load follows
  if (!more) state.jobs.clear();
  mergeJobs(page.jobs);
  state.cursor = page.next_cursor;
  state.total = page.total;
  render();
}

function renderQueues() {
  const box = $("#queues");
  box.replaceChildren(...state.queues.map((q) => el("span",
    { class: `chip${q.dead_letters ? " bad" : ""}`, title: `queue ${q.queue}` },
    `${q.rendition}: ${q.visible} waiting · ${q.in_flight} converting${q.delayed ? ` · ${q.delayed} delayed` : ""}` +
      (q.dead_letters ? ` · ${q.dead_letters} dead` : ""))));
}

// --- the jobs page ----------------------------------------------------------------------------------------
function latestByKey() {
  const byKey = new Map();
  for (const job of state.jobs.values()) {
    const entry = byKey.get(job.key) || { key: job.key, renditions: new Map(), updated: 0, created: 0 };
    const current = entry.renditions.get(job.rendition);
    if (!current || job.created_at >= current.created_at) entry.renditions.set(job.rendition, job);
    entry.updated = Math.max(entry.updated, job.updated_at);
    entry.created = Math.max(entry.created, job.created_at);
    byKey.set(job.key, entry);
  }
  return [...byKey.values()].sort((a, b) => b.created - a.created);  // as the pages come: newest upload first
}

function renditionBar(job) {
  const percent = job.state === "done" ? 100 : Math.round(job.progress_percent);
  const pieces = job.pieces && job.state === "running" ? ` ${job.pieces.done}/${job.pieces.planned}` : "";
  const label = job.state === "running" ? `${percent}%${pieces}` : job.state;
  return el("div", { class: `rendition state-${job.state}`, "data-rendition": job.rendition, "data-state": job.state },
    el("span", {}, job.rendition),
    el("div", { class: "bar", role: "progressbar", "aria-valuenow": String(percent), "aria-label": `${job.rendition} progress` },
      el("span", { style: { width: `${percent}%` } })),
    el("span", { class: "badge" }, label));
}

function render() {
  if (location.hash.startsWith("#/job/")) return renderJobPage(false);
  const body = $("#jobs tbody");
  const rows = latestByKey();
  body.replaceChildren(...rows.map((entry) => el("tr", { "data-key": entry.key },
    el("td", {}, el("a", { href: `#/job/${keyPath(entry.key)}` }, entry.key)),
    el("td", {}, ...[...entry.renditions.values()].sort((a, b) => a.rendition.localeCompare(b.rendition)).map(renditionBar)),
    el("td", { class: "muted" }, when(entry.updated)))));
  $("#jobs-empty").hidden = rows.length > 0;
  const filtered = state.filter.state || state.filter.rendition || state.filter.prefix;
  $("#jobs-empty").textContent = filtered ? "No jobs match the filter." : "No uploads yet: drop a video above.";
  $("#load-more").hidden = !state.cursor;
  // The total is counted when a page loads; jobs uploaded since may make it fall behind what is shown.
  const shown = state.jobs.size;
  $("#jobs-count").textContent = state.total > shown ? `${shown} of ${state.total} job(s) shown` : `${shown} job(s) shown`;
}

// --- uploads ----------------------------------------------------------------------------------------------
function upload(file) {
  const row = el("div", { class: "upload-row" }, el("div", {}, `${file.name} (${bytes(file.size)})`),
    el("div", { class: "bar" }, el("span", { style: { width: "0%" } })), el("div", { class: "muted status" }, "uploading…"));
  $("#uploads").prepend(row);
  const fill = $(".bar > span", row);
  const status = $(".status", row);
  const request = new XMLHttpRequest();
  request.open("PUT", `/api/uploads/${keyPath(file.name)}`);
  for (const [name, value] of Object.entries(WRITE_HEADERS)) request.setRequestHeader(name, value);
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) fill.style.width = `${(100 * event.loaded) / event.total}%`;
  };
  request.onload = () => {
    let reply = {};
    try { reply = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
    if (request.status === 201) {
      fill.style.width = "100%";
      status.textContent = `uploaded: ${reply.jobs.length} job(s) queued`;
      mergeJobs(reply.jobs);
      render();
    } else {
      status.textContent = `refused: ${reply.error ? reply.error.message : request.statusText}`;
      status.className = "error status";
      if (request.status === 401) showSignIn();
    }
  };
  request.onerror = () => { status.textContent = "the upload failed: network error"; status.className = "error status"; };
  request.send(file);
}

function setUpDrop() {
  const drop = $("#drop");
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); [...event.dataTransfer.files].forEach(upload); });
  $("#file").addEventListener("change", (event) => { [...event.target.files].forEach(upload); event.target.value = ""; });
  const reportLoad = (error) => { $("#jobs-count").textContent = error.message; if (error.status === 401) showSignIn(); };
  const refilter = () => {
    state.filter = { state: $("#filter-state").value, rendition: $("#filter-rendition").value, prefix: $("#filter-prefix").value };
    loadJobs().catch(reportLoad);
  };
  let typing = null;
  $("#filter-state").addEventListener("change", refilter);
  $("#filter-rendition").addEventListener("change", refilter);
  $("#filter-prefix").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refilter, 250); });
  $("#load-more").addEventListener("click", () => loadJobs(true).catch(reportLoad));
}

// --- one upload's page ------------------------------------------------------------------------------------
let detailKey = null;
let detailTimer = null;

// The key in a job link, or null when the link is malformed (say "%E0%A4%A", which decodes to no text).
function linkedKey(hash) {
  try { return decodeURIComponent(hash.slice("#/job/".length)); } catch (_) { return null; }
}

async function renderJobPage(fresh = true) {
  if (!location.hash.startsWith("#/job/")) return;  // a deferred refresh after leaving the page
  const key = linkedKey(location.hash);
  const page = $("#page-job");
  if (key === null) {
    detailKey = null;
    page.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← all jobs")),
      el("p", { class: "error", id: "bad-link" }, "This job link is malformed: it names no upload. " +
        "Open the upload from the list of jobs."));
    return;
  }
  if (!fresh && key === detailKey) {  // a live update: refresh at most once a second
    if (!detailTimer) detailTimer = setTimeout(() => { detailTimer = null; renderJobPage(true).catch(showProblem); }, 1000);
    return;
  }
  detailKey = key;
  let detail;
  try { detail = await api(`/api/jobs/${keyPath(key)}`); } catch (error) {
    page.replaceChildren(el("p", { class: "error" }, error.message));
    return;
  }
  const players = [];
  for (const job of detail.jobs.sort((a, b) => a.rendition.localeCompare(b.rendition))) {
    const existing = page.querySelector(`video[data-rendition="${job.rendition}"]`);
    const out = job.output_object;
    const card = el("div", { class: `card state-${job.state}`, "data-rendition": job.rendition },
      el("h3", {}, `${job.rendition} `, el("span", { class: "badge" }, job.state)),
      renditionBar(job),
      el("p", { class: "facts" }, `attempts ${job.attempts}` +
        (job.pieces ? ` · pieces ${job.pieces.done} of ${job.pieces.planned} done` : "") +  // a split job
        ` · queued ${when(job.created_at)}` +
        (job.timings.waited_seconds != null ? ` · waited ${job.timings.waited_seconds.toFixed(1)} s` : "") +
        (job.timings.ran_seconds != null ? ` · converted in ${job.timings.ran_seconds.toFixed(1)} s` : "")),
      job.explanation ? el("div", { class: `explain${job.state === "failed" ? "" : " retry"}` },
        el("strong", {}, job.explanation), el("div", { class: "muted" }, job.error)) : null,
      job.note ? el("p", { class: "facts" }, job.note) : null,
      job.stderr_tail ? el("details", {}, el("summary", {}, "FFmpeg's last words"), el("pre", {}, job.stderr_tail)) : null);
    if (out && out.kind === "hls") {
      // A streaming package: player.js plays it (hls.js, the browser's own HLS, or dash.js), with menus.
      const current = page.querySelector(`.stream-player video[data-rendition="${job.rendition}"]`);
      card.append(current && current.dataset.etag === out.etag ? current.closest(".stream-player") :
        window.streamPlayer(out, job.rendition),
      el("p", { class: "facts" }, `streaming package · HLS${out.dash_url ? " and DASH" : ""} · ${bytes(out.size)}`),
      el("a", { href: out.url }, "master.m3u8"), out.dash_url ? " · " : null,
      out.dash_url ? el("a", { href: out.dash_url }, "manifest.mpd") : null);
    } else if (out && out.kind !== "mp4") {
      // Thumbnails show their poster.
      card.append(
        out.poster_url ? el("img", { src: out.poster_url, alt: `poster of ${key}`, class: "poster" }) : null,
        el("p", { class: "facts" }, `thumbnail index · ${bytes(out.size)}`),
        el("a", { href: out.url }, "index.json"));
    } else if (out) {
      const video = existing && existing.dataset.etag === out.etag ? existing :
        el("video", { controls: "", preload: "metadata", playsinline: "", muted: "", src: out.url, poster: out.poster_url,
          "data-rendition": job.rendition, "data-etag": out.etag });
      const probe = out.probe || {};
      card.append(video,
        el("p", { class: "facts" }, probe.error ? probe.error :
          `${probe.width}x${probe.height} ${probe.video_codec} · ${probe.duration_seconds} s · ` +
          `${probe.frame_rate || "?"} fps · ${probe.has_audio ? "with" : "no"} audio · ${bytes(out.size)}`),
        el("a", { href: `${out.url}?download=true` }, "Download"));
    }
    players.push(card);
  }
  const timeline = el("ul", { class: "timeline" }, ...detail.logs.map((line) => el("li", { class: line.level },
    el("time", {}, new Date(line.time * 1000).toLocaleTimeString()), `${line.rendition}: ${line.message}`)));
  const kept = new Set(players.flatMap((card) => Array.from(card.querySelectorAll(".stream-player video"))));
  for (const video of page.querySelectorAll(".stream-player video")) {  // a player left behind stops loading
    if (!kept.has(video) && video.streamPlayer) video.streamPlayer.destroy();
  }
  page.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← all jobs")), el("h2", {}, key),
    el("div", { class: "players" }, ...players), el("h2", {}, "Timeline"), el("div", { class: "card" }, timeline));
}

// --- dead letters -----------------------------------------------------------------------------------------
async function renderDeadLetters() {
  const { dead_letters: letters } = await api("/api/dead-letters");
  $("#dead-letters tbody").replaceChildren(...letters.map((d) => el("tr", {},
    el("td", {}, d.rendition), el("td", {}, d.key ? el("a", { href: `#/job/${keyPath(d.key)}` }, d.key) : "?"),
    el("td", {}, d.reason), el("td", { class: "muted" }, when(d.dead_lettered_at)),
    el("td", {}, el("button", { type: "button", class: "secondary redrive-one", "data-message-id": d.message_id,
      title: `move this message back to the ${d.rendition} queue`, onclick: () => redrive(d.rendition, d.message_id) },
    "Redrive")))));
  $("#dlq-empty").hidden = letters.length > 0;
  const renditions = [...new Set(letters.map((d) => d.rendition))];
  $("#dlq-actions").replaceChildren(...renditions.map((name) => el("button",
    { type: "button", class: "secondary", onclick: () => redrive(name) }, `Redrive ${name}`)));
}

async function redrive(rendition, messageId = null) {
  const query = new URLSearchParams();
  if (rendition) query.set("rendition", rendition);
  if (messageId) query.set("message_id", messageId);
  try {
    const search = query.toString();
    const reply = await api(`/api/dead-letters/redrive${search ? `?${search}` : ""}`, { method: "POST" });
    const moved = reply.redriven.reduce((sum, r) => sum + r.redriven, 0);
    $("#redrive-result").textContent = `Moved ${moved} message(s) back to their queues.`;
  } catch (error) {
    $("#redrive-result").textContent = `Redrive refused: ${error.message}`;
    if (error.status === 401) showSignIn();
  }
  renderDeadLetters().catch(showProblem);
}

// --- sign-in and routing ----------------------------------------------------------------------------------
function showSignIn() { $("#signin").hidden = false; }

function route() {
  const hash = location.hash || "#/";
  const name = hash.startsWith("#/job/") ? "job" : hash === "#/dead-letters" ? "dead-letters" : "jobs";
  for (const page of ["jobs", "job", "dead-letters"]) $(`#page-${page}`).hidden = page !== name;
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === name);
  if (name === "job") { detailKey = null; renderJobPage(true).catch(showProblem); }
  else if (name === "dead-letters") renderDeadLetters().catch(showProblem);
  else render();
}

let started = false;

// Everything but the page itself needs the token when the server has one: start once signed in.
async function start() {
  state.settings = await api("/api/settings");
  started = true;
  const s = state.settings;
  $("#drop-hint").textContent = `${s.suffixes.join(", ")} files up to ${bytes(s.max_upload_bytes)}, ` +
    `converted into ${s.renditions.map((r) => r.name).join(" and ")}`;
  $("#filter-rendition").append(...s.renditions.map((r) => el("option", { value: r.name }, r.name)));
  connect();
  await loadJobs();
  api("/api/queues").then((q) => { state.queues = q.queues; renderQueues(); }).catch(showProblem);
  route();
}

function main() {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/session", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: $("#token").value }) });
      $("#signin").hidden = true;
      $("#signin-error").textContent = "";
      if (started) route(); else await start();
    } catch (error) { $("#signin-error").textContent = error.message; }
  });
  $("#redrive-all").addEventListener("click", () => redrive(null));
  setUpDrop();
  window.addEventListener("hashchange", guarded(route));
  api("/api/session").then((session) => {
    if (session.token_required && !session.authorized) showSignIn(); else return start();
  }).catch((error) => { if (error.status === 401) showSignIn(); else showProblem(error); });
}

main();
