"""rnn-ime as an IBus engine: the input method on a Linux desktop.

`machine` is the key handling (a state machine: keys in, commits and a view out, no GObject),
`ranker` the model behind it, `learning` the hook a user model plugs into, `component` what
IBus knows of the engine (and `rnn-ime ibus install`), `gir` finds IBus's bindings, and
`engine` is the GObject glue — the only module that needs IBus, imported by `rnn-ime ibus`
alone.
"""

from .learning import Learner, NoLearning
from .machine import PAGE_SIZE, Machine, Ranker, Reaction, View

__all__ = ["PAGE_SIZE", "Learner", "Machine", "NoLearning", "Ranker", "Reaction", "View"]
