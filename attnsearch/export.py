"""Export an architecture as one standalone PyTorch file (DESIGN.md §7).

The file needs only torch. It holds the attention modules the architecture uses (their
source is taken from :mod:`attnsearch.modules` with the registry's hyperparameter checks
left out, so the maths and the parameter names are the package's own), one residual block
class, the ResNet, the architecture as data (``ARCHITECTURE``) and ``build_model()``. Its
state-dict keys and shapes equal :func:`attnsearch.backbones.build_network`'s for the same
settings, so weights load with ``strict=True``; built under the same seed, it even starts
from the same weights.

Two ways in:

* :func:`generate_code` — an :class:`~attnsearch.architecture.Architecture` to source text.
* :func:`export_run` — a trial of a search (``results/NAME``), optionally as the proxy
  network that was trained, with its final checkpoint's weights written beside the code.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnsearch.architecture import Architecture
from attnsearch.errors import InputError

__all__ = [
    "ExportError",
    "choose_trial",
    "export_arch",
    "export_run",
    "find_checkpoint",
    "generate_code",
]

WEIGHTS_NAME = "model.pt"


class ExportError(InputError):
    """An export that cannot be made (unknown trial, no checkpoint, bad options)."""


# ---- attention source extraction ------------------------------------------------------
# Names an attention file may use from outside itself: (module, attribute) of the object the
# name must be bound to there, and the import line it needs. Anything else not defined in
# the same file is an error (the export would not be standalone).
_IMPORTS: dict[str, tuple[str, str | None, str]] = {
    "torch": ("torch", None, "import torch"),
    "nn": ("torch.nn", None, "from torch import nn"),
    "F": ("torch.nn.functional", None, "import torch.nn.functional as F"),
    "math": ("math", None, "import math"),
    "OrderedDict": ("collections", "OrderedDict", "from collections import OrderedDict"),
}


def _import_line(module, ref: str) -> str | None:
    """The import line for ``ref`` if ``module`` binds it to the object we know by that name."""
    import importlib

    if ref not in _IMPORTS or ref not in module.__dict__:
        return None
    source, attr, line = _IMPORTS[ref]
    expected = importlib.import_module(source)
    if attr is not None:
        expected = getattr(expected, attr)
    return line if module.__dict__[ref] is expected else None


_STDLIB_ORDER = ["import math", "from collections import OrderedDict", "from pathlib import Path"]
_TORCH_ORDER = ["import torch", "import torch.nn.functional as F", "from torch import nn"]


def _is_check(name: str) -> bool:
    return name == "check" or name.startswith(("check_", "_check"))


def _global_names(tree: ast.AST) -> set[str]:
    """Names read anywhere in ``tree`` (``nn.Module`` reads ``nn``): a superset of its globals."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _strip_checks(source: str) -> str:
    """Drop statements that only call the registry's ``check*`` functions."""
    tree = ast.parse(source)
    drop: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and _is_check(node.value.func.id)
        ):
            drop.update(range(node.lineno, node.end_lineno + 1))
    lines = source.splitlines()
    return "\n".join(line for i, line in enumerate(lines, 1) if i not in drop) + "\n"


class _Collector:
    """Walks from attention classes to every helper they need, in definition order."""

    def __init__(self) -> None:
        self.blocks: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.imports: set[str] = set()
        self.owner: dict[str, str] = {}  # emitted name -> its module (name clashes)

    def add(self, obj: Any) -> None:
        module = inspect.getmodule(obj)
        self._add(module, obj.__name__)

    def _add(self, module, name: str) -> None:
        key = (module.__name__, name)
        if key in self.blocks:
            return
        if name in self.owner and self.owner[name] != module.__name__:
            raise RuntimeError(f"export: name {name!r} defined in two attention files")
        obj = module.__dict__[name]
        if inspect.isclass(obj) or inspect.isfunction(obj):
            source = _strip_checks(textwrap.dedent(inspect.getsource(obj)))
        elif isinstance(obj, (int, float, str)) and not isinstance(obj, bool):
            source = f"{name} = {obj!r}\n"
        else:
            raise RuntimeError(f"export: cannot copy {module.__name__}.{name} ({type(obj)})")
        self.blocks[key] = ""  # reserve (cycles)
        self.owner[name] = module.__name__
        tree = ast.parse(source)
        local = _bound_names(tree)
        for ref in sorted(_global_names(tree) - local):
            line = _import_line(module, ref)
            if line is not None:
                self.imports.add(line)
            elif ref in module.__dict__ and ref != name:  # else a builtin
                target = module.__dict__[ref]
                if _is_check(ref):
                    raise RuntimeError(f"export: {module.__name__}.{name} still uses {ref}")
                if getattr(target, "__module__", module.__name__) != module.__name__:
                    raise RuntimeError(f"export: {module.__name__}.{name} needs foreign {ref!r}")
                self._add(module, ref)
        self.blocks.move_to_end(key)
        self.blocks[key] = source


def _bound_names(tree: ast.AST) -> set[str]:
    """Names bound inside ``tree`` (arguments, assignments, comprehension targets, defs)."""
    bound: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            bound.add(n.name)
    top = tree.body[0] if isinstance(tree, ast.Module) and tree.body else None
    if isinstance(top, (ast.FunctionDef, ast.ClassDef)):
        bound.discard(top.name)  # a recursive reference is not a dependency
    return bound


def _attention_source(types: list[str]) -> tuple[set[str], str]:
    """Imports and source text of the attention classes of ``types`` (registry order)."""
    from attnsearch import modules

    collector = _Collector()
    sections = []
    for name in types:
        spec = modules.get(name)
        before = set(collector.blocks)
        collector.add(spec.cls)
        new = [src for key, src in collector.blocks.items() if key not in before]
        paper = textwrap.wrap(f"Paper: {spec.paper}", 96, subsequent_indent="  ")
        header = "\n".join(
            [f"# ---- {name} ({spec.kind})", *(f"# {line}" for line in paper)]
            + [f"# Official code: {spec.code}", ""]
        )
        sections.append(header + "\n\n".join(new))
    return collector.imports, "\n\n".join(sections)


# ---- the generated file ------------------------------------------------------------------
_HELPERS = '''
def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def _hparams(choice: dict) -> dict:
    return {k: v for k, v in choice.items() if k != "type"}


def make_conv(choice: dict, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The block's 3×3 convolution, or the attention convolution that replaces it."""
    if choice["type"] in CONVS:
        return CONVS[choice["type"]](in_channels, out_channels, stride, **_hparams(choice))
    return conv3x3(in_channels, out_channels, stride)


def make_gate(choice: dict, channels: int) -> nn.Module | None:
    """The block's attention gate (after its last BN, before the residual add), if any."""
    if choice["type"] in GATES:
        return GATES[choice["type"]](channels, **_hparams(choice))
    return None


def make_downsample(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """Strided 1×1 conv + BN on the shortcut where the shape changes (ResNet v1.5)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
'''

_BASIC = '''
class BasicBlock(nn.Module):
    """ResNet-18/34 block; a conv-type choice replaces ``conv1`` (the strided 3×3)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, choice: dict):
        super().__init__()
        self.conv1 = make_conv(choice, in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = make_gate(choice, planes)
        self.downsample = make_downsample(in_channels, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + identity)
'''

_BOTTLENECK = '''
class Bottleneck(nn.Module):
    """ResNet-50/101 block; a conv-type choice replaces ``conv2`` (the strided 3×3)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, choice: dict):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = make_conv(choice, planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.attn = make_gate(choice, out_channels)
        self.downsample = make_downsample(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + identity)
'''

_STEM = {
    "deploy": (
        "        self.conv1 = nn.Conv2d(in_channels, PLANES[0], 7, stride=2, padding=3, "
        "bias=False)\n"
        "        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)\n",
        "        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))\n",
    ),
    "proxy": (
        "        self.conv1 = nn.Conv2d(in_channels, PLANES[0], 3, stride=1, padding=1, "
        "bias=False)\n",
        "        x = self.relu(self.bn1(self.conv1(x)))\n",
    ),
}

_RESNET = '''
class ResNet(nn.Module):
    """The ResNet with one attention choice per residual block (``slots``, network order)."""

    def __init__(
        self,
        slots: list[dict],
        num_classes: int = NUM_CLASSES,
        in_channels: int = IN_CHANNELS,
    ):
        super().__init__()
        if len(slots) != sum(DEPTHS):
            raise ValueError(f"expected {sum(DEPTHS)} slots, got {len(slots)}")
@STEM_INIT@        self.bn1 = nn.BatchNorm2d(PLANES[0])
        self.relu = nn.ReLU(inplace=True)
        choices = iter(slots)
        in_ch = PLANES[0]
        for stage, (planes, depth) in enumerate(zip(PLANES, DEPTHS)):
            blocks = []
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(@BLOCK@(in_ch, planes, stride, next(choices)))
                in_ch = planes * @BLOCK@.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's ResNet initialisation; attention modules that set their own (e.g.
        # CBAM's zero BN weight) re-initialise afterwards, as in attnsearch.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters") and type(m).__module__ == __name__:
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
@STEM_FORWARD@        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
'''

_BUILD = '''
def build_model(@SIGNATURE@) -> ResNet:
    """The network of ``ARCHITECTURE``@PRETRAINED_DOC@."""
    model = ResNet(ARCHITECTURE["slots"], num_classes=num_classes, in_channels=in_channels)
@PRETRAINED_BODY@    return model
'''

_LOAD = '''
def load_weights(model: nn.Module, path: str | Path | None = None) -> nn.Module:
    """Load a state dict (default: ``@WEIGHTS@`` beside this file) with ``strict=True``."""
    path = Path(__file__).with_name("@WEIGHTS@") if path is None else Path(path)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
'''

_MAIN = """
if __name__ == "__main__":
    model = build_model().eval()
    n_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        y = model(torch.randn(1, IN_CHANNELS, *INPUT_SIZE))
    print(f"{n_params:,} parameters; output {tuple(y.shape)}")
"""


def _literal(value: Any) -> str:
    """A JSON value (no null/true/false) as a Python literal."""
    text = json.dumps(value)
    if ast.literal_eval(text) != value:
        raise RuntimeError(f"export: {value!r} is not a plain literal")
    return text


def _arch_literal(arch: Architecture, slot_names: list[str]) -> str:
    data = arch.to_json()
    lines = ["ARCHITECTURE = {", f'    "backbone": {_literal(data["backbone"])},', '    "slots": [']
    for slot, where in zip(data["slots"], slot_names, strict=True):
        lines.append(f"        {_literal(slot)},  # {where}")
    lines.append("    ],")
    lines.append(f'    "num_classes": {_literal(data["num_classes"])},')
    lines.append(f'    "input": {_literal(data["input"])},')
    lines.append("}")
    return "\n".join(lines)


def _fmt_count(n: int | None, unit: str) -> str:
    if n is None:
        return "?"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n:,} {unit} ({n / scale:.3f} {prefix})"
    return f"{n:,} {unit}"


def _docstring(
    arch: Architecture,
    stem: str,
    width: float,
    num_classes: int,
    in_channels: int,
    meta: Mapping[str, Any],
) -> str:
    from attnsearch import __version__

    c, h, w = arch.input
    title = f"{arch.backbone} with attention: {arch.summary()}"
    lines = textwrap.wrap(title, 92, subsequent_indent="    ", break_on_hyphens=False) + [""]
    lines.append("Generated by attnsearch (`attnsearch export`); needs only torch.")
    lines.append("")
    if meta.get("search"):
        where = f"Search {meta['search']!r}, trial {meta.get('trial')}"
        if meta.get("accuracy") is not None:
            where += f": proxy validation accuracy {meta['accuracy']:.4f}"
        lines.append(where)
    lines.append(f"Deploy network ({c}×{h}×{w} input, {arch.num_classes} classes):")
    lines.append(f"    FLOPs  {_fmt_count(meta.get('flops'), 'FLOPs')}")
    lines.append(f"    params {_fmt_count(meta.get('params'), 'parameters')}")
    if stem == "proxy":
        lines.append("")
        lines.append(
            f"This file builds the proxy network as trained in the search: proxy stem (3×3/1 "
            f"conv, no max-pool), width {width:g}, {num_classes} classes, {in_channels} input "
            f"channel(s), {_fmt_count(meta.get('proxy_params'), 'parameters')}."
        )
        lines.append(
            "Inputs are expected normalised as in training (per-channel mean and std of the "
            "dataset)."
        )
        if meta.get("weights"):
            epoch = meta.get("epoch")
            lines.append(
                f"`build_model(pretrained=True)` loads {WEIGHTS_NAME} (the trial's final "
                f"checkpoint{f', epoch {epoch}' if epoch is not None else ''})."
            )
    lines.append("")
    lines.append(f"Exported by attnsearch {__version__}.")
    body = "\n".join(
        part
        for line in lines
        for part in (textwrap.wrap(line, 92, break_on_hyphens=False) if line else [""])
    )
    return f'"""{body}\n"""'


def _slot_names(arch: Architecture) -> list[str]:
    from attnsearch.backbones import slot_infos

    return [f"layer{i.stage}.{i.block}" for i in slot_infos(arch.backbone)]


def generate_code(
    arch: Architecture,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    stem: str = "deploy",
    width: float = 1.0,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """One standalone Python file that builds ``arch`` with torch alone.

    Args:
        arch: the architecture.
        num_classes: classifier outputs (default ``arch.num_classes``).
        in_channels: image channels (default ``arch.input[0]``).
        stem: ``"deploy"`` (ImageNet stem) or ``"proxy"`` (the search's small-image stem).
        width: channel multiplier (the search's proxy width; 1 for the deploy network).
        meta: what the docstring reports: ``flops``, ``params`` (of the deploy network),
            ``proxy_params``, ``accuracy``, ``search``, ``trial``, ``epoch``, and
            ``weights`` (true: ``build_model(pretrained=True)`` loads ``model.pt``).

    Returns:
        The source text; its state-dict keys and shapes equal
        ``build_network(arch, stem=stem, width=width, ...)``'s.
    """
    from attnsearch import modules
    from attnsearch.backbones import BACKBONES, stage_channels

    if stem not in _STEM:
        raise ExportError(f"unknown stem {stem!r}; valid: {', '.join(_STEM)}")
    meta = dict(meta or {})
    bdef = BACKBONES[arch.backbone]
    num_classes = arch.num_classes if num_classes is None else int(num_classes)
    in_channels = arch.input[0] if in_channels is None else int(in_channels)
    planes = stage_channels(width)
    used = {s.type for s in arch.slots if s.type != "none"}
    types = [name for name in modules.REGISTRY if name in used]
    imports, attention = _attention_source(types)
    imports.update({"import torch", "from torch import nn"})
    weights = bool(meta.get("weights"))

    gates = [t for t in types if modules.get(t).kind == "gate"]
    convs = [t for t in types if modules.get(t).kind == "conv"]

    def registry(var: str, names: list[str]) -> str:
        items = [f'"{t}": {modules.get(t).cls.__name__}' for t in names]
        line = f"{var} = {{{', '.join(items)}}}"
        if len(line) <= 100:
            return line
        return f"{var} = {{\n" + "".join(f"    {item},\n" for item in items) + "}"

    block = "Bottleneck" if bdef.block == "bottleneck" else "BasicBlock"
    stem_init, stem_forward = _STEM[stem]
    resnet = (
        _RESNET.replace("@STEM_INIT@", stem_init)
        .replace("@STEM_FORWARD@", stem_forward)
        .replace("@BLOCK@", block)
    )
    if weights:
        build = (
            _BUILD.replace(
                "@SIGNATURE@",
                "\n    num_classes: int = NUM_CLASSES, in_channels: int = IN_CHANNELS, "
                "pretrained: bool = False\n",
            )
            .replace("@PRETRAINED_DOC@", f"; ``pretrained`` loads {WEIGHTS_NAME} beside this file")
            .replace("@PRETRAINED_BODY@", "    if pretrained:\n        load_weights(model)\n")
        )
    else:
        build = (
            _BUILD.replace(
                "@SIGNATURE@", "num_classes: int = NUM_CLASSES, in_channels: int = IN_CHANNELS"
            )
            .replace("@PRETRAINED_DOC@", "")
            .replace("@PRETRAINED_BODY@", "")
        )

    if weights:
        imports.add("from pathlib import Path")
    stdlib = [line for line in _STDLIB_ORDER if line in imports]
    header_imports = ["from __future__ import annotations", ""]
    if stdlib:
        header_imports += [*stdlib, ""]
    header_imports += [line for line in _TORCH_ORDER if line in imports]

    size = arch.input[1:] if stem == "deploy" else (32, 32)
    config = "\n".join(
        [
            "# ---- the network this file builds",
            f'STEM = "{stem}"  # '
            + (
                "ImageNet stem: 7×7/2 conv, BN, ReLU, 3×3/2 max-pool"
                if stem == "deploy"
                else "small-image stem: 3×3/1 conv, BN, ReLU, no max-pool"
            ),
            f"PLANES = {tuple(planes)!r}  # channels of the four stages (width {width:g})",
            f"DEPTHS = {tuple(bdef.depths)!r}  # residual blocks per stage",
            f"NUM_CLASSES = {num_classes}",
            f"IN_CHANNELS = {in_channels}",
            f"INPUT_SIZE = {tuple(size)!r}  # (H, W) of the demo input in __main__",
            "",
            "# The architecture (attnsearch's JSON): one attention choice per residual block.",
            _arch_literal(arch, _slot_names(arch)),
        ]
    )
    registries = "\n".join(
        [
            "# ---- attention types used here, by the architecture's names",
            "# gates: applied after a block's last BN, before the residual add",
            registry("GATES", gates),
            "# convs: replace a block's 3×3 convolution (stride inside)",
            registry("CONVS", convs),
        ]
    )
    parts = ["\n".join(header_imports) + "\n\n" + config]
    if attention:
        parts.append(attention.rstrip("\n"))
    parts += [
        registries,
        "# ---- the ResNet (v1.5: stride on the 3×3 conv, 1×1 conv + BN shortcuts)\n"
        + _HELPERS.strip("\n"),
        (_BOTTLENECK if block == "Bottleneck" else _BASIC).strip("\n"),
        resnet.strip("\n"),
    ]
    if weights:
        parts.append(_LOAD.replace("@WEIGHTS@", WEIGHTS_NAME).strip("\n"))
    parts += [build.strip("\n"), _MAIN.strip("\n")]
    docstring = _docstring(arch, stem, width, num_classes, in_channels, meta)
    return docstring + "\n\n" + "\n\n\n".join(parts) + "\n"


# ---- from a search's results folder -----------------------------------------------------
def _run_dir(results_dir: str | Path, name: str) -> tuple[Path, dict[str, Any]]:
    from attnsearch.results import load_run

    run = load_run(results_dir, name)
    return Path(results_dir) / name, run


def _trial_by_number(study, number: int, name: str):
    import optuna

    trials = study.get_trials(deepcopy=False)
    found = [t for t in trials if t.number == number]
    if not found:
        span = f"0–{max(t.number for t in trials)}" if trials else "none yet"
        raise ExportError(f"search {name!r} has no trial {number} (trials: {span})")
    t = found[0]
    if t.state != optuna.trial.TrialState.COMPLETE:
        raise ExportError(
            f"trial {number} of {name!r} is {t.state.name.lower()}, not trained; "
            "pick a completed trial (see trials.csv)"
        )
    if t.user_attrs.get("invalid"):
        raise ExportError(f"trial {number} of {name!r} was invalid: {t.user_attrs['invalid']}")
    if not t.user_attrs.get("trained"):
        flops = t.user_attrs.get("flops")
        detail = f" ({flops:,} FLOPs)" if isinstance(flops, int) else ""
        raise ExportError(
            f"trial {number} of {name!r} was over the FLOPs budget{detail} and never trained"
        )
    if "architecture" not in t.user_attrs:
        raise ExportError(f"trial {number} of {name!r} has no architecture recorded")
    return t


def _front(run_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    path = run_dir / "pareto.json"
    if path.is_file():
        try:
            members = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise ExportError(f"{path} is corrupted (not readable JSON)") from None
        if not isinstance(members, list) or not all(
            isinstance(m, dict) and {"trial", "accuracy", "flops"} <= set(m) for m in members
        ):
            raise ExportError(f"{path} is corrupted (not a list of front members)")
        return members
    from attnsearch.results import open_study, pareto_members

    return pareto_members(run_dir, open_study(run_dir, run["study_name"]))


def choose_trial(
    results_dir: str | Path,
    name: str,
    *,
    trial: int | None = None,
    best: bool = False,
    max_flops: int | None = None,
) -> dict[str, Any]:
    """The trial to export: ``trial`` by number, or the most accurate front member.

    Returns:
        ``{"name", "run_dir", "run", "trial", "architecture", "accuracy", "flops",
        "tune_trial_id"}``.
    """
    from attnsearch.results import open_study

    if (trial is None) == (not best):
        raise ExportError("give exactly one of --trial N or --best")
    if max_flops is not None and not best:
        raise ExportError("--max-flops goes with --best")
    run_dir, run = _run_dir(results_dir, name)
    if best:
        members = _front(run_dir, run)
        if not members:
            raise ExportError(f"search {name!r} has no trained trial on its Pareto front yet")
        if max_flops is not None:
            members = [m for m in members if int(m["flops"]) <= max_flops]
            if not members:
                from attnsearch.budget import format_flops

                raise ExportError(
                    f"no Pareto-front member of {name!r} has at most {format_flops(max_flops)}"
                )
        pick = max(members, key=lambda m: (float(m["accuracy"]), -int(m["flops"])))
        trial = int(pick["trial"])
    study = open_study(run_dir, run["study_name"])
    t = _trial_by_number(study, int(trial), name)
    return {
        "name": name,
        "run_dir": run_dir,
        "run": run,
        "trial": t.number,
        "architecture": t.user_attrs["architecture"],
        "accuracy": float(t.values[0]) if t.values else None,
        "flops": t.user_attrs.get("flops"),
        "tune_trial_id": t.user_attrs.get("tune_trial_id"),
    }


def _ckpt_index(path: Path) -> int:
    try:
        return int(path.name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return -1


def find_checkpoint(run_dir: str | Path, trial: int, tune_trial_id: str | None) -> Path:
    """The last ``checkpoint_*/state.pt`` of the trial's Tune folder under ``run_dir/tune``.

    The Tune trial folder is the one whose name carries ``tune_trial_id``
    (``trainable_<id>_<n>_...``); failing that, the one whose ``params.json`` has
    ``trial_number == trial``.
    """
    tune_dir = Path(run_dir) / "tune"
    folders = sorted(p for p in tune_dir.glob("*") if p.is_dir()) if tune_dir.is_dir() else []
    matches = []
    if tune_trial_id:
        matches = [p for p in folders if f"_{tune_trial_id}_" in f"{p.name}_"]
    if not matches:
        for p in folders:
            try:
                params = json.loads((p / "params.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(params, dict) and params.get("trial_number") == trial:
                matches.append(p)
    states = [s for p in matches for s in p.glob("checkpoint_*/state.pt")]
    if not states:
        raise ExportError(f"no checkpoint of trial {trial} found under {tune_dir}/")
    return max(states, key=lambda s: (_ckpt_index(s.parent), s.stat().st_mtime))


def _load_state(path: Path) -> tuple[dict, int | None]:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ExportError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), Mapping):
        raise ExportError(f"{path} holds no 'model' state dict")
    state = {k: v.detach().contiguous().clone() for k, v in payload["model"].items()}
    return state, payload.get("epoch")


def _check_state(state: Mapping[str, Any], reference: Mapping[str, Any], where: Path) -> None:
    if set(state) != set(reference):
        extra = sorted(set(state) - set(reference))
        missing = sorted(set(reference) - set(state))
        what = f"unexpected {extra[0]!r}" if extra else f"missing {missing[0]!r}"
        raise ExportError(f"{where} does not match the trial's network ({what})")
    for k, v in reference.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ExportError(
                f"{where} does not match the trial's network ({k}: {tuple(state[k].shape)} "
                f"vs {tuple(v.shape)})"
            )


def _meta_network(arch: Architecture, **kwargs):
    """The network on the meta device: shapes and counts without memory or init cost."""
    import torch

    from attnsearch.backbones import build_network

    with torch.device("meta"):
        return build_network(arch, **kwargs)


def _deploy_meta(arch: Architecture) -> dict[str, Any]:
    from attnsearch.flops.analytic import analytic_flops

    net = _meta_network(arch)
    return {
        "flops": int(analytic_flops(arch)),
        "params": sum(p.numel() for p in net.parameters()),
    }


def _write(path: Path, text: str) -> None:
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name such as model.py")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise ExportError(f"cannot write {path} ({e.strerror or e})") from None


def export_arch(arch: Architecture, output: str | Path) -> dict[str, Any]:
    """Write the deploy network of ``arch`` to ``output``; returns a summary."""
    meta = _deploy_meta(arch)
    _write(Path(output), generate_code(arch, meta=meta))
    return {"output": str(output), "architecture": arch.to_json(), **meta}


def export_run(
    results_dir: str | Path,
    name: str,
    output: str | Path,
    *,
    trial: int | None = None,
    best: bool = False,
    max_flops: int | None = None,
    proxy: bool = False,
    weights: bool = False,
) -> dict[str, Any]:
    """Export a trial of search ``name``: its deploy network, or (``proxy``) the network it
    trained, with (``weights``) the final checkpoint written as ``model.pt`` beside it.

    Returns:
        A summary: ``output``, ``weights`` (path or None), ``trial``, ``accuracy``, ``flops``,
        ``params``, ``architecture``.
    """
    if weights and not proxy:
        raise ExportError("--weights needs --proxy (the weights are the proxy network's)")
    picked = choose_trial(results_dir, name, trial=trial, best=best, max_flops=max_flops)
    arch = Architecture.from_json(picked["architecture"])
    meta: dict[str, Any] = _deploy_meta(arch)
    if isinstance(picked["flops"], int):
        meta["flops"] = picked["flops"]
    meta.update(search=name, trial=picked["trial"], accuracy=picked["accuracy"])
    output = Path(output)
    summary: dict[str, Any] = {
        "output": str(output),
        "weights": None,
        "search": name,
        "trial": picked["trial"],
        "accuracy": picked["accuracy"],
        "architecture": arch.to_json(),
    }
    if not proxy:
        _write(output, generate_code(arch, meta=meta))
        return {**summary, "flops": meta["flops"], "params": meta["params"]}

    run = picked["run"]
    width = float(run.get("width", 1.0))
    ckpt = find_checkpoint(picked["run_dir"], picked["trial"], picked["tune_trial_id"])
    state, epoch = _load_state(ckpt)
    try:
        num_classes = int(state["fc.weight"].shape[0])
        in_channels = int(state["conv1.weight"].shape[1])
    except KeyError:
        raise ExportError(f"{ckpt} holds no ResNet state dict (no fc/conv1 weights)") from None
    kwargs = dict(stem="proxy", width=width, num_classes=num_classes, in_channels=in_channels)
    net = _meta_network(arch, **kwargs)
    _check_state(state, net.state_dict(), ckpt)
    meta.update(proxy_params=sum(p.numel() for p in net.parameters()), weights=weights, epoch=epoch)
    code = generate_code(arch, meta=meta, **kwargs)
    _write(output, code)
    summary.update(
        flops=meta["flops"],
        params=meta["params"],
        proxy_params=meta["proxy_params"],
        num_classes=num_classes,
        in_channels=in_channels,
        width=width,
        checkpoint=str(ckpt),
    )
    if weights:
        import torch

        path = output.with_name(WEIGHTS_NAME)
        try:
            torch.save(state, path)
        except OSError as e:
            raise ExportError(f"cannot write {path} ({e.strerror or e})") from None
        summary["weights"] = str(path)
    return summary
