"""`python -m rnn_ime …`: the `rnn-ime` command."""

from .cli import main

main()
