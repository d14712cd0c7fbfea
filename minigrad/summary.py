"""The network at a glance: one row per layer with its output shape, parameters, multiply-adds and the
memory its output takes, computed from the sizes alone (no array is allocated, nothing runs).

    print(mg.summary(net, (128, 3, 224, 224)))     # the input's shape, batch first
    s = mg.summary(net, (1, 3, 224, 224))
    s.parameters, s.multiply_adds, s.neurons       # totals; s.rows: one Row per layer

Works on any layer: a Sequential, a Graph (its rows named "block.conv1", ... as mg.diagnose names
them) or a single layer. Multiply-adds are those of the layers' weights (convolutions, fully connected
layers; Layer.multiply_adds), per example: AlexNet's 0.72 G per 224 x 224 image is this count. The
memory is that of each layer's output at the batch of `input_shape`, what the backward pass keeps.
"""
import math
from dataclasses import dataclass

import numpy as np

from .diagnostics import row_named, weight_matrix
from .layers import Layer
from .layers.container import Container


@dataclass
class Row:
    name: str
    kind: str
    output_shape: tuple           # batch first
    parameters: int
    multiply_adds: int            # per example
    activation_bytes: int         # of the output, at the batch of the summary's input shape
    weighted: bool                # has a weight matrix: its output values are the paper's "neurons"


@dataclass
class Summary:
    rows: list
    input_shapes: list
    itemsize: int                 # bytes per value (4: float32)

    @property
    def batch(self):
        return self.input_shapes[0][0]

    @property
    def parameters(self):
        return sum(row.parameters for row in self.rows)

    @property
    def multiply_adds(self):
        """Per example, forward."""
        return sum(row.multiply_adds for row in self.rows)

    @property
    def activation_bytes(self):
        return sum(row.activation_bytes for row in self.rows)

    @property
    def neurons(self):
        """The output values of one example's weighted layers (convolutions and fully connected): the
        units the paper counts ("650,000 neurons", section 1)."""
        return sum(math.prod(row.output_shape[1:]) for row in self.rows if row.weighted)

    def __getitem__(self, name):
        return row_named(self.rows, name, "the summary")

    def table(self):
        """The header and one tuple of strings per row, then the totals."""
        header = ("layer", "type", "output", "parameters", "mult-adds per example",
                  f"activations at batch {self.batch}")
        cells = [(row.name, row.kind, " x ".join(map(str, row.output_shape[1:])), f"{row.parameters:,}",
                  f"{row.multiply_adds:,}" if row.multiply_adds else "-", _megabytes(row.activation_bytes))
                 for row in self.rows]
        total = ("total", "", "", f"{self.parameters:,}", f"{self.multiply_adds:,}",
                 _megabytes(self.activation_bytes))
        return header, cells, total

    def __str__(self):
        header, cells, total = self.table()
        lines = [header] + cells + [total]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
                for line in lines]
        rule = "-" * len(text[0])
        return "\n".join([text[0], rule, *text[1:-1], rule, text[-1],
                          f"{self.neurons:,} neurons (output values of the weighted layers per example)"])

    def _repr_html_(self):
        """The table as HTML, for notebooks and the book."""
        header, cells, total = self.table()

        def row(values, tag="td"):
            return "<tr>" + "".join(f'<{tag} style="text-align:{"left" if i < 3 else "right"}">{value}</{tag}>'
                                    for i, value in enumerate(values)) + "</tr>"

        return ("<table><thead>" + row(header, "th") + "</thead><tbody>" + "".join(map(row, cells))
                + row(f"<b>{value}</b>" if value else "" for value in total) + "</tbody></table>")


def _megabytes(count):
    return f"{count / 1e6:,.2f} MB"


def summary(model, input_shape, dtype=None):
    """The Summary of `model` for an input of `input_shape` (batch first, e.g. (128, 3, 224, 224); a list
    of shapes for a graph with several inputs). dtype: of the activations (default: the model's
    parameters', float32 without parameters)."""
    if not isinstance(model, Layer):
        raise ValueError(f"summary: model must be a minigrad Layer, Sequential or Graph, got {type(model).__name__}")
    shapes = [input_shape] if not input_shape or not isinstance(input_shape[0], (tuple, list)) else input_shape
    shapes = [tuple(shape) for shape in shapes]
    for shape in shapes:
        if not shape or not all(isinstance(size, (int, np.integer)) and size >= 1 for size in shape):
            raise ValueError(f"summary: an input shape is positive sizes with the batch first, e.g. "
                             f"(1, 3, 224, 224), got {input_shape!r}")
    parameters = model.parameters()
    itemsize = np.dtype(dtype if dtype is not None else parameters[0].data.dtype if parameters else np.float32).itemsize
    return Summary(list(_rows(model, shapes, "", itemsize)), shapes, itemsize)


def _rows(layer, input_shapes, name, itemsize):
    """One Row per layer that computes, nested containers opened up (their layers named "outer.inner")."""
    if isinstance(layer, Container) and layer.opens_up:
        for inner, child, reads, _ in layer.layer_shapes(*input_shapes):
            yield from _rows(child, reads, f"{name}.{inner}" if name else inner, itemsize)
        return
    output_shape = tuple(layer.output_shape(*input_shapes))
    if any(isinstance(size, tuple) for size in output_shape):
        raise ValueError(f"summary: {name or layer.describe()} has several outputs; summarise the layers "
                         f"around it")
    yield Row(name or type(layer).__name__, type(layer).__name__, output_shape,
              sum(int(p.data.size) for p in layer.parameters()), int(layer.multiply_adds(output_shape)),
              math.prod(output_shape) * itemsize, weight_matrix(layer) is not None)
