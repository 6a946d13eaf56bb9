// The page of `rnn-ime serve`: asks /api/suggest for the next words as you type.
// Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

(() => {
  const K = 5;
  const DEBOUNCE_MS = 150;
  const MAX_CHARS = 2000; // the API's limit on `text`

  const editor = document.getElementById("editor");
  const bar = document.getElementById("bar");
  const continuations = document.getElementById("continuations");
  const continueButton = document.getElementById("continue");
  const modelBadge = document.getElementById("model");
  const latencyBadge = document.getElementById("latency");
  const statusLine = document.getElementById("status");

  let composing = false; // a native IME is composing: wait for it
  let timer = 0;
  let sequence = 0; // only the newest request's answer is shown
  let inflight = null;
  let shown = [];

  // ------------------------------------------------------------ the API
  async function post(path, body, signal) {
    const started = performance.now();
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
    data.roundTripMs = performance.now() - started;
    return data;
  }

  function contextText() {
    // the text before the caret, at most MAX_CHARS UTF-16 units (so at most as many characters)
    return editor.value.slice(0, editor.selectionStart).slice(-MAX_CHARS);
  }

  function showLatency(data) {
    latencyBadge.textContent =
      `模型 ${data.latency_ms.toFixed(1)} ms · 往返 ${Math.round(data.roundTripMs)} ms`;
  }

  function showError(error) {
    statusLine.textContent = error ? `出错了：${error.message}` : "";
  }

  // ------------------------------------------------------------ suggestions
  async function refresh() {
    clearTimeout(timer);
    if (composing) return;
    const mine = ++sequence;
    if (inflight) inflight.abort();
    inflight = new AbortController();
    const text = contextText();
    try {
      const data = await post("/api/suggest", { text, k: K }, inflight.signal);
      if (mine !== sequence || composing) return;
      render(data.suggestions, text);
      showLatency(data);
      showError(null);
    } catch (error) {
      if (error.name !== "AbortError" && mine === sequence) showError(error);
    }
  }

  function schedule(delay = DEBOUNCE_MS) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  function chip(label, probability, key, onChoose) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chip";
    if (key) button.append(span("key", key));
    button.append(span("word", label), span("prob", percent(probability)));
    const meter = span("meter", "");
    meter.style.width = `${Math.min(100, probability * 100)}%`;
    button.append(meter);
    button.addEventListener("mousedown", (event) => event.preventDefault()); // keep the caret
    button.addEventListener("click", onChoose);
    return button;
  }

  function span(className, text) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function percent(p) {
    if (p >= 0.1) return `${Math.round(p * 100)}%`;
    return p >= 0.001 ? `${(p * 100).toFixed(1)}%` : "<0.1%";
  }

  function render(suggestions, text) {
    shown = suggestions;
    bar.dataset.for = text; // which text these suggestions follow
    bar.classList.remove("stale");
    bar.replaceChildren(
      ...suggestions.map((s, i) => chip(s.word, s.probability, String(i + 1), () => choose(i))),
    );
    bar.hidden = suggestions.length === 0;
  }

  function hideBar() {
    bar.hidden = true;
  }

  function choose(index) {
    const suggestion = shown[index];
    if (suggestion) insert(suggestion.word);
  }

  function insert(text) {
    editor.focus();
    // execCommand keeps the browser's undo history; setRangeText is the fallback
    if (!document.execCommand("insertText", false, text)) {
      editor.setRangeText(text, editor.selectionStart, editor.selectionEnd, "end");
    }
    continuations.hidden = true;
    refresh();
  }

  // ------------------------------------------------------------ continuations (beam search)
  async function complete() {
    continueButton.disabled = true;
    try {
      const data = await post("/api/complete", { text: contextText(), beam: 3, length: 4 });
      continuations.replaceChildren(
        ...data.continuations.map((c) => chip(c.text, c.probability, "", () => insert(c.text))),
      );
      continuations.hidden = data.continuations.length === 0;
      showLatency(data);
      showError(null);
    } catch (error) {
      showError(error);
    } finally {
      continueButton.disabled = false;
    }
  }

  // ------------------------------------------------------------ events
  editor.addEventListener("compositionstart", () => {
    composing = true;
    clearTimeout(timer);
    if (inflight) inflight.abort();
    hideBar(); // the number keys now belong to the IME's candidate list
  });

  editor.addEventListener("compositionend", () => {
    composing = false;
    refresh(); // the IME committed a word
  });

  editor.addEventListener("input", (event) => {
    if (composing || event.isComposing) return;
    continuations.hidden = true;
    bar.classList.add("stale"); // until the new answer: number keys type digits
    schedule();
  });

  editor.addEventListener("keydown", (event) => {
    if (composing || event.isComposing || event.keyCode === 229) return;
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    if (event.key === "Escape") {
      if (!bar.hidden || !continuations.hidden) event.preventDefault();
      hideBar();
      continuations.hidden = true;
      return;
    }
    const fresh = !bar.hidden && !bar.classList.contains("stale");
    if (fresh && /^[1-5]$/.test(event.key) && shown[Number(event.key) - 1]) {
      event.preventDefault();
      choose(Number(event.key) - 1);
    }
  });

  // the caret moved: the context changed
  editor.addEventListener("click", () => schedule());
  editor.addEventListener("keyup", (event) => {
    if (/^(Arrow|Home|End|Page)/.test(event.key)) schedule();
  });

  continueButton.addEventListener("mousedown", (event) => event.preventDefault()); // keep focus
  continueButton.addEventListener("click", complete);

  async function loadHealth() {
    try {
      const response = await fetch("/api/health");
      const health = await response.json();
      modelBadge.textContent = `模型 ${health.model} · 词表 ${health.vocab_size.toLocaleString()}`;
      const model = health.config.model || {};
      if (model.cell) modelBadge.title = `${model.cell} · ${model.layers} 层 · ${model.hidden} 维`;
    } catch (error) {
      showError(error);
    }
  }

  loadHealth();
  refresh(); // the first word of a passage
})();
