"""Every limit on what a user may ask for, defined once.

The engine checks its own (predict.check_k, beam.check_beam, pinyin.check_options and
normalize) for the library and the CLI; the HTTP server tightens some, so that one request,
which holds the model's lock, stays cheap.
"""

# the engine: library and CLI
MAX_K = 100  # next words of `predict` / Predictor.suggest
MAX_BEAM = 100  # beam width of beam search (continuations)
MAX_LENGTH = 10  # words per continuation
MAX_LETTERS = 64  # typed pinyin, apostrophes included
PINYIN_MAX_K = 20  # pinyin candidates of each kind
PINYIN_MAX_BEAM = 16  # pinyin hypotheses kept per lattice position

# training and the model's shape (train, and every model dir loaded)
MAX_LAYERS = 16
MAX_WIDTH = 8192  # embedding and hidden size
MAX_SEQ_LEN = 1024  # the window objective's words
MAX_BPTT = 4096
MAX_BATCH_SIZE = 65536
MAX_LR = 10.0  # Adam's step size; the default is 2e-3

# rnn-ime explain: a plain RNN printed step by step, for reading
EXPLAIN_MAX_SIZE = 1024  # --input-size and --hidden-size
EXPLAIN_MAX_LAYERS = 8  # one line per step, layer and direction
EXPLAIN_MAX_STEPS = 64  # --seq-len, or the words of a TEXT

# one HTTP request (server.py)
SERVER_MAX_TEXT = 2000  # characters of typed text or context
SERVER_MAX_K = 20  # next words, or pinyin candidates of each kind
SERVER_MAX_BEAM = 8
SERVER_MAX_LENGTH = 8
SERVER_MAX_BODY_BYTES = 64 * 1024
