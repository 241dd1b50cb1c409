"""The one exception type users see: a problem with their input, not a bug in nlpsuite."""


class NlpsuiteError(Exception):
    """Bad input, a missing model or file, an unknown name. The CLI prints it as one line, exit 2.

    Messages name the file, line and field where there is one, e.g.
    ``inputs.jsonl:3: missing field 'context'``.
    """
