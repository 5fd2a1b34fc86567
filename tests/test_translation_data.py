"""Translation data: numbers corpus, subword tokenizer, corpus files and saved datasets, batches, bad input, cache."""
import json
import random

import pytest
import torch
from datasets import Dataset, DatasetDict

from tasks.common.errors import InputError
from tasks.translation.corpus import read_folder
from tasks.common.batching import length_buckets
from tasks.translation.data import TranslationDataModule
from tasks.translation.numbers import number_pair, numbers_corpus
from tasks.translation.tokenizer import (BOS, EOS, PAD, UNK, decode, encode, load_tokenizer, save_tokenizer,
                                         tokenizer_from_json, tokenizer_to_json, train_tokenizer)

SMALL = dict(numbers_train=2000, numbers_val=100, numbers_test=100, vocab_size=300)

WORDS = ["l'été", "déjà", "garçon", "naïve", "Œuvre", "hôtel", "Straße", "über", "Ça", "où", "très", "Noël", "le",
         "la", "est", "un", "une", "de", "et", "pas", "mais", "avec", "son", "chien", "chat", "mange", "voit", "ville", "rue"]
PUNCTUATION = [".", "!", "?", ",", ";", " :", " «ok»", " (oui)", "—non"]


def sentences(count: int, seed: int) -> list[str]:
    """Made-up sentences with accents and punctuation; other seeds give held-out sentences from the same characters."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) + rng.choice(PUNCTUATION) for _ in range(count)]


def parallel_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    return list(zip(sentences(count, seed), sentences(count, seed + 1000)))


@pytest.fixture(scope="module")
def numbers_data(tmp_path_factory):
    data = TranslationDataModule(**SMALL, cache_dir=str(tmp_path_factory.mktemp("cache")))
    data.prepare_data()
    data.setup()
    return data


# ---- numbers corpus ----

def test_number_pairs_are_spelled_right():
    assert number_pair(241, "en", "fr") == ("two hundred and forty-one", "deux cent quarante et un")
    assert number_pair(80, "en", "fr") == ("eighty", "quatre-vingts")
    assert number_pair(71, "en", "fr") == ("seventy-one", "soixante et onze")
    assert number_pair(0, "en", "fr") == ("zero", "zéro")
    assert number_pair(21, "de", "en") == ("einundzwanzig", "twenty-one")


def test_numbers_corpus_is_split_by_number():
    corpus = numbers_corpus(train=2000, val=100, test=100, seed=3)
    assert [len(corpus[s]) for s in ("train", "val", "test")] == [2000, 100, 100]
    assert all(s and t for pairs in corpus.values() for s, t in pairs)
    train, val, test = ({s for s, _ in corpus[split]} for split in ("train", "val", "test"))  # one sentence per number
    assert len(train) == 2000 and len(val) == 100 and len(test) == 100
    assert not train & val and not train & test and not val & test
    assert {t for _, t in corpus["train"]}.isdisjoint(t for _, t in corpus["test"])
    under_100 = [s for s in train if "thousand" not in s and "hundred" not in s]
    over_1000 = [s for s in train if "thousand" in s]
    assert len(under_100) > 80 and len(over_1000) < 0.85 * len(train)  # uniform draws: 99.9% over a thousand
    assert numbers_corpus(train=2000, val=100, test=100, seed=3) == corpus
    assert numbers_corpus(train=2000, val=100, test=100, seed=4) != corpus


def test_numbers_corpus_languages_are_config_values():
    corpus = numbers_corpus(src_lang="de", tgt_lang="en", train=50, val=5, test=5)
    assert all(s and t and s != t for s, t in corpus["train"])
    with pytest.raises(InputError, match="tgt_lang 'xx'"):
        TranslationDataModule(tgt_lang="xx")


# ---- tokenizer ----

@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_tokenizer_specials_round_trip_and_size(kind, tmp_path):
    tokenizer = train_tokenizer(sentences(400, seed=0), kind=kind, vocab_size=150)
    assert [tokenizer.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<unk>")] == [PAD, BOS, EOS, UNK]
    assert 40 < tokenizer.get_vocab_size() <= 150
    held_out = sentences(50, seed=1) + ["Ça, c'est déjà l'été à l'hôtel «Noël» — très naïve !"]
    for text in held_out:
        ids = encode(tokenizer, text)
        assert BOS not in ids and EOS not in ids and UNK not in ids
        assert decode(tokenizer, ids) == text
        assert decode(tokenizer, torch.tensor([BOS] + ids + [EOS] + ids + [PAD, PAD])) == text  # stops at EOS
    path = save_tokenizer(tokenizer, tmp_path / "tok.json")
    text = tokenizer_to_json(tokenizer)
    copies = load_tokenizer(path), load_tokenizer(text), tokenizer_from_json(text)
    for copy in copies:
        assert [encode(copy, t) for t in held_out] == [encode(tokenizer, t) for t in held_out]


def test_tokenizer_never_exceeds_vocab_size():
    texts = sentences(400, seed=0)
    assert train_tokenizer(texts, "bpe", vocab_size=20).get_vocab_size() <= 20  # fewer characters than the alphabet
    assert train_tokenizer(texts, "bpe", vocab_size=10_000).get_vocab_size() < 10_000  # small corpus: smaller vocab
    with pytest.raises(InputError, match="vocab_size 20 is too small"):
        train_tokenizer(texts, "unigram", vocab_size=20)  # unigram must keep every character
    with pytest.raises(InputError, match="tokenizer 'wordpiece'"):
        train_tokenizer(texts, "wordpiece", vocab_size=100)


# ---- corpus folders and saved datasets ----

def write_folder(folder, layout: str, splits: dict[str, list[tuple[str, str]]]):
    folder.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        if layout == "parallel":
            (folder / f"{name}.en").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
            (folder / f"{name}.fr").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
        elif layout == "tsv":
            (folder / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
        else:
            lines = [json.dumps({"src": s, "tgt": t}, ensure_ascii=False) if s or t else "" for s, t in pairs]
            (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("layout", ["parallel", "tsv", "jsonl"])
def test_corpus_folder_layouts(layout, tmp_path, recwarn):
    train, dev, test = parallel_pairs(80, 0), parallel_pairs(10, 1), parallel_pairs(10, 2)
    with_blanks = train[:5] + [("orphan source", "")] + train[5:] + [("", "")]
    folder = write_folder(tmp_path / "corpus", layout, {"train": with_blanks, "dev": dev, "test": test})  # dev = val
    data = TranslationDataModule(corpus="files", path=str(folder), vocab_size=120, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    data.setup()
    assert data.pairs == {"train": train, "val": dev, "test": test}
    assert any("skipped pairs with an empty side: 2 in train" in str(w.message) for w in recwarn)
    batch = next(iter(data.train_dataloader()))
    for i, position in enumerate(batch.index.tolist()):
        source, target = data.pairs["train"][position]
        assert decode(data.tokenizer, batch.src[i]) == source and decode(data.tokenizer, batch.tgt[i]) == target


def test_test_split_is_optional_in_folders(tmp_path):
    folder = write_folder(tmp_path / "corpus", "tsv", {"train": parallel_pairs(20, 0), "valid": parallel_pairs(5, 1)})
    splits = read_folder(folder, "en", "fr")
    assert len(splits["train"]) == 20 and len(splits["val"]) == 5 and splits["test"] == []
    data = TranslationDataModule(corpus="files", path=str(folder), vocab_size=100, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    data.setup()
    with pytest.raises(InputError, match="has no test split"):
        data.test_dataloader()


@pytest.mark.parametrize("rows", ["columns", "translation"])
def test_saved_dataset_dict_both_row_layouts(rows, tmp_path):
    splits = {"train": parallel_pairs(60, 0), "validation": parallel_pairs(8, 1), "test": parallel_pairs(8, 2)}
    def as_dataset(pairs):
        if rows == "columns":  # bentrevett/multi30k
            return Dataset.from_dict({"fr": [t for _, t in pairs], "en": [s for s, _ in pairs]})
        return Dataset.from_dict({"translation": [{"en": s, "fr": t} for s, t in pairs]})  # wmt14
    DatasetDict({name: as_dataset(pairs) for name, pairs in splits.items()}).save_to_disk(str(tmp_path / "saved"))
    data = TranslationDataModule(corpus="disk", path=str(tmp_path / "saved"), vocab_size=120, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    data.setup()
    assert data.pairs == {"train": splits["train"], "val": splits["validation"], "test": splits["test"]}
    wrong_pair = TranslationDataModule(corpus="disk", path=str(tmp_path / "saved"), src_lang="de",
                                       cache_dir=str(tmp_path / "c2"))
    with pytest.raises(InputError, match="saved.*de"):
        wrong_pair.prepare_data()


# ---- batches ----

def test_batch_format(numbers_data):
    data = numbers_data
    batch = next(iter(data.val_dataloader()))
    B, S = batch.src.shape
    assert batch.tgt.shape[0] == B and batch.src.dtype == batch.tgt.dtype == torch.long
    assert batch.src_lengths.shape == batch.tgt_lengths.shape == batch.index.shape == (B,)
    assert batch.src_lengths.max() == S and batch.tgt_lengths.max() == batch.tgt.shape[1]
    for i in range(B):
        src, tgt = batch.src[i, : batch.src_lengths[i]], batch.tgt[i, : batch.tgt_lengths[i]]
        assert src[-1] == EOS and BOS not in src and PAD not in src and (batch.src[i, len(src) :] == PAD).all()
        assert tgt[0] == BOS and tgt[-1] == EOS and PAD not in tgt and (batch.tgt[i, len(tgt) :] == PAD).all()
        assert (decode(data.tokenizer, src), decode(data.tokenizer, tgt)) == data.pairs["val"][batch.index[i]]
    assert data.tokenizer.get_vocab_size() <= data.vocab_size == SMALL["vocab_size"]


def padding_share(batches, lengths) -> float:
    real = sum(sum(lengths[i]) for batch in batches for i in batch)
    padded = sum(len(batch) * (max(lengths[i][0] for i in batch) + max(lengths[i][1] for i in batch)) for batch in batches)
    return 1 - real / padded


def test_bucketing_cuts_padding_and_serves_every_pair_once_per_epoch(numbers_data):
    data = numbers_data
    lengths = data.datasets["train"].lengths()
    loader = data.train_dataloader()
    epochs = []
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)  # what Lightning does when each epoch starts
        epochs.append([batch.index.tolist() for batch in loader])
    for batches in epochs:
        assert sorted(i for batch in batches for i in batch) == data.datasets["train"].positions
        assert len(batches) == len(loader)  # Lightning reads len() once for all epochs
    assert epochs[0] != epochs[1]  # a new batch order every epoch
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    random_batches = [order[i : i + 64] for i in range(0, len(order), 64)]
    bucketed = padding_share(list(loader.batch_sampler), lengths)
    assert bucketed < 0.3 * padding_share(random_batches, lengths), (bucketed, padding_share(random_batches, lengths))
    val = data.val_dataloader()
    assert [b.index.tolist() for b in val] == [b.index.tolist() for b in val]  # evaluation order is fixed
    assert sorted(i for b in val for i in b.index.tolist()) == list(range(len(data.pairs["val"])))


def test_token_budget_batches(numbers_data):
    lengths = numbers_data.datasets["train"].lengths()
    batches = length_buckets(lengths, batch_tokens=300, shuffle=True, seed=1)(0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(max(lengths[i]) for i in b) <= 300 for b in batches)
    assert max(len(b) for b in batches) > 2 * min(len(b) for b in batches[:-1])  # short pairs get bigger batches


def test_long_training_pairs_are_dropped_but_evaluation_pairs_kept(numbers_data, recwarn):
    data = TranslationDataModule(**SMALL, max_len=8, cache_dir=numbers_data.hparams.cache_dir)
    data.prepare_data()
    data.setup()
    kept = len(data.datasets["train"])
    assert 0 < kept < 2000
    assert any(f"dropped {2000 - kept} of 2000 training pairs longer than max_len=8" in str(w.message) for w in recwarn)
    assert len(data.datasets["val"]) == len(data.pairs["val"]) == 100
    assert max(len(src) for src in data.datasets["val"].src_ids) > 8  # long ones are kept whole
    assert max(max(pair) for pair in data.datasets["train"].lengths()) <= 8 + 2


# ---- bad input ----

def prepare(folder, tmp_path, **kwargs):
    TranslationDataModule(corpus="files", path=str(folder), cache_dir=str(tmp_path / "cache"), **kwargs).prepare_data()


def test_mismatched_and_undecodable_files(tmp_path):
    folder = write_folder(tmp_path / "a", "parallel", {"train": parallel_pairs(3, 0), "val": parallel_pairs(2, 1)})
    (folder / "train.fr").write_text("un\ndeux\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.en has 3 lines but .*train\.fr has 2"):
        prepare(folder, tmp_path)
    (folder / "train.fr").write_bytes("un\ndeux\n".encode() + b"tr\xe8s\n")  # Latin-1, not UTF-8
    with pytest.raises(InputError, match=r"train\.fr line 3: not valid UTF-8"):
        prepare(folder, tmp_path)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(InputError, match="nowhere: no such folder"):
        prepare(tmp_path / "nowhere", tmp_path)
    folder = write_folder(tmp_path / "b", "parallel", {"train": parallel_pairs(3, 0)})
    with pytest.raises(InputError, match=r"no val split; looked for val\.en \+ val\.fr, val\.tsv"):
        prepare(folder, tmp_path)
    write_folder(folder, "tsv", {"val": parallel_pairs(2, 1)})
    (folder / "train.fr").unlink()
    with pytest.raises(InputError, match=r"train\.en has no other side: .*train\.fr is missing"):
        prepare(folder, tmp_path)
    with pytest.raises(InputError, match="needs a path"):
        TranslationDataModule(corpus="files")


def test_bad_tsv_and_jsonl_lines(tmp_path):
    folder = write_folder(tmp_path / "c", "tsv", {"train": parallel_pairs(3, 0), "val": parallel_pairs(2, 1)})
    (folder / "train.tsv").write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.tsv line 2: no tab"):
        prepare(folder, tmp_path)
    (folder / "train.tsv").unlink()
    (folder / "train.jsonl").write_text('{"src": "a", "tgt": "b"}\n{"src": "a", "tgt": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.jsonl line 2: not valid JSON"):
        prepare(folder, tmp_path)
    (folder / "train.jsonl").write_text('{"src": "a", "tgt": "b"}\n\n{"src": "a", "target": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.jsonl line 3: no \"tgt\" field"):
        prepare(folder, tmp_path)


def test_corpus_empty_after_cleaning(tmp_path):
    folder = write_folder(tmp_path / "d", "parallel", {"train": [("a", ""), ("", "b")], "val": parallel_pairs(2, 1)})
    with pytest.raises(InputError, match="no train pairs left after dropping 2 with an empty side"):
        prepare(folder, tmp_path)


# ---- cache ----

def test_vocab_size_is_known_before_any_io(tmp_path):
    data = TranslationDataModule(**{**SMALL, "numbers_train": 300, "vocab_size": 4321}, cache_dir=str(tmp_path / "cache"))
    assert data.vocab_size == 4321 and not (tmp_path / "cache").exists()  # what the model's embedding is sized by
    data.prepare_data()
    data.setup()
    # 300 numbers hold far fewer subwords than asked for: the tokenizer learns fewer, and every id fits the model
    assert data.tokenizer.get_vocab_size() < data.vocab_size
    ids = [i for split in data.datasets.values() for side in (split.src_ids, split.tgt_ids) for x in side for i in x]
    assert 0 <= min(ids) and max(ids) < data.tokenizer.get_vocab_size()


def test_cache_is_reused(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    TranslationDataModule(**SMALL, cache_dir=str(cache)).prepare_data()
    files = {p: p.stat().st_mtime_ns for p in sorted(cache.rglob("*"))}
    assert [p.name for p in files if p.is_file()] == [".build.lock", "pairs.json", "tokenizer-bpe-300.json"]
    again = TranslationDataModule(**SMALL, cache_dir=str(cache))
    monkeypatch.setattr(TranslationDataModule, "_read_corpus", lambda self: pytest.fail("corpus read again"))
    with monkeypatch.context() as patch:
        patch.setattr("tasks.translation.data.train_tokenizer", lambda *a: pytest.fail("tokenizer trained again"))
        again.prepare_data()
    assert {p: p.stat().st_mtime_ns for p in sorted(cache.rglob("*"))} == files  # nothing written again
    TranslationDataModule(**{**SMALL, "vocab_size": 200}, cache_dir=str(cache)).prepare_data()  # same corpus, new tokenizer
    assert sorted(p.name for p in cache.rglob("*.json")) == ["pairs.json", "tokenizer-bpe-200.json", "tokenizer-bpe-300.json"]
    again.setup()
    assert len(again.pairs["train"]) == 2000 and again.tokenizer.get_vocab_size() <= 300
