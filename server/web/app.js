// The page of `latentlm serve`: posts to /v1/images with "stream": true and
// reads the Server-Sent Events with a stream reader, replacing the images
// after every latent. Standard JavaScript only.
//
// #images carries what has been drawn, for tests and scripts: data-latents
// counts the latent events drawn so far and data-state is "running", "done",
// "error" or "stopped".
//
// With a text-to-speech model the speech section posts to /v1/speech with
// "stream": true and schedules every chunk of PCM on a WebAudio context as
// it arrives, end to end, so that playback starts with the first chunk;
// once done it offers the chunks as one WAV file. #speech-out carries, for
// tests and scripts, data-state (as #images), data-chunks (audio events
// received), data-scheduled (chunks scheduled for playback) and
// data-playback ("webaudio", or "unavailable" where the browser has no
// WebAudio); the script's global lastWAV holds the WAV offered, a Blob.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let controller = null;

function setStatus(text) { $("status").textContent = text; }

function fillClasses() {
  const m = models.find((x) => x.name === $("model").value);
  const sel = $("class");
  const keep = sel.value;
  sel.textContent = "";
  for (let c = 0; m && c < m.classes; c++) {
    const o = document.createElement("option");
    o.value = String(c);
    o.textContent = String(c);
    sel.appendChild(o);
  }
  if (keep !== "" && m && Number(keep) < m.classes) sel.value = keep;
}

async function loadModels() {
  try {
    const r = await fetch("/v1/models");
    const body = await r.json();
    // The page draws classes: multimodal models (prompts) are left out.
    models = (body.models || []).filter((m) => m.classes > 0);
    loadSpeechModels(body);
    const d = body.defaults || {};
    if (d.steps !== undefined) $("steps").value = d.steps;
    if (d.cfg !== undefined) $("cfg").value = d.cfg;
    if (d.seed !== undefined) $("seed").value = d.seed;
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} (${m.kind}, ${m.classes} classes)`;
      $("model").appendChild(o);
    }
    fillClasses();
    // A server of speech models only shows the speech section.
    $("image-section").hidden = models.length === 0 && speechModels.length > 0;
    setStatus(models.length ? "Ready." : "The server holds no image models.");
  } catch (e) {
    setStatus("Could not load the models: " + e);
  }
}

function show(images, offset) {
  const box = $("images");
  images.forEach((b64, i) => {
    const k = offset + i;
    let img = box.children[k];
    if (!img) {
      img = document.createElement("img");
      img.alt = `image ${k + 1}`;
      box.appendChild(img);
    }
    img.src = "data:image/png;base64," + b64;
  });
}

// postEvents POSTs req as JSON to url and calls onEvent(event, data) for
// each Server-Sent Event of the answer, in order, until the stream ends.
// It returns null then, or the message of the server's refusal (a 4xx or
// 5xx JSON error, naming the field at fault) without calling onEvent.
async function postEvents(url, req, signal, onEvent) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(req),
    signal,
  });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    const e = body.error || {};
    return `Error ${r.status}${e.field ? " in " + e.field : ""}: ${e.message || r.statusText}`;
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buf += decoder.decode(value, { stream: true });
    let events;
    [events, buf] = parseEvents(buf);
    for (const e of events) onEvent(e, JSON.parse(e.data));
  }
}

// parseEvents splits the text received so far into complete events and
// returns them with the unfinished rest.
function parseEvents(buf) {
  const events = [];
  let idx;
  while ((idx = buf.indexOf("\n\n")) >= 0) {
    const block = buf.slice(0, idx);
    buf = buf.slice(idx + 2);
    let name = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    events.push({ name, data });
  }
  return [events, buf];
}

async function generate(ev) {
  ev.preventDefault();
  if (controller) return;
  const req = {
    model: $("model").value,
    class: Number($("class").value),
    n: Number($("n").value),
    steps: Number($("steps").value),
    cfg: Number($("cfg").value),
    seed: Number($("seed").value),
    stream: true,
  };
  controller = new AbortController();
  $("go").disabled = true;
  $("stop").disabled = false;
  const box = $("images");
  box.textContent = "";
  box.dataset.latents = "0";
  box.dataset.state = "running";
  setStatus("Waiting for the server…");
  const t0 = performance.now();
  try {
    const refused = await postEvents("/v1/images", req, controller.signal, (e, d) => {
      if (e.name === "latent") {
        show(d.images, d.offset);
        box.dataset.latents = String(Number(box.dataset.latents) + 1);
        setStatus(`Latent ${d.index + 1} of ${d.latents} (row ${d.row + 1}, column ${d.col + 1})`);
      } else if (e.name === "done") {
        show(d.images, 0);
        box.dataset.state = "done";
        const secs = ((performance.now() - t0) / 1000).toFixed(2);
        setStatus(`Done: ${d.images.length} image(s) in ${secs} s (first latent after ${d.timings.first_latent_ms.toFixed(0)} ms of generation).`);
      } else if (e.name === "error") {
        box.dataset.state = "error";
        setStatus("Error: " + d.error.message);
      }
    });
    if (refused) {
      box.dataset.state = "error";
      setStatus(refused);
    }
  } catch (e) {
    box.dataset.state = e.name === "AbortError" ? "stopped" : "error";
    setStatus(e.name === "AbortError" ? "Stopped." : "Error: " + e);
  } finally {
    controller = null;
    $("go").disabled = false;
    $("stop").disabled = true;
  }
}

// ---- Speech ----

let speechModels = [];
let speechController = null;
let audioCtx = null;
let playing = [];   // the sources scheduled for the current utterance
let lastWAV = null; // the last WAV offered, a Blob (for scripts and tests)
let wavURL = null;  // its object URL

function setSpeechStatus(text) { $("speech-status").textContent = text; }

function loadSpeechModels(body) {
  speechModels = (body.models || []).filter((m) => m.kind === "tts");
  $("speech-section").hidden = speechModels.length === 0;
  const d = (body.defaults || {}).speech || {};
  if (d.steps !== undefined) $("speech-steps").value = d.steps;
  if (d.cfg !== undefined) $("speech-cfg").value = d.cfg;
  if (d.seed !== undefined) $("speech-seed").value = d.seed;
  if (d.max_seconds !== undefined) $("speech-max").value = d.max_seconds;
  for (const m of speechModels) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = `${m.name} (${m.rate / 1000} kHz, ${(m.voices || []).length} voices)`;
    $("speech-model").appendChild(o);
  }
  fillVoices();
  if (speechModels.length) setSpeechStatus("Ready: type the words (numbers spelt out), pick a voice and press Speak (or Enter).");
}

function fillVoices() {
  const m = speechModels.find((x) => x.name === $("speech-model").value);
  const sel = $("speech-voice");
  const keep = sel.value;
  sel.textContent = "";
  const voices = (m && m.voices) || [];
  for (const v of voices) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v;
    sel.appendChild(o);
  }
  if (!voices.length) {
    const o = document.createElement("option");
    o.value = "";
    o.textContent = "no named voices: choose a WAV";
    sel.appendChild(o);
  }
  if (voices.includes(keep)) sel.value = keep;
}

// readDataURL reads a file as a data: URL (the server takes base64 WAV with
// such a prefix).
function readDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function b64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// wavBlob is a WAV file of 16-bit mono PCM chunks at rate: the 44-byte
// header the server writes, then the samples.
function wavBlob(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const h = new DataView(new ArrayBuffer(44));
  const tag = (off, s) => { for (let i = 0; i < 4; i++) h.setUint8(off + i, s.charCodeAt(i)); };
  tag(0, "RIFF"); h.setUint32(4, 36 + n, true); tag(8, "WAVE"); tag(12, "fmt ");
  h.setUint32(16, 16, true); h.setUint16(20, 1, true); h.setUint16(22, 1, true);
  h.setUint32(24, rate, true); h.setUint32(28, 2 * rate, true); h.setUint16(32, 2, true); h.setUint16(34, 16, true);
  tag(36, "data"); h.setUint32(40, n, true);
  return new Blob([h.buffer, ...chunks], { type: "audio/wav" });
}

// Player schedules PCM chunks end to end on the audio context: each starts
// where the one before ends, or, if the network fell behind, a little after
// now.
class Player {
  constructor(ctx) { this.ctx = ctx; this.next = 0; }
  play(bytes, rate) {
    const n = bytes.length / 2;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const buf = this.ctx.createBuffer(1, n, rate);
    const ch = buf.getChannelData(0);
    for (let i = 0; i < n; i++) ch[i] = view.getInt16(2 * i, true) / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = buf;
    src.connect(this.ctx.destination);
    const at = Math.max(this.next, this.ctx.currentTime + 0.05);
    src.start(at);
    this.next = at + buf.duration;
    playing.push(src);
  }
}

function stopPlaying() {
  for (const src of playing) { try { src.stop(); } catch (e) { /* not started */ } }
  playing = [];
}

async function speak(ev) {
  ev.preventDefault();
  if (speechController) return;
  const out = $("speech-out");
  const req = {
    model: $("speech-model").value,
    text: $("speech-text").value,
    steps: Number($("speech-steps").value),
    cfg: Number($("speech-cfg").value),
    seed: Number($("speech-seed").value),
    max_seconds: Number($("speech-max").value),
    stream: true,
  };
  const file = $("speech-prompt").files[0];
  const voice = $("speech-voice").value;
  if (file) req.prompt_wav = await readDataURL(file);
  else req.voice = voice;
  // The audio context is made (or resumed) here, in the handler of a click
  // or a key, since browsers let only a user's gesture start sound.
  let player = null;
  try {
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") await audioCtx.resume();
    player = new Player(audioCtx);
  } catch (e) {
    player = null;
  }
  stopPlaying();
  speechController = new AbortController();
  $("speak").disabled = true;
  $("speech-stop").disabled = false;
  $("speech-audio").hidden = true;
  $("speech-download").hidden = true;
  out.dataset.state = "running";
  out.dataset.chunks = "0";
  out.dataset.scheduled = "0";
  out.dataset.playback = player ? "webaudio" : "unavailable";
  setSpeechStatus("Waiting for the server…");
  const t0 = performance.now();
  const chunks = [];
  let rate = 16000, firstAudio = 0;
  try {
    const refused = await postEvents("/v1/speech", req, speechController.signal, (e, d) => {
      if (e.name === "audio") {
        const bytes = b64ToBytes(d.pcm);
        chunks.push(bytes);
        rate = d.rate;
        if (!firstAudio) firstAudio = performance.now() - t0;
        if (player) {
          player.play(bytes, d.rate);
          out.dataset.scheduled = String(Number(out.dataset.scheduled) + 1);
        }
        out.dataset.chunks = String(chunks.length);
        setSpeechStatus(`Speaking: ${((d.start + d.samples) / d.rate).toFixed(2)} s so far${player ? "" : " (this browser cannot play it as it comes)"}…`);
      } else if (e.name === "done") {
        if (wavURL) URL.revokeObjectURL(wavURL);
        lastWAV = wavBlob(chunks, rate);
        wavURL = URL.createObjectURL(lastWAV);
        $("speech-download").href = wavURL;
        $("speech-download").hidden = false;
        $("speech-audio").src = wavURL;
        $("speech-audio").hidden = false;
        out.dataset.state = "done";
        const how = d.stopped ? "ended by the model" : "cut at max seconds or the model's context";
        setSpeechStatus(`Done: ${d.seconds.toFixed(2)} s of speech (${how}) in ${((performance.now() - t0) / 1000).toFixed(2)} s; ` +
          `first audio after ${firstAudio.toFixed(0)} ms, real-time factor ${d.timings.real_time_factor.toFixed(2)}.`);
      } else if (e.name === "error") {
        out.dataset.state = "error";
        setSpeechStatus("Error: " + d.error.message);
      }
    });
    if (refused) {
      out.dataset.state = "error";
      setSpeechStatus(refused);
    }
  } catch (e) {
    out.dataset.state = e.name === "AbortError" ? "stopped" : "error";
    setSpeechStatus(e.name === "AbortError" ? "Stopped." : "Error: " + e);
  } finally {
    speechController = null;
    $("speak").disabled = false;
    $("speech-stop").disabled = true;
  }
}

$("speech-model").addEventListener("change", fillVoices);
$("speech-form").addEventListener("submit", speak);
$("speech-stop").addEventListener("click", () => {
  if (speechController) speechController.abort();
  stopPlaying();
});

$("model").addEventListener("change", fillClasses);
$("form").addEventListener("submit", generate);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
loadModels();
