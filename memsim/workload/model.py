"""Transformer model descriptions: :class:`ModelSpec`, the YAML loader and the Hugging Face importer.

A model is described by the fields of a Hugging Face ``config.json`` under their Llama-style names
(``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``, ``num_key_value_heads``, ``head_dim``,
``intermediate_size``, ``hidden_act``, ``vocab_size``, ``max_position_embeddings``,
``num_local_experts``, ``num_experts_per_tok``, ``tie_word_embeddings``) plus the architectural switches
that those files imply through their ``model_type`` and that memsim needs explicitly:

``gated_ffn``          FFN is ``down(act(gate(x)) * up(x))`` (Llama, Mixtral) instead of ``down(act(up(x)))``
``norm``               ``layernorm`` (weight and bias) or ``rmsnorm`` (weight only)
``position_embedding`` ``learned`` (a table of ``max_position_embeddings + position_offset`` rows read by
                       a gather, GPT-2/OPT) or ``rope`` (rotary, no parameters)
``linear_bias``        every projection has a bias (GPT-2, OPT); the LM head never does
``parallel_attn_mlp``  attention and MLP both read one shared input norm and are added to the residual
                       together (GPT-J / Falcon-7B style); otherwise sequential pre-norm blocks

Shipped models live in ``workloads/models/<name>.yaml`` with a ``source:`` naming the published config
their numbers come from. :func:`load_model` takes such a name, a path to a model YAML, or a path to a
Hugging Face ``config.json`` (read by :func:`import_hf_config`).

What is modelled / simplified: decoder-only models; pre-norm blocks; one (shared) router per MoE layer
with ``num_experts_per_tok`` of ``num_local_experts`` gated experts; parameters are counted as the
tensors below (:func:`weight_tensors`), which reproduces the Hugging Face parameter counts exactly for
the shipped models. Not modelled: encoder-decoder models, sliding-window attention (Mistral's
``sliding_window`` is ignored: full attention, an uncapped KV cache), ALiBi, GPT-3's sparse layers
(treated as dense), shared experts, post-norm blocks, the rotary cos/sin tables.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.shipped import REPO_ROOT

__all__ = ["ModelSpec", "load_model", "import_hf_config", "weight_tensors", "list_models", "MODELS_DIR",
           "WORKLOADS_DIR"]

#: The repository's ``workloads/`` folder (model names resolve to ``workloads/models/<name>.yaml``).
WORKLOADS_DIR = REPO_ROOT / "workloads"
MODELS_DIR = WORKLOADS_DIR / "models"

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu")
NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rope")


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer, with Hugging Face ``config.json`` field names (see the module doc)."""

    name: str
    source: str
    model_type: str
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    hidden_act: str
    gated_ffn: bool
    vocab_size: int
    max_position_embeddings: int
    position_embedding: str = "rope"
    norm: str = "rmsnorm"
    linear_bias: bool = False
    parallel_attn_mlp: bool = False
    tie_word_embeddings: bool = False
    num_local_experts: int = 1
    num_experts_per_tok: int = 1
    position_offset: int = 0
    rope_theta: float | None = None
    source_file: str = ""

    def __post_init__(self) -> None:
        # Programmatic construction gets the same checks as the loaders (which report the YAML path).
        problem = _check(self)
        if problem:
            raise ConfigError(f"{problem[0]}: {problem[1]}", file=self.source_file or None)

    # ---- derived sizes -----------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_local_experts > 1

    @property
    def q_dim(self) -> int:
        """Query width: heads x head_dim (may differ from hidden_size)."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of K (and of V): KV heads x head_dim."""
        return self.num_key_value_heads * self.head_dim

    @property
    def attention_kind(self) -> str:
        """``mha``, ``gqa`` or ``mqa``."""
        if self.num_key_value_heads == self.num_attention_heads:
            return "mha"
        return "mqa" if self.num_key_value_heads == 1 else "gqa"

    def kv_elements_per_token(self) -> int:
        """K and V elements one token adds to the cache, all layers together."""
        return 2 * self.num_hidden_layers * self.kv_dim

    def param_count(self) -> int:
        """Every parameter (all experts), as the tensors of :func:`weight_tensors`."""
        return sum(n for _, _, n in weight_tensors(self))

    def active_param_count(self) -> int:
        """Parameters one token touches: the top-k experts instead of all (plus the whole LM head)."""
        total = self.param_count()
        if not self.is_moe:
            return total
        per_expert = _expert_params(self)
        return total - (self.num_local_experts - self.num_experts_per_tok) * per_expert * self.num_hidden_layers

    def resolved(self) -> dict[str, Any]:
        """Every field (for hashing run inputs); ``source_file`` excluded (it does not change results)."""
        d = dataclasses.asdict(self)
        d.pop("source_file")
        return d


# ----------------------------------------------------------------------------------------------------
# Weight tensors
# ----------------------------------------------------------------------------------------------------


def _norm_params(m: ModelSpec) -> int:
    return 2 * m.hidden_size if m.norm == "layernorm" else m.hidden_size


def _linear(m: ModelSpec, k: int, n: int) -> int:
    return k * n + (n if m.linear_bias else 0)


def _expert_params(m: ModelSpec) -> int:
    d, f = m.hidden_size, m.intermediate_size
    return (3 if m.gated_ffn else 2) * d * f + (0 if not m.linear_bias else (2 * f + d if m.gated_ffn else f + d))


def weight_tensors(m: ModelSpec) -> list[tuple[str, int, int]]:
    """``(tensor id, layer, elements)`` of every weight tensor, biases folded into their projection.

    Ids: ``embed_tokens``, ``embed_positions`` (learned positions), per layer ``L{i}.attn_norm``,
    ``L{i}.attn.wqkv`` (Q, K and V fused: ``hidden x (heads + 2 kv_heads) * head_dim``), ``L{i}.attn.wo``,
    ``L{i}.mlp_norm`` (absent with ``parallel_attn_mlp``), ``L{i}.mlp.w_gate`` (gated only),
    ``L{i}.mlp.w_up``, ``L{i}.mlp.w_down`` or for MoE ``L{i}.moe.router`` and ``L{i}.moe.e{j}.w_gate|w_up|w_down``,
    then ``final_norm`` and ``lm_head`` (absent when tied: the LM head reads ``embed_tokens``).
    """
    d, f = m.hidden_size, m.intermediate_size
    out: list[tuple[str, int, int]] = [("embed_tokens", -1, m.vocab_size * d)]
    if m.position_embedding == "learned":
        out.append(("embed_positions", -1, (m.max_position_embeddings + m.position_offset) * d))
    qkv = m.q_dim + 2 * m.kv_dim
    for i in range(m.num_hidden_layers):
        p = f"L{i}."
        out.append((p + "attn_norm", i, _norm_params(m)))
        out.append((p + "attn.wqkv", i, _linear(m, d, qkv)))
        out.append((p + "attn.wo", i, _linear(m, m.q_dim, d)))
        if not m.parallel_attn_mlp:
            out.append((p + "mlp_norm", i, _norm_params(m)))
        experts = [f"{p}moe.e{j}." for j in range(m.num_local_experts)] if m.is_moe else [p + "mlp."]
        if m.is_moe:
            out.append((p + "moe.router", i, d * m.num_local_experts))
        for e in experts:
            if m.gated_ffn:
                out.append((e + "w_gate", i, _linear(m, d, f)))
            out.append((e + "w_up", i, _linear(m, d, f)))
            out.append((e + "w_down", i, _linear(m, f, d)))
    out.append(("final_norm", -1, _norm_params(m)))
    if not m.tie_word_embeddings:
        out.append(("lm_head", -1, d * m.vocab_size))
    return out


# ----------------------------------------------------------------------------------------------------
# YAML loading
# ----------------------------------------------------------------------------------------------------


def _float(node: yt.Node) -> float:
    return yt.number(positive=True)(node)


_FIELDS: dict[str, yt.Field] = {
    "name": yt.Field("name", yt.text),
    "source": yt.Field("source", yt.text, required=True),
    "model_type": yt.Field("model_type", yt.text, required=True),
    "num_hidden_layers": yt.Field("num_hidden_layers", yt.count, required=True),
    "hidden_size": yt.Field("hidden_size", yt.count, required=True),
    "num_attention_heads": yt.Field("num_attention_heads", yt.count, required=True),
    "num_key_value_heads": yt.Field("num_key_value_heads", yt.count),
    "head_dim": yt.Field("head_dim", yt.count),
    "intermediate_size": yt.Field("intermediate_size", yt.count, required=True),
    "hidden_act": yt.Field("hidden_act", yt.choice(*ACTIVATIONS), required=True),
    "gated_ffn": yt.Field("gated_ffn", yt.boolean, required=True),
    "vocab_size": yt.Field("vocab_size", yt.count, required=True),
    "max_position_embeddings": yt.Field("max_position_embeddings", yt.count, required=True),
    "position_embedding": yt.Field("position_embedding", yt.choice(*POSITIONS), required=True),
    "position_offset": yt.Field("position_offset", yt.nonneg_int),
    "rope_theta": yt.Field("rope_theta", _float),
    "norm": yt.Field("norm", yt.choice(*NORMS), required=True),
    "linear_bias": yt.Field("linear_bias", yt.boolean, required=True),
    "parallel_attn_mlp": yt.Field("parallel_attn_mlp", yt.boolean),
    "tie_word_embeddings": yt.Field("tie_word_embeddings", yt.boolean, required=True),
    "num_local_experts": yt.Field("num_local_experts", yt.count),
    "num_experts_per_tok": yt.Field("num_experts_per_tok", yt.count),
}


def _check(m: ModelSpec) -> tuple[str, str] | None:
    """(yaml key, problem) for an impossible combination, or None."""
    if m.num_attention_heads % m.num_key_value_heads:
        return ("num_key_value_heads", f"num_attention_heads ({m.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({m.num_key_value_heads})")
    if m.num_experts_per_tok > m.num_local_experts:
        return ("num_experts_per_tok", f"num_experts_per_tok ({m.num_experts_per_tok}) exceeds "
                f"num_local_experts ({m.num_local_experts})")
    if m.position_embedding != "learned" and m.position_offset:
        return ("position_offset", "position_offset only applies to position_embedding: learned")
    return None


def _from_node(root: yt.Node, default_name: str) -> ModelSpec:
    body = yt.mapping(root, "a model description (a mapping of config.json fields)")
    values: dict[str, Any] = {}
    for key, node in body.items():
        spec = _FIELDS.get(key)
        if spec is None:
            raise yt.unknown_key(node, key, tuple(_FIELDS))
        values[spec.field] = spec.parse(node)
    for key, spec in _FIELDS.items():
        if spec.required and key not in body:
            raise ConfigError("required key missing", file=root.file, path=yt.join(root.path, key))
    values.setdefault("name", default_name)
    heads = values["num_attention_heads"]
    values.setdefault("num_key_value_heads", heads)
    if "head_dim" not in values:
        if values["hidden_size"] % heads:
            raise ConfigError(f"hidden_size ({values['hidden_size']}) is not a multiple of num_attention_heads "
                              f"({heads}); give head_dim", file=root.file, path=yt.join(root.path, "head_dim"))
        values["head_dim"] = values["hidden_size"] // heads
    values["source_file"] = root.file or ""
    probe = dataclasses.replace(_UNCHECKED, **values)
    problem = _check(probe)
    if problem:
        key, msg = problem
        raise ConfigError(msg, file=root.file, path=yt.join(root.path, key))
    return ModelSpec(**values)


class _Unchecked(ModelSpec):
    def __post_init__(self) -> None:  # used only to run _check with the YAML path in hand
        pass


_UNCHECKED = _Unchecked(name="", source="", model_type="", num_hidden_layers=1, hidden_size=1,
                        num_attention_heads=1, num_key_value_heads=1, head_dim=1, intermediate_size=1,
                        hidden_act="relu", gated_ffn=False, vocab_size=1, max_position_embeddings=1)


def list_models() -> list[str]:
    """Names of the shipped models (``workloads/models/*.yaml``)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model(name_or_path: str | Path) -> ModelSpec:
    """A shipped model by name (``llama2-7b``), a model YAML file, or a Hugging Face ``config.json``."""
    text = str(name_or_path)
    path = Path(text)
    looks_like_path = path.suffix in (".yaml", ".yml", ".json") or "/" in text or path.exists()
    if not looks_like_path:
        candidate = MODELS_DIR / f"{text}.yaml"
        if not candidate.is_file():
            names = list_models()
            import difflib

            guess = difflib.get_close_matches(text, names, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            raise ConfigError(f"unknown model '{text}'{hint}; shipped models: {', '.join(names)} "
                              f"(or give a path to a model YAML or a Hugging Face config.json)")
        path = candidate
    if path.suffix == ".json":
        return import_hf_config(path)
    data = yt.read_yaml_file(path)
    return _from_node(yt.wrap(data, str(path), ""), path.stem)


# ----------------------------------------------------------------------------------------------------
# Hugging Face config.json import
# ----------------------------------------------------------------------------------------------------

_HF_TYPES = ("llama", "mistral", "mixtral", "gpt2", "opt", "falcon")


def import_hf_config(path: str | Path, *, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (model_type llama, mistral, mixtral, gpt2, opt or falcon).

    Errors (unknown ``model_type``, a missing or mistyped key) raise :class:`ConfigError` naming the file
    and the key. ``name`` defaults to ``_name_or_path`` in the file, else the folder name.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", file=file) from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}", file=file) from None
    if not isinstance(cfg, dict):
        raise ConfigError("expected a JSON object (a Hugging Face config.json)", file=file)
    root = yt.wrap(cfg, file, "")
    body: dict[str, yt.Node] = root.value

    def get(key: str, parse=yt.count, default: Any = dataclasses.MISSING, *alts: str) -> Any:
        for k in (key, *alts):
            node = body.get(k)
            if node is not None and node.value is not None:
                return parse(node)
        if default is dataclasses.MISSING:
            also = f" (or {', '.join(repr(a) for a in alts)})" if alts else ""
            raise ConfigError(f"required key missing{also} for model_type '{mtype}'", file=file, path=key)
        return default

    mt_node = body.get("model_type")
    if mt_node is None:
        raise ConfigError(f"required key missing; expected one of: {', '.join(_HF_TYPES)}", file=file,
                          path="model_type")
    mtype = mt_node.value
    if mtype == "RefinedWebModel" or mtype == "RefinedWeb":  # Falcon's original remote-code configs
        mtype = "falcon"
    if mtype not in _HF_TYPES:
        raise mt_node.error(f"unsupported model_type {yt.show(mt_node.value)}; memsim imports: {', '.join(_HF_TYPES)}")
    default_name = name or (cfg.get("_name_or_path") if isinstance(cfg.get("_name_or_path"), str)
                            and cfg.get("_name_or_path") else Path(file).resolve().parent.name)
    act = yt.choice(*ACTIVATIONS)
    v: dict[str, Any] = {"name": default_name, "source": f"Hugging Face config.json ({file})",
                         "model_type": mtype, "source_file": file}
    if mtype in ("llama", "mistral", "mixtral"):
        v.update(num_hidden_layers=get("num_hidden_layers"), hidden_size=get("hidden_size"),
                 num_attention_heads=get("num_attention_heads"), intermediate_size=get("intermediate_size"),
                 vocab_size=get("vocab_size"), max_position_embeddings=get("max_position_embeddings"),
                 hidden_act=get("hidden_act", act, "silu"), gated_ffn=True, position_embedding="rope",
                 norm="rmsnorm", tie_word_embeddings=get("tie_word_embeddings", yt.boolean, False),
                 linear_bias=get("attention_bias", yt.boolean, False), rope_theta=get("rope_theta", _float, None))
        if v["linear_bias"]:
            raise ConfigError("attention_bias: true is not modelled (memsim's Llama biases cover every "
                              "projection or none)", file=file, path="attention_bias")
        v["num_key_value_heads"] = get("num_key_value_heads", yt.count, v["num_attention_heads"])
        v["head_dim"] = get("head_dim", yt.count, None) or _head_dim(v, file)
        if mtype == "mixtral":
            v["num_local_experts"] = get("num_local_experts")
            v["num_experts_per_tok"] = get("num_experts_per_tok")
    elif mtype == "gpt2":
        d = get("n_embd", yt.count, dataclasses.MISSING, "hidden_size")
        heads = get("n_head", yt.count, dataclasses.MISSING, "num_attention_heads")
        v.update(num_hidden_layers=get("n_layer", yt.count, dataclasses.MISSING, "num_hidden_layers"),
                 hidden_size=d, num_attention_heads=heads, num_key_value_heads=heads,
                 intermediate_size=get("n_inner", yt.count, 4 * d), vocab_size=get("vocab_size"),
                 max_position_embeddings=get("n_positions", yt.count, dataclasses.MISSING, "max_position_embeddings"),
                 hidden_act=get("activation_function", act, "gelu_new"), gated_ffn=False,
                 position_embedding="learned", norm="layernorm", linear_bias=True,
                 tie_word_embeddings=get("tie_word_embeddings", yt.boolean, True))
        v["head_dim"] = _head_dim(v, file)
    elif mtype == "opt":
        d = get("hidden_size")
        if get("word_embed_proj_dim", yt.count, d) != d:
            raise ConfigError("word_embed_proj_dim different from hidden_size (OPT-350m's projections) is not "
                              "modelled", file=file, path="word_embed_proj_dim")
        if not get("do_layer_norm_before", yt.boolean, True):
            raise ConfigError("post-norm OPT (do_layer_norm_before: false) is not modelled", file=file,
                              path="do_layer_norm_before")
        heads = get("num_attention_heads")
        v.update(num_hidden_layers=get("num_hidden_layers"), hidden_size=d, num_attention_heads=heads,
                 num_key_value_heads=heads, intermediate_size=get("ffn_dim"), vocab_size=get("vocab_size"),
                 max_position_embeddings=get("max_position_embeddings"),
                 hidden_act=get("activation_function", act, "relu"), gated_ffn=False,
                 position_embedding="learned", position_offset=2, norm="layernorm",
                 linear_bias=get("enable_bias", yt.boolean, True),
                 tie_word_embeddings=get("tie_word_embeddings", yt.boolean, True))
        v["head_dim"] = _head_dim(v, file)
    else:  # falcon
        d = get("hidden_size", yt.count, dataclasses.MISSING, "n_embed")
        heads = get("num_attention_heads", yt.count, dataclasses.MISSING, "n_head")
        if get("new_decoder_architecture", yt.boolean, False):
            kv = get("num_kv_heads", yt.count, heads, "n_head_kv")
        else:
            kv = 1 if get("multi_query", yt.boolean, True) else heads
        if get("alibi", yt.boolean, False):
            raise ConfigError("ALiBi positions are not modelled", file=file, path="alibi")
        parallel = get("parallel_attn", yt.boolean, True)
        if get("new_decoder_architecture", yt.boolean, False) and get("num_ln_in_parallel_attn", yt.count, 2) != 1:
            raise ConfigError("Falcon's new decoder architecture (two layer norms per block, Falcon-40B/180B) "
                              "is not modelled", file=file, path="new_decoder_architecture")
        v.update(num_hidden_layers=get("num_hidden_layers", yt.count, dataclasses.MISSING, "n_layer"),
                 hidden_size=d, num_attention_heads=heads, num_key_value_heads=kv,
                 intermediate_size=get("ffn_hidden_size", yt.count, 4 * d), vocab_size=get("vocab_size"),
                 max_position_embeddings=get("max_position_embeddings", yt.count, 2048),
                 hidden_act=get("activation", act, "gelu"), gated_ffn=False, position_embedding="rope",
                 norm="layernorm", linear_bias=get("bias", yt.boolean, False), parallel_attn_mlp=parallel,
                 tie_word_embeddings=get("tie_word_embeddings", yt.boolean, True),
                 rope_theta=get("rope_theta", _float, None))
        v["head_dim"] = _head_dim(v, file)
    probe = dataclasses.replace(_UNCHECKED, **v)
    problem = _check(probe)
    if problem:
        raise ConfigError(problem[1], file=file, path=problem[0])
    return ModelSpec(**v)


def _head_dim(v: dict[str, Any], file: str) -> int:
    if v["hidden_size"] % v["num_attention_heads"]:
        raise ConfigError(f"hidden_size ({v['hidden_size']}) is not a multiple of the number of heads "
                          f"({v['num_attention_heads']})", file=file, path="hidden_size")
    return v["hidden_size"] // v["num_attention_heads"]
