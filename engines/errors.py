"""Errors that carry a one-line, user-facing message naming the file or key at fault."""


class InputError(ValueError):
    """Bad user input (file, mask, video, YAML key, artefact): the CLI prints the message and exits 2."""
