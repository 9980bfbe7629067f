"""The one prompt format shared by chat, training and evaluation.

Rows become chat messages here (pure functions, no tokenizer); :func:`render_prompt` turns
messages into text with the tokenizer's own chat template (ChatML for Qwen, ``[INST] <<SYS>>``
for Llama-2, ...). A tokenizer without a template gets the Llama-2 one, so a base Llama
checkpoint is trained and prompted the way the seed project did.

The user turn keeps the seed's labels (``Task:``, ``SQL table:``, ``SQL query:``) but puts the
schema first: what stays the same across questions on one database (system prompt, schema)
comes before what changes (retrieved notes, the question), so a backend with a prompt cache
(llama.cpp) evaluates only the changing tail of each prompt. The seed's question-first order
is :data:`SEED_FORMAT`; adapters trained with it keep it (their saved format says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from engine.context import Context, Retriever, Source
from engine.conversation import edit_note
from engine.followup import previous_note, retrieval_query

if TYPE_CHECKING:
    from engine.db import Database
    from engine.schema import Schema

SYSTEM_PROMPT = (
    "You are a helpful programmer assistant that excels at SQL. When prompted with a task and "
    "a definition of an SQL table, you respond with a SQL query to retrieve information from "
    "the table. Don't explain your reasoning, only provide the SQL query."
)
USER_TEMPLATE = "SQL table: {input}\n\n{context}Task: {instruction}\nSQL query: "
SEED_USER_TEMPLATE = "Task: {instruction}\nSQL table: {input}\nSQL query: "
# Fills the user template's {context} slot; a template without that slot (the seed's, and
# formats saved with older adapters) gets the context in front of the whole turn instead.
CONTEXT_TEMPLATE = "Context:\n{context}\n\n"
REPAIR_TEMPLATE = (
    "The SQL query you wrote failed.\nSQL: {sql}\nError: {error}\n"
    "Write a corrected SQL query that answers the task. Only provide the SQL query."
)

# Llama-2 chat format, used when a tokenizer ships no chat template of its own.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.first and system %}"
    "{{ bos_token + '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

Message = dict[str, str]


@dataclass(frozen=True)
class PromptFormat:
    """Everything that decides the prompt text; saved beside every trained adapter."""

    system: str = SYSTEM_PROMPT
    user_template: str = USER_TEMPLATE
    context_template: str = CONTEXT_TEMPLATE
    repair_template: str = REPAIR_TEMPLATE
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptFormat:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


DEFAULT_FORMAT = PromptFormat()
SEED_FORMAT = PromptFormat(user_template=SEED_USER_TEMPLATE)


def build_messages(
    instruction: str,
    schema: str,
    context: str | None = None,
    history: list[tuple[str, str]] | None = None,
    fmt: PromptFormat = DEFAULT_FORMAT,
) -> list[Message]:
    """System + (earlier question/SQL turns) + the new question, ready for a chat template.

    ``history`` holds earlier ``(question, sql)`` pairs so a follow-up can refer to them; the
    schema is given once, with the first turn.
    """
    messages: list[Message] = [{"role": "system", "content": fmt.system}]
    turns: list[tuple[str, str | None]] = [*(history or []), (instruction, None)]
    for i, (question, sql) in enumerate(turns):
        notes = ""
        if sql is None and context and context.strip():
            notes = fmt.context_template.format(context=context.strip())
        if i == 0:
            content = fmt.user_template.format(
                instruction=question.strip(), input=schema.strip(), context=notes
            )
            if "{context}" not in fmt.user_template:
                content = notes + content
        else:
            content = f"{notes}Task: {question.strip()}\nSQL query: "
        messages.append({"role": "user", "content": content})
        if sql is not None:
            messages.append({"role": "assistant", "content": sql})
    return messages


def build_repair_messages(
    messages: list[Message], failed_sql: str, error: str, fmt: PromptFormat = DEFAULT_FORMAT
) -> list[Message]:
    """The conversation so far, the failed answer, and a request to fix it."""
    return [
        *messages,
        {"role": "assistant", "content": failed_sql},
        {"role": "user", "content": fmt.repair_template.format(sql=failed_sql, error=error)},
    ]


def build_training_example(
    instruction: str,
    schema: str,
    sql: str,
    context: str | None = None,
    fmt: PromptFormat = DEFAULT_FORMAT,
) -> dict[str, list[Message]]:
    """A conversational prompt/completion row as TRL's SFTTrainer expects it.

    TRL renders both with the tokenizer's chat template, computes the loss on the completion
    only, and the template's end-of-turn token teaches the model to stop.
    """
    return {
        "prompt": build_messages(instruction, schema, context, fmt=fmt),
        "completion": [{"role": "assistant", "content": sql.strip()}],
    }


def ensure_chat_template(tokenizer: Any) -> Any:
    """Give a tokenizer without a chat template the Llama-2 one (in place); returns it."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    return tokenizer


def render_prompt(tokenizer: Any, messages: list[Message]) -> str:
    """Messages -> prompt text ending where the assistant's answer starts."""
    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_budget(context_length: int, max_new_tokens: int) -> int:
    """Tokens the schema and notes may use: the context window less room for the answer."""
    return max(256, context_length - max_new_tokens - 256)


@dataclass
class Prompter:
    """The one renderer of a question's prompt on a database: what of the database it shows
    (the retriever's choice within the budget, or the whole schema), the notes, the
    conversation, in the model's prompt format. The answer loop
    (:meth:`engine.pipeline.TextToSQL.prompter`), training's served prompts and the chat's
    source list all call it; it needs no model, only the tokenizer's count."""

    fmt: PromptFormat
    budget_tokens: int
    count_tokens: Callable[[str], int]
    retriever: Retriever | None = None

    def context(
        self,
        question: str,
        db: Database,
        schema: Schema,
        retriever: Retriever | None = None,
        draft: str | None = None,
    ) -> Context:
        """What the prompt shows of the database: the retriever's choice, or the whole schema.
        ``retriever``: retrieve from that one instead (a signed-in user's own index); without
        retrieval the whole schema is shown. ``draft``: a first answer's SQL, for retrievers
        that choose examples by it (``rag.pool_draft``)."""
        if self.retriever is None:
            return Context(schema_text=schema.ddl())
        extra = {"draft": draft} if draft is not None else {}
        return (retriever or self.retriever).context(
            question, db, schema, self.budget_tokens, self.count_tokens, **extra
        )

    def messages(
        self,
        question: str,
        db: Database,
        schema: Schema,
        history: list[tuple[str, str]] | None = None,
        context: Context | None = None,
        way: str = "previous",
    ) -> tuple[list[Message], list[Source]]:
        """The question's messages and the sources shown; ``context``: retrieval already done
        (else it is done here, for the question read with its conversation)."""
        ctx = context or self.context(retrieval_query(question, history), db, schema)
        return self.from_context(question, schema, ctx, history, way)

    def from_context(
        self,
        question: str,
        schema: Schema,
        ctx: Context,
        history: list[tuple[str, str]] | None = None,
        way: str = "previous",
    ) -> tuple[list[Message], list[Source]]:
        """Messages for ``question`` after ``history``, answered ``way``
                (engine.conversation): ``previous`` and ``history`` show the conversation as turns,
                ``previous`` also offers the previous answer's rows as a table; ``edit`` shows the
                previous question and SQL in one turn; ``scope`` asks the question alone (engine.scope
        limits its SQL to the previous rows). Without history the question stands alone."""
        notes, turns = ctx.notes, (history or None) if way != "scope" else None
        if turns and way == "previous":  # a follow-up may select from the previous rows
            extra = previous_note(turns[-1][1], schema.dialect)
        elif turns and way == "edit":
            extra, turns = edit_note(turns), None
        else:
            extra = ""
        notes = "\n".join(n for n in (notes, extra) if n)
        return build_messages(question, ctx.schema_text, notes, turns, self.fmt), ctx.sources
