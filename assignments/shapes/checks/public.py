"""Public checks of the shapes assignment, which students run while they work. Expected sizes and shapes are
recorded from the reference at build time; a model is a spec (`autograder.checks.models`) that the check and the
reference each build, so a self-check can replay the recorded value."""

from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn

from autograder.checks import (CheckSet, Misconception, Verdict, call_problem, close, exact, failed, first_failure,
                               int_answer, module_snapshot, passed, returned, signature, state_unchanged)
from autograder.checks.models import build, describe, layer, spec

checks = CheckSet()

# ------------------------------------------------------------------------------ conv_output_size

DILATION = ("Dilation spreads the kernel out: a kernel of size k with dilation d spans d*(k-1)+1 input "
            "positions. The output size is floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1.")
PADDING_ONCE = "padding=p adds p positions on *both* sides: the padded size is size + 2*padding."
CEIL = "Round down: a window that would run past the padded input is dropped (floor, `//`)."
CONV_MISTAKES = (("the dilation is ignored", DILATION, "no_dilation"),
                 ("the padding is counted on one side only", PADDING_ONCE, "padding_once"),
                 ("the dilated kernel spans dilation*kernel_size positions", DILATION, "dilation_times_kernel"),
                 ("the division is rounded up", CEIL, "ceil"))


def conv_sizes(st, ref, cases, summary):
    """Each (size, kernel_size, kwargs) case until one fails; kwargs go to the student as given (defaults too)."""
    def case(size, kernel_size, kwargs):
        args = (size, kernel_size, kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1))
        expected = ref.conv_output_size(*args)
        misconceptions = [Misconception(label, hint, ref.conv_output_size_variant(*args, mistake=m))
                          for label, hint, m in CONV_MISTAKES]
        call = st.call("conv_output_size", size, kernel_size, **kwargs,
                       description=signature("conv_output_size", size, kernel_size, **kwargs))
        return int_answer(call, expected, misconceptions)
    return first_failure((case(*c) for c in cases), summary)


@checks.public("conv_output_size")
def conv_output_size_lecture(st, ref, rng):
    """The lecture's layers: 3×3 with padding 1 on 256, the face CNN's 7×7 on 170 and 130, strides 2."""
    return conv_sizes(st, ref, [(256, 3, dict(stride=1, padding=1)), (170, 7, {}), (130, 7, {}),
                                (7, 3, dict(stride=2, padding=1)), (8, 3, dict(stride=2)), (28, 5, dict(padding=2))],
                      "conv_output_size gives the lecture's sizes (stride, padding, floor).")


@checks.public("conv_output_size")
def conv_output_size_dilation(st, ref, rng):
    """Dilated kernels: a 3×3 kernel with dilation 2 spans 5 pixels."""
    return conv_sizes(st, ref, [(10, 3, dict(dilation=2)), (32, 3, dict(padding=2, dilation=2)),
                                (33, 5, dict(stride=2, padding=1, dilation=3))], "conv_output_size handles dilation.")


# ------------------------------------------------------------------------------ pool_output_size

STRIDE_ONE = ("When stride is None it defaults to kernel_size (nn.MaxPool2d(3) moves 3 pixels at a time): "
              "the windows do not overlap.")
POOL_CEIL = "nn.MaxPool2d uses floor mode: a window that would run past the input is dropped (`//`)."
POOL_PADDING = "padding=p adds p positions on both sides before pooling: size + 2*padding."
POOL_MISTAKES = (("the stride defaulted to 1", STRIDE_ONE, "stride_one"),  # only where stride is left out
                 ("the division is rounded up (ceil mode)", POOL_CEIL, "ceil"),
                 ("the padding is ignored", POOL_PADDING, "no_padding"))  # only where there is padding


def pool_sizes(st, ref, cases, summary):
    """Each (size, kernel_size, kwargs) case until one fails; kwargs go to the student as given."""
    def case(size, kernel_size, kwargs):
        args = (size, kernel_size, kwargs.get("stride"), kwargs.get("padding", 0))
        expected = ref.pool_output_size(*args)
        wanted = (kwargs.get("stride") is None, True, bool(kwargs.get("padding")))
        misconceptions = [Misconception(label, hint, ref.pool_output_size_variant(*args, mistake=m))
                          for (label, hint, m), want in zip(POOL_MISTAKES, wanted) if want]
        call = st.call("pool_output_size", size, kernel_size, **kwargs,
                       description=signature("pool_output_size", size, kernel_size, **kwargs))
        return int_answer(call, expected, misconceptions)
    return first_failure((case(*c) for c in cases), summary)


@checks.public("pool_output_size")
def pool_output_size_default_stride(st, ref, rng):
    """MaxPool2d(2) on 256 and 28, MaxPool2d(3) on the face CNN's 164 and 124 (stride left out)."""
    return pool_sizes(st, ref, [(256, 2, {}), (28, 2, {}), (164, 3, {}), (124, 3, {})],
                      "pool_output_size uses stride = kernel_size by default and rounds down.")


# ------------------------------------------------------------------------------ to_channels_first

RESHAPE = ("A plain reshape to (N, C, H, W) reads the pixel values in the wrong order: in (N, H*W, C) the "
           "channels of one pixel are next to each other. Reshape to (N, H, W, C) first, then move the channel "
           "axis with permute(0, 3, 1, 2) (or movedim(-1, 1)).")
TRANSPOSED = "Pixels are in row-major order: pixel i*width + j is at row i, column j; reshape to (N, H, W, C)."
SCALED = "Keep the pixel values as they are: no scaling, only a new layout."
CHANNELS_LAST = "PyTorch wants channels first: (N, C, H, W). Move the channel axis with permute(0, 3, 1, 2)."
CHANNEL_MISTAKES = (("the pixels were reshaped, not permuted", RESHAPE, "reshape"),
                    ("rows and columns are swapped", TRANSPOSED, "transposed"),
                    ("the values were scaled", SCALED, "scaled"),
                    ("the result is channels-last", CHANNELS_LAST, "channels_last"))


def channels_case(st, ref, pixels, height, width):
    """`pixels` goes to the student as given (list, ndarray or tensor); the reference sees a tensor."""
    t = torch.as_tensor(np.asarray(pixels))
    expected = ref.to_channels_first(t, height, width)
    misconceptions = [Misconception(label, hint, ref.channels_first_variant(t, height, width, mistake=m))
                      for label, hint, m in CHANNEL_MISTAKES]
    tensor = isinstance(pixels, torch.Tensor)
    kind = (f"tensor[{str(pixels.dtype).removeprefix('torch.')}]" if tensor else
            f"ndarray[{pixels.dtype}]" if isinstance(pixels, np.ndarray) else type(pixels).__name__)
    call = st.call("to_channels_first", pixels, height, width,
                   description=f"to_channels_first({kind} of shape {tuple(t.shape)}, height={height}, width={width})")
    return close(call, expected, rtol=0, atol=0, misconceptions=misconceptions, device=st.device if tensor else None)


def pixel_values(rng, *shape):
    return torch.randint(0, 256, shape, generator=rng)


@checks.public("to_channels_first")
def to_channels_first_grayscale_list(st, ref, rng):
    """Two 4×3 grayscale images given as a Python list of pixel rows, like LFW's train["pixels"]."""
    return channels_case(st, ref, pixel_values(rng, 2, 12).tolist(), 4, 3)


@checks.public("to_channels_first")
def to_channels_first_colour_tensor(st, ref, rng):
    """Three 5×4 RGB images as a float tensor of shape (3, 20, 3): channels of a pixel side by side."""
    return channels_case(st, ref, pixel_values(rng, 3, 20, 3).float(), 5, 4)


# ------------------------------------------------------------------------------ trace_shapes

def shapes_verdict(call, expected, model) -> Verdict:
    """A list of shape tuples equal to `expected`, with the first differing child named."""
    if problem := returned(call, "a list of shapes"):
        return problem
    value = call.value
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in value):
        return failed(f"{call.what} returned {call.type or type(value).__name__}, expected a list of tuples.",
                      "Collect tuple(x.shape) after each layer in a list.")
    got = [tuple(s) for s in value]
    if not all(isinstance(d, int) and not isinstance(d, bool) for s in got for d in s):
        return failed(f"{call.what} returned shapes that are not tuples of ints: {got[:3]}...",
                      "Use tuple(x.shape): torch.Size holds ints.")
    children = [type(m).__name__ for m in model]
    if got == expected:
        return passed(f"{call.what} gives {len(expected)} shapes, ending in {expected[-1]}.")
    if got == expected[-1:] and len(expected) > 1:
        return failed(f"{call.what} returned only the final shape {got[0]}; expected one shape per child "
                      f"({len(expected)}).", "Run the children one by one (`for layer in model: x = layer(x)`) "
                      "and record the shape after each.")
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return failed(f"{call.what} starts with the input shape {got[0]}; expected only the outputs of the "
                      f"{len(expected)} children.", "Record the shape after each child, not before the first.")
    if [s[1:] for s in expected] == got:
        return failed(f"{call.what} left out the batch dimension: got {got[0]}..., expected {expected[0]}....",
                      "input_shape includes the batch size; keep it in every shape (tuple(x.shape)).")
    if len(got) != len(expected):
        return failed(f"{call.what} returned {len(got)} shapes, expected {len(expected)} (one per direct child: "
                      f"{', '.join(children)}).", "Record one shape after each direct child of the Sequential.")
    i = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
    return failed(f"{call.what}: after child {i} ({children[i]}) the shape is {got[i]}, expected {expected[i]}.",
                  "Run a real forward pass through each child on a zero tensor of input_shape.")


RUNNING_STATS = ("BatchNorm updates running_mean and running_var with every batch it sees in train mode, even "
                 "under torch.no_grad(). Remember was_training = model.training, call model.eval() before the "
                 "pass and model.train(was_training) after it.")


def trace_case(st, ref, model, input_shape, state=False):
    """Shapes and, with `state`, that the model comes back as it was: weights, buffers, mode, hooks (BatchNorm's
    statistics named). `model` is a spec (public checks) or a grader-built module (hidden checks)."""
    module = model if isinstance(model, nn.Module) else build(model)
    before = module_snapshot(module) if state else None
    expected = ref.trace_shapes(model, input_shape)
    call = st.call("trace_shapes", module, input_shape, return_args=state,
                   description=f"trace_shapes({describe(module)}, {input_shape})")
    verdicts = [shapes_verdict(call, expected, module)]
    if state and call.ok:
        kept = state_unchanged(f"trace_shapes on a model in {'train' if module.training else 'eval'} mode",
                               before, call.args[0])
        verdicts.append(failed(kept.message, RUNNING_STATS) if "running_" in kept.message and not kept.passed
                        else kept)
    return first_failure(verdicts, f"{call.what} gives the right shapes" + (" and leaves the model as it was."
                                                                            if state else "."))


LECTURE_CNN = spec(
    layer("Conv2d", 3, 16, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("Conv2d", 16, 16, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("MaxPool2d", kernel_size=2, stride=2),
    layer("Conv2d", 16, 32, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("Conv2d", 32, 32, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("MaxPool2d", kernel_size=2, stride=2),
)


@checks.public("trace_shapes")
def trace_shapes_lecture_cnn(st, ref, rng):
    """The lecture's 4-conv/2-pool CNN on a (2, 3, 32, 32) batch."""
    return trace_case(st, ref, LECTURE_CNN, (2, 3, 32, 32))


@checks.public("trace_shapes")
def trace_shapes_leaves_model_as_it_was(st, ref, rng):
    """A face-CNN-like model with BatchNorm2d and Dropout, in train mode: nothing may change."""
    model_spec = spec(layer("Conv2d", 1, 4, 3), layer("BatchNorm2d", 4), layer("ReLU"), layer("MaxPool2d", 2),
                      layer("Flatten"), layer("Dropout", 0.35), layer("Linear", 4 * 5 * 4, 3), training=True)
    return trace_case(st, ref, model_spec, (4, 1, 12, 10), state=True)


# ------------------------------------------------------------------------------ flatten_features

NO_CHANNELS = "Flatten keeps every channel: features = channels × height × width of the last feature map."
INPUT_CHANNELS = "The number of channels after the stack is the last Conv2d's out_channels, not the input's."


def flatten_case(st, ref, features, input_shape, hints=(NO_CHANNELS, INPUT_CHANNELS)):
    """`features`: a spec (public checks) or a grader-built module (hidden ones). `hints` are those of the known
    mistakes, channels missing and input channels used, in this order; a mistake without a hint is not named."""
    module = features if isinstance(features, nn.Module) else build(features)
    expected = ref.flatten_features(features, input_shape)
    out = [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]
    wrong = [("the channels are missing", expected // out[-1]),
             ("the input channels were used", expected // out[-1] * input_shape[0])] if out else []
    call = st.call("flatten_features", module, input_shape,
                   description=f"flatten_features({describe(module)}, {input_shape})")
    return int_answer(call, expected, [Misconception(label, hint, v) for (label, v), hint in zip(wrong, hints)])


@checks.public("flatten_features")
def flatten_features_small_face_cnn(st, ref, rng):
    """The face CNN's feature stack (Conv2d 7×7, BatchNorm2d, ReLU, MaxPool2d(3)) on a 1×40×30 image."""
    features = spec(layer("Conv2d", 1, 8, 7), layer("BatchNorm2d", 8), layer("ReLU"), layer("MaxPool2d", 3))
    return flatten_case(st, ref, features, (1, 40, 30))


# ------------------------------------------------------------------------------ lecture_answers

LAYER_BY_LAYER = ("Follow the shape layer by layer: a 3×3 conv with padding 1 keeps H and W, each MaxPool2d(2) "
                  "halves them.")


@checks.public("lecture_answers")
def lecture_lfw_linear_length(st, ref, rng):
    """lfw_linear_length: the features entering Linear in the face CNN (1×170×130 input)."""
    no_pool = Misconception("the MaxPool2d(3) is left out", "After the 7×7 conv (164×124), MaxPool2d(3) divides "
                            "each side by 3, rounding down.", 32 * 164 * 124)
    stride_one = Misconception("the pool's stride defaulted to 1", STRIDE_ONE, 32 * 162 * 122)
    call = replace(st.value("lfw_linear_length"), description="`lfw_linear_length`")
    return int_answer(call, ref.lfw_linear_length, [no_pool, stride_one], verb="is")


@checks.public("lecture_answers")
def lecture_cnn_shape(st, ref, rng):
    """lecture_cnn_output_shape: the lecture's 4-conv/2-pool net on a (16, 3, 256, 256) batch."""
    expected = tuple(ref.lecture_cnn_output_shape)
    n, c, h, w = expected
    misconceptions = [
        Misconception("the batch dimension is missing", "Shapes in PyTorch include the batch: (N, C, H, W).", (c, h, w)),
        Misconception("the pools are left out", "Each MaxPool2d(2, 2) halves height and width.", (n, c, 4 * h, 4 * w)),
        Misconception("the channels are those of the input", "The last Conv2d has 32 output channels.", (n, 3, h, w)),
    ]
    call = replace(st.value("lecture_cnn_output_shape"), description="`lecture_cnn_output_shape`")
    if problem := call_problem(call):
        return problem
    value = call.value
    if not isinstance(value, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        shown = "..." if getattr(value, "type", None) == "ellipsis" else getattr(value, "repr", repr(value))
        return failed(f"{call.what} is {shown}, expected a tuple of ints.",
                      "Write the shape as a tuple, e.g. (16, 3, 256, 256); a torch.Size is fine too.")
    verdict = exact(replace(call, value=tuple(value)), expected, misconceptions=misconceptions)
    return verdict if verdict.passed or verdict.hint else replace(verdict, hint=LAYER_BY_LAYER)  # no known mistake
