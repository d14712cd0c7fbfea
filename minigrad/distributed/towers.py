"""The paper's two towers (section 3.2, figure 2) on two ranks, built from the one-device AlexNet.

Rank r holds half of every layer's kernels or units, rows [r*n/2, (r+1)*n/2) of each weight and bias
(the one-device layout's output axis), and computes exactly what those rows compute on one device:

    input   SharedInput: the same batch on both ranks; backward sums the towers' image gradients
    conv1   48 of the 96 kernels, on the whole image       -> ReLU -> LRN over its own 48 maps -> pool
    conv2   its group of the grouped conv (its own maps)   -> ReLU -> LRN -> pool
    gather3 AllGather: both towers' 256 maps                      (crossing 1)
    conv3   half of the 384 kernels, over all 256 maps     -> ReLU
    conv4, conv5   its group (its own maps)                -> ReLU; pool5
    gather6 AllGather of the maps, then flatten (the one-device net's flatten order)   (crossing 2)
    fc6     half of the units over all 9216 inputs -> ReLU -> dropout (its slice of the one-device mask)
    gather7, fc7 (crossing 3), gather8, fc8 (crossing 4), output: GatherOutput of the logits halves

Both ranks see the same batch and compute the same loss. With LocalResponseNorm(groups=2) in the
one-device net (minigrad.models.alexnet) the two ranks together are the same function as the one
device: outputs and every gradient agree to rounding (tests/test_towers.py). Checkpoints keep the one-device layout:
`gather_whole` concatenates the halves, `split` cuts a one-device net (and its SGD velocities).
"""
import copy

import numpy as np

import minigrad as mg

# The layers that read both towers, and the AllGather before each (fc6's input is gathered as maps,
# before the flatten, so that the flattened order is the one-device net's).
CROSSINGS = {"conv3": "gather3", "flatten": "gather6", "fc7": "gather7", "fc8": "gather8"}


def layout(world, towers):
    """(replicas, tower_comm) of `world` for `towers` towers per replica: ranks t*towers .. t*towers +
    towers - 1 are replica t's towers; replicas joins the ranks that hold the same tower (data
    parallelism over them, minigrad.distributed.DataParallel). One tower: (world, a one-rank comm)."""
    if world.size % towers:
        raise ValueError(f"towers: {towers} towers per replica need a multiple of {towers} ranks "
                         f"(mpiexec -n {towers}; -n {2 * towers} for 2 replicas), got {world.size}")
    if towers == 1:
        return world, world.split(world.rank)
    return world.split(world.rank % towers, world.rank), world.split(world.rank // towers, world.rank)


def _half(name, layer, tower, towers):
    """This tower's layer of the same kind as `layer`, without weights yet."""
    if isinstance(layer, mg.Conv2d):
        if layer.groups not in (1, towers):
            raise ValueError(f"towers: {name} has groups={layer.groups}; a tower split needs 1 (reads every "
                             f"map) or {towers} (its own maps)")
        half = mg.Conv2d(layer.in_channels // layer.groups, layer.out_channels // towers, layer.kernel_size,
                         layer.stride, layer.padding, bias=layer.bias is not None, algorithm=layer.algorithm)
        half.needs_input_grad = layer.needs_input_grad
        return half
    if isinstance(layer, mg.Linear):
        return mg.Linear(layer.in_features, len(rows(layer.out_features, tower, towers)), bias=layer.bias is not None)
    if isinstance(layer, mg.LocalResponseNorm):
        if layer.groups % towers:
            raise ValueError(f"towers: {name} is {layer.describe()}; its window crosses the towers' maps, so "
                             f"no tower split computes it (build the net with groups={towers})")
        return mg.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k, layer.groups // towers)
    if isinstance(layer, mg.Dropout):           # the one-device layer's mask (its generator), its units' part
        return copy.deepcopy(layer).draw_share(units=(tower, towers))
    return copy.deepcopy(layer)


def rows(n, tower, towers):
    """The rows of an n-row (output) axis that `tower` holds: equal halves, fc8's the first a unit more."""
    return np.array_split(np.arange(n), towers)[tower]


def tower(net, comm):
    """Rank comm.rank's tower of the one-device `net` (minigrad.models.alexnet, any preset), with its
    weights. `comm` holds the towers, rank r tower r (comm.size == 2, the paper's split)."""
    towers, r = comm.size, comm.rank
    if towers != 2:
        raise ValueError(f"towers: the paper's split has 2 towers, got a communicator of {towers} ranks")
    layers = [("input", mg.SharedInput(comm))]
    for name, layer in net.named_layers():
        if name in CROSSINGS:
            layers.append((CROSSINGS[name], mg.AllGather(comm, axis=1)))
        half = _half(name, layer, r, towers)
        if layer.parameters():
            half.astype(layer.parameters()[0].data.dtype)
        for (_, mine), (_, whole) in zip(half.named_parameters(), layer.named_parameters()):
            mine.data = whole.data[rows(len(whole.data), r, towers)].copy()
        layers.append((name, half))
    layers.append(("output", mg.GatherOutput(comm, axis=1)))
    model = mg.Sequential(*layers)
    return model.train(net.training)


def _like(optimizer, params):
    """An SGD over `params` (in the order of optimizer.params) with optimizer's rates and groups."""
    groups = [{"params": [p], "lr_mult": lr_mult, "decay_mult": decay_mult}
              for p, lr_mult, decay_mult in zip(params, optimizer.lr_mults, optimizer.decay_mults)]
    return mg.SGD(groups, lr=optimizer.lr, momentum=optimizer.momentum, weight_decay=optimizer.weight_decay)


def split(net, optimizer, comm):
    """(this rank's tower, an SGD over its parameters with the halves of `optimizer`'s velocities and
    its parameter groups: a frozen or slowed layer stays so in both towers)."""
    model = tower(net, comm)
    halves = _like(optimizer, model.parameters())
    halves.velocity = [v[rows(len(v), comm.rank, comm.size)].copy() for v in optimizer.velocity]
    return model, halves


def gather_whole(model, optimizer, net, comm):
    """Load the towers' halves (weights, and dropout generators) into the one-device `net` on the CPU;
    returns an SGD over net's parameters holding the whole velocities (every rank of `comm` must call it)."""
    whole = dict(net.named_parameters())
    for name, p in model.named_parameters():
        whole[name].data[...] = mg.backend.to_numpy(comm.allgather(p.data, axis=0))
    layers = dict(net.named_leaves())
    for name, layer in model.named_leaves():
        if isinstance(layer, mg.Dropout):
            layers[name].set_rng_state(layer.get_rng_state())
    full = _like(optimizer, net.parameters())
    full.velocity = [mg.backend.to_numpy(comm.allgather(v, axis=0)) for v in optimizer.velocity]
    return full


def crossings(net, batch, image_size, itemsize=4):
    """What crosses between the two towers in one training step of `batch` images: rows of (crossing,
    shape of the gathered array for the batch, bytes each rank sends forward, bytes it sends backward).

    Forward, an all-gather sends each rank's half to the other; backward, the reduce-scatter sends the
    other rank's half of this rank's gradient. The logits' gather has no backward traffic (both ranks
    hold the whole loss gradient), nor has the shared image, whose gradient AlexNet does not compute.
    Where the classes are odd, rank 0's half of the logits is a unit larger (`rows`): its bytes are given.
    """
    shapes, shape = {}, (batch, 3, image_size, image_size)
    for name, layer in net.named_layers():           # as tower() meets them
        if name in CROSSINGS:
            shapes[CROSSINGS[name]] = shape
        shape = layer.output_shape(shape)
    shapes["output"] = shape
    table = []
    for name, shape in shapes.items():
        half = len(rows(shape[1], 0, 2)) * int(np.prod(shape[2:])) * batch * itemsize
        table.append((name, shape, half, 0 if name == "output" else half))
    return table
