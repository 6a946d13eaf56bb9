"""The web page in a real browser: Debian's Chromium, driven by Playwright, against a real server.

Skips (with the reason) when the `playwright` package or /usr/bin/chromium is missing; Playwright's
own browser downloads are never used.
"""

import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)  # the server exited


@contextmanager
def serving(model: Path, *options: str) -> Iterator[str]:
    """`rnn-ime serve` on a free loopback port; its URL comes from the line that names it."""
    proc = subprocess.Popen([sys.executable, "-m", "rnn_ime", "serve", "--model", str(model),
                             "--host", "127.0.0.1", "--port", "0", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen, match = [], None
    try:
        while match is None:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not match:
            pytest.fail("rnn-ime serve did not start:\n" + "".join(seen))
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("profiles")  # never the user's own ~/.local/share


@pytest.fixture(scope="module")
def server_url(small_model, user_dir):
    with serving(small_model, "--user-dir", str(user_dir)) as url:
        yield url


def open_page(browser, url: str):
    """A desktop-sized page of the server at `url`, with the tests' timeout."""
    page = browser.new_page(viewport={"width": 900, "height": 620})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return page


def test_type_chinese_pick_a_suggestion_with_a_number_key(browser, server_url, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, server_url)
    bar, editor = page.locator("#bar"), page.locator("#editor")
    expect(page.locator("#model")).to_contain_text("small")
    expect(bar.locator(".chip")).to_have_count(5)  # a passage's first words

    editor.click()
    editor.press_sequentially("我今天")
    expect(bar).to_have_attribute("data-for", "我今天")
    expect(page.locator("#latency")).to_contain_text("ms")
    first = bar.locator(".chip .word").first.inner_text()
    page.keyboard.press("1")
    expect(editor).to_have_value("我今天" + first)
    expect(bar).to_have_attribute("data-for", "我今天" + first)

    page.keyboard.press("Escape")
    expect(bar).to_be_hidden()

    # a native IME composing: the bar waits, and comes back when the word is committed
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "qu", "selectionStart": 2, "selectionEnd": 2})
    page.wait_for_timeout(300)  # longer than the debounce: nothing may be asked meanwhile
    expect(bar).to_be_hidden()
    cdp.send("Input.insertText", {"text": "去"})
    expect(editor).to_have_value("我今天" + first + "去")
    expect(bar).to_have_attribute("data-for", "我今天" + first + "去")
    expect(bar).to_be_visible()

    page.get_by_role("button", name="续写").click()  # continuations from /api/complete
    continuation = page.locator("#continuations .chip .word").first
    expect(continuation).to_be_visible()
    page.screenshot(path=tmp_path / "serve-page.png")
    text = editor.input_value() + continuation.inner_text()
    continuation.click()
    expect(editor).to_have_value(text)

    page.set_viewport_size({"width": 390, "height": 700})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=tmp_path / "serve-page-phone.png")
    print(f"screenshots: {tmp_path}")


def test_pinyin_mode_types_and_commits_chinese(browser, server_url, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, server_url)
    editor, composition = page.locator("#editor"), page.locator("#composition")
    candidates, bar = page.locator("#candidates"), page.locator("#bar")
    expect(bar.locator(".chip")).to_have_count(5)
    page.get_by_role("button", name="拼音").click()
    expect(page.locator("#pinyin-mode")).to_have_attribute("aria-pressed", "true")

    editor.click()
    editor.press_sequentially("wojintian")
    expect(composition).to_have_text("wojintian")
    expect(candidates).to_have_attribute("data-for", "wojintian")
    expect(candidates.locator(".chip .word").first).to_have_text("我今天")
    expect(bar).to_be_hidden()  # number keys belong to the candidates
    page.screenshot(path=tmp_path / "pinyin-page.png")
    page.keyboard.press(" ")  # the first candidate
    expect(editor).to_have_value("我今天")
    expect(page.locator("#pinyin")).to_be_hidden()
    expect(bar).to_have_attribute("data-for", "我今天")  # next words, as before

    editor.press_sequentially("quxuexiaoo")
    page.keyboard.press("Backspace")  # edits the composition, not the text
    expect(composition).to_have_text("quxuexiao")
    expect(candidates).to_have_attribute("data-for", "quxuexiao")
    words = candidates.locator(".chip .word")
    texts = words.all_inner_texts()
    assert "去学校" in texts, texts
    page.keyboard.press(str(texts.index("去学校") + 1))
    expect(editor).to_have_value("我今天去学校")

    editor.press_sequentially("qu")  # a first word only: the rest of the letters stay
    expect(candidates).to_have_attribute("data-for", "qu")
    editor.press_sequentially("kan")
    expect(candidates).to_have_attribute("data-for", "qukan")
    texts = words.all_inner_texts()
    assert "去" in texts, texts
    page.keyboard.press(str(texts.index("去") + 1))
    expect(editor).to_have_value("我今天去学校去")
    expect(composition).to_have_text("kan")
    page.keyboard.press("Enter")  # the letters as typed
    expect(editor).to_have_value("我今天去学校去kan")
    page.screenshot(path=tmp_path / "pinyin-page-committed.png")

    # a mark in a composition commits the first candidate and the full-width mark (the
    # server's commit); one typed with nothing composing types its full-width form, in order
    # even while the commit before it is still on its way
    editor.press_sequentially("nihao,.")
    expect(editor).to_have_value("我今天去学校去kan你好，。")
    expect(page.locator("#pinyin")).to_be_hidden()
    # after a digit, a point or a comma stays as typed (3.14, 1,000); digits themselves pick
    # next words here, so the number is put in directly
    editor.fill("价格是3")
    editor.press("End")
    editor.press_sequentially(".")
    expect(editor).to_have_value("价格是3.")
    print(f"screenshots: {tmp_path}")


def test_fuzzy_pinyin_checkboxes_come_from_the_server_and_are_remembered(browser, server_url):
    from playwright.sync_api import expect

    from rnn_ime.ime import FUZZY_RULES

    page = open_page(browser, server_url)
    boxes = page.locator("#fuzzy input[type=checkbox]")
    expect(boxes).to_have_count(len(FUZZY_RULES))
    assert [boxes.nth(i).get_attribute("value") for i in range(len(FUZZY_RULES))] == \
        list(FUZZY_RULES)
    expect(page.locator("#marks")).to_contain_text("，。？！；：、")
    page.get_by_role("button", name="拼音").click()
    editor, candidates = page.locator("#editor"), page.locator("#candidates")
    editor.click()
    editor.press_sequentially("zongguo")
    expect(candidates).to_have_attribute("data-for", "zongguo")
    assert "中国" not in candidates.locator(".chip .word").all_inner_texts()

    page.locator("#settings summary").click()
    z_zh = page.locator('#fuzzy input[value="z-zh"]')
    z_zh.check()  # the composition is decoded again with the rule
    expect(candidates.locator(".chip .word").first).to_have_text("中国")

    page.reload()
    expect(page.locator('#fuzzy input[value="z-zh"]')).to_be_checked()
    expect(page.locator('#fuzzy input[value="n-l"]')).not_to_be_checked()
    page.evaluate("localStorage.clear()")


def _wait_for(check, what: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_page_learns_from_commits_and_the_switch_pauses_it(browser, server_url, user_dir):
    from playwright.sync_api import expect

    page = open_page(browser, server_url)
    editor, candidates = page.locator("#editor"), page.locator("#candidates")
    words, bar = candidates.locator(".chip .word"), page.locator("#bar")
    user, switch = page.locator("#user"), page.get_by_role("switch", name="学习")
    expect(page.locator("#profile")).to_be_visible()
    expect(user).to_have_value("default")
    expect(switch).to_be_checked()
    user.fill("page")  # a profile of its own: the other tests learn into "default"
    page.get_by_role("button", name="拼音").click()

    def stats() -> dict:
        return json.loads(page.request.get(f"{server_url}api/user/page/stats").text())

    def pick(text: str) -> None:
        texts = words.all_inner_texts()
        assert text in texts, texts
        page.keyboard.press(str(texts.index(text) + 1))

    def type_kemi() -> None:  # 克 for "ke", then 密 for "mi": a word no dictionary lists
        editor.press_sequentially("kemi")
        expect(candidates).to_have_attribute("data-for", "kemi")
        pick("克")
        expect(candidates).to_have_attribute("data-for", "mi")
        pick("密")

    editor.click()
    type_kemi()
    expect(editor).to_have_value("克密")
    _wait_for(lambda: stats()["made_words"] == 1, "the composition to be learned")
    page.keyboard.press("Backspace")  # right after the commit: its learning is undone
    expect(editor).to_have_value("克")
    _wait_for(lambda: stats()["made_words"] == 0, "the undo")

    editor.fill("")
    type_kemi()
    _wait_for(lambda: stats()["made_words"] == 1, "the composition to be learned")
    editor.fill("")  # the same context again: the word made comes first
    editor.press_sequentially("kemi")
    expect(candidates).to_have_attribute("data-for", "kemi")
    expect(words.first).to_have_text("克密")
    page.keyboard.press("Escape")
    assert (user_dir / "profiles" / "page.db").is_file()

    switch.click()  # paused: nothing committed now is learned
    expect(switch).not_to_be_checked()
    expect(page.locator("#learn-state")).to_have_text("关")
    typed = stats()["words_typed"]
    editor.press_sequentially("woj")
    expect(candidates).to_have_attribute("data-for", "woj")
    page.keyboard.press(" ")
    expect(bar).to_be_visible()
    page.keyboard.press("1")  # a next word picked
    page.reload()  # the switch is remembered, and so is the name
    expect(switch).not_to_be_checked()
    expect(user).to_have_value("page")
    switch.click()  # on again: the next commit is learned, and only it (they go in order)
    page.get_by_role("button", name="拼音").click()
    editor.click()
    editor.press_sequentially("wo")
    expect(candidates).to_have_attribute("data-for", "wo")
    page.keyboard.press(" ")
    _wait_for(lambda: stats()["words_typed"] > typed, "the commit after the pause")
    assert stats()["words_typed"] == typed + 1
    page.evaluate("localStorage.clear()")


def test_the_page_without_profiles_hides_their_controls(browser, small_model):
    from playwright.sync_api import expect

    with serving(small_model, "--no-user") as url:
        page = open_page(browser, url)
        expect(page.locator("#bar .chip")).to_have_count(5)
        expect(page.locator("#profile")).to_be_hidden()
        page.locator("#editor").click()
        page.locator("#editor").press_sequentially("我今天")
        expect(page.locator("#bar")).to_have_attribute("data-for", "我今天")
