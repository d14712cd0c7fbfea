"""Checkpoints of a training run: one .npz holding the network's weights, the SGD velocities, the
normalisation (mean image and colour PCA) and a JSON record of the run, written atomically, and read
back validated, as Caffe's solver snapshots hold a net and its solver state together.

A checkpoint may come from someone else, so load() trusts nothing in it. Every check is made here, and
every failure is one ValueError that names the file and what is wrong with it:
- the file: present, not empty, a zip archive of .npy arrays that is not truncated or damaged;
- the arrays, from their headers alone, before any is read: exactly the names a checkpoint holds,
  floating-point dtypes, the shapes the record implies, and stored uncompressed as save() writes them,
  so that what loading allocates is bounded by the file's own size (a compressed member of a few
  megabytes could expand to any size);
- the record: the format, the run's config, classes, history, optimiser and scheduler states, every
  number finite and in its range (a NaN learning rate or a momentum of 1.5 is refused, not used);
- the arrays' values, when they are read: finite (a diverged run's weights would predict "nan%").
What it points to is not trusted either: a resumed run's data folder is only read (minigrad writes
only the synthetic set it generates, into a folder that is absent, empty or one it generated before;
data/synthetic.py refuses any other folder).
"""
import hashlib
import json
import math
import numbers
import os
import tempfile
import tokenize
import zipfile

import numpy as np

FORMAT = 1
# What reading a damaged archive or .npy header raises, besides ValueError and OSError: zipfile's own
# errors and its NotImplementedError for a "zip version" it does not know, and tokenize's error that
# numpy's header parser lets out on some unfinished header texts (found by fuzz/checkpoint_loader.py).
DAMAGED = (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError, tokenize.TokenError)
MAX_RECORD_CHARACTERS = 2**22       # the JSON record (4 million characters: thousands of epochs' history)
SINGLE_ARRAYS = {"mean_image", "pca_eigenvalues", "pca_eigenvectors", "meta"}


# --- writing -----------------------------------------------------------------------------------------
def atomic_write(path, write):
    """Call write(file) on a temporary file in path's folder, fsync it, then rename it over `path`: a
    crash at any moment leaves either the old file or the new one, never a torn one. The file gets the
    permissions a new file gets under the process's umask (mkstemp's own are 0600)."""
    folder, prefix = os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + "."
    for stale in os.scandir(folder):      # left by a writer that was killed (SIGKILL, SIGTERM) mid-write
        if stale.name.startswith(prefix) and stale.name.endswith(".tmp") and stale.is_file(follow_symlinks=False):
            os.unlink(stale.path)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask():
    """The process's umask (read by setting it and putting it back: POSIX has no other way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(path, model, optimizer, scheduler, normalisation, record):
    """Model weights, SGD velocities, the normalisation and a JSON record (`record`: the run's config,
    classes, history, ...; plus the optimiser's, the scheduler's and the dropout layers' states) in one
    .npz at `path`, written atomically."""
    optimizer_state = optimizer.state_dict()
    arrays = {f"model.{key}": value for key, value in model.state_dict().items()}
    arrays.update({f"velocity.{i}": v for i, v in enumerate(optimizer_state.pop("velocity"))})
    arrays.update(mean_image=normalisation.mean, pca_eigenvalues=normalisation.pca.eigenvalues,
                  pca_eigenvectors=normalisation.pca.eigenvectors)
    meta = dict(record, format=FORMAT, scale=normalisation.scale, optimizer=optimizer_state,
                scheduler=scheduler.state_dict(), dropout_rng=model.get_rng_state())
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


# --- reading -----------------------------------------------------------------------------------------
def run_file(path):
    """The checkpoint a path names: RUN/last.npz for a run folder RUN, the file itself otherwise."""
    return os.path.join(path, "last.npz") if os.path.isdir(path) else path


def load(path):
    """The checkpoint at `path` (a .npz written by save(), or a run folder: its last.npz), validated as
    the module docstring says; its arrays are read when used. ValueError naming the file otherwise."""
    path = os.fspath(path)
    return Checkpoint(run_file(path))


class Checkpoint:
    """A validated checkpoint: `record` (the run's config, classes, history, best, ...) and the arrays'
    headers; model(), normalisation() and restore() read the arrays they need, and check them."""

    def __init__(self, path):
        self.path = path
        self.headers = _headers(path, self._error)
        self.record = self._read_record()
        self._check_arrays()

    # --- what the run recorded ---
    @property
    def config(self):
        return self.record["config"]

    @property
    def classes(self):
        return self.record["classes"]

    @property
    def history(self):
        return self.record["history"]

    @property
    def epoch(self):
        return self.history[-1]["epoch"]

    def fingerprint(self):
        """Its epochs and a hash of its record: what the ranks of a job compare, to resume the same run."""
        digest = hashlib.sha256(json.dumps(self.record, sort_keys=True).encode()).hexdigest()[:16]
        return {"epoch": len(self.history), "record": digest}

    # --- the arrays, read when used ---
    def normalisation(self):
        """The run's data.Normalisation (mean image, colour PCA, input scale)."""
        from .data import Normalisation, PCAColor

        return Normalisation(self._array("mean_image"), PCAColor(self._array("pca_eigenvalues"),
                                                                 self._array("pca_eigenvectors")),
                             self.record["scale"])

    def model(self, device="cpu", dtype=None):
        """The run's network with the checkpoint's weights, in `dtype` (default: the run's), on `device`."""
        from . import models

        config = dict(self.config, dtype=dtype or self.config.get("dtype", "float32"))
        # The network is built (and its weights drawn) before its shapes can be compared with the file's,
        # so its size, from the config's numbers alone, must first be at most the file's: a record asking
        # for a huge network is refused without allocating it (found by fuzz/checkpoint_loader.py).
        stored = {key: shape for key, (shape, _) in self.headers.items() if key.startswith("model.")}
        held = sum(math.prod(shape) for shape in stored.values())
        try:
            count = models.parameter_count(config, len(self.classes))
            model = models.from_config(config, len(self.classes)) if count <= held else None
        except MemoryError:
            raise self._error(f"its architecture {config.get('architecture', config['preset'])!r} needs more "
                              f"memory than this machine has") from None
        except (ValueError, TypeError, KeyError) as error:
            raise self._error(f"its config does not build a network: {error}") from None
        if model is None:
            raise self._error(f"its weights do not fit the network its config describes: the network has "
                              f"{count:,} weights and biases, the file {held:,}")
        expected = {f"model.{key}": value.shape for key, value in model.state_dict().items()}
        if stored != expected:
            raise self._error(f"its weights do not fit the network its config describes: "
                              f"{_first_difference(expected, stored)}")
        model.load_state_dict({key[len("model."):]: self._array(key) for key in expected})
        return model.to(device)

    def restore(self, model, optimizer, scheduler):
        """Continue exactly: the SGD velocities (and rate), the scheduler's state and the dropout
        layers' generators, into the objects a resumed run built."""
        count = sum(key.startswith("velocity.") for key in self.headers)
        if count != len(optimizer.params):
            raise self._error(f"it holds {count} velocity arrays for a network with {len(optimizer.params)} "
                              f"parameters")
        try:
            optimizer.load_state_dict({**self.record["optimizer"],
                                       "velocity": [self._array(f"velocity.{i}") for i in range(count)]})
            scheduler.load_state_dict(self.record["scheduler"])
            model.set_rng_state(self.record["dropout_rng"])
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
            raise self._error(f"its training state cannot be restored: {error}") from None

    def arrays(self):
        """Every array of the file but the record, read and checked: name -> array (for inspection;
        model(), normalisation() and restore() read only what they need)."""
        return {name: self._array(name) for name in self.headers if name != "meta"}

    # --- checks ---
    def _error(self, what):
        return ValueError(f"checkpoint {self.path}: {what}")

    def _read_record(self):
        shape, dtype = self.headers.get("meta", (None, None))
        if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > MAX_RECORD_CHARACTERS:
            raise self._error(f"its 'meta' record is {dtype} of shape {shape}, expected a JSON string of at most "
                              f"{MAX_RECORD_CHARACTERS:,} characters")
        try:
            record = json.loads(str(self._array("meta", finite=False)))
        except ValueError as error:
            raise self._error(f"its 'meta' record is not JSON ({error})") from None
        except RecursionError:
            raise self._error("its 'meta' record nests lists or objects too deeply to be a run's record") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            found = record.get("format") if isinstance(record, dict) else type(record).__name__
            raise self._error(f"its record has format {found!r}, expected {FORMAT}: it was not written by "
                              f"minigrad.checkpoint.save (examples/alexnet/train.py)")
        try:
            _check_record(record)
        except ValueError as error:
            raise self._error(str(error)) from None
        return record

    def _check_arrays(self):
        config, dtype = self.config, np.dtype(self.config.get("dtype", "float32"))
        side = config["resize"]
        expected = {"mean_image": (side, side, 3), "pca_eigenvalues": (3,), "pca_eigenvectors": (3, 3)}
        for name, (shape, stored) in self.headers.items():
            weights = name.startswith(("model.", "velocity."))
            if name not in SINGLE_ARRAYS and not weights:
                raise self._error(f"it holds an array {name!r} that no checkpoint holds")
            if name in expected and shape != expected[name]:
                raise self._error(f"{name} has shape {shape}, expected {expected[name]} (the run's images are "
                                  f"{side} x {side})")
            if name != "meta" and stored.kind != "f":
                raise self._error(f"{name} is {stored}, expected floating-point values")
            if weights and stored != dtype:
                raise self._error(f"{name} is {stored}, but the run trains in {dtype}")
        missing = sorted(set(expected) - set(self.headers))
        if missing or not any(name.startswith("model.") for name in self.headers):
            raise self._error(f"it has no {', '.join(missing) or 'model weights'}")
        velocities = sorted(int(name.split(".", 1)[1]) if name.split(".", 1)[1].isdigit() else -1
                            for name in self.headers if name.startswith("velocity."))
        if velocities != list(range(len(velocities))):
            raise self._error("its velocity arrays are not numbered 0, 1, ... without a gap")

    def _array(self, name, finite=True):
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                array = archive[name]
        except DAMAGED as error:          # (a CRC error, a torn member)
            raise self._error(f"its array {name!r} cannot be read ({type(error).__name__}: {error}); the file "
                              f"is damaged") from None
        if finite and not np.isfinite(array).all():
            raise self._error(f"{name} holds NaN or infinite values (the weights of a run that diverged?)")
        return array


def _headers(path, error):
    """name -> (shape, dtype) of every array in the .npz at `path`, from the .npy headers alone."""
    if not os.path.isfile(path):
        raise error("it does not exist; expected a .npz written by train.py (RUN/last.npz or RUN/best.npz) or a "
                    "run folder")
    if os.path.getsize(path) == 0:
        raise error("the file is empty (0 bytes)")
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise error(f"it holds {info.filename!r}, which is not a .npy array")
                if info.flag_bits & 0x1:
                    raise error(f"its array {info.filename!r} is encrypted; checkpoints are not")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise error(f"its array {info.filename!r} is compressed; checkpoints store their arrays "
                                f"uncompressed (np.savez), which bounds what loading allocates by the file's size")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = reader(member)
                    data_bytes = info.file_size - member.tell()
                if dtype.hasobject:
                    raise error(f"its array {info.filename!r} holds Python objects (pickled data), which minigrad "
                                f"never loads: a file from elsewhere could run code that way")
                if data_bytes != math.prod(shape) * dtype.itemsize:
                    raise error(f"its array {info.filename!r} ({dtype}, shape {shape}) is damaged or truncated")
                headers[info.filename[:-len(".npy")]] = (tuple(shape), dtype)
    except DAMAGED as reason:
        if str(reason).startswith(f"checkpoint {path}"):
            raise
        raise error(f"not a readable checkpoint ({type(reason).__name__}: {reason}); a .npz written by "
                    f"train.py was expected: is the file complete?") from None
    return headers


# --- the record --------------------------------------------------------------------------------------
def _number(record, key, where, low=None, high=None, low_open=False, integer=False, optional=False):
    """record[key] as a finite number in [low, high] (low excluded with low_open); ValueError otherwise."""
    if key not in record and optional:
        return
    value = record.get(key)
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not _finite(value) \
            or (low is not None and (value <= low if low_open else value < low)) \
            or (high is not None and value > high):
        bounds = f"{'>' if low_open else '>='} {low}" if low is not None else ""
        bounds += f"{' and ' if bounds else ''}<= {high}" if high is not None else ""
        raise ValueError(f"its {where}{key} is {value!r}, expected a finite {'int' if integer else 'number'}"
                         f"{' ' + bounds if bounds else ''}")


def _finite(number):
    """Whether a JSON number is finite as a float: NaN, infinities and integers beyond float's range
    (10**400, which math.isfinite cannot even convert) are not."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _check_record(record):
    """The run record's fields, types and ranges (what train.py, evaluate.py and predict.py read)."""
    config = record.get("config")
    if not isinstance(config, dict):
        raise ValueError("it has no config")
    for key in ("preset", "data", "scale"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"its config's {key} is {config.get(key)!r}, expected a string")
    for key, low in (("image_size", 1), ("resize", 1), ("batch_size", 1), ("epochs", 1), ("seed", 0)):
        _number(config, key, "config's ", low=low, integer=True)
    _number(config, "lr", "config's ", low=0, low_open=True)
    _number(config, "synthetic_per_class", "config's ", low=1, integer=True, optional=True)
    _number(config, "momentum", "config's ", low=0, high=0.999999, optional=True)
    _number(config, "weight_decay", "config's ", low=0, optional=True)
    if config["resize"] < config["image_size"]:
        raise ValueError(f"its config crops {config['image_size']} from images of {config['resize']}")
    if config.get("dtype", "float32") not in ("float32", "float64"):
        raise ValueError(f"its config's dtype is {config.get('dtype')!r}, expected 'float32' or 'float64'")
    classes = record.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes) \
            or len(set(classes)) != len(classes):
        raise ValueError(f"its classes are {str(classes)[:80]}, expected a list of at least 2 distinct names")
    history = record.get("history")
    if not isinstance(history, list) or not history or not all(isinstance(row, dict) for row in history):
        raise ValueError("its history is empty: a checkpoint is written after an epoch and records it")
    for number, row in enumerate(history, 1):
        _number(row, "epoch", f"history row {number}'s ", low=1, integer=True)
        for key in ("train_loss", "val_loss", "val_top1", "val_top5", "lr"):
            _number(row, key, f"history row {number}'s ", optional=True)
    if [row["epoch"] for row in history] != list(range(history[0]["epoch"], history[0]["epoch"] + len(history))):
        raise ValueError("its history's epochs do not follow one another")
    if not isinstance(record.get("best"), dict):
        raise ValueError("it has no record of its best epoch")
    _number(record["best"], "epoch", "best ", low=0, integer=True)
    _number(record, "scale", "", low=0, low_open=True)
    optimizer = record.get("optimizer")
    if not isinstance(optimizer, dict):
        raise ValueError("it has no optimiser state")
    _number(optimizer, "lr", "optimiser's ", low=0)
    _number(optimizer, "momentum", "optimiser's ", low=0, high=0.999999)
    _number(optimizer, "weight_decay", "optimiser's ", low=0)
    if not isinstance(record.get("scheduler"), dict) or not isinstance(record.get("dropout_rng"), list):
        raise ValueError("it has no scheduler state or dropout generator states")


def _first_difference(expected, stored):
    for key in sorted(expected.keys() | stored.keys()):
        if expected.get(key) != stored.get(key):
            return (f"{key}: the network has {expected.get(key, 'no such weight')}, the file "
                    f"{stored.get(key, 'nothing')}")
    return "none"
