"""rnn-ime: a Chinese input method whose engine is a recurrent neural network."""

__version__ = "0.1.0"
