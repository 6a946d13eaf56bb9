"""`rnn-ime serve`: the HTTP API and the web page that suggests as you type (FastAPI, uvicorn).

    POST /api/suggest   {text, k, user?}      → the k most likely next words
    POST /api/complete  {text, beam, length, user?} → multi-word continuations
    POST /api/pinyin    {letters, context, k, fuzzy, user?} → Chinese candidates for typed
                        pinyin; letters ending in a mark (nihao,) → also what to commit (你好，)
    POST /api/learn     {user, text, picks?, before?} → learn a commit (what it taught)
    POST /api/undo      {user}                → take back the last commit's learning
    POST /api/forget    {user, word}          → forget a word and what was learned from it
    GET  /api/user/{name}/stats               → what a profile holds
    GET  /api/pinyin/options                  → fuzzy rules, the server's default, marks
    GET  /api/health                          → model, vocabulary size, config (no paths), user
    GET  /openapi.json                        → the schema;  GET / → the page (static/)

`user` names a profile (user/directory.py: one SQLite file each, in --user-dir): its history is
mixed into the model's distributions and its words join the pinyin lexicon. The base scorer's
context cache is shared by every profile; the user's mixing is applied to the final
distribution (UserScorer.mix), so a profile costs no re-read of the context.

Inference runs in a worker thread (never on the event loop), one request at a time: one lock
guards the shared model, so concurrent requests are safe and do not oversubscribe the CPU. The
text of a request is read through a context cache (predict.ContextReader): typing one more
character costs segmenting the last clause and a step or two of the model, not a re-read.

Learning (/api/learn, /api/undo, /api/forget) also runs in a worker thread, under the profile's
own lock only (it never touches the base model); reading with a profile holds the model's lock,
then the profile's, so a profile is never read while it learns.

One process serves. uvicorn's --workers is not offered: each worker would load its own copy
of the model and keep its own cache (a keep-alive connection stays on one worker, so a typist's
context would mostly stay warm), which could pay on many cores; on 2 cores shared with the
clients there is little for a second process to run on.
"""

from __future__ import annotations

import gc
import math
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .beam import beam_search
from .context_cache import DEFAULT_ENTRIES
from .errors import ConfigError, RnnImeError
from .ime import (
    FULL_WIDTH,
    FUZZY_RULES,
    DecoderSettings,
    Lexicon,
    StepMemos,
    check_fuzzy,
    commit_of,
    decode,
    mark_after,
    open_lexicon,
    split_mark,
)
from .ime.lexicon import skipped_note
from .ime.punctuation import mark_class
from .limits import (
    MAX_LETTERS,
    SERVER_MAX_BEAM,
    SERVER_MAX_BODY_BYTES,
    SERVER_MAX_K,
    SERVER_MAX_LENGTH,
    SERVER_MAX_TEXT,
)
from .predict import ContextReader, Predictor, check_k, shown_probability, suggestions_of
from .user import Lesson, Profile, UserLimitError, UserStoreError, memo_key, scoring
from .user.directory import (
    NAME_PATTERN,
    ProfileBusyError,
    ProfileDirConfig,
    ProfileDirectory,
    ProfileLimitError,
    ProfileNameError,
)
from .user.model import UserModel

STATIC = Path(__file__).with_name("static")
PINYIN_MEMOS = 8  # compositions whose steps the server keeps (one per typist typing)
PINYIN_MEMO_PATHS = 128  # paths each (4 bytes a word: at most 16 MB with 31k words)
# The page loads nothing from elsewhere; say so to the browser too.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                "Cache-Control": "no-cache"}

T = TypeVar("T")


# ---------------------------------------------------------------- request and response bodies
def _whole_number(value: Any) -> Any:
    """JSON's 5 and 5.0 are the same integer; "5", true and 5.5 are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


USER_DESCRIPTION = ("a profile name (1–32 letters, digits, _ or -): score with that user's "
                    "history and words; absent: the plain model")


def _user_field(required: bool = False) -> Any:
    if required:
        return Field(pattern=NAME_PATTERN, strict=True, description="a profile name (1–32 "
                     "letters, digits, _ or -)")
    return Field(None, pattern=NAME_PATTERN, strict=True, description=USER_DESCRIPTION)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field("", max_length=SERVER_MAX_TEXT, strict=True,
                      description="the text typed so far; empty asks for a passage's first word")
    user: str | None = _user_field()


class SuggestRequest(_Request):
    k: WholeNumber = Field(5, ge=1, le=SERVER_MAX_K, strict=True,
                           description="how many next words")


class CompleteRequest(_Request):
    beam: WholeNumber = Field(4, ge=1, le=SERVER_MAX_BEAM, strict=True,
                              description="beam width, and the most continuations returned")
    length: WholeNumber = Field(4, ge=1, le=SERVER_MAX_LENGTH, strict=True,
                                description="words per continuation")


FuzzyRule = Literal[FUZZY_RULES]  # type: ignore[valid-type]  # z-zh, c-ch, … an-ang …


# letters and apostrophes with at least one letter (apostrophes alone decode nothing): a
# look-ahead, which needs pydantic's python-re engine (Rust's regex lacks it)
HAS_A_LETTER = "(?='*[A-Za-z])"


class PinyinRequest(BaseModel):
    # python-re: the pattern's look-ahead (at least one letter: apostrophes alone decode
    # nothing), which the default engine (Rust's regex) lacks
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    letters: str = Field(min_length=1, max_length=MAX_LETTERS + 1,
                         pattern=f"^{HAS_A_LETTER}[A-Za-z']{{1,{MAX_LETTERS}}}{mark_class()}?$",
                         strict=True,
                         description=f"typed pinyin: up to {MAX_LETTERS} letters a-z and "
                                     "apostrophes, at least one a letter, and optionally one "
                                     "mark at the end (, . ? ! ; : \\), which commits the "
                                     "first candidate (`commit`)")
    context: str = Field("", max_length=SERVER_MAX_TEXT, strict=True,
                         description="the text already committed before it")
    k: WholeNumber = Field(9, ge=1, le=SERVER_MAX_K, strict=True,
                           description="candidates of each kind")
    fuzzy: list[FuzzyRule] | None = Field(
        None, max_length=len(FUZZY_RULES),
        description="fuzzy pinyin rules to use (GET /api/pinyin/options lists them); "
                    "default: the server's (`rnn-ime serve --fuzzy`), [] for none")
    user: str | None = _user_field()


MAX_WORD_CHARS = 64  # a word to forget, a pick's text


class Pick(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    text: str = Field(min_length=1, max_length=MAX_WORD_CHARS, strict=True,
                             description="the candidate picked")
    letters: str = Field(min_length=1, max_length=MAX_LETTERS,
                         pattern=f"^{HAS_A_LETTER}[A-Za-z']+$", strict=True,
                         description="the letters it stood for (at least one a letter)")


class LearnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = _user_field(required=True)
    text: str = Field(min_length=1, max_length=SERVER_MAX_TEXT, strict=True,
                             description="the text committed")
    picks: list[Pick] | None = Field(
        None, max_length=MAX_LETTERS,
        description="the candidates picked for it in one composition, in order: several, one "
                    "a single character, make a new word")
    before: str = Field("", max_length=SERVER_MAX_TEXT, strict=True,
                               description="the text before it (its last word precedes the "
                                           "commit's first)")


class UserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = _user_field(required=True)


class ForgetRequest(UserRequest):
    word: str = Field(min_length=1, max_length=MAX_WORD_CHARS, strict=True,
                             description="the word to forget, with what was learned from it")


class PinyinCandidate(BaseModel):
    text: str
    words: list[str]
    letters: int = Field(description="characters of `letters` it consumes")
    log_prob: float
    score: float


class PinyinCommit(BaseModel):
    text: str = Field(description="what to insert: the first candidate and the full-width mark")
    letters: int = Field(description="characters of `letters` it stands for (all, the mark "
                                     "included)")


class PinyinResponse(BaseModel):
    model: str
    letters: str
    phrases: list[PinyinCandidate] = Field(description="for the whole input, best first")
    first_words: list[PinyinCandidate] = Field(description="what the input can start with")
    candidates: list[PinyinCandidate] = Field(
        description="the list to show, in order: the best phrases, then first words (k at most)")
    commit: PinyinCommit | None = Field(
        None, description="only when `letters` ends in a mark: what typing it commits")
    latency_ms: float


class PinyinOptions(BaseModel):
    fuzzy_rules: list[str] = Field(description="every fuzzy pinyin rule, for `fuzzy`")
    fuzzy_default: list[str] = Field(description="the rules used when a request has no `fuzzy`")
    punctuation: dict[str, str] = Field(description="a mark typed → its full-width form")


class Word(BaseModel):
    word: str
    probability: float = Field(description="6 significant digits")


class SuggestResponse(BaseModel):
    model: str
    suggestions: list[Word]
    latency_ms: float = Field(description="time the model took, without queueing or HTTP")


class Continuation(BaseModel):
    words: list[str]
    text: str
    probability: float = Field(description="of its words after the text, 6 significant digits")
    log_prob: float = Field(description="its natural log (the sum over its words), to 4 "
                                        "decimals: comparable when the probability is tiny")


class CompleteResponse(BaseModel):
    model: str
    continuations: list[Continuation]
    latency_ms: float


class UserInfo(BaseModel):
    enabled: bool = Field(description="requests may name a profile (`user`); off with --no-user")
    learn: bool = Field(description="/api/learn, /api/undo and /api/forget work; off with "
                                    "--no-learn")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: str
    vocab_size: int
    config: dict[str, Any]
    user: UserInfo


class MadeWord(BaseModel):
    word: str
    reading: str = Field(description="its pinyin, syllables apart: qi'chun")


class LessonResponse(BaseModel):
    user: str
    learned: bool = Field(description="false: nothing to learn (blank text)")
    words: list[str] = Field(description="the words counted, in order")
    made: list[MadeWord] = Field(description="new words, typable at once")


class UndoResponse(BaseModel):
    user: str
    undone: bool = Field(description="false: nothing to undo")
    words: list[str] = Field(description="the words no longer counted")
    made: list[MadeWord] = Field(description="the words no longer made")


class ForgetResponse(BaseModel):
    user: str
    word: str
    forgotten: bool = Field(description="whether the profile knew the word")


class StatsResponse(BaseModel):
    user: str
    exists: bool = Field(description="whether the profile has a file yet (learning makes it)")
    words: int
    made_words: int
    bigrams: int
    trigrams: int
    words_typed: int
    effective_words: float = Field(description="words typed, each weighed by its age")
    half_life: float
    model_steps: int = Field(description="steps the profile's copy of the model has taken on "
                             "its commits (0: none yet, or a model that does not adapt; with "
                             "--no-adapt, the newest adaptation saved in its file)")
    model_skipped: int = Field(0, description="commits the profile's copy of the model could "
                               "not train on since it was opened (a step that failed, or more "
                               "waiting than it keeps); they still count in the user's counts")
    max_words: int
    learn: bool


class FieldError(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str = Field(description="one line saying what is wrong")
    errors: list[FieldError] = []


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON"},
    415: {"model": ErrorResponse, "description": "The body was not sent as application/json"},
    422: {"model": ErrorResponse, "description": "A field is missing, of the wrong type or "
                                                 "out of range"},
}
PROFILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "To learn: learning or profiles off"},
    409: {"model": ErrorResponse, "description": "The profile's file is not a usable user file"},
    503: {"model": ErrorResponse, "description": "The profile's file is busy, or a new profile "
                                                 "while --max-profiles are all in use; try again"},
}
LEARN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROFILE_RESPONSES,
    413: {"model": ErrorResponse, "description": "The profile holds the most words it may"},
}


class LearningOffError(RnnImeError):
    """Learning asked of a server that does not learn (--no-learn) or keeps no profiles."""


# a user's error → its status (RnnImeError otherwise: 400)
ERROR_STATUS: dict[type[Exception], int] = {
    ProfileNameError: 422, LearningOffError: 403, ProfileLimitError: 503, UserLimitError: 413,
    UserStoreError: 409, ProfileBusyError: 503}


# ---------------------------------------------------------------- inference, one at a time
class Engine:
    """The predictor behind a lock; every call runs in a worker thread and is timed. Texts are
    read through a ContextReader, so a keystroke costs a step or two of the scorer, not a
    re-read of the whole text (`context_cache` bounds its cache; 0: none, every text read
    whole, the path before the cache).

    The worker thread stays even for a call of a fraction of a millisecond: running it on the
    event loop instead, when the lock is free, measured slower with 20 clients on 2 cores
    (bench/serve_load.py: ≈750 against ≈1,050 requests/s), since torch releases the GIL and the
    loop parses the next requests meanwhile.
    """

    def __init__(self, predictor: Predictor, context_cache: int = DEFAULT_ENTRIES,
                 lexicon: Lexicon | None = None, fuzzy: Iterable[str] = (),
                 profiles: ProfileDirectory | None = None) -> None:
        self.predictor = predictor
        self.reader = ContextReader(predictor, context_cache)
        self.lexicon = lexicon  # None: the model's (open_lexicon), without a user's word list
        self.fuzzy = check_fuzzy(fuzzy)  # a request's default
        self.profiles = profiles  # None: requests naming a user are answered as without
        self._lock = threading.Lock()
        # the steps of the compositions typed last (one per typist: user and context), so that a
        # keystroke's /api/pinyin steps only what its letter brought; used under the lock
        self._memos = StepMemos(PINYIN_MEMOS, limit=PINYIN_MEMO_PATHS)

    def _timed(self, work: Callable[[], T]) -> tuple[T, float]:
        with self._lock:
            start = time.perf_counter()
            result = work()
            return result, (time.perf_counter() - start) * 1000

    async def run(self, work: Callable[[], T]) -> tuple[T, float]:
        return await run_in_threadpool(self._timed, work)

    async def run_learning(self, work: Callable[[], T]) -> T:
        """Learning: a worker thread too, but not the model's lock (`work` takes the
        profile's)."""
        return await run_in_threadpool(work)

    def base_lexicon(self) -> Lexicon:
        return self.lexicon if self.lexicon is not None else open_lexicon(self.predictor.vocab)

    def _using(self, user: str | None) -> AbstractContextManager[Profile | None]:
        """The profile to read with (under its lock), or None: the plain model."""
        if user is None or self.profiles is None:
            return nullcontext(None)
        return self.profiles.using(user)

    def suggest(self, text: str, k: int, user: str | None = None) -> list[dict[str, Any]]:
        read = self.reader.read(text)
        with self._using(user) as profile:
            ranking = scoring(profile, self.predictor.scorer, self.base_lexicon(), read)
            return [s.as_dict() for s in suggestions_of(ranking.scorer, *ranking.start,
                                                        check_k(k))]

    def complete(self, text: str, beam: int, length: int, user: str | None = None
                 ) -> list[dict[str, Any]]:
        read = self.reader.read(text)
        out = []
        with self._using(user) as profile:
            ranking = scoring(profile, self.predictor.scorer, self.base_lexicon(), read)
            found = beam_search(ranking.scorer, read.ids, beam, length, start=ranking.start)
        for one in found:
            words = list(one.words)
            out.append({"words": words, "text": "".join(words),
                        "probability": shown_probability(math.exp(one.log_prob)),
                        "log_prob": round(one.log_prob, 4)})
        return out

    def pinyin(self, typed: str, context: str, k: int,
               fuzzy: Iterable[str] | None = None, user: str | None = None) -> dict[str, Any]:
        """The decoding of `typed` (its letters; a trailing mark adds `commit`)."""
        settings = DecoderSettings(k=k, fuzzy=self.fuzzy if fuzzy is None else frozenset(fuzzy))
        letters, _ = split_mark(typed)
        read = self.reader.read(context)
        with self._using(user) as profile:
            ranking = scoring(profile, self.predictor.scorer, self.base_lexicon(), read)
            memo = self._memos.for_key(memo_key(ranking, context, profile, user or ""))
            found = decode(ranking.scorer, letters, read.ids, settings, ranking.lexicon,
                           start=ranking.start, memo=memo, followed_by=mark_after(typed))
        answer = found.as_dict(limit=k)
        commit = commit_of(found, typed)
        if commit is not None:
            answer["commit"] = commit.as_dict()
        return answer

    # ------------------------------------------------------------ learning (no model lock)
    def _learning(self) -> ProfileDirectory:
        """The profiles, when this server learns."""
        if self.profiles is None:
            raise LearningOffError("profiles are off on this server (rnn-ime serve --no-user)")
        if not self.profiles.config.learn:
            raise LearningOffError("learning is off on this server")
        return self.profiles

    def learn(self, user: str, text: str, picks: list[tuple[str, str]] | None = None,
              before: str = "") -> dict[str, Any]:
        """Learn a commit into `user`'s profile (creating its file)."""
        known = self.base_lexicon()
        with self._learning().using(user, create=True) as profile:
            assert profile is not None
            return lesson_answer(user, profile.learn(text, picks, before, known=known))

    def undo(self, user: str) -> dict[str, Any]:
        with self._learning().using(user) as profile:
            lesson = profile.undo() if profile is not None else None
            return lesson_answer(user, lesson, done="undone")

    def forget(self, user: str, word: str) -> dict[str, Any]:
        with self._learning().using(user) as profile:
            known = profile.forget(word) if profile is not None else False
            return {"user": user, "word": word, "forgotten": known}

    def stats(self, user: str) -> dict[str, Any]:
        if self.profiles is None:
            raise LearningOffError("profiles are off on this server (rnn-ime serve --no-user)")
        config = self.profiles.config
        with self.profiles.using(user) as profile:
            found = profile.stats() if profile is not None else UserModel(None).stats()
        found.pop("file", None)  # never a local path
        return {"user": user, "exists": profile is not None, **found,
                "max_words": config.max_words, "learn": config.learn}


def lesson_answer(user: str, lesson: Lesson | None, done: str = "learned") -> dict[str, Any]:
    """A LessonResponse (`done`: "learned") or an UndoResponse ("undone")."""
    if lesson is None:
        return {"user": user, done: False, "words": [], "made": []}
    return {"user": user, done: True, "words": [w for w, _ in lesson.words],
            "made": [{"word": w, "reading": r} for w, r in lesson.made]}


# ---------------------------------------------------------------- errors: 4xx, one clear line
def _field_error(error: dict[str, Any]) -> FieldError:
    """One of pydantic's errors, without the offending input (never echoed back)."""
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    if where:
        return FieldError(field=where, message=error.get("msg", ""))
    if error.get("type") == "missing":
        return FieldError(field="body", message="missing; send a JSON object")
    return FieldError(field="body", message="must be a JSON object, like {\"text\": \"我今天\"}")


NOT_JSON = "the request body is not valid JSON"


def _not_json_media(request: Request) -> str | None:
    """The 415 line for a body sent as something other than JSON (curl -d sends a form): such a
    body is not read as JSON, so that a web page elsewhere cannot post to this API without the
    browser asking first (CORS)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    return (f"the request body must be sent as JSON (Content-Type: application/json); it came "
            f"as {media or 'no Content-Type'}")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return JSONResponse(ErrorResponse(error=NOT_JSON).model_dump(), status_code=400)
    whole_body = any(e.get("loc") == ("body",) and e.get("type") != "missing"
                     for e in exc.errors())
    if whole_body and (line := _not_json_media(request)) is not None:
        return JSONResponse(ErrorResponse(error=line).model_dump(), status_code=415)
    errors = [_field_error(e) for e in exc.errors()]
    line = "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"
    return JSONResponse(ErrorResponse(error=line, errors=errors).model_dump(), status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """404, 405, and FastAPI's 400 for a body it cannot even decode (bytes that are not UTF-8)."""
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400 and message.startswith("There was an error parsing the body"):
        message = NOT_JSON
    return JSONResponse(ErrorResponse(error=message).model_dump(), status_code=exc.status_code,
                        headers=exc.headers)


async def _user_error(_: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse(ErrorResponse(error=str(exc)).model_dump(), status_code=status)


# ---------------------------------------------------------------- the app
def _jsonable_config(predictor: Predictor) -> dict[str, Any]:
    model_config = getattr(getattr(predictor.scorer, "model", None), "config", None)
    return {"model": asdict(model_config)} if is_dataclass(model_config) else {}


PRIVATE_TRAIN_KEYS = ("data", "out", "extra")  # local paths and free-form notes


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """What /api/health shows of a model dir's config.json: the architecture, tokenizer and
    training settings, never a local path (the data manifest and the data/out dirs)."""
    out = {k: v for k, v in config.items() if k != "data_manifest"}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in PRIVATE_TRAIN_KEYS}
    return out


class LimitBodySize:
    """ASGI middleware: a body over `limit` bytes gets 413 (text is capped at 2,000 characters).

    A declared Content-Length is checked before anything is read; a body without one (sent
    chunked) is counted as its pieces arrive and refused as soon as the count passes the
    limit, so at most `limit` bytes and one piece are ever held. The pieces read are then
    handed on to the app unchanged.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        message = f"the request body is larger than {self.limit:,} bytes"
        response = JSONResponse(ErrorResponse(error=message).model_dump(), status_code=413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        read: list[Any] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client went away
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


def create_app(predictor: Predictor, config: dict[str, Any] | None = None,
               context_cache: int = DEFAULT_ENTRIES, lexicon: Lexicon | None = None,
               fuzzy: Iterable[str] = (), profiles: ProfileDirConfig | None = None,
               log_note: Callable[[str], None] = lambda _: None) -> FastAPI:
    """The ASGI app around one predictor; `config` is the model dir's config.json, shown by
    /api/health without its local paths (public_config); `context_cache`, `lexicon` (the
    pinyin lexicon, with a user's word lists) and `fuzzy` (the default rules): see Engine;
    `profiles`: where users' profiles live (None: no profiles, `user` is ignored)."""
    directory = ProfileDirectory(predictor.scorer, profiles, log_note) \
        if profiles is not None else None
    engine = Engine(predictor, context_cache, lexicon, fuzzy, directory)
    options = PinyinOptions(fuzzy_rules=list(FUZZY_RULES),
                            fuzzy_default=[r for r in FUZZY_RULES if r in engine.fuzzy],
                            punctuation=dict(FULL_WIDTH))
    health = HealthResponse(status="ok", model=predictor.model_name or "model",
                            vocab_size=len(predictor.vocab),
                            config=public_config(config) if config is not None
                            else _jsonable_config(predictor),
                            user=UserInfo(enabled=directory is not None,
                                          learn=directory is not None and directory.config.learn))
    # docs_url/redoc_url load their scripts from a CDN, which the page must never need.
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if directory is not None:  # the profiles' model adaptations trained and saved
            directory.close()

    app = FastAPI(title="rnn-ime", version="1", docs_url=None, redoc_url=None,
                  description="Next-word suggestions from a recurrent neural network.",
                  lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in (RnnImeError, *ERROR_STATUS):
        app.add_exception_handler(kind, _user_error)
    # a plain ASGI middleware: @app.middleware("http") costs a task and two streams a request
    app.add_middleware(LimitBodySize, limit=SERVER_MAX_BODY_BYTES)
    app.state.engine = engine

    # The answers are built as plain dicts and sent as they are (a Response skips FastAPI's
    # re-validation of the return value); response_model still documents them in the schema,
    # and tests/test_server.py checks that they match it.
    @app.post("/api/suggest", response_model=SuggestResponse, responses=PROFILE_RESPONSES)
    async def suggest(request: SuggestRequest) -> JSONResponse:
        """The k most likely next words after `text`, with their probabilities."""
        words, ms = await engine.run(
            lambda: engine.suggest(request.text, request.k, request.user))
        return JSONResponse({"model": health.model, "suggestions": words,
                             "latency_ms": round(ms, 3)})

    @app.post("/api/complete", response_model=CompleteResponse, responses=PROFILE_RESPONSES)
    async def complete(request: CompleteRequest) -> JSONResponse:
        """Up to `beam` continuations of `length` words, most probable first (beam search)."""
        found, ms = await engine.run(
            lambda: engine.complete(request.text, request.beam, request.length, request.user))
        return JSONResponse({"model": health.model, "continuations": found,
                             "latency_ms": round(ms, 3)})

    @app.post("/api/pinyin", response_model=PinyinResponse, responses=PROFILE_RESPONSES)
    async def pinyin(request: PinyinRequest) -> JSONResponse:
        """Chinese candidates for typed pinyin after `context`, ranked by the model."""
        found, ms = await engine.run(lambda: engine.pinyin(
            request.letters, request.context, request.k, request.fuzzy, request.user))
        return JSONResponse({"model": health.model, **found, "latency_ms": round(ms, 3)})

    @app.post("/api/learn", response_model=LessonResponse, responses=LEARN_RESPONSES)
    async def learn(request: LearnRequest) -> JSONResponse:
        """Learn a commit into the profile `user`: its words (after the last word of `before`)
        and new words (picks of one composition, or words no dictionary lists)."""
        picks = [(p.text, p.letters) for p in request.picks] if request.picks else None
        return JSONResponse(await engine.run_learning(
            lambda: engine.learn(request.user, request.text, picks, request.before)))

    @app.post("/api/undo", response_model=UndoResponse, responses=PROFILE_RESPONSES)
    async def undo(request: UserRequest) -> JSONResponse:
        """Take back the last commit's learning (Backspace right after a commit)."""
        return JSONResponse(await engine.run_learning(lambda: engine.undo(request.user)))

    @app.post("/api/forget", response_model=ForgetResponse, responses=PROFILE_RESPONSES)
    async def forget(request: ForgetRequest) -> JSONResponse:
        """Forget a word: its counts, its pairs with other words, the commits that taught it."""
        return JSONResponse(await engine.run_learning(
            lambda: engine.forget(request.user, request.word)))

    @app.get("/api/user/{name}/stats", response_model=StatsResponse,
             responses=PROFILE_RESPONSES)
    async def stats(name: Annotated[str, PathParam(pattern=NAME_PATTERN)]) -> JSONResponse:
        """What the profile holds: words, made words, pairs and triples, words typed."""
        return JSONResponse(await engine.run_learning(lambda: engine.stats(name)))

    @app.get("/api/pinyin/options", response_model=PinyinOptions)
    async def pinyin_options() -> PinyinOptions:
        """The fuzzy pinyin rules (and the server's default) and the marks a composition
        commits on, with their full-width forms: the page builds its settings from them."""
        return options

    @app.get("/api/health", response_model=HealthResponse)
    async def get_health() -> HealthResponse:
        """The model's name, vocabulary size and configuration."""
        return health

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# ---------------------------------------------------------------- running it
def check_profiles(config: ProfileDirConfig) -> ProfileDirConfig:
    """The profile options, checked before the model loads (a one-line ConfigError)."""
    if not 1 <= config.max_profiles <= 10_000:
        raise ConfigError("--max-profiles must be between 1 and 10,000")
    directory = Path(config.directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--user-dir {directory} is not a directory")
    return config


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or a one-line ConfigError."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
        # without it Nagle's algorithm adds ~40 ms to every keep-alive request.
        sock = socket.socket(family, kind, proto)
    except OSError as exc:  # socket.gaierror is an OSError too
        raise _listen_error(host, port, exc) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _listen_error(host, port, exc) from None
    return sock


def _listen_error(host: str, port: int, exc: OSError) -> ConfigError:
    reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or exc
    return ConfigError(f"cannot listen on {host}:{port} ({reason}); "
                       "choose another --host or --port")


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _say(message: str) -> None:
    print(message, flush=True)


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000,
          log: Callable[[str], None] = _say, mixture: bool = True,
          context_cache: int = DEFAULT_ENTRIES, fuzzy: Iterable[str] = (),
          word_lists: Iterable[str | Path] = (),
          log_note: Callable[[str], None] = _say,
          profiles: ProfileDirConfig | None = None) -> None:
    """Load the model, listen, and serve until Ctrl-C. `fuzzy`: the pinyin rules a request
    (and the page) starts with; `word_lists`: the user's, laid over the pinyin lexicon;
    `profiles`: where the users' profiles live (None: none, as --no-user)."""
    import uvicorn

    from .modeldir import load_config

    fuzzy = check_fuzzy(fuzzy)
    if profiles is not None:
        check_profiles(profiles)
    predictor = Predictor.from_dir(model_dir, mixture=mixture)
    # the pinyin lexicon now, not on the first request (its base is cached on disk)
    lexicon = open_lexicon(predictor.vocab, list(word_lists))
    lexicon.position  # noqa: B018 — what a profile looks words up in, also built now
    if note := skipped_note(lexicon):
        log_note(note)
    app = create_app(predictor, load_config(Path(model_dir)), context_cache, lexicon, fuzzy,
                     profiles, log_note)
    predictor.suggest("你好", 1)  # jieba builds its dictionary now, not on the first request
    # What is loaded now lives as long as the server: out of the collector's sight, or every
    # full collection walks it all (≈0.2 s with the lexicon, stalling every request in flight).
    gc.collect()
    gc.freeze()
    sock = listen(host, port)
    log(f"rnn-ime: serving {model_dir} ({predictor.scorer.name}) at {url_of(sock)} "
        "(Ctrl-C stops)")  # first: the port
    if profiles is not None:
        log(f"rnn-ime: profiles in {profiles.directory} (learning "
            f"{'on' if profiles.learn else 'off'}; at most {profiles.max_profiles} open)")
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        log("rnn-ime: note: the API has no authentication; anyone who can reach "
            f"{host} can use it")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
