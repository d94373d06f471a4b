"""The one exception type users see: a clear, one-line message and a non-zero exit."""


class TallmergeError(Exception):
    """A user-facing error: bad input, a missing or corrupted file, an invalid value.

    The message is a single line that names the offending file, key or value. The command
    line prints it as ``tallmerge: error: <message>`` and exits with status 2.
    """


def exit_on_error(main, *args, **kwargs):
    """Call ``main``; turn a :class:`TallmergeError` into one line on stderr and exit status 2."""
    import sys

    try:
        return main(*args, **kwargs)
    except TallmergeError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
