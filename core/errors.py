"""One exception type for mistakes a user can make; entry points print it as a single line."""

import gzip
import sys
import zlib
from collections.abc import Callable


class UserError(ValueError):
    """A bad path, column, label, model name or option, described in one line."""


def check(option: str, value, valid: bool, expected: str) -> None:
    """Refuse an option's value where it enters, in one line: the option, the value, what is valid."""
    if not valid:
        raise UserError(f"{option}={value!r} is out of range: expected {expected}")


def at_least(option: str, value, low: int, optional: bool = False) -> None:
    """An integer option (None allowed where `optional`) that must be `low` or more."""
    if optional and value is None:
        return
    check(option, value, isinstance(value, int) and value >= low,
          f"an integer >= {low}" + (" or null" if optional else ""))


def some(names: list[str], shown: int = 3) -> str:
    """A few names of a long list, for a one-line message."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(f"'{name}'" for name in names[:shown]) + more


def user_error_in(err: BaseException | None) -> UserError | None:
    """The UserError behind an exception; jsonargparse wraps errors raised while instantiating."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Run `main`; a UserError anywhere in the failure, or a Trainer option Lightning refuses,
    ends the process with one `error: ...` line and status 1, instead of a traceback. A SIGTERM
    stop ends with status 143, as a killed job would. Other failures keep their traceback."""
    try:
        main()
    except BaseException as err:
        # Lightning's exceptions, where it was imported at all (predict.py never imports it)
        lightning = sys.modules.get("lightning.pytorch.utilities.exceptions")
        if lightning and isinstance(err, lightning.SIGTERMException):
            print("stopped by SIGTERM: last.ckpt holds the state after the last finished step; resume "
                  "with the same command and --ckpt_path last", file=sys.stderr)
            sys.exit(143)
        if not isinstance(err, Exception):
            raise
        user_error = user_error_in(err)
        if user_error is not None:
            sys.exit(f"error: {user_error}")
        if lightning and isinstance(err, lightning.MisconfigurationException):
            sys.exit(f"error: {str(err).strip().splitlines()[0]}")
        raise


def reason(err: BaseException) -> str:
    """The innermost cause of a reader's failure, in one line."""
    while err.__cause__ is not None or (err.__context__ is not None and not str(err).strip()):
        err = err.__cause__ or err.__context__
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r})"
    if isinstance(err, (EOFError, zlib.error)):
        return f"truncated or corrupt compressed data ({err})"
    if isinstance(err, gzip.BadGzipFile):
        return f"named .gz but not gzip-compressed ({err})"
    if "Invalid UTF8" in str(err):  # pyarrow's check of the bytes it read
        return "not UTF-8 text"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
