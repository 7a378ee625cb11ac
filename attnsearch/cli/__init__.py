"""The ``attnsearch`` command line: one file per command, heavy imports inside commands.

Exit codes (DESIGN.md §4): 0 done; 1 the search ran but failed; 2 bad usage or input
(one line, no traceback); 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from attnsearch import __version__

__all__ = ["cli", "main"]

_COMMANDS = {
    "run": "attnsearch.cli.run",
    "pareto": "attnsearch.cli.pareto",
    "export": "attnsearch.cli.export",
    "profile": "attnsearch.cli.profile",
    "evaluate": "attnsearch.cli.evaluate",
    "fidelity": "attnsearch.cli.fidelity",
    "latency-table": "attnsearch.cli.latency_table",
    "modules": "attnsearch.cli.modules",
    "spaces": "attnsearch.cli.spaces",
}


class _LazyGroup(click.Group):
    """Imports a command's file only when that command is used (``--help`` stays instant)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS or not _available(name):
            return None
        from importlib import import_module

        return import_module(_COMMANDS[name]).command


def _available(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(_COMMANDS[name]) is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="attnsearch")
def cli() -> None:
    """Neural architecture search over CNN attention modules.

    Each residual block of a ResNet is a slot; the search picks an attention type and its
    hyperparameters per slot (SE, ECA, CBAM, SA, CA, EPSA, RFAConv family, or none),
    maximising proxy accuracy and minimising FLOPs under a hard FLOPs budget.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and turns every user error into one line + exit 2."""
    import errno

    from attnsearch.errors import InputError
    from attnsearch.safeio import show  # one error, one line: control characters escaped

    try:
        code = cli.main(args=argv, prog_name="attnsearch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("attnsearch: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else "attnsearch: "
        click.echo(f"{where}error: {show(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except InputError as e:
        click.echo(f"attnsearch: error: {show(e)}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:  # a path the system refuses to even look up
            raise
        name = e.filename if e.filename is not None else "a path"
        shown = show(name) if len(str(name)) <= 80 else f"{show(str(name)[:40])}..."
        click.echo(f"attnsearch: error: {shown}: file name too long", err=True)
        sys.exit(InputError.exit_code)
    except KeyboardInterrupt:
        click.echo("attnsearch: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
