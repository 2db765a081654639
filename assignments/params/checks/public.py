"""Public checks of the params assignment, which students run while they work. Counts and tables are recorded
from the reference at build time; models are specs (`autograder.checks.models`) that the check and the reference
each build, so a self-check replays the recorded value."""

import pandas as pd

from autograder.checks import (CheckSet, Misconception, Verdict, again, as_module, every, failed, first_failure,
                               int_answer, is_int, known_mistakes, layer, model_call, named, passed, plain, returned_as,
                               seq, spec, student_call, student_value)

checks = CheckSet()
COLUMNS = ("layer", "type", "output_shape", "params")


LINEAR_BIAS = "A Linear layer has a weight of shape (out, in) and, with bias=True, a bias of shape (out,)."


def linear_case(st, ref, args, kwargs):
    """linear_params(in_features, out_features, **kwargs), kwargs (bias) passed as given."""
    (n_in, n_out), bias = args, kwargs.get("bias", True)
    return int_answer(student_call(st, "linear_params", *args, **kwargs), ref.linear_params(*args, bias), [
        Misconception("the bias is missing", LINEAR_BIAS, n_in * n_out),
        Misconception("the bias is counted although bias=False", LINEAR_BIAS, n_in * n_out + n_out),
        Misconception("the bias has in_features entries", "The bias has one entry per *output*.",
                      n_in * n_out + (n_in if bias else 0))])


@checks.public("linear_params")
def linear_params_lecture(st, ref, rng):
    """CIFAR logistic regression Linear(3072, 10), an MLP layer Linear(784, 128), and bias=False."""
    return every(linear_case, st, ref, [((3072, 10), {}), ((784, 128), {}), ((128, 10), dict(bias=False)),
                                        ((22100, 11050), dict(bias=True))],
                 "linear_params counts the weight matrix and the bias.")


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


def conv_case(st, ref, args, kwargs):
    """conv2d_params(in_channels, out_channels, kernel_size, **kwargs), kwargs (bias, groups) passed as given."""
    full = (*args, kwargs.get("bias", True), kwargs.get("groups", 1))
    expected = ref.conv2d_params(*full)
    return int_answer(student_call(st, "conv2d_params", *args, **kwargs), expected,
                      known_mistakes(CONV_MISTAKES, lambda m: ref.conv2d_params_variant(*full, mistake=m)))


@checks.public("conv2d_params")
def conv2d_params_lecture(st, ref, rng):
    """Conv2d(1, 6, 3), the CIFAR CNN's Conv2d(3, 16, 3), the face CNN's Conv2d(1, 32, 7), a (3, 5) kernel."""
    return every(conv_case, st, ref, [((1, 6, 3), {}), ((3, 16, 3), {}), ((1, 32, 7), {}), ((16, 32, (3, 5)), {}),
                                      ((3, 16, 3), dict(bias=False))],
                 "conv2d_params counts out × in × kh × kw weights plus out biases.")


@checks.public("conv2d_params")
def conv2d_params_groups(st, ref, rng):
    """Grouped convolutions: groups=2, and a depthwise Conv2d(16, 16, 3, groups=16)."""
    return every(conv_case, st, ref, [((4, 8, 3), dict(groups=2)), ((16, 16, 3), dict(groups=16)),
                                      ((6, 9, (1, 3)), dict(bias=False, groups=3))],
                 "conv2d_params divides the input channels by groups.")


BUFFERS = ("Buffers are not parameters: BatchNorm's running_mean, running_var and num_batches_tracked are in "
           "state_dict() but not in model.parameters(). Count model.parameters().")
SHARED = ("A parameter reachable from two places is one parameter: count what model.parameters() yields (it "
          "yields each tensor once), not each layer's parameters separately.")
TRAINABLE = "With trainable_only=True, count only the parameters with p.requires_grad."
FROZEN = "With trainable_only=True, count the parameters that *do* have requires_grad (the frozen ones are left out)."
ONE_LINER = ("This is the widely copied one-liner `sum(p.numel() for p in model.parameters() if p.requires_grad)`: "
             "it counts only the trainable parameters. With trainable_only=False (the default) count every "
             "parameter, frozen ones too; filter on p.requires_grad only when trainable_only is True.")
TENSORS = ("len(list(model.parameters())) counts the parameter tensors (a weight, a bias, ...), not the numbers "
           "in them: add up p.numel() for each parameter.")
TRAINABLE_ONLY = ({}, {"trainable_only": True}, {"trainable_only": False})  # left to its default, on, off


def count_case(st, ref, model, label, **kwargs):
    """count_params on `model` (a spec, or a grader-built module in hidden checks), kwargs passed as given."""
    module, trainable_only = as_module(model), kwargs.get("trainable_only", False)  # built before the reference's
    expected, total = ref.count_params(model, trainable_only), ref.count_params(model, False)
    per_name, with_buffers = ref.count_per_name(model, trainable_only), ref.count_with_buffers(model)
    mistakes = [Misconception("trainable_only is ignored", TRAINABLE, total),
                Misconception("the frozen parameters were counted instead", FROZEN, total - expected)
                ] if trainable_only else []
    mistakes.append(Misconception("a shared parameter was counted twice", SHARED, per_name))
    if not trainable_only:
        mistakes.append(Misconception("only the trainable parameters were counted", ONE_LINER,
                                      ref.count_params(model, True)))
    mistakes.append(Misconception("the parameter tensors were counted, not their elements", TENSORS,
                                  len(list(module.parameters()))))
    if with_buffers not in (total, ref.count_per_name(model, False)):  # the model has buffers
        mistakes.append(Misconception("buffers were counted as parameters", BUFFERS, with_buffers))
    elif with_buffers != total:  # state_dict() lists a shared tensor under each of its names
        mistakes.append(Misconception("a shared parameter was counted twice", SHARED, with_buffers))
    call = st.call("count_params", module, **kwargs,
                   description=f"count_params({label}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})")
    return int_answer(call, expected, mistakes)


MLP = spec(layer("Linear", 784, 128), layer("ReLU"), layer("Linear", 128, 64), layer("ReLU"), layer("Linear", 64, 10))
FACE_CNN = spec(layer("Conv2d", 1, 8, 7), layer("BatchNorm2d", 8), layer("ReLU"), layer("MaxPool2d", 3),
                layer("Flatten"), layer("Dropout", 0.35), layer("Linear", 8 * 6 * 4, 7))


@checks.public("count_params")
def count_params_mlp(st, ref, rng):
    """The MNIST MLP 784 → 128 → 64 → 10, all trainable."""
    return first_failure([count_case(st, ref, MLP, "MLP 784-128-64-10", **kw) for kw in TRAINABLE_ONLY[:2]],
                         "count_params counts an MLP's weights and biases.")


@checks.public("count_params")
def count_params_batchnorm(st, ref, rng):
    """A small face CNN with BatchNorm2d: its running statistics are buffers, not parameters."""
    return count_case(st, ref, FACE_CNN, "Sequential(Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Dropout, Linear)")


@checks.public("count_params")
def count_params_shared(st, ref, rng):
    """One Linear used twice, tied weights between two layers, one module inside two containers."""
    cases = [(spec(named("shared", layer("Linear", 4, 4)), layer("ReLU"), again("shared")),
              "Sequential(shared Linear(4, 4), ReLU, the same Linear)"),
             (spec(layer("Linear", 6, 6), layer("Tanh"), layer("Linear", 6, 6), tie=(("2.weight", "0.weight"),)),
              "Sequential(Linear(6, 6), Tanh, Linear(6, 6) with the first layer's weight)"),
             (spec(seq(named("block", layer("Linear", 5, 5)), layer("ReLU")),
                   seq(again("block"), layer("ReLU"), layer("Linear", 5, 2))),
              "Sequential(Sequential(block, ReLU), Sequential(the same block, ReLU, Linear))")]
    return first_failure([count_case(st, ref, *case) for case in cases], "count_params counts a shared parameter once.")


@checks.public("count_params")
def count_params_frozen(st, ref, rng):
    """An MLP whose first layer is frozen (requires_grad=False), with and without trainable_only."""
    frozen = spec(layer("Linear", 20, 16), layer("ReLU"), layer("Linear", 16, 3), freeze=("0.weight", "0.bias"))
    label = "MLP 20-16-3 with the first Linear frozen"
    return first_failure([count_case(st, ref, frozen, label, **kw) for kw in TRAINABLE_ONLY],
                         "count_params counts all parameters, or only the trainable ones.")


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
RUNNING_STATS = ("The forward pass ran in train mode: BatchNorm updated running_mean and running_var (it does so even "
                 "under torch.no_grad()). Call model.eval() before the pass and model.train(was_training) after it.")


def rows(table: pd.DataFrame) -> list[tuple]:
    """The four columns as row tuples of plain values (shapes as tuples)."""
    return [(plain(name), plain(kind), tuple(map(plain, shape)) if isinstance(shape, (tuple, list)) else shape,
             plain(params)) for name, kind, shape, params in zip(*(list(table[c]) for c in COLUMNS))]


def table_verdict(call, expected: pd.DataFrame) -> Verdict:
    """Row count, then each row column by column: the first difference is named precisely."""
    if problem := returned_as(call, "a pandas DataFrame", pd.DataFrame, hint=BUILD, none_hint=BUILD):
        return problem
    if missing := [c for c in COLUMNS if c not in call.value.columns]:
        return failed(f"{call.what} returned a DataFrame without the column(s) {', '.join(missing)} (its columns: "
                      f"{', '.join(map(str, call.value.columns))}).", BUILD)
    got, want = rows(call.value), rows(expected)
    got_layers, want_layers = [r[0] for r in got], [r[0] for r in want]
    if len(got) != len(want):
        rows_are = f"{call.what} has {len(got)} rows, expected {len(want)}"
        if got_layers == list(dict.fromkeys(want_layers)):
            return failed(f"{rows_are}: a module called twice appears once (expected layers {want_layers}).", REPEATED)
        if containers := [r[0] for r in got if r[1] in ("Sequential", "ModuleList", "ModuleDict")]:
            return failed(f"{rows_are}: it has rows for containers (layers {containers}), which are not leaf modules.",
                          CONTAINERS)
        return failed(f"{rows_are}, one per leaf-module call: layers {want_layers} (got {got_layers}).",
                      "Register a forward hook on every leaf module; each call adds a row.")
    for i, (g, w) in enumerate(zip(got, want)):
        for column, gv, wv in zip(COLUMNS, g, w):
            where = f"{call.what}: row {i} (layer {w[0]!r})"
            if column == "params" and not is_int(gv):
                return failed(f"{where} has params {gv!r} of type {type(gv).__name__}, expected the int {wv}.",
                              "Count with sum(p.numel() ...).")
            if column == "output_shape" and not (isinstance(gv, tuple) and all(map(is_int, gv))):
                return failed(f"{where} has output_shape {gv!r}, expected the tuple {wv}.",
                              "Store tuple(output.shape).")
            if gv != wv:
                batch = column == "output_shape" and gv == wv[1:]
                return failed(f"{where}: {column} is {gv!r}, expected {wv!r}.",
                              KEEP_BATCH if batch else COLUMN_HINTS[column])
    return passed(f"{call.what} has the right {len(want)} rows: layers {want_layers}.")


def summary_case(st, ref, model, input_shape, state=False):
    """The table, and (with `state`) that the model comes back as it was; `model` as in count_case."""
    module, expected = as_module(model), ref.summary(model, input_shape)  # built before the reference's
    return model_call(st, "summary", module, input_shape, done="is right", state=state, hooks=False,
                      verdict=lambda call: table_verdict(call, expected), running_stats=RUNNING_STATS)


@checks.public("summary")
def summary_small_cnn(st, ref, rng):
    """A small face CNN (Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Dropout, Linear) in eval mode."""
    return summary_case(st, ref, FACE_CNN, (2, 1, 24, 18))


@checks.public("summary")
def summary_nested_repeated(st, ref, rng):
    """Nested Sequentials, and one Linear(8, 8) called twice: it gets two rows."""
    return summary_case(st, ref, spec(seq(layer("Linear", 6, 8), layer("ReLU")), named("shared", layer("Linear", 8, 8)),
                                      layer("Tanh"), again("shared"), seq(seq(layer("Linear", 8, 3)))), (2, 6))


@checks.public("summary")
def summary_restores_train_mode(st, ref, rng):
    """An MLP with BatchNorm1d and Dropout in train mode: eval mode during the pass, train mode after."""
    mlp = spec(layer("Linear", 10, 16), layer("BatchNorm1d", 16), layer("ReLU"), layer("Dropout", 0.5),
               layer("Linear", 16, 4), training=True)
    return summary_case(st, ref, mlp, (4, 10), state=True)


@checks.public("lecture_answers")
def lecture_cifar_logreg(st, ref, rng):
    """cifar_logreg_params: one Linear from a 3×32×32 image to 10 classes."""
    return int_answer(student_value(st, "cifar_logreg_params"), ref.cifar_logreg_params, [
        Misconception("the bias is missing", LINEAR_BIAS, 3 * 32 * 32 * 10),
        Misconception("the colour channels are missing", "A CIFAR image has 3 × 32 × 32 = 3072 values.",
                      32 * 32 * 10 + 10)], verb="is")


@checks.public("lecture_answers")
def lecture_conv_1_6_3(st, ref, rng):
    """conv_1_6_3_params: Conv2d(1, 6, 3)."""
    return int_answer(student_value(st, "conv_1_6_3_params"), ref.conv_1_6_3_params,
                      [Misconception("the bias is missing", CONV_BIAS, 6 * 9)], verb="is")


@checks.public("lecture_answers")
def lecture_lfw_cnn(st, ref, rng):
    """lfw_cnn_params: the face CNN with its Linear(70848, 7) head."""
    expected, bn_params, bn_buffers = ref.lfw_cnn_params, 2 * 32, 2 * 32 + 1
    return int_answer(student_value(st, "lfw_cnn_params"), expected, verb="is", misconceptions=[
        Misconception("BatchNorm2d's parameters are missing", "BatchNorm2d(32) learns a weight and a bias per "
                      "channel: 64 parameters.", expected - bn_params),
        Misconception("BatchNorm2d's buffers were counted", BUFFERS, expected + bn_buffers),
        Misconception("the biases are missing", "Conv2d and Linear both have biases (32 and 7).", expected - 32 - 7)])
