// The page of `latentlm serve`: posts to /v1/images with "stream": true and
// reads the Server-Sent Events with a stream reader, replacing the images
// after every latent: a class for a class-conditional model, a prompt for
// a multimodal one. Standard JavaScript only.
//
// #images carries what has been drawn, for tests and scripts: data-latents
// counts the latent events drawn so far and data-state is "running", "done",
// "error" or "stopped".
//
// With a multimodal model the "read and write" section captions an image
// (one the page drew, through its Caption button, or a PNG file) or answers
// a question about it (POST /v1/captions or /v1/answers), and completes a
// prompt (POST /v1/completions with "stream": true), its text appended as
// each "text" event arrives and its images inline. #read-out carries
// data-state (as #images), data-kind ("caption" or "answer") and data-text
// (the text the model wrote); #complete-out carries data-state, data-texts
// (text events received), data-images (image events) and data-text (the
// text so far, without the prompt).
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
let models = [];   // the image models: class-conditional and multimodal
let mmModels = []; // the multimodal models

const isMultimodal = (m) => m.kind === "multimodal";

function setStatus(text) { $("status").textContent = text; }

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

// pickModel shows the class picker for a class-conditional model and the
// prompt for a multimodal one (the other is disabled, so that the form
// neither checks nor sends it).
function pickModel() {
  const m = models.find((x) => x.name === $("model").value);
  const mm = !!m && isMultimodal(m);
  $("class-row").hidden = mm;
  $("class").disabled = mm;
  $("prompt-row").hidden = !mm;
  $("prompt").disabled = !mm;
  const sel = $("class");
  const keep = sel.value;
  sel.textContent = "";
  for (let c = 0; m && c < m.classes; c++) sel.appendChild(option(String(c), String(c)));
  if (keep !== "" && m && Number(keep) < m.classes) sel.value = keep;
  if (m && !imageJob.busy) setStatus(mm ? "Ready: type a prompt and press Generate (or Enter)." : "Ready.");
}

async function loadModels() {
  try {
    const r = await fetch("/v1/models");
    const body = await r.json();
    const all = body.models || [];
    models = all.filter((m) => m.classes > 0 || isMultimodal(m));
    mmModels = all.filter(isMultimodal);
    loadSpeechModels(body);
    loadMultimodal(body);
    const d = body.defaults || {};
    if (d.n !== undefined) $("n").value = d.n;
    if (d.steps !== undefined) $("steps").value = d.steps;
    if (d.cfg !== undefined) $("cfg").value = d.cfg;
    if (d.seed !== undefined) $("seed").value = d.seed;
    for (const m of models) {
      const what = isMultimodal(m) ? `multimodal: prompts, ${m.image_size}×${m.image_size}` : `${m.kind}, ${m.classes} classes`;
      $("model").appendChild(option(m.name, `${m.name} (${what})`));
    }
    // A server of speech models only shows the speech section.
    $("image-section").hidden = models.length === 0 && speechModels.length > 0;
    setStatus(models.length ? "Ready." : "The server holds no image models.");
    pickModel();
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

// refusal is the message of the server's refusal r (a 4xx or 5xx JSON
// error, naming the field at fault).
async function refusal(r) {
  const body = await r.json().catch(() => ({}));
  const e = body.error || {};
  return `Error ${r.status}${e.field ? " in " + e.field : ""}: ${e.message || r.statusText}`;
}

function post(url, req, signal) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(req),
    signal,
  });
}

// postJSON POSTs req as JSON to url and returns { body } with the answer,
// or { refused } with the message of the server's refusal.
async function postJSON(url, req, signal) {
  const r = await post(url, req, signal);
  if (!r.ok) return { refused: await refusal(r) };
  return { body: await r.json() };
}

// postEvents POSTs req as JSON to url and calls onEvent(event, data) for
// each Server-Sent Event of the answer, in order, until the stream ends.
// It returns null then, or the message of the server's refusal without
// calling onEvent.
async function postEvents(url, req, signal, onEvent) {
  const r = await post(url, req, signal);
  if (!r.ok) return refusal(r);
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

// Job runs the requests of one form, one at a time: while one runs its
// submit button is disabled and its Stop button cancels it; out.dataset.state
// is "running", then "done" (set by the caller), "error" or "stopped", and
// say reports on the form's status line.
class Job {
  constructor(go, stop, out, say) {
    this.go = $(go);
    this.stop = $(stop);
    this.out = $(out);
    this.say = say;
    this.controller = null;
    this.stop.addEventListener("click", () => { if (this.controller) this.controller.abort(); });
  }

  get busy() { return this.controller !== null; }

  fail(message) {
    this.out.dataset.state = "error";
    this.say(message);
  }

  // run calls work(signal), which returns null or the message of the
  // server's refusal.
  async run(work) {
    if (this.controller) return;
    this.controller = new AbortController();
    this.go.disabled = true;
    this.stop.disabled = false;
    this.out.dataset.state = "running";
    this.say("Waiting for the server…");
    try {
      const refused = await work(this.controller.signal);
      if (refused) this.fail(refused);
      else if (this.out.dataset.state === "running") this.fail("Error: the answer ended before it was done.");
    } catch (e) {
      if (e.name === "AbortError") {
        this.out.dataset.state = "stopped";
        this.say("Stopped.");
      } else {
        this.fail("Error: " + e);
      }
    } finally {
      this.controller = null;
      this.go.disabled = false;
      this.stop.disabled = true;
    }
  }

  // events runs a streamed request: onEvent sees each event but "error",
  // which ends the job.
  events(url, req, onEvent) {
    return this.run((signal) => postEvents(url, req, signal, (e, d) => {
      if (e.name === "error") this.fail("Error: " + d.error.message);
      else onEvent(e, d);
    }));
  }
}

const imageJob = new Job("go", "stop", "images", setStatus);

async function generate(ev) {
  ev.preventDefault();
  if (imageJob.busy) return;
  const model = $("model").value;
  const m = models.find((x) => x.name === model);
  const req = {
    model,
    n: Number($("n").value),
    steps: Number($("steps").value),
    cfg: Number($("cfg").value),
    seed: Number($("seed").value),
    stream: true,
  };
  const mm = !!m && isMultimodal(m);
  if (mm) req.prompt = $("prompt").value;
  else req.class = Number($("class").value);
  const box = $("images");
  box.textContent = "";
  box.dataset.latents = "0";
  $("image-actions").textContent = "";
  $("image-actions").hidden = true;
  const t0 = performance.now();
  await imageJob.events("/v1/images", req, (e, d) => {
    if (e.name === "latent") {
      show(d.images, d.offset);
      box.dataset.latents = String(Number(box.dataset.latents) + 1);
      setStatus(`Latent ${d.index + 1} of ${d.latents} (row ${d.row + 1}, column ${d.col + 1})`);
    } else if (e.name === "done") {
      show(d.images, 0);
      if (mm) offerReading(model, d.images);
      box.dataset.state = "done";
      const secs = ((performance.now() - t0) / 1000).toFixed(2);
      setStatus(`Done: ${d.images.length} image(s) in ${secs} s (first latent after ${d.timings.first_latent_ms.toFixed(0)} ms of generation).`);
    }
  });
}

// ---- Read and write (multimodal models) ----

let readImage = null; // the image to read: base64 PNG, or a data: URL of one

function setReadStatus(text) { $("read-status").textContent = text; }
function setCompleteStatus(text) { $("complete-status").textContent = text; }

const readJob = new Job("read-go", "read-stop", "read-out", setReadStatus);
const completeJob = new Job("complete-go", "complete-stop", "complete-out", setCompleteStatus);

function loadMultimodal(body) {
  $("mm-section").hidden = mmModels.length === 0;
  for (const m of mmModels) $("mm-model").appendChild(option(m.name, `${m.name} (${m.image_size}×${m.image_size})`));
  const d = body.defaults || {};
  const c = d.completion || {};
  if (c.max_tokens !== undefined) $("complete-max").value = c.max_tokens;
  if (c.temperature !== undefined) $("complete-temp").value = c.temperature;
  if (c.top_p !== undefined) $("complete-top-p").value = c.top_p;
  if (d.steps !== undefined) $("complete-steps").value = d.steps;
  if (d.cfg !== undefined) $("complete-cfg").value = d.cfg;
  if (d.seed !== undefined) $("complete-seed").value = d.seed;
  const lim = body.limits || {};
  if (lim.max_tokens) $("complete-max").max = lim.max_tokens;
  pickReadModel();
  if (mmModels.length) setCompleteStatus("Ready: type a prompt and press Complete (or Enter).");
}

function pickReadModel() {
  const m = mmModels.find((x) => x.name === $("mm-model").value);
  $("read-size").textContent = m ? `${m.image_size}×${m.image_size} pixels` : "the model's size";
}

// offerReading puts a Caption button under the images model drew, each of
// which reads its image with that model.
function offerReading(model, images) {
  const box = $("image-actions");
  box.textContent = "";
  images.forEach((b64, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = images.length > 1 ? `Caption image ${i + 1}` : "Caption this image";
    b.addEventListener("click", () => {
      $("mm-model").value = model;
      pickReadModel();
      $("read-file").value = "";
      setReadImage(b64);
      read().then(() => $("read-out").scrollIntoView({ block: "nearest" }));
    });
    box.appendChild(b);
  });
  box.hidden = false;
}

function setReadImage(b64) {
  readImage = b64;
  const el = $("read-image");
  el.src = b64.startsWith("data:") ? b64 : "data:image/png;base64," + b64;
  el.hidden = false;
}

async function chooseReadFile() {
  const file = $("read-file").files[0];
  if (!file) return;
  try {
    setReadImage(await readDataURL(file));
    setReadStatus(`${file.name}: press ${$("read-go").textContent} (or Enter in the question).`);
  } catch (e) {
    setReadStatus("Could not read the file: " + e);
  }
}

// read captions the image chosen or, with a question, answers it.
async function read(ev) {
  if (ev) ev.preventDefault();
  if (readJob.busy) return;
  const out = $("read-out");
  if (!readImage) {
    out.dataset.state = "error";
    setReadStatus("Choose a PNG first, or draw an image above and press its Caption button.");
    return;
  }
  const question = $("read-question").value.trim();
  const req = { model: $("mm-model").value, images: [readImage] };
  if (question) req.question = question;
  $("read-text").textContent = "";
  out.dataset.kind = question ? "answer" : "caption";
  delete out.dataset.text;
  const t0 = performance.now();
  await readJob.run(async (signal) => {
    const { body, refused } = await postJSON(question ? "/v1/answers" : "/v1/captions", req, signal);
    if (refused) return refused;
    const text = (question ? body.answers : body.captions)[0];
    out.dataset.text = text;
    const shown = text.trim() ? `“${text.trim()}”` : "(the model wrote nothing)";
    $("read-text").textContent = question ? `Q: ${question} — A: ${shown}` : `Caption: ${shown}`;
    out.dataset.state = "done";
    setReadStatus(`Done in ${((performance.now() - t0) / 1000).toFixed(2)} s.`);
    return null;
  });
}

function labelRead() {
  $("read-go").textContent = $("read-question").value.trim() ? "Ask" : "Caption";
}

// complete streams a completion: text as it comes, images inline.
async function complete(ev) {
  ev.preventDefault();
  if (completeJob.busy) return;
  const req = {
    model: $("mm-model").value,
    prompt: $("complete-prompt").value,
    max_tokens: Number($("complete-max").value),
    temperature: Number($("complete-temp").value),
    top_p: Number($("complete-top-p").value),
    steps: Number($("complete-steps").value),
    cfg: Number($("complete-cfg").value),
    seed: Number($("complete-seed").value),
    stream: true,
  };
  const out = $("complete-out");
  out.textContent = "";
  const p = document.createElement("span");
  p.className = "prompt";
  p.textContent = req.prompt;
  out.appendChild(p);
  out.dataset.texts = "0";
  out.dataset.images = "0";
  out.dataset.text = "";
  let span = null; // the text since the last image
  const t0 = performance.now();
  await completeJob.events("/v1/completions", req, (e, d) => {
    if (e.name === "text") {
      if (!span) {
        span = document.createElement("span");
        out.appendChild(span);
      }
      span.textContent += d.text;
      out.dataset.text += d.text;
      out.dataset.texts = String(Number(out.dataset.texts) + 1);
      setCompleteStatus(`Writing: ${out.dataset.texts} piece(s) of text, ${out.dataset.images} image(s)…`);
    } else if (e.name === "image") {
      const img = document.createElement("img");
      img.alt = `image ${d.index + 1} of the completion`;
      img.src = "data:image/png;base64," + d.image;
      out.appendChild(img);
      span = null;
      out.dataset.images = String(Number(out.dataset.images) + 1);
      setCompleteStatus(`Writing: ${out.dataset.texts} piece(s) of text, ${out.dataset.images} image(s)…`);
    } else if (e.name === "done") {
      out.dataset.state = "done";
      const first = d.timings.first_piece_ms ? `; first piece after ${d.timings.first_piece_ms.toFixed(0)} ms of generation` : "";
      setCompleteStatus(`Done: ${d.text.length} characters of text and ${d.images.length} image(s) in ${((performance.now() - t0) / 1000).toFixed(2)} s${first}.`);
    }
  });
}

$("mm-model").addEventListener("change", pickReadModel);
$("read-file").addEventListener("change", chooseReadFile);
$("read-question").addEventListener("input", labelRead);
$("read-form").addEventListener("submit", read);
$("complete-form").addEventListener("submit", complete);

// ---- Speech ----

let speechModels = [];
let audioCtx = null;
let playing = [];   // the sources scheduled for the current utterance
let lastWAV = null; // the last WAV offered, a Blob (for scripts and tests)
let wavURL = null;  // its object URL

function setSpeechStatus(text) { $("speech-status").textContent = text; }

const speechJob = new Job("speak", "speech-stop", "speech-out", setSpeechStatus);

function loadSpeechModels(body) {
  speechModels = (body.models || []).filter((m) => m.kind === "tts");
  $("speech-section").hidden = speechModels.length === 0;
  const d = (body.defaults || {}).speech || {};
  if (d.steps !== undefined) $("speech-steps").value = d.steps;
  if (d.cfg !== undefined) $("speech-cfg").value = d.cfg;
  if (d.seed !== undefined) $("speech-seed").value = d.seed;
  if (d.max_seconds !== undefined) $("speech-max").value = d.max_seconds;
  // With one model for spoken numbers and one for other text, the server
  // chooses between them by the text when no model is named (docs/API.md,
  // POST /v1/speech): the page offers that first.
  const byText = byTextModels();
  if (byText) {
    $("speech-model").appendChild(option("", `by the text: spoken numbers to ${byText[0].name}, other text to ${byText[1].name}`));
  }
  for (const m of speechModels) {
    const set = m.set ? `${m.set}, ` : "";
    $("speech-model").appendChild(option(m.name, `${m.name} (${set}${m.rate / 1000} kHz, ${(m.voices || []).length} voices)`));
  }
  fillVoices();
  if (speechModels.length) setSpeechStatus("Ready: type the words (numbers spelt out: four hundred twelve), pick a voice and press Speak (or Enter).");
}

// byTextModels gives the two models the server chooses between by the
// text, [numbers, other], where exactly one model was trained on spoken
// numbers and exactly one on sentences (or both sets); else null.
function byTextModels() {
  const of = (sets) => speechModels.filter((m) => sets.includes(m.set));
  const nums = of(["numbers"]), other = of(["sentences", "both"]);
  return nums.length === 1 && other.length === 1 ? [nums[0], other[0]] : null;
}

function fillVoices() {
  const name = $("speech-model").value;
  const m = speechModels.find((x) => x.name === name);
  const sel = $("speech-voice");
  const keep = sel.value;
  sel.textContent = "";
  // Chosen by the text, the voice must be one that both models speak.
  let voices = (m && m.voices) || [];
  const byText = byTextModels();
  if (name === "" && byText) {
    const [a, b] = byText.map((x) => x.voices || []);
    voices = a.filter((v) => b.includes(v));
  }
  for (const v of voices) sel.appendChild(option(v, v));
  if (!voices.length) sel.appendChild(option("", "no named voices: choose a WAV"));
  if (voices.includes(keep)) sel.value = keep;
}

// readDataURL reads a file as a data: URL (the server takes base64 WAV and
// PNG with such a prefix).
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
  if (speechJob.busy) return;
  const out = $("speech-out");
  const req = {
    text: $("speech-text").value,
    steps: Number($("speech-steps").value),
    cfg: Number($("speech-cfg").value),
    seed: Number($("speech-seed").value),
    max_seconds: Number($("speech-max").value),
    stream: true,
  };
  if ($("speech-model").value) req.model = $("speech-model").value;
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
  if (speechJob.busy) return;
  stopPlaying();
  $("speech-audio").hidden = true;
  $("speech-download").hidden = true;
  out.dataset.chunks = "0";
  out.dataset.scheduled = "0";
  out.dataset.playback = player ? "webaudio" : "unavailable";
  const t0 = performance.now();
  const chunks = [];
  let rate = 16000, firstAudio = 0;
  await speechJob.events("/v1/speech", req, (e, d) => {
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
      setSpeechStatus(`Done: ${d.seconds.toFixed(2)} s of speech by ${d.model} (${how}) in ${((performance.now() - t0) / 1000).toFixed(2)} s; ` +
        `first audio after ${firstAudio.toFixed(0)} ms, real-time factor ${d.timings.real_time_factor.toFixed(2)}.`);
    }
  });
}

$("speech-model").addEventListener("change", fillVoices);
$("speech-form").addEventListener("submit", speak);
$("speech-stop").addEventListener("click", stopPlaying);

$("model").addEventListener("change", pickModel);
$("form").addEventListener("submit", generate);
loadModels();
