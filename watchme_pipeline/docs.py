"""The parts of docs/ derived from the code: the environment variables (from
``settings.VARIABLES``) and the stage table (from ``stages.STAGES``). Each sits between two
markers in its page; ``python -m watchme_pipeline docs`` rewrites them and a test fails when
a page differs from what the code says."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def variables_table() -> str:
    from watchme_pipeline.variables import VARIABLES

    lines = ["| variable | default | what it chooses |", "|---|---|---|"]
    lines += [f"| {v.name} | {v.default} | {v.what} |" for v in VARIABLES]
    return "\n".join(lines)


def stages_table() -> str:
    from watchme_pipeline.deployment import pod_memory
    from watchme_pipeline.stages import STAGES

    lines = ["| stage | reads | writes | model | pod memory | what it does |",
             "|---|---|---|---|---|---|"]
    for s in STAGES:
        first = s.description.split(". ")[0].rstrip(".") + "."
        lines.append(f"| `{s.name}` | {', '.join(s.upstream) or 'the audio store'} | "
                     f"{', '.join(f'`{t.name}`' for t in s.tables)} | {s.model_kind or '-'} | "
                     f"{pod_memory(s)[0]} | {first} |")
    return "\n".join(lines)


GENERATED = {"configuration.md": ("variables", variables_table),
             "architecture.md": ("stages", stages_table)}


def replace_block(text: str, name: str, content: str, where: str) -> str:
    """``text`` with the block between ``<!-- generated: {name} … -->`` and
    ``<!-- end generated -->`` replaced by ``content``."""
    pattern = re.compile(rf"(<!-- generated: {re.escape(name)}\b[^>]*-->).*?"
                         r"(<!-- end generated -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"{where}: no '<!-- generated: {name} -->' block")
    return pattern.sub(lambda m: f"{m.group(1)}\n{content}\n{m.group(2)}", text, count=1)


def render(page: str, text: str) -> str:
    """``text`` with its generated block replaced by what the code says now."""
    name, table = GENERATED[page]
    return replace_block(text, name, table(), f"docs/{page}")


def write_docs(docs: Path = DOCS) -> list[Path]:
    written = []
    for page in GENERATED:
        path = docs / page
        text = path.read_text(encoding="utf-8")
        new = render(page, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            written.append(path)
    return written
