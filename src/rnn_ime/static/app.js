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
      const data = await post("/api/suggest", withUser({ text, k: K }), inflight.signal);
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
    if (suggestion) commitWord(suggestion.word);
  }

  function commitWord(text) {
    // a suggestion or a continuation picked: a commit, learned as one
    const before = contextText();
    insert(text);
    learn(text, null, before);
  }

  function insert(text) {
    profile.undoable = null; // a new commit: Backspace now undoes only what it taught
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
      const data = await post("/api/complete",
        withUser({ text: contextText(), beam: 3, length: 4 }));
      continuations.replaceChildren(
        ...data.continuations.map((c) => chip(c.text, c.probability, "", () => commitWord(c.text))),
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
    composition: newComposition(), // what this composition committed so far (to learn)
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
    return withUser(body);
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

  // A composition ends when its letters are all committed (or dropped); then what it committed
  // is learned as one commit: its picks in order (several, one a single character, make a new
  // word) after the text before its first pick. `composition`: the one the text belongs to;
  // `ends`: this commit ends it.
  function newComposition() {
    return { picks: [], before: null, literal: "" };
  }

  function commitInOrder(textOf, composition = null, ends = false) {
    commits = commits
      .then(textOf)
      .then((text) => {
        if (text) {
          const before = contextText();
          insert(text); // refresh() shows the next words once nothing is composing
          if (composition && composition.before === null) composition.before = before;
        }
        if (composition && ends) learnComposition(composition);
        decodePinyin(); // what is composing now, after the new text
      })
      .catch(showError);
  }

  function learnComposition(composition) {
    const text = composition.picks.map((p) => p.text).join("") + composition.literal;
    learn(text, composition.picks, composition.before ?? contextText());
  }

  function endComposition() {
    // the letters left are dropped: what was picked before is still a commit
    const composition = pinyin.composition;
    pinyin.composition = newComposition();
    if (composition.picks.length) commitInOrder(() => "", composition, true);
  }

  function commitCandidate(index) {
    const candidate = pinyin.shown[index];
    if (!candidate || candidateBar.dataset.for !== pinyin.letters) return;
    const composition = pinyin.composition;
    composition.picks.push({ text: candidate.text,
                             letters: pinyin.letters.slice(0, candidate.letters) });
    pinyin.letters = pinyin.letters.slice(candidate.letters);
    if (!pinyin.letters) pinyin.composition = newComposition();
    commitPinyin(candidate.text, composition, !pinyin.letters);
  }

  function commitPinyin(text, composition, ends) {
    if (!pinyin.letters) pinyinBox.hidden = true;
    commitInOrder(() => text, composition, ends);
  }

  function commitWithMark(mark) {
    // the server decodes the letters and the mark together: `commit` is what to insert
    const letters = pinyin.letters;
    const composition = pinyin.composition;
    pinyin.letters = "";
    pinyin.composition = newComposition();
    decodePinyin(); // the composition empties now; the text follows
    commitInOrder(async () => {
      try {
        const data = await post("/api/pinyin", pinyinBody(letters + mark));
        const wide = pinyin.marks[mark];
        const text = data.commit.text;
        // the phrase is the last pick (the mark is not learned)
        composition.picks.push({ text: text.endsWith(wide) ? text.slice(0, -wide.length) : text,
                                 letters });
        return text;
      } catch (error) {
        showError(error);
        return letters + pinyin.marks[mark]; // nothing typed is lost
      }
    }, composition, true);
  }

  function setPinyinMode(on) {
    pinyin.on = on;
    pinyinButton.setAttribute("aria-pressed", String(on));
    if (!on && pinyin.letters) { pinyin.letters = ""; endComposition(); decodePinyin(); refresh(); }
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
    } else if (mark && /[0-9]$/.test(contextText()) && (key === "." || key === ",")) {
      handled = false; // after a digit, 3.14 and 1,000 stay as typed
    } else if (mark) {
      commitInOrder(() => pinyin.marks[key]); // Chinese mode: the full-width form
    } else if (!typing) {
      handled = false; // everything else types as usual
    } else if (key === "Backspace") {
      pinyin.letters = pinyin.letters.slice(0, -1);
      if (!pinyin.letters) endComposition();
      decodePinyin();
      if (!pinyin.letters) refresh();
    } else if (key === " ") {
      commitCandidate(0);
    } else if (/^[1-9]$/.test(key)) {
      commitCandidate(Number(key) - 1);
    } else if (key === "Enter") {
      const letters = pinyin.letters;
      const composition = pinyin.composition;
      composition.literal = letters;
      pinyin.letters = "";
      pinyin.composition = newComposition();
      commitPinyin(letters, composition, true);
    } else if (key === "Escape") {
      pinyin.letters = "";
      endComposition();
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

  // ------------------------------------------------------------ the profile: learning
  // Requests carry `user` (the name typed, remembered in localStorage) when the server keeps
  // profiles (GET /api/health's `user.enabled`). While 学习 is on (remembered too), every
  // commit is sent to /api/learn: a composition's picks, a suggestion or continuation picked.
  // Backspace right after a commit, before any other key, sends /api/undo (and deletes as
  // usual). Learning requests go out one after another, so an undo follows its commit.
  const USER_KEY = "rnn-ime.user";
  const LEARN_KEY = "rnn-ime.learn";
  const NAME = /^[A-Za-z0-9_-]{1,32}$/; // the API's pattern of a profile name
  const profile = {
    enabled: false, // the server keeps profiles
    learns: false, // …and learns (not --no-learn)
    undoable: null, // the profile the last commit taught, until the next key
    queue: Promise.resolve(),
  };
  const profileBox = document.getElementById("profile");
  const userField = document.getElementById("user");
  const learnSwitch = document.getElementById("learn");
  const learnState = document.getElementById("learn-state");

  function userName() {
    const name = userField.value.trim();
    return profile.enabled && NAME.test(name) ? name : null;
  }

  function withUser(body) {
    const user = userName();
    if (user) body.user = user;
    return body;
  }

  function sendInOrder(path, body) {
    profile.queue = profile.queue.then(() => post(path, body)).catch(showError);
  }

  function learn(text, picks, before) {
    const user = userName();
    if (!user || !profile.learns || !learnSwitch.checked || !text.trim()) return;
    const body = { user, text: text.slice(0, MAX_CHARS), before: before.slice(-MAX_CHARS) };
    if (picks && picks.length) body.picks = picks;
    sendInOrder("/api/learn", body);
    profile.undoable = user;
  }

  function showLearnState() {
    learnState.textContent = !profile.learns ? "服务器未开启" : learnSwitch.checked ? "开" : "关";
  }

  function stored(key) {
    try { return localStorage.getItem(key); } catch { return null; } // storage off
  }

  function store(key, value) {
    try { localStorage.setItem(key, value); } catch { /* storage off */ }
  }

  function setupProfile(info) {
    profile.enabled = Boolean(info && info.enabled);
    profile.learns = profile.enabled && Boolean(info.learn);
    profileBox.hidden = !profile.enabled;
    if (!profile.enabled) return;
    userField.value = stored(USER_KEY) ?? "default";
    learnSwitch.checked = stored(LEARN_KEY) !== "off";
    learnSwitch.disabled = !profile.learns;
    userField.setAttribute("aria-invalid", String(!NAME.test(userField.value.trim())));
    showLearnState();
    refresh(); // now with the profile
  }

  userField.addEventListener("input", () => {
    store(USER_KEY, userField.value.trim());
    userField.setAttribute("aria-invalid", String(!NAME.test(userField.value.trim())));
    profile.undoable = null;
    schedule();
    if (pinyin.letters) decodePinyin();
  });

  learnSwitch.addEventListener("change", () => {
    store(LEARN_KEY, learnSwitch.checked ? "on" : "off");
    showLearnState();
  });

  // capture: seen before the pinyin mode's keys (which stop the event)
  editor.addEventListener("keydown", (event) => {
    if (["Shift", "Control", "Alt", "Meta", "CapsLock"].includes(event.key)) return;
    const user = profile.undoable;
    profile.undoable = null; // any other key ends the chance
    const plain = !(event.ctrlKey || event.altKey || event.metaKey || event.isComposing);
    if (user && plain && event.key === "Backspace" && !pinyin.letters) {
      sendInOrder("/api/undo", { user });
    }
  }, true);
  editor.addEventListener("mousedown", () => { profile.undoable = null; });

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
      setupProfile(health.user);
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
