"""What gets indexed for a database, as LangChain ``Document`` objects.

Three kinds, told apart by ``metadata["kind"]``:

- ``table``: one per table: columns with types and keys, foreign keys both ways, a few
  sample values per column (so the model writes ``country = 'France'`` instead of guessing
  the casing), and the compact DDL.
- ``doc``: chunks of the user's ``.md``/``.txt``/``.pdf`` files (PDFs need a text layer),
  split by LangChain's recursive splitter in the embedder's own tokens.
- ``example``: question/SQL pairs, checked against the schema first; the question is what
  gets embedded (questions are matched to questions), the SQL rides in the metadata.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.db import Database, DbRef, open_database
from engine.db.inspect import quote
from engine.db.samples import VALUE_CHARS
from engine.schema import Schema, Table
from engine.sql_check import validate_sql

log = logging.getLogger(__name__)

DOC_SUFFIXES = {".md", ".markdown", ".txt", ".pdf"}
_QUESTION_KEYS = ("question", "nl", "instruction", "input_question")
_SQL_KEYS = ("query", "sql", "SQL", "response", "answer")


class RagInputError(ValueError):
    """A docs folder or examples file cannot be used at all (one line, names the file)."""


@dataclass
class Skipped:
    """What was left out while building documents, counted by reason."""

    reasons: Counter = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        self.reasons[reason] += n

    @property
    def total(self) -> int:
        return sum(self.reasons.values())


# --- tables --------------------------------------------------------------------------------


def table_documents(db: DbRef | Database, schema: Schema, sample_values: int = 3) -> list[Any]:
    """One document per table, with sample values read from the live database."""
    from langchain_core.documents import Document  # deferred: langchain_core: ~100 ms

    samples = open_database(db).sample_values(schema, sample_values)
    docs = []
    for table in schema.tables.values():
        sample = samples[table.name]
        notes = [
            f"{table.name}.{col}: " + ", ".join(_sql_literal(v) for v in vals)
            for col, (vals, categorical) in sample.values.items()
            if categorical
        ]
        docs.append(
            Document(
                page_content=table_text(table, schema, sample.values, sample.rows),
                metadata={"kind": "table", "table": table.name, "values": "\n".join(notes)},
            )
        )
    return docs


def table_rows(db: DbRef | Database, schema: Schema, n: int) -> dict[str, str]:
    """Table name -> its first ``n`` rows as a comment block for the prompt's schema:

        /* 3 example rows:
        SELECT * FROM singer LIMIT 3;
        singer_id | name | country
        1 | Joe Sharp | Netherlands
        ...
        */

    Tables without rows (or that cannot be read) are left out."""
    db = open_database(db)
    out = {}
    for name, rows in db.first_rows(schema, n).items():
        table = schema.tables[name]
        lines = [
            f"/* {len(rows)} example row{'s' if len(rows) > 1 else ''}:",
            f"SELECT * FROM {quote(name, db.dialect)} LIMIT {n};",
            " | ".join(c.name for c in table.columns),
            *(" | ".join(_cell(v) for v in row) for row in rows),
            "*/",
        ]
        out[name] = "\n".join(lines)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        return "<blob>"
    text = " ".join(str(value).split()).replace("*/", "* /")
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


def table_text(
    table: Table,
    schema: Schema,
    values: dict[str, tuple[list[Any], bool]],
    rows: int | None = None,
) -> str:
    """Plain words first (what the embedder reads best), the DDL last."""
    cols = []
    for c in table.columns:
        info = [c.type or "any type"]
        if c.primary_key:
            info.append("primary key")
        vals, categorical = values.get(c.name, ([], False))
        if vals and categorical:
            info.append("values " + ", ".join(_sql_literal(v) for v in vals))
        elif vals:
            word = "range" if not isinstance(vals[0], str) else "e.g."
            info.append(f"{word} " + ", ".join(_sql_literal(v) for v in vals))
        cols.append(f"{c.name} ({'; '.join(info)})")
    lines = [f"Table {table.name}" + (f" ({rows} rows)" if rows is not None else "") + "."]
    lines.append("Columns: " + ", ".join(cols) + ".")
    if table.foreign_keys:
        refs = [
            f"{fk.column} -> {fk.ref_table}.{fk.ref_column or '?'}" for fk in table.foreign_keys
        ]
        lines.append("Foreign keys: " + ", ".join(refs) + ".")
    incoming = [
        f"{t.name}.{fk.column}"
        for t in schema.tables.values()
        for fk in t.foreign_keys
        if fk.ref_table.lower() == table.name.lower() and t.name != table.name
    ]
    if incoming:
        lines.append("Referenced by: " + ", ".join(incoming) + ".")
    lines.append(table.ddl())
    return "\n".join(lines)


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


# --- documentation files -------------------------------------------------------------------


def doc_documents(
    docs_dir: Path, tokenizer: Any, chunk_tokens: int = 200, overlap: int = 30
) -> tuple[list[Any], int, Skipped]:
    """Chunks of every usable file under ``docs_dir``: (documents, files used, skipped)."""
    # deferred: langchain_core and its text splitters take ~450 ms to import
    from langchain_core.documents import Document
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    if not docs_dir.is_dir():
        raise RagInputError(f"Docs folder {docs_dir} does not exist or is not a folder")
    skipped = Skipped()

    def n_tokens(text: str) -> int:  # verbose=False: no "longer than 256" warning per file
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    markdown = RecursiveCharacterTextSplitter.get_separators_for_language(Language.MARKDOWN)
    splitters = {
        md: RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap,
            length_function=n_tokens,
            separators=markdown if md else None,
        )
        for md in (True, False)
    }
    docs: list[Any] = []
    used = 0
    for path in sorted(p for p in docs_dir.rglob("*") if p.is_file()):
        rel = str(path.relative_to(docs_dir))
        if path.name.startswith(".") or path.suffix.lower() not in DOC_SUFFIXES:
            skipped.add("not .md/.txt/.pdf")
            continue
        text, why = _read_text(path)
        if text is None:
            skipped.add(why)
            log.warning("Skipping %s: %s", rel, why)
            continue
        md = path.suffix.lower() in {".md", ".markdown"}
        chunks = [c for c in splitters[md].split_text(text) if c.strip()]
        docs.extend(
            Document(page_content=c, metadata={"kind": "doc", "source": rel, "chunk": i})
            for i, c in enumerate(chunks)
        )
        used += 1
    if not used:
        log.warning("No usable documentation in %s (.md, .txt or .pdf text files)", docs_dir)
    return docs, used, skipped


def _read_text(path: Path) -> tuple[str | None, str]:
    """(text, '') or (None, reason)."""
    if path.suffix.lower() == ".pdf":
        return _read_pdf(path)
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return None, "binary file"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    return (text, "") if text.strip() else (None, "empty file")


def _read_pdf(path: Path) -> tuple[str | None, str]:
    try:
        from pypdf import PdfReader  # optional: pypdf may be absent (and takes ~200 ms)
    except ImportError:
        return None, "PDF support needs the pypdf package"
    try:
        text = "\n\n".join((page.extract_text() or "") for page in PdfReader(path).pages)
    except Exception as err:  # pypdf raises many kinds on damaged files
        return None, f"unreadable PDF ({type(err).__name__})"
    return (text, "") if text.strip() else (None, "PDF has no text layer")


# --- question/SQL examples -----------------------------------------------------------------


def read_example_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON list, JSONL or CSV file; raises RagInputError if the file is unusable."""
    if not path.is_file():
        raise RagInputError(f"Examples file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as err:
        raise RagInputError(f"Cannot read examples file {path.name}: {err}") from err
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows: Any = list(csv.DictReader(text.splitlines()))
        elif suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
            if isinstance(rows, dict):
                rows = rows.get("examples", rows.get("data"))
    except (json.JSONDecodeError, csv.Error) as err:
        raise RagInputError(f"Examples file {path.name} does not parse: {err}") from err
    if not isinstance(rows, list):
        raise RagInputError(f"Examples file {path.name} must hold a list of question/SQL rows")
    return rows


def example_documents(
    rows: list[Any], schema: Schema, db_name: str, source: str = ""
) -> tuple[list[Any], Skipped]:
    """Validated question/SQL pairs as documents; bad rows are skipped and counted.

    When rows carry a ``db_id`` (Spider's shape) and some match ``db_name``, only those are
    used, so Spider's whole ``train.json`` can be given for one of its databases.
    """
    from langchain_core.documents import Document  # deferred: langchain_core: ~100 ms

    skipped = Skipped()
    ids = {r.get("db_id") for r in rows if isinstance(r, dict)}
    by_db = db_name in ids
    docs, seen = [], set()
    for row in rows:
        if not isinstance(row, dict):
            skipped.add("not an object")
            continue
        if by_db and row.get("db_id") != db_name:
            continue  # another database's rows: not counted as errors
        question = _first(row, _QUESTION_KEYS)
        sql = _first(row, _SQL_KEYS)
        if not question or not sql:
            skipped.add("missing question or SQL")
            continue
        if question.lower() in seen:
            skipped.add("duplicate question")
            continue
        check = validate_sql(sql, schema)
        if not check.ok:
            reason = check.errors[0].split(":")[0] if check.errors else "invalid SQL"
            skipped.add(reason)
            continue
        seen.add(question.lower())
        meta = {"kind": "example", "sql": sql.strip().rstrip(";"), "source": source}
        docs.append(Document(page_content=question, metadata=meta))
    if skipped.total:
        log.warning("Skipped %d example(s): %s", skipped.total, dict(skipped.reasons))
    return docs, skipped


def question_and_sql(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """A pair row's question and SQL, whichever of the usual key names it uses."""
    return _first(row, _QUESTION_KEYS), _first(row, _SQL_KEYS)


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        value = row.get(k)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def example_text(doc: Any) -> str:
    return f"Q: {doc.page_content}\nSQL: {doc.metadata.get('sql', '')}"
