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
    if (composing || pinyin.letters) return;
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

  // ------------------------------------------------------------ pinyin mode
  // Letters typed in the editor gather in a composition (shown as typed); /api/pinyin ranks
  // Chinese candidates for it given the text before the caret, in the one order the server
  // gives (`candidates`). Space commits the first, 1–9 that one (the letters it stands for
  // leave the composition; the rest are decoded again), a mark (, . ? …) the first with the
  // mark in full width (the server's commit), Backspace edits, Enter commits the letters as
  // typed, Esc drops them. With nothing composing, a mark types its full-width form. The
  // marks, their full-width forms and the fuzzy rules come from /api/pinyin/options.
  const MAX_LETTERS = 64; // the API's limit on `letters` (a mark may follow)
  const PINYIN_K = 9;
  const FUZZY_KEY = "rnn-ime.fuzzy"; // localStorage: the fuzzy rules chosen
  const pinyin = {
    on: false, letters: "", shown: [], sequence: 0,
    marks: {}, // typed mark → full-width form, from the server
    fuzzy: null, // the rules chosen; null until the options arrive (the server's default)
  };
  const pinyinBox = document.getElementById("pinyin");
  const compositionLine = document.getElementById("composition");
  const candidateBar = document.getElementById("candidates");
  const pinyinButton = document.getElementById("pinyin-mode");
  const fuzzyBox = document.getElementById("fuzzy");
  const marksHint = document.getElementById("marks");

  function pinyinBody(letters) {
    const body = { letters, context: contextText(), k: PINYIN_K };
    if (pinyin.fuzzy) body.fuzzy = pinyin.fuzzy;
    return body;
  }

  async function decodePinyin() {
    const mine = ++pinyin.sequence;
    const letters = pinyin.letters;
    compositionLine.textContent = letters;
    pinyinBox.hidden = letters === "";
    if (!letters) { candidateBar.replaceChildren(); pinyin.shown = []; return; }
    hideBar();
    try {
      const data = await post("/api/pinyin", pinyinBody(letters));
      if (mine !== pinyin.sequence) return;
      pinyin.shown = data.candidates;
      candidateBar.dataset.for = letters;
      candidateBar.replaceChildren(...pinyin.shown.map((c, i) =>
        chip(c.text, 0, String(i + 1), () => commitCandidate(i))));
      candidateBar.querySelectorAll(".prob, .meter").forEach((e) => e.remove());
      showLatency(data);
      showError(null);
    } catch (error) {
      if (mine === pinyin.sequence) showError(error);
    }
  }

  // Text committed in pinyin mode goes in in the order it was typed: a commit that waits for
  // the server (a mark typed in a composition) holds back the ones typed after it.
  let commits = Promise.resolve();

  function commitInOrder(textOf) {
    commits = commits
      .then(textOf)
      .then((text) => {
        if (text) insert(text); // refresh() shows the next words once nothing is composing
        decodePinyin(); // what is composing now, after the new text
      })
      .catch(showError);
  }

  function commitCandidate(index) {
    const candidate = pinyin.shown[index];
    if (!candidate || candidateBar.dataset.for !== pinyin.letters) return;
    pinyin.letters = pinyin.letters.slice(candidate.letters);
    commitPinyin(candidate.text);
  }

  function commitPinyin(text) {
    if (!pinyin.letters) pinyinBox.hidden = true;
    commitInOrder(() => text);
  }

  function commitWithMark(mark) {
    // the server decodes the letters and the mark together: `commit` is what to insert
    const letters = pinyin.letters;
    pinyin.letters = "";
    decodePinyin(); // the composition empties now; the text follows
    commitInOrder(async () => {
      try {
        const data = await post("/api/pinyin", pinyinBody(letters + mark));
        return data.commit.text;
      } catch (error) {
        showError(error);
        return letters + pinyin.marks[mark]; // nothing typed is lost
      }
    });
  }

  function setPinyinMode(on) {
    pinyin.on = on;
    pinyinButton.setAttribute("aria-pressed", String(on));
    if (!on && pinyin.letters) { pinyin.letters = ""; decodePinyin(); refresh(); }
    editor.focus();
  }

  // ------------------------------------------------------------ pinyin settings
  function storedFuzzy(known) {
    try {
      const stored = JSON.parse(localStorage.getItem(FUZZY_KEY));
      return Array.isArray(stored) ? stored.filter((rule) => known.includes(rule)) : null;
    } catch {
      return null; // storage off, or not JSON: the server's default
    }
  }

  function setFuzzy(rules) {
    pinyin.fuzzy = rules;
    try { localStorage.setItem(FUZZY_KEY, JSON.stringify(rules)); } catch { /* storage off */ }
    if (pinyin.letters) decodePinyin();
  }

  function buildSettings(options) {
    pinyin.marks = options.punctuation;
    pinyin.fuzzy = storedFuzzy(options.fuzzy_rules) ?? options.fuzzy_default;
    const boxes = options.fuzzy_rules.map((rule) => {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = rule;
      box.checked = pinyin.fuzzy.includes(rule);
      box.addEventListener("change", () =>
        setFuzzy(boxes.filter((b) => b.checked).map((b) => b.value)));
      return box;
    });
    fuzzyBox.append(...boxes.map((box) => {
      const label = document.createElement("label");
      label.append(box, box.value);
      return label;
    }));
    const marks = Object.entries(pinyin.marks);
    marksHint.replaceChildren("组字时输入 ", ...marks.flatMap(([typed]) => {
      const key = document.createElement("kbd");
      key.textContent = typed;
      return [key, " "];
    }), `上屏首选并加中文标点（${marks.map(([, wide]) => wide).join("")}）；不在组字时直接输入中文标点`);
  }

  async function loadOptions() {
    try {
      const response = await fetch("/api/pinyin/options");
      buildSettings(await response.json());
    } catch (error) {
      showError(error);
    }
  }

  pinyinButton.addEventListener("mousedown", (event) => event.preventDefault()); // keep focus
  pinyinButton.addEventListener("click", () => setPinyinMode(!pinyin.on));

  editor.addEventListener("keydown", (event) => {
    if (!pinyin.on || composing || event.isComposing || event.keyCode === 229) return;
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    const key = event.key;
    const typing = pinyin.letters !== "";
    const mark = Object.hasOwn(pinyin.marks, key);
    let handled = true;
    if (/^[a-zA-Z]$/.test(key) || (key === "'" && typing)) {
      if (pinyin.letters.length < MAX_LETTERS) pinyin.letters += key.toLowerCase();
      decodePinyin();
    } else if (mark && typing) {
      commitWithMark(key);
    } else if (mark) {
      commitInOrder(() => pinyin.marks[key]); // Chinese mode: the full-width form
    } else if (!typing) {
      handled = false; // everything else types as usual
    } else if (key === "Backspace") {
      pinyin.letters = pinyin.letters.slice(0, -1);
      decodePinyin();
      if (!pinyin.letters) refresh();
    } else if (key === " ") {
      commitCandidate(0);
    } else if (/^[1-9]$/.test(key)) {
      commitCandidate(Number(key) - 1);
    } else if (key === "Enter") {
      const letters = pinyin.letters;
      pinyin.letters = "";
      commitPinyin(letters);
    } else if (key === "Escape") {
      pinyin.letters = "";
      decodePinyin();
      refresh();
    } else {
      handled = false;
    }
    if (handled) {
      event.preventDefault();
      event.stopImmediatePropagation(); // the next-word bar's keys wait
    }
  });

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
  loadOptions();
  refresh(); // the first word of a passage
})();
