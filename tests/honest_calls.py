"""Honest uses of PyTorch, forward and backward (`test_library_guard`): what a student's model, training loop, statistics
or from-scratch answer's own test runs, in as many of the forms the operators take as the guard's kernels could meet
(dtypes, memory formats, optional arguments left out, indices, batched and unbatched, double backward, Python numbers
that PyTorch's C++ code hands on as tensors, tensor objects made in C++: parameters, subclasses, constructors).

`run_all()` returns each call's values (its outputs, then its inputs' gradients), by name; each call draws its inputs
from its own seeded generator, so two runs in one process compute the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def grad_of(fn, *inputs, double=False):
    """The outputs of `fn(*inputs)`, and the gradients of their sum of squares with respect to every floating input
    (`double`: and the gradient of the gradients' sum, as a gradient penalty takes it)."""
    inputs = [x.detach().requires_grad_() if x.is_floating_point() else x for x in inputs]
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    outs = [o for o in outs if isinstance(o, torch.Tensor)]
    floats = [o for o in outs if o.is_floating_point()]
    wrt = [x for x in inputs if x.requires_grad]
    grads = torch.autograd.grad(sum((o.float() ** 2).sum() for o in floats), wrt, create_graph=double,
                                allow_unused=True) if floats and wrt else ()
    values = [o.detach().clone() for o in outs] + [g.detach().clone() for g in grads if g is not None]
    if double:
        used = [g for g in grads if g is not None]
        values += [g.detach().clone() for g in torch.autograd.grad(sum(g.sum() for g in used), wrt, allow_unused=True)
                   if g is not None]
    return values


def calls():
    """(name, function of a generator returning its values) for each honest call."""
    def r(g, *shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def conv(g, dim, dtype=torch.float32, **kw):
        fn = (F.conv1d, F.conv2d, F.conv3d)[dim - 1]
        x, w = r(g, 2, 4, *[7] * dim, dtype=dtype), r(g, 6, 4 // kw.get("groups", 1), *[3] * dim, dtype=dtype)
        b = r(g, 6, dtype=dtype)
        return grad_of(lambda x, w, b: fn(x, w, b, **kw), x, w, b)

    def conv_t(g, dim, **kw):
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dim - 1]
        return grad_of(lambda x, w: fn(x, w, **kw), r(g, 2, 4, *[5] * dim), r(g, 4, 3, *[3] * dim))

    def pool(g, fn, dim, **kw):
        return grad_of(lambda x: fn(x, **kw), r(g, 2, 3, *[8] * dim))

    def fractional(g):
        samples = torch.rand(2, 3, 2, generator=g)
        return grad_of(lambda x: F.fractional_max_pool2d(x, 2, output_size=4, _random_samples=samples),
                       r(g, 2, 3, 9, 9))

    def unpool(g):
        x = r(g, 2, 3, 8, 8)
        out, idx = F.max_pool2d(x, 2, return_indices=True)
        return grad_of(lambda o: F.max_unpool2d(o, idx, 2), out)

    def embedding(g, **kw):
        idx = torch.randint(0, 10, (4, 5), generator=g)
        return grad_of(lambda w: F.embedding(idx, w, **kw), r(g, 10, 6))

    def embedding_bag(g, mode, weighted=False):
        idx, offsets = torch.randint(0, 10, (12,), generator=g), torch.tensor([0, 3, 7])
        per = r(g, 12) if weighted else None
        return grad_of(lambda w: F.embedding_bag(idx, w, offsets, mode=mode, per_sample_weights=per), r(g, 10, 6))

    def batch_norm(g, training, dims=2):
        x = r(g, 4, 3, *[5] * dims)
        mean, var = torch.zeros(3), torch.ones(3)
        return grad_of(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=training, momentum=0.1), x,
                       r(g, 3), r(g, 3)) + [mean, var]

    def module(g, make, *shape, double=False):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))  # the module's own initial weights
        layer = make()
        params = list(layer.parameters())
        return grad_of(lambda x, *p: layer(x), r(g, *shape), *params, double=double)

    def rnn(g, kind):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        layer = kind(5, 7, num_layers=2, batch_first=True)
        out = layer(r(g, 3, 4, 5))[0]
        loss = (out ** 2).sum()
        loss.backward()
        return [out.detach()] + [p.grad.clone() for p in layer.parameters()]

    return [
        ("conv1d", lambda g: conv(g, 1)),
        ("conv2d", lambda g: conv(g, 2, stride=2, padding=1)),
        ("conv2d float64", lambda g: conv(g, 2, torch.float64, dilation=2)),
        ("conv2d groups", lambda g: conv(g, 2, groups=2, padding="same")),
        ("conv2d double backward", lambda g: grad_of(lambda x, w: F.conv2d(x, w, padding=1), r(g, 2, 3, 6, 6),
                                                     r(g, 4, 3, 3, 3), double=True)),
        ("conv2d unbatched", lambda g: grad_of(lambda x, w: F.conv2d(x, w), r(g, 3, 6, 6), r(g, 4, 3, 3, 3))),
        ("conv2d channels last", lambda g: grad_of(lambda x, w: F.conv2d(x, w), r(g, 2, 3, 6, 6).to(
            memory_format=torch.channels_last), r(g, 4, 3, 3, 3))),
        ("conv2d no bias integer-like input", lambda g: grad_of(lambda w: F.conv2d(torch.ones(1, 1, 5, 5), w),
                                                                r(g, 2, 1, 3, 3))),
        ("conv3d", lambda g: conv(g, 3, padding=1)),
        ("conv_transpose1d", lambda g: conv_t(g, 1, stride=2)),
        ("conv_transpose2d", lambda g: conv_t(g, 2, stride=2, output_padding=1)),
        ("conv_transpose3d", lambda g: conv_t(g, 3)),
        ("Conv2d module", lambda g: module(g, lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
                                           2, 3, 6, 6)),
        ("ConvTranspose2d module", lambda g: module(g, lambda: nn.ConvTranspose2d(4, 2, 4, 2, 1, bias=False),
                                                    2, 4, 4, 4)),
        ("max_pool1d", lambda g: pool(g, F.max_pool1d, 1, kernel_size=2)),
        ("max_pool2d", lambda g: pool(g, F.max_pool2d, 2, kernel_size=3, stride=2, ceil_mode=True)),
        ("max_pool2d indices", lambda g: pool(g, F.max_pool2d, 2, kernel_size=2, return_indices=True)),
        ("max_pool3d", lambda g: pool(g, F.max_pool3d, 3, kernel_size=2, padding=1)),
        ("avg_pool1d", lambda g: pool(g, F.avg_pool1d, 1, kernel_size=3, stride=2)),
        ("avg_pool2d", lambda g: pool(g, F.avg_pool2d, 2, kernel_size=3, padding=1, count_include_pad=False)),
        ("avg_pool2d divisor", lambda g: pool(g, F.avg_pool2d, 2, kernel_size=2, divisor_override=3)),
        ("avg_pool3d", lambda g: pool(g, F.avg_pool3d, 3, kernel_size=2)),
        ("adaptive_avg_pool2d", lambda g: pool(g, F.adaptive_avg_pool2d, 2, output_size=(3, 5))),
        ("adaptive_avg_pool2d to one", lambda g: pool(g, F.adaptive_avg_pool2d, 2, output_size=1)),
        ("adaptive_max_pool2d", lambda g: pool(g, F.adaptive_max_pool2d, 2, output_size=3)),
        ("adaptive_avg_pool3d", lambda g: pool(g, F.adaptive_avg_pool3d, 3, output_size=2)),
        ("adaptive_max_pool1d", lambda g: pool(g, F.adaptive_max_pool1d, 1, output_size=3)),
        ("lp_pool2d", lambda g: pool(g, F.lp_pool2d, 2, norm_type=2.0, kernel_size=2)),
        ("fractional_max_pool2d", fractional),
        ("max_unpool2d", unpool),
        ("unfold", lambda g: grad_of(lambda x: F.unfold(x, 3, padding=1, stride=2), r(g, 2, 3, 7, 7))),
        ("fold", lambda g: grad_of(lambda x: F.fold(x, (6, 6), 2, stride=2), r(g, 2, 12, 9))),
        ("linear", lambda g: grad_of(F.linear, r(g, 4, 5), r(g, 3, 5), r(g, 3))),
        ("linear no bias, 3-d", lambda g: grad_of(F.linear, r(g, 2, 4, 5), r(g, 3, 5))),
        ("linear float64", lambda g: grad_of(F.linear, r(g, 4, 5, dtype=torch.float64), r(g, 3, 5, dtype=torch.float64))),
        ("bilinear", lambda g: grad_of(F.bilinear, r(g, 4, 3), r(g, 4, 5), r(g, 2, 3, 5), r(g, 2))),
        ("embedding", embedding),
        ("embedding padding_idx", lambda g: embedding(g, padding_idx=0)),
        ("embedding max_norm", lambda g: embedding(g, max_norm=1.0)),
        ("embedding_bag sum", lambda g: embedding_bag(g, "sum", weighted=True)),
        ("embedding_bag mean", lambda g: embedding_bag(g, "mean")),
        ("embedding_bag max", lambda g: embedding_bag(g, "max")),
        ("batch_norm training", lambda g: batch_norm(g, True)),
        ("batch_norm eval", lambda g: batch_norm(g, False)),
        ("batch_norm 1d", lambda g: batch_norm(g, True, dims=1)),
        ("BatchNorm2d module", lambda g: module(g, lambda: nn.BatchNorm2d(3), 4, 3, 5, 5)),
        ("instance_norm", lambda g: grad_of(lambda x: F.instance_norm(x), r(g, 2, 3, 5, 5))),
        ("layer_norm", lambda g: grad_of(lambda x, w, b: F.layer_norm(x, (5,), w, b), r(g, 3, 4, 5), r(g, 5),
                                         r(g, 5))),
        ("layer_norm no weight", lambda g: grad_of(lambda x: F.layer_norm(x, (4, 5)), r(g, 3, 4, 5))),
        ("group_norm", lambda g: grad_of(lambda x, w, b: F.group_norm(x, 2, w, b), r(g, 2, 4, 5), r(g, 4), r(g, 4))),
        ("rms_norm", lambda g: grad_of(lambda x, w: F.rms_norm(x, (5,), w), r(g, 3, 5), r(g, 5))),
        ("local_response_norm", lambda g: grad_of(lambda x: F.local_response_norm(x, 2), r(g, 2, 4, 5, 5))),
        ("prelu", lambda g: grad_of(F.prelu, r(g, 2, 3, 4), r(g, 3))),
        ("prelu one weight", lambda g: grad_of(F.prelu, r(g, 2, 3, 4), torch.tensor([0.25]))),
        ("cross_entropy weighted", lambda g: grad_of(lambda x: F.cross_entropy(
            x, torch.tensor([0, 2, 1, 2]), weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1), r(g, 4, 3))),
        ("nll_loss weighted", lambda g: grad_of(lambda x: F.nll_loss(
            F.log_softmax(x, 1), torch.tensor([0, 2, 1, 2]), weight=torch.tensor([1.0, 2.0, 0.5])), r(g, 4, 3))),
        ("binary_cross_entropy weighted", lambda g: grad_of(lambda x: F.binary_cross_entropy(
            torch.sigmoid(x), torch.ones(4, 3) / 2, weight=torch.full((4, 3), 2.0)), r(g, 4, 3))),
        ("interpolate nearest", lambda g: grad_of(lambda x: F.interpolate(x, scale_factor=2), r(g, 2, 3, 4, 4))),
        ("interpolate bilinear size", lambda g: grad_of(lambda x: F.interpolate(x, size=(7, 5), mode="bilinear"),
                                                        r(g, 2, 3, 4, 4))),
        ("interpolate bicubic", lambda g: grad_of(lambda x: F.interpolate(x, scale_factor=1.5, mode="bicubic",
                                                                          align_corners=True), r(g, 1, 2, 4, 4))),
        ("grid_sample", lambda g: grad_of(lambda x, t: F.grid_sample(x, F.affine_grid(t, [2, 3, 5, 5],
                                                                                      align_corners=False),
                                                                     align_corners=False),
                                          r(g, 2, 3, 5, 5), r(g, 2, 2, 3))),
        ("pixel_shuffle", lambda g: grad_of(lambda x: F.pixel_shuffle(x, 2), r(g, 2, 8, 3, 3))),
        ("pad reflect", lambda g: grad_of(lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), r(g, 2, 3, 4, 4))),
        ("scaled_dot_product_attention", lambda g: grad_of(F.scaled_dot_product_attention, r(g, 2, 3, 4, 8),
                                                           r(g, 2, 3, 5, 8), r(g, 2, 3, 5, 8))),
        ("MultiheadAttention", lambda g: _attention(g)),
        ("TransformerEncoderLayer", lambda g: module(g, lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                                                           batch_first=True),
                                                     2, 5, 8)),
        ("LSTM", lambda g: rnn(g, nn.LSTM)),
        ("GRU", lambda g: rnn(g, nn.GRU)),
        ("RNN", lambda g: rnn(g, nn.RNN)),
        ("Linear module double backward", lambda g: module(g, lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh(),
                                                                                    nn.Linear(4, 1)), 3, 5,
                                                           double=True)),
        ("normalize", lambda g: grad_of(lambda x: F.normalize(x, dim=1), r(g, 4, 5))),
        ("cosine_similarity", lambda g: grad_of(F.cosine_similarity, r(g, 4, 5), r(g, 4, 5))),
        ("bincount weights", lambda g: [torch.bincount(torch.randint(0, 6, (20,), generator=g), weights=r(g, 20))]),
        ("histogram weight", lambda g: list(torch.histogram(r(g, 30), bins=5, weight=r(g, 30).abs()))),
        ("cov weights", lambda g: grad_of(lambda x: torch.cov(x, fweights=torch.tensor([1, 2, 1, 3]),
                                                              aweights=torch.tensor([0.5, 1.0, 2.0, 1.0])),
                                          r(g, 3, 4))),
        ("weight_norm", lambda g: module(g, lambda: nn.utils.parametrizations.weight_norm(nn.Linear(5, 3)), 4, 5)),
        ("SGD nesterov", lambda g: _steps(g, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True))),
        ("Adam", lambda g: _steps(g, lambda p: torch.optim.Adam(p, lr=0.01))),
        ("Adam foreach", lambda g: _steps(g, lambda p: torch.optim.Adam(p, lr=0.01, foreach=True))),
        ("Adam fused", lambda g: _steps(g, lambda p: torch.optim.Adam(p, lr=0.01, fused=True))),
        ("AdamW fused", lambda g: _steps(g, lambda p: torch.optim.AdamW(p, lr=torch.tensor(0.01), fused=True))),
        ("Adagrad fused", lambda g: _steps(g, lambda p: torch.optim.Adagrad(p, lr=0.1, fused=True))),
        ("arithmetic", arithmetic),
        ("tensor objects", objects),
        ("int image scaled", lambda g: grad_of(lambda w: F.conv2d(torch.randint(0, 255, (1, 1, 6, 6), generator=g)
                                                                  .float() / 255, w), r(g, 1, 1, 3, 3))),
    ]


class Tagged(torch.Tensor):
    """A tensor subclass of the notebook's own, without a handler."""


def arithmetic(g):
    """Operators that take numbers, reached from Python and from PyTorch's own C++ code (which hands some of them a
    number as a "wrapped number" tensor: `det` its sign to `fmod_`, `logsumexp` an infinity to `to`)."""
    def r(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    x, i = r(4, 5), torch.randint(-5, 5, (4, 5), generator=g, dtype=torch.int32)
    a = r(4, 4, dtype=torch.float64)
    return [
        torch.det(a), torch.logdet(a @ a.T + torch.eye(4, dtype=torch.float64)), *torch.slogdet(a), torch.linalg.inv(a),
        torch.logsumexp(x, 1), x.std(0), x.var(1, correction=0), x.mean(), torch.quantile(x, 0.3),
        torch.median(x), x.norm(), torch.linalg.vector_norm(x, 3), x.clamp(-0.5, 0.5), x.clamp(min=r(5)),
        torch.where(x > 0, x, 0.0), torch.where(x > 0, 1.0, x), x.masked_fill(x < 0, 2.5), i.masked_fill(i < 0, 7),
        x ** 2, 2 ** x, x.pow(0.5 * torch.ones(5)), i ** 2, i // 3, i % 3, torch.fmod(i, 3), torch.remainder(x, 0.7),
        torch.fmod(x, r(5)), i / 2, i * 1.5, i + True, (i > 0) * 2, x.lerp(r(4, 5), 0.25), x.lerp(r(4, 5), r(4, 5)),
        torch.histc(x, 5, -2, 2), torch.bucketize(x, torch.tensor([-1.0, 0.0, 1.0])), x.cumsum(1), x.cumprod(0),
        torch.sort(x, 1).values, torch.topk(x, 2).indices, torch.nan_to_num(x.log()), x.softmax(1),
        F.cross_entropy(x, torch.tensor([0, 1, 2, 3])), torch.fft.rfft(x).abs(), torch.einsum("ij,kj->ik", x, x),
        x.eq(0.5), x.ne(i), x.ge(0), torch.isclose(x, x + 1e-9), torch.allclose(x, x) * torch.ones(1),
        torch.round(x, decimals=2), x.fill_diagonal_(3.0), torch.full((2, 2), 7, dtype=torch.int16) * 3.5,
        torch.arange(0, 1, 0.25), torch.linspace(0, 1, 5), torch.tensor(3) / 2, x.new_full((2,), 4),
        torch.addcmul(x, x, x, value=0.5), torch.addmm(r(4, 4), x, x.T, beta=0.5, alpha=2),
        x.index_put((torch.tensor([0, 1]),), torch.tensor(9.0)), x.scatter(1, torch.zeros(4, 1, dtype=torch.long), 1.5),
        torch.cdist(x, x), torch.cov(x), torch.corrcoef(x), x.unique(), x.flip(0).roll(1, 1), x.float().half() * 3,
        x.bfloat16() + 1, x.double() * 0.1, x.to(torch.float64), x.to(torch.int64), torch.tensor([1.0, 2.0]),
        torch.Tensor([1.0, 2.0]), torch.Tensor(2, 3).fill_(1.0), torch.LongTensor([1, 2]) * 2,
    ]


def objects(g):
    """Tensor objects PyTorch makes in C++ from a tensor an operator returned: parameters (made, copied, moved,
    loaded), a subclass's tensors. (Not a subclass's constructor given data, which fails where `empty`, `lift_fresh`
    or `to` have a kernel: see `guard.OBJECT_MAKERS`.)"""
    import copy
    import io
    import pickle

    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    twin = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    twin.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    tagged = torch.randn(3, generator=g).as_subclass(Tagged)
    return [
        nn.Parameter(torch.ones(2)), copy.deepcopy(model)[0].weight.detach(), model.to(torch.float64)[0].weight.detach(),
        twin[0].weight.detach(), pickle.loads(pickle.dumps(nn.Parameter(torch.ones(2)))).detach(),
        torch.Tensor(tagged * 2), Tagged(torch.ones(2)).as_subclass(torch.Tensor), nn.Buffer(torch.ones(2)) * 1, nn.utils.parameters_to_vector(model.parameters()).detach(),
    ]


def _steps(g, optimizer):
    """Three steps of `optimizer` on a small model, gradients clipped: its parameters after them."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optimizer(list(model.parameters()))
    for _ in range(3):
        opt.zero_grad()
        loss = F.mse_loss(model(torch.randn(8, 5, generator=g)), torch.randn(8, 2, generator=g))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _attention(g):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    layer = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 5, 8, generator=g)
    out, weights = layer(x, x, x)
    ((out ** 2).sum() + weights.sum()).backward()
    return [out.detach(), weights.detach()] + [p.grad.clone() for p in layer.parameters()]


def run_all():
    """Each call's values by name, or the error it raised ("raised <type>: <message>")."""
    results = {}
    for i, (name, call) in enumerate(calls()):
        g = torch.Generator().manual_seed(1000 + i)
        try:
            results[name] = call(g)
        except Exception as exc:
            results[name] = f"raised {type(exc).__name__}: {exc}"
    return results


def same(a, b):
    """The same type, dtype, shape and values (NaN where NaN)."""
    if type(a) is not type(b) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() or a.is_complex():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    return torch.equal(a, b)


def differences(before, after):
    """The calls whose values differ between two runs (or that raised in one of them), with what differs."""
    found = []
    for name, values in before.items():
        other = after.get(name)
        if isinstance(values, str) or isinstance(other, str):
            if values != other:
                found.append(f"{name}: {values if isinstance(values, str) else 'ran'} / "
                             f"{other if isinstance(other, str) else 'ran'}")
            continue
        if len(values) != len(other) or not all(same(a, b) for a, b in zip(values, other)):
            found.append(f"{name}: values differ")
    return found
