"""Public checks of the gan assignment: students run these while they work.

Networks are built in the student's kernel and run on grader noise; `weights_init` is called on grader-made
layers, which are then tested statistically; `train_step` gets small grader-made models and optimisers and is
compared with the reference step from the same weights and seed; the trained `G` is sampled in eval mode.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from autograder.checks import (CheckSet, Verdict, args_state, brief, build, call_problem, failed, first_failure, fixed,
                               layer, normal_sample, output_problem, passed, randint, randn, returned_as, run_module,
                               spec, state_of, states_close)

checks = CheckSet()

TANH = ("End the generator with nn.Tanh(): the training images are scaled to [-1, 1] "
        "(Normalize((0.5,), (0.5,))), so generated images must live there too.")


# ---------------------------------------------------------------------------- constructing networks

def images_verdict(what, out, n) -> Verdict:
    """Generator output: a float tensor (n, 1, 28, 28) in [-1, 1] that depends on the noise."""
    problem = output_problem(what, out, (n, 1, 28, 28), "Follow the table: 1×1 → 7×7 (kernel 7, stride 1, "
                             "padding 0) → 14×14 → 28×28 (kernel 4, stride 2, padding 1), with 1 output channel.")
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
    hint = (f"The first ConvTranspose2d must take latent_size = {latent_size} input channels: use the constructor's "
            "argument, not the global LATENT_SIZE.")
    return run_module(st, "Generator", (latent_size,), zs, images_verdict, "images of shape (N, 1, 28, 28) in [-1, 1]",
                      seed=seed, eval_mode=eval_mode, warmup=warm, raised={"channels": hint})


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
        return failed(f"{what} returned values from {lo:.3g} to {hi:.3g}, not probabilities: is the final sigmoid "
                      "missing?", "End the discriminator with nn.Sigmoid(): nn.BCELoss expects probabilities in "
                      "(0, 1).")
    return passed(f"{what} returned probabilities of shape ({n}, 1).")


def discriminator_case(st, batches, seed, eval_mode=False) -> Verdict:
    g = torch.Generator().manual_seed(seed)
    xs = [torch.tanh(2 * randn(g, b, 1, 28, 28)) for b in batches]
    return run_module(st, "Discriminator", (), xs, probabilities_verdict, "probabilities of shape (N, 1)", seed=seed,
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

def reinit(st, module, seed, what=None):
    """weights_init(module) in the kernel: the Call, and the module's state after it (empty if it did not come back)."""
    call = st.call("weights_init", module, seed=seed, return_args=True,
                   description=f"weights_init({what or brief(module)})")
    return call, args_state(call)


def normal_verdict(what, before, after, mean, kind, std=0.02) -> Verdict:
    """`after` looks like a sample of N(mean, std²); `before` is what the grader put there."""
    if torch.equal(before.detach(), after):
        return failed(f"{what} was left as it was: weights_init did not re-initialise it.", {
            "conv": "Handle nn.Conv2d and nn.ConvTranspose2d (one is not a subclass of the other): "
                    "isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)).",
            "bn": "Handle nn.BatchNorm2d too: its weight ~ N(1, 0.02²) and its bias set to 0."}[kind])
    return normal_sample(what, after, mean, std, [
        (lambda m, s: abs(s - 10 * std) < std, "the standard deviation is 0.2, ten times too large",
         "The standard deviation is 0.02: nn.init.normal_ takes the mean, then the std."),
        (lambda m, s: abs(s - std**2) < std**2 / 2, "the standard deviation is 0.0004 = 0.02², the variance",
         "The third argument of nn.init.normal_ is the standard deviation: 0.02."),
        (lambda m, s: kind == "conv" and abs(m - 1) < 0.05, "the convolution weights are centred on 1",
         "Convolution weights have mean 0; mean 1 is for BatchNorm2d weights."),
        (lambda m, s: kind == "bn" and abs(m) < 0.05, "the BatchNorm2d weights are centred on 0, not 1",
         "BatchNorm weights scale the normalised activations: start them near 1 (mean 1, std 0.02).")],
        f"Draw from a normal distribution (nn.init.normal_) with mean {mean:g} and std 0.02.")


def conv_case(st, module, seed) -> Verdict:
    call, state = reinit(st, module, seed)  # the call works on a copy: `module` keeps the weights it was sent with
    return call_problem(call) or normal_verdict(f"{brief(module)} weight", module.weight, state["weight"], 0.0, "conv")


@checks.public("weights_init")
def weights_init_convolutions(st, ref, rng):
    """Conv2d(64, 128, 4) and ConvTranspose2d(128, 64, 4): weights ~ N(0, 0.02²)."""
    seed = randint(rng, 0, 2**30)
    layers = [fixed(nn.Conv2d(64, 128, 4)), fixed(nn.ConvTranspose2d(128, 64, 4))]
    return first_failure((conv_case(st, module, seed + i) for i, module in enumerate(layers)),
                         "Conv2d and ConvTranspose2d weights are drawn from N(0, 0.02²).")


@checks.public("weights_init")
def weights_init_batchnorm(st, ref, rng):
    """BatchNorm2d(1024): weight ~ N(1, 0.02²), bias 0."""
    module, what = fixed(nn.BatchNorm2d(1024)), "BatchNorm2d(1024)"
    call, state = reinit(st, module, randint(rng, 0, 2**30), what)
    verdict = call_problem(call) or normal_verdict(f"{what} weight", module.weight, state["weight"], 1.0, "bn")
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


# ---------------------------------------------------------------------------- train_step

def small_gan(latent_size, width):
    """Specs of a generator (N, latent, 1, 1) → (N, 1, 8, 8) and a discriminator (N, 1, 8, 8) → (N, 1)."""
    return (spec(layer("ConvTranspose2d", latent_size, 2 * width, 4, 1, 0, bias=False), layer("BatchNorm2d", 2 * width),
                 layer("ReLU"), layer("ConvTranspose2d", 2 * width, 1, 4, 2, 1, bias=False), layer("Tanh"),
                 training=True),
            spec(layer("Conv2d", 1, width, 4, 2, 1, bias=False), layer("LeakyReLU", 0.2),
                 layer("Conv2d", width, 1, 4, 1, 0, bias=False), layer("Flatten"), layer("Sigmoid"), training=True))


KEYS = ("loss_d", "loss_g", "d_real", "d_fake")
WRONG_STEPS = {
    "label_zero": ("the generator was trained toward label 0 (fake)",
                   "In step 2 the fake images are labelled as real: criterion(D(fake).view(-1), ones). "
                   "With zeros the generator learns to look fake."),
    "g_first": ("the generator step ran against the discriminator before its update",
                "Do step 1 (the discriminator, ending with opt_d.step()) first, then step 2 with a fresh "
                "D(fake) from the updated discriminator."),
}
RAISED = (  # words of an error, what they reveal (None: the error says it), hint
    ("backward through the graph a second time", "the fake batch was not detached in the discriminator step",
     "Without .detach(), loss_d.backward() ran back through G and freed its graph, so loss_g.backward() could not. "
     "Use D(fake.detach()) in step 1, and the same `fake` (not detached) in step 2."),
    ("modified by an inplace operation", "the generator loss used a stale discriminator output",
     "The generator loss used the discriminator's output from before opt_d.step(). Compute D(fake).view(-1) again "
     "after the discriminator update."),
    ("channels", None, "Draw the noise with the latent_size argument: torch.randn(b, latent_size, 1, 1, "
                       "device=real.device), not the global LATENT_SIZE."),
)

# Adam's first step moves each parameter by about lr * g / (|g| + eps): with the default eps = 1e-8 a gradient element
# near zero makes that move depend on rounding; the grader's eps = 1e-4 bounds that effect far below the tolerances.
ADAM_EPS, BETAS = 1e-4, (0.5, 0.999)


def train_step_case(st, ref, rng, latent_size, batch, width, lr) -> Verdict:
    g_spec, d_spec = small_gan(latent_size, width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(randint(rng, 0, 2**30))
        G, D = build(g_spec), build(d_spec)
    real = torch.tanh(2 * randn(rng, batch, 1, 8, 8))
    seed = randint(rng, 0, 2**30)
    g_state, d_state = state_of(G), state_of(D)
    expected = {v: ref.train_step_outcome(g_spec, d_spec, g_state, d_state, real, seed, latent_size, lr, BETAS,
                                          ADAM_EPS, variant=v, device=st.device) for v in ("solution", *WRONG_STEPS)}
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=BETAS, eps=ADAM_EPS)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=BETAS, eps=ADAM_EPS)
    what = (f"train_step(G, D, real {tuple(real.shape)}, opt_g, opt_d, BCELoss(), latent_size={latent_size}) with "
            f"Adam(lr={lr:g})")
    call = st.call("train_step", G, D, real, opt_g, opt_d, nn.BCELoss(), latent_size, seed=seed,
                   return_args=True, description=what)
    return compare_step(call, expected, g_state, d_state)


def compare_step(call, expected, g_state, d_state) -> Verdict:
    what, value = call.what, call.value
    hint = "Return {'loss_d': loss_d.item(), 'loss_g': loss_g.item(), 'd_real': ..., 'd_fake': ...}."
    for words, label, why in RAISED:
        if call.error and words in call.error:
            error = f"{call.error.split(' (')[0][:160]}...: {label}." if label else call.error
            return failed(f"{what} raised {error}", why)
    problem = returned_as(call, f"a dict with keys {', '.join(KEYS)}", dict, hint=hint, none_hint=hint)
    if problem:
        return problem
    missing = [k for k in KEYS if k not in value]
    if missing:
        return failed(f"{what} returned a dict without {', '.join(missing)} (keys: {', '.join(map(str, value))}).")
    not_floats = [f"{k}: {type(value[k]).__name__}" for k in KEYS
                  if isinstance(value[k], bool) or not isinstance(value[k], (int, float))]
    if not_floats:
        return failed(f"{what} returned values that are not Python floats ({', '.join(not_floats)}).",
                      "Turn one-element tensors into floats with .item() (this also drops the autograd graph).")
    G, D = args_state(call, 0), args_state(call, 1)
    g_params, d_params = ([k for k in state if "running" not in k and "num_batches" not in k]
                          for state in (g_state, d_state))

    def agreement(result):
        """The numbers that differ from `result`'s; whether D's state, G's parameters, G's whole state agree."""
        return ([f"{k} {value[k]:.6g} (expected {result[k]:.6g})" for k in KEYS
                 if not math.isclose(value[k], result[k], rel_tol=1e-4, abs_tol=1e-6)],
                states_close(D, result["d_state"], keys=result["d_state"]),
                states_close(G, result["g_state"], keys=g_params),
                states_close(G, result["g_state"], keys=result["g_state"]))

    for variant, (label, why) in {"solution": (None, None), **WRONG_STEPS}.items():
        wrong, d_ok, _, g_ok = agreement(expected[variant])
        if not wrong and d_ok and g_ok:
            return failed(f"{what} is wrong: {label}.", why) if label else passed(
                f"{what} matches the reference step: the four numbers, and G and D after the step.")
    # neither the reference's step nor a known wrong one: say where it differs
    if states_close(D, d_state, keys=d_params):
        return failed(f"{what} left D's parameters unchanged.", "Step 1 ends with loss_d.backward() and opt_d.step().")
    if states_close(G, g_state, keys=g_params):
        return failed(f"{what} left G's parameters unchanged.",
                      "Step 2 needs gradients flowing into G: criterion(D(fake).view(-1), ones) on the fake batch "
                      "that is *not* detached, then loss_g.backward() and opt_g.step().")
    wrong, d_ok, g_params_ok, g_ok = agreement(expected["solution"])
    if d_ok and g_params_ok and not g_ok:
        ran = G.get("1.num_batches_tracked")
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

def samples(st, z) -> tuple:
    """The trained G on noise z in eval mode: the Call, and why its samples cannot be scored (None if they can)."""
    call = st.call("G", z, eval_mode=True, no_grad=True, on_model_device=True,
                   description=f"G(z) in eval mode, z of shape {tuple(z.shape)}")
    verdict = (call_problem(call, {"channels": "G must be Generator(LATENT_SIZE) with LATENT_SIZE = 64."})
               or images_verdict(call.what, call.value, len(z)))
    return call, None if verdict.passed else verdict


@checks.public("samples")
def samples_look_like_digits(st, ref, rng):
    """64 samples of the trained G: valid images, not all alike, mostly dark background as in MNIST."""
    call, problem = samples(st, randn(rng, 64, 64, 1, 1))
    if problem:
        return problem
    background = float((call.value < -0.5).float().mean())  # darker than -0.5: background
    if background < 0.5:
        return failed(f"{call.what}: only {background:.0%} of the pixels are dark background (below -0.5); "
                      "in MNIST about 80% are.",
                      "Has G been trained? An untrained generator draws grey noise around 0. Run the training "
                      "cell and check that loss_g and d_fake do not collapse.")
    spread = float(call.value.std(dim=0).mean())
    if spread < 0.02:
        return failed(f"{call.what}: the 64 samples are nearly identical (mean pixel std {spread:.3f} across samples).",
                      "Mode collapse: the generator found one image that fools D. Check train_step and retrain.")
    return passed(f"{call.what}: 64 images in [-1, 1], {background:.0%} background, varied.")
