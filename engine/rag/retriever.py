"""The engine's RAG retriever: what of a database goes into the prompt.

:class:`RagRetriever` implements ``engine.context.Retriever``. Per question it fetches the
top tables, documentation chunks and solved examples of that database's collection (each
kind with its own ``k``, hits under the score threshold dropped), then
:func:`build_context` fits them to the prompt budget:

- the whole schema when it fits; otherwise only the retrieved tables plus the tables they
  join to by foreign keys (schema linking), best-scored first, as many as fit;
- then, in the room left: similar solved questions, sample values, documentation chunks (in
  that order of priority). With the whole schema, the sample values are those of every table
  in schema order, so they read the same for every question on the database and the prompt
  cache of the llama.cpp backend covers them; with a linked schema, those of the retrieved
  tables.

The notes are written values first, then documentation, then examples: the steadier a part,
the earlier it comes (see engine.prompt).

It never fails a question: when the store cannot be used it logs why and falls back to the
whole schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.context import Context, Source
from engine.db import Database, DbRef, open_database
from engine.progress import Progress
from engine.rag.config import RagConfig
from engine.rag.documents import example_text, table_documents, table_rows
from engine.rag.index import index_database, schema_fingerprint
from engine.rag.saved_pairs import pair_id
from engine.rag.store import StoreError, VectorStore, collection_name
from engine.schema import Schema

log = logging.getLogger(__name__)
# Solved questions of other databases: the model should take their SQL's shape, not names.
POOL_HEADER = (
    "Solved questions from other databases (their tables and columns are not this "
    "database's; use only the shape of the SQL):"
)


LINKS_HEADER = "Values in the question, as stored in the database:"


@dataclass
class Retrieval:
    """The prompt context and the documents it was built from (``metadata['score']`` set)."""

    context: Context
    documents: list[Any] = field(default_factory=list)


class RagRetriever:
    """Chroma-backed :class:`engine.context.Retriever`; indexes unseen databases first."""

    def __init__(
        self,
        cfg: RagConfig | None = None,
        progress: Progress | None = None,
        *,
        show_bar: bool = False,
        store: Any = None,
        examples_root: str | Path | None = None,
    ) -> None:
        self.cfg = cfg or RagConfig()
        self.progress = progress
        self.show_bar = show_bar
        self._store = store
        # whose saved pairs a database indexed on first use gets (None: the data folder's)
        self.examples_root = examples_root
        self._values: dict[str, Any] = {}  # the last database's table values, see table_values
        self._rows: dict[str, Any] = {}  # and its sample rows, see table_rows

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = VectorStore(self.cfg)
        return self._store

    def prepare(self, db: DbRef | Database, schema: Schema | None = None) -> Any:
        """The database's LangChain vector store, indexing or refreshing it when needed.

        Raises ``StoreError`` (or ``EmbedderError``) with a message for the user.
        """
        # deferred: the embedder's modules (langchain_core: ~400 ms) load with the first search
        from engine.rag.embeddings import get_embeddings

        db = open_database(db)
        name = db.name
        meta = self.store.info(db)
        if meta is None:
            if not self.cfg.auto_index:
                raise StoreError(f"{name} has no index yet: run python -m engine index --db {db}")
            self._say(f"No index for {name} in {self.cfg.location()} yet: indexing it now")
            index_database(
                self.cfg,
                db,
                store=self.store,
                progress=self.progress,
                show_bar=self.show_bar,
                examples_root=self.examples_root,
            )
            meta = self.store.info(db) or {}
        elif meta.get("embedder") != self.cfg.embedder:
            raise StoreError(
                f"{name} was indexed with embedder {meta.get('embedder')!r}, not "
                f"{self.cfg.embedder!r}: run python -m engine index --db {db} again"
            )
        embeddings = get_embeddings(self.cfg.embedder)
        schema = schema or db.read_schema()
        fingerprint = schema_fingerprint(schema)
        if meta.get("schema_sha") != fingerprint:
            self._say(f"The schema of {name} changed since indexing: refreshing its tables")
            docs = table_documents(db, schema, self.cfg.sample_values)
            self.store.replace_kind(
                db, "table", docs, embeddings, schema_sha=fingerprint, tables=len(docs)
            )
        return self.store.open(db, embeddings)

    def search(self, question: str, db: DbRef | Database, schema: Schema | None = None) -> list:
        """Top-k of every kind with scores, threshold not applied."""
        return self._search(question, self.prepare(db, schema))

    def _search(self, question: str, vs: Any, leave_out: str | None = None) -> list:
        # deferred: langchain_core's retrievers (~1 s) load with the first search
        from engine.rag.kind_retriever import KindRetriever

        k_by_kind = self.cfg.k_by_kind
        if leave_out is not None and k_by_kind["example"]:
            # one more: an index holds one example per question (index_database), and the
            # next-best takes the left-out one's place
            k_by_kind = {**k_by_kind, "example": k_by_kind["example"] + 1}
        kinds = KindRetriever(
            vectorstore=vs,
            k_by_kind=k_by_kind,
            score_threshold=self.cfg.score_threshold,
            kind_thresholds={"table": self.cfg.table_score_threshold},
        )
        hits = kinds.search(question)
        if leave_out is None:
            return hits
        own, kept, examples = pair_id(leave_out), [], 0
        for doc in hits:
            if doc.metadata.get("kind") == "example":
                if pair_id(doc.page_content) == own or examples == self.cfg.k_examples:
                    continue
                examples += 1
            kept.append(doc)
        return kept

    def retrieve(
        self,
        question: str,
        db: DbRef | Database,
        schema: Schema,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        leave_out: str | None = None,
        draft: str | None = None,
    ) -> Retrieval:
        """The context for ``question``; raises when the store cannot be used.

        ``leave_out``: a question whose solved pair must not be shown, from the database's
        own examples or from the pool; the next-best ones take its place, as if it had
        never been indexed (training renders each row so, without its own answer).
        ``draft``: a first answer's SQL; pool examples of its shape come first.
        """
        db = open_database(db)
        vs = self.prepare(db, schema)
        hits = self._search(question, vs, leave_out)
        values = self.table_values(vs)
        pool = []
        if self.cfg.pool_examples:
            from engine.rag.pool import example_pool  # late: tests replace example_pool there

            pool = example_pool(self.cfg.embedder).select(
                question, schema, db.label, self.cfg.pool_examples, leave_out, draft
            )
        rows = self.table_rows(db, schema, vs) if self.cfg.sample_rows else None
        links = self.value_links(question, db, schema, vs) if self.cfg.value_links else None
        return build_context(
            schema, hits, self.cfg, budget_tokens, count_tokens, values, pool, rows, links
        )

    def value_links(self, question: str, db: Database, schema: Schema, vs: Any) -> list[str]:
        """The stored values ``question`` names (engine.rag.values), as prompt lines; the
        database's value index is built on first use and again when its index changes."""
        from engine.rag.values import ValueIndex  # deferred: only with rag.value_links

        index = ValueIndex(self.cfg.store_path() / "values" / f"{collection_name(db)}.sqlite")
        key = repr(_index_key(vs))
        if not index.is_current(key):
            self._say(f"Indexing the stored values of {db.name}")
            index.build(db, schema, key)
        return [link.text() for link in index.links(question, schema, self.cfg.value_links)]

    def table_values(self, vs: Any) -> dict[str, str]:
        """Table name -> its sample-values note, for every indexed table of the database.

        ``vs`` is the database's opened store (:meth:`prepare`); its table documents are read
        again only when the collection's metadata (schema hash, index time) changed.
        """
        key = _index_key(vs)
        if self._values.get("key") != key:
            found = vs._collection.get(where={"kind": "table"}, include=["metadatas"])
            self._values = {
                "key": key,
                "values": {
                    m["table"]: m.get("values", "")
                    for m in found.get("metadatas") or []
                    if m and m.get("table")
                },
            }
        return self._values["values"]

    def table_rows(self, db: DbRef | Database, schema: Schema, vs: Any) -> dict[str, str]:
        """Table name -> its first ``rag.sample_rows`` rows as a comment block, read from the
        database again only when its index changed (as :meth:`table_values`)."""
        key = (_index_key(vs), self.cfg.sample_rows)
        if self._rows.get("key") != key:
            self._rows = {"key": key, "rows": table_rows(db, schema, self.cfg.sample_rows)}
        return self._rows["rows"]

    def context(
        self,
        question: str,
        db: Database,
        schema: Schema,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        draft: str | None = None,
    ) -> Context:
        try:
            return self.retrieve(
                question, db, schema, budget_tokens, count_tokens, draft=draft
            ).context
        except Exception as err:  # a question is never lost to the index: answer without it
            log.warning("Retrieval unavailable, using the whole schema: %s", err)
            log.debug("retrieval failure", exc_info=True)
            return Context(schema_text=schema.ddl())

    def _say(self, message: str) -> None:
        log.info(message)
        if self.progress is not None:
            self.progress(message)


def build_context(
    schema: Schema,
    hits: list[Any],
    cfg: RagConfig,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    table_values: dict[str, str] | None = None,
    pool: list[Any] | None = None,
    table_rows: dict[str, str] | None = None,
    value_links: list[str] | None = None,
) -> Retrieval:
    """Fit the schema (linked if needed) and the best notes into ``budget_tokens``.

    ``table_values`` (table -> sample-values note, all tables) gives the whole-schema prompt
    the values of every table; without it, those of the retrieved tables are used. ``pool``:
    solved questions of other databases (:class:`engine.rag.pool.PoolExample`), shown last.
    ``table_rows`` (table -> sample-rows block) goes under each CREATE TABLE when the whole
    schema fits with it.
    """
    by_kind: dict[str, list[Any]] = {"table": [], "doc": [], "example": []}
    for doc in sorted(hits, key=lambda d: -d.metadata.get("score", 0.0)):
        by_kind.setdefault(doc.metadata.get("kind", "doc"), []).append(doc)
    passing = {
        kind: [d for d in docs if d.metadata.get("score", 0.0) >= cfg.threshold_for(kind)]
        for kind, docs in by_kind.items()
    }
    used = list(passing["table"])

    full = schema.ddl()
    with_rows = schema.ddl(after=table_rows) if table_rows else full
    whole = count_tokens(full) <= budget_tokens
    if whole:
        schema_text = with_rows if count_tokens(with_rows) <= budget_tokens else full
        linked = list(schema.tables)
    else:
        seeds = passing["table"] or by_kind["table"]  # nothing passed: best tables anyway
        if not passing["table"] and seeds:
            log.info("No table reached %.2f; linking the top ones", cfg.table_score_threshold)
        linked = link_tables(schema, [d.metadata["table"] for d in seeds])
        while len(linked) > 1 and count_tokens(schema.ddl(linked)) > budget_tokens:
            linked.pop()  # neighbours go first, then the lowest-scored tables
        schema_text = schema.ddl(linked)
        used = [d for d in seeds if d.metadata.get("table") in linked]
        log.info("Schema linking: %d of %d tables in the prompt", len(linked), len(schema.tables))

    room = budget_tokens - count_tokens(schema_text)
    if table_values is not None and whole:
        values = [table_values.get(name, "") for name in schema.tables]
    else:
        in_prompt = {n.lower() for n in linked}
        values = [
            d.metadata.get("values", "")
            for d in passing["table"]
            if d.metadata.get("table", "").lower() in in_prompt
        ]
    sections: dict[str, list[str]] = {
        "example": [],
        "values": [],
        "doc": [],
        "pool": [],
        "links": [],
    }
    candidates: list[tuple[str, str, Any]] = [
        *(("links", text, None) for text in value_links or []),
        *(("example", example_text(d), d) for d in passing["example"]),
        *(("values", text, None) for text in values if text),
        *(("doc", d.page_content, d) for d in passing["doc"]),
        *(("pool", f"Q: {e.question}\nSQL: {e.sql}", e) for e in pool or []),
    ]
    pool_sources = []
    for section, text, doc in candidates:
        cost = count_tokens(text) + 4
        if cost > room:
            continue
        room -= cost
        sections[section].append(text)
        if section == "pool":
            pool_sources.append(Source(kind="example", text=f"{text}\n(database {doc.db_id})"))
        elif doc is not None:
            used.append(doc)
    if not any(passing.values()):
        best = max((d.metadata.get("score", 0.0) for d in hits), default=None)
        log.info(
            "Nothing in the index reached the score threshold (best %s); is the question "
            "in English (the embedder is)? The prompt carries the schema only.",
            f"{best:.2f}" if best is not None else "none",
        )
    notes = _notes(sections)
    sources = [
        Source(
            kind=d.metadata.get("kind", "doc"), text=_source_text(d), score=d.metadata.get("score")
        )
        for d in used
    ] + pool_sources
    return Retrieval(Context(schema_text=schema_text, notes=notes, sources=sources), used)


def link_tables(schema: Schema, seeds: list[str]) -> list[str]:
    """Retrieved tables (in order) then the tables they join to by a foreign key."""
    out: list[str] = []
    for name in seeds:
        table = schema.table(name)
        if table is not None and table.name not in out:
            out.append(table.name)
    for name in list(out):
        for other in sorted(schema.neighbours(name)):
            table = schema.table(other)
            if table is not None and table.name not in out:
                out.append(table.name)
    return out


def _notes(sections: dict[str, list[str]]) -> str | None:
    parts = []
    if sections["values"]:
        parts.append("Values found in the columns:\n" + "\n".join(sections["values"]))
    if sections["doc"]:
        parts.append("Notes about the data:\n" + "\n---\n".join(sections["doc"]))
    if sections["example"]:
        parts.append("Similar questions:\n" + "\n".join(sections["example"]))
    if sections["pool"]:
        parts.append(POOL_HEADER + "\n" + "\n".join(sections["pool"]))
    if sections["links"]:
        parts.append(LINKS_HEADER + "\n" + "\n".join(sections["links"]))
    return "\n\n".join(parts) or None


def _source_text(doc: Any) -> str:
    if doc.metadata.get("kind") == "example":
        return example_text(doc)
    return doc.page_content


def _index_key(vs: Any) -> tuple:
    """What changes when a database's index is rebuilt or refreshed (schema hash, time)."""
    collection = vs._collection  # langchain_chroma's handle on the Chroma collection
    return (collection.name, tuple(sorted((collection.metadata or {}).items())))
