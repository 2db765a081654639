"""Public checks of the gan assignment: students run these while they work.

Networks are built inside the student's kernel (`st.call("Generator", 64, then=[...])`) and run
on grader noise; `weights_init` is called on grader-made layers and the layers it leaves are
tested statistically; `train_step` gets small grader-made models and optimisers and is compared
with the reference step from the same weights and seed; the trained `G` is sampled in eval mode.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from autograder.checks import (CheckSet, Verdict, build, call_problem, failed, first_failure, layer, passed, randint,
                               randn, returned, spec, states_close)

checks = CheckSet()

IMAGE = (1, 28, 28)
TANH = ("End the generator with nn.Tanh(): the training images are scaled to [-1, 1] "
        "(Normalize((0.5,), (0.5,))), so generated images must live there too.")


# ---------------------------------------------------------------------------- constructing networks

def network_case(st, cls, ctor_args, inputs, seed, verdict, summary, latent_size=None, eval_mode=False,
                 warmup=()) -> Verdict:
    """Construct `cls(*ctor_args)` in the kernel (seeded) and move it to the grading device, run it on the
    `warmup` inputs in train mode (which fills batch-norm running statistics), then (in eval mode if asked)
    on each input, without gradients; `verdict(what, output, n)` judges each output."""
    shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
    mode = f" in eval mode (after {len(warmup)} batches in train mode)" if eval_mode and warmup else (
        " in eval mode" if eval_mode else "")
    what = f"{cls}({', '.join(map(repr, ctor_args))}){mode} on input {shapes}"
    then = (([("to", (st.device,), {})] if st.device != "cpu" else []) + [(None, (x,), {}) for x in warmup]
            + ([("eval", (), {})] if eval_mode else []) + [(None, (x,), {}) for x in inputs])
    call = st.call(cls, *ctor_args, seed=seed, no_grad=True, then=then, description=what)
    outputs = call.value[-len(inputs):] if call.ok and isinstance(call.value, list) else None
    problem = call_problem(call)
    if problem and call.error and latent_size is not None and "channels" in call.error:
        return failed(problem.message, f"The first ConvTranspose2d must take latent_size = {latent_size} input "
                                       "channels: use the constructor's argument, not the global LATENT_SIZE.")
    return problem or first_failure((verdict(call.what, out, len(x)) for x, out in zip(inputs, outputs)),
                                    f"{call.what}: {summary}.")


def output_problem(what, out, shape, shape_hint) -> Verdict | None:
    """Why a network's output is not a finite float32 tensor of `shape`, or None."""
    if not isinstance(out, torch.Tensor):
        return failed(f"{what} returned {'None' if out is None else type(out).__name__}, expected a tensor of "
                      f"shape {shape}.", "forward must return the network's output (is a `return` missing?).")
    if tuple(out.shape) != shape:
        return failed(f"{what} returned shape {tuple(out.shape)}, expected {shape}.", shape_hint)
    if out.dtype != torch.float32:
        return failed(f"{what} returned dtype {out.dtype}, expected torch.float32.")
    if not torch.isfinite(out).all():
        return failed(f"{what} returned NaN or infinite values.")
    return None


def images_verdict(what, out, n) -> Verdict:
    """Generator output: a float tensor (n, 1, 28, 28) in [-1, 1] that depends on the noise."""
    problem = output_problem(what, out, (n, *IMAGE), "Follow the table: 1×1 → 7×7 (kernel 7, stride 1, padding 0) "
                             "→ 14×14 → 28×28 (kernel 4, stride 2, padding 1), with 1 output channel.")
    if problem:
        return problem
    lo, hi = float(out.min()), float(out.max())
    if lo < -1 - 1e-6 or hi > 1 + 1e-6:
        return failed(f"{what} returned values from {lo:.3g} to {hi:.3g}, outside [-1, 1]: "
                      "is the final tanh missing?", TANH)
    if lo >= 0 and out.numel() >= 1000:
        return failed(f"{what} returned only values in [0, {hi:.3g}]: the last activation looks like a sigmoid "
                      "or ReLU, which cannot give the background value -1.", TANH)
    if n > 1 and float((out - out[:1]).abs().max()) < 1e-6:
        return failed(f"{what} returned the same image for every noise vector.",
                      "The image must be computed from the noise z passed to forward.")
    return passed(f"{what} returned images of shape {tuple(out.shape)} in [{lo:.2f}, {hi:.2f}].")


def generator_case(st, latent_size, batches, seed, eval_mode=False, warmup=0) -> Verdict:
    g = torch.Generator().manual_seed(seed)
    zs = [randn(g, b, latent_size, 1, 1) for b in batches]
    warm = [randn(g, 2, latent_size, 1, 1) for _ in range(warmup)]
    return network_case(st, "Generator", (latent_size,), zs, seed, images_verdict,
                        "images of shape (N, 1, 28, 28) in [-1, 1]", latent_size, eval_mode, warm)


def probabilities_verdict(what, out, n) -> Verdict:
    """Discriminator output: a float tensor (n, 1) of probabilities."""
    hint = ("Keep the shape (N, 1): end with nn.Flatten() and nn.Sigmoid(), and do not squeeze() or view(-1) inside "
            "forward." if isinstance(out, torch.Tensor) and out.numel() == n else "The last Conv2d(64, 1, 7) must see "
            "the whole 7×7 map: 28 → 14 → 7 → 1 (kernel 4, stride 2, padding 1 twice), then nn.Flatten().")
    problem = output_problem(what, out, (n, 1), hint)
    if problem:
        return problem
    lo, hi = float(out.min()), float(out.max())
    if lo < 0 or hi > 1:
        return failed(f"{what} returned values from {lo:.3g} to {hi:.3g}, not probabilities: "
                      "is the final sigmoid missing?",
                      "End the discriminator with nn.Sigmoid(): nn.BCELoss expects probabilities in (0, 1).")
    return passed(f"{what} returned probabilities of shape ({n}, 1).")


def discriminator_case(st, batches, seed, eval_mode=False) -> Verdict:
    g = torch.Generator().manual_seed(seed)
    xs = [torch.tanh(2 * randn(g, b, *IMAGE)) for b in batches]
    return network_case(st, "Discriminator", (), xs, seed, probabilities_verdict, "probabilities of shape (N, 1)",
                        eval_mode=eval_mode)


@checks.public("generator", weight=2)
def generator_shape_and_range(st, ref, rng):
    """Generator(64) on 16 noise vectors: shape (16, 1, 28, 28), values in [-1, 1]."""
    return generator_case(st, 64, [16], randint(rng, 0, 2**30))


@checks.public("discriminator", weight=2)
def discriminator_shape_and_range(st, ref, rng):
    """Discriminator() on 8 images: probabilities of shape (8, 1)."""
    return discriminator_case(st, [8], randint(rng, 0, 2**30))


# ---------------------------------------------------------------------------- weights_init

def reinit(st, layer, seed, what):
    """weights_init(layer) in the kernel; returns the Call and the layer's state after it (or None)."""
    call = st.call("weights_init", layer, seed=seed, return_args=True, description=f"weights_init({what})")
    after = call.args[0] if call.ok and call.args else None
    return call, (after.state if hasattr(after, "state") else None)


def normal_verdict(what, before, after, mean, std, kind) -> Verdict:
    """`after` looks like a sample of N(mean, std²); `before` is what the grader put there."""
    if torch.equal(before, after):
        hint = {"conv": "Handle nn.Conv2d and nn.ConvTranspose2d (one is not a subclass of the other): "
                        "isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)).",
                "bn": "Handle nn.BatchNorm2d too: its weight ~ N(1, 0.02²) and its bias set to 0."}[kind]
        return failed(f"{what} was left as it was: weights_init did not re-initialise it.", hint)
    n = after.numel()
    m, s = float(after.mean()), float(after.std())
    near = float(((after - mean).abs() < std).double().mean())
    ok = (abs(m - mean) <= 6 * std / math.sqrt(n) + 1e-4 and abs(s - std) <= 6 * std / math.sqrt(2 * n) + 2e-4
          and abs(near - 0.6827) <= 6 * math.sqrt(0.22 / n) + 0.005)
    stats = f"mean {m:.4f}, std {s:.4f}"
    if ok:
        return passed(f"{what}: {stats}, as N({mean:g}, {std:g}²).")
    for wrong, why, hint in (
            (abs(s - 10 * std) < std, "the standard deviation is 0.2, ten times too large",
             "The standard deviation is 0.02: nn.init.normal_ takes the mean, then the std."),
            (abs(s - std**2) < std**2 / 2, "the standard deviation is 0.0004 = 0.02², the variance",
             "The third argument of nn.init.normal_ is the standard deviation: 0.02."),
            (kind == "conv" and abs(m - 1) < 0.05, "the convolution weights are centred on 1",
             "Convolution weights have mean 0; mean 1 is for BatchNorm2d weights."),
            (kind == "bn" and abs(m) < 0.05, "the BatchNorm2d weights are centred on 0, not 1",
             "BatchNorm weights scale the normalised activations: start them near 1 (mean 1, std 0.02).")):
        if wrong:
            return failed(f"{what}: {stats}: {why}.", hint)
    return failed(f"{what}: {stats}, {near:.1%} within one std of {mean:g}; expected N({mean:g}, {std:g}²) "
                  "(68.3% within one std).",
                  f"Draw from a normal distribution (nn.init.normal_) with mean {mean:g} and std 0.02.")


def fixed(layer, value=0.5):
    """A layer whose parameters hold a known value, so 'left untouched' is visible."""
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(value)
    return layer


def short(layer) -> str:
    """`Conv2d(64, 128, kernel_size=(4, 4), stride=(1, 1))` → `Conv2d(64, 128, kernel_size=(4, 4), ...)`."""
    text = " ".join(repr(layer).split())
    return text if len(text) <= 60 else text[:57].rsplit(",", 1)[0] + ", ...)"


def conv_case(st, layer, seed) -> Verdict:
    what = short(layer)
    before = layer.weight.detach().clone()
    call, state = reinit(st, layer, seed, what)
    return call_problem(call) or normal_verdict(f"{what} weight", before, state["weight"], 0.0, 0.02, "conv")


def batchnorm_case(st, layer, seed) -> Verdict:
    what = f"BatchNorm2d({layer.num_features})"
    before = fixed(layer, 0.5).weight.detach().clone()
    call, state = reinit(st, layer, seed, what)
    verdict = call_problem(call) or normal_verdict(f"{what} weight", before, state["weight"], 1.0, 0.02, "bn")
    if not verdict.passed:
        return verdict
    bias = state["bias"]
    if torch.equal(bias, torch.full_like(bias, 0.5)):
        return failed(f"{what}: the bias was left as it was (0.5); it must be set to 0.",
                      "Add nn.init.constant_(m.bias, 0.0) for BatchNorm2d.")
    if bias.abs().max() > 0:
        return failed(f"{what}: the bias is not zero (values up to {float(bias.abs().max()):.3g}).",
                      "The BatchNorm2d bias is set to exactly 0: nn.init.constant_(m.bias, 0.0).")
    return passed(f"{what}: weight ~ N(1, 0.02²) and bias 0.")


@checks.public("weights_init")
def weights_init_convolutions(st, ref, rng):
    """Conv2d(64, 128, 4) and ConvTranspose2d(128, 64, 4): weights ~ N(0, 0.02²)."""
    seed = randint(rng, 0, 2**30)
    layers = [fixed(nn.Conv2d(64, 128, 4)), fixed(nn.ConvTranspose2d(128, 64, 4))]
    return first_failure((conv_case(st, layer, seed + i) for i, layer in enumerate(layers)),
                         "Conv2d and ConvTranspose2d weights are drawn from N(0, 0.02²).")


@checks.public("weights_init")
def weights_init_batchnorm(st, ref, rng):
    """BatchNorm2d(1024): weight ~ N(1, 0.02²), bias 0."""
    return batchnorm_case(st, nn.BatchNorm2d(1024), randint(rng, 0, 2**30))


# ---------------------------------------------------------------------------- train_step

def small_gan(latent_size, width):
    """A generator (N, latent, 1, 1) → (N, 1, 8, 8) and a discriminator (N, 1, 8, 8) → (N, 1), as tuples of
    library layers: the reference's `build` takes such a tuple, not a library `spec`."""
    g_spec = (layer("ConvTranspose2d", latent_size, 2 * width, 4, 1, 0, bias=False), layer("BatchNorm2d", 2 * width),
              layer("ReLU"), layer("ConvTranspose2d", 2 * width, 1, 4, 2, 1, bias=False), layer("Tanh"))
    d_spec = (layer("Conv2d", 1, width, 4, 2, 1, bias=False), layer("LeakyReLU", 0.2),
              layer("Conv2d", width, 1, 4, 1, 0, bias=False), layer("Flatten"), layer("Sigmoid"))
    return g_spec, d_spec


KEYS = ("loss_d", "loss_g", "d_real", "d_fake")
WRONG_STEPS = {
    "label_zero": ("the generator was trained toward label 0 (fake)",
                   "In step 2 the fake images are labelled as real: criterion(D(fake).view(-1), ones). "
                   "With zeros the generator learns to look fake."),
    "g_first": ("the generator step ran against the discriminator before its update",
                "Do step 1 (the discriminator, ending with opt_d.step()) first, then step 2 with a fresh "
                "D(fake) from the updated discriminator."),
}
NO_DETACH = ("Without .detach(), loss_d.backward() ran back through G and freed its graph, so loss_g.backward() "
             "could not. Use D(fake.detach()) in step 1, and the same `fake` (not detached) in step 2.")
STALE_D = ("The generator loss used the discriminator's output from before opt_d.step(). Compute "
           "D(fake).view(-1) again after the discriminator update.")
RAISED = (  # words of an error, what they reveal (None: the error says it), hint
    ("backward through the graph a second time", "the fake batch was not detached in the discriminator step",
     NO_DETACH),
    ("modified by an inplace operation", "the generator loss used a stale discriminator output", STALE_D),
    ("channels", None, "Draw the noise with the latent_size argument: torch.randn(b, latent_size, 1, 1, "
                       "device=real.device), not the global LATENT_SIZE."),
)


# Adam's first step moves each parameter by about lr * g / (|g| + eps): with the default eps = 1e-8 a
# gradient element near zero makes that move depend on rounding (other thread counts, summation orders),
# so the grader's optimisers use eps = 1e-4, which bounds that effect far below the tolerances.
ADAM_EPS = 1e-4


def agree(actual, expected, keys=None) -> bool:
    """Two states agree on `keys` (default: all of expected's; keys only `actual` has are not compared)."""
    return states_close(actual, expected, rtol=1e-4, atol=1e-6, keys=expected if keys is None else keys)


def train_step_case(st, ref, rng, latent_size, batch, width, lr, betas=(0.5, 0.999)) -> Verdict:
    g_spec, d_spec = small_gan(latent_size, width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(randint(rng, 0, 2**30))
        G, D = build(spec(*g_spec, training=True)), build(spec(*d_spec, training=True))
    real = torch.tanh(2 * randn(rng, batch, 1, 8, 8))
    seed = randint(rng, 0, 2**30)
    g_state = {k: v.clone() for k, v in G.state_dict().items()}
    d_state = {k: v.clone() for k, v in D.state_dict().items()}
    device = {"device": st.device} if st.device != "cpu" else {}
    expected = {v: ref.train_step_outcome(g_spec, d_spec, g_state, d_state, real, seed, latent_size, lr, betas,
                                          ADAM_EPS, variant=v, **device)
                for v in ("solution", *WRONG_STEPS)}

    G, D = copy.deepcopy(G), copy.deepcopy(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, eps=ADAM_EPS)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, eps=ADAM_EPS)
    what = (f"train_step(G, D, real {tuple(real.shape)}, opt_g, opt_d, BCELoss(), latent_size={latent_size}) with "
            f"Adam(lr={lr:g})")
    call = st.call("train_step", G, D, real, opt_g, opt_d, nn.BCELoss(), latent_size, seed=seed,
                   return_args=True, description=what)
    return compare_step(call, expected, g_state, d_state)


def compare_step(call, expected, g_state, d_state) -> Verdict:
    what, value, kind = call.what, call.value, f"a dict with keys {', '.join(KEYS)}"
    hint = "Return {'loss_d': loss_d.item(), 'loss_g': loss_g.item(), 'd_real': ..., 'd_fake': ...}."
    problem = returned(call, kind, hint)
    for words, label, why in RAISED:
        if call.error and words in call.error:
            return failed(f"{what} raised {call.error.split(' (')[0][:160]}...: {label}." if label else
                          problem.message, why)
    if problem or not isinstance(value, dict):
        return problem or failed(f"{what} returned {type(value).__name__}, expected {kind}.", hint)
    missing = [k for k in KEYS if k not in value]
    if missing:
        return failed(f"{what} returned a dict without {', '.join(missing)} (keys: {', '.join(map(str, value))}).")
    not_floats = [k for k in KEYS if isinstance(value[k], bool) or not isinstance(value[k], (int, float))]
    if not_floats:
        kinds = ", ".join(f"{k}: {type(value[k]).__name__}" for k in not_floats)
        return failed(f"{what} returned values that are not Python floats ({kinds}).",
                      "Turn one-element tensors into floats with .item() (this also drops the autograd graph).")
    G, D = call.args[0], call.args[1]

    def matches(result) -> bool:
        return (all(math.isclose(value[k], result[k], rel_tol=1e-4, abs_tol=1e-6) for k in KEYS)
                and agree(G.state, result["g_state"]) and agree(D.state, result["d_state"]))

    if matches(expected["solution"]):
        return passed(f"{what} matches the reference step: the four numbers, and G and D after the step.")
    for variant, (label, hint) in WRONG_STEPS.items():
        if matches(expected[variant]):
            return failed(f"{what} is wrong: {label}.", hint)
    return step_difference(what, value, G, D, expected["solution"], g_state, d_state)


def step_difference(what, value, G, D, solution, g_state, d_state) -> Verdict:
    """The student's step differs from the reference and from the known wrong steps: say where."""
    g_params = [k for k in g_state if "running" not in k and "num_batches" not in k]
    d_params = [k for k in d_state if "running" not in k and "num_batches" not in k]
    if agree(D.state, d_state, d_params):
        return failed(f"{what} left D's parameters unchanged.",
                      "Step 1 ends with loss_d.backward() and opt_d.step().")
    if agree(G.state, g_state, g_params):
        return failed(f"{what} left G's parameters unchanged.",
                      "Step 2 needs gradients flowing into G: criterion(D(fake).view(-1), ones) on the fake batch "
                      "that is *not* detached, then loss_g.backward() and opt_g.step().")
    wrong = [f"{k} {value[k]:.6g} (expected {solution[k]:.6g})" for k in KEYS
             if not math.isclose(value[k], solution[k], rel_tol=1e-4, abs_tol=1e-6)]
    d_ok = agree(D.state, solution["d_state"])
    g_params_ok = agree(G.state, solution["g_state"], g_params)
    if g_params_ok and d_ok and not agree(G.state, solution["g_state"]):
        ran = G.state.get("1.num_batches_tracked")
        times = f" ({int(ran)} forward passes)" if isinstance(ran, torch.Tensor) and ran.numel() == 1 else ""
        return failed(f"{what}: the parameters match, but G's batch-norm running statistics differ{times}.",
                      "Run G exactly once per step, on one batch z of shape (b, latent_size, 1, 1), and reuse "
                      "that `fake` in both steps.")
    if d_ok and g_params_ok:
        return failed(f"{what} updates G and D correctly but returns wrong numbers: {'; '.join(wrong)}.",
                      "d_real and d_fake are the means of D's outputs in step 1 (before opt_d.step()); loss_d is "
                      "loss_real + loss_fake; loss_g is the generator loss of step 2.")
    parts = [f"returned {'; '.join(wrong)}" if wrong else "returned the right numbers",
             *(["D's state after the step differs"] if not d_ok else []),
             *(["G's parameters after the step differ"] if not g_params_ok else [])]
    return failed(f"{what} differs from the reference step: {', '.join(parts)}.",
                  "Follow the two steps in order: zero_grad, D(real) with label 1, z = torch.randn(b, latent_size, 1, "
                  "1, device=real.device), D(fake.detach()) with label 0, loss_d.backward(), opt_d.step(); then "
                  "zero_grad, D(fake) with label 1, loss_g.backward(), opt_g.step().")


@checks.public("train_step")
def train_step_one_batch(st, ref, rng):
    """One step on a batch of 8 with a small G (latent 8) and D, Adam(lr=1e-3, betas=(0.5, 0.999))."""
    return train_step_case(st, ref, rng, latent_size=8, batch=8, width=8, lr=1e-3)


# ---------------------------------------------------------------------------- samples of the trained G

BACKGROUND = -0.5  # pixels darker than this count as background


def samples_call(st, z):
    return st.call("G", z, eval_mode=True, no_grad=True, on_model_device=True,
                   description=f"G(z) in eval mode, z of shape {tuple(z.shape)}")


def samples_problem(call, n) -> Verdict | None:
    """Why the trained G's samples cannot be scored, or None."""
    problem = call_problem(call)
    if problem:
        if call.error and "channels" in call.error:
            return failed(problem.message, "G must be Generator(LATENT_SIZE) with LATENT_SIZE = 64.")
        return problem
    verdict = images_verdict(call.what, call.value, n)
    return None if verdict.passed else verdict


@checks.public("samples")
def samples_look_like_digits(st, ref, rng):
    """64 samples of the trained G: valid images, not all alike, mostly dark background as in MNIST."""
    z = randn(rng, 64, 64, 1, 1)
    call = samples_call(st, z)
    problem = samples_problem(call, len(z))
    if problem:
        return problem
    images = call.value
    background = float((images < BACKGROUND).float().mean())
    if background < 0.5:
        return failed(f"{call.what}: only {background:.0%} of the pixels are dark background (below {BACKGROUND}); "
                      "in MNIST about 80% are.",
                      "Has G been trained? An untrained generator draws grey noise around 0. Run the training "
                      "cell and check that loss_g and d_fake do not collapse.")
    spread = float(images.std(dim=0).mean())
    if spread < 0.02:
        return failed(f"{call.what}: the 64 samples are nearly identical (mean pixel std {spread:.3f} across samples).",
                      "Mode collapse: the generator found one image that fools D. Check train_step and retrain.")
    return passed(f"{call.what}: 64 images in [-1, 1], {background:.0%} background, varied.")
