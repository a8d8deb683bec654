"""PyTorch side of ``benchmarks/peer_speed.py``: a worker answering JSON requests on stdin, one per line.

Run by the driver with ``$TORCH_PY`` (a separate environment: ``pip install torch numpy`` and
``pip install --no-deps xautodl``; PyTorch is never a dependency of ntkscore). The network is xautodl's NB201
``TinyNetwork`` (C16 N5, 10 classes) loaded with ntkscore's supernet weights, fed ntkscore's batch (CIFAR-normalised,
NCHW), both from the ``.npz`` files the driver writes.

Workloads, each timed from batch to eigenvalues (model construction excluded):

* ``func``: ``torch.func`` ``vmap(jacrev(f))`` per-sample Jacobians of all parameters through ``functional_call``,
  BN in eval mode with its running buffers set to the batch's own statistics (one no-grad train-mode forward
  inside the timed call): the BN statistics are held constant, as ntkscore's ``bn_mode="batch"``. ``output``
  ``"sum"``: ``K = G Gᵀ`` of the summed logits; ``"trace"``: ``K = Σ_a J_a J_aᵀ`` over the 10 logits. Then
  ``eigvalsh``.
* ``tenas``: TE-NAS's ``get_ntk_n`` (VITA-Group/TENAS ``lib/procedures/ntk.py``, ``train_mode=True``): one forward
  in train-mode BN, then a Python loop of ``B`` backward passes of ``logit[i]`` summed, the flattened gradients of
  the parameters named ``weight`` (BN statistics differentiated, biases excluded, as there), ``K = G Gᵀ``,
  ``eigvalsh``. Not the same kernel as ntkscore's; timed for reference.
"""

import json
import sys
import time

import numpy as np
import torch
from torch.func import functional_call, jacrev, vmap

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build(arch: str, P: dict, channels: int, cells: int, classes: int):
    """xautodl's TinyNetwork for ``arch`` with ntkscore's weights ``P`` (flattened by ``jax.tree_util.keystr``)."""
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure

    genotype = Structure.str2structure(arch)
    ops = [op for node in genotype.nodes for (op, _) in node]
    model = TinyNetwork(channels, cells, genotype, classes)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    conv = lambda w: t(np.transpose(w, (3, 2, 0, 1)))  # noqa: E731  HWIO -> OIHW

    def set_conv_bn(conv_mod, bn_mod, prefix, index=()):
        w = P[prefix + "['w']"][index]
        assert conv_mod.weight.shape == conv(w).shape, (conv_mod.weight.shape, w.shape)
        conv_mod.weight.data.copy_(conv(w))
        bn_mod.weight.data.copy_(t(P[prefix + "['scale']"][index]))
        bn_mod.bias.data.copy_(t(P[prefix + "['bias']"][index]))

    set_conv_bn(model.stem[0], model.stem[1], "['stem']")
    for s in range(3):
        for i in range(cells):
            cell = model.cells[s * (cells + 1) + i]
            for e, (layer, op) in enumerate(zip(cell.layers, ops)):
                if op in ("nor_conv_3x3", "nor_conv_1x1"):
                    key = "conv3x3" if op == "nor_conv_3x3" else "conv1x1"
                    set_conv_bn(layer.op[1], layer.op[2], f"['stages'][{s}]['{key}']", (i, e))
    for r in range(2):
        block = model.cells[cells + r * (cells + 1)]
        for name in ("conv_a", "conv_b"):
            m = getattr(block, name).op
            set_conv_bn(m[1], m[2], f"['reductions'][{r}]['{name}']")
        block.downsample[1].weight.data.copy_(conv(P[f"['reductions'][{r}]['shortcut']"]))
    model.lastact[0].weight.data.copy_(t(P["['head']['scale']"]))
    model.lastact[0].bias.data.copy_(t(P["['head']['bias']"]))
    model.classifier.weight.data.copy_(t(P["['head']['w']"].T))
    model.classifier.bias.data.copy_(t(P["['head']['b']"]))
    return model


def to_torch_batch(x_nhwc):
    x = (x_nhwc - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)), np.float32))


def tenas_ntk(network, inputs):
    """TE-NAS ``get_ntk_n(train_mode=True)`` for one batch and one network (CPU)."""
    network.train()
    network.zero_grad()
    logit = network(inputs.clone())[1]
    grads = []
    for i in range(len(inputs)):
        logit[i:i + 1].backward(torch.ones_like(logit[i:i + 1]), retain_graph=True)
        grads.append(torch.cat([w.grad.view(-1).detach() for name, w in network.named_parameters()
                                if "weight" in name and w.grad is not None], -1))
        network.zero_grad()
    grads = torch.stack(grads, 0)
    ntk = torch.einsum("nc,mc->nm", [grads, grads])
    return ntk, torch.linalg.eigvalsh(ntk)


def batch_stat_buffers(model, x):
    """The model's buffers with every BN's running mean/var replaced by the batch statistics of ``x``."""
    stats, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            def hook(mod, inp, name=name):
                stats[name] = (inp[0].mean((0, 2, 3)), inp[0].var((0, 2, 3), unbiased=False))
            hooks.append(m.register_forward_pre_hook(hook))
    model.train()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    model.eval()
    buffers = {}
    for k, v in model.named_buffers():
        mod, _, leaf = k.rpartition(".")
        buffers[k] = {"running_mean": stats.get(mod, (v, v))[0], "running_var": stats.get(mod, (v, v))[1]}.get(leaf, v)
    return buffers


def func_ntk(model, x, output: str, classes: int):
    """The per-sample-Jacobian NTK with ``torch.func`` (BN statistics of the batch held constant)."""
    buffers = batch_stat_buffers(model, x)
    params = {k: v.detach() for k, v in model.named_parameters()}
    if output == "sum":
        def f(p, xi):
            return functional_call(model, (p, buffers), (xi[None],))[1].sum()
    else:
        def f(p, xi):
            return functional_call(model, (p, buffers), (xi[None],))[1][0]
    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    b = x.shape[0]
    if output == "sum":
        g = torch.cat([jac[k].reshape(b, -1) for k in params], 1)
        ntk = g @ g.T
    else:
        g = torch.cat([jac[k].reshape(b, classes, -1) for k in params], 2)
        ntk = torch.einsum("iap,jap->ij", g, g)
    return ntk, torch.linalg.eigvalsh(ntk)


def main():
    setup = json.loads(sys.stdin.readline())
    torch.set_num_threads(setup["threads"])
    P = dict(np.load(setup["params"]))
    models = {name: build(arch, P, setup["channels"], setup["cells"], setup["classes"])
              for name, arch in setup["archs"].items()}
    batches = {int(b): to_torch_batch(np.load(path)["x"]) for b, path in setup["batches"].items()}
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "num_params": {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}}),
          flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        model, x = models[req["cell"]], batches[req["B"]]
        start = time.perf_counter()
        if req["impl"] == "tenas":
            ntk, eig = tenas_ntk(model, x)
        else:
            ntk, eig = func_ntk(model, x, req["output"], setup["classes"])
        seconds = time.perf_counter() - start
        reply = {"seconds": seconds, "lambda_min": float(eig[0])}
        if req.get("save"):
            np.save(req["save"], ntk.detach().double().numpy())
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
