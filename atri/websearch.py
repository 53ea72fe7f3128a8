"""Web search: the sources a provider grounded an answer on, the citation marks that point at them, and a
`web_search` tool over a SearXNG instance the host runs (for providers that do not search themselves), whose
results become the answer's sources too, numbered as the model read them.

DashScope searches when `enable_search` is sent (atri.request.search_body). Its documentation (Model Studio
"Web search", 2026) says the OpenAI-compatible Chat Completions endpoint does *not* return the sources; its
own protocol does (atri.dashscope_native), as `output.search_info.search_results` items `{index, title, url,
site_name, icon}`, with the number of searches run in `usage.plugins.search.count`. `sources_in` accepts that
shape wherever a chunk has it (top level `search_info`, or under `output`) and nothing else.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from .safe_markdown import link_safe, markdown_link, plain_text, web_link_url

MAX_SOURCES = 50  # per answer: a provider's list beyond this is cut, not drawn
MAX_TITLE_CHARS = 300
MAX_SITE_CHARS = 100
MAX_SEARCHES = 1000  # a count beyond this is not believed
SEARCH_TIMEOUT_S = 10.0
_CITATION = re.compile(r"\[(?:ref_)?(\d{1,3})\](?![(\[:])")  # [1] or [ref_1], not a link or a reference definition
_CODE_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def sources_in(chunk: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The search results a chunk carries (DashScope's search_info.search_results shape), cleaned: URLs that
    can be links (atri.safe_markdown.web_link_url), bounded strings, an index for each. None when the chunk
    has none."""
    info = chunk.get("search_info")
    if not isinstance(info, dict) and isinstance(chunk.get("output"), dict):
        info = chunk["output"].get("search_info")
    results = info.get("search_results") if isinstance(info, dict) else None
    if not isinstance(results, list):
        return None
    sources = []
    for position, item in enumerate(results[:MAX_SOURCES], start=1):
        if not isinstance(item, dict) or not web_link_url(item.get("url")):
            continue
        index = item.get("index")
        sources.append({"index": index if isinstance(index, int) and 0 <= index <= 10_000 else position,
                        "title": _text(item.get("title"), MAX_TITLE_CHARS) or web_link_url(item.get("url")),
                        "url": web_link_url(item.get("url")), "site_name": _text(item.get("site_name"), MAX_SITE_CHARS),
                        "icon": web_link_url(item.get("icon"))})
    return sources


def searches_in(usage: dict[str, Any]) -> int | None:
    """How many web searches a usage object says ran (DashScope's `plugins.search.count`); None when it does not
    say (no search was asked for, or another provider)."""
    plugins = usage.get("plugins")
    search = plugins.get("search") if isinstance(plugins, dict) else None
    count = search.get("count") if isinstance(search, dict) else None
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    return max(0, min(count, MAX_SEARCHES))


def link_citations(text: str, sources: list[dict[str, Any]] | None) -> str:
    """Citation marks `[1]` / `[ref_1]` that name a source become links to it (outside code)."""
    if not sources or "[" not in text:
        return text
    urls = {source["index"]: source["url"] for source in sources if web_link_url(source.get("url"))}

    def link(match: re.Match[str]) -> str:
        url = urls.get(int(match.group(1)))
        return f"[[{match.group(1)}]](<{link_safe(url)}>)" if url else match.group(0)  # balanced: "[1]" shown

    if _CODE_FENCE.search(text):  # code blocks keep their brackets: only the text between fences changes
        parts = re.split(r"(^ {0,3}(?:```|~~~)[\s\S]*?^ {0,3}(?:```|~~~)[^\n]*$)", text, flags=re.MULTILINE)
        return "".join(part if index % 2 else _outside_spans(part, link) for index, part in enumerate(parts))
    return _outside_spans(text, link)


def _outside_spans(text: str, link: Callable[[re.Match[str]], str]) -> str:
    pieces = re.split(r"(`+[^`]*`+)", text)
    return "".join(piece if index % 2 else _CITATION.sub(link, piece) for index, piece in enumerate(pieces))


def sources_markdown(sources: list[dict[str, Any]]) -> str:
    """A numbered list of links, numbered as the answer cites them; a source whose URL cannot be a link
    (atri.safe_markdown.web_link_url) is listed by its title alone."""
    lines = []
    for source in sorted(sources, key=lambda s: s["index"]):
        site = f" · {plain_text(source['site_name'])}" if source.get("site_name") else ""
        title = plain_text((source.get("title") or web_link_url(source.get("url")))[:200])
        lines.append(f"{int(source['index'])}. {markdown_link(title, source.get('url'))}{site}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SearchHit:
    """One result of the web_search tool, before the answer numbers it."""

    title: str
    url: str
    snippet: str = ""


def searxng_hits(base_url: str, query: str, limit: int = 6) -> list[SearchHit]:
    """Results from the host's SearXNG instance (its JSON API must be enabled: `search.formats: [json]`)."""
    if not query.strip():
        raise ValueError("the query is empty")
    response = httpx2.get(base_url.rstrip("/") + "/search", params={"q": query, "format": "json"},
                          timeout=SEARCH_TIMEOUT_S, follow_redirects=False)
    response.raise_for_status()
    results = (response.json() or {}).get("results") or []
    hits = [SearchHit(_text(item.get("title"), 300) or item["url"], item["url"], _text(item.get("content"), 600))
            for item in results if isinstance(item, dict) and web_link_url(item.get("url"))]
    return hits[:limit]


def number_hits(cited: Sequence[dict[str, Any]], hits: Iterable[SearchHit]) -> list[tuple[int, SearchHit]]:
    """Each hit with its number in the answer's source list: a URL already cited keeps its number, a new one
    takes the next, so that the model's [n] and the list under the answer agree across several searches.
    A URL repeated within the hits is given once; new URLs past MAX_SOURCES are left out."""
    numbers = {source["url"]: source["index"] for source in cited}
    following = max(numbers.values(), default=0) + 1
    numbered: list[tuple[int, SearchHit]] = []
    given: set[str] = set()
    for hit in hits:
        if hit.url in given or (hit.url not in numbers and len(numbers) >= MAX_SOURCES):
            continue
        if hit.url not in numbers:
            numbers[hit.url], following = following, following + 1
        given.add(hit.url)
        numbered.append((numbers[hit.url], hit))
    return numbered


def hit_source(number: int, hit: SearchHit) -> dict[str, Any]:
    """A numbered hit in the shape of the provider's sources (atri.messages.SearchSource)."""
    return {"index": number, "title": hit.title, "url": hit.url}


def hits_for_model(numbered: list[tuple[int, SearchHit]]) -> str:
    return "\n\n".join(f"[{number}] {hit.title}\n{hit.url}\n{hit.snippet}".rstrip()
                       for number, hit in numbered) or "No results."
