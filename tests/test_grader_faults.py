"""A grade depends on the notebook alone: not on the batch's order, the grader's faults or an oversized answer.

Kernel tests (slow) run real sandboxes; the rest exercise the execution layer with stand-ins.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import SimpleNamespace

import nbformat
import pytest

from autograder.build.assignment import load_assignment
from autograder.build.selfcheck import Grader
from autograder.checks import Check, Context, run_check
from autograder.checks.figures import TimedStudent
from autograder.config import AssignmentConfig, GradeSettings, Limits, Question
from autograder.grading.pipeline import stop_message, stop_phase
from autograder.cli.run_batch import grade_into
from autograder.kernel.execute import ExecutionReport, execute_notebook
from autograder.kernel.integrity import IntegrityChannel
from autograder.kernel.isolation import bwrap_unavailable
from autograder.kernel.probe import KernelStudent
from autograder.kernel.frames import AnswerTooLarge, recv_frame
from autograder.kernel.session import ProbeAnswer, Session
from autograder.kernel.spec import GRADING_ENV, KernelSpec, kernel_env
from conftest import cell_index_defining

needs_sandbox = pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox: {bwrap_unavailable()}")
CONFIG = AssignmentConfig(name="t", title="t", notebook="t.ipynb", questions=[Question("q", 4.0)])


class Unpicklable:  # defined here: a kernel cannot import this test module, so it cannot unpickle one
    pass


# ----------------------------------------------------------------------------- without kernels

def test_an_answer_over_the_limit_is_drained_and_the_channel_stays_in_step():
    grader, kernel = socket.socketpair()
    head = b'{"id": "1", "status": "ok"}'
    big = b"x" * (3 << 20)
    frames = struct.pack("!II", len(head), len(big)) + head + big + struct.pack("!II", len(head), 2) + head + b"ok"
    threading.Thread(target=kernel.sendall, args=(frames,), daemon=True).start()  # more than a socket buffer holds
    with pytest.raises(AnswerTooLarge, match="3 MiB, over the 1 MiB limit"):
        recv_frame(grader, time.monotonic() + 10, limit=1 << 20)
    assert recv_frame(grader, time.monotonic() + 10, limit=1 << 20) == ({"id": "1", "status": "ok"}, b"ok")


def test_a_probe_failure_is_the_graders_error_not_the_students_failure():
    session = SimpleNamespace(probe=lambda request, guarded, timeout: ProbeAnswer("error", b""))
    st = KernelStudent(session, 5)
    check = Check("small", "q", lambda st: pytest.fail("unreachable") if st.call("f").ok else None, True)
    outcome = run_check(check, st, None, 0, Context(CONFIG))
    assert (outcome.status, outcome.phase) == ("error", "probe")
    assert "asking the kernel for f failed" in outcome.message


def test_after_a_failed_replay_later_checks_say_so_and_the_result_says_why():
    broken = "a call did not finish within 5 s and did not stop when interrupted; replaying cell 3 (x = slow()) " \
             "in a fresh kernel failed (timeout)"
    session = SimpleNamespace(probe=lambda request, guarded, timeout: ProbeAnswer("broken", message=broken),
                              broken=broken)
    call = KernelStudent(session, 5).call("conv2d", 1)
    assert call.error == f"not checked: {broken}"
    assert "checks after that were not run" in stop_message(ExecutionReport(), session)
    assert stop_phase(ExecutionReport(), session) == "probe"
    assert stop_phase(ExecutionReport(status="timeout"), SimpleNamespace(broken=None)) == "execute"


def test_each_figure_gets_the_probes_own_time_limit_back():
    class Student:
        device, timeout = "cpu", 30.0

        def call(self, target, *args, **kwargs):
            self.seen = self.timeout
            return SimpleNamespace(ok=True)

    st = Student()
    for _ in range(3):  # three figures in a row, each with 10 s left
        TimedStudent(st, time.monotonic() + 10).call("f")
        assert st.seen <= 10 and st.timeout == 30.0


def test_the_self_check_is_a_no_op_in_a_grading_kernel(monkeypatch, tmp_path):
    spec = KernelSpec(limits=Limits(), threads=1, device="cpu", seed=0)
    assert kernel_env(spec, "/work", "/tmp")[GRADING_ENV] == "1"
    monkeypatch.setenv(GRADING_ENV, "1")
    grader = Grader(tmp_path)  # no .torchgrade folder here: in grading nothing is loaded at all
    assert "skipped while grading" in repr(grader.check("conv2d")) and "skipped" in repr(grader.check_all())


def test_a_kernel_without_a_system_call_filter_says_so_in_its_results():
    channel = IntegrityChannel()
    import os
    os.write(channel.write_fd, b"N no system call filter: libseccomp is not installed\n")
    channel.close()
    assert channel.warnings() == ["no system call filter: libseccomp is not installed"]
    session = SimpleNamespace(spec=SimpleNamespace(isolation="bwrap"), warnings=channel.warnings())
    assert Session.isolation_text.fget(session) == "bwrap (no system call filter: libseccomp is not installed)"


def test_a_check_that_raised_on_import_is_not_kept_half_loaded_and_edits_are_reloaded(tmp_path):
    from autograder.build.assignment import load_module

    module = tmp_path / "ref.py"
    module.write_text("VALUE = 0\nraise RuntimeError('half written')\n")
    for _ in range(2):  # raised twice: the half-initialised module was not kept for the second load
        with pytest.raises(RuntimeError):
            load_module(module, "reference_t")
    module.write_text("VALUE = 1\n")
    assert load_module(module, "reference_t").VALUE == 1  # not the half-initialised module of the first try
    time.sleep(0.01)
    module.write_text("VALUE = 2\n# edited\n")
    assert load_module(module, "reference_t").VALUE == 2  # an edited file is read again in a long-lived process


# ----------------------------------------------------------------------------- in kernels

def kernel_notebook(tmp_path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "sub.ipynb"
    nbformat.write(nb, path)
    return path, nb


@pytest.mark.slow
@needs_sandbox
def test_an_oversized_answer_fails_its_own_call_without_a_restart(tmp_path):
    path, nb = kernel_notebook(tmp_path, "import torch\ndef big():\n    return torch.zeros(1 << 20)\n"
                                         "def small():\n    return torch.ones(2)")
    spec = KernelSpec(limits=Limits(cell_timeout=30, notebook_timeout=60), threads=1, device="cpu", seed=1)
    with Session(path, None, spec) as session:
        session.answer_limit = 1 << 20  # 1 MiB; big() returns 4 MiB
        assert execute_notebook(session, nb).status == "ok"
        st = KernelStudent(session, 20)
        call = st.call("big")
        assert "over the 1 MiB limit" in call.error and session.restarts == 0
        assert st.call("small").value.tolist() == [1.0, 1.0]  # the same kernel goes on answering


@pytest.mark.slow
@needs_sandbox
def test_a_value_shared_a_billion_times_over_is_refused_at_once_as_the_students_answer(tmp_path):
    """A list of a thousand references to a list of a thousand references to a list of a thousand zeros is a few
    kilobytes in the kernel and a billion values as an answer: refused as soon as it is over the million an
    answer may hold (not walked until the probe's time runs out), as the answer to its own question; not a
    malformed answer, not the grader's fault, and the kernel goes on answering."""
    path, nb = kernel_notebook(tmp_path, "rows = [[[0] * 1000] * 1000] * 1000\ndef history():\n    return rows\n"
                                         "wide = {str(i): [i, i] for i in range(400_000)}\nsmall = [1, 2]")
    spec = KernelSpec(limits=Limits(cell_timeout=30, notebook_timeout=60), threads=1, device="cpu", seed=1)
    with Session(path, None, spec) as session:
        assert execute_notebook(session, nb).status == "ok"
        st = KernelStudent(session, 20)
        start = time.monotonic()
        for ask in (lambda: st.value("rows"), lambda: st.call("history"), lambda: st.value("wide")):
            answer = ask()
            assert answer.error and "over what one answer may carry" in answer.error, answer.error
        assert time.monotonic() - start < 10 and session.restarts == 0 and not st.malformed
        assert st.value("small").value == [1, 2]


@pytest.mark.slow
@needs_sandbox
def test_a_value_whose_own_code_raises_as_it_is_read_is_the_students_answer_not_a_grader_fault(tmp_path):
    """Student code that runs while the answer is read (a list subclass's `__iter__`, a dict's `items`, a tensor
    subclass's property) and raises makes the value unreadable: the student's answer to that question, not a fault
    of the grader (which would flag the submission and bill nobody); the kernel goes on answering."""
    path, nb = kernel_notebook(tmp_path, (
        "class Rows(list):\n    def __iter__(self):\n        raise ValueError('rows are private')\n"
        "class Table(dict):\n    def items(self):\n        raise RuntimeError('no items')\n"
        "def history():\n    return Rows([1, 2])\ntable = Table(a=1)\nsmall = [1, 2]\nimport torch\n"
        "class Odd(torch.Tensor):\n    @property\n    def requires_grad(self):\n        raise RuntimeError('no')\n"
        "odd = torch.ones(2).as_subclass(Odd)"))
    spec = KernelSpec(limits=Limits(cell_timeout=30, notebook_timeout=60), threads=1, device="cpu", seed=1)
    with Session(path, None, spec) as session:
        assert execute_notebook(session, nb).status == "ok"
        st = KernelStudent(session, 20)
        for ask, why in ((lambda: st.call("history"), "ValueError: rows are private"),
                         (lambda: st.value("table"), "RuntimeError: no items")):
            answer = ask()  # a ProbeFault (the grader's failure) before
            assert answer.error and "could not be read" in answer.error and why in answer.error, answer.error
        odd = st.value("odd")  # its property raises wherever it is read: an opaque value, and no fault either
        assert odd.error is None and not odd.requires_grad
        assert session.restarts == 0 and not st.malformed and st.value("small").value == [1, 2]


@pytest.mark.slow
@needs_sandbox
def test_a_request_the_kernel_cannot_read_is_a_probe_error(tmp_path):
    path, nb = kernel_notebook(tmp_path, "def f(x):\n    return 1")
    spec = KernelSpec(limits=Limits(cell_timeout=30, notebook_timeout=60), threads=1, device="cpu", seed=1)
    with Session(path, None, spec) as session:
        execute_notebook(session, nb)
        st = KernelStudent(session, 20)
        check = Check("arg", "q", lambda st: None if st.call("f", Unpicklable()) else None, True)
        outcome = run_check(check, st, None, 0, Context(CONFIG))
    assert (outcome.status, outcome.phase) == ("error", "probe"), outcome.message
    assert "request could not be read" in outcome.message


@pytest.mark.slow
@needs_sandbox
def test_a_correct_notebook_after_a_slow_one_keeps_full_marks(convolution_build, tmp_path):
    """The budget's clock starts when a kernel is attached, not when the next sandbox is prepared ahead."""
    bundle = load_assignment(convolution_build.autograder_dir)
    solution = convolution_build.autograder_dir / "solution.ipynb"
    slow = nbformat.read(solution, as_version=4)
    slow.cells[cell_index_defining(slow, "conv2d_single")].source = (
        "import time\ndef conv2d_single(image, kernel):\n    time.sleep(1000)")
    (tmp_path / "in").mkdir()
    nbformat.write(slow, tmp_path / "in" / "a_slow.ipynb")
    (tmp_path / "in" / "b_correct.ipynb").write_bytes(solution.read_bytes())
    settings = GradeSettings(jobs=1, timeout=12, figures=False, force=True)
    report = grade_into(bundle, sorted((tmp_path / "in").glob("*.ipynb")), tmp_path / "out", settings)
    got = {r.submission: r for r in report.graded}
    assert got["a_slow"].execution_time >= 12  # it used its budget up
    correct = got["b_correct"]
    assert (correct.status, correct.total) == ("ok", correct.max_total), correct.message


@pytest.mark.slow
def test_a_failed_assign_leaves_no_complete_looking_build_behind(tmp_path):
    from autograder.build.scaffold import scaffold
    from autograder.errors import BuildError
    from autograder.grading.proof import assign

    source = scaffold("leaky", tmp_path / "src")
    out = tmp_path / "dist" / "leaky"
    first = assign(source, out, GradeSettings(isolation="none"))  # a good build first
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    master = source / "leaky.ipynb"
    nb = nbformat.read(master, as_version=4)
    for cell in nb.cells:  # the model answer's markers removed: the answer ships in the student's notebook
        if cell.cell_type == "code":
            cell.source = "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)
    nbformat.write(nb, master)
    with pytest.raises(BuildError):
        assign(source, out, GradeSettings(isolation="none"))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the proven build is untouched
    assert not [p for p in out.parent.iterdir() if p.name != "leaky"]  # no staging folder left behind
    assert first.student_dir == out / "student"
    with pytest.raises(BuildError):
        assign(source, tmp_path / "fresh", GradeSettings(isolation="none"))
    assert not (tmp_path / "fresh" / "student").exists() and not (tmp_path / "fresh" / "autograder").exists()


def test_student_figures_are_drawn_before_any_check_and_on_time_of_their_own(monkeypatch, tmp_path):
    """A function that remembers a hidden check's input cannot hand it to a student's figure: there is none yet."""
    from autograder.checks.figures import FigureSet
    from autograder.grading import pipeline
    from autograder.outcomes import Budget

    order = []
    figures = FigureSet()

    @figures.figure("q", "for the student")
    def student_figure(st):
        order.append("student figure")

    @figures.figure("q", "for the instructor", audience="instructor")
    def instructor_figure(st):
        order.append("instructor figure")

    class FakeSession:
        broken, findings, warnings, restarts, memory_peak = None, [], [], 0, 0
        budget = Budget(100.0)
        isolation_text = "none"

        def __init__(self, *args):
            pass

        def __enter__(self):
            self.budget.start()
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(pipeline, "Session", FakeSession)
    monkeypatch.setattr(pipeline, "execute_notebook", lambda session, nb: ExecutionReport())
    monkeypatch.setattr(pipeline, "run_figures", lambda specs, st, ref, ctx: [f.fn(st) or {} for f in specs])
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    assignment = SimpleNamespace(config=CONFIG, student_files=None, hidden=None, figures=figures, reference=None,
                                 checks=SimpleNamespace(checks=[]))
    prober = lambda st, ctx: order.append("checks") or []  # noqa: E731
    pipeline.grade_submission(path, assignment, GradeSettings(isolation="none"), prober)
    assert order == ["student figure", "checks", "instructor figure"]

    budget = Budget(10.0)
    budget.start()
    with budget.paused():
        time.sleep(0.2)
    assert budget.left() > 9.9  # a figure's time is not the checks'
