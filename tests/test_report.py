"""The instructor's report (`report.html`), similar submissions, and progress on the terminal.

Similarity works on notebooks' code, no kernel; the report is written from synthetic records, and once from
the convolution examples graded for real; a headless Chromium renders it where one is installed.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from rich.console import Console

from autograder.checks import Outcome
from autograder.build.notebook import Master
from autograder.report.instructor import REPORT, SIMILARITY_DIR, normalise, write_report
from autograder.report.records import Records
from autograder.report.similarity import answer_code, code_cells, find_similar
from autograder.report.terminal import BatchProgress, print_summary
from autograder.outcomes import QuestionScore, SubmissionResult

REPO = Path(__file__).resolve().parent.parent
MASTER = REPO / "assignments" / "convolution" / "convolution.ipynb"

# Five students who solved conv2d_single and max_pool2d each their own way.
DISTINCT = {
    "ana": ['''
def conv2d_single(image, kernel):
    H, W = image.shape
    kh, kw = kernel.shape
    out = torch.zeros(H - kh + 1, W - kw + 1, dtype=image.dtype)
    for i in range(H - kh + 1):
        for j in range(W - kw + 1):
            out[i, j] = (image[i:i + kh, j:j + kw] * kernel).sum()
    return out
''', '''
def max_pool2d(x, kernel_size, stride=None):
    k = kernel_size
    s = stride or k
    n, c, h, w = x.shape
    rows = (h - k) // s + 1
    cols = (w - k) // s + 1
    result = x.new_empty(n, c, rows, cols)
    for r in range(rows):
        for q in range(cols):
            result[:, :, r, q] = x[:, :, r * s:r * s + k, q * s:q * s + k].amax(dim=(-1, -2))
    return result
'''],
    "ben": ['''
def conv2d_single(image, kernel):
    patches = image.unfold(0, kernel.shape[0], 1).unfold(1, kernel.shape[1], 1)
    return torch.einsum("abij,ij->ab", patches, kernel)
''', '''
def max_pool2d(x, kernel_size, stride=None):
    stride = kernel_size if stride is None else stride
    windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)
    return windows.reshape(*windows.shape[:4], -1).max(-1).values
'''],
    "cho": ['''
def conv2d_single(image, kernel):
    acc = 0
    kh, kw = kernel.shape
    for a in range(kh):
        for b in range(kw):
            acc = acc + kernel[a, b] * image[a:image.shape[0] - kh + 1 + a, b:image.shape[1] - kw + 1 + b]
    return acc
''', '''
import itertools

def max_pool2d(x, kernel_size, stride=None):
    step = stride if stride else kernel_size
    out_h = 1 + (x.shape[2] - kernel_size) // step
    out_w = 1 + (x.shape[3] - kernel_size) // step
    best = None
    for da, db in itertools.product(range(kernel_size), repeat=2):
        view = x[..., da:da + step * out_h:step, db:db + step * out_w:step]
        best = view if best is None else torch.maximum(best, view)
    return best
'''],
    "dev": ['''
import numpy as np

def conv2d_single(image, kernel):
    img, ker = image.detach().cpu().numpy(), kernel.detach().cpu().numpy()
    shape = (img.shape[0] - ker.shape[0] + 1, img.shape[1] - ker.shape[1] + 1) + ker.shape
    strided = np.lib.stride_tricks.as_strided(img, shape, img.strides * 2)
    return torch.from_numpy(np.tensordot(strided, ker, axes=2)).to(image)
''', '''
def max_pool2d(x, kernel_size, stride=None):
    flat = F.unfold(x.reshape(-1, 1, *x.shape[-2:]), kernel_size, stride=stride or kernel_size)
    size = [(d - kernel_size) // (stride or kernel_size) + 1 for d in x.shape[-2:]]
    return flat.max(dim=1).values.reshape(*x.shape[:2], *size)
'''],
    "eli": ['''
def conv2d_single(image, kernel):
    out_rows = []
    for top in range(image.size(0) - kernel.size(0) + 1):
        row = []
        for left in range(image.size(1) - kernel.size(1) + 1):
            window = image.narrow(0, top, kernel.size(0)).narrow(1, left, kernel.size(1))
            row.append(torch.dot(window.flatten(), kernel.flatten()))
        out_rows.append(torch.stack(row))
    return torch.stack(out_rows)
''', '''
def max_pool2d(x, kernel_size, stride=None):
    stride = stride or kernel_size
    positions = range(0, x.size(-1) - kernel_size + 1, stride)
    columns = [x[..., j:j + kernel_size].amax(-1, keepdim=True) for j in positions]
    reduced = torch.cat(columns, -1)
    positions = range(0, x.size(-2) - kernel_size + 1, stride)
    return torch.cat([reduced[..., i:i + kernel_size, :].amax(-2, keepdim=True) for i in positions], -2)
'''],
}

# fay copied ana's answers: variables renamed, comments added, the two functions in the other order.
COPY = ['''
# max pooling: slide a window, keep the biggest value
def max_pool2d(inp, kernel_size, stride=None):
    size = kernel_size
    step = stride or size  # default stride
    batch, chans, height, width = inp.shape
    n_rows = (height - size) // step + 1
    n_cols = (width - size) // step + 1
    pooled = inp.new_empty(batch, chans, n_rows, n_cols)
    for y in range(n_rows):
        for z in range(n_cols):
            pooled[:, :, y, z] = inp[:, :, y * step:y * step + size, z * step:z * step + size].amax(dim=(-1, -2))
    return pooled
''', '''
def conv2d_single(image, kernel):
    # sizes
    rows, cols = image.shape
    krows, kcols = kernel.shape
    res = torch.zeros(rows - krows + 1, cols - kcols + 1, dtype=image.dtype)
    # slide the kernel over the image
    for p in range(rows - krows + 1):
        for t in range(cols - kcols + 1):
            res[p, t] = (image[p:p + krows, t:t + kcols] * kernel).sum()
    return res
''']


def template() -> list[str]:
    return code_cells(Master.read(MASTER).student())


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    """The blank notebook with the student's answers added (template cells stay, as in a real submission)."""
    nb = Master.read(MASTER).student()
    nb.cells += [nbformat.v4.new_code_cell(c.strip()) for c in cells]
    return nb


def test_similarity_finds_the_copied_pair_among_distinct_submissions():
    tmpl = template()
    codes = {name: answer_code(code_cells(notebook(cells)), tmpl) for name, cells in {**DISTINCT, "fay": COPY}.items()}
    assert all("grader.check" not in code for code in codes.values())  # template cells are left out
    start = time.perf_counter()
    similar = find_similar(codes, tmpl)
    seconds = time.perf_counter() - start
    assert [(p.a, p.b) for p in similar.pairs] == [("ana", "fay")], similar.pairs
    pair = similar.pairs[0]
    assert pair.similarity >= 0.8 and min(pair.shares) >= 0.8 and pair.overlap >= 200
    everything = find_similar(codes, tmpl, threshold=0.0, min_overlap=0)
    others = [p.similarity for p in everything.pairs if (p.a, p.b) != ("ana", "fay")]
    assert max(others) < 0.5, everything.pairs  # distinct work stays well below the threshold
    print(f"similarity of {len(codes)} submissions: {seconds:.3f} s; copied pair {pair.similarity:.0%}, "
          f"distinct pairs at most {max(others):.0%}")


def outcome(question: str, check: str, status: str, message: str, hint: str = "", public: bool = True) -> Outcome:
    score = {"passed": 1.0, "partial": 0.5}.get(status, 0.0)
    return Outcome(check, question, public, 1.0, score, message, hint, 0.01, status)


def synthetic_result(name: str, path: Path, conv: float, pool: float, status: str = "ok", seconds: float = 5.0,
                     flags: list | None = None, conv_outcomes: list | None = None) -> SubmissionResult:
    conv_outcomes = conv_outcomes or [outcome("conv2d_single", "conv_random", "passed", "matches F.conv2d")]
    pool_outcomes = [outcome("max_pool2d", "pool_shape", "passed" if pool == 4 else "failed",
                             "shape ok" if pool == 4 else f"shape ({pool:g}, 3, 7) expected (2, 3, 4)",
                             public=False)]
    return SubmissionResult(name, status, [QuestionScore("conv2d_single", conv, 5.0, conv_outcomes),
                                           QuestionScore("max_pool2d", pool, 4.0, pool_outcomes)],
                            path=str(path), execution_time=seconds, cell_time=seconds / 2,
                            flags=flags or [], memory_peak_mb=300.0)


FLIPPED = "your kernel is flipped: that is convolution, not the cross-correlation asked for"


@pytest.fixture
def synthetic_out(tmp_path) -> tuple[Path, Path]:
    """A `--out` with records of six submissions (notebooks on disk), and the blank notebook."""
    out, subs = tmp_path / "grades", tmp_path / "subs"
    subs.mkdir()
    blank = tmp_path / "blank.ipynb"
    nbformat.write(Master.read(MASTER).student(), blank)
    paths = {}
    for name, cells in {**DISTINCT, "fay": COPY}.items():
        paths[name] = subs / f"{name}.ipynb"
        nbformat.write(notebook(cells), paths[name])
    flipped = [outcome("conv2d_single", "conv_random", "failed", f"max |difference| {d} at ({i}, {j})", FLIPPED)
               for d, i, j in ((3.25, 0, 1), (0.5, 2, 2), (12.0, 4, 0))]
    results = [
        synthetic_result("ana", paths["ana"], 5, 4, seconds=4.0),
        synthetic_result("ben", paths["ben"], 0, 4, seconds=7.5, conv_outcomes=[
            flipped[0], outcome("conv2d_single", "conv_edges", "failed", "wrong on edge kernels", FLIPPED)]),
        synthetic_result("cho", paths["cho"], 0, 1, seconds=3.0, conv_outcomes=[flipped[1]]),
        synthetic_result("dev", paths["dev"], 0, 0, status="timeout", seconds=61.0, conv_outcomes=[flipped[2]]),
        synthetic_result("eli", paths["eli"], 5, 2, seconds=2.0,
                         flags=[{"kind": "grader-tampering", "origin": "kernel", "detail": "patched torch.allclose"}]),
        synthetic_result("fay", paths["fay"], 5, 4, seconds=4.5),
    ]
    records = Records(out)
    try:
        for result in results:
            records.add(result, "digest")
    finally:
        records.close()
    return out, blank


def test_the_report_is_written_from_the_records(synthetic_out):
    out, blank = synthetic_out
    path = write_report(out, blank, "convolution")
    assert path == out / REPORT
    text = path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 3  # the total, then each question
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "<code>ok</code></td><td class=n>5<" in text and "<code>timeout</code></td><td class=n>1<" in text
    # the flipped kernel, in three submissions with different numbers and from two checks: one diagnosis, 3
    assert re.search(r"<td class=n>3</td><td><code>conv_random</code>, <code>conv_edges</code><br>"
                     r"<span class='muted'>outcomes: failed 4</span></td><td>" + re.escape(FLIPPED), text)
    # a hidden check's messages differ only in numbers: one group (3, 3 and 1 points: `(#, #, #)` twice)
    assert "pool_shape</code> <span class='tag'>hidden</span>" in text
    assert normalise("shape (1, 3, 7) expected (2, 3, 4)") == "shape (#, #, #) expected (#, #, #)"
    slowest = text[text.index("id='slowest'"):text.index("id='flagged'")]
    order = [slowest.index(f">{n}</a>") for n in ("dev", "ben", "fay", "ana", "cho", "eli")]
    assert order == sorted(order) and "61.0" in slowest
    flagged = text[text.index("id='flagged'"):text.index("id='similar'")]
    assert "Flagged submissions (1)" in flagged and "grader-tampering" in flagged
    assert "patched torch.allclose" in flagged
    similar = text[text.index("id='similar'"):]
    assert "Similar pairs (1)" in similar and "similarity/ana--fay.html" in similar
    page = (out / SIMILARITY_DIR / "ana--fay.html").read_text()
    assert page.count("<mark>") >= 2 and "../instructor/ana.html" in page and "conv2d_single" in page
    assert list((out / SIMILARITY_DIR).iterdir()) == [out / SIMILARITY_DIR / "ana--fay.html"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no Chromium to render the report (Debian: apt-get install chromium)")
def test_the_report_renders_in_a_headless_browser(synthetic_out):
    from matplotlib.image import imread

    out, blank = synthetic_out
    report = write_report(out, blank, "convolution")
    shot = out / "report.png"
    proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,2000",
                           report.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    ink = (pixels[..., :3].mean(axis=-1) < 0.9).mean()
    blue = ((pixels[..., 2] > 0.7) & (pixels[..., 0] < 0.2)).sum()  # the histograms' bars
    assert ink > 0.01 and blue > 500, (ink, blue)
    print(f"screenshot: {shot} ({ink:.1%} of the page inked)")


def results_for_progress() -> list[SubmissionResult]:
    return [SubmissionResult("alice", "ok", [QuestionScore("q", 3.0, 4.0)], execution_time=1.0),
            SubmissionResult("bob", "timeout", [QuestionScore("q", 1.0, 4.0)], "a cell ran past 30 s"),
            SubmissionResult("carol", "ok", [QuestionScore("q", 4.0, 4.0)],
                             flags=[{"kind": "processes", "origin": "kernel", "detail": "left a process"}])]


def test_progress_prints_plain_lines_with_counts_an_eta_and_a_summary():
    out = Console(file=io.StringIO(), width=200, highlight=False, color_system=None)
    ticks = iter([0.0, 0.0, 10.0, 20.0, 30.0])  # start, enter, then a result every 10 s
    with BatchProgress(3, out, clock=lambda: next(ticks)) as progress:
        assert progress.bar is None  # not a terminal: plain lines
        for result in results_for_progress():
            progress(result)
    print_summary(results_for_progress(), 65.0, skipped=2, out=out)
    lines = out.file.getvalue().splitlines()
    assert "alice" in lines[0] and lines[0].endswith("1/3 done, ETA 20s")
    assert "bob" in lines[1] and "timeout: a cell ran past 30 s" in lines[1] and lines[1].endswith("2/3 done, ETA 10s")
    assert "carol" in lines[2] and "flagged: processes" in lines[2] and lines[2].endswith("3/3 done, all done")
    assert lines[3] == ("graded 3 in 1m05s (2 ok, 1 timeout); mean 2.67 / 4; 1 flagged; 2 already graded, skipped")


def test_progress_on_a_terminal_is_a_bar():
    out = Console(file=io.StringIO(), width=120, force_terminal=True, force_interactive=True, color_system=None)
    with BatchProgress(2, out) as progress:
        assert progress.bar is not None
        for result in results_for_progress()[:2]:
            progress(result)
    text = out.file.getvalue()
    assert "alice" in text and "bob" in text and "2/2" in text


@pytest.mark.slow
def test_grading_the_convolution_examples_writes_the_report(builds, capsys):
    """The examples graded for real (shared with other tests); `run_batch` again finds every one graded,
    so it only writes the gradebook and the report, and says so in its summary."""
    from autograder.build.assignment import load_assignment
    from autograder.cli.run_batch import run_batch
    from autograder.config import GradeSettings
    from autograder.cli.demo import example_submissions

    graded = builds.graded_examples("convolution")
    build = builds.build("convolution")
    out = builds.root / "grades" / "convolution"
    submissions = example_submissions(build.autograder_dir, REPO / "assignments" / "convolution")
    run_batch(load_assignment(build.autograder_dir), submissions, out, GradeSettings(jobs=2))
    printed = capsys.readouterr().out
    assert f"skipped {len(graded)} already graded" in printed
    assert "nothing new to grade: the gradebook holds the grades given before" in printed
    assert "no score" not in printed
    text = (out / REPORT).read_text()
    assert len(re.findall(r"src='data:image/png;base64,", text)) == 5  # the total and four questions
    assert f"<code>ok</code></td><td class=n>{len(graded)}<" in text
    diagnoses = text[text.index("id='diagnoses'"):text.index("id='slowest'")]
    assert "flipped" in diagnoses and "does not allow" in diagnoses
    assert all(f">{name}</a>" in text for name in graded)
    similar = text[text.index("id='similar'"):]
    assert "side by side" in similar  # the flawed examples are all the solution, one mistake apart
    assert any((out / SIMILARITY_DIR).glob("*--*.html"))
