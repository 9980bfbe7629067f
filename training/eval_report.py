"""Turning per-example evaluation records into metrics.json, a Markdown report, a plot, and
a table comparing several runs."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from training.metrics import HARDNESS_LEVELS, corpus_bleu

SPIDER_CREDIT = (
    'Data: Spider (Yu et al., "Spider: A Large-Scale Human-Labeled Dataset for Complex and '
    'Cross-Domain Semantic Parsing and Text-to-SQL Task", EMNLP 2018), CC BY-SA 4.0. '
    "This report is derived from it and carries the same license."
)
SYNTHETIC_NOTE = (
    "Execution accuracy ran on temporary databases built from each example's CREATE TABLE "
    "text and filled with a dozen seeded generated rows, with the gold query's literals planted "
    "so that it returns rows (see training/eval_dbs.py). This is weaker than execution on real "
    "data: a wrong query can return the gold result by chance."
)
_ERROR_KINDS = (  # (lower-case text in the error, kind shown in the report)
    ("no sql", "no SQL"),
    ("does not parse", "does not parse"),
    ("unknown table", "unknown table"),
    ("unknown column", "unknown column"),
    ("timed out", "timed out"),
    ("(the time limit)", "timed out"),  # the query worker killed at the limit
    ("mb of memory", "out of memory"),  # "it used more than 256 MB of memory"
    ("refused", "refused"),
    ("generation failed", "generation failed"),
    ("no such", "unknown name (SQLite)"),
)
COMPARE_COLUMNS = (
    ("run", "run"),
    ("model", "model"),
    ("adapter", "adapter"),
    ("rag", "rag"),
    ("max_attempts", "attempts"),
    ("n", "n"),
    ("execution_accuracy", "exec acc"),
    ("exact_match", "exact match"),
    ("bleu", "BLEU"),
    ("rougeL", "ROUGE-L"),
    ("valid_sql_rate", "valid SQL"),
    ("avg_attempts", "avg attempts"),
    ("questions_per_minute", "q/min"),
)


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(sum(items) / len(items), 4) if items else None


def error_kind(error: str) -> str:
    low = error.lower()
    return next((kind for needle, kind in _ERROR_KINDS if needle in low), "other")


def _breakdown(records: Sequence[dict], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[str(r.get(key) or "(none)")].append(r)
    return {
        name: {
            "n": len(rs),
            "execution_accuracy": _mean(
                float(r["correct"]) for r in rs if r["correct"] is not None
            ),
            "exact_match": _mean(r["exact_match"] for r in rs),
        }
        for name, rs in sorted(groups.items())
    }


def summarize(
    records: Sequence[dict], *, total: int, settings: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """metrics.json's content. Scores are 0..1; ``execution_accuracy`` is None without databases."""
    scored = [r for r in records if r["correct"] is not None]
    seconds = sum(r.get("seconds", 0.0) for r in records)
    errors = [r["error"] for r in records if r.get("error")]
    kinds = {r.get("db_kind") for r in records if r.get("db_kind")}
    by_hardness = _breakdown(records, "hardness")
    return {
        "n": len(records),
        "total": total,
        "complete": len(records) >= total,
        "execution_accuracy": _mean(float(r["correct"]) for r in scored),
        "n_execution": len(scored),
        "exact_match": _mean(r["exact_match"] for r in records),
        "raw_exact_match": _mean(r["raw_exact_match"] for r in records),
        "bleu": round(
            corpus_bleu([r["prediction"] or "" for r in records], [r["gold"] for r in records]), 4
        ),
        "rouge1": _mean(r["rouge1"] for r in records),
        "rouge2": _mean(r["rouge2"] for r in records),
        "rougeL": _mean(r["rougeL"] for r in records),
        "valid_sql_rate": _mean(r["valid_sql"] for r in records),
        "avg_attempts": _mean(r["attempts"] for r in records),
        "gold_failed": sum(1 for r in records if r.get("gold_error")),
        "gold_failures": [
            {
                "index": r["index"],
                "db_id": r.get("db_id"),
                "gold": r["gold"],
                "error": r["gold_error"],
            }
            for r in records
            if r.get("gold_error")
        ][:20],
        "no_database": sum(1 for r in records if r.get("db_error")),
        "prediction_errors": len(errors),
        "error_kinds": dict(Counter(error_kind(e) for e in errors).most_common()),
        "execution_db": "+".join(sorted(kinds)) if kinds else None,
        "seconds": round(seconds, 1),
        "questions_per_minute": round(len(records) / seconds * 60, 2) if seconds else None,
        "by_hardness": {
            k: by_hardness[k] for k in (*HARDNESS_LEVELS, "unknown") if k in by_hardness
        },
        "by_database": _breakdown(records, "db_id"),
        "data": data,
        "settings": settings,
    }


def engine_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The engine section of a run's settings (runs made before it existed kept it flat)."""
    engine = settings.get("engine")
    return engine if isinstance(engine, dict) else settings


def _rag_on(settings: dict[str, Any]) -> bool:
    rag = engine_settings(settings).get("rag")
    return bool(rag.get("enabled")) if isinstance(rag, dict) else bool(rag)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _group_table(groups: dict[str, dict[str, Any]], label: str, limit: int = 40) -> str:
    items = sorted(groups.items(), key=lambda kv: -kv[1]["n"])[:limit]
    rows = [
        (name, g["n"], _pct(g["execution_accuracy"]), _pct(g["exact_match"])) for name, g in items
    ]
    text = _md_table((label, "n", "execution accuracy", "exact match"), rows)
    if len(groups) > limit:
        text += f"\n\n({len(groups) - limit} more in metrics.json)"
    return text


def render_report(metrics: dict[str, Any]) -> str:
    s, d = engine_settings(metrics["settings"]), metrics["data"]
    served_by = metrics["settings"].get("served_by") or s.get("backend")
    model = (s.get("model") or "(adapter's base model)") + (
        f" + adapter {s['adapter']}" if s.get("adapter") else ""
    )
    parts = [
        f"# Evaluation of {model}",
        f"Backend: {served_by or '-'}.",
        f"Data: `{d.get('source')}` split `{d.get('split') or '-'}` ({d.get('kind')}), "
        f"{metrics['n']} of {metrics['total']} questions evaluated"
        + ("" if metrics["complete"] else " (incomplete: run again with the same --out to resume)")
        + f"; RAG {'on' if _rag_on(s) else 'off'}; self-correction "
        + (f"on ({s['max_attempts']} attempts)" if s.get("max_attempts", 1) > 1 else "off")
        + ".",
        _md_table(
            ("metric", "value"),
            [
                (
                    "execution accuracy",
                    f"{_pct(metrics['execution_accuracy'])} of {metrics['n_execution']}",
                ),
                ("exact match (normalised)", _pct(metrics["exact_match"])),
                ("exact match (raw)", _pct(metrics["raw_exact_match"])),
                ("BLEU", f"{100 * metrics['bleu']:.1f}"),
                (
                    "ROUGE-1 / 2 / L",
                    " / ".join(
                        f"{100 * (metrics[k] or 0):.1f}" for k in ("rouge1", "rouge2", "rougeL")
                    ),
                ),
                ("valid SQL", _pct(metrics["valid_sql_rate"])),
                ("average attempts", metrics["avg_attempts"]),
                ("gold queries that failed (excluded)", metrics["gold_failed"]),
                ("questions without a database (excluded)", metrics["no_database"]),
                ("questions per minute", metrics["questions_per_minute"]),
            ],
        ),
    ]
    if metrics.get("execution_db") and "synthetic" in metrics["execution_db"]:
        parts.append(SYNTHETIC_NOTE)
    if d.get("skipped"):
        parts.append(
            "Rows skipped while loading: "
            + ", ".join(f"{n} {k}" for k, n in d["skipped"].items())
            + "."
        )
    parts += [
        "## By difficulty (Spider hardness of the gold SQL)",
        _group_table(metrics["by_hardness"], "hardness"),
    ]
    parts += ["## By database", _group_table(metrics["by_database"], "database")]
    if metrics["gold_failures"]:
        rows = [
            (g["index"], g["db_id"] or "-", f"`{g['gold']}`", g["error"])
            for g in metrics["gold_failures"]
        ]
        parts += [
            "## Gold queries that failed (excluded)",
            _md_table(("#", "database", "gold", "error"), rows),
        ]
    if metrics["error_kinds"]:
        parts += [
            "## Final errors of predictions",
            _md_table(("kind", "count"), metrics["error_kinds"].items()),
        ]
    parts += ["![accuracy by difficulty and database](plot.png)"]
    parts += ["## Settings", "```json\n" + json.dumps(s, indent=2) + "\n```"]
    if d.get("spider"):
        parts += ["## Credit", SPIDER_CREDIT]
    return "\n\n".join(parts) + "\n"


def write_plot(metrics: dict[str, Any], path: Path) -> None:
    """Bars of execution accuracy (exact match without databases) by difficulty and database."""
    import matplotlib  # deferred: matplotlib takes ~300 ms, for the end of a run only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: after choosing the Agg backend above

    key = "execution_accuracy" if metrics["execution_accuracy"] is not None else "exact_match"
    label = key.replace("_", " ")
    dbs = sorted(metrics["by_database"].items(), key=lambda kv: -kv[1]["n"])[:20]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2]})
    hard = metrics["by_hardness"]
    ax1.bar(
        [f"{k}\n(n={g['n']})" for k, g in hard.items()],
        [100 * (g[key] or 0) for g in hard.values()],
        color="#4c72b0",
    )
    ax1.set_title(f"{label} by difficulty")
    ax1.set_ylabel("%")
    ax1.set_ylim(0, 100)
    ax2.barh(
        [f"{n} ({g['n']})" for n, g in dbs][::-1],
        [100 * (g[key] or 0) for _, g in dbs][::-1],
        color="#55a868",
    )
    ax2.set_title(f"{label} by database (largest 20)")
    ax2.set_xlim(0, 100)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(out: Path, metrics: dict[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(render_report(metrics))
    try:
        write_plot(metrics, out / "plot.png")
    except Exception as err:  # a plot is a nicety: never lose the metrics over it
        (out / "plot.error.txt").write_text(f"{type(err).__name__}: {err}\n")


def _row(folder: Path) -> dict[str, Any]:
    metrics = json.loads((folder / "metrics.json").read_text())
    s = engine_settings(metrics.get("settings", {}))
    row = {k: metrics.get(k) for k, _ in COMPARE_COLUMNS}
    row.update(
        run=folder.name,
        model=s.get("model") or "",
        adapter=Path(s["adapter"]).name if s.get("adapter") else "",
        rag="on" if _rag_on(s) else "off",
        max_attempts=s.get("max_attempts"),
    )
    return row


def compare_runs(dirs: Sequence[str | Path], out: str | Path | None = None) -> str:
    """A Markdown table of several runs' metrics (base vs fine-tuned, RAG on/off, ...).

    With ``out``, also writes ``out/comparison.md`` and ``out/comparison.csv``.
    """
    rows = [_row(Path(d)) for d in dirs]
    pct = {"execution_accuracy", "exact_match", "bleu", "rougeL", "valid_sql_rate"}

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "n/a"
        return f"{100 * value:.1f}" if key in pct else str(value)

    table = _md_table(
        [h for _, h in COMPARE_COLUMNS],
        [[cell(k, r[k]) for k, _ in COMPARE_COLUMNS] for r in rows],
    )
    table += "\n\nScores in %; BLEU is corpus BLEU; exec acc = execution accuracy.\n"
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "comparison.md").write_text(table)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[k for k, _ in COMPARE_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
        (folder / "comparison.csv").write_text(buf.getvalue())
    return table
