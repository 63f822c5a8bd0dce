// whisper-sae serve: the page. Every text from the server or the user is written with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const MARGIN_LEFT = 56; // px of the canvases left of time 0 (frequency axis / feature ids)
const AXIS_BOTTOM = 22; // px under the spectrogram for the time axis

const state = {
  info: null,
  clip: null, // the clip view from the server
  features: null, // the features response
  edits: [], // the stack, as sent to the server
  range: null, // [t0, t1] seconds chosen by dragging
  drag: null,
  specImage: null,
  recorder: null,
};

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

function busy(on) {
  $("busy").hidden = !on;
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the server could not be reached: " + err.message);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const text = body && body.error ? body.error : "request failed with HTTP " + response.status;
    throw new Error(text);
  }
  return body;
}

function b64bytes(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function currentSae() {
  return $("sae-select").value || null;
}

// ------------------------------------------------------------------------------ start

async function init() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    showMessage(err.message);
    return;
  }
  const info = state.info;
  $("model-info").textContent = "Whisper " + (info.model || "?") + " · " + info.saes.length + " SAE(s)";
  for (const s of info.saes) {
    const opt = el("option", s.name + " — " + s.hook + " (" + s.d_sae + " features" + (s.analysis ? ", labelled" : "") + ")");
    opt.value = s.name;
    $("sae-select").appendChild(opt);
  }
  $("limits").textContent =
    "up to " + (info.limits.max_bytes / 1e6).toFixed(0) + " MB and " + info.limits.max_seconds + " s per clip";
  if (info.corpus) {
    $("corpus-box").hidden = false;
    try {
      const rows = (await api("/api/corpus")).utterances;
      for (const r of rows) {
        const opt = el("option");
        opt.value = r.id;
        opt.label = r.seconds + " s " + r.text.slice(0, 60);
        $("corpus-ids").appendChild(opt);
      }
    } catch (err) {
      showMessage(err.message);
    }
  }
  $("file-input").addEventListener("change", onFile);
  $("record-btn").addEventListener("click", onRecord);
  $("corpus-btn").addEventListener("click", onCorpus);
  $("sae-select").addEventListener("change", () => state.clip && loadFeatures());
  $("add-edit").addEventListener("click", onAddEdit);
  $("undo").addEventListener("click", () => {
    state.edits.pop();
    runEdits();
  });
  $("clear").addEventListener("click", () => {
    state.edits = [];
    runEdits();
  });
  $("mode").addEventListener("change", syncValue);
  $("reference").addEventListener("change", () => state.edits.length && runEdits());
  const spec = $("spectrogram");
  spec.addEventListener("mousedown", onDown);
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  $("strip").addEventListener("click", (ev) => seek(timeAt($("strip"), ev)));
  $("player").addEventListener("timeupdate", drawAll);
  window.addEventListener("resize", drawAll);
  syncValue();
  tick();
}

function syncValue() {
  const mode = $("mode").value;
  $("value").disabled = mode === "ablate";
  if (mode === "scale" && $("value").value === "") $("value").value = "2";
}

// ------------------------------------------------------------------------------ input

async function uploadBlob(blob, filename) {
  showMessage("");
  const limits = state.info.limits;
  if (blob.size > limits.max_bytes) {
    showMessage(
      "file " + filename + " is " + (blob.size / 1e6).toFixed(1) + " MB; this server accepts at most " +
        (limits.max_bytes / 1e6).toFixed(1) + " MB"
    );
    return;
  }
  const form = new FormData();
  form.append("file", blob, filename);
  const ref = $("reference").value.trim();
  if (ref) form.append("reference", ref);
  busy(true);
  try {
    setClip(await api("/api/clips", { method: "POST", body: form }));
  } catch (err) {
    showMessage(err.message);
  } finally {
    busy(false);
  }
}

function onFile(ev) {
  const file = ev.target.files[0];
  if (file) uploadBlob(file, file.name);
}

async function onCorpus() {
  const id = $("corpus-id").value.trim();
  if (!id) return;
  showMessage("");
  busy(true);
  try {
    setClip(await api("/api/clips/corpus", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: id }),
    }));
  } catch (err) {
    showMessage(err.message);
  } finally {
    busy(false);
  }
}

async function onRecord() {
  const button = $("record-btn");
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showMessage("this browser cannot record audio here (recording needs http://127.0.0.1 or https)");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showMessage("no microphone: " + err.message);
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = "● Record";
    button.classList.remove("recording");
    try {
      const wav = await toWav16k(new Blob(chunks, { type: recorder.mimeType }));
      await uploadBlob(wav, "recording.wav");
    } catch (err) {
      showMessage("the recording could not be decoded: " + err.message);
    }
  };
  recorder.start();
  state.recorder = recorder;
  button.textContent = "■ Stop";
  button.classList.add("recording");
}

// Decode what MediaRecorder made (webm/ogg) in the browser and write 16-kHz mono 16-bit WAV.
async function toWav16k(blob) {
  const buffer = await blob.arrayBuffer();
  const ctx = new (window.AudioContext || window.webkitAudioContext)();
  const decoded = await ctx.decodeAudioData(buffer);
  ctx.close();
  const rate = 16000;
  const n = Math.max(1, Math.ceil(decoded.duration * rate));
  const offline = new OfflineAudioContext(1, n, rate);
  const src = offline.createBufferSource();
  src.buffer = decoded;
  src.connect(offline.destination);
  src.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  const out = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (o, s) => { for (let i = 0; i < s.length; i++) out.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); out.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE"); text(12, "fmt ");
  out.setUint32(16, 16, true); out.setUint16(20, 1, true); out.setUint16(22, 1, true);
  out.setUint32(24, rate, true); out.setUint32(28, rate * 2, true); out.setUint16(32, 2, true); out.setUint16(34, 16, true);
  text(36, "data"); out.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    out.setInt16(44 + i * 2, v < 0 ? v * 0x8000 : v * 0x7fff, true);
  }
  return new Blob([out.buffer], { type: "audio/wav" });
}

// ------------------------------------------------------------------------------ the clip

function setClip(view) {
  state.clip = view;
  state.features = null;
  state.edits = [];
  state.range = null;
  $("clip").hidden = false;
  $("steer").hidden = false;
  $("clip-name").textContent = view.name;
  $("clip-seconds").textContent = view.seconds.toFixed(2) + " s";
  if (view.reference && !$("reference").value) $("reference").value = view.reference;
  $("player").src = "/api/clips/" + encodeURIComponent(view.id) + "/audio";
  $("t0").value = "";
  $("t1").value = "";
  buildSpectrogram(view.spectrogram);
  renderTranscript();
  renderEdits();
  $("result").hidden = true;
  drawAll();
  loadFeatures();
}

function renderTranscript() {
  const box = $("transcript");
  box.replaceChildren();
  const words = state.clip.words;
  if (!words.length) {
    box.textContent = state.clip.transcript || "(no words)";
    return;
  }
  words.forEach((w, i) => {
    const span = el("span", w.word, "word");
    span.title = w.start.toFixed(2) + "–" + w.end.toFixed(2) + " s";
    span.dataset.index = String(i);
    span.addEventListener("click", () => seek(w.start));
    box.appendChild(span);
    box.appendChild(document.createTextNode(" "));
  });
}

// Colour map: dark blue -> yellow (viridis-like, a few stops interpolated).
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(v) {
  const x = Math.max(0, Math.min(1, v / 255)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f));
}

function buildSpectrogram(spec) {
  const data = b64bytes(spec.data);
  const canvas = document.createElement("canvas");
  canvas.width = spec.frames;
  canvas.height = spec.n_mels;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(spec.frames, spec.n_mels);
  for (let m = 0; m < spec.n_mels; m++) {
    for (let t = 0; t < spec.frames; t++) {
      const [r, g, b] = colour(data[m * spec.frames + t]);
      const p = ((spec.n_mels - 1 - m) * spec.frames + t) * 4; // low frequencies at the bottom
      img.data[p] = r; img.data[p + 1] = g; img.data[p + 2] = b; img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  state.specImage = canvas;
}

function fitCanvas(canvas) {
  const width = canvas.clientWidth || 800;
  if (canvas.width !== width) canvas.width = width;
  return width;
}

function xOf(canvas, t) {
  return MARGIN_LEFT + (t / state.clip.seconds) * (canvas.width - MARGIN_LEFT - 4);
}

function timeAt(canvas, ev) {
  const rect = canvas.getBoundingClientRect();
  const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
  const t = ((x - MARGIN_LEFT) / (canvas.width - MARGIN_LEFT - 4)) * state.clip.seconds;
  return Math.max(0, Math.min(state.clip.seconds, t));
}

function niceStep(span, target) {
  const raw = span / target;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

function drawTimeAxis(ctx, canvas, y) {
  const seconds = state.clip.seconds;
  const step = niceStep(seconds, 10);
  ctx.fillStyle = "#333";
  ctx.strokeStyle = "#999";
  ctx.font = "11px sans-serif";
  ctx.textAlign = "center";
  for (let t = 0; t <= seconds + 1e-9; t += step) {
    const x = xOf(canvas, t);
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x, y + 4); ctx.stroke();
    ctx.fillText(t.toFixed(step < 1 ? 1 : 0), x, y + 15);
  }
  ctx.textAlign = "left";
  ctx.fillText("s", canvas.width - 12, y + 15);
}

function drawRange(ctx, canvas, top, height) {
  const r = state.range;
  if (!r) return;
  ctx.fillStyle = "rgba(255, 255, 255, 0.25)";
  ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
  const x0 = xOf(canvas, r[0]), x1 = xOf(canvas, r[1]);
  ctx.fillRect(x0, top, x1 - x0, height);
  ctx.strokeRect(x0, top, x1 - x0, height);
}

function drawPlayhead(ctx, canvas, top, height) {
  const t = $("player").currentTime || 0;
  const x = xOf(canvas, Math.min(t, state.clip.seconds));
  ctx.strokeStyle = "#ff3030";
  ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
  ctx.lineWidth = 1;
}

function drawSpectrogram() {
  const canvas = $("spectrogram");
  fitCanvas(canvas);
  const ctx = canvas.getContext("2d");
  const h = canvas.height - AXIS_BOTTOM;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  const x0 = xOf(canvas, 0);
  ctx.drawImage(state.specImage, x0, 0, xOf(canvas, state.clip.seconds) - x0, h);
  // frequency axis: ticks where the mel filters peak nearest to round frequencies
  const spec = state.clip.spectrogram;
  ctx.fillStyle = "#333";
  ctx.strokeStyle = "#999";
  ctx.font = "11px sans-serif";
  ctx.textAlign = "right";
  const hz = spec.mel_hz;
  for (const f of [0, 250, 500, 1000, 2000, 4000, 8000]) {
    if (!hz.length || f > hz[hz.length - 1] + 1) continue;
    let m = 0;
    while (m < hz.length - 1 && hz[m] < f) m++;
    const y = h - ((m + 0.5) / spec.n_mels) * h;
    ctx.beginPath(); ctx.moveTo(x0 - 4, y); ctx.lineTo(x0, y); ctx.stroke();
    ctx.fillText(f >= 1000 ? f / 1000 + "k" : String(f), x0 - 6, y + 4);
  }
  ctx.save();
  ctx.translate(10, h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("Hz (mel)", 0, 0);
  ctx.restore();
  drawTimeAxis(ctx, canvas, h);
  drawRange(ctx, canvas, 0, h);
  drawPlayhead(ctx, canvas, 0, h);
}

function drawStrip() {
  const canvas = $("strip");
  const feats = state.features;
  if (!feats || !feats.features.length) {
    canvas.height = 1;
    return;
  }
  const rowH = 14;
  const rows = feats.features.length;
  canvas.height = rows * rowH;
  fitCanvas(canvas);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const data = b64bytes(feats.strip);
  const n = feats.frames;
  const x0 = xOf(canvas, 0);
  const xEnd = xOf(canvas, Math.min(state.clip.seconds, n * feats.frame_seconds));
  const w = (xEnd - x0) / n;
  ctx.font = "11px sans-serif";
  ctx.textAlign = "right";
  feats.features.forEach((f, r) => {
    for (let t = 0; t < n; t++) {
      const v = data[r * n + t];
      const a = v / 255;
      ctx.fillStyle = "rgba(200, 40, 0, " + a.toFixed(3) + ")";
      ctx.fillRect(x0 + t * w, r * rowH, Math.ceil(w), rowH - 1);
    }
    ctx.fillStyle = state.picked && state.picked.has(f.id) ? "#0040c0" : "#333";
    ctx.fillText(String(f.id), x0 - 6, r * rowH + 11);
  });
  drawRange(ctx, canvas, 0, canvas.height);
  drawPlayhead(ctx, canvas, 0, canvas.height);
}

function highlightWord() {
  const t = $("player").currentTime || 0;
  const spans = $("transcript").querySelectorAll("span.word");
  spans.forEach((s) => {
    const w = state.clip.words[Number(s.dataset.index)];
    s.classList.toggle("now", t >= w.start && t < w.end);
  });
}

function drawAll() {
  if (!state.clip || !state.specImage) return;
  drawSpectrogram();
  drawStrip();
  highlightWord();
}

function tick() {
  if (state.clip && !$("player").paused) drawAll();
  requestAnimationFrame(tick);
}

function seek(t) {
  $("player").currentTime = t;
  drawAll();
}

// Click seeks; a drag chooses the time range of the next edit.
function onDown(ev) {
  if (!state.clip) return;
  state.drag = { start: timeAt($("spectrogram"), ev), moved: false };
}
function onMove(ev) {
  if (!state.drag) return;
  const t = timeAt($("spectrogram"), ev);
  if (Math.abs(t - state.drag.start) > 0.02) state.drag.moved = true;
  if (state.drag.moved) setRange(Math.min(t, state.drag.start), Math.max(t, state.drag.start));
}
function onUp(ev) {
  if (!state.drag) return;
  const drag = state.drag;
  state.drag = null;
  if (!drag.moved) seek(drag.start);
}
function setRange(t0, t1) {
  state.range = [t0, t1];
  $("t0").value = t0.toFixed(2);
  $("t1").value = t1.toFixed(2);
  drawAll();
}

// ------------------------------------------------------------------------------ features

async function loadFeatures() {
  const clip = state.clip;
  const params = new URLSearchParams({ top: "16" });
  if (currentSae()) params.set("sae", currentSae());
  try {
    const feats = await api("/api/clips/" + encodeURIComponent(clip.id) + "/features?" + params);
    if (state.clip !== clip) return;
    state.features = feats;
    state.picked = new Set();
    renderFeatures();
  } catch (err) {
    state.features = null;
    $("features-panel").hidden = true;
    showMessage(err.message);
  }
  drawAll();
}

function labelText(f) {
  const parts = [];
  if (f.phone) parts.push("/" + f.phone + "/ F1 " + f.phone_f1.toFixed(2));
  if (f.word) parts.push("“" + f.word + "” F1 " + f.word_f1.toFixed(2));
  if (f.attribute) parts.push(f.attribute + (f.attribute_direction ? " (" + f.attribute_direction + ")" : ""));
  return parts.join(" · ");
}

function renderFeatures() {
  const feats = state.features;
  $("features-panel").hidden = false;
  $("features-note").textContent =
    feats.sae + " at " + feats.hook + " · " + feats.active + " features fire on this clip; rows scaled to their own peak";
  const body = $("features").querySelector("tbody");
  body.replaceChildren();
  for (const f of feats.features) {
    const tr = el("tr");
    tr.dataset.feature = String(f.id);
    const box = el("input");
    box.type = "checkbox";
    box.className = "pick";
    box.addEventListener("change", () => {
      if (box.checked) state.picked.add(f.id);
      else state.picked.delete(f.id);
      tr.classList.toggle("picked", box.checked);
      $("feature-ids").value = Array.from(state.picked).join(",");
      drawStrip();
    });
    const cell = el("td");
    cell.appendChild(box);
    tr.appendChild(cell);
    tr.appendChild(el("td", f.id));
    tr.appendChild(el("td", f.peak.toFixed(2)));
    const at = el("td", f.peak_time.toFixed(2));
    at.style.cursor = "pointer";
    at.addEventListener("click", () => seek(Math.max(0, f.peak_time - 0.3)));
    tr.appendChild(at);
    tr.appendChild(el("td", labelText(f) || "—"));
    const link = el("td");
    if (f.page) {
      const a = el("a", "dashboard");
      a.href = f.page;
      a.target = "_blank";
      a.rel = "noopener";
      link.appendChild(a);
    }
    tr.appendChild(link);
    body.appendChild(tr);
  }
}

// ------------------------------------------------------------------------------ edits

function onAddEdit() {
  showMessage("");
  const ids = $("feature-ids").value.split(",").map((s) => s.trim()).filter((s) => s.length);
  const features = ids.map(Number);
  if (!features.length || features.some((f) => !Number.isInteger(f))) {
    showMessage("features: tick rows in the table or type ids such as 12,40");
    return;
  }
  const mode = $("mode").value;
  const edit = { sae: currentSae(), features: features, mode: mode };
  if (mode !== "ablate") {
    const v = Number($("value").value);
    if ($("value").value === "" || !Number.isFinite(v)) {
      showMessage("value: give a number (the factor for scale, the activation for clamp)");
      return;
    }
    edit.value = v;
  }
  const t0 = $("t0").value, t1 = $("t1").value;
  if (t0 !== "") edit.t0 = Number(t0);
  if (t1 !== "") edit.t1 = Number(t1);
  state.edits.push(edit);
  runEdits();
}

function describeEdit(e) {
  let text = e.mode + " feature " + e.features.join(",");
  if (e.mode === "scale") text += " ×" + e.value;
  if (e.mode === "clamp") text += " to " + e.value;
  if (e.t0 !== undefined || e.t1 !== undefined) {
    text += " on " + (e.t0 !== undefined ? e.t0.toFixed(2) : "0") + "–" + (e.t1 !== undefined ? e.t1.toFixed(2) : "end") + " s";
  }
  return text + " (" + e.sae + ")";
}

function renderEdits() {
  const list = $("edits");
  list.replaceChildren();
  state.edits.forEach((e, i) => {
    const li = el("li", describeEdit(e));
    const remove = el("button", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => {
      state.edits.splice(i, 1);
      runEdits();
    });
    li.appendChild(remove);
    list.appendChild(li);
  });
  $("undo").disabled = !state.edits.length;
  $("clear").disabled = !state.edits.length;
}

let editSeq = 0;
async function runEdits() {
  renderEdits();
  const clip = state.clip;
  if (!clip) return;
  if (!state.edits.length) {
    $("result").hidden = true;
    return;
  }
  const seq = ++editSeq;
  const body = { edits: state.edits, reference: $("reference").value.trim() || null };
  busy(true);
  try {
    const res = await api("/api/clips/" + encodeURIComponent(clip.id) + "/edit", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (seq !== editSeq) return;
    showResult(res);
  } catch (err) {
    if (seq !== editSeq) return;
    state.edits.pop(); // the edit just added was refused: take it off the stack
    renderEdits();
    showMessage(err.message);
  } finally {
    if (seq === editSeq) busy(false);
  }
}

function showResult(res) {
  $("result").hidden = false;
  const diff = $("diff");
  diff.replaceChildren();
  diff.dataset.changed = String(res.changed);
  if (!res.diff.length) diff.appendChild(el("span", "(empty transcript)", "muted"));
  for (const part of res.diff) {
    diff.appendChild(el("span", part.text, part.op));
    diff.appendChild(document.createTextNode(" "));
  }
  const edited = el("span", res.edited);
  edited.id = "edited-text";
  edited.hidden = true;
  diff.appendChild(edited);
  $("ce").textContent =
    res.ce_clean !== undefined
      ? "reference cross-entropy: " + res.ce_clean.toFixed(3) + " → " + res.ce_edited.toFixed(3) +
        " nats/token (" + (res.ce_change >= 0 ? "+" : "") + res.ce_change.toFixed(3) + ")"
      : "give a reference text to see the change in cross-entropy";
  const note = res.commands.length > 1 ? "# the app applies these together; intervene applies one at a time\n" : "";
  $("command").textContent = note + res.commands.join("\n");
}

init();
