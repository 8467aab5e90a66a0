r"""Text as token sequences: a character vocabulary with an end token, items or windows.

Two layouts (:attr:`DataInfo.text_units`):

- ``"lines"``: one item per non-empty line (a word, a name). Item :math:`w_1 \dots w_m` becomes
  the tokens :math:`w_1 \dots w_m\, \langle\mathrm{end}\rangle`, padded with
  :data:`~genlab.data.dataset.PAD_TOKEN` to the longest item plus one. A model of this data is
  a distribution over strings, and the end token is one of its predictions (it counts in the
  likelihood); padding is no prediction and never counts.
- ``"windows"``: running text cut into consecutive windows of ``window`` characters, newlines
  included; no end token, no padding.

The vocabulary is every character of the data, sorted, with token 0
(:data:`~genlab.data.dataset.END_TOKEN`) the newline: the end of an item (in running text, the
newline character itself). Every model's context starts with that token, as a document start.

Sources, all plain text read directly (genlab never unpickles and never downloads):

- ``names``: the 88,799 surnames of the 1990 US census as lower-case letters, read from the
  ``dist.all.last`` file that the ``names`` package (a dependency) ships;
- ``first-names``: the census's 5,163 distinct first names (``dist.female.first`` and
  ``dist.male.first`` of the same package);
- a ``.txt`` file: one item per line (``text_units="lines"``).

References:
    Bengio, Ducharme, Vincent & Jauvin, "A Neural Probabilistic Language Model", JMLR 2003
    (characters/words as tokens, the context window).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from genlab.data.dataset import END_TOKEN, PAD_TOKEN, DataInfo, Dataset, TextUnits
from genlab.errors import DataError

END_CHARACTER = "\n"
NAME_FILES = {"names": ("dist.all.last",), "first-names": ("dist.female.first", "dist.male.first")}
MAX_ITEM_LENGTH = 1024  # characters: longer lines are refused (use windows for running text)


def census_names(which: str) -> list[str]:
    """The census name lists shipped as plain text by the ``names`` package, lower-cased.

    Each line of those files reads ``NAME  frequency  cumulative  rank``; the first field is
    the name. Duplicates (a first name that is both female and male) are kept once, in file
    order.
    """
    spec = importlib.util.find_spec("names")  # locate the package's files without running it
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"{which}: the `names` package (a genlab dependency) is not installed; "
            "reinstall genlab (pip install -e .)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    seen: dict[str, None] = {}
    for filename in NAME_FILES[which]:
        path = folder / filename
        if not path.exists():
            raise DataError(f"{which}: {path} is missing from the installed `names` package")
        for line in path.read_text(encoding="ascii").splitlines():
            if line.strip():
                seen.setdefault(line.split()[0].lower(), None)
    return list(seen)


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file (trailing whitespace removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"{path}: the text file has no non-empty line")
    too_long = next((i for i, line in enumerate(lines) if len(line) > MAX_ITEM_LENGTH), None)
    if too_long is not None:
        raise DataError(
            f"{path}: line {too_long + 1} has {len(lines[too_long])} characters (at most "
            f"{MAX_ITEM_LENGTH} per item); genlab models one item per line"
        )
    return lines


def build_vocabulary(texts: Sequence[str]) -> tuple[str, ...]:
    """Token strings: the end token (a newline) first, then every other character, sorted."""
    characters = sorted({c for text in texts for c in text} - {END_CHARACTER})
    return (END_CHARACTER, *characters)


def encode_items(items: Sequence[str], vocabulary: Sequence[str], length: int) -> Tensor:
    """``(N, length)`` int64 tokens: each item, its end token, then padding.

    Raises :class:`DataError` for a character outside the vocabulary or an item that does not
    fit (``len(item) + 1 > length``).
    """
    index = {c: i for i, c in enumerate(vocabulary)}
    lengths = torch.tensor([len(item) for item in items], dtype=torch.long)
    too_long = (lengths + 1 > length).nonzero()
    if len(too_long):
        row = int(too_long[0])
        raise DataError(
            f"item {row} ({items[row][:20]!r}...) has {len(items[row])} characters; at most "
            f"{length - 1} fit the model's {length} positions (with the end token)"
        )
    joined = "".join(items)
    unknown = sorted(set(joined) - set(index))
    if unknown:
        row = next(i for i, item in enumerate(items) if set(item) & set(unknown))
        raise DataError(
            f"item {row} ({items[row]!r}) has characters outside the vocabulary: {unknown}"
        )
    out = torch.full((len(items), length), PAD_TOKEN, dtype=torch.long)
    positions = torch.arange(length)
    out[positions < lengths[:, None]] = torch.tensor(  # row-major: the items' characters in order
        [index[c] for c in joined], dtype=torch.long
    )
    out[torch.arange(len(items)), lengths] = END_TOKEN
    return out


def decode_tokens(
    tokens: Tensor, vocabulary: Sequence[str], units: TextUnits = "lines"
) -> list[str]:
    """Strings of ``(N, T)`` tokens: for ``"lines"`` up to (without) the end token."""
    texts = []
    for row in tokens.tolist():
        if units == "lines":
            row = row[: row.index(END_TOKEN)] if END_TOKEN in row else row
        texts.append("".join(vocabulary[t] for t in row if t != PAD_TOKEN))
    return texts


def token_mask(x: Tensor) -> Tensor:
    """Bool, the shape of ``x``: True at the tokens that count (every position but padding)."""
    return x != PAD_TOKEN


def text_dataset(
    train: Sequence[str],
    test: Sequence[str],
    name: str,
    *,
    units: TextUnits = "lines",
    window: int = 32,
) -> Dataset:
    """A text :class:`Dataset` from train and test items (``"lines"``) or texts (``"windows"``).

    The vocabulary and, for lines, the length (the longest item plus its end token) come from
    both splits, so that every test character is encodable; a model of the training split
    then gives an unseen character the probability it assigns it, as it should.
    """
    if not train or not test:
        raise DataError(f"{name}: a text dataset needs items in both splits")
    vocabulary = build_vocabulary([*train, *test])
    if units == "lines":
        length = max(len(item) for item in (*train, *test)) + 1
        x_train = encode_items(train, vocabulary, length)
        x_test = encode_items(test, vocabulary, length)
    else:
        length = window
        x_train, x_test = (_windows(part, vocabulary, window, name) for part in (train, test))
    info = DataInfo(
        name=name,
        event_shape=(length,),
        kind="text",
        vocabulary=vocabulary,
        text_units=units,
    )
    return Dataset(x_train, x_test, info)


def _windows(texts: Sequence[str], vocabulary: Sequence[str], window: int, name: str) -> Tensor:
    """``(N, window)`` consecutive windows of the texts joined by newlines (the rest dropped)."""
    joined = END_CHARACTER.join(texts) + END_CHARACTER
    if len(joined) < window:
        raise DataError(f"{name}: {len(joined)} characters, fewer than one window of {window}")
    index = {c: i for i, c in enumerate(vocabulary)}
    tokens = torch.tensor([index[c] for c in joined], dtype=torch.long)
    n = len(tokens) // window
    return tokens[: n * window].view(n, window)  # (N, window)
