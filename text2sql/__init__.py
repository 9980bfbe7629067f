"""The ``text2sql`` command: one entry point over the engine, training and the app."""
