"""The command line as a user meets it: outputs, JSON, and one-line errors with exit code 2."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import hanzi_number, sigint_as_in_a_terminal
from rnn_ime.cli import main


def run(capsys, *argv):
    main([str(a) for a in argv])
    return capsys.readouterr()


def fails(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rnn-ime: error: ") and "Traceback" not in err
    return err


def test_end_to_end_prepare_train_evaluate_predict(tmp_path, capsys, small_corpus):
    data, model = tmp_path / "data", tmp_path / "model"
    out = run(capsys, "prepare", "--corpus", small_corpus, "--out", data, "--min-count", "1")
    assert "vocabulary" in out.out
    out = run(capsys, "train", "--data", data, "--out", model, "--hidden", "32", "--embed", "32",
              "--batch-size", "16", "--bptt", "16", "--lr", "0.01", "--max-steps", "200",
              "--eval-every", "50", "--dropout", "0")
    assert "target words/s" in out.out
    history = json.loads((model / "metrics.json").read_text())["training"]["validation"]
    assert history[-1]["loss"] < history[0]["loss"]
    out = run(capsys, "evaluate", "--model", model, "--json")
    result = json.loads(out.out)
    assert result["words"] > 0 and 0 <= result["top1"] <= result["top3"] <= result["top5"] <= 1
    assert result["perplexity"] < 30  # the template corpus is very predictable
    assert "test" in json.loads((model / "metrics.json").read_text())
    table = run(capsys, "evaluate", "--model", model).out
    assert "top-1" in table and "by words of context" in table
    out = run(capsys, "predict", "--model", model, "--json", "我今天")
    answer = json.loads(out.out)
    assert answer["text"] == "我今天" and len(answer["suggestions"]) == 5
    out = run(capsys, "predict", "--model", model, "-k", "3", "我们明天")
    assert out.out.startswith("1.") and "3." in out.out


def test_evaluate_on_any_corpus_with_the_models_vocabulary(tmp_path, capsys, small_model):
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "我今天去北京玩。"}\n{"text": "没见过的句子也可以评估"}\n',
                     encoding="utf-8")
    result = json.loads(run(capsys, "evaluate", "--model", small_model, "--corpus", other,
                            "--json").out)
    assert result["words"] > 5 and result["evaluated_on"] == str(other)


def test_predict_reads_lines_from_a_pipe(small_model):
    process = subprocess.run(
        [sys.executable, "-m", "rnn_ime", "predict", "--model", str(small_model), "--json"],
        input="我今天\n\n他明天去\n", capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    answers = [json.loads(line) for line in process.stdout.splitlines()]
    assert [a["text"] for a in answers] == ["我今天", "", "他明天去"]


def test_explain_prints_shapes_parameters_and_steps(capsys):
    out = run(capsys, "explain", "--input-size", "3", "--hidden-size", "2", "--layers", "2",
              "--batch-first", "我今天很好").out
    assert "input   (1, 4, 3)" in out and "h_n     (2, 1, 2)" in out
    assert "weight_hh_l1" in out and "total" in out and "t=2 很" in out
    assert "max |reference − torch.nn.RNN|" in out


def test_explain_a_trained_model(capsys, small_model):
    out = run(capsys, "explain", "--model", small_model, "我今天").out
    assert "今天" in out and "‖h‖" in out and "next:" in out


def test_bad_inputs_give_one_line_errors(tmp_path, capsys, small_data, small_model):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert "distinct" in fails(capsys, "prepare", "--corpus", empty, "--out", tmp_path / "d")
    assert "no such corpus file" in fails(capsys, "prepare", "--corpus", tmp_path / "none.txt",
                                          "--out", tmp_path / "d")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    assert "not UTF-8" in fails(capsys, "prepare", "--corpus", bad, "--out", tmp_path / "d")
    assert "unknown cell" in fails(capsys, "train", "--data", small_data, "--out",
                                   tmp_path / "m", "--cell", "transformer")
    assert "--bidirectional needs" in fails(capsys, "train", "--data", small_data, "--out",
                                            tmp_path / "m", "--bidirectional")
    assert "not a prepared data dir" in fails(capsys, "train", "--data", tmp_path, "--out",
                                              tmp_path / "m")
    assert "not a model dir" in fails(capsys, "predict", "--model", tmp_path, "你好")
    assert "-k must be" in fails(capsys, "predict", "--model", small_model, "-k", "0", "你好")

    no_weights = tmp_path / "no_weights"
    shutil.copytree(small_model, no_weights)
    for weights in no_weights.glob("*.safetensors"):
        weights.unlink()
    assert "no weights" in fails(capsys, "predict", "--model", no_weights, "你好")

    other_vocab = tmp_path / "other_vocab"
    shutil.copytree(small_model, other_vocab)
    with open(other_vocab / "vocab.txt", "a", encoding="utf-8") as handle:
        handle.write("多余\t1\n")
    assert "does not match" in fails(capsys, "predict", "--model", other_vocab, "你好")

    corrupt = tmp_path / "corrupt"
    shutil.copytree(small_model, corrupt)
    (corrupt / "best.safetensors").write_bytes(b"not a safetensors file")
    assert "cannot load weights" in fails(capsys, "predict", "--model", corrupt, "你好")


def test_evaluate_refuses_a_data_dir_with_another_vocabulary(tmp_path, capsys, small_model):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"另一个语料第{hanzi_number(i)}句" for i in range(30)),
                      encoding="utf-8")
    run(capsys, "prepare", "--corpus", corpus, "--out", tmp_path / "d", "--min-count", "1")
    assert "vocabulary differs" in fails(capsys, "evaluate", "--model", small_model, "--data",
                                         tmp_path / "d")


def test_list_corpora(capsys):
    out = run(capsys, "prepare", "--list-corpora").out
    assert "embedded:reviews" in out and "embedded:news" in out


def _edit_json(path, change) -> None:
    obj = json.loads(path.read_text(encoding="utf-8"))
    change(obj)
    path.write_text(json.dumps(obj), encoding="utf-8")


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("config.json", lambda p: p.write_text("{not json", encoding="utf-8"), "not valid JSON"),
    ("config.json", lambda p: p.write_text("[1, 2]", encoding="utf-8"), "expected a JSON object"),
    ("config.json", lambda p: _edit_json(p, lambda c: c["model"].update(hidden="big")),
     "'hidden' should be int"),
    ("config.json", lambda p: _edit_json(p, lambda c: c.update(model=None)), 'no "model"'),
    ("config.json", lambda p: _edit_json(p, lambda c: c.update(tokenizer="jieba")),
     '"tokenizer" should be a JSON dict'),
    ("vocab.txt", lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "not UTF-8"),
    ("vocab.txt", lambda p: p.write_text("<pad>\t0\n<unk>\t0\n<s>\t0\nword\n", encoding="utf-8"),
     "vocab.txt:4: expected 'word<TAB>count'"),
    ("vocab.txt", lambda p: p.write_text("<pad>\t0\n<unk>\t0\n<s>\t0\n<s>\t1\n",
                                         encoding="utf-8"), "listed twice"),
])
def test_a_damaged_model_dir_gives_a_one_line_error(tmp_path, capsys, small_model, name,
                                                    damage, message):
    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    damage(model / name)
    assert message in fails(capsys, "predict", "--model", model, "你好")


def test_evaluate_without_the_training_data_dir_in_config_json(tmp_path, capsys, small_model):
    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    _edit_json(model / "config.json", lambda c: c.pop("train"))
    assert "which data dir" in fails(capsys, "evaluate", "--model", model)


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("manifest.json", lambda p: p.write_text("{not json", encoding="utf-8"), "not valid JSON"),
    ("manifest.json", lambda p: p.write_text("[]", encoding="utf-8"), "expected a JSON object"),
    ("manifest.json", lambda p: _edit_json(p, lambda m: m.update(sources=[{"name": 1}])),
     '"sources" is not a list'),
    ("manifest.json", lambda p: _edit_json(p, lambda m: m.update(vocab=3)), 'no "vocab"'),
    ("vocab.txt", lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "not UTF-8"),
])
def test_a_damaged_data_dir_gives_a_one_line_error(tmp_path, capsys, small_data, name, damage,
                                                   message):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    damage(data / name)
    assert message in fails(capsys, "train", "--data", data, "--out", tmp_path / "m")


def test_a_garbage_training_state_gives_a_one_line_error(tmp_path, capsys, small_data,
                                                          small_model):
    import torch

    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    state = model / "train_state.pt"
    resume = ("train", "--data", small_data, "--out", model, "--resume")
    state.write_bytes(bytes(range(256)) * 4)
    assert "cannot read the training state" in fails(capsys, *resume)
    state.write_bytes(b"")
    assert "cannot read the training state" in fails(capsys, *resume)
    torch.save([1, 2], state)
    assert "not a training state" in fails(capsys, *resume)
    torch.save({"model": {}}, state)
    assert "not a training state of this program" in fails(capsys, *resume)


def test_ctrl_c_stops_serve_quietly(small_model, tmp_path):
    """SIGINT after the server listens: one line, exit 0, no asyncio traceback; with --port 0
    the first line names the port (profiles on, as by default)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rnn_ime", "serve", "--model", str(small_model), "--port", "0",
         "--user-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        line = process.stdout.readline()  # "rnn-ime: serving … at http://127.0.0.1:PORT/"
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line or process.stderr.read()
        for _ in range(100):  # until uvicorn answers (its signal handlers are set by then)
            try:
                urllib.request.urlopen(url.group(0) + "api/health", timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "rnn-ime: stopped"
    assert process.returncode == 0


@pytest.mark.parametrize(("options", "message"), [
    (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
    (["--valid-words", "-1"], "--valid-words must be 0 (all of the validation split) or more"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--lr", "inf"], "--lr must be a positive number"),
    (["--lr", "100"], "at most 10"),
    (["--clip", "nan"], "--clip must be a positive number"),
    (["--clip=-inf"], "--clip must be a positive number"),
    (["--time-budget", "nan"], "--time-budget must be a positive number"),
    (["--eval-every-seconds", "-1"], "--eval-every-seconds must be 0 or a positive number"),
    (["--eval-every", "-1"], "--eval-every must be at least 0"),
    (["--patience", "0"], "--patience must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--max-steps", "0"], "--max-steps must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be between 1 and"),
    (["--bptt", "100000"], "--bptt must be between 1 and"),
    (["--seed", "-1"], "--seed must be between 0 and"),
    (["--dropout", "nan"], "--dropout must be in [0, 1)"),
    (["--hidden", "100000"], "--hidden must be at most 8,192"),
    (["--embed", "100000"], "--embed must be at most 8,192"),
    (["--layers", "100"], "--layers must be at most 16"),
])
def test_train_refuses_bad_options_in_one_line(tmp_path, capsys, small_data, options, message):
    out = tmp_path / "m"
    assert message in fails(capsys, "train", "--data", small_data, "--out", out, *options)
    assert not out.exists()


def test_train_refuses_an_out_that_is_a_file(tmp_path, capsys, small_data):
    afile = tmp_path / "afile"
    afile.write_text("mine", encoding="utf-8")
    assert "exists and is not a directory" in fails(capsys, "train", "--data", small_data,
                                                    "--out", afile)
    assert "is not a directory" in fails(capsys, "train", "--data", small_data, "--out",
                                         afile / "model")
    assert afile.read_text(encoding="utf-8") == "mine"


def test_outputs_that_cannot_be_written_give_one_line_errors(tmp_path, capsys, small_corpus,
                                                             small_model):
    afile = tmp_path / "afile"
    afile.write_text("mine", encoding="utf-8")
    prepare = ("prepare", "--corpus", small_corpus, "--min-count", "1", "--out")
    assert f"--out {afile}: exists and is not a directory" in fails(capsys, *prepare, afile)
    assert afile.read_text(encoding="utf-8") == "mine"
    too_long = tmp_path / ("a" * 300) / "data"
    assert f"{too_long}: File name too long" in fails(capsys, *prepare, too_long)
    assert "is a directory; name a file" in fails(capsys, "export", "--model", small_model,
                                                  "--out", tmp_path)
    assert "--rerank must be between 0 and 1,000" in fails(capsys, "export", "--model",
                                                           small_model, "--int8", "--rerank",
                                                           "-1")
    assert "go with --int8" in fails(capsys, "export", "--model", small_model, "--rerank", "8")


def test_os_error_line_names_the_file():
    from rnn_ime.cli import os_error_line

    assert os_error_line(PermissionError(13, "Permission denied", "/x/y")) == \
        "/x/y: Permission denied"
    assert os_error_line(OSError(28, "No space left on device", "/tmp/.a.tmp", None, "/a")) == \
        "/a: No space left on device"
    assert os_error_line(OSError("odd")) == "odd"


@pytest.mark.parametrize(("options", "message"), [
    (["--hidden-size", "100000"], "--hidden-size must be between 1 and 1,024"),
    (["--input-size", "0"], "--input-size must be between 1 and 1,024"),
    (["--layers", "100000"], "--layers must be between 1 and 8"),
    (["--seq-len", "0"], "--seq-len must be between 1 and 64"),
    (["--seq-len", "65"], "--seq-len must be between 1 and 64"),
    (["--seed", "-1"], "--seed must be between 0 and"),
    (["今天" * 70], "the text has 70 words; explain shows at most 64"),
])
def test_explain_refuses_sizes_it_cannot_show(capsys, options, message):
    assert message in fails(capsys, "explain", *options)


def test_explain_at_its_limits(capsys):
    out = run(capsys, "explain", "--layers", "8", "--bidirectional", "--seq-len", "64",
              "--hidden-size", "1024", "--input-size", "1024").out
    assert "h_n     (16, 1, 1024)" in out and "layer 7 backward t=63" in out


GBK_NIHAO = "你好".encode("gbk").decode("utf-8", "surrogateescape")  # as argv delivers it


@pytest.mark.parametrize(("argv", "message"), [
    (["predict", "--model", "{model}", GBK_NIHAO], "the text: not UTF-8 text (byte 0xc4 at "
                                                    "offset 0); it reads as GB18030/GBK"),
    (["learn", "--model", "{model}", "--user-db", "{db}", "好", GBK_NIHAO], "the text: not UTF-8"),
    (["user", "forget", GBK_NIHAO, "--user-db", "{db}"], "the word to forget: not UTF-8"),
    (["pinyin", "--model", "{model}", "--context", "\udcff", "nihao"],
     "--context: not UTF-8 text (byte 0xff at offset 0)"),
    (["pinyin", "--model", "{model}", "ni\udcffhao"], "the letters: not UTF-8 text (byte 0xff "
                                                       "at offset 2)"),
    (["explain", "我" + GBK_NIHAO], "the text: not UTF-8 text (byte 0xc4 at offset 3)"),
])
def test_text_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys, small_model, argv,
                                                      message):
    db = tmp_path / "user.db"
    argv = [a.format(model=small_model, db=db) for a in argv]
    assert message in fails(capsys, *argv)
    assert not db.exists()  # nothing learned, no file made


def test_predict_refuses_stdin_that_is_not_utf8(small_model):
    process = subprocess.run(
        [sys.executable, "-m", "rnn_ime", "predict", "--model", str(small_model), "--json"],
        input="我今天\n".encode() + b"\xff\xfe\xc4\xe3\n" + "他\n".encode(), capture_output=True,
        timeout=120)
    err = process.stderr.decode()
    assert process.returncode == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == \
        "rnn-ime: error: stdin line 2: not UTF-8 text (byte 0xff at offset 0)"
    answers = [json.loads(line) for line in process.stdout.decode().splitlines()]
    assert [a["text"] for a in answers] == ["我今天"]  # the lines before it are answered


def test_argv_that_is_not_utf8_is_refused_by_the_real_command(tmp_path):
    process = subprocess.run(
        [sys.executable.encode(), b"-m", b"rnn_ime", b"user", b"forget", "你好".encode("gbk"),
         b"--user-db", str(tmp_path / "u.db").encode()], capture_output=True, timeout=120)
    err = process.stderr.decode()
    assert process.returncode == 2 and "Traceback" not in err, err
    assert "the word to forget: not UTF-8 text (byte 0xc4" in err


@pytest.mark.parametrize("letters", ["", "  ", ",", "'", "''", "'',"])
def test_pinyin_without_letters_is_refused(capsys, small_model, letters):
    assert "no pinyin letters to decode" in fails(capsys, "pinyin", "--model", small_model,
                                                  letters)


@pytest.mark.parametrize("weight", ["1", "-0.1", "nan"])
def test_pinyin_context_weight_out_of_range_is_refused(capsys, small_model, weight):
    assert "--context-weight must be in [0, 1)" in fails(
        capsys, "pinyin", "--model", small_model, "--context-weight", weight, "nihao")


def test_pinyin_context_weight_reaches_the_decoder(capsys, small_model):
    """The context's own words gain with --context-weight; 0 leaves the model alone."""
    def score(weight: str) -> float:
        main(["pinyin", "--model", str(small_model), "--json", "--context", "今天今天",
              "--context-weight", weight, "jintian"])
        phrases = json.loads(capsys.readouterr().out)["phrases"]
        return next(p["score"] for p in phrases if p["text"] == "今天")

    assert score("0.9") > score("0.05") > score("0")


def test_evaluate_run_elsewhere_says_the_recorded_data_path_is_relative(tmp_path, capsys,
                                                                        small_model,
                                                                        monkeypatch):
    moved = tmp_path / "model"
    shutil.copytree(small_model, moved)
    config = json.loads((moved / "config.json").read_text(encoding="utf-8"))
    config["train"]["data"] = "data/default"
    (moved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    line = fails(capsys, "evaluate", "--model", moved)
    assert "trained on data/default, a path relative to the directory training ran in, not " \
           f"found from {tmp_path}; run from there or pass --data" in line


def test_prepare_says_when_min_count_leaves_a_small_vocabulary(tmp_path, capsys):
    corpus = tmp_path / "cats.txt"
    corpus.write_text("".join(f"小橘第{hanzi_number(i)}次在窗台上晒太阳。\n" for i in range(30)),
                      encoding="utf-8")
    main(["prepare", "--corpus", str(corpus), "--out", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert "a small corpus" in err and "--min-count 1" in err
    main(["prepare", "--corpus", str(corpus), "--out", str(tmp_path / "all"), "--min-count", "1"])
    assert "a small corpus" not in capsys.readouterr().err
