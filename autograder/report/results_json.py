"""A submission's result in Gradescope's `results.json` shape, as the student may see it.

One test per check. The points of a question are shared among its counted checks in proportion to their
weights, rounded so that they add up to the question's points exactly (`outcomes.shares`); a check the grader
could not run is a test worth nothing (`max_score` 0) that says so, as the policy leaves it out. `score` is
the total; `extra_data.final` says whether it is the grade yet (no question pending, the grader did not fail).
"""

from __future__ import annotations

from ..config import AssignmentConfig
from ..outcomes import SubmissionResult, shares
from ..render import outcome_lines


def gradescope_json(result: SubmissionResult, config: AssignmentConfig) -> dict:
    """Gradescope's results.json shape, one test per check, in the student's view: public tests visible,
    hidden ones as `hidden_visibility` says. torchgrade's own fields sit under `extra_data`."""
    tests = []
    for q in result.questions:
        counted = [o for o in q.outcomes if o.counted]
        share = dict(zip((o.check for o in counted), shares(q.max_points, [o.weight for o in counted])))
        for o in q.outcomes:
            most = share.get(o.check, 0.0)
            tests.append({
                "name": f"{q.id} / {o.check}",
                "score": round(most * o.score, 4) if o.counted else 0.0,
                "max_score": most,
                "status": "passed" if o.status == "passed" else "failed",
                "output": "\n".join(outcome_lines(o, "student")),
                "visibility": "visible" if o.public else config.hidden_visibility,
            })
        if not q.outcomes:
            graded = "graded by your instructor" if q.overridden else ("to be graded by your instructor" if q.manual
                                                                       else result.message or "not graded")
            tests.append({"name": q.id, "score": 0.0 if q.pending else q.points, "max_score": q.max_points,
                          "status": "passed" if q.overridden and q.points >= q.max_points else "failed",
                          "output": graded, "visibility": "visible"})
    return {
        "score": result.total,
        "execution_time": round(result.execution_time, 2),
        "output": status_line(result),
        "tests": tests,
        "extra_data": {
            "submission": result.submission,
            "status": result.status,
            "message": result.message,
            "questions": {q.id: (None if q.pending else q.points) for q in result.questions},
            "max_total": result.max_total,
            "final": result.final,
            "needs_review": result.needs_review,
            "pending": [q.id for q in result.questions if q.pending],
            "phase": result.phase,
            "isolation": result.isolation,
            "cell_time": round(result.cell_time, 2),
            "cell_errors": result.cell_errors,
            "device": result.device,
            "flags": result.flags,
            "memory_peak_mb": result.memory_peak_mb,
            "restarts": result.restarts,
            "raw_total": result.raw_total,
            "adjustments": [{k: a[k] for k in ("id", "question", "points", "reason", "kind", "was")}
                            for a in result.adjustments if a.get("applied", True)],
            "lateness": result.lateness,
        },
    }


def status_line(result: SubmissionResult) -> str:
    text = f"{result.submission}: {result.total:g} / {result.max_total:g} points, status {result.status}"
    if result.ungraded:
        text += " (not a grade: the grader failed on this notebook; your instructor will grade it again)"
    elif not result.final:
        pending = ", ".join(q.id for q in result.questions if q.pending)
        what = f"{pending} pending" if pending else "a check the grader could not run is left out"
        text += f" (not final: {what} until your instructor has looked at it)"
    return f"{text} ({result.message})" if result.message else text
