"""Public checks of the classify assignment, which students run while they work. Probe networks get weights drawn
from the check's generator; the reference computes the expected values from the same weights with torch's functional
operators, so these checks replay in a self-check. The trained models are scored on the public test split."""

from collections import OrderedDict
from dataclasses import replace

import torch
from torch import nn

from autograder.checks import (CheckSet, Forbid, Misconception, ModuleSnapshot, Verdict, accuracy, close, equal_tensor,
                               failed, leaf_types, mnist_split, module_snapshot, passed, randn, returned_as, scalar,
                               state_unchanged, student_call, value_problem, with_weights)

checks = CheckSet()

# aten operators a convolution ends up in, whichever layer or function called it
CONV_OPS = Forbid(ops=("convolution", "conv1d", "conv2d", "conv3d", "conv_depthwise", "qconv", "conv_tbc",
                       "conv_transpose", "slow_conv"))

TRAIN_MODE = ("Call model.eval() before predicting (and predict under torch.no_grad()). In train mode "
              "BatchNorm normalises each batch with that batch's own mean and variance, and Dropout "
              "switches units off at random, so a sample's label depends on the batch it is in. The "
              "grader's model has a BatchNorm layer and arrives in train mode.")
LABELS = ("The label of a sample is the index of its most activated output: model(batch).argmax(dim=1), "
          "with the model in eval mode.")
ACCURACY = "The error is the fraction of WRONG labels: (y_pred != y_true).float().mean(), i.e. 1 - accuracy."
COUNT = "Divide the number of wrong labels by the number of samples, so the error lies in [0, 1]."
ERROR = "The error is the number of samples with y_pred != y_true divided by the number of samples."
COUNTS = "Counts are integers: create the matrix with dtype=torch.int64 (torch.bincount also gives int64)."
SQUARE = "The matrix is num_classes × num_classes, even when some classes never occur in y_true or y_pred."
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


def classifier_weights(rng: torch.Generator, features: int, hidden: int, classes: int) -> tuple[torch.Tensor, ...]:
    """Weights of the probe classifier, with running statistics far from any batch's own."""
    return (randn(rng, hidden, features) / features**0.5, 0.1 * randn(rng, hidden),
            1 + 0.2 * randn(rng, hidden), 0.2 * randn(rng, hidden),
            randn(rng, hidden), torch.rand(hidden, generator=rng) + 0.5,
            randn(rng, classes, hidden) / hidden**0.5, 0.1 * randn(rng, classes))


def probe_classifier(weights: tuple[torch.Tensor, ...]) -> nn.Sequential:
    """Flatten → Linear → BatchNorm1d → ReLU → Linear, in train mode (as nn.Module builds it)."""
    (hidden, features), classes = weights[0].shape, len(weights[-1])
    return with_weights(lambda: nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.BatchNorm1d(hidden),
                                              nn.ReLU(), nn.Linear(hidden, classes)), weights, training=True)


def predict_case(st, ref, weights: tuple[torch.Tensor, ...], images: torch.Tensor, kwargs: dict) -> Verdict:
    """`kwargs` go to the student as given, so the default batch size gets exercised too."""
    expected = ref.predict(weights, images)
    in_train_mode = [ref.train_mode_predict(weights, images, kwargs.get("batch_size", 256)),
                     ref.train_mode_predict(weights, images)]
    call = student_call(st, "predict", probe_classifier(weights), images, **kwargs)
    if problem := returned_as(call, f"a tensor of {len(expected)} labels", torch.Tensor, device=st.device,
                              hint="Collect the labels of each batch and join them with torch.cat.",
                              raised={"when training": TRAIN_MODE}):  # BatchNorm in train mode refuses one image
        return problem
    got, n = call.value, len(expected)
    if got.dim() == 2 and got.shape[0] == n:
        return failed(f"{call.what} returned shape {tuple(got.shape)}: a score for every class, not labels.", LABELS)
    if got.shape != expected.shape:
        return failed(f"{call.what} returned shape {tuple(got.shape)}, expected ({n},): one label per image.")
    train = [Misconception("the model predicted in train mode", TRAIN_MODE, t) for t in in_train_mode if t is not None]
    return equal_tensor(call, expected, misconceptions=train, hint=LABELS,
                        dtype_hint="argmax already returns int64 indices: return them as they are, without .float() "
                                   "or .int().")


@checks.public("predict")
def predict_small(st, ref, rng):
    """Ten 4×4 images, batches of 4 (the last one smaller), a model with BatchNorm sent in train mode."""
    return predict_case(st, ref, classifier_weights(rng, 16, 8, 5), randn(rng, 10, 1, 4, 4), {"batch_size": 4})


def error_case(st, ref, y_true: torch.Tensor, y_pred: torch.Tensor) -> Verdict:
    expected = ref.classification_error(y_true, y_pred)
    return scalar(student_call(st, "classification_error", y_true, y_pred), expected, atol=1e-6, strict=True,
                  misconceptions=[Misconception("that is the accuracy (the fraction of correct labels), not the error",
                                                ACCURACY, ref.classification_accuracy(y_true, y_pred)),
                                  Misconception("that is the number of wrong labels, not their fraction", COUNT,
                                                ref.error_count(y_true, y_pred))], hint=ERROR)


@checks.public("classification_error")
def error_small(st, ref, rng):
    """Ten labels, three of them wrong: the error is 0.3."""
    return error_case(st, ref, torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3]),
                      torch.tensor([3, 1, 4, 7, 5, 9, 2, 0, 5, 8]))


def confusion_case(st, ref, y_true: torch.Tensor, y_pred: torch.Tensor, k: int) -> Verdict:
    expected, transposed = ref.confusion_matrix(y_true, y_pred, k), ref.transposed_confusion_matrix(y_true, y_pred, k)
    call = student_call(st, "confusion_matrix", y_true, y_pred, k)
    if problem := returned_as(call, f"a ({k}, {k}) tensor", torch.Tensor, device=st.device):
        return problem
    swapped = Misconception("the matrix is transposed: its rows hold the predicted classes, its columns the true ones",
                            TRANSPOSED, transposed)
    return equal_tensor(call, expected, misconceptions=[swapped], hint=TRANSPOSED, dtype_hint=COUNTS, shape_hint=SQUARE)


@checks.public("confusion_matrix")
def confusion_small(st, ref, rng):
    """Twelve labels of 4 classes (class 3 is never predicted)."""
    return confusion_case(st, ref, torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3]),
                          torch.tensor([0, 0, 1, 1, 1, 2, 1, 2, 0, 2, 1, 0]), 4)


def cnn_weights(rng: torch.Generator, size=8, channels=3, hidden=6, classes=4) -> tuple[torch.Tensor, ...]:
    """Weights of the probe CNN for size×size images (one 2×2 pooling before the classifier)."""
    flat = channels * (size // 2) ** 2
    return (randn(rng, channels, 1, 3, 3) / 3, 0.1 * randn(rng, channels),
            1 + 0.2 * randn(rng, channels), 0.2 * randn(rng, channels),
            0.5 * randn(rng, channels), torch.rand(channels, generator=rng) + 0.5,
            randn(rng, hidden, flat) / flat**0.5, 0.1 * randn(rng, hidden),
            randn(rng, classes, hidden) / hidden**0.5, 0.1 * randn(rng, classes))


def probe_cnn(weights: tuple[torch.Tensor, ...]) -> nn.Sequential:
    """`features` (Conv2d, BatchNorm2d, ReLU, MaxPool2d), `classifier` (Flatten, Linear, ReLU, Linear); eval mode."""
    c, (hidden, flat), classes = len(weights[0]), weights[6].shape, len(weights[-1])
    return with_weights(lambda: nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)),
        classifier=nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, classes)))),
        weights)


def activations_case(st, ref, weights, images: torch.Tensor, names: list[str], model=None) -> Verdict:
    """`model`: the probe CNN built from `weights`, possibly with hooks of its own (default: a plain one)."""
    outputs, inputs = ref.activations(weights, images), ref.layer_inputs(weights, images)
    model = model if model is not None else probe_cnn(weights)
    before = module_snapshot(model)
    call = student_call(st, "capture_activations", model, list(names), images, probe={"return_args": True})
    if problem := returned_as(call, "a dict from layer name to tensor", dict, device=st.device):
        return problem
    got = call.value
    if set(got) != set(names):
        late = len(names) > 1 and set(got) == {names[-1]}
        return failed(f"{call.what} returned the keys {sorted(got)}, expected {list(names)}.", LATE_BINDING if late else
                      "One entry per requested name, keyed by the name exactly as given (as in model.named_modules()).")
    after = call.args[0] if isinstance(call.args, (list, tuple)) and call.args else None
    if isinstance(after, ModuleSnapshot) and after.hooks != before.hooks:
        left = after.hooks["forward"] > before.hooks["forward"]
        counts = (f"{after.hooks['forward']} forward hooks after the call, {before.hooks['forward']} before" if left
                  else f"{before.hooks} before the call, {after.hooks} after")
        return failed(f"{call.what} {'left forward hooks registered on' if left else 'changed the hooks of'} the model "
                      f"({counts}).", HOOKS_LEFT if left else "Remove only the hooks you added, with the handles "
                      "register_forward_hook returned; hooks the model had before must stay.")
    if not (verdict := state_unchanged(call.what, before, after, mode=True, hooks=False)).passed:
        return verdict
    tol = 1e-4 if st.device == "cpu" else 1e-2  # cuDNN convolutions may run in TF32
    for name in names:
        item = replace(call, value=got[name], devices=(), description=f"{call.what}[{name!r}]")
        held = got[name][0] if isinstance(got[name], (tuple, list)) and len(got[name]) == 1 else got[name]
        if not (verdict := close(item, outputs[name], rtol=tol, atol=tol)).passed:
            if close(replace(item, value=held), inputs[name], rtol=tol, atol=tol).passed:
                return failed(f"{item.what} holds the layer's input, not its output.", INPUT_CAPTURED)
            return verdict
    layers = "layer" if len(names) == 1 else f"{len(names)} layers"
    return passed(f"{call.what} returns the outputs of the {layers} asked for and leaves the model as it was.")


@checks.public("activations")
def activations_small(st, ref, rng):
    """A small CNN in eval mode, two 8×8 images; layers `features.0` and `classifier.2`."""
    return activations_case(st, ref, cnn_weights(rng), randn(rng, 2, 1, 8, 8), ["features.0", "classifier.2"])


def model_problem(model, missing_hint: str) -> Verdict | None:
    """Why the notebook's `model` (a `st.value`) is no trained nn.Module, or None."""
    return value_problem(model, "an nn.Module", ModuleSnapshot, missing_hint=missing_hint,
                         hint=f"Assign the trained model itself to `{model.target}`.")


def scored_accuracy(st, ctx, name: str, split: str) -> Verdict:
    """Credit for `name`'s accuracy on a test split, if it is a model of the kind asked for (with or without conv)."""
    images, labels = mnist_split(ctx.data if split == "public test" else ctx.hidden / "data", "test")
    model = st.value(name)
    if problem := model_problem(model, f"Build `{name}` as an nn.Module and train it in the notebook."):
        return problem
    call = st.call(name, images[:8], no_grad=True, eval_mode=True, on_model_device=True, forbid=CONV_OPS,
                   description=f"{name}(images {tuple(images[:8].shape)})")
    if call.error:
        return failed(f"{call.what} raised {call.error}",
                      "The model takes (N, 1, 28, 28) images in [0, 1], exactly as transforms.ToTensor() makes them.")
    layers = [f"`{n}` ({kind})" for n, kind in leaf_types(model.value).items() if "Conv" in kind]
    found = (f"it has convolution layers: {', '.join(layers[:4])}" if layers else
             f"its forward runs convolutions ({', '.join(call.forbidden)})" if call.forbidden else "")
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
    return scored_accuracy(st, ctx, "mlp", "public test")


@checks.public("cnn_accuracy")
def cnn_public_accuracy(st, ref, rng, ctx):
    """`cnn` has convolution layers; its accuracy on the public test split (500 images)."""
    return scored_accuracy(st, ctx, "cnn", "public test")


@checks.public("cnn_smaller")
def cnn_fewer_params(st, ref, rng):
    """`cnn` has fewer parameters than `mlp`."""
    counts = {}
    for name in ("mlp", "cnn"):
        model = st.value(name)
        if problem := model_problem(model, f"Build and train `{name}` first."):
            return problem
        counts[name] = model.value.n_params
    mlp, cnn = counts["mlp"], counts["cnn"]
    if cnn < mlp:
        return passed(f"`cnn` has {cnn:,} parameters, `mlp` {mlp:,}: the CNN is {mlp / max(cnn, 1):.1f}× smaller.")
    return failed(f"`cnn` has {cnn:,} parameters, not fewer than `mlp` ({mlp:,}).", SMALLER)
