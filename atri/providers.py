"""The provider catalogue: where each provider lives and what its models can do."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from functools import cache
from pathlib import Path

import tomllib

CATALOGUE_PATH = Path(__file__).parent / "data" / "catalogue.toml"
LOCAL = "local"
READ_PAGES = "agent_max"  # DashScope: search, then read the pages found (its web extractor)
PROVIDER_CHOOSES = "auto"  # a model that searches without a strategy being named


class Thinking(str, Enum):
    NONE = "none"
    HYBRID = "hybrid"  # DashScope: extra_body enable_thinking / thinking_budget
    ALWAYS = "always"  # always reasons; enable_thinking=false is refused
    HIDDEN = "hidden"  # reasons but returns no reasoning text (OpenAI o-series)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    thinking: Thinking = Thinking.NONE
    thinking_default: bool = False
    max_thinking_budget: int | None = None
    vision: bool = False
    video: bool = False  # reads a video as a list of frames (Qwen-VL's `video` content part)
    json_mode: bool = True
    json_with_thinking: bool = True
    stream_only: bool = False
    context_window: int = 32768
    max_output: int = 8192
    known: bool = True  # False when guessed from the id
    tools: bool = True  # can call functions (tools / tool_calls)
    tools_note: str = ""  # an i18n key: why it is offered no tools (the tools panel says so)
    # The search strategies the provider offers for it, its default first (empty: it cannot search the web;
    # PROVIDER_CHOOSES: it searches, and no strategy is named). READ_PAGES ("search and read pages") among them
    # is offered as a switch.
    web_search: tuple[str, ...] = ()
    read_pages_thinking_only: bool = False  # READ_PAGES only while thinking (qwen3-max); otherwise the default
    explicit_cache: bool = False  # takes DashScope's explicit cache marker (cache_control) on a stable prefix

    def search_strategy(self, read_pages: bool, thinking: bool) -> str:
        """The strategy a search asks for: READ_PAGES when asked and allowed, the model's default otherwise."""
        if read_pages and self.reads_pages and (thinking or not self.read_pages_thinking_only):
            return READ_PAGES
        return self.web_search[0] if self.web_search else ""

    @property
    def reads_pages(self) -> bool:
        return READ_PAGES in self.web_search


@dataclass(frozen=True)
class Provider:
    id: str
    label: str
    label_zh: str
    base_url: str
    key_env: tuple[str, ...]
    base_url_env: str | None
    default_model: str
    models: tuple[ModelInfo, ...]
    model_env: str | None = None
    key_optional: bool = False
    inline_think_tags: bool = False  # parse <think>…</think> inside content
    images_as_data_urls: bool = False  # the server cannot download http(s) images
    cap_output: bool = False  # send max_tokens = the model's max_output
    needs_base_url: bool = False  # offered only when the host sets its base URL (a server of the host's own)
    default_rank: int | None = None  # the order in which a configured provider is the default
    embedded: bool = False  # the model this app runs itself
    qwen_names: bool = False  # unlisted ids are read the DashScope way
    transcription_model: str | None = None  # turns a recording into text (an `input_audio` part in, text out)
    speech_model: str | None = None  # reads text aloud (DashScope's own protocol: text in, streamed PCM out)
    batch_api: bool = False  # takes a JSONL file of requests and answers it within 24 h (at its batch price)
    native_search: bool = False  # a web search goes over DashScope's own protocol, which returns its sources
    # Sends `tool_choice: "auto"` with its tools: llama-cpp-python's server, started with a function-calling chat
    # format (chatml-function-calling), offers the model no tool without it. vLLM refuses "auto" unless started
    # with --enable-auto-tool-choice: hence a flag, not a default.
    tool_choice_auto: bool = False

    def label_for(self, lang: str) -> str:
        return self.label_zh if lang == "zh" else self.label

    def model(self, model_id: str) -> ModelInfo:
        for info in self.models:
            if info.id == model_id:
                return info
        return guess_model(model_id, qwen_names=self.qwen_names)

    def seeing_model(self, needs_video: bool = False) -> ModelInfo | None:
        """The model to offer when a question brings images (or a video) the chosen one cannot see: the
        catalogue's first that can, in its order of preference; None when the provider has none."""
        return next((info for info in self.models if info.vision and (info.video or not needs_video)), None)


def _model_from_toml(raw: dict) -> ModelInfo:
    strategies = raw.get("web_search", ())
    return ModelInfo(**{**raw, "thinking": Thinking(raw.get("thinking", "none")),
                        "web_search": (strategies,) if isinstance(strategies, str) else tuple(strategies)})


@cache
def catalogue() -> dict[str, Provider]:
    data = tomllib.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    providers = {}
    for provider_id, raw in data["providers"].items():
        providers[provider_id] = Provider(
            id=provider_id,
            label=raw["label"],
            label_zh=raw.get("label_zh", raw["label"]),
            base_url=raw["base_url"],
            key_env=tuple(raw.get("key_env", ())),
            base_url_env=raw.get("base_url_env"),
            default_model=raw["default_model"],
            models=tuple(_model_from_toml(m) for m in raw.get("models", ())),
            model_env=raw.get("model_env"),
            key_optional=raw.get("key_optional", False),
            inline_think_tags=raw.get("inline_think_tags", False),
            images_as_data_urls=raw.get("images_as_data_urls", False),
            cap_output=raw.get("cap_output", False),
            needs_base_url=raw.get("needs_base_url", False),
            default_rank=raw.get("default_rank"),
            embedded=raw.get("embedded", False),
            qwen_names=raw.get("qwen_names", False),
            transcription_model=raw.get("transcription_model"),
            speech_model=raw.get("speech_model"),
            batch_api=raw.get("batch_api", False),
            native_search=raw.get("native_search", False),
            tool_choice_auto=raw.get("tool_choice_auto", False),
        )
    return providers


_QWEN_NEW = re.compile(r"^qwen3\.[5-9]|^qwen[4-9]")
_QWEN_OPEN_SOURCE = re.compile(r"^qwen3-(\d+(\.\d+)?b|\d+b-a\d+b)")


def embedded_provider() -> Provider:
    """The provider whose model this app runs itself: always there, the default when nothing is set up."""
    return next(provider for provider in catalogue().values() if provider.embedded)


def guess_model(model_id: str, qwen_names: bool = False) -> ModelInfo:
    """Abilities of a model the catalogue does not list, from the shape of its id."""
    name = model_id.lower()
    vision = any(tag in name for tag in ("vl", "qvq", "omni", "vision", "4o", "gpt-4.1"))
    if not qwen_names:
        always = "reasoner" in name or "thinking" in name or name.startswith(("qwq", "deepseek-r1"))
        return ModelInfo(id=model_id, thinking=Thinking.ALWAYS if always else Thinking.NONE,
                         vision=vision, known=False)
    if "thinking" in name or name.startswith(("qwq", "qvq")):
        return ModelInfo(id=model_id, thinking=Thinking.ALWAYS, vision=vision, json_mode=False,
                         stream_only=True, known=False)
    if "instruct" in name:
        return ModelInfo(id=model_id, vision=vision, known=False)
    open_source = bool(_QWEN_OPEN_SOURCE.match(name))
    return ModelInfo(
        id=model_id,
        thinking=Thinking.HYBRID,
        thinking_default=open_source or bool(_QWEN_NEW.match(name)),
        vision=vision,
        json_with_thinking=False,
        stream_only=open_source,
        known=False,
    )


def with_local_model(provider: Provider, model_id: str) -> Provider:
    """The local provider serving a GGUF other than the bundled one (its <think> tags still parse)."""
    info = replace(provider.models[0], id=model_id, known=False)
    return replace(provider, default_model=model_id, models=(info,))
