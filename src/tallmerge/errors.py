"""The one exception type users see, and the one boundary where every failure becomes one line.

A :class:`TallmergeError` carries a single-line message that names the offending file, key or
value. :func:`exit_on_error` runs a command (the ``tallmerge`` CLI, a pipeline stage) and turns
whatever escapes it into one line on stderr and an exit status, so no code path can show a user
a traceback:

====================================================  ======  ==================================
what escaped                                          status  line
====================================================  ======  ==================================
:class:`TallmergeError` (bad input, a refused write)  2       ``error: <message>``
:class:`OSError` (unreadable, unwritable, disk full)  2       ``error: <file>: <reason>``
:class:`KeyboardInterrupt`, SIGINT (Ctrl-C), SIGTERM  130     ``interrupted``
anything else (a bug)                                 1       ``internal error: ...``
====================================================  ======  ==================================

Every writer cleans up on the way out (``finally`` blocks, atomic renames), so an interrupted
command leaves its inputs and any earlier output as they were. Set ``TALLMERGE_DEBUG=1`` (or
pass ``--debug`` to the CLI) to see the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130
DEBUG_ENV = "TALLMERGE_DEBUG"


class TallmergeError(Exception):
    """A user-facing error: bad input, a missing or corrupted file, an invalid value.

    The message is a single line that names the offending file, key or value. The command
    line prints it as ``error: <message>`` and exits with status 2.
    """


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type's name if it has none)."""
    return " ".join(str(e).split()) or type(e).__name__


def describe_os_error(e: OSError) -> str:
    """``<file>: <reason>`` for an OS error, naming both files of a failed rename."""
    reason = e.strerror or one_line(e)
    if e.filename is not None and e.filename2 is not None:
        return f"{os.fsdecode(e.filename)} -> {os.fsdecode(e.filename2)}: {reason}"
    if e.filename is not None:
        return f"{os.fsdecode(e.filename)}: {reason}"
    return reason


_signalled = False
_RETRY_S = 0.02


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _interrupted(signum, frame):
    """SIGINT and SIGTERM unwind as KeyboardInterrupt, so ``finally`` blocks clean up.

    Not while a module is being imported: torch's C++ initialisation aborts the process
    (``terminate called after throwing ...``) when a Python exception crosses it, and other
    libraries swallow the interrupt and leave half-imported modules behind. There the
    interrupt is put off, and a timer raises it as soon as the import is done. The flag
    remembers the signal, so whatever ends the command then is reported as an interruption.
    """
    global _signalled
    _signalled = True
    if _importing(frame) and hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, _interrupted)
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return
    raise KeyboardInterrupt


def exit_on_error(main, *args, debug: bool = False, **kwargs):
    """Call ``main``; turn whatever escapes it into one line on stderr and an exit status
    (table above). With ``debug`` or ``TALLMERGE_DEBUG`` set, exceptions propagate."""
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    global _signalled
    _signalled = False
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGALRM", None)):
            if sig is not None:
                previous[sig] = signal.getsignal(sig)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupted)
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    stdout, sys.stdout = sys.stdout, _NamedStdout(sys.stdout) if sys.stdout is not None else None
    try:
        try:
            result = main(*args, **kwargs)
            if sys.stdout is not None:
                sys.stdout.flush()
            return result
        finally:
            sys.stdout = stdout
            _restore(previous)
    except BaseException as e:
        if debug or isinstance(e, SystemExit):
            raise
        status, line = _report(e)
        _print(line)
        raise SystemExit(status) from None


class _NamedStdout:
    """Standard output whose failures say so: a write or flush that fails (``> /dev/full``, a
    full disk) is an error naming the stream, said once; the stream is then pointed at the null
    device, so that Python's own flush at exit stays silent. A reader that left (a broken pipe)
    is :func:`_report`'s business."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from None
        except ValueError:  # closed: nothing to write
            pass

    def _failed(self, e: OSError) -> TallmergeError:
        _silence_stdout()
        return TallmergeError(f"standard output: {e.strerror or one_line(e)}")

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _restore(previous: dict) -> None:
    """Put the signal handlers back. A signal that lands meanwhile only sets the flag: the
    command has already ended (its result stands) or is failing (and is then reported as
    interrupted)."""
    while True:
        try:
            if previous and hasattr(signal, "setitimer"):
                signal.setitimer(signal.ITIMER_REAL, 0)
            for sig, handler in previous.items():
                if handler is not None:  # None: installed outside Python, cannot be restored
                    signal.signal(sig, handler)
            return
        except KeyboardInterrupt:
            continue


def _report(e: BaseException) -> tuple[int, str]:
    if _signalled or isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(e, TallmergeError):
        return EXIT_ERROR, f"error: {one_line(e)}"
    if isinstance(e, BrokenPipeError):  # `tallmerge tasks | head`: the reader left
        _silence_stdout()  # and Python's own flush at exit must not complain either
        return 0, ""
    if isinstance(e, MemoryError):
        return EXIT_ERROR, "error: out of memory"
    if isinstance(e, OSError):
        return EXIT_ERROR, f"error: {describe_os_error(e)}"
    where = ""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    return EXIT_BUG, (
        f"internal error: {type(e).__name__}: {one_line(e)}{where} "
        f"(a bug in tallmerge; rerun with {DEBUG_ENV}=1 for the traceback)"
    )


def _print(line: str) -> None:
    if not line:
        return
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed: the status still says it
        pass
