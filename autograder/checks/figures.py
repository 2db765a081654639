"""Figures in the feedback: pictures of a submission's answers, drawn while its kernel is still alive.

An assignment declares its figures in `checks/figures.py` (copied into the autograder bundle with the
checks, never into the student bundle):

    figures = FigureSet()

    @figures.figure("fit", "Your loss curves and the reference's, from the same weights and seed")
    def loss_curves(st, ref, ctx, rng):
        call = st.call("fit", ...)
        if not call.ok:
            return None                  # nothing to draw
        fig = new_figure(7, 2.8)
        ...
        return fig                       # a matplotlib Figure (or a Raster: `image_row`)

A figure function takes some of `st`, `ref`, `rng` and `ctx` by name, as a check does (`rng` is seeded from
the figure's name and the public seed). Figures run after every check, on the same kernel, within the
submission's time budget, each within `FIGURE_SECONDS`: a figure that raises, runs out of time or draws a
PNG over `MAX_PNG_BYTES` is left out (the instructor's feedback says why); one that returns None is left out
silently. Figures never change points or status: they get a student side of their own, whose malformed
answers are not flagged (what the student's code does while they run is watched as ever).

Audience: a figure is shown to the student unless declared `audience="instructor"`. A student's figure shows
only what the student may see (the student-visible `ctx.data`, inputs drawn for the figure), never a hidden
input, hidden data or a hidden check's expected value.

Each figure becomes a plain dict in `SubmissionResult.figures` (the records store results as JSON):
`name`, `question`, `title`, `audience`, `png` (base64; empty when not drawn), `error` (why not), `seconds`.
The HTML feedback embeds the PNGs under their question; the text feedback points there. matplotlib is
imported only when a figure is drawn.
"""

from __future__ import annotations

import base64
import functools
import inspect
import io
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..errors import TorchgradeError
from ..kernel.probe import Call, Student
from .core import Context, check_seed, refuse_unknown_parameters

__all__ = ["FigureSet", "Panel", "image_row", "new_figure"]  # what a `checks/figures.py` uses

FIGURE_SECONDS = 30.0  # one figure: its calls into the kernel and its drawing
MAX_PNG_BYTES = 256 * 1024
DPI = 100
AUDIENCES = ("student", "instructor")

FigureFn = Callable[..., Any]  # (st, ref, rng, ctx by name) -> matplotlib Figure | Raster | None


@dataclass(frozen=True)
class FigureSpec:
    name: str
    question: str
    title: str
    fn: FigureFn
    audience: str = "student"


@dataclass
class FigureSet:
    """An assignment's figures, registered explicitly with `@figures.figure(question, title)`."""

    figures: list[FigureSpec] = field(default_factory=list)

    def figure(self, question: str, title: str, audience: str = "student") -> Callable[[FigureFn], FigureFn]:
        def add(fn: FigureFn) -> FigureFn:
            self.add(FigureSpec(fn.__name__, question, title, fn, audience))
            return fn

        return add

    def add(self, spec: FigureSpec) -> None:
        if any(f.name == spec.name for f in self.figures):
            raise TorchgradeError(f"two figures are named {spec.name!r}")
        if spec.audience not in AUDIENCES:
            raise TorchgradeError(f"figure {spec.name!r}: audience {spec.audience!r} is none of {', '.join(AUDIENCES)}")
        refuse_unknown_parameters(spec.fn, f"figure {spec.name!r}")
        self.figures.append(spec)

    def validate(self, question_ids: Iterable[str], where: Path | str | None = None) -> None:
        """Every figure illustrates a question of the configuration."""
        known = set(question_ids)
        stray = sorted(f"{f.name} ({f.question!r})" for f in self.figures if f.question not in known)
        if stray:
            raise TorchgradeError(f"figures registered under questions the configuration does not have: "
                                  f"{', '.join(stray)}; questions are {', '.join(sorted(known))}", where)


def new_figure(width: float, height: float, **kwargs: Any):
    """A matplotlib Figure of `width` × `height` inches (drawn at `DPI`), without pyplot's global state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", **kwargs)


@dataclass(frozen=True)
class Panel:
    """One image of an `image_row`: a 2-D tensor (H, W) shown through a colour map between `vmin` and `vmax`
    (default: its own range), or an RGB tensor (H, W, 3) in [0, 1]; `scale` draws the colour scale to its right."""

    image: Any
    title: str = ""
    cmap: str = "gray"
    vmin: float | None = None
    vmax: float | None = None
    scale: bool = False


@dataclass
class Raster:
    """A picture drawn straight into pixels (`image_row`), without a matplotlib Figure: a PIL image, and the texts
    written on it in order. `png_bytes` encodes it."""

    image: Any  # PIL.Image.Image, RGB
    texts: list[str] = field(default_factory=list)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="png", compress_level=6)
        return buffer.getvalue()


def image_row(panels: Iterable[Panel], height: int = 150, gap: int = 14) -> Raster:
    """Images side by side, each scaled up by whole pixels (no smoothing) to about `height` pixels, titled above,
    drawn straight into one raster (PIL, matplotlib's colour maps and its DejaVu Sans font): no axes, ticks or
    layout engine, so drawing and saving a row costs a few milliseconds, where the same row of matplotlib axes with
    colour bars costs a tenth of a second. Composed in bytes, through each colour map's colours as bytes
    (`colour_bytes`): the pixels matplotlib's own colour map would give, for a fifth of the time."""
    import numpy as np
    from PIL import Image, ImageDraw

    panels = list(panels)
    title_px, label_px, strip_px = 22, 16, 10
    tiles, texts, x = [], [], gap // 2
    for panel in panels:
        data = torch.as_tensor(panel.image).detach().cpu().double()
        if not (data.dim() == 2 or (data.dim() == 3 and data.shape[-1] == 3)) or 0 in data.shape:
            raise ValueError(f"panel {panel.title!r} is of shape {tuple(data.shape)}: image_row draws a 2-D (H, W) "
                             "tensor through its colour map, or an (H, W, 3) RGB one")
        if data.dim() == 2:
            finite = data[torch.isfinite(data)]
            low = float(finite.min()) if panel.vmin is None and finite.numel() else (panel.vmin or 0.0)
            high = float(finite.max()) if panel.vmax is None and finite.numel() else (panel.vmax or 1.0)
            unit = ((data - low) / max(high - low, 1e-12)).nan_to_num(nan=1.0, posinf=1.0, neginf=0.0).clamp(0, 1)
            table = colour_bytes(panel.cmap)
            rgb = table[colour_index(unit.numpy(), len(table))]
        else:
            rgb = to_bytes(data.clamp(0, 1).numpy()[..., :3])
            low, high = 0.0, 1.0
        zoom = max(1, round(height / max(rgb.shape[0], 1)))
        tile = np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1)
        tile = np.pad(tile, ((1, 1), (1, 1), (0, 0)), constant_values=FRAME)  # a frame: a white image shows
        tiles.append((x, tile))
        texts.append((x + tile.shape[1] / 2, panel.title, "center"))
        x += tile.shape[1] + gap // 2
        if panel.scale:
            table = colour_bytes(panel.cmap)
            ramp = table[colour_index(np.linspace(1, 0, tile.shape[0]), len(table))][:, None, :]
            tiles.append((x, np.pad(np.repeat(ramp, strip_px, axis=1), ((1, 1), (1, 1), (0, 0)),
                                    constant_values=FRAME)))
            x += strip_px + 3
            texts += [(x, f"{high:.3g}", "top"), (x, f"{low:.3g}", "bottom")]
            x += 34
        x += gap // 2
    tall = max((t.shape[0] for _, t in tiles), default=height)
    width_px, height_px = x, tall + title_px + label_px // 2
    canvas = np.full((height_px, width_px, 3), 255, dtype=np.uint8)
    for left, tile in tiles:
        canvas[title_px:title_px + tile.shape[0], left:left + tile.shape[1]] = tile
    image = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(image)
    for left, text, where in texts:
        if where == "center":
            draw.text((left, 4), text, fill="black", font=font(12), anchor="mt")
        else:
            draw.text((left, title_px if where == "top" else title_px + tall), text, fill="black", font=font(11),
                      anchor="lt" if where == "top" else "ls")
    return Raster(image, [text for _, text, _ in texts])


FRAME = 153  # the grey of a panel's frame: 0.6 of white, as bytes


def to_bytes(rgb: Any) -> Any:
    """Colours in [0, 1] as bytes, rounded to the nearest."""
    import numpy as np

    return (rgb * 255 + 0.5).astype(np.uint8)


def colour_index(unit: Any, colours: int) -> Any:
    """Each value in [0, 1] as the index of its colour among a colour map's `colours`, as matplotlib picks it."""
    import numpy as np

    return np.clip((np.asarray(unit, dtype=np.float64) * colours).astype(np.intp), 0, colours - 1)


@functools.lru_cache(maxsize=64)
def colour_bytes(cmap: str) -> Any:
    """The colours of matplotlib's colour map `cmap` (256 for most, 10 for `tab10`), as (N, 3) bytes (read-only:
    shared by every row)."""
    import numpy as np
    from matplotlib import colormaps

    colour_map = colormaps[cmap]
    table = to_bytes(colour_map(np.arange(colour_map.N))[:, :3])
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=None)
def font(pixels: int) -> Any:
    """DejaVu Sans, the font matplotlib ships and draws its own text in, at `pixels`; PIL's own where it is missing."""
    import importlib.util

    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf" if spec and spec.origin else None
    try:
        return ImageFont.truetype(str(path), pixels)
    except (OSError, TypeError):
        return ImageFont.load_default(pixels)


def warm_up() -> None:
    """A small `image_row` drawn and encoded (matplotlib's colour maps, PIL and the font loaded), so that the first
    submission's figures do not pay for it. (Not matplotlib's Figure, a fifth of a second more: only an assignment
    whose figures use `new_figure` needs it, and its first figure imports it.)"""
    try:
        png_bytes(image_row([Panel(torch.zeros(2, 2), "0.1", scale=True)], height=4))
    except Exception:  # a figure that cannot be drawn says so when it is drawn
        pass


def png_bytes(fig: Any) -> bytes:
    """A Figure as PNG bytes, through the Agg canvas (a `Raster` encodes itself)."""
    if isinstance(fig, Raster):
        return fig.png()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


class TimedStudent:
    """A student side whose every call ends by `deadline` (time.monotonic()): each call's time limit is the
    smaller of the probe's own and what is left. A call after the deadline is an error, asked of no kernel."""

    def __init__(self, st: Student, deadline: float):
        self.st, self.deadline = st, deadline
        self.probe_timeout = getattr(st, "timeout", None)

    @property
    def device(self) -> str:
        return self.st.device

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def value(self, name: str) -> Call:
        return self._within(name, lambda: self.st.value(name))

    def call(self, target: str, *args: Any, **kwargs: Any) -> Call:
        return self._within(target, lambda: self.st.call(target, *args, **kwargs))

    def _within(self, target: str, ask: Callable[[], Call]) -> Call:
        left = self.deadline - time.monotonic()
        if left <= 0:
            return Call(target, error="the figure's time ran out")
        if self.probe_timeout is None:
            return ask()
        self.st.timeout = min(self.probe_timeout, left)
        try:
            return ask()
        finally:  # the next figure (or anything after) gets the probe's own limit back, not this one's rest
            self.st.timeout = self.probe_timeout


def figure_record(spec: FigureSpec, png: bytes = b"", error: str = "", seconds: float = 0.0) -> dict[str, Any]:
    return {"name": spec.name, "question": spec.question, "title": spec.title, "audience": spec.audience,
            "png": base64.b64encode(png).decode("ascii"), "error": error, "seconds": round(seconds, 3)}


def draw_figure(spec: FigureSpec, st: Student, ref: Any, ctx: Context,
                seconds: float = FIGURE_SECONDS) -> dict[str, Any] | None:
    """One figure, as a record; None when the function had nothing to draw."""
    start = time.monotonic()
    timed = TimedStudent(st, start + seconds)
    rng = torch.Generator().manual_seed(check_seed(f"figure:{spec.name}", ctx.config.seed))
    given = {"st": timed, "ref": ref, "rng": rng, "ctx": ctx}
    fig = None
    try:
        fig = spec.fn(**{name: given[name] for name in inspect.signature(spec.fn).parameters})
        png = png_bytes(fig) if fig is not None else b""
    except Exception as exc:  # a figure never stops grading, nor another figure
        detail = traceback.format_exc(limit=4).strip().splitlines()[-1]
        return figure_record(spec, error=f"{type(exc).__name__}: {str(exc)[:300] or detail}",
                             seconds=time.monotonic() - start)
    finally:
        if fig is not None and hasattr(fig, "clear"):
            fig.clear()
    elapsed = time.monotonic() - start
    if elapsed > seconds or timed.expired:
        return figure_record(spec, error=f"not drawn within {seconds:g} s", seconds=elapsed)
    if fig is None:
        return None
    if len(png) > MAX_PNG_BYTES:
        return figure_record(spec, error=f"its PNG ({len(png) // 1024} KiB) is over {MAX_PNG_BYTES // 1024} KiB",
                             seconds=elapsed)
    return figure_record(spec, png, seconds=elapsed)


def run_figures(figures: Iterable[FigureSpec], st: Student, ref: Any, ctx: Context,
                seconds: float = FIGURE_SECONDS) -> list[dict[str, Any]]:
    """Every figure in turn, each within `seconds`; after one that ran out of time the others are not tried
    (its kernel was interrupted, and each further one could cost as much)."""
    records: list[dict[str, Any]] = []
    out_of_time = False
    for spec in figures:
        if out_of_time:
            records.append(figure_record(spec, error="not tried: an earlier figure ran out of time"))
            continue
        record = draw_figure(spec, st, ref, ctx, seconds)
        if record is not None:
            records.append(record)
            out_of_time = record["error"].startswith("not drawn within")
    return records
