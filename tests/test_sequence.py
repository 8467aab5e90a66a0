"""Text: the data kind, the sequence families' normalisation and exact prefix completion by
enumeration, the transformer's cache, and perplexity against a hand computation."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

import genlab
from genlab.data.dataset import END_TOKEN, PAD_TOKEN
from genlab.data.text import decode_tokens, encode_items, text_dataset
from genlab.errors import DataError, UnsupportedCapability
from genlab.metrics.likelihood import token_scores
from genlab.models import FAMILIES

SEQUENCE_FAMILIES = ["ngram", "nplm", "transformer"]


def tiny_corpus():
    """Vocabulary {end, a, b}; items of at most 2 characters (T = 3)."""
    return text_dataset(["ab", "b", "ba", "a"], ["ab", "aa"], "tiny")


def every_item(max_length: int = 2) -> list[str]:
    return ["".join(c) for n in range(max_length + 1) for c in itertools.product("ab", repeat=n)]


SMALL = {
    "ngram": {},
    "nplm": {"steps": 30, "hidden": (16,), "embedding_dim": 4},
    "transformer": {"steps": 30, "dim": 16, "heads": 2, "n_layers": 1},
}


def trained(family: str, data, **settings):
    settings = {**SMALL[family], **settings}
    model = genlab.fit(family, data, val_fraction=0.0, **settings).double()
    return model


@pytest.mark.parametrize("family", SEQUENCE_FAMILIES)
def test_probabilities_of_every_item_sum_to_one(family):
    data = tiny_corpus()
    model = trained(family, data)
    items = encode_items(every_item(), data.info.vocabulary, 3)  # 7 strings, the empty one too
    with torch.no_grad():
        assert float(torch.logsumexp(model.log_prob(items), 0)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("family", SEQUENCE_FAMILIES)
def test_prefix_completion_matches_enumeration(family):
    data = tiny_corpus()
    model = trained(family, data).eval().requires_grad_(False)
    candidates = [item for item in every_item() if item.startswith("a")]  # a, aa, ab
    truth = torch.softmax(model.log_prob(encode_items(candidates, data.info.vocabulary, 3)), 0)
    x = encode_items(["ab"], data.info.vocabulary, 3)
    mask = torch.tensor([True, False, False])
    n = 10_000
    draws = model.sample_conditional(x, mask, n, generator=torch.Generator().manual_seed(0))
    texts = decode_tokens(draws[:, 0], data.info.vocabulary)
    frequency = torch.tensor([texts.count(c) / n for c in candidates], dtype=torch.double)
    assert float((frequency - truth).abs().max()) < 0.02  # 4 standard errors
    with pytest.raises(UnsupportedCapability, match="prefix"):
        model.sample_conditional(x, torch.tensor([False, True, False]), 1)


def test_cached_sampling_gives_the_same_tokens_as_recomputing(first_names):
    model = genlab.fit("transformer", first_names, budget="smoke").double().requires_grad_(False)
    cached = model.sample(200, generator=torch.Generator().manual_seed(3))
    uncached = model.sample(200, generator=torch.Generator().manual_seed(3), cache=False)
    assert torch.equal(cached, uncached)
    # and the cached logits equal a full pass, position by position
    x = first_names.x_test[:8]
    inputs = model._inputs(x)
    step = model.token_step(cache=True)
    logits, state = step(inputs[:, :3], None)
    pieces = [logits]
    for t in range(3, inputs.shape[1]):
        logits, state = step(inputs[:, t : t + 1], state)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, 1), model.logits(inputs))


def test_perplexity_of_bigram_counts_by_hand():
    """Bigram counts with smoothing beta = 1 on a hand-made corpus (hand computation below)."""
    data = text_dataset(["ab", "b"], ["ba", "a"], "hand")  # vocabulary: end, a, b
    model = genlab.fit("ngram", data, order=2, smoothing=1.0, val_fraction=0.0)
    # unigram counts a:1 b:2 end:2 (N = 5): p1 = (c + 1/3)/6 -> end 7/18, a 4/18, b 7/18
    # after end (a:1 b:1): p = (c + p1)/3; after a (b:1): (c + p1)/2; after b (end:2): (c + p1)/3
    p_b_after_end, p_a_after_end = (1 + 7 / 18) / 3, (1 + 4 / 18) / 3
    p_a_after_b, p_end_after_a = (4 / 18) / 3, (7 / 18) / 2
    # items have at most T - 1 = 2 characters: the end token at the last position is certain
    log_p = [
        math.log(p_b_after_end * p_a_after_b * 1.0),  # "ba" + end: 3 tokens
        math.log(p_a_after_end * p_end_after_a),  # "a" + end: 2 tokens (1 padding)
    ]
    nll = -sum(log_p) / 5  # weighted by tokens over the split; padding does not count
    result = genlab.evaluate(model, data)
    assert result["nll_per_token"] == pytest.approx(nll, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(nll), rel=1e-6)
    assert result["bits_per_char"] == pytest.approx(nll / math.log(2), rel=1e-6)
    assert result["n_tokens"] == 5
    mean_of_items = -(log_p[0] / 3 + log_p[1] / 2) / 2  # not the convention
    assert abs(result["nll_per_token"] - mean_of_items) > 1e-3
    per_token = model.token_log_probs(data.x_test).exp()
    expected = [[p_b_after_end, p_a_after_b, 1], [p_a_after_end, p_end_after_a, 1]]
    torch.testing.assert_close(per_token.double(), torch.tensor(expected, dtype=torch.double))


def test_token_scores_weight_tokens_not_batches():
    x = torch.tensor([[1, 0, PAD_TOKEN, PAD_TOKEN], [1, 1, 1, 0]])
    scores = token_scores(torch.tensor([-2.0, -12.0]), x)
    assert scores["n_tokens"] == 6 and scores["nll_per_token"] == pytest.approx(14 / 6)


def test_names_corpus_is_read_from_the_package_as_plain_text():
    data = genlab.data.load("names")
    assert data.info.kind == "text" and data.info.text_units == "lines"
    assert data.info.vocabulary == ("\n", *"abcdefghijklmnopqrstuvwxyz")
    assert len(data.x_train) + len(data.x_test) == 88_799
    assert "smith" in decode_tokens(data.x_train[:50], data.info.vocabulary)
    lengths = (data.x_train != PAD_TOKEN).sum(1)
    assert torch.all(data.x_train[torch.arange(len(lengths)), lengths - 1] == END_TOKEN)


def test_user_text_file_lines_and_windows(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("hello\nworld\n\nwords here\n" * 5, encoding="utf-8")
    data = genlab.data.load(str(path))
    assert data.info.kind == "text" and data.info.event_shape == (11,)
    assert len(data.x_train) + len(data.x_test) == 15  # blank lines dropped
    windows = genlab.data.load_text(path, units="windows", window=8)
    assert windows.info.text_units == "windows" and windows.x_train.shape[1] == 8
    assert bool((windows.x_train >= 0).all())  # no padding in running text
    model = genlab.fit("ngram", windows, order=2)
    assert model.sample(3).shape == (3, 8)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="UTF-8"):
        genlab.data.load(str(tmp_path / "bad.txt"))


def test_malformed_tokens_are_refused(first_names):
    model = genlab.fit("ngram", first_names, order=2)
    x = first_names.x_test[:2].clone()
    with pytest.raises(DataError, match="integer token ids"):
        model.log_prob(x.float())
    x[0, -1] = 1  # a character after the end token
    with pytest.raises(DataError, match="after an item's end token"):
        model.log_prob(x)
    x[0, -1] = 99
    with pytest.raises(DataError, match="outside"):
        model.log_prob(x)


@pytest.mark.parametrize("family", ["vae", "flow", "pca", "autoregressive"])
def test_other_families_refuse_text(family, first_names):
    with pytest.raises(DataError, match="not text data"):
        genlab.fit(family, first_names, budget="smoke")
    assert "text" not in FAMILIES[family].data_kinds


def test_learned_models_beat_bigram_counts_on_held_out_names(first_names):
    """A small transformer, a few hundred steps, already beats bigram counts on held-out items."""
    bigram = genlab.evaluate(genlab.fit("ngram", first_names, order=2), first_names)
    transformer = genlab.fit("transformer", first_names, steps=200, dim=32, n_layers=2)
    score = genlab.evaluate(transformer, first_names)
    assert score["nll_per_token"] < bigram["nll_per_token"] - 0.05


def test_cli_train_evaluate_sample_text(tmp_path, capsys):
    from genlab.cli import main

    words = tmp_path / "words.txt"
    words.write_text("\n".join(["anna", "bob", "carla", "dave", "eve"] * 4), encoding="utf-8")
    run = str(tmp_path / "run")
    assert main(["train", "ngram", "--data", str(words), "--out", run, "--no-progress"]) == 0
    assert main(["evaluate", run, "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_per_token"]))
    assert "end token count, padding does not" in out
    assert main(["sample", run, "-n", "5", "--out", str(tmp_path / "s.txt")]) == 0
    assert len((tmp_path / "s.txt").read_text().splitlines()) == 5
    assert main(["sample", run, "-n", "5", "--out", str(tmp_path / "s.png")]) == 2
    assert (tmp_path / "run" / "samples.txt").exists()
