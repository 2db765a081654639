"""Reference oracle for the `gan` assignment: the lecture's DCGAN training step, the known wrong
versions of it, and the grader's own MNIST classifier that scores generated samples.

The train-step oracle takes plain data (check-library model specs, state dicts, tensors, numbers),
so public checks can record its values at assign time and replay them in a student's self-check.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.checks.data import mnist_split
from autograder.checks.models import build, state_of

# ---------------------------------------------------------------------------- one DCGAN step

VARIANTS = ("solution", "label_zero", "g_first")


def train_step_outcome(g_spec, d_spec, g_state, d_state, real, seed, latent_size, lr, betas, eps,
                       variant="solution", device="cpu"):
    """One training step of models built from the specs with the given states, with Adam(lr, betas, eps)
    and BCELoss, from `seed`.

    Returns the four reported numbers and both models' states after the step (on the CPU).
    `variant` picks a known wrong step: "label_zero" (the generator is trained toward label 0)
    or "g_first" (the generator step runs before the discriminator's update, against the old D).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    G, D = build(g_spec, g_state).to(device), build(d_spec, d_state).to(device)
    real = real.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=tuple(betas), eps=eps)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=tuple(betas), eps=eps)
    criterion = nn.BCELoss()
    torch.manual_seed(seed)
    step = g_first_step if variant == "g_first" else lecture_step
    result = step(G, D, real, opt_g, opt_d, criterion, latent_size, g_label=0.0 if variant == "label_zero" else 1.0)
    result["g_state"], result["d_state"] = state_of(G), state_of(D)
    return result


def lecture_step(G, D, real, opt_g, opt_d, criterion, latent_size, g_label=1.0):
    """The lecture's two-step iteration: D on real (label 1) and detached fake (label 0), then G."""
    b = real.shape[0]
    real_labels = torch.ones(b, device=real.device)
    fake_labels = torch.zeros(b, device=real.device)

    opt_d.zero_grad()
    out_real = D(real).view(-1)
    loss_real = criterion(out_real, real_labels)
    z = torch.randn(b, latent_size, 1, 1, device=real.device)
    fake = G(z)
    out_fake = D(fake.detach()).view(-1)
    loss_fake = criterion(out_fake, fake_labels)
    loss_d = loss_real + loss_fake
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad()
    out = D(fake).view(-1)  # the updated discriminator
    loss_g = criterion(out, torch.full_like(real_labels, g_label))
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": out_real.mean().item(),
            "d_fake": out_fake.mean().item()}


def g_first_step(G, D, real, opt_g, opt_d, criterion, latent_size, g_label=1.0):
    """The two steps swapped: G is updated against the discriminator before D's update."""
    b = real.shape[0]
    real_labels = torch.ones(b, device=real.device)
    z = torch.randn(b, latent_size, 1, 1, device=real.device)
    fake = G(z)

    opt_g.zero_grad()
    loss_g = criterion(D(fake).view(-1), real_labels)
    loss_g.backward()
    opt_g.step()

    opt_d.zero_grad()
    out_real = D(real).view(-1)
    out_fake = D(fake.detach()).view(-1)
    loss_d = criterion(out_real, real_labels) + criterion(out_fake, torch.zeros_like(real_labels))
    loss_d.backward()
    opt_d.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": out_real.mean().item(),
            "d_fake": out_fake.mean().item()}


# ---------------------------------------------------------------------------- scoring samples

SCORER_FILE = "scorer.pt"
SCORER_SEED = 0
SCORER_EPOCHS = 12


def scorer_net() -> nn.Sequential:
    """The grader's MNIST classifier: a small LeNet-style CNN on images scaled to [-1, 1]."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def train_scorer(images: torch.Tensor, labels: torch.Tensor) -> nn.Sequential:
    """Deterministic training (one thread, fixed seed), shifted by up to 2 pixels per batch."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(SCORER_SEED)
        torch.manual_seed(SCORER_SEED)
        net = scorer_net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(SCORER_EPOCHS):
            order = torch.randperm(len(images), generator=g)
            for i in range(0, len(images), 64):
                idx = order[i:i + 64]
                dy, dx = (int(s) for s in torch.randint(-2, 3, (2,), generator=g))
                batch = torch.roll(images[idx], shifts=(dy, dx), dims=(2, 3))
                loss = F.cross_entropy(net(batch), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def prepare(hidden: Path, data: Path) -> None:
    """At assign time: train the scorer on the student-visible train + public test images,
    measure it on the hidden test split, save its weights to hidden/scorer.pt. Images are scaled to
    [-1, 1], as the notebook scales them."""
    x_train, y_train = mnist_split(data, "train", "symmetric")
    x_test, y_test = mnist_split(data, "test", "symmetric")
    net = train_scorer(torch.cat([x_train, x_test]), torch.cat([y_train, y_test]))
    x_hidden, y_hidden = mnist_split(hidden / "data", "test", "symmetric")
    with torch.no_grad():
        accuracy = float((net(x_hidden).argmax(1) == y_hidden).float().mean())
    torch.save({"state_dict": net.state_dict(), "hidden_test_accuracy": accuracy,
                "real_scores": sample_scores(x_hidden, net)}, hidden / SCORER_FILE)


def load_scorer(hidden: Path) -> nn.Sequential:
    saved = torch.load(hidden / SCORER_FILE, weights_only=True)
    net = scorer_net()
    net.load_state_dict(saved["state_dict"])
    return net.eval()


def sample_scores(images: torch.Tensor, scorer: nn.Module) -> dict:
    """Inception-style score exp(E_x KL(p(y|x) || p(y))) and the entropy (natural log) of the
    histogram of predicted labels, with that histogram."""
    with torch.no_grad():
        logp = F.log_softmax(scorer(images.float()), dim=1)
    p = logp.exp()
    log_py = torch.log(p.mean(0).clamp_min(1e-12))
    inception = math.exp(float((p * (logp - log_py)).sum(1).mean()))
    hist = torch.bincount(p.argmax(1), minlength=10).double() / len(p)
    nz = hist[hist > 0]
    entropy = abs(float((nz * nz.log()).sum()))
    return {"inception": inception, "entropy": entropy, "histogram": hist.tolist()}
