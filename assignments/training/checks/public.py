"""Public checks of the training assignment: students run these while they work.

The grader builds a small model from a spec (the same nested tuples the reference rebuilds
its own copy from), gives it weights drawn from the check's generator, and sends the student
the model, its SGD optimizer (in the same call, so the optimizer still holds the model's
parameters inside the kernel), a DataLoader with an uneven last batch and the criterion. The
reference repeats the run from the same weights after the same `torch.manual_seed(seed)`, so
shuffling and dropout draw the same numbers; parameters and losses must then agree.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from autograder.checks import CheckSet, accuracy, call_problem, failed, passed, randn
from autograder.mnist import read_idx

checks = CheckSet()
RTOL, ATOL = 1e-4, 1e-5

MLP = (("linear", 6, 16), ("relu",), ("dropout", 0.25), ("linear", 16, 3))
BN_MLP = (("linear", 5, 12), ("batchnorm", 12), ("relu",), ("dropout", 0.3), ("linear", 12, 4))
PLAIN_MLP = (("linear", 8, 32), ("relu",), ("linear", 32, 4))

ZERO_GRAD = ("The gradients were never zeroed, so every backward() added this batch's gradients to all "
             "earlier ones and each step used their sum. Call optimizer.zero_grad() in every iteration, "
             "before loss.backward().")
TRAIN_MODE = ("The epoch ran in the mode the model came in (here: eval mode, so dropout was off). Call "
              "model.train() at the start of train_epoch: evaluate() switches to eval mode, and fit() calls "
              "them in turn.")
WEIGHTED = ("With an uneven last batch the mean of the batch losses is not the loss per sample: the small "
            "last batch counts as much as a full one. Add loss.item() * len(x) over the batches and divide by "
            "the number of samples seen.")
PER_BATCHES = ("The batch losses were weighted by batch size but divided by the number of batches. Divide "
               "by the number of samples seen.")
EVAL_MODE = ("The model was evaluated in train mode: dropout dropped units and BatchNorm normalised with "
             "(and updated its running statistics from) the validation batches. Call model.eval() before the "
             "loop and run it under torch.no_grad().")


# ---------------------------------------------------------------------------- grader-side helpers

def build(spec: tuple) -> nn.Sequential:
    """The grader's model for a spec (the reference builds the same layers from the same spec)."""
    layers = {"linear": nn.Linear, "relu": nn.ReLU, "dropout": nn.Dropout, "batchnorm": nn.BatchNorm1d,
              "flatten": nn.Flatten}
    return nn.Sequential(*[layers[kind](*args) for kind, *args in spec])


def init_state(spec: tuple, rng: torch.Generator) -> dict[str, torch.Tensor]:
    """Weights drawn from the check's generator: the same every run, on every machine."""
    state = {}
    for key, value in build(spec).state_dict().items():
        if not value.is_floating_point():
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=rng)
        elif key.endswith("running_mean"):
            state[key] = 0.2 * randn(rng, *value.shape)
        elif value.dim() == 1 and "weight" in key:  # BatchNorm's scale
            state[key] = 1.0 + 0.1 * randn(rng, *value.shape)
        else:
            state[key] = 0.4 * randn(rng, *value.shape)
    return state


def model_from(spec: tuple, state: dict, training: bool = True) -> nn.Sequential:
    model = build(spec)
    model.load_state_dict(state)
    return model.train(training)


def classification_data(rng: torch.Generator, n: int, features: int, classes: int):
    return randn(rng, n, features), torch.randint(0, classes, (n,), generator=rng)


def loader_of(x, y, batch_size: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


def number(v):
    """A student's float, also accepted as a one-element tensor or numpy number; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point():
        return float(v.reshape(()).item())
    if isinstance(v, np.ndarray) and v.size == 1 and np.issubdtype(v.dtype, np.number):
        return float(v.reshape(()))
    return None


def near(a: float, b: float, rtol: float = RTOL) -> bool:
    return abs(a - b) <= rtol * abs(b) + 1e-7


def states_close(actual: dict, expected: dict) -> bool:
    return set(actual) == set(expected) and all(
        actual[k].shape == expected[k].shape
        and torch.allclose(actual[k].double(), expected[k].double(), rtol=RTOL, atol=ATOL) for k in expected)


def state_difference(actual: dict, expected: dict) -> str:
    for k in expected:
        if k not in actual:
            return f"{k} is missing"
        a, e = actual[k].double(), expected[k].double()
        if a.shape != e.shape or not torch.allclose(a, e, rtol=RTOL, atol=ATOL):
            if a.shape != e.shape:
                return f"{k} has shape {tuple(a.shape)}, expected {tuple(e.shape)}"
            return f"{k} differs by up to {float((a - e).abs().max()):.3g}"
    return "they differ"


def what_data(x: torch.Tensor, batch_size: int, shuffle: bool = False) -> str:
    n = len(x)
    last = n % batch_size or batch_size
    return f"{n} samples in batches of {batch_size} (last {last}{', shuffled' if shuffle else ''})"


# ---------------------------------------------------------------------------- train_epoch

def train_epoch_case(st, ref, spec, state, x, y, batch_size, *, shuffle=False, lr=0.1, momentum=0.9, seed=0,
                     training=True):
    args = (spec, state, x, y, batch_size, shuffle, lr, momentum, seed, training)
    expected = ref.train_epoch_run(*args, "correct", st.device)
    no_zero = ref.train_epoch_run(*args, "no_zero_grad", st.device)
    no_train = None if training else ref.train_epoch_run(*args, "no_train_mode", st.device)
    model = model_from(spec, state, training)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    what = (f"train_epoch(model in {'train' if training else 'eval'} mode, {what_data(x, batch_size, shuffle)}, "
            f"SGD(lr={lr}, momentum={momentum}))")
    call = st.call("train_epoch", model, loader_of(x, y, batch_size, shuffle), nn.CrossEntropyLoss(), optimizer,
                   device=st.device, seed=seed, return_args=True, description=what)
    problem = call_problem(call)
    if problem:
        return problem
    loss = number(call.value)
    if loss is None:
        return failed(f"{what} returned {call.type}, expected the mean loss per sample as a float.",
                      "Return a Python float: accumulate loss.item() * len(x) and divide by the samples seen.")
    after = call.args[0].state if call.args and hasattr(call.args[0], "state") else {}
    if not states_close(after, expected["state"]):
        if states_close(after, no_zero["state"]):
            return failed(f"{what}: the parameters after the epoch are wrong: gradients accumulate across "
                          "batches (no zero_grad).", ZERO_GRAD)
        if no_train is not None and states_close(after, no_train["state"]):
            return failed(f"{what}: the parameters after the epoch are wrong: the model was not put in train "
                          "mode.", TRAIN_MODE)
        if states_close(after, state):
            return failed(f"{what} left the parameters unchanged.",
                          "Per batch: optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step().")
        return failed(f"{what}: the parameters after the epoch differ from the reference's "
                      f"({state_difference(after, expected['state'])}).",
                      "Per batch, in this order: move x and y to the device, optimizer.zero_grad(), "
                      "out = model(x), loss = criterion(out, y), loss.backward(), optimizer.step().")
    if near(loss, expected["loss"]):
        return passed(f"{what}: the parameters after the epoch and the returned loss {loss:.5f} match the "
                      "reference.")
    if near(loss, expected["loss_unweighted"]):
        return failed(f"{what} returned {loss:.5f}, the mean of the batch losses; expected the loss per sample "
                      f"{expected['loss']:.5f}: loss not weighted by batch size.", WEIGHTED)
    if near(loss, expected["loss_per_batch_count"]):
        return failed(f"{what} returned {loss:.5f}, expected {expected['loss']:.5f}: divided by the number of "
                      "batches.", PER_BATCHES)
    return failed(f"{what}: the parameters are right but the returned loss is {loss:.5f}, expected "
                  f"{expected['loss']:.5f} (the mean loss per sample over the epoch).", WEIGHTED)


@checks.public("train_epoch")
def train_epoch_small(st, ref, rng):
    """An MLP with dropout, 22 samples in batches of 8, 8 and 6, SGD with momentum."""
    x, y = classification_data(rng, 22, 6, 3)
    return train_epoch_case(st, ref, MLP, init_state(MLP, rng), x, y, 8, seed=11)


# ---------------------------------------------------------------------------- evaluate

def evaluate_case(st, ref, spec, state, x, y, batch_size, *, seed=0, training=True):
    args = (spec, state, x, y, batch_size, seed, training)
    expected = ref.evaluate_run(*args, "correct", st.device)
    in_train_mode = ref.evaluate_run(*args, "train_mode", st.device) if training else None
    model = model_from(spec, state, training)
    what = f"evaluate(model in {'train' if training else 'eval'} mode, {what_data(x, batch_size)})"
    call = st.call("evaluate", model, loader_of(x, y, batch_size), nn.CrossEntropyLoss(), device=st.device,
                   seed=seed, return_args=True, description=what)
    problem = call_problem(call)
    if problem:
        return problem
    value = call.value
    pair = [number(v) for v in value] if isinstance(value, (tuple, list)) and len(value) == 2 else None
    if pair is None or None in pair:
        return failed(f"{what} returned {call.type}, expected a tuple (loss, accuracy) of two floats.",
                      "End with `return total_loss / seen, correct / seen`.")
    loss, acc = pair
    after = call.args[0].state if call.args and hasattr(call.args[0], "state") else {}
    changed = [k for k in state if k not in after or not torch.equal(after[k].cpu(), state[k])]
    if any("running" in k or "num_batches" in k for k in changed):
        return failed(f"{what} changed BatchNorm's running statistics: evaluated in train mode.", EVAL_MODE)
    if changed:
        return failed(f"{what} changed the model's parameters ({', '.join(changed[:3])}).",
                      "Evaluation only measures: no backward(), no optimizer step; run it under torch.no_grad().")
    if near(loss, expected["loss"]) and near(acc, expected["accuracy"], 1e-6):
        return passed(f"{what} = ({loss:.5f}, {acc:.4f}) matches the reference and left the model unchanged.")
    if in_train_mode and near(loss, in_train_mode["loss"]) and not near(loss, expected["loss"]):
        return failed(f"{what} returned loss {loss:.5f}, expected {expected['loss']:.5f}: evaluated in train "
                      "mode (dropout was active).", EVAL_MODE)
    if not near(loss, expected["loss"]):
        if near(loss, expected["loss_unweighted"]):
            return failed(f"{what} returned loss {loss:.5f}, the mean of the batch losses; expected "
                          f"{expected['loss']:.5f}: loss not weighted by batch size.", WEIGHTED)
        return failed(f"{what} returned loss {loss:.5f}, expected {expected['loss']:.5f} (mean loss per sample).")
    if near(acc, 100 * expected["accuracy"], 1e-6):
        return failed(f"{what} returned accuracy {acc:g}: a percentage; expected a fraction "
                      f"{expected['accuracy']:.4f} in [0, 1].", "Divide the number of correct predictions by "
                      "the number of samples, without multiplying by 100.")
    if near(acc, expected["accuracy_unweighted"], 1e-6):
        return failed(f"{what} returned accuracy {acc:.4f}, the mean of the batch accuracies; expected "
                      f"{expected['accuracy']:.4f}.", "Count correct predictions over all batches and divide "
                      "once by the number of samples: the last batch is smaller.")
    return failed(f"{what} returned accuracy {acc:.4f}, expected {expected['accuracy']:.4f}.",
                  "The prediction is the class with the largest logit: out.argmax(dim=1).")


@checks.public("evaluate")
def evaluate_batchnorm_dropout(st, ref, rng):
    """An MLP with BatchNorm1d and Dropout sent in train mode; 21 samples in batches of 8, 8 and 5."""
    x, y = classification_data(rng, 21, 5, 4)
    return evaluate_case(st, ref, BN_MLP, init_state(BN_MLP, rng), x, y, 8, seed=5)


# ---------------------------------------------------------------------------- EarlyStopping

STOPPING_MISTAKES = {
    "best": ("counted against the best loss instead of the previous one",
             "Compare each loss with the PREVIOUS epoch's loss, not with the best so far: a loss that is "
             "lower than the one before resets the count even if it is above the best."),
    "equal_counts": ("an equal loss was counted as an increase",
                     "Only a strictly larger loss is an increase (loss > previous); an equal loss resets the count."),
    "no_reset": ("the count was not reset after an epoch without increase",
                 "Patience counts CONSECUTIVE increases: set the counter back to 0 whenever the loss does not "
                 "increase."),
    "off_by_one": ("it stopped one increase too late",
                   "Return True as soon as the count of consecutive increases reaches patience (count >= patience)."),
}


def stopping_answers(value) -> list[bool] | None:
    out = []
    for v in value if isinstance(value, list) else [None]:
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype == torch.bool:
            v = bool(v)
        if not isinstance(v, bool):
            return None
        out.append(v)
    return out


def until_first_stop(answers: list[bool]) -> list[bool]:
    return answers[:answers.index(True) + 1] if True in answers else answers


def early_stopping_case(st, ref, patience: int, losses: list[float]):
    expected = ref.early_stopping_run(patience, tuple(losses))
    sent = [float(v) for v in losses[:len(expected)]]  # nothing after the first True is graded
    variants = {v: ref.early_stopping_run(patience, tuple(sent), v) for v in STOPPING_MISTAKES}
    shown = ", ".join(f"{v:g}" for v in sent)
    what = f"EarlyStopping({patience}).step() for the losses [{shown}]"
    call = st.call("EarlyStopping", patience, then=[("step", (v,), {}) for v in sent], description=what)
    problem = call_problem(call)
    if problem:
        return problem
    answers = stopping_answers(call.value)
    if answers is None:
        return failed(f"{what} returned {call.value!r}; step() must return a bool each time.",
                      "Return True (stop) or False (go on).")
    got = until_first_stop(answers)
    if got == expected:
        return passed(f"{what} answered {expected} (True = stop).")
    for variant, (label, hint) in STOPPING_MISTAKES.items():
        if got == variants[variant]:
            return failed(f"{what} answered {got}, expected {expected}: {label}.", hint)
    return failed(f"{what} answered {got}, expected {expected} (True = stop).",
                  "Count consecutive epochs whose loss is larger than the previous epoch's; reset the count when "
                  "it is not; return True once the count reaches patience.")


@checks.public("early_stopping")
def early_stopping_previous_not_best(st, ref, rng):
    """patience=2: a loss that drops below the previous one but stays above the best resets the count."""
    return early_stopping_case(st, ref, 2, [1.0, 0.8, 0.9, 0.85, 0.95, 1.0, 1.1])


@checks.public("early_stopping")
def early_stopping_equal(st, ref, rng):
    """patience=1: an equal loss is not an increase."""
    return early_stopping_case(st, ref, 1, [0.5, 0.5, 0.4, 0.6, 0.7])


# ---------------------------------------------------------------------------- fit

HISTORY = ("train_loss", "valid_loss", "valid_accuracy")
HISTORY_HINTS = {
    "train_loss": "Each epoch's train_loss is what your train_epoch returns: check that question's feedback.",
    "valid_loss": "Each epoch's valid_loss and valid_accuracy are what your evaluate returns on the validation "
                  "loader: check that question's feedback.",
    "valid_accuracy": "Each epoch's valid_loss and valid_accuracy are what your evaluate returns on the "
                      "validation loader: check that question's feedback.",
}


def fit_case(st, ref, spec, state, train, valid, *, epochs, patience=None, lr=0.1, momentum=0.9, seed=0):
    """train = (x, y, batch_size, shuffle), valid = (x, y, batch_size); patience=None is left to the default."""
    args = (spec, state, train, valid, lr, momentum, epochs, patience, seed)
    expected = ref.fit_run(*args, "correct", st.device)
    no_stop = ref.fit_run(*args, "no_early_stop", st.device) if patience is not None else None
    model = model_from(spec, state, True)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    kwargs = {"device": st.device} if patience is None else {"patience": patience, "device": st.device}
    what = f"fit(..., epochs={epochs}{'' if patience is None else f', patience={patience}'})"
    call = st.call("fit", model, loader_of(*train), loader_of(*valid), nn.CrossEntropyLoss(), optimizer, epochs,
                   seed=seed, description=what, **kwargs)
    problem = call_problem(call)
    if problem:
        return problem
    value = call.value
    if not isinstance(value, dict) or any(k not in value for k in HISTORY):
        keys = list(value) if isinstance(value, dict) else call.type
        return failed(f"{what} returned {keys}; expected a dict with the keys {list(HISTORY)}.",
                      'Return {"train_loss": [...], "valid_loss": [...], "valid_accuracy": [...]}.')
    history = {k: [number(v) for v in value[k]] if isinstance(value[k], (list, tuple)) else None for k in HISTORY}
    for k, values in history.items():
        if values is None or None in values:
            return failed(f"{what}: {k} is {value[k]!r}, expected a list of floats, one per epoch.")
    n, want = len(history["valid_loss"]), len(expected["valid_loss"])
    if any(len(v) != n for v in history.values()):
        return failed(f"{what}: the three lists have different lengths "
                      f"({', '.join(f'{k}: {len(v)}' for k, v in history.items())}); expected one entry per epoch run.")
    for epoch in range(min(n, want)):  # the epochs both ran first: a wrong number there explains a wrong stop
        for k in HISTORY:
            a, e = history[k][epoch], expected[k][epoch]
            if not near(a, e):
                return failed(f"{what}: {k} of epoch {epoch + 1} is {a:.5f}, expected {e:.5f}.", HISTORY_HINTS[k])
    if n != want:
        if no_stop is not None and n == len(no_stop["valid_loss"]):
            return failed(f"{what} ran all {n} epochs; the validation loss increased for {patience} epochs in a row "
                          f"after epoch {want - patience}, so it should have stopped after epoch {want}: it did "
                          "not stop early.", "Create an EarlyStopping(patience) when patience is given, call "
                          "step(valid_loss) after each epoch's evaluation and break when it returns True.")
        if patience is None:
            return failed(f"{what} ran {n} epochs, expected all {want}: without patience there is no early stop.")
        return failed(f"{what} ran {n} epochs, expected {want}; the validation losses were "
                      f"{[round(v, 4) for v in expected['valid_loss']]}.",
                      "Stop right after the epoch whose step(valid_loss) returned True (that epoch is recorded); "
                      "EarlyStopping compares each loss with the previous epoch's.")
    return passed(f"{what} ran {n} epochs and its history matches the reference.")


def fit_data(rng, n_train=64, n_valid=32, features=8, classes=4):
    """Random labels: nothing to learn, so the validation loss soon rises and early stopping triggers.
    The checks of fit use batch sizes that divide the data and models without dropout or BatchNorm, so
    that a mistake inside train_epoch's or evaluate's averaging or mode is graded there, not again here."""
    return classification_data(rng, n_train, features, classes), classification_data(rng, n_valid, features, classes)


@checks.public("fit")
def fit_three_epochs(st, ref, rng):
    """Three epochs without patience: one history entry per epoch."""
    (tx, ty), (vx, vy) = fit_data(rng)
    return fit_case(st, ref, PLAIN_MLP, init_state(PLAIN_MLP, rng), (tx, ty, 16, False), (vx, vy, 8), epochs=3,
                    lr=0.05)


@checks.public("fit")
def fit_early_stop(st, ref, rng):
    """Up to 12 epochs with patience=2: the validation loss rises, fit must stop early."""
    (tx, ty), (vx, vy) = fit_data(rng)
    return fit_case(st, ref, PLAIN_MLP, init_state(PLAIN_MLP, rng), (tx, ty, 16, False), (vx, vy, 8), epochs=12,
                    patience=2, lr=0.02, momentum=0.5)


# ---------------------------------------------------------------------------- mnist_model

def mnist_split(data, prefix: str):
    raw = data / "MNIST" / "raw"
    images = torch.from_numpy(read_idx(raw / f"{prefix}-images-idx3-ubyte")).unsqueeze(1).float().div(255)
    labels = torch.from_numpy(read_idx(raw / f"{prefix}-labels-idx1-ubyte")).long()
    return images, labels


@checks.public("mnist_model")
def mnist_public_test(st, ref, rng, ctx):
    """Accuracy of mnist_classifier on the 500 public test images (the hidden split counts more)."""
    images, labels = mnist_split(ctx.data, "t10k")
    call = st.call("mnist_classifier", images, no_grad=True, eval_mode=True, on_model_device=True)
    return accuracy(call, labels, ctx.threshold("mnist_model"), split="public test")
