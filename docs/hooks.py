"""MkDocs hook: the options page is the plugin's own help text, so that it never goes stale.

``<!-- whisper-perf: options -->`` in a page becomes one table per option group of
``whisper_perf.plugin`` (``pytest_addoption``), with each option's metavar, choices, default and help.
"""

from __future__ import annotations

import re

MARK = "<!-- whisper-perf: options -->"


class _Group:
    """Stands in for pytest's option group: keeps what ``addoption`` is given."""

    def __init__(self):
        self.options: list[tuple[tuple[str, ...], dict]] = []

    def addoption(self, *names: str, **attrs) -> None:
        self.options.append((names, attrs))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _usage(names: tuple[str, ...], attrs: dict) -> str:
    if attrs.get("action") in ("store_true", "store_false"):
        return f"`{', '.join(names)}`"
    # as argparse's usage writes it: {a,b} for choices, else the metavar or the option's name in capitals
    value = ("{" + ",".join(attrs["choices"]) + "}" if attrs.get("choices")
             else attrs.get("metavar") or names[0].lstrip("-").replace("-", "_").upper())
    return f"`{', '.join(names)} {value.replace('|', '/')}`"


def options_markdown() -> str:
    from whisper_perf import plugin

    lines = []
    for add in (plugin._what_to_run, plugin._judging, plugin._builds_and_diagnostics):
        group = _Group()
        add(group)
        title = (add.__doc__ or add.__name__).strip().splitlines()[0].rstrip(".")
        lines += [f"### {title}", "", "| option | meaning |", "|---|---|"]
        for names, attrs in group.options:
            help_text = re.sub(r"\s+", " ", attrs.get("help", "")) % {"default": attrs.get("default")}  # as argparse
            lines.append(f"| {_cell(_usage(names, attrs))} | {_cell(help_text)} |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARK, options_markdown()) if MARK in markdown else markdown
