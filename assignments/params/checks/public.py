"""Public checks of the params assignment, which students run while they work. Counts and tables are recorded
from the reference at build time; models are specs (`autograder.checks.models`, and `named`/`same` below for a
module used twice) that the check and the reference each build, so a self-check replays the recorded value."""

from dataclasses import replace

import pandas as pd
import torch.nn as nn

from autograder.checks import (CheckSet, Misconception, Verdict, failed, first_failure, int_answer, module_snapshot,
                               passed, plain, returned, signature, state_unchanged)
from autograder.checks.models import build, describe, layer, seq, spec

checks = CheckSet()
COLUMNS = ("layer", "type", "output_shape", "params")


def named(label, item):
    """A module that appears again later in the model as `same(label)`."""
    return ("Named", (label, item), ())


def same(label):
    return ("Same", (label,), ())


# ------------------------------------------------------------------------------ linear_params

LINEAR_BIAS = "A Linear layer has a weight of shape (out, in) and, with bias=True, a bias of shape (out,)."


def linear_counts(st, ref, cases, summary):
    """Each ((in_features, out_features), kwargs) case until one fails; kwargs go to the student as given."""
    def case(in_features, out_features, **kwargs):
        bias, weights = kwargs.get("bias", True), in_features * out_features
        expected = ref.linear_params(in_features, out_features, bias)
        misconceptions = [Misconception("the bias is missing", LINEAR_BIAS, weights),
                          Misconception("the bias is counted although bias=False", LINEAR_BIAS, weights + out_features),
                          Misconception("the bias has in_features entries", "The bias has one entry per *output*.",
                                        weights + (in_features if bias else 0))]
        call = st.call("linear_params", in_features, out_features, **kwargs,
                       description=signature("linear_params", in_features, out_features, **kwargs))
        return int_answer(call, expected, misconceptions)
    return first_failure((case(*a, **kw) for a, kw in cases), summary)


@checks.public("linear_params")
def linear_params_lecture(st, ref, rng):
    """CIFAR logistic regression Linear(3072, 10), an MLP layer Linear(784, 128), and bias=False."""
    return linear_counts(st, ref, [((3072, 10), {}), ((784, 128), {}), ((128, 10), dict(bias=False)),
                                   ((22100, 11050), dict(bias=True))],
                         "linear_params counts the weight matrix and the bias.")


# ------------------------------------------------------------------------------ conv2d_params

CONV_BIAS = "With bias=True a Conv2d has one bias per output channel: add out_channels."
GROUPS = ("With groups=g each output channel sees only in_channels / g input channels: the weight has shape "
          "(out_channels, in_channels // groups, kh, kw).")
GROUPS_TWICE = ("Only the *input* channels each filter sees are divided by groups; there are still out_channels "
                "filters: weight shape (out_channels, in_channels // groups, kh, kw).")
RECTANGLE = "A kernel_size pair (kh, kw) is a kh × kw kernel: multiply kh by kw."
BIAS_PER_INPUT = "The bias has one entry per *output* channel."
CONV_MISTAKES = (("the bias is missing", CONV_BIAS, "no_bias"), ("groups is ignored", GROUPS, "no_groups"),
                 ("both channel counts were divided by groups", GROUPS_TWICE, "groups_twice"),
                 ("only the first kernel size was used", RECTANGLE, "square_first"),
                 ("the bias has in_channels entries", BIAS_PER_INPUT, "bias_per_input"))


def conv_counts(st, ref, cases, summary):
    """Each ((in_channels, out_channels, kernel_size), kwargs) case until one fails; kwargs passed as given."""
    def case(in_channels, out_channels, kernel_size, **kwargs):
        args = (in_channels, out_channels, kernel_size, kwargs.get("bias", True), kwargs.get("groups", 1))
        expected = ref.conv2d_params(*args)
        misconceptions = [Misconception(label, hint, ref.conv2d_params_variant(*args, mistake=m))
                          for label, hint, m in CONV_MISTAKES]
        call = st.call("conv2d_params", in_channels, out_channels, kernel_size, **kwargs,
                       description=signature("conv2d_params", in_channels, out_channels, kernel_size, **kwargs))
        return int_answer(call, expected, misconceptions)
    return first_failure((case(*a, **kw) for a, kw in cases), summary)


@checks.public("conv2d_params")
def conv2d_params_lecture(st, ref, rng):
    """Conv2d(1, 6, 3), the CIFAR CNN's Conv2d(3, 16, 3), the face CNN's Conv2d(1, 32, 7), a (3, 5) kernel."""
    return conv_counts(st, ref, [((1, 6, 3), {}), ((3, 16, 3), {}), ((1, 32, 7), {}), ((16, 32, (3, 5)), {}),
                                 ((3, 16, 3), dict(bias=False))],
                       "conv2d_params counts out × in × kh × kw weights plus out biases.")


@checks.public("conv2d_params")
def conv2d_params_groups(st, ref, rng):
    """Grouped convolutions: groups=2, and a depthwise Conv2d(16, 16, 3, groups=16)."""
    return conv_counts(st, ref, [((4, 8, 3), dict(groups=2)), ((16, 16, 3), dict(groups=16)),
                                 ((6, 9, (1, 3)), dict(bias=False, groups=3))],
                       "conv2d_params divides the input channels by groups.")


# ------------------------------------------------------------------------------ count_params

BUFFERS = ("Buffers are not parameters: BatchNorm's running_mean, running_var and num_batches_tracked are in "
           "state_dict() but not in model.parameters(). Count model.parameters().")
SHARED = ("A parameter reachable from two places is one parameter: count what model.parameters() yields (it "
          "yields each tensor once), not each layer's parameters separately.")
TRAINABLE = "With trainable_only=True, count only the parameters with p.requires_grad."
FROZEN = "With trainable_only=True, count the parameters that *do* have requires_grad (the frozen ones are left out)."


def count_case(st, ref, model, label, **kwargs):
    """count_params on `model`, a spec (public checks) or a grader-built module (hidden ones); kwargs
    (trainable_only) passed as given."""
    module = model if isinstance(model, nn.Module) else build(model)
    trainable_only = kwargs.get("trainable_only", False)
    expected = ref.count_params(model, trainable_only)
    total, per_name = ref.count_params(model, False), ref.count_per_name(model, trainable_only)
    with_buffers = ref.count_with_buffers(model)
    misconceptions = [Misconception("trainable_only is ignored", TRAINABLE, total),
                      Misconception("the frozen parameters were counted instead", FROZEN, total - expected)
                      ] if trainable_only else []
    misconceptions.append(Misconception("a shared parameter was counted twice", SHARED, per_name))
    if with_buffers not in (total, ref.count_per_name(model, False)):  # the model has buffers
        misconceptions.append(Misconception("buffers were counted as parameters", BUFFERS, with_buffers))
    elif with_buffers != total:  # state_dict() lists a shared tensor under each of its names
        misconceptions.append(Misconception("a shared parameter was counted twice", SHARED, with_buffers))
    call = st.call("count_params", module, **kwargs,
                   description=f"count_params({label}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})")
    return int_answer(call, expected, misconceptions)


MLP = spec(layer("Linear", 784, 128), layer("ReLU"), layer("Linear", 128, 64), layer("ReLU"), layer("Linear", 64, 10))


@checks.public("count_params")
def count_params_mlp(st, ref, rng):
    """The MNIST MLP 784 → 128 → 64 → 10, all trainable."""
    return first_failure((count_case(st, ref, MLP, "MLP 784-128-64-10"),
                          count_case(st, ref, MLP, "MLP 784-128-64-10", trainable_only=True)),
                         "count_params counts an MLP's weights and biases.")


@checks.public("count_params")
def count_params_batchnorm(st, ref, rng):
    """A small face CNN with BatchNorm2d: its running statistics are buffers, not parameters."""
    model_spec = spec(layer("Conv2d", 1, 8, 7), layer("BatchNorm2d", 8), layer("ReLU"), layer("MaxPool2d", 3),
                      layer("Flatten"), layer("Dropout", 0.35), layer("Linear", 8 * 6 * 4, 7))
    return count_case(st, ref, model_spec, "Sequential(Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Dropout, Linear)")


@checks.public("count_params")
def count_params_shared(st, ref, rng):
    """One Linear used twice, tied weights between two layers, one module inside two containers."""
    reused = spec(named("shared", layer("Linear", 4, 4)), layer("ReLU"), same("shared"))
    tied = spec(layer("Linear", 6, 6), layer("Tanh"), layer("Linear", 6, 6), tie=(("2.weight", "0.weight"),))
    two_containers = spec(seq(named("block", layer("Linear", 5, 5)), layer("ReLU")),
                          seq(same("block"), layer("ReLU"), layer("Linear", 5, 2)))
    return first_failure((count_case(st, ref, reused, "Sequential(shared Linear(4, 4), ReLU, the same Linear)"),
                          count_case(st, ref, tied, "Sequential(Linear(6, 6), Tanh, Linear(6, 6) with the first "
                                                    "layer's weight)"),
                          count_case(st, ref, two_containers, "Sequential(Sequential(block, ReLU), "
                                                              "Sequential(the same block, ReLU, Linear))")),
                         "count_params counts a shared parameter once.")


@checks.public("count_params")
def count_params_frozen(st, ref, rng):
    """An MLP whose first layer is frozen (requires_grad=False), with and without trainable_only."""
    frozen = spec(layer("Linear", 20, 16), layer("ReLU"), layer("Linear", 16, 3), freeze=("0.weight", "0.bias"))
    label = "MLP 20-16-3 with the first Linear frozen"
    return first_failure((count_case(st, ref, frozen, label), count_case(st, ref, frozen, label, trainable_only=True),
                          count_case(st, ref, frozen, label, trainable_only=False)),
                         "count_params counts all parameters, or only the trainable ones.")


# ------------------------------------------------------------------------------ summary

REPEATED = ("A module called twice gives two rows: record a row in a forward hook each time it fires (append "
            "to a list), not one entry per module (a dict keyed by name keeps only one).")
CONTAINERS = ("Only leaf modules get rows (modules without children, `next(m.children(), None) is None`); "
              "containers like Sequential are not layers.")
BUILD = "Build it with pd.DataFrame(rows, columns=['layer', 'type', 'output_shape', 'params'])."
COLUMN_HINTS = {"layer": "Use the names that model.named_modules() gives ('0', '1.2', ...), in call order.",
                "type": "type(module).__name__ gives the class name, e.g. 'Conv2d'.",
                "output_shape": "Record tuple(output.shape) in a forward hook, for an input of input_shape.",
                "params": "params is that leaf's own parameter count: sum(p.numel() for p in module.parameters())."}
KEEP_BATCH = "Keep the batch dimension: input_shape includes it, so does every output shape."
RUNNING_STATS = ("The forward pass ran in train mode: BatchNorm updated running_mean and running_var (it does so "
                 "even under torch.no_grad()). Call model.eval() before the pass and model.train(was_training) "
                 "after it.")


def as_table(value) -> list[tuple] | str:
    """The four columns as row tuples with plain values, or a message saying what is wrong."""
    if not isinstance(value, pd.DataFrame):
        return f"returned {getattr(value, 'type', type(value).__name__)}, expected a pandas DataFrame."
    missing = [c for c in COLUMNS if c not in value.columns]
    if missing:
        return (f"returned a DataFrame without the column(s) {', '.join(missing)} (its columns: "
                f"{', '.join(map(str, value.columns))}).")
    return [(plain(name), plain(kind), tuple(plain(d) for d in shape) if isinstance(shape, (tuple, list)) else shape,
             plain(params)) for name, kind, shape, params in zip(*(list(value[c]) for c in COLUMNS))]


def table_verdict(call, expected: pd.DataFrame) -> Verdict:
    """Row count, then each row column by column: the first difference is named precisely."""
    if problem := returned(call, "a pandas DataFrame", BUILD):
        return problem
    got = as_table(call.value)
    if isinstance(got, str):
        return failed(f"{call.what} {got}", BUILD)
    want = as_table(expected)
    got_layers, want_layers = [r[0] for r in got], [r[0] for r in want]
    if len(got) != len(want):
        if got_layers == list(dict.fromkeys(want_layers)):
            return failed(f"{call.what} has {len(got)} rows, expected {len(want)}: a module called twice "
                          f"appears once (expected layers {want_layers}).", REPEATED)
        containers = [r[0] for r in got if r[1] in ("Sequential", "ModuleList", "ModuleDict")]
        if containers:
            return failed(f"{call.what} has {len(got)} rows, expected {len(want)}: it has rows for containers "
                          f"(layers {containers}), which are not leaf modules.", CONTAINERS)
        return failed(f"{call.what} has {len(got)} rows (layers {got_layers}), expected {len(want)}: one per "
                      f"leaf-module call, layers {want_layers}.",
                      "Register a forward hook on every leaf module; each call adds a row.")
    for i, (g, w) in enumerate(zip(got, want)):
        for column, gv, wv in zip(COLUMNS, g, w):
            if column == "params" and (isinstance(gv, bool) or not isinstance(gv, int)):
                return failed(f"{call.what}: row {i} (layer {w[0]!r}) has params {gv!r} of type "
                              f"{type(gv).__name__}, expected the int {wv}.", "Count with sum(p.numel() ...).")
            if column == "output_shape" and (not isinstance(gv, tuple)
                                             or not all(isinstance(d, int) and not isinstance(d, bool) for d in gv)):
                return failed(f"{call.what}: row {i} (layer {w[0]!r}) has output_shape {gv!r}, expected the "
                              f"tuple {wv}.", "Store tuple(output.shape).")
            if gv != wv:
                batch = column == "output_shape" and isinstance(gv, tuple) and gv == wv[1:]
                return failed(f"{call.what}: row {i} (layer {w[0]!r}): {column} is {gv!r}, expected {wv!r}.",
                              KEEP_BATCH if batch else COLUMN_HINTS[column])
    return passed(f"{call.what} has the right {len(want)} rows: layers {want_layers}.")


def summary_case(st, ref, model, input_shape, state=False):
    """The table, and (with `state`) that the model comes back unchanged and in the mode it was in. `model` is
    a spec (public checks) or a grader-built module (hidden ones)."""
    module = model if isinstance(model, nn.Module) else build(model)
    before = module_snapshot(module) if state else None
    expected = ref.summary(model, input_shape)
    call = st.call("summary", module, input_shape, return_args=state,
                   description=f"summary({describe(module)}, {input_shape})")
    verdicts = [table_verdict(call, expected)]
    if state and call.ok:
        kept = state_unchanged(f"summary on a model in {'train' if module.training else 'eval'} mode", before,
                               call.args[0], hooks=False)
        verdicts.append(failed(kept.message, RUNNING_STATS) if "running_" in kept.message and not kept.passed
                        else kept)
    return first_failure(verdicts, f"{call.what} is right" + (" and leaves the model as it was." if state else "."))


@checks.public("summary")
def summary_small_cnn(st, ref, rng):
    """A small face CNN (Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Dropout, Linear) in eval mode."""
    model_spec = spec(layer("Conv2d", 1, 8, 7), layer("BatchNorm2d", 8), layer("ReLU"), layer("MaxPool2d", 3),
                      layer("Flatten"), layer("Dropout", 0.35), layer("Linear", 8 * 6 * 4, 7))
    return summary_case(st, ref, model_spec, (2, 1, 24, 18))


@checks.public("summary")
def summary_nested_repeated(st, ref, rng):
    """Nested Sequentials, and one Linear(8, 8) called twice: it gets two rows."""
    model_spec = spec(seq(layer("Linear", 6, 8), layer("ReLU")), named("shared", layer("Linear", 8, 8)),
                      layer("Tanh"), same("shared"), seq(seq(layer("Linear", 8, 3))))
    return summary_case(st, ref, model_spec, (2, 6))


@checks.public("summary")
def summary_restores_train_mode(st, ref, rng):
    """An MLP with BatchNorm1d and Dropout in train mode: eval mode during the pass, train mode after."""
    model_spec = spec(layer("Linear", 10, 16), layer("BatchNorm1d", 16), layer("ReLU"), layer("Dropout", 0.5),
                      layer("Linear", 16, 4), training=True)
    return summary_case(st, ref, model_spec, (4, 10), state=True)


# ------------------------------------------------------------------------------ lecture_answers

def lecture_value(st, ref, name, misconceptions=()):
    call = replace(st.value(name), description=f"`{name}`")
    return int_answer(call, getattr(ref, name), misconceptions, verb="is")


@checks.public("lecture_answers")
def lecture_cifar_logreg(st, ref, rng):
    """cifar_logreg_params: one Linear from a 3×32×32 image to 10 classes."""
    return lecture_value(st, ref, "cifar_logreg_params",
                         [Misconception("the bias is missing", LINEAR_BIAS, 3 * 32 * 32 * 10),
                          Misconception("the colour channels are missing", "A CIFAR image has 3 × 32 × 32 = 3072 "
                                        "values.", 32 * 32 * 10 + 10)])


@checks.public("lecture_answers")
def lecture_conv_1_6_3(st, ref, rng):
    """conv_1_6_3_params: Conv2d(1, 6, 3)."""
    return lecture_value(st, ref, "conv_1_6_3_params", [Misconception("the bias is missing", CONV_BIAS, 6 * 9)])


@checks.public("lecture_answers")
def lecture_lfw_cnn(st, ref, rng):
    """lfw_cnn_params: the face CNN with its Linear(70848, 7) head."""
    expected = ref.lfw_cnn_params
    bn_params, bn_buffers = 2 * 32, 2 * 32 + 1
    return lecture_value(st, ref, "lfw_cnn_params", [
        Misconception("BatchNorm2d's parameters are missing", "BatchNorm2d(32) learns a weight and a bias per "
                      "channel: 64 parameters.", expected - bn_params),
        Misconception("BatchNorm2d's buffers were counted", BUFFERS, expected + bn_buffers),
        Misconception("the biases are missing", "Conv2d and Linear both have biases (32 and 7).", expected - 32 - 7)])
