"""``attnsearch profile ARCH.json``: FLOPs and parameters of an architecture."""

from __future__ import annotations

import click

_MAX_CHANNELS, _MAX_SIDE = 4096, 16384  # larger inputs are typos, not images


def _parse_input(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    shown = value if len(value) <= 40 else f"{value[:12]}... ({len(value)} characters)"
    try:
        if len(value) > 40:
            raise ValueError
        shape = tuple(int(v) for v in value.replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"expected C,H,W such as 3,224,224, got {shown!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise click.BadParameter(f"expected three positive integers C,H,W, got {value!r}")
    if shape[0] > _MAX_CHANNELS or max(shape[1:]) > _MAX_SIDE:
        raise click.BadParameter(
            f"at most {_MAX_CHANNELS} channels and {_MAX_SIDE} pixels a side, got {value!r}"
        )
    return shape


@click.command("profile")
@click.argument("arch_file", metavar="ARCH.json", type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_shape",
    callback=_parse_input,
    metavar="C,H,W",
    help="Input shape to count on (default: the architecture's, 3,224,224).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(arch_file: str, input_shape, as_json: bool) -> None:
    """FLOPs (every multiply-accumulate) and parameters of the deploy network."""
    from attnsearch.api import profile
    from attnsearch.architecture import Architecture
    from attnsearch.cli._terminal import term

    arch = Architecture.from_file(arch_file)
    result = profile(arch, input=input_shape)
    if as_json:
        term.json(result)
        return
    c, h, w = result["input"]
    rows = [
        ["backbone", result["backbone"]],
        ["slots", arch.summary()],
        ["input", f"{c}×{h}×{w}"],
        ["params", f"{result['params']:,}  ({result['params'] / 1e6:.2f} M)"],
        ["flops", f"{result['flops']:,}  ({result['flops'] / 1e9:.3f} G)"],
        [
            "macs (conv+linear)",
            f"{result['macs_conv_linear']:,}  ({result['macs_conv_linear'] / 1e9:.3f} G)",
        ],
    ]
    term.table(arch_file, ["", "value"], rows)
