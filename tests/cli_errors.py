"""The one-line error every command ends a user mistake with, as the tests of bad input read it."""

import pytest


def one_line_error(capsys, fn, argv) -> str:
    """The one line a command ends with on stderr (exit status 2)."""
    with pytest.raises(SystemExit) as exc:
        fn(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    return err
