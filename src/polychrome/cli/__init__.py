"""The ``polychrome`` command line: colorize, train, export, models, pack-data, evaluate, benchmark, report,
benchmark-speed, demo.

Every mistake a person can make (a missing file, a corrupt photo, a bad model path, an unknown
config key) ends as ONE line on stderr and a non-zero exit code, never a traceback:

    exit 0  everything asked for was done
    exit 1  some photos failed (the rest were still written), or a run failed
    exit 2  the command could not start: bad model, bad config, bad option
"""

from __future__ import annotations

from polychrome.cli import colorize, data, evaluate, serve, speed, train  # noqa: F401  (each registers its commands)
from polychrome.cli.common import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``polychrome``) and ``python -m polychrome``.

    Usage mistakes (a missing ``-o``, an unknown option, a bad value) are printed as ONE line, like every
    other error of this tool, rather than the boxed usage panel; exit code 2 as before."""
    import sys

    from typer import Abort

    try:  # typer >= 0.25 carries its own copy of click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older typer on top of click
        from click.exceptions import ClickException

    try:
        code = app(args=argv, prog_name="polychrome", standalone_mode=False)
    except ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        sys.stderr.write(f"error: {' '.join(e.format_message().split())}{where}\n")
        sys.exit(e.exit_code)
    except Abort:  # Ctrl+C at a prompt
        sys.stderr.write("aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
