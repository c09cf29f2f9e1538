"""One exception type for mistakes a user can make; entry points print it as a single line."""

import sys
from collections.abc import Callable


class UserError(ValueError):
    """A bad path, column, label, model name or option, described in one line."""


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
    """Run `main`; a UserError anywhere in the failure ends the process with `error: ...` and
    status 1, instead of a traceback. Other failures keep their traceback."""
    try:
        main()
    except Exception as err:
        user_error = user_error_in(err)
        if user_error is None:
            raise
        sys.exit(f"error: {user_error}")
