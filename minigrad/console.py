"""What a training or evaluation script shows on the terminal: warnings on one line, progress bars that
stay out of log files, and the one summary of the files a folder skipped.

The scripts opt in (one_line_warnings() changes the process's warning format, so the library never
calls it on import).
"""
import os
import warnings

from tqdm import tqdm


def one_line_warnings():
    """Show warnings as `warning: <message>` (Python's default adds the file, line and source of the
    call, twice the lines for a folder's skipped files), and leave out PIL's DecompressionBombWarning:
    it names no file, and minigrad refuses every image it is given for with its own warning naming the
    file (data/folder.py)."""
    from PIL import Image

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def progress(iterable, total, desc, show=True, leave=False):
    """`iterable` with a progress bar on the terminal: none on MPI ranks other than 0, nor (tqdm's
    disable=None) where the output is not a terminal, so that a log written to a file holds the lines,
    not the bars' redrawing; none at all with show=False."""
    from . import distributed

    disable = True if not show or distributed.world().rank != 0 else None
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=leave, dynamic_ncols=True, mininterval=0.5,
                disable=disable)


def write(line):
    """Print a line without breaking a progress bar that is being drawn."""
    tqdm.write(line)


def printable(text):
    """`text` as any terminal or log can take it: a file name that is not valid UTF-8 (which Python holds
    with its undecodable bytes as surrogates, os.fsdecode) shows those bytes as \\xNN escapes, where
    printing it would end the script with UnicodeEncodeError; any other lone surrogate (a class name
    from a checkpoint's JSON) shows as \\uNNNN."""
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def skipped_summary(skipped, where=None):
    """The closing line about files that did not train or were not predicted: None when there are none."""
    if not skipped:
        return None
    return f"{len(skipped)} file(s) skipped{f' under {where}' if where else ''} (each warned about above)"
