"""Public checks of the shapes assignment. Expected values are recorded from the reference at build time; a model
is a spec (`autograder.checks.models`) that check and reference each build, so a self-check replays the value."""

from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn

from autograder.checks import (CheckSet, Misconception, as_module, call_problem, close, describe, exact, failed,
                               first_failure, int_answer, is_int, known_mistakes, layer, model_call, random_pixels,
                               shape_list, spec, student_call, student_value)

checks = CheckSet()

DILATION = ("Dilation spreads the kernel out: a kernel of size k with dilation d spans d*(k-1)+1 input "
            "positions. The output size is floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1.")
STRIDE_ONE = ("When stride is None it defaults to kernel_size (nn.MaxPool2d(3) moves 3 pixels at a time): "
              "the windows do not overlap.")
# Known mistakes, rows (label, hint, mistake): the mistake as the reference's `..._variant` functions make it
SIZE_MISTAKES = {
    "conv_output_size": (
        ("the dilation is ignored", DILATION, "no_dilation"),
        ("the padding is counted on one side only",
         "padding=p adds p positions on *both* sides: the padded size is size + 2*padding.", "padding_once"),
        ("the dilated kernel spans dilation*kernel_size positions", DILATION, "dilation_times_kernel"),
        ("the division is rounded up", "Round down: a window that would run past the padded input is dropped "
         "(floor, `//`).", "ceil")),
    "pool_output_size": (
        ("the stride defaulted to 1", STRIDE_ONE, "stride_one"),
        ("the division is rounded up (ceil mode)",
         "nn.MaxPool2d uses floor mode: a window that would run past the input is dropped (`//`).", "ceil"),
        ("the padding is ignored", "padding=p adds p positions on both sides before pooling: size + 2*padding.",
         "no_padding")),
}
CHANNEL_MISTAKES = (
    ("the pixels were reshaped, not permuted", "A plain reshape to (N, C, H, W) reads the pixel values in the wrong "
     "order: in (N, H*W, C) the channels of one pixel are next to each other. Reshape to (N, H, W, C) first, then "
     "move the channel axis with permute(0, 3, 1, 2) (or movedim(-1, 1)).", "reshape"),
    ("rows and columns are swapped", "Pixels are in row-major order: pixel i*width + j is at row i, column j; "
     "reshape to (N, H, W, C).", "transposed"),
    ("the values were scaled", "Keep the pixel values as they are: no scaling, only a new layout.", "scaled"),
    ("the result is channels-last", "PyTorch wants channels first: (N, C, H, W). Move the channel axis with "
     "permute(0, 3, 1, 2).", "channels_last"))
RUNNING_STATS = ("BatchNorm updates running_mean and running_var with every batch it sees in train mode, even "
                 "under torch.no_grad(). Remember was_training = model.training, call model.eval() before the "
                 "pass and model.train(was_training) after it.")
NO_CHANNELS = "Flatten keeps every channel: features = channels × height × width of the last feature map."
INPUT_CHANNELS = "The number of channels after the stack is the last Conv2d's out_channels, not the input's."
CHANNEL_COUNT = ("x.shape[1] of a feature map (N, C, H, W) is its channel count. Flatten counts every value of one "
                 "input's feature map: run torch.zeros(1, *input_shape) through `features` and return "
                 "out.flatten(1).shape[1] (or out.numel()).")
LECTURE_CNN = spec(
    layer("Conv2d", 3, 16, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("Conv2d", 16, 16, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("MaxPool2d", kernel_size=2, stride=2),
    layer("Conv2d", 16, 32, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("Conv2d", 32, 32, kernel_size=3, stride=1, padding=1), layer("LeakyReLU", inplace=True),
    layer("MaxPool2d", kernel_size=2, stride=2),
)


def sizes(st, ref, name, cases, summary):
    """`name` on each (size, kernel_size, kwargs) case until one fails; kwargs go to the student and the reference
    as given (defaults too)."""
    def case(size, kernel_size, kwargs):
        expected = getattr(ref, name)(size, kernel_size, **kwargs)
        variant = getattr(ref, f"{name}_variant")
        known = known_mistakes(SIZE_MISTAKES[name], lambda m: variant(size, kernel_size, **kwargs, mistake=m))
        return int_answer(student_call(st, name, size, kernel_size, **kwargs), expected, known)
    return first_failure((case(*c) for c in cases), summary)


@checks.public("conv_output_size")
def conv_output_size_lecture(st, ref, rng):
    """The lecture's layers: 3×3 with padding 1 on 256, the face CNN's 7×7 on 170 and 130, strides 2."""
    return sizes(st, ref, "conv_output_size", [(256, 3, dict(stride=1, padding=1)), (170, 7, {}), (130, 7, {}),
                                               (7, 3, dict(stride=2, padding=1)), (8, 3, dict(stride=2)),
                                               (28, 5, dict(padding=2))],
                 "conv_output_size gives the lecture's sizes (stride, padding, floor).")


@checks.public("conv_output_size")
def conv_output_size_dilation(st, ref, rng):
    """Dilated kernels: a 3×3 kernel with dilation 2 spans 5 pixels."""
    return sizes(st, ref, "conv_output_size", [(10, 3, dict(dilation=2)), (32, 3, dict(padding=2, dilation=2)),
                                               (33, 5, dict(stride=2, padding=1, dilation=3))],
                 "conv_output_size handles dilation.")


@checks.public("pool_output_size")
def pool_output_size_default_stride(st, ref, rng):
    """MaxPool2d(2) on 256 and 28, MaxPool2d(3) on the face CNN's 164 and 124 (stride left out)."""
    return sizes(st, ref, "pool_output_size", [(256, 2, {}), (28, 2, {}), (164, 3, {}), (124, 3, {})],
                 "pool_output_size uses stride = kernel_size by default and rounds down.")


def channels_case(st, ref, pixels, height, width):
    """`pixels` goes to the student as given (list, ndarray or tensor); the reference sees a tensor."""
    t = torch.as_tensor(np.asarray(pixels))
    expected = ref.to_channels_first(t, height, width)
    known = known_mistakes(CHANNEL_MISTAKES, lambda m: ref.channels_first_variant(t, height, width, mistake=m))
    tensor = isinstance(pixels, torch.Tensor)
    kind = (f"tensor[{str(pixels.dtype).removeprefix('torch.')}]" if tensor else
            f"ndarray[{pixels.dtype}]" if isinstance(pixels, np.ndarray) else type(pixels).__name__)
    call = st.call("to_channels_first", pixels, height, width,
                   description=f"to_channels_first({kind} of shape {tuple(t.shape)}, height={height}, width={width})")
    return close(call, expected, rtol=0, atol=0, misconceptions=known, device=st.device if tensor else None)


@checks.public("to_channels_first")
def to_channels_first_grayscale_list(st, ref, rng):
    """Two 4×3 grayscale images given as a Python list of pixel rows, like LFW's train["pixels"]."""
    return channels_case(st, ref, random_pixels(rng, 2, 12).tolist(), 4, 3)


@checks.public("to_channels_first")
def to_channels_first_colour_tensor(st, ref, rng):
    """Three 5×4 RGB images as a float tensor of shape (3, 20, 3): channels of a pixel side by side."""
    return channels_case(st, ref, random_pixels(rng, 3, 20, 3).float(), 5, 4)


def trace_case(st, ref, model, input_shape, state=False):
    """Shapes and, with `state`, that the model comes back as it was: weights, buffers, mode, hooks (BatchNorm's
    statistics named). `model` is a spec (public checks) or a grader-built module (hidden checks)."""
    module, expected = as_module(model), ref.trace_shapes(model, input_shape)
    return model_call(st, "trace_shapes", module, input_shape, state=state, running_stats=RUNNING_STATS,
                      verdict=lambda call: shape_list(call, expected, [type(m).__name__ for m in module]),
                      done="gives the right shapes")


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


def flatten_case(st, ref, features, input_shape, hints=(NO_CHANNELS, INPUT_CHANNELS)):
    """`features`: a spec (public checks) or a grader-built module (hidden ones). `hints` are those of the known
    mistakes, channels missing and input channels used, in this order; a mistake without a hint is not named. The
    channel count returned for the feature count is always named."""
    module, expected = as_module(features), ref.flatten_features(features, input_shape)
    out = [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]
    wrong = [("the channels are missing", expected // out[-1]),
             ("the input channels were used", expected // out[-1] * input_shape[0])] if out else []
    call = st.call("flatten_features", module, input_shape,
                   description=f"flatten_features({describe(module)}, {input_shape})")
    channels = out[-1] if out else input_shape[0]
    known = [Misconception(label, hint, v) for (label, v), hint in zip(wrong, hints)]
    known.append(Misconception("that is the number of channels of the last feature map, not of features",
                               CHANNEL_COUNT, channels))
    return int_answer(call, expected, known)


@checks.public("flatten_features")
def flatten_features_small_face_cnn(st, ref, rng):
    """The face CNN's feature stack (Conv2d 7×7, BatchNorm2d, ReLU, MaxPool2d(3)) on a 1×40×30 image."""
    features = spec(layer("Conv2d", 1, 8, 7), layer("BatchNorm2d", 8), layer("ReLU"), layer("MaxPool2d", 3))
    return flatten_case(st, ref, features, (1, 40, 30))


@checks.public("lecture_answers")
def lecture_lfw_linear_length(st, ref, rng):
    """lfw_linear_length: the features entering Linear in the face CNN (1×170×130 input)."""
    return int_answer(student_value(st, "lfw_linear_length"), ref.lfw_linear_length, verb="is", misconceptions=[
        Misconception("the MaxPool2d(3) is left out", "After the 7×7 conv (164×124), MaxPool2d(3) divides each side "
                      "by 3, rounding down.", 32 * 164 * 124),
        Misconception("the pool's stride defaulted to 1", STRIDE_ONE, 32 * 162 * 122)])


@checks.public("lecture_answers")
def lecture_cnn_shape(st, ref, rng):
    """lecture_cnn_output_shape: the lecture's 4-conv/2-pool net on a (16, 3, 256, 256) batch."""
    n, c, h, w = expected = tuple(ref.lecture_cnn_output_shape)
    known = [Misconception("the batch dimension is missing", "Shapes in PyTorch include the batch: (N, C, H, W).",
                           (c, h, w)),
             Misconception("the pools are left out", "Each MaxPool2d(2, 2) halves height and width.",
                           (n, c, 4 * h, 4 * w)),
             Misconception("the channels are those of the input", "The last Conv2d has 32 output channels.",
                           (n, 3, h, w))]
    call = student_value(st, "lecture_cnn_output_shape")
    if problem := call_problem(call):
        return problem
    value = call.value
    if not (isinstance(value, (tuple, list)) and all(map(is_int, value))):
        shown = "..." if getattr(value, "type", None) == "ellipsis" else getattr(value, "repr", repr(value))
        return failed(f"{call.what} is {shown}, expected a tuple of ints.",
                      "Write the shape as a tuple, e.g. (16, 3, 256, 256); a torch.Size is fine too.")
    return exact(replace(call, value=tuple(value)), expected, misconceptions=known,
                 hint="Follow the shape layer by layer: a 3×3 conv with padding 1 keeps H and W, each MaxPool2d(2) "
                      "halves them.")
