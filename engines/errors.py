"""Errors that carry a one-line, user-facing message naming the file or key at fault."""


class InputError(ValueError):
    """Bad user input (file, mask, video, YAML key, artefact): the CLI prints the message and exits 2."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, for an InputError (a YAML parser's error: its problem and line)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1})"
    return " ".join(str(exc).split())
