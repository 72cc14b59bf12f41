// The page of `latentlm serve`: posts to /v1/images with "stream": true and
// reads the Server-Sent Events with a stream reader, replacing the images
// after every latent. Standard JavaScript only.
//
// #images carries what has been drawn, for tests and scripts: data-latents
// counts the latent events drawn so far and data-state is "running", "done",
// "error" or "stopped".
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
    setStatus(models.length ? "Ready." : "The server holds no models.");
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
    const r = await fetch("/v1/images", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(req),
      signal: controller.signal,
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      const e = body.error || {};
      box.dataset.state = "error";
      setStatus(`Error ${r.status}${e.field ? " in " + e.field : ""}: ${e.message || r.statusText}`);
      return;
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let events;
      [events, buf] = parseEvents(buf);
      for (const e of events) {
        const d = JSON.parse(e.data);
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
      }
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

$("model").addEventListener("change", fillClasses);
$("form").addEventListener("submit", generate);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
loadModels();
