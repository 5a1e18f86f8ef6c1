// The job page's player of a streaming package (an `hls` output): hls.js plays master.m3u8 wherever the browser
// has Media Source Extensions (the browser's own HLS elsewhere: Safari on older iPhones), dash.js plays
// manifest.mpd. Both come from this server (static/players, see its README.md) and load on first use.
// Menus: HLS or DASH, captions (off or a language), audio (when the package has several tracks).
// For tests and the curious, the <video> carries the running player as `video.streamPlayer`.
(() => {
"use strict";

const PLAYER_SCRIPTS = {
  hls: "/static/players/hls.min.js",
  dash: "/static/players/dash.mediaplayer.min.js",
};
const loadedScripts = {};

function loadScript(src) {
  if (!loadedScripts[src]) {
    loadedScripts[src] = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => { delete loadedScripts[src]; reject(new Error(`could not load ${src}`)); };
      document.head.append(script);
    });
  }
  return loadedScripts[src];
}

function tag(name, attrs = {}, ...children) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value); else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// A <select> of tracks: [{ id, label }], with "off" first when `off` names it; hidden with fewer than `min`.
function fillMenu(select, tracks, selected, off = null, min = 1) {
  const options = (off ? [{ id: -1, label: off }] : []).concat(tracks);
  select.replaceChildren(...options.map((t) => tag("option", { value: String(t.id), selected: t.id === selected }, t.label)));
  select.closest("label").hidden = tracks.length < min;
}

function trackLabel(name, lang, index) {
  return name || lang || `track ${index + 1}`;
}

// hls.js over master.m3u8. Text tracks become the <video>'s own TextTracks (hls.js renders them natively).
function startHls(video, url, menus) {
  // No worker: the dashboard's policy runs scripts from this server only, and hls.js's worker is a blob: URL.
  const hls = new window.Hls({ enableWorker: false, capLevelToPlayerSize: true });
  const H = window.Hls.Events;
  hls.on(H.SUBTITLE_TRACKS_UPDATED, (_, data) => menus.captions(data.subtitleTracks.map((t, i) =>
    ({ id: i, label: trackLabel(t.name, t.lang, i) })), -1));
  hls.on(H.AUDIO_TRACKS_UPDATED, (_, data) => menus.audio(data.audioTracks.map((t, i) =>
    ({ id: i, label: trackLabel(t.name, t.lang, i) })), hls.audioTrack));
  hls.on(H.ERROR, (_, data) => { if (data.fatal) menus.problem(`HLS: ${data.details}`); });
  hls.loadSource(url);
  hls.attachMedia(video);
  return {
    kind: "hls", hls,
    captions(id) { hls.subtitleTrack = id; hls.subtitleDisplay = id >= 0; },
    audio(id) { hls.audioTrack = id; },
    destroy() { hls.destroy(); },
  };
}

// The browser's own HLS: its TextTracks and (where it has them) AudioTracks.
function startNative(video, url, menus) {
  video.src = url;
  const texts = () => Array.from(video.textTracks).filter((t) => t.kind === "subtitles" || t.kind === "captions");
  video.textTracks.addEventListener("addtrack", () => menus.captions(texts().map((t, i) =>
    ({ id: i, label: trackLabel(t.label, t.language, i) })), -1));
  return {
    kind: "native",
    captions(id) { texts().forEach((t, i) => { t.mode = i === id ? "showing" : "disabled"; }); },
    audio(id) { Array.from(video.audioTracks || []).forEach((t, i) => { t.enabled = i === id; }); },
    destroy() { video.removeAttribute("src"); video.load(); },
  };
}

// dash.js over manifest.mpd: one AdaptationSet a language for audio and for text.
function startDash(video, url, menus) {
  const dash = window.dashjs.MediaPlayer().create();
  dash.updateSettings({ streaming: { text: { defaultEnabled: false }, abr: { limitBitrateByPortal: true } } });
  const events = window.dashjs.MediaPlayer.events;
  dash.on(events.STREAM_INITIALIZED, () => {
    menus.captions(dash.getTracksFor("text").map((t, i) => ({ id: i, label: trackLabel(t.labels?.[0]?.text, t.lang, i) })), -1);
    const audio = dash.getTracksFor("audio");
    const current = dash.getCurrentTrackFor("audio");
    menus.audio(audio.map((t, i) => ({ id: i, label: trackLabel(t.labels?.[0]?.text, t.lang, i) })),
      Math.max(0, audio.findIndex((t) => current && t.id === current.id && t.lang === current.lang)));
  });
  dash.on(events.ERROR, (event) => menus.problem(`DASH: ${event.error?.message || event.error?.code || "error"}`));
  dash.initialize(video, url, false);
  return {
    kind: "dash", dash,
    captions(id) {
      if (id < 0) { dash.enableText(false); return; }
      dash.enableText(true);
      dash.setTextTrack(id);
    },
    audio(id) { const track = dash.getTracksFor("audio")[id]; if (track) dash.setCurrentTrack(track); },
    destroy() { dash.destroy(); },
  };
}

async function startEngine(engine, video, out, menus) {
  if (engine === "dash") {
    await loadScript(PLAYER_SCRIPTS.dash);
    return startDash(video, out.dash_url, menus);
  }
  await loadScript(PLAYER_SCRIPTS.hls);
  if (window.Hls.isSupported()) return startHls(video, out.url, menus);
  if (video.canPlayType("application/vnd.apple.mpegurl")) return startNative(video, out.url, menus);
  throw new Error("this browser can play neither HLS nor Media Source Extensions");
}

// The player of `out` (an output_object of kind "hls"): a <div> with the <video> and its menus.
function streamPlayer(out, rendition) {
  const video = tag("video", { controls: "", preload: "metadata", playsinline: "", muted: "", class: "stream",
    "data-rendition": rendition, "data-etag": out.etag });
  const engineMenu = tag("select", { class: "engine", "aria-label": "streaming format" },
    tag("option", { value: "hls" }, "HLS"), out.dash_url ? tag("option", { value: "dash" }, "DASH") : null);
  const captionsMenu = tag("select", { class: "captions", "aria-label": "captions" });
  const audioMenu = tag("select", { class: "audio", "aria-label": "audio track" });
  const problem = tag("span", { class: "error", role: "status" });
  const bar = tag("div", { class: "player-menus" },
    tag("label", { hidden: !out.dash_url }, "Format ", engineMenu),
    tag("label", { hidden: true }, "Captions ", captionsMenu),
    tag("label", { hidden: true }, "Audio ", audioMenu), problem);
  const menus = {
    captions: (tracks, selected) => fillMenu(captionsMenu, tracks, selected, "off", 1),
    audio: (tracks, selected) => fillMenu(audioMenu, tracks, selected, null, 2),
    problem: (text) => { problem.textContent = text; },
  };
  let player = null;
  async function start(engine) {
    if (player) player.destroy();
    player = null;
    video.streamPlayer = null;
    problem.textContent = "";
    menus.captions([], -1);
    menus.audio([], 0);
    try {
      player = await startEngine(engine, video, out, menus);
      video.streamPlayer = player;
    } catch (error) {
      problem.textContent = error.message;
    }
  }
  engineMenu.addEventListener("change", () => start(engineMenu.value));
  captionsMenu.addEventListener("change", () => player && player.captions(Number(captionsMenu.value)));
  audioMenu.addEventListener("change", () => player && player.audio(Number(audioMenu.value)));
  start("hls");
  return tag("div", { class: "stream-player" }, video, bar);
}

window.streamPlayer = streamPlayer;
})();
