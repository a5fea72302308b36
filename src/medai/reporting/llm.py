"""LLM backends behind one interface: ``complete(system, user) -> str``.

- ``openai``: any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, ...) on the
  hospital's own machines (``MEDAI_LLM_URL``, ``MEDAI_LLM_MODEL``, ``MEDAI_LLM_API_KEY``).
- ``gemini``: Google Gemini's REST API (the reference system's choice; ``MEDAI_GEMINI_API_KEY``).
- ``llamacpp``: a local GGUF file through ``llama-cpp-python`` when it is installed.
- ``template``: no model at all — the deterministic drafter in ``draft.py`` (the default).

External backends are off until configured, time out, retry transient failures with back-off,
and raise ``LLMError`` with a clear message; callers fall back to the template draft. Text is
PII-redacted before any HTTP call (the prompt builder also redacts; this is the last line).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from medai.core.errors import MedaiError
from medai.core.text import redact_pii

BACKENDS = ("template", "openai", "gemini", "llamacpp")


class LLMError(MedaiError, RuntimeError):
    """The LLM could not give a usable answer (not configured, timeout, HTTP error, garbage)."""

    code = "unavailable"


class LLMBackend(Protocol):
    name: str

    def complete(self, system: str, user: str) -> str: ...


@dataclass
class LLMConfig:
    backend: str = "template"
    url: str | None = None  # OpenAI-compatible base URL, e.g. http://gpu-01:8000/v1
    model: str | None = None
    api_key: str | None = None
    gemini_api_key: str | None = None
    gguf_path: str | None = None
    timeout_s: float = 60.0
    retries: int = 2
    max_tokens: int = 700
    temperature: float = 0.1


def _post_json(url: str, payload: dict, headers: dict, cfg: LLMConfig) -> dict:
    import httpx

    last: Exception | None = None
    for attempt in range(cfg.retries + 1):
        try:
            r = httpx.post(url, json=payload, headers=headers, timeout=cfg.timeout_s)
        except httpx.TimeoutException as exc:
            last = LLMError(f"LLM endpoint timed out after {cfg.timeout_s:.0f} s ({exc})")
        except httpx.HTTPError as exc:
            last = LLMError(f"LLM endpoint unreachable: {exc}")
        else:
            if r.status_code == 429 or r.status_code >= 500:
                last = LLMError(f"LLM endpoint answered HTTP {r.status_code}")
            elif r.status_code >= 400:
                raise LLMError(
                    f"LLM endpoint refused the request: HTTP {r.status_code} {r.text[:200]}"
                )
            else:
                try:
                    return r.json()
                except ValueError:
                    raise LLMError("LLM endpoint returned something that is not JSON") from None
        if attempt < cfg.retries:
            time.sleep(min(8.0, 0.5 * 2**attempt))
    assert last is not None
    raise last


class OpenAICompatible:
    name = "openai"

    def __init__(self, cfg: LLMConfig) -> None:
        if not cfg.url:
            raise LLMError("the openai backend needs MEDAI_LLM_URL (e.g. http://host:8000/v1)")
        self.cfg = cfg

    def complete(self, system: str, user: str) -> str:
        headers = {"Authorization": f"Bearer {self.cfg.api_key}"} if self.cfg.api_key else {}
        body = {
            "model": self.cfg.model or "default",
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "messages": [
                {"role": "system", "content": redact_pii(system)},
                {"role": "user", "content": redact_pii(user)},
            ],
        }
        if not self.cfg.url:  # checked when built: the config may have changed since
            raise LLMError("the openai backend needs MEDAI_LLM_URL (e.g. http://host:8000/v1)")
        data = _post_json(self.cfg.url.rstrip("/") + "/chat/completions", body, headers, self.cfg)
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError("LLM endpoint answered without choices[0].message.content") from None
        if not isinstance(text, str) or not text.strip():
            raise LLMError("LLM endpoint returned an empty answer")
        return text


class Gemini:
    name = "gemini"
    URL = "https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent"

    def __init__(self, cfg: LLMConfig) -> None:
        if not cfg.gemini_api_key:
            raise LLMError(
                "the gemini backend is off until MEDAI_GEMINI_API_KEY is set; it "
                "sends (redacted) text outside the hospital"
            )
        self.cfg = cfg

    def complete(self, system: str, user: str) -> str:
        url = (self.cfg.url or self.URL).format(model=self.cfg.model or "gemini-1.5-flash")
        body = {
            "systemInstruction": {"parts": [{"text": redact_pii(system)}]},
            "contents": [{"role": "user", "parts": [{"text": redact_pii(user)}]}],
            "generationConfig": {
                "temperature": self.cfg.temperature,
                "maxOutputTokens": self.cfg.max_tokens,
            },
        }
        data = _post_json(url, body, {"x-goog-api-key": self.cfg.gemini_api_key}, self.cfg)
        try:
            text = "".join(p.get("text", "") for p in data["candidates"][0]["content"]["parts"])
        except (KeyError, IndexError, TypeError):
            raise LLMError("Gemini answered without candidates[0].content.parts") from None
        if not text.strip():
            raise LLMError("Gemini returned an empty answer")
        return text


class LlamaCpp:
    name = "llamacpp"

    def __init__(self, cfg: LLMConfig) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise LLMError("the llamacpp backend needs `pip install llama-cpp-python`") from None
        if not cfg.gguf_path:
            raise LLMError("the llamacpp backend needs MEDAI_LLM_GGUF (a local .gguf file)")
        self.llm = Llama(model_path=cfg.gguf_path, n_ctx=4096, verbose=False)
        self.cfg = cfg

    def complete(self, system: str, user: str) -> str:
        out = self.llm.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=self.cfg.max_tokens,
            temperature=self.cfg.temperature,
        )
        text = out["choices"][0]["message"]["content"] or ""
        if not text.strip():
            raise LLMError("the local model returned an empty answer")
        return text


def make_backend(cfg: LLMConfig) -> LLMBackend | None:
    """The configured backend, or None for the template drafter."""
    if cfg.backend not in BACKENDS:
        raise LLMError(f"unknown LLM backend {cfg.backend!r}; choose one of {BACKENDS}")
    return {
        "template": lambda c: None,
        "openai": OpenAICompatible,
        "gemini": Gemini,
        "llamacpp": LlamaCpp,
    }[cfg.backend](cfg)
