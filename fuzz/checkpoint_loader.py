"""Fuzz minigrad's checkpoint loader (minigrad/checkpoint.py; fuzz/FILES.md).

    python fuzz/checkpoint_loader.py --seconds 600 --save-failures fuzz/corpus/checkpoints   # by hand
    python fuzz/checkpoint_loader.py --replay-only                                          # the corpus alone

The contract, for any bytes in a file named as a checkpoint: everything a resumed run, evaluate.py and
predict.py do with it (checkpoint.load, then normalisation(), arrays(), model(), and restore() into the
SGD and the scheduler that train.py builds) either works or raises ValueError whose message begins
"checkpoint <path>: "; no other exception, no crash, and at most MEMORY_BOUND(file) of resident memory
per input: a fixed allowance plus a few times the file's size (load() promises that what it allocates
is bounded by the file's size).

Seeds: checkpoints written by minigrad.checkpoint.save for a tiny AlexNet (float32 and float64, with
and without the synthetic set's fields). Structured mutations: zip-level edits (a member dropped,
renamed, duplicated, added, compressed, or swapped with another), .npy header edits (shapes, dtypes,
Fortran order, header text that is not a dict), and edits of the JSON record (a value replaced by an
extreme number, NaN, a string, a list, nothing, or a deep nesting; a key removed or added), each
written back into a well-formed archive so that the change reaches the checks behind the zip's CRCs.
"""
import io
import json
import os
import sys
import tempfile
import warnings
import zipfile

import numpy as np

import file_mutations
from file_mutations import Broken
import minigrad as mg
from minigrad import checkpoint, data, models

MEMORY_ALLOWANCE = 64 * 2**20
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "checkpoints")
TINY = models.Preset(16, conv1_kernels=4, conv1_kernel_size=3, conv1_stride=1, channels=(4, 4, 4, 4),
                     conv2_kernel_size=3, hidden=8, init="he", dropout_mode="inverted")
VALUES = (0, -1, 1, 2, 2**31, 2**63, 10**30, 10**400, 1e308, float("nan"), float("inf"), -0.0, 0.5, "", "x",
          "paper", "float16", "7", None, True, False, [], {}, [1, 2], {"a": 1}, "\udcff")
DEEP = "\x00deep\x00"                 # a placeholder that json.dumps writes as one string, then replaced
DTYPES = ("<f4", "<f8", ">f4", "<f2", "<i4", "|u1", "|b1", "<c8", "|O", "<U8", "|V4", "<M8[s]", "[('a', '<f4')]")
SHAPES = ("()", "(0,)", "(1,)", "(-1,)", "(2**31,)", "(10**20,)", "(1, 1, 1, 1, 1, 1)", "(3.5,)", "'abc'", "None",
          "(4, 4, 3, 3, 1)", "(8,)", "(18, 18, 3)")


def memory_bound(content):
    return MEMORY_ALLOWANCE + 8 * len(content)


# --- seeds -------------------------------------------------------------------------------------------
def seeds(workdir):
    """Checkpoints of a tiny AlexNet as train.py writes them, as bytes."""
    written = []
    for dtype, synthetic in (("float32", False), ("float64", True)):
        config = {"preset": "small", "architecture": TINY.to_dict(), "image_size": 16, "resize": 18, "seed": 0,
                  "batch_size": 4, "lr": 0.01, "epochs": 3, "scale": "unit", "flip": True, "momentum": 0.9,
                  "weight_decay": 0.0005, "dtype": dtype, "data": os.path.join(workdir, "images")}
        if synthetic:
            config["synthetic_per_class"] = 12
        model = models.from_config(config, 3)
        optimizer = mg.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
        scheduler = mg.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2, max_reductions=3)
        images = np.random.default_rng(0).integers(0, 256, (4, 18, 18, 3), dtype=np.uint8)
        normalisation = data.Normalisation(data.mean_image(images), data.PCAColor.fit(images), 0.02)
        history = [{"epoch": 1, "train_loss": 1.1, "val_loss": 1.0, "val_top1": 0.5, "val_top5": 1.0, "lr": 0.01,
                    "seconds": 0.1, "train_top1": 0.4}]
        record = {"config": config, "classes": ["a", "b", "c"], "history": history,
                  "best": {"epoch": 1, "val_top1": 0.5, "val_top5": 1.0}, "skipped": []}
        path = os.path.join(workdir, f"seed-{dtype}.npz")
        checkpoint.save(path, model, optimizer, scheduler, normalisation, record)
        with open(path, "rb") as f:
            written.append(f.read())
    return written


# --- structured mutations ----------------------------------------------------------------------------
def _members(content):
    """[(name, bytes)] of a zip archive, or None when it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return [(info.filename, archive.read(info)) for info in archive.infolist()]
    except Exception:                     # (any way a mutated archive fails to read: not this mutation's input)
        return None


def _archive(members, deflated=()):
    """A well-formed zip of `members`, stored as np.savez stores them except the names in `deflated`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")               # (zipfile warns about a duplicated name: one of the edits)
        for name, body in members:
            archive.writestr(name, body, zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED)
    return buffer.getvalue()


def _edit_members(edit):
    """A mutation that edits the list of members of a well-formed archive and writes it back."""
    def mutation(rng, content, seeds):
        members = _members(content)
        if not members:
            return content
        members, deflated = edit(rng, members)
        return _archive(members, deflated)
    mutation.__name__ = edit.__name__
    return mutation


@_edit_members
def zip_edit(rng, members):
    """A member dropped, renamed, duplicated, added, compressed or swapped with another."""
    index, other = rng.randrange(len(members)), rng.randrange(len(members))
    name, body = members[index]
    kind = rng.choice(("drop", "rename", "duplicate", "add", "compress", "swap"))
    if kind == "drop":
        return members[:index] + members[index + 1:], ()
    if kind == "rename":
        new = rng.choice(("meta.npy", "model.fc8.weight.npy", "velocity.99.npy", "velocity.01.npy", "velocity.x.npy",
                          "../outside.npy", "mean_image.npy", "notes.txt", "model..npy", "/absolute.npy"))
        return members[:index] + [(new, body)] + members[index + 1:], ()
    if kind == "duplicate":
        return members + [members[index]], ()
    if kind == "add":
        return members + [(rng.choice(("extra.npy", "model.extra.npy", "velocity.0.npy")), members[other][1])], ()
    if kind == "compress":
        return members, (name,)
    swapped = list(members)
    swapped[index], swapped[other] = (name, members[other][1]), (members[other][0], body)
    return swapped, ()


def _npy(header, body):
    """A .npy file with the header text `header` (version 1.0, or 2.0 when it is long) before `body`."""
    text = header.encode("latin1", "replace")
    version, length = (b"\x01\x00", "<H") if len(text) < 65000 else (b"\x02\x00", "<I")
    prefix = 6 + 2 + (2 if length == "<H" else 4)
    padded = text + b" " * ((-(prefix + len(text) + 1)) % 64) + b"\n"
    return b"\x93NUMPY" + version + np.array(len(padded)).astype(length).tobytes() + padded + body


def _split_npy(body):
    """(header dict, data bytes) of a .npy file, or None."""
    try:
        stream = io.BytesIO(body)
        version = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
        return {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}, \
            body[stream.tell():]
    except Exception:                     # (a member an earlier mutation damaged)
        return None


@_edit_members
def npy_header_edit(rng, members):
    """One array's header: another shape, dtype or order, or header text that is not a dict at all."""
    index = rng.randrange(len(members))
    name, body = members[index]
    parsed = _split_npy(body)
    if parsed is None:
        return members, ()
    header, array_data = parsed
    shape, descr, fortran = repr(header["shape"]), repr(header["descr"]), header["fortran_order"]
    kind = rng.choice(("shape", "descr", "order", "text"))
    if kind == "shape":
        shape = rng.choice(SHAPES)
    elif kind == "descr":
        descr = rng.choice(DTYPES)
        descr = descr if descr.startswith("[") else repr(descr)
    elif kind == "order":
        fortran = not fortran
    text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    if kind == "text":
        text = rng.choice(("[]", "{}", "None", "{'descr': '<f4'}", text[:rng.randrange(len(text))], text * 2000))
    return members[:index] + [(name, _npy(text, array_data))] + members[index + 1:], ()


def _paths(value, path=()):
    """Every path (a tuple of keys and indices) into a JSON value, the value's own () first."""
    yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, path + (key,))


def _edited_record(rng, record):
    """The record, as JSON text, with one value replaced, removed or added."""
    path = rng.choice(list(_paths(record))[1:])
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.choice(("replace", "replace", "remove", "add", "deep", "long"))
    if kind == "remove":
        del parent[path[-1]]
    elif kind == "add" and isinstance(parent, dict):
        parent[rng.choice(("unknown", "format", "dtype", "architecture"))] = rng.choice(VALUES)
    elif kind == "add":
        parent.append(rng.choice(VALUES))
    else:
        parent[path[-1]] = DEEP if kind == "deep" else "x" * 10**6 if kind == "long" else rng.choice(VALUES)
    depth = rng.choice((100, 10_000, 200_000))
    return json.dumps(record).replace(json.dumps(DEEP), "[" * depth + "]" * depth)


@_edit_members
def record_edit(rng, members):
    """An edit of the JSON record (the 'meta' array), written back as a string array like save()'s."""
    index = next((i for i, (name, _) in enumerate(members) if name == "meta.npy"), None)
    try:
        record = json.loads(str(np.load(io.BytesIO(members[index][1]), allow_pickle=False)))
    except Exception:                     # (no record, or one an earlier mutation damaged)
        return members, ()
    if not isinstance(record, (dict, list)) or not record:
        return members, ()
    stream = io.BytesIO()
    np.save(stream, np.array(_edited_record(rng, record)))
    return members[:index] + [("meta.npy", stream.getvalue())] + members[index + 1:], ()


STRUCTURED = (zip_edit, npy_header_edit, record_edit, record_edit)


# --- the check ---------------------------------------------------------------------------------------
def make_check(workdir):
    """check(content): `content` as a checkpoint file, used as train.py --resume, evaluate.py and
    predict.py use one."""
    path = os.path.join(workdir, "input.npz")
    named = f"checkpoint {path}: "

    def check(content):
        with open(path, "wb") as f:
            f.write(content)
        try:
            saved = checkpoint.load(path)
            saved.normalisation()
            saved.arrays()
            model = saved.model()
            config = saved.config
            optimizer = mg.SGD(model.parameters(), lr=config["lr"], momentum=config.get("momentum", 0.9),
                               weight_decay=config.get("weight_decay", 0.0005))
            saved.restore(model, optimizer, mg.ReduceLROnPlateau(optimizer, mode="min", factor=0.1))
        except ValueError as error:
            if not str(error).startswith(named) or len(str(error)) <= len(named):
                raise Broken(f"a ValueError that does not name the file: {str(error)[:300]}") from None
            if "more memory than this machine has" in str(error):
                raise Broken(f"the file made the loader allocate more than the address space allows: "
                             f"{str(error)[:300]}") from None
            return "refused: " + file_mutations.label(str(error)[len(named):])
        return "loaded"
    return check


def main(argv=None):
    with tempfile.TemporaryDirectory(prefix="fuzz-checkpoints-") as workdir:
        return file_mutations.fuzz("checkpoint loader", make_check(workdir), seeds(workdir), STRUCTURED,
                                   memory_bound, CORPUS, argv)


if __name__ == "__main__":
    sys.exit(main())
