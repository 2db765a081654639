"""Public checks of the training assignment: students run these while they work.

The student gets a model built from a library spec with weights drawn from the check's generator, its SGD
optimizer (in the same call, so it holds the model's parameters inside the kernel), a DataLoader with an uneven
last batch and the criterion. The reference repeats the run from the same spec, weights and `torch.manual_seed`,
so shuffling and dropout draw the same numbers; parameters and losses must then agree.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from autograder.checks import (CheckSet, Misconception, args_state, as_number, as_numbers, build, changed_keys, exact,
                               failed, first_failure, known_mistakes, layer, model_accuracy, randint, randn,
                               random_state, returned, scalar, spec, state_after_step, tensor_loader)

checks = CheckSet()
RTOL, ATOL = 1e-4, 1e-5

MLP = (layer("Linear", 6, 16), layer("ReLU"), layer("Dropout", 0.25), layer("Linear", 16, 3))
BN_MLP = (layer("Linear", 5, 12), layer("BatchNorm1d", 12), layer("ReLU"), layer("Dropout", 0.3),
          layer("Linear", 12, 4))
PLAIN_MLP = (layer("Linear", 8, 32), layer("ReLU"), layer("Linear", 32, 4))

WEIGHTED = ("With an uneven last batch the mean of the batch losses is not the loss per sample: the small "
            "last batch counts as much as a full one. Add loss.item() * len(x) over the batches and divide by "
            "the number of samples seen.")
EVAL_MODE = ("The model was evaluated in train mode: dropout dropped units and BatchNorm normalised with "
             "(and updated its running statistics from) the validation batches. Call model.eval() before the "
             "loop and run it under torch.no_grad().")


def draw(rng, layers, datasets, seed, training=True):
    """A case's model spec (in train mode if `training`) and inputs, drawn in this order: data sets of random labels
    (n, features, classes), weights, and the seed where it is None."""
    data = [(randn(rng, n, feats), torch.randint(0, classes, (n,), generator=rng)) for n, feats, classes in datasets]
    model_spec = spec(*layers, training=training)
    return model_spec, data, random_state(model_spec, rng), randint(rng, 0, 10_000) if seed is None else seed


def scalar_of(call, value, what, expected, mistakes=(), hint="", rtol=RTOL):
    """A number taken from the student's answer against the reference's, within rtol·|expected| + 1e-7;
    `mistakes`: (label, hint, value) of known wrong answers."""
    return scalar(replace(call, value=value, description=what), expected, rtol=rtol, atol=1e-7, hint=hint,
                  misconceptions=[Misconception(*m) for m in mistakes])


def what_data(x: torch.Tensor, batch_size: int, shuffle: bool = False) -> str:
    last = len(x) % batch_size or batch_size
    return f"{len(x)} samples in batches of {batch_size} (last {last}{', shuffled' if shuffle else ''})"


# ---------------------------------------------------------------------------- train_epoch

def train_epoch_case(st, ref, rng, layers, data, batch_size, *, shuffle=False, lr=0.1, momentum=0.9, seed=None,
                     training=True):
    model_spec, [(x, y)], state, seed = draw(rng, layers, [data], seed, training)
    args = (model_spec, state, x, y, batch_size, shuffle, lr, momentum, seed)
    expected, no_zero = (ref.train_epoch_run(*args, variant, st.device) for variant in ("correct", "no_zero_grad"))
    no_train = None if training else ref.train_epoch_run(*args, "no_train_mode", st.device)
    model = build(model_spec, state)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    what = (f"train_epoch(model in {'train' if training else 'eval'} mode, {what_data(x, batch_size, shuffle)}, "
            f"SGD(lr={lr}, momentum={momentum}))")
    call = st.call("train_epoch", model, tensor_loader(x, y, batch_size, shuffle), nn.CrossEntropyLoss(), optimizer,
                   device=st.device, seed=seed, return_args=True, description=what)
    kind = "the mean loss per sample as a float"
    hint = "Return a Python float: accumulate loss.item() * len(x) and divide by the samples seen."
    problem = returned(call, kind, hint)
    if problem or as_number(call.value) is None:
        return problem or failed(f"{what} returned {call.type}, expected {kind}.", hint)
    wrong = state_after_step(what, args_state(call), expected["state"], state, [
        (no_zero["state"], "gradients accumulate across batches (no zero_grad)", "The gradients were never zeroed, so "
         "every backward() added this batch's gradients to all earlier ones and each step used their sum. Call "
         "optimizer.zero_grad() in every iteration, before loss.backward()."),
        (no_train and no_train["state"], "the model was not put in train mode", "The epoch ran in the mode the model "
         "came in (here: eval mode, so dropout was off). Call model.train() at the start of train_epoch: evaluate() "
         "switches to eval mode, and fit() calls them in turn.")], rtol=RTOL, atol=ATOL,
        unchanged_hint="Per batch: optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step().",
        hint="Per batch, in this order: move x and y to the device, optimizer.zero_grad(), out = model(x), "
             "loss = criterion(out, y), loss.backward(), optimizer.step().")
    verdict = wrong or scalar_of(call, call.value, f"{what}: the parameters match the reference; the returned loss",
                                 expected["loss"], [
        ("loss not weighted by batch size", WEIGHTED, expected["loss_unweighted"]),
        ("divided by the number of batches", "The batch losses were weighted by batch size but divided by the number "
         "of batches. Divide by the number of samples seen.", expected["loss_per_batch_count"])], WEIGHTED)
    if verdict.passed and call.requires_grad:
        return replace(verdict, message=verdict.message + GRAPH_KEPT)
    return verdict


GRAPH_KEPT = (" It came back as a tensor that requires grad, though: `total_loss += loss * len(x)` keeps every "
              "batch's autograd graph alive until the epoch ends (memory grows with the epoch). Add `loss.item() * "
              "len(x)` instead, a Python float.")


@checks.public("train_epoch")
def train_epoch_small(st, ref, rng):
    """An MLP with dropout, 22 samples in batches of 8, 8 and 6, SGD with momentum."""
    return train_epoch_case(st, ref, rng, MLP, (22, 6, 3), 8, seed=11)


# ---------------------------------------------------------------------------- evaluate

def evaluate_case(st, ref, rng, layers, data, batch_size, *, seed=None):
    model_spec, [(x, y)], state, seed = draw(rng, layers, [data], seed)
    args = (model_spec, state, x, y, batch_size, seed)
    expected, in_train_mode = (ref.evaluate_run(*args, variant, st.device) for variant in ("correct", "train_mode"))
    what = f"evaluate(model in train mode, {what_data(x, batch_size)})"
    call = st.call("evaluate", build(model_spec, state), tensor_loader(x, y, batch_size), nn.CrossEntropyLoss(),
                   device=st.device, seed=seed, return_args=True, description=what)
    kind, hint = "a tuple (loss, accuracy) of two floats", "End with `return total_loss / seen, correct / seen`."
    problem, pair = returned(call, kind, hint), as_numbers(call.value, 2)
    if problem or pair is None:
        return problem or failed(f"{what} returned {call.type}, expected {kind}.", hint)
    changed = changed_keys(state, args_state(call))
    if any("running" in k or "num_batches" in k for k in changed):
        return failed(f"{what} changed BatchNorm's running statistics: evaluated in train mode.", EVAL_MODE)
    if changed:
        return failed(f"{what} changed the model's parameters ({', '.join(changed[:3])}).",
                      "Evaluation only measures: no backward(), no optimizer step; run it under torch.no_grad().")
    return first_failure((
        scalar_of(call, pair[0], f"{what}'s loss", expected["loss"], [
            ("evaluated in train mode (dropout was active)", EVAL_MODE, in_train_mode["loss"]),
            ("loss not weighted by batch size", WEIGHTED, expected["loss_unweighted"])]),
        scalar_of(call, pair[1], f"{what}'s accuracy", expected["accuracy"], [
            ("a percentage; expected a fraction in [0, 1]", "Divide the number of correct predictions by the number "
             "of samples, without multiplying by 100.", 100 * expected["accuracy"]),
            ("the mean of the batch accuracies", "Count correct predictions over all batches and divide once by "
             "the number of samples: the last batch is smaller.", expected["accuracy_unweighted"])],
            "The prediction is the class with the largest logit: out.argmax(dim=1).", rtol=1e-6)),
        f"{what} = ({pair[0]:.5f}, {pair[1]:.4f}) matches the reference and left the model unchanged.")


@checks.public("evaluate")
def evaluate_batchnorm_dropout(st, ref, rng):
    """An MLP with BatchNorm1d and Dropout sent in train mode; 21 samples in batches of 8, 8 and 5."""
    return evaluate_case(st, ref, rng, BN_MLP, (21, 5, 4), 8, seed=5)


# ---------------------------------------------------------------------------- EarlyStopping

STOPPING_MISTAKES = (  # label, hint, the reference's variant
    ("counted against the best loss instead of the previous one", "Compare each loss with the PREVIOUS epoch's loss, "
     "not with the best so far: a loss that is lower than the one before resets the count even if it is above the "
     "best.", "best"),
    ("an equal loss was counted as an increase", "Only a strictly larger loss is an increase (loss > previous); an "
     "equal loss resets the count.", "equal_counts"),
    ("the count was not reset after an epoch without increase", "Patience counts CONSECUTIVE increases: set the "
     "counter back to 0 whenever the loss does not increase.", "no_reset"),
    ("it stopped one increase too late", "Return True as soon as the count of consecutive increases reaches patience "
     "(count >= patience).", "off_by_one"),
)


def stopping_answers(value) -> list[bool] | None:
    """step()'s answers (one-element bool tensors as bools) up to the first True; None if one is no bool."""
    out = [bool(v) if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype == torch.bool else v
           for v in (value if isinstance(value, list) else [None])]
    if not all(isinstance(v, bool) for v in out):
        return None
    return out[:out.index(True) + 1] if True in out else out


def early_stopping_case(st, ref, patience: int, losses: list[float]):
    expected = ref.early_stopping_run(patience, tuple(losses))
    sent = [float(v) for v in losses[:len(expected)]]  # nothing after the first True is graded
    mistakes = known_mistakes(STOPPING_MISTAKES, lambda v: ref.early_stopping_run(patience, tuple(sent), v))
    what = f"EarlyStopping({patience}).step() (True = stop) for the losses [{', '.join(f'{v:g}' for v in sent)}]"
    call = st.call("EarlyStopping", patience, then=[("step", (v,), {}) for v in sent], description=what)
    hint = "Return True (stop) or False (go on)."
    problem, got = returned(call, "a list of bools", hint), stopping_answers(call.value)
    if problem or got is None:
        return problem or failed(f"{what} returned {call.value!r}; step() must return a bool each time.", hint)
    return exact(replace(call, value=got), expected, misconceptions=mistakes,
                 hint="Count consecutive epochs whose loss is larger than the previous epoch's; reset the count when "
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
EVALUATE_HINT = ("Each epoch's valid_loss and valid_accuracy are what your evaluate returns on the validation "
                 "loader: check that question's feedback.")
HISTORY_HINTS = {"train_loss": "Each epoch's train_loss is what your train_epoch returns: check that question's "
                               "feedback.", "valid_loss": EVALUATE_HINT, "valid_accuracy": EVALUATE_HINT}


def fit_case(st, ref, rng, layers, sizes, train, valid, *, epochs, patience=None, lr=0.1, momentum=0.9, seed=0):
    """Random labels: the validation loss soon rises. `sizes`: (training, validation) samples; train = (batch_size,
    shuffle), valid = (batch_size,). Batch sizes divide the data and models have no dropout or BatchNorm, so that
    a mistake in train_epoch's or evaluate's averaging or mode is graded there, not again here."""
    model_spec, [(tx, ty), (vx, vy)], state, seed = draw(rng, layers, [(n, 8, 4) for n in sizes], seed)
    args = (model_spec, state, (tx, ty, *train), (vx, vy, *valid), lr, momentum, epochs, patience, seed)
    expected = ref.fit_run(*args, "correct", st.device)
    no_stop = ref.fit_run(*args, "no_early_stop", st.device) if patience is not None else None
    model = build(model_spec, state)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    kwargs = {"device": st.device} if patience is None else {"patience": patience, "device": st.device}
    what = f"fit(..., epochs={epochs}{'' if patience is None else f', patience={patience}'})"
    call = st.call("fit", model, tensor_loader(tx, ty, *train), tensor_loader(vx, vy, *valid), nn.CrossEntropyLoss(),
                   optimizer, epochs, seed=seed, description=what, **kwargs)
    kind = f"a dict with the keys {list(HISTORY)}"
    hint = 'Return {"train_loss": [...], "valid_loss": [...], "valid_accuracy": [...]}.'
    problem, value = returned(call, kind, hint), call.value
    if problem or not isinstance(value, dict) or any(k not in value for k in HISTORY):
        return problem or failed(f"{what} returned {list(value) if isinstance(value, dict) else call.type}; "
                                 f"expected {kind}.", hint)
    history = {k: as_numbers(value[k]) for k in HISTORY}
    for k, values in history.items():
        if values is None:
            return failed(f"{what}: {k} is {value[k]!r}, expected a list of floats, one per epoch.")
    n, want = len(history["valid_loss"]), len(expected["valid_loss"])
    if any(len(v) != n for v in history.values()):
        return failed(f"{what}: the three lists have different lengths "
                      f"({', '.join(f'{k}: {len(v)}' for k, v in history.items())}); expected one entry per epoch run.")
    # the epochs both ran first: a wrong number there explains a wrong stop
    verdict = first_failure((scalar_of(call, history[k][epoch], f"{what}: {k} of epoch {epoch + 1}", expected[k][epoch],
                                       hint=HISTORY_HINTS[k]) for epoch in range(min(n, want)) for k in HISTORY),
                            f"{what} ran {n} epochs and its history matches the reference.")
    if not verdict.passed or n == want:
        return verdict
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


@checks.public("fit")
def fit_three_epochs(st, ref, rng):
    """Three epochs without patience: one history entry per epoch."""
    return fit_case(st, ref, rng, PLAIN_MLP, (64, 32), (16, False), (8,), epochs=3, lr=0.05)


@checks.public("fit")
def fit_early_stop(st, ref, rng):
    """Up to 12 epochs with patience=2: the validation loss rises, fit must stop early."""
    return fit_case(st, ref, rng, PLAIN_MLP, (64, 32), (16, False), (8,), epochs=12, patience=2, lr=0.02, momentum=0.5)


# ---------------------------------------------------------------------------- mnist_model

@checks.public("mnist_model")
def mnist_public_test(st, ref, rng, ctx):
    """Accuracy of mnist_classifier on the 500 public test images (the hidden split counts more)."""
    return model_accuracy(st, ctx, "mnist_classifier", "mnist_model", "public test")
