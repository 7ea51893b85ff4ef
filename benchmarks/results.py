"""benchmarks/RESULTS.md: each benchmark script replaces its own section and keeps the others."""
from pathlib import Path


def replace_section(output, title, section):
    """Write section (starting with `## title`) into the Markdown file output, in place of its previous one."""
    output = Path(output)
    before = output.read_text() if output.exists() else "# Benchmark results\n"
    marker = f"\n## {title}\n"
    head = before.split(marker)[0].rstrip() + "\n\n"
    rest = before.split(marker, 1)[1] if marker in before else ""
    after = rest[rest.index("\n## ", 1):] if "\n## " in rest else ""
    output.write_text(head + section + after)
