// The search page: a basket of weighted query terms (texts, files, recordings, indexed items), a filter by input
// kind, and a grid of results. Plain JS, no build step, nothing from other hosts: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { kinds: [], terms: [], token: sessionStorage.getItem("openbind-token") || "" };
let recorder = null;
let searches = 0;  // only the latest search's answer is shown

function headers() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new Error("this server needs its access token: enter it above");
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = body?.error;
    const name = error?.input ? `${error.input}: ` : "";
    throw new Error(error ? `${name}${error.reason}` : `the server answered ${response.status}`);
  }
  return body;
}

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

// ---- the kinds this server reads

const fileKinds = () => state.kinds.filter((k) => k.files);

function kindOfFile(name) {
  const dot = name.lastIndexOf(".");
  const suffix = dot >= 0 ? name.slice(dot).toLowerCase() : "";
  return fileKinds().find((k) => k.suffixes.includes(suffix))?.name || "";
}

async function loadInfo() {
  try {
    const info = await api("/v1/info");
    state.kinds = info.kinds;
    $("k").max = info.max_k;
    $("status").textContent = `${info.items} items · ${info.kinds.map((k) => k.name).join(", ")}`;
    const filter = $("filter");
    filter.querySelectorAll("label").forEach((l) => l.remove());
    for (const kind of info.kinds) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = kind.name;
      box.checked = true;
      box.addEventListener("change", () => state.terms.length && search());
      label.append(box, ` ${kind.name}`);
      filter.append(label);
    }
    return true;
  } catch (error) {
    $("status").textContent = "not connected";
    say(error.message, true);
    return false;
  }
}

// ---- the basket

function addTerm(term) {
  state.terms.push({ weight: 1, ...term });
  renderBasket();
}

function addFile(file, kind) {
  const term = { file, name: file.name || "upload", kind: kind || kindOfFile(file.name || "") };
  if (file.type.startsWith("image/")) term.preview = URL.createObjectURL(file);
  addTerm(term);
  if (!term.kind) say(`choose what ${term.name} is (its kind) in the query`, true);
}

function termLabel(term) {
  if (term.text !== undefined) return `“${term.text}”`;
  if (term.item !== undefined) return term.name || `item ${term.item}`;
  return term.name;
}

function renderBasket() {
  const basket = $("basket");
  basket.replaceChildren();
  state.terms.forEach((term, i) => {
    const li = document.createElement("li");
    li.className = "term" + (term.weight < 0 ? " negative" : "");
    const sign = document.createElement("button");
    sign.className = "sign";
    sign.type = "button";
    sign.textContent = term.weight < 0 ? "−" : "+";
    sign.title = "add or subtract this term";
    sign.addEventListener("click", () => { term.weight = -term.weight; renderBasket(); });
    li.append(sign);
    if (term.preview) {
      const img = document.createElement("img");
      img.src = term.preview;
      img.alt = "";
      li.append(img);
    }
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = termLabel(term);
    label.title = label.textContent;
    li.append(label);
    if (term.file) {
      const select = document.createElement("select");
      select.title = "what kind of input this file is";
      if (!term.kind) select.append(new Option("kind?", ""));
      for (const kind of fileKinds()) select.append(new Option(kind.name, kind.name, false, kind.name === term.kind));
      select.addEventListener("change", () => { term.kind = select.value; renderBasket(); });
      li.append(select);
    }
    const weight = document.createElement("input");
    weight.type = "number";
    weight.step = "0.25";
    weight.value = Math.abs(term.weight);
    weight.title = "weight";
    weight.setAttribute("aria-label", "weight");
    weight.addEventListener("change", () => {
      const value = Math.abs(parseFloat(weight.value));
      if (Number.isFinite(value)) term.weight = Math.sign(term.weight || 1) * value;
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.title = "remove this term";
    remove.addEventListener("click", () => { state.terms.splice(i, 1); renderBasket(); });
    li.append(weight, remove);
    basket.append(li);
  });
  $("basket-empty").hidden = state.terms.length > 0;
}

// ---- searching

function chosenKinds() {
  const boxes = [...$("filter").querySelectorAll("input")];
  const checked = boxes.filter((b) => b.checked).map((b) => b.value);
  return checked.length === boxes.length ? null : checked;
}

function shareable() {
  const terms = state.terms.filter((t) => !t.file).map((t) =>
    t.text !== undefined ? { text: t.text, weight: t.weight } : { item: t.item, weight: t.weight });
  const params = new URLSearchParams();
  if (terms.length) params.set("q", JSON.stringify(terms));
  params.set("k", $("k").value);
  const kinds = chosenKinds();
  if (kinds) params.set("only", kinds.join(","));
  history.replaceState(null, "", `?${params}`);
}

async function search() {
  if (!state.terms.length) return say("add a text, a file or an item to the query first", true);
  if (state.terms.some((t) => t.file && !t.kind)) return say("choose the kind of every file in the query", true);
  const kinds = chosenKinds();
  if (kinds && !kinds.length) return say("tick at least one kind to show", true);
  const files = [];
  const query = state.terms.map((t) => {
    if (t.text !== undefined) return { text: t.text, weight: t.weight };
    if (t.item !== undefined) return { item: t.item, weight: t.weight };
    files.push(t);
    return { file: files.length - 1, kind: t.kind, weight: t.weight };
  });
  const request = { query, k: parseInt($("k").value, 10) || 24 };
  if (kinds) request.modalities = kinds;
  let options;
  if (files.length) {
    const form = new FormData();
    form.append("json", JSON.stringify(request));
    for (const t of files) form.append(t.kind, t.file, t.name);
    options = { method: "POST", body: form };
  } else {
    options = { method: "POST", body: JSON.stringify(request), headers: { "Content-Type": "application/json" } };
  }
  say("searching…");
  shareable();
  const mine = ++searches;
  try {
    const answer = await api("/v1/search", options);
    if (mine !== searches) return;
    renderResults(answer.results);
    const dropped = files.length ? " (uploaded files are not part of the link)" : "";
    say(`${answer.results.length} results in ${Math.round(answer.took_ms)} ms${dropped}`);
  } catch (error) {
    if (mine === searches) say(error.message, true);
  }
}

// ---- results

async function mediaSource(url) {
  if (!state.token) return url;  // without a token the browser streams the file itself (seeking included)
  const response = await fetch(url, { headers: headers() });
  return URL.createObjectURL(await response.blob());
}

async function fillMedia(box, result) {
  const url = result.media;
  if (!url) {
    box.textContent = "(file not served: outside the index's folders)";
    return;
  }
  const type = result.media_type || "";
  let element;
  if (type.startsWith("image/")) {
    element = document.createElement("img");
    element.loading = "lazy";
    element.alt = result.path;
  } else if (type.startsWith("video/")) {
    element = document.createElement("video");
    element.muted = true;
    element.preload = "metadata";
    element.controls = true;
    element.addEventListener("mouseenter", () => element.play().catch(() => {}));
    element.addEventListener("mouseleave", () => element.pause());
  } else if (type.startsWith("audio/")) {
    element = document.createElement("audio");
    element.controls = true;
    element.preload = "none";
  } else {  // texts, sensor CSVs: the first lines
    element = document.createElement("pre");
    const response = await fetch(url, { headers: { ...headers(), Range: "bytes=0-599" } });
    element.textContent = (await response.text()).slice(0, 600);
    box.replaceChildren(element);
    return;
  }
  element.src = await mediaSource(url);
  box.replaceChildren(element);
}

function renderResults(results) {
  const grid = $("results");
  grid.replaceChildren();
  for (const result of results) {
    const tile = document.createElement("article");
    tile.className = "tile";
    tile.dataset.id = result.id;
    const media = document.createElement("div");
    media.className = "media";
    fillMedia(media, result).catch(() => { media.textContent = "(no preview)"; });
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(0, Math.min(1, result.score)) * 100}%`;
    const about = document.createElement("div");
    about.className = "about";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = result.path.split(/[\\/]/).pop();
    name.title = result.path;
    const line = document.createElement("div");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = result.score.toFixed(3);
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = ` ${result.modality}`;
    line.append(score, kind);
    const actions = document.createElement("div");
    actions.className = "actions";
    const similar = button("Find similar", () => { state.terms = []; addItem(result, 1); search(); });
    similar.className = "similar";
    actions.append(similar, button("+", () => addItem(result, 1), "add to the query"),
      button("−", () => addItem(result, -1), "subtract from the query"));
    about.append(name, line, actions);
    tile.append(media, bar, about);
    grid.append(tile);
  }
}

function addItem(result, weight) {
  addTerm({ item: result.id, weight, name: result.path.split(/[\\/]/).pop() });
}

function button(text, onClick, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (title) b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

// ---- input: text, files, paste, drop, microphone

function addText(weight) {
  const text = $("text").value.trim();
  if (!text) return;
  addTerm({ text, weight });
  $("text").value = "";
  search();
}

async function toggleRecording() {
  if (recorder) { recorder.stop(); return; }
  if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
    return say("this browser cannot record sound here (recording needs https or localhost)", true);
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = recorder.mimeType || "audio/webm";
      const sound = state.kinds.find((k) => k.files && k.suffixes.includes(".wav"));
      addFile(new File(chunks, `recording.${type.includes("ogg") ? "ogg" : "webm"}`, { type }), sound?.name);
      recorder = null;
      $("record").classList.remove("on");
      $("record").textContent = "● Record";
    });
    recorder.start();
    $("record").classList.add("on");
    $("record").textContent = "■ Stop";
  } catch (error) {
    say(`cannot record: ${error.message}`, true);
  }
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.get("k")) $("k").value = params.get("k");
  const only = params.get("only");
  if (only) {
    const wanted = new Set(only.split(","));
    $("filter").querySelectorAll("input").forEach((b) => { b.checked = wanted.has(b.value); });
  }
  try {
    for (const t of JSON.parse(params.get("q") || "[]")) {
      if (typeof t.text === "string") addTerm({ text: t.text, weight: Number(t.weight) || 1 });
      else if (Number.isInteger(t.item)) addTerm({ item: t.item, weight: Number(t.weight) || 1 });
    }
  } catch {
    say("the link's query could not be read", true);
  }
  if (state.terms.length) search();
}

function wire() {
  $("text-form").addEventListener("submit", (e) => { e.preventDefault(); addText(1); });
  $("minus-text").addEventListener("click", () => addText(-1));
  $("search").addEventListener("click", search);
  $("clear").addEventListener("click", () => {
    state.terms = [];
    renderBasket();
    $("results").replaceChildren();
    say("");
    history.replaceState(null, "", location.pathname);
  });
  $("pick").addEventListener("change", (e) => { [...e.target.files].forEach((f) => addFile(f)); e.target.value = ""; });
  $("record").addEventListener("click", toggleRecording);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    [...e.dataTransfer.files].forEach((f) => addFile(f));
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("pick").click(); });
  document.addEventListener("paste", (e) => {
    const pasted = [...(e.clipboardData?.files || [])];
    if (pasted.length) { e.preventDefault(); pasted.forEach((f) => addFile(f)); }
  });
  $("k").addEventListener("change", () => state.terms.length && search());
  $("token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("openbind-token", state.token);
    if (await loadInfo()) { $("token-form").hidden = true; say(""); fromUrl(); }
  });
}

wire();
renderBasket();
loadInfo().then((ok) => ok && fromUrl());
