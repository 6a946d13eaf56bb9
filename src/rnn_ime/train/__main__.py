"""`python -m rnn_ime.train …`, what torchrun runs: `rnn-ime train …` with the same options.

A front end, like cli.py, which it calls: the trainer itself never imports a front end.
"""

import sys

from ..cli import main

main(["train", *sys.argv[1:]])
