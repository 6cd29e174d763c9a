"""The ONNX Runtime family (voices in Piper's format: model.onnx + model.onnx.json): runtime, config,
graph facts, sessions and synthesis. Nothing here imports torch: this family must serve without it.

Requests: the text is lower-cased, NFD-normalised and split into code points, which Piper's
`phoneme_type: "text"` voices map through `phoneme_id_map`, interleaving the pad symbol `_` (our
fixtures map it to Coqui's blank and `^`/`$` to nothing, so the ids are Coqui's `add_blank` ids).
Code points missing from the map are dropped, as Piper drops them; a request is at least MIN_IDS ids,
since a single id fails inside the VITS graph.

Noise: VITS samples its noise inside the graph (RandomNormalLike without a seed), so with Piper's
default scales two runs of one session differ. SCALES = [noise 0, length 1, noise_w 0] makes every
run deterministic and bit-identical across fp32 sessions, and keeps the workload fixed; the request
seed is therefore unused (ORT's noise could never match torch's `randn` anyway).

Fork: ORT threads belong to a session, not the process. A session inherited across fork() runs in
the child on the calling thread only (the intra-op pool threads are not copied), with the parent's
output; tearing an inherited session down can crash in some ORT versions (onnxruntime PR #31961), so
a child should leave with os._exit. Nothing needs preparing before the fork.
"""

from __future__ import annotations

import json
import logging
import mmap
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttsload.strategies.base import Audio, StrategyError

SCALES = (0.0, 1.0, 0.0)  # noise_scale, length_scale, noise_w: Piper's order of the `scales` input
MIN_IDS = 2
REQUIRED_INPUTS = ("input", "input_lengths", "scales")
PAD, BOS, EOS = "_", "^", "$"
PROVIDERS = ["CPUExecutionProvider"]
_GATHER = b"\x22\x06Gather"  # the bytes of NodeProto field 4 (op_type) = "Gather"
# onnx.TensorProto.DataType, by number: the names describe() reports.
DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
          9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


def import_runtime(threads: int | None) -> dict[str, Any]:
    """onnxruntime and numpy only; `threads` is the intra-op count sessions will get (0: ORT's default)."""
    import onnxruntime

    return {"ort": str(onnxruntime.__version__), "ort_threads": threads or 0, "torch_threads": None}


# --- model.onnx.json -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceConfig:
    """The parts of Piper's voice config a request needs."""

    path: Path
    sample_rate: int
    num_symbols: int
    num_speakers: int
    phoneme_type: str
    id_map: dict[str, list[int]]
    default_speaker: int = 0


def read_config(path: Path) -> VoiceConfig:
    """Parse and check model.onnx.json; any problem is one line naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StrategyError(f"cannot read Piper voice config {path}: {type(exc).__name__}: {exc}") from exc
    try:
        id_map = {str(k): [int(i) for i in v] for k, v in data["phoneme_id_map"].items()}
        config = VoiceConfig(path, int(data["audio"]["sample_rate"]), int(data["num_symbols"]),
                             int(data.get("num_speakers", 1)), str(data.get("phoneme_type", "espeak")), id_map,
                             int(data.get("default_speaker_id", 0) or 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StrategyError(f"{path} is not a Piper voice config ({type(exc).__name__}: {exc})") from exc
    if config.phoneme_type != "text":
        raise StrategyError(f"{path}: phoneme_type {config.phoneme_type!r} needs espeak; ttsload serves only "
                            "'text' voices (ids straight from phoneme_id_map)")
    if PAD not in id_map:
        raise StrategyError(f"{path}: phoneme_id_map has no pad symbol '{PAD}'")
    too_big = sorted(k for k, ids in id_map.items() if any(i < 0 or i >= config.num_symbols for i in ids))
    if too_big:
        raise StrategyError(f"{path}: ids of {', '.join(repr(k) for k in too_big[:5])} are outside "
                            f"num_symbols {config.num_symbols}")
    return config


def phoneme_ids(text: str, config: VoiceConfig) -> list[int]:
    """Piper's ids for a `text` voice: ^ _ c1 _ c2 _ ... cn _ $, unknown code points dropped, >= MIN_IDS."""
    id_map = config.id_map
    ids = [*id_map.get(BOS, []), *id_map[PAD]]
    for char in unicodedata.normalize("NFD", text.lower()):
        if char in id_map:
            ids += [*id_map[char], *id_map[PAD]]
    ids += id_map.get(EOS, [])
    while len(ids) < MIN_IDS:
        ids += id_map[PAD]
    return ids


# --- graph facts read from the protobuf's wire format, without reading the weights -------------------


@dataclass
class GraphFacts:
    """Initializers (name, dtype, elements), the graph's inputs, and the rows of the id embedding."""

    tensors: list[tuple[str, str, int]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    vocab_rows: int | None = None

    @property
    def params(self) -> int:
        return sum(n for _, _, n in self.tensors)

    @property
    def dtypes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for _, dtype, n in self.tensors:
            found[dtype] = found.get(dtype, 0) + n
        return found


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: Any, pos: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message; length-delimited values as (start, end)."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + size), pos + size
        elif wire in (1, 5):
            value, pos = None, pos + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"unexpected wire type {wire}")
        if pos > end:
            raise ValueError("a field runs past the end of the file")
        yield number, wire, value


def _text(buf: Any, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def _tensor(buf: Any, span: tuple[int, int]) -> tuple[str, str, list[int]]:
    name, dtype, dims = "", 0, []
    for number, wire, value in _fields(buf, *span):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            pos, end = value
            while pos < end:
                dim, pos = _varint(buf, pos, end)
                dims.append(dim)
        elif number == 2:
            dtype = value
        elif number == 8:
            name = _text(buf, value)
    return name, DTYPES.get(dtype, f"type{dtype}"), dims


def graph_facts(path: Path) -> GraphFacts:
    """Scan an .onnx file (mapped, not read): initializer shapes, inputs, and the id embedding's rows.

    Only field headers are touched, never the weights' bytes, so this costs milliseconds and no
    memory; a truncated or non-ONNX file is a one-line StrategyError naming it.
    """
    facts = GraphFacts()
    shapes: dict[str, list[int]] = {}
    gathers: list[list[str]] = []
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            graph = next((v for n, w, v in _fields(buf, 0, len(buf)) if n == 7 and w == 2), None)
            if graph is None:
                raise ValueError("no graph in the file")
            for number, wire, value in _fields(buf, *graph):
                if number == 5 and wire == 2:
                    name, dtype, dims = _tensor(buf, value)
                    shapes[name] = dims
                    facts.tensors.append((name, dtype, int(np.prod(dims)) if dims else 1))
                elif number == 11 and wire == 2:
                    facts.inputs += [_text(buf, v) for n, w, v in _fields(buf, *value) if n == 1 and w == 2]
                elif number == 1 and wire == 2 and buf.find(_GATHER, *value) >= 0:  # parse Gather nodes only
                    node = [(n, v) for n, w, v in _fields(buf, *value) if w == 2 and n in (1, 4)]
                    if any(n == 4 and _text(buf, v) == "Gather" for n, v in node):
                        gathers.append([_text(buf, v) for n, v in node if n == 1])
    except (OSError, ValueError) as exc:
        raise StrategyError(f"{path} is not a readable ONNX model (truncated or corrupted?): {exc}") from exc
    embedding = [shapes[g[0]] for g in gathers if len(g) == 2 and g[1] == "input" and g[0] in shapes]
    facts.vocab_rows = embedding[0][0] if embedding and embedding[0] else None
    return facts


def check_model(config: VoiceConfig, facts: GraphFacts, path: Path) -> None:
    """The graph takes Piper's inputs and its id embedding has num_symbols rows."""
    missing = [name for name in REQUIRED_INPUTS if name not in facts.inputs]
    if missing:
        raise StrategyError(f"{path} lacks the Piper inputs {', '.join(missing)} (has {', '.join(facts.inputs)})")
    if facts.vocab_rows is not None and facts.vocab_rows != config.num_symbols:
        raise StrategyError(f"{config.path}: num_symbols is {config.num_symbols} but the id embedding of {path} "
                            f"has {facts.vocab_rows} rows (config and model do not belong together)")


# --- sessions --------------------------------------------------------------------------------------


def session_options(variant: str, threads: int | None) -> Any:
    """`default`: ORT's defaults (threads as given); `lean`: no arena, no memory pattern, intra-op
    `threads or 1`, inter-op 1; `preoptimized`: the graph was optimised at build, so none at load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if variant == "lean":
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
    elif threads:
        options.intra_op_num_threads = threads
    if variant == "preoptimized":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def create_session(path: Path, options: Any) -> Any:
    """An InferenceSession on the CPU; ORT's (often multi-line) errors become one line naming the file."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=PROVIDERS)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StrategyError(f"onnxruntime cannot load {path}: {type(exc).__name__}: {first}") from exc


def save_optimized(source: Path, target: Path) -> None:
    """Build-time step: ORT optimises the graph once and writes it. EXTENDED, not ALL: ALL adds NCHWc
    layout transforms that ORT warns are specific to this machine."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    create_session(source, options)


def fold_identity_initializers(model: Any) -> int:
    """Rewire Identity(initializer) consumers straight to the initializer; returns how many.

    The TorchScript exporter emits those for weights reached twice (VITS's duration predictor reuses
    flows[-1]); quantize_dynamic otherwise fails with "Expected ... to be an initializer".
    """
    initializers = {t.name for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs}
    keep = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output and n.output[0] in alias)]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return len(alias)


def quantize_int8(source: Path, folder: Path) -> tuple[Path, int]:
    """Dynamic int8 weights with ORT's default op types (Conv becomes ConvInteger: smaller, slower on CPU)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    folded = fold_identity_initializers(model)
    onnx.save(model, str(folder / "folded.onnx"))
    del model
    target = folder / "int8.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs a root WARNING per int64 tensor it cannot type (dozens on VITS)
    try:
        quantize_dynamic(str(folder / "folded.onnx"), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return target, folded


def int8_fraction(source: GraphFacts, quantized: GraphFacts) -> float:
    """Share of the source's initializer elements that became int8 (quantize_dynamic adds `_quantized`)."""
    names = {name for name, _, _ in quantized.tensors}
    converted = sum(n for name, _, n in source.tensors if f"{name}_quantized" in names)
    return converted / source.params if source.params else 0.0


# --- the loaded model ------------------------------------------------------------------------------


@dataclass
class OnnxGraph:
    """What construct builds and fill completes: the config, the file to load and its facts."""

    config: VoiceConfig
    path: Path
    facts: GraphFacts
    source: GraphFacts | None = None  # the graph before a conversion (int8), for `params`
    session: Any = None
    conversion: dict[str, Any] = field(default_factory=dict)


@dataclass
class OnnxModel:
    """An InferenceSession of a Piper voice and what the loader did (a base.LoadedModel)."""

    session: Any
    config: VoiceConfig
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def synthesize(self, text: str, seed: int) -> Audio:
        """Ids from the text, one session.run with SCALES; `seed` is unused (see the module docstring)."""
        return Audio(self.run_ids(phoneme_ids(text, self.config)), self.sample_rate)

    def run_ids(self, ids: list[int], scales: tuple[float, float, float] = SCALES) -> np.ndarray:
        """The raw session call in Piper's input layout; float32 samples, 1-D."""
        x = np.asarray([ids], dtype=np.int64)
        feed = {"input": x, "input_lengths": np.asarray([x.shape[1]], dtype=np.int64),
                "scales": np.asarray(scales, dtype=np.float32)}
        if self.config.num_speakers > 1:
            feed["sid"] = np.asarray([self.config.default_speaker], dtype=np.int64)
        wav = self.session.run(None, feed)[0]
        return np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
