"""Public checks of the classify assignment: students run these while they work.

Networks sent to student functions are built here from weights drawn from the check's seeded
generator; the reference receives the same weights as a tuple of tensors and computes the expected
values with torch's functional operators (see reference/classify.py), so these checks replay in a
student's self-check. The trained models are scored on the public test split, read from the
student-visible data folder.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import nn

from autograder.checks import (CheckSet, Forbid, Misconception, ModuleSnapshot, Verdict, accuracy, close, difference,
                               failed, mnist_split, module_snapshot, on_device, passed, randn, returned,
                               scalar, signature, state_unchanged)

checks = CheckSet()

# aten operators a convolution ends up in, whichever layer or function called it
CONV_OPS = Forbid(ops=("convolution", "conv1d", "conv2d", "conv3d", "conv_depthwise", "conv_tbc",
                       "conv_transpose", "slow_conv"))
ERROR_TOL = 1e-6

TRAIN_MODE = ("Call model.eval() before predicting (and predict under torch.no_grad()). In train mode "
              "BatchNorm normalises each batch with that batch's own mean and variance, and Dropout "
              "switches units off at random, so a sample's label depends on the batch it is in. The "
              "grader's model has a BatchNorm layer and arrives in train mode.")
LABELS = ("The label of a sample is the index of its most activated output: model(batch).argmax(dim=1), "
          "with the model in eval mode.")
ACCURACY = "The error is the fraction of WRONG labels: (y_pred != y_true).float().mean(), i.e. 1 - accuracy."
COUNT = "Divide the number of wrong labels by the number of samples, so the error lies in [0, 1]."
ERROR = "The error is the number of samples with y_pred != y_true divided by the number of samples."
TRANSPOSED = ("Rows are the true classes and columns the predicted ones: entry [t, p] counts the samples of "
              "true class t that the model labelled p, so matrix[y_true[i], y_pred[i]] += 1 and row t sums "
              "to the number of samples of class t.")
HOOKS_LEFT = ("Keep the handle that each register_forward_hook returns and call handle.remove() after the "
              "forward pass (in a `finally:` block, so it also happens when the forward raises). A hook left "
              "behind runs on every later forward pass and keeps its outputs alive.")
LATE_BINDING = ("Only the last name got a value: every hook writes under the same key. A function defined in "
                "a loop sees the loop variable's final value; bind the name when you make the hook (a "
                "get_activation(name) factory as in the lecture, or `def hook(m, i, o, name=name)`).")
INPUT_CAPTURED = ("A forward hook is called as hook(module, input, output); `input` is the tuple of the "
                  "layer's inputs. Store `output`.")
MLP_CONV = ("An MLP is built from fully connected nn.Linear layers (plus activations, Dropout, normalisation "
            "and Flatten): its first layer sees all 784 pixels at once. Convolutions belong in `cnn`; "
            "comparing the two is the point of this exercise.")
NO_CONV = ("A CNN extracts features with convolution layers (nn.Conv2d, followed by ReLU and MaxPool2d) "
           "before a small fully connected head.")
SMALLER = ("Weight sharing keeps convolutions small: a Conv2d has out·in·k·k + out parameters whatever the "
           "image size. Most of a CNN's parameters usually sit in the first Linear layer after Flatten: pool "
           "more, or use fewer channels, before flattening.")


# --------------------------------------------------------------------------------- predict

def classifier_weights(rng: torch.Generator, features: int, hidden: int, classes: int) -> tuple[torch.Tensor, ...]:
    """Weights of the probe classifier, with running statistics far from any batch's own."""
    return (randn(rng, hidden, features) / features**0.5, 0.1 * randn(rng, hidden),
            1 + 0.2 * randn(rng, hidden), 0.2 * randn(rng, hidden),
            randn(rng, hidden), torch.rand(hidden, generator=rng) + 0.5,
            randn(rng, classes, hidden) / hidden**0.5, 0.1 * randn(rng, classes))


def probe_classifier(weights: Sequence[torch.Tensor]) -> nn.Sequential:
    """Flatten → Linear → BatchNorm1d → ReLU → Linear, in train mode (as nn.Module builds it)."""
    w1, b1, bn_w, bn_b, mean, var, w2, b2 = weights
    with torch.random.fork_rng(devices=[]):  # layer initialisation must not move the caller's RNG
        model = nn.Sequential(nn.Flatten(), nn.Linear(w1.shape[1], w1.shape[0]), nn.BatchNorm1d(w1.shape[0]),
                              nn.ReLU(), nn.Linear(w2.shape[1], w2.shape[0]))
    model.load_state_dict({"1.weight": w1, "1.bias": b1, "2.weight": bn_w, "2.bias": bn_b,
                           "2.running_mean": mean, "2.running_var": var,
                           "2.num_batches_tracked": torch.tensor(0), "4.weight": w2, "4.bias": b2})
    return model


def predict_case(st, ref, weights: tuple[torch.Tensor, ...], images: torch.Tensor, kwargs: dict[str, Any]) -> Verdict:
    """`kwargs` go to the student as given, so the default batch size gets exercised too."""
    expected = ref.predict(weights, images)
    in_train_mode = [ref.train_mode_predict(weights, images, kwargs.get("batch_size", 256)),
                     ref.train_mode_predict(weights, images)]
    model = probe_classifier(weights)
    call = st.call("predict", model, images, description=signature("predict", model, images, **kwargs), **kwargs)
    if call.error and "when training" in call.error:  # BatchNorm in train mode refuses a batch of one image
        return failed(f"{call.what} raised {call.error}: the model is still in train mode.", TRAIN_MODE)
    problem = returned(call, "a tensor of labels") or on_device(call, st.device)
    if problem:
        return problem
    got, n = call.value, len(expected)
    if not isinstance(got, torch.Tensor):
        return failed(f"{call.what} returned {call.type}, expected a tensor of {n} labels.",
                      "Collect the labels of each batch and join them with torch.cat.")
    if got.dim() == 2 and got.shape[0] == n:
        return failed(f"{call.what} returned shape {tuple(got.shape)}: a score for every class, not labels.", LABELS)
    if got.shape != expected.shape:
        return failed(f"{call.what} returned shape {tuple(got.shape)}, expected ({n},): one label per image.")
    if got.dtype != torch.int64:
        return failed(f"{call.what} returned dtype {got.dtype}, expected torch.int64 labels.",
                      "argmax already returns int64 indices: return them as they are, without .float() or .int().")
    if torch.equal(got, expected):
        return passed(f"{call.what} gives the right {n} labels.")
    if any(t is not None and torch.equal(got, t) for t in in_train_mode):
        return failed(f"{call.what} is wrong: the model predicted in train mode.", TRAIN_MODE)
    return failed(f"{call.what}: {int((got != expected).sum())} of {n} labels differ from the reference.", LABELS)


@checks.public("predict")
def predict_small(st, ref, rng):
    """Ten 4×4 images, batches of 4 (the last one smaller), a model with BatchNorm sent in train mode."""
    return predict_case(st, ref, classifier_weights(rng, 16, 8, 5), randn(rng, 10, 1, 4, 4), {"batch_size": 4})


# ------------------------------------------------------------------- classification_error

def error_case(st, ref, y_true: torch.Tensor, y_pred: torch.Tensor) -> Verdict:
    expected = ref.classification_error(y_true, y_pred)
    misconceptions = [
        Misconception("that is the accuracy (the fraction of correct labels), not the error", ACCURACY,
                      ref.classification_accuracy(y_true, y_pred)),
        Misconception("that is the number of wrong labels, not their fraction", COUNT,
                      ref.error_count(y_true, y_pred)),
    ]
    call = st.call("classification_error", y_true, y_pred,
                   description=signature("classification_error", y_true, y_pred))
    return scalar(call, expected, atol=ERROR_TOL, misconceptions=misconceptions, strict=True, hint=ERROR)


@checks.public("classification_error")
def error_small(st, ref, rng):
    """Ten labels, three of them wrong: the error is 0.3."""
    y_true = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    y_pred = torch.tensor([3, 1, 4, 7, 5, 9, 2, 0, 5, 8])
    return error_case(st, ref, y_true, y_pred)


# ------------------------------------------------------------------------ confusion_matrix

def confusion_case(st, ref, y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> Verdict:
    expected = ref.confusion_matrix(y_true, y_pred, num_classes)
    transposed = ref.transposed_confusion_matrix(y_true, y_pred, num_classes)
    call = st.call("confusion_matrix", y_true, y_pred, num_classes,
                   description=signature("confusion_matrix", y_true, y_pred, num_classes))
    problem = returned(call, "a tensor") or on_device(call, st.device)
    if problem:
        return problem
    got, k = call.value, num_classes
    if not isinstance(got, torch.Tensor):
        return failed(f"{call.what} returned {call.type}, expected a ({k}, {k}) tensor.")
    if got.dtype != torch.int64:
        return failed(f"{call.what} returned dtype {got.dtype}, expected torch.int64 counts.",
                      "Counts are integers: create the matrix with dtype=torch.int64 "
                      "(torch.bincount also gives int64).")
    if tuple(got.shape) != (k, k):
        return failed(f"{call.what} returned shape {tuple(got.shape)}, expected ({k}, {k}).",
                      "The matrix is num_classes × num_classes, even when some classes never occur in "
                      "y_true or y_pred.")
    if torch.equal(got, expected):
        return passed(f"{call.what} counts every (true, predicted) pair.")
    if torch.equal(got, transposed):
        return failed(f"{call.what} is transposed: its rows hold the predicted classes and its columns the true ones.",
                      TRANSPOSED)
    return failed(f"{call.what} differs from the reference: {difference(got, expected)}.", TRANSPOSED)


@checks.public("confusion_matrix")
def confusion_small(st, ref, rng):
    """Twelve labels of 4 classes (class 3 is never predicted)."""
    y_true = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])
    y_pred = torch.tensor([0, 0, 1, 1, 1, 2, 1, 2, 0, 2, 1, 0])
    return confusion_case(st, ref, y_true, y_pred, 4)


# --------------------------------------------------------------------- capture_activations

def cnn_weights(rng: torch.Generator, size: int = 8, channels: int = 3, hidden: int = 6,
                classes: int = 4) -> tuple[torch.Tensor, ...]:
    """Weights of the probe CNN for size×size images (one 2×2 pooling before the classifier)."""
    flat = channels * (size // 2) ** 2
    return (randn(rng, channels, 1, 3, 3) / 3, 0.1 * randn(rng, channels),
            1 + 0.2 * randn(rng, channels), 0.2 * randn(rng, channels),
            0.5 * randn(rng, channels), torch.rand(channels, generator=rng) + 0.5,
            randn(rng, hidden, flat) / flat**0.5, 0.1 * randn(rng, hidden),
            randn(rng, classes, hidden) / hidden**0.5, 0.1 * randn(rng, classes))


def probe_cnn(weights: Sequence[torch.Tensor]) -> nn.Sequential:
    """`features` (Conv2d, BatchNorm2d, ReLU, MaxPool2d), `classifier` (Flatten, Linear, ReLU, Linear); eval mode."""
    conv_w, conv_b, bn_w, bn_b, mean, var, w1, b1, w2, b2 = weights
    channels = conv_w.shape[0]
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(OrderedDict(
            features=nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                                   nn.MaxPool2d(2)),
            classifier=nn.Sequential(nn.Flatten(), nn.Linear(w1.shape[1], w1.shape[0]), nn.ReLU(),
                                     nn.Linear(w2.shape[1], w2.shape[0])),
        ))
    model.load_state_dict({
        "features.0.weight": conv_w, "features.0.bias": conv_b, "features.1.weight": bn_w, "features.1.bias": bn_b,
        "features.1.running_mean": mean, "features.1.running_var": var,
        "features.1.num_batches_tracked": torch.tensor(0),
        "classifier.1.weight": w1, "classifier.1.bias": b1, "classifier.3.weight": w2, "classifier.3.bias": b2,
    })
    return model.eval()


def activations_case(st, ref, weights: tuple[torch.Tensor, ...], images: torch.Tensor, names: Sequence[str],
                     model: nn.Module | None = None) -> Verdict:
    """`model`: the probe CNN built from `weights`, possibly with hooks of its own (default: a plain one)."""
    outputs, inputs = ref.activations(weights, images), ref.layer_inputs(weights, images)
    model = model if model is not None else probe_cnn(weights)
    before = module_snapshot(model)
    call = st.call("capture_activations", model, list(names), images, return_args=True,
                   description=signature("capture_activations", model, list(names), images))
    problem = returned(call, "a dict") or on_device(call, st.device)
    if problem:
        return problem
    got = call.value
    if not isinstance(got, dict):
        return failed(f"{call.what} returned {call.type}, expected a dict from layer name to tensor.")
    if set(got) != set(names):
        if len(names) > 1 and set(got) == {names[-1]}:
            return failed(f"{call.what} returned only {sorted(got)}, expected {list(names)}.", LATE_BINDING)
        return failed(f"{call.what} returned the keys {sorted(got)}, expected {list(names)}.",
                      "One entry per requested name, keyed by the name exactly as given (as in model.named_modules()).")
    after = call.args[0] if isinstance(call.args, (list, tuple)) and call.args else None
    if isinstance(after, ModuleSnapshot):
        if after.hooks["forward"] > before.hooks["forward"]:
            return failed(f"{call.what} left forward hooks registered on the model ({after.hooks['forward']} "
                          f"after the call, {before.hooks['forward']} before).", HOOKS_LEFT)
        if after.hooks != before.hooks:
            return failed(f"{call.what} changed the hooks the model already had ({before.hooks} before the call, "
                          f"{after.hooks} after).",
                          "Remove only the hooks you added, with the handles register_forward_hook returned; "
                          "hooks the model had before must stay.")
    verdict = state_unchanged(call.what, before, after, mode=True, hooks=False)
    if not verdict.passed:
        return verdict
    rtol = atol = 1e-4 if st.device == "cpu" else 1e-2  # cuDNN convolutions may run in TF32
    for name in names:
        item = replace(call, value=got[name], devices=(), description=f"{call.what}[{name!r}]")
        held = got[name][0] if isinstance(got[name], (tuple, list)) and len(got[name]) == 1 else got[name]
        verdict = close(item, outputs[name], rtol=rtol, atol=atol)
        if not verdict.passed:
            if close(replace(item, value=held), inputs[name], rtol=rtol, atol=atol).passed:
                return failed(f"{item.what} holds the layer's input, not its output.", INPUT_CAPTURED)
            return verdict
    layers = "layer" if len(names) == 1 else f"{len(names)} layers"
    return passed(f"{call.what} returns the outputs of the {layers} asked for and leaves the model as it was.")


@checks.public("activations")
def activations_small(st, ref, rng):
    """A small CNN in eval mode, two 8×8 images; layers `features.0` and `classifier.2`."""
    return activations_case(st, ref, cnn_weights(rng), randn(rng, 2, 1, 8, 8), ["features.0", "classifier.2"])


# ----------------------------------------------------------------------- trained models

def trained_model(st, name: str, missing_hint: str) -> ModuleSnapshot | Verdict:
    """The model the notebook assigned to `name`; a failed verdict when there is none."""
    value = st.value(name)
    if value.missing:
        return failed(f"`{name}` is not defined.", missing_hint)
    if not isinstance(value.value, ModuleSnapshot):
        kind = "still `...`" if value.type == "ellipsis" else f"a {value.type}"
        return failed(f"`{name}` is {kind}, not an nn.Module.", f"Assign the trained model itself to `{name}`.")
    return value.value


def convolutions(st, name: str, images: torch.Tensor) -> str | Verdict:
    """What convolves in `name` ("" if nothing): its convolution layers, or the conv operators its forward ran on
    MNIST images; a failed verdict when `name` is not an nn.Module or its forward raises."""
    model = trained_model(st, name, f"Build `{name}` as an nn.Module and train it in the notebook.")
    if isinstance(model, Verdict):
        return model
    call = st.call(name, images, no_grad=True, eval_mode=True, on_model_device=True, forbid=CONV_OPS,
                   description=f"{name}(images {tuple(images.shape)})")
    if call.error:
        return failed(f"{call.what} raised {call.error}",
                      "The model takes (N, 1, 28, 28) images in [0, 1], exactly as transforms.ToTensor() makes them.")
    # leaf modules whose class is a convolution (Conv1d/2d/3d, ConvTranspose2d, ...), as `name` (Class)
    names = list(model.modules)
    leaves = [n for n in names if not any(m.startswith(f"{n}.") or (n == "" and m) for m in names)]
    layers = [f"`{n}` ({model.modules[n].rsplit('.', 1)[-1]})" for n in leaves
              if "Conv" in model.modules[n].rsplit(".", 1)[-1]]
    if layers:
        return f"it has convolution layers: {', '.join(layers[:4])}"
    return f"its forward runs convolutions ({', '.join(call.forbidden)})" if call.forbidden else ""


def scored_accuracy(st, ctx, name: str, images: torch.Tensor, labels: torch.Tensor, split: str) -> Verdict:
    """Credit for `name`'s accuracy on a labelled split, if the model is of the kind the question asks for."""
    found = convolutions(st, name, images[:8])
    if isinstance(found, Verdict):
        return found
    if name == "mlp" and found:
        return failed(f"`mlp` is not fully connected: {found}.", MLP_CONV)
    if name == "cnn" and not found:
        return failed("`cnn` has no convolution layer.", NO_CONV)
    call = st.call(name, images, no_grad=True, eval_mode=True, on_model_device=True,
                   description=f"{name}(images {tuple(images.shape)})")
    return accuracy(call, labels, ctx.threshold(f"{name}_accuracy"), split=split)


@checks.public("mlp_accuracy")
def mlp_public_accuracy(st, ref, rng, ctx):
    """`mlp` is fully connected; its accuracy on the public test split (500 images)."""
    return scored_accuracy(st, ctx, "mlp", *mnist_split(ctx.data, "test"), split="public test")


@checks.public("cnn_accuracy")
def cnn_public_accuracy(st, ref, rng, ctx):
    """`cnn` has convolution layers; its accuracy on the public test split (500 images)."""
    return scored_accuracy(st, ctx, "cnn", *mnist_split(ctx.data, "test"), split="public test")


@checks.public("cnn_smaller")
def cnn_fewer_params(st, ref, rng):
    """`cnn` has fewer parameters than `mlp`."""
    counts = {}
    for name in ("mlp", "cnn"):
        model = trained_model(st, name, f"Build and train `{name}` first.")
        if isinstance(model, Verdict):
            return model
        counts[name] = model.n_params
    mlp, cnn = counts["mlp"], counts["cnn"]
    if cnn < mlp:
        return passed(f"`cnn` has {cnn:,} parameters, `mlp` {mlp:,}: the CNN is {mlp / max(cnn, 1):.1f}× smaller.")
    return failed(f"`cnn` has {cnn:,} parameters, not fewer than `mlp` ({mlp:,}).", SMALLER)
