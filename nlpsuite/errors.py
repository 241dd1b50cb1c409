"""The exceptions users see as one line: a problem with their input, or a plugin that broke the
contract; neither is a bug in nlpsuite."""


class NlpsuiteError(Exception):
    """Bad input, a missing model or file, an unknown name. The CLI prints it as one line, exit 2.

    Messages name the file, line and field where there is one, e.g.
    ``inputs.jsonl:3: missing field 'context'``.
    """

    exit_code = 2


class PluginError(NlpsuiteError):
    """A plugin broke the contract, e.g. its runner gave one output too few: the plugin's fault,
    not the user's, so the CLI exits 1. Messages name the plugin (package, version) and task."""

    exit_code = 1


def user_message(error: Exception) -> str:
    """``error`` as the one line the CLI prints: an :class:`NlpsuiteError`'s message; an
    ``OSError`` or ``UnicodeDecodeError`` that no command turned into one (the CLI's last line of
    defence against a traceback) with the path or the bytes it is about."""
    if isinstance(error, UnicodeDecodeError):
        return f"input is not UTF-8 text ({error})"
    if isinstance(error, OSError):
        paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
        reason = error.strerror or str(error)
        return f"{paths}: {reason}" if paths else reason
    return str(error)


def error_line(error: BaseException) -> str:
    """The first line of a library's error message (or its type's name): for one-line errors
    that quote what went wrong underneath."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def reason_line(error: BaseException) -> str:
    """Why something failed, in one line: our own errors as written (for the user already),
    anything else after its type's name (``ValueError: ...``)."""
    if isinstance(error, NlpsuiteError) or not str(error).strip():
        return error_line(error)
    return f"{type(error).__name__}: {error_line(error)}"
