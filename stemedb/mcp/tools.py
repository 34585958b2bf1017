"""The MCP tools: StemeDB reads and signed writes, described for an LLM to act on.

Each tool is one method of `StemeTools`, whose signature is the tool's JSON
schema (the SDK derives it from the type hints and `Field` descriptions) and
whose docstring is the description the model reads. Tools call the server
through the project's HTTP client, so the MCP server works against any
StemeDB server it can reach, with that server's auth and roles.

Failures never crash the MCP server: every server answer that is an error
(4xx/5xx, or no answer at all) becomes a tool error carrying the server's
own message, which the model can read and act on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from stemedb.client import ApiError, Client
from stemedb.lenses.registry import LENS_NAMES, NOT_INNER
from stemedb.mcp.render import explain_text

# The lens enums are the registry's names, so a new lens reaches the tools without
# an edit here. mypy cannot read a Literal built at run time, so it sees `str`; the
# SDK builds the JSON schema from the run-time value (tests/mcp/test_mcp_lens_names.py).
INNER_LENS_NAMES: tuple[str, ...] = tuple(n for n in LENS_NAMES if n not in NOT_INNER)
if TYPE_CHECKING:
    Lens = str
    Inner = str
else:
    Lens = Literal[LENS_NAMES]
    Inner = Literal[INNER_LENS_NAMES]
Tier = Literal["Regulatory", "Clinical", "Observational", "Expert", "Community", "Anecdotal"]
Lifecycle = Literal["Proposed", "UnderReview", "Approved", "Deprecated", "Rejected"]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="64 hex characters")]
Seconds = Annotated[int, Field(ge=0, le=253402300799)]
Value = str | float | bool | dict[str, Any]

SUBJECT = Field(description="Concept path, e.g. 'drugs/semaglutide' (slash-separated segments)")
PREDICATE = Field(description="The property claimed about the subject, e.g. 'max_daily_dose_mg'")
AS_OF = Field(description="Unix seconds: the world as claimed at that time (claim timestamps)")
KNOWN_AT = Field(description="Unix seconds: only what the server had received by then")
NO_RETRACTED = Field(
    description="Leave out claims whose source was retracted (otherwise they carry `warnings`)"
)

F = TypeVar("F", bound=Callable[..., Any])


class IntendedAction(BaseModel):
    """What the agent is about to do, in the terms constraints are written in."""

    model_config = ConfigDict(extra="forbid")

    uses: list[str] = Field(
        default_factory=list,
        description="Things the action will use: libraries, tools, units, services",
    )
    does: list[str] = Field(default_factory=list, description="Things the action does or includes")


def server_errors(fn: F) -> F:
    """Turn a failed server call into a tool error with the server's message."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            fields = "; ".join(
                f"{d.get('field')}: {d.get('problem')}"
                for d in exc.details[:10]
                if isinstance(d, dict) and d.get("field")
            )
            raise ToolError(f"StemeDB server: {exc}" + (f" [{fields}]" if fields else "")) from None

    return cast(F, call)


class StemeTools:
    """The tool set over one client. `client.seed` is None when no --key was given."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _need_key(self, tool: str) -> None:
        if self.client.seed is None:
            raise ToolError(
                f"{tool} writes a signed record, and this MCP server has no signing key: "
                "start `stemedb mcp` with --key KEYFILE (make one with `stemedb keygen`). "
                "Nothing was written."
            )

    @staticmethod
    def _written(answer: dict[str, Any]) -> dict[str, Any]:
        return {"record_id": answer.get("hash"), **answer}

    # ---- reads -----------------------------------------------------------------------

    @server_errors
    def query(
        self,
        subject: Annotated[str, SUBJECT],
        predicate: Annotated[str | None, Field(description="Only this predicate")] = None,
        lens: Annotated[
            Lens | None,
            Field(
                description="Resolve each (subject, predicate) to one winner: authority (best "
                "source tier), consensus (most agents), recency, confidence, trust, votes, "
                "best, epoch, skeptic, layered, truth (learned source reliability), constraints "
                "(rules in force). Omit to list the raw claims."
            ),
        ] = None,
        inner: Annotated[Inner | None, Field(description="Tie-break lens inside epoch")] = None,
        prefix: Annotated[bool, Field(description="Include every subject under the path")] = False,
        as_of: Annotated[Seconds | None, AS_OF] = None,
        known_at: Annotated[Seconds | None, KNOWN_AT] = None,
        source_class: Annotated[Tier | None, Field(description="Only claims of this tier")] = None,
        lifecycle: Annotated[Lifecycle | None, Field(description="Only this lifecycle")] = None,
        agent_id: Annotated[Hex64 | None, Field(description="Only claims by this agent")] = None,
        include_superseded: Annotated[bool, Field(description="Show hidden claims")] = False,
        exclude_retracted: Annotated[bool, NO_RETRACTED] = False,
        decay: Annotated[
            str | None,
            Field(
                pattern=r"^(none|tier|[0-9]+(\.[0-9]+)?)$",
                description="Age decay of scores: none, tier (per-tier half-lives) or a "
                "half-life in days",
            ),
        ] = None,
        min_agent_age: Annotated[
            float | None,
            Field(
                ge=0,
                description="Seconds: agents first seen less long ago have no voice in "
                "consensus/layered (defends against floods of fresh keys)",
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of a previous page")] = None,
    ) -> dict[str, Any]:
        """Read claims about a concept. Without `lens`: the stored assertions (newest first).
        With `lens`: one winner per (subject, predicate) with its resolution confidence,
        conflict score and a per-candidate explanation. Use `as_of`/`known_at` to replay the
        past. Conflicting claims are normal here: pick the lens that fits the question.
        Read `warnings` on a winner or an explanation line (e.g. its source was retracted)."""
        params = {
            "predicate": predicate,
            "lens": lens,
            "inner": inner,
            "prefix": prefix or None,
            "as_of": as_of,
            "known_at": known_at,
            "source_class": source_class,
            "lifecycle": lifecycle,
            "agent_id": agent_id,
            "include_superseded": include_superseded or None,
            "exclude_retracted": exclude_retracted or None,
            "decay": decay,
            "min_agent_age": min_agent_age,
            "limit": limit,
            "cursor": cursor,
        }
        return dict(self.client.query(subject, **params))

    @server_errors
    def skeptic(
        self,
        subject: Annotated[str, SUBJECT],
        predicate: Annotated[str, PREDICATE],
        as_of: Annotated[Seconds | None, AS_OF] = None,
        known_at: Annotated[Seconds | None, KNOWN_AT] = None,
        exclude_retracted: Annotated[bool, NO_RETRACTED] = False,
    ) -> dict[str, Any]:
        """How contested is one fact? Returns status (NoClaims, Unanimous, Agreed, Contested),
        a conflict score in [0, 1], and every distinct value with its weight, share, agents
        (every signer), tiers and assertion hashes. Call this before relying on a fact."""
        extra = {"exclude_retracted": True} if exclude_retracted else {}
        return dict(
            self.client.skeptic(subject, predicate, as_of=as_of, known_at=known_at, **extra)
        )

    @server_errors
    def layered(
        self,
        subject: Annotated[str, SUBJECT],
        predicate: Annotated[str, PREDICATE],
        as_of: Annotated[Seconds | None, AS_OF] = None,
        known_at: Annotated[Seconds | None, KNOWN_AT] = None,
        exclude_retracted: Annotated[bool, NO_RETRACTED] = False,
    ) -> dict[str, Any]:
        """The winner within each authority tier (Regulatory ... Anecdotal) and whether the
        tiers disagree: e.g. the regulator says one thing, observational data another."""
        extra = {"exclude_retracted": True} if exclude_retracted else {}
        return self.client.layered(subject, predicate, as_of=as_of, known_at=known_at, **extra)

    @server_errors
    def trace(
        self,
        hash: Annotated[Hex64, Field(description="An assertion id (its hash)")],
        depth: Annotated[int, Field(ge=1, le=100, description="Ancestor levels")] = 10,
    ) -> dict[str, Any]:
        """The lineage of one assertion: ancestors through parent_hash, children, the
        supersessions that hide or correct it, and the votes on it."""
        return self.client.trace(hash, depth=depth)

    @server_errors
    def search_concepts(
        self,
        prefix: Annotated[
            str | None, Field(description="Path to list children of; omit for the roots")
        ] = None,
        contains: Annotated[
            str | None, Field(description="Keep child segments containing this (any case)")
        ] = None,
    ) -> dict[str, Any]:
        """Browse the concept tree: the child segments under `prefix` with their assertion
        counts. Walk down from the roots to find the subject path to query."""
        answer = self.client.concepts(prefix)
        if contains:
            needle = contains.casefold()
            children = answer.get("children") or []
            answer["children"] = [
                c for c in children if needle in str(c.get("segment", c)).casefold()
            ]
        return answer

    @server_errors
    def explain(
        self,
        subject: Annotated[str, SUBJECT],
        predicate: Annotated[str, PREDICATE],
        lens: Annotated[Lens, Field(description="The lens whose choice to explain")] = "authority",
        as_of: Annotated[Seconds | None, AS_OF] = None,
        known_at: Annotated[Seconds | None, KNOWN_AT] = None,
    ) -> dict[str, Any]:
        """Why does this lens pick this winner? Returns `text`, a readable ranking of every
        candidate with its value, score and the lens's reason (tier, recency, caps,
        exclusions), plus the raw lens answer as `result`."""
        result = self.client.query(
            subject, predicate=predicate, lens=lens, as_of=as_of, known_at=known_at
        )
        groups = list(result.get("results") or [])
        values: dict[str, Any] = {}
        for group in groups[:1]:
            for line in list(group.get("explanation") or [])[:8]:
                try:
                    values[line["hash"]] = self.client.assertion(line["hash"]).get("object")
                except ApiError:
                    continue
        return {"text": explain_text(subject, predicate, lens, groups, values), "result": result}

    @server_errors
    def agent(
        self,
        agent_id: Annotated[
            Hex64 | None, Field(description="The agent's public key; omit to list by trust")
        ] = None,
        as_of: Annotated[Seconds | None, AS_OF] = None,
        known_at: Annotated[Seconds | None, KNOWN_AT] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="Agents to list")] = 20,
    ) -> dict[str, Any]:
        """Who is an agent here? Its trust now (relaxed toward 0.5 with time), the outcome
        records that moved it, how many claims, co-signatures and votes it signed, and
        when it was first seen. Without agent_id: agents by trust, highest first."""
        if agent_id is None:
            return dict(self.client.agents(as_of=as_of, known_at=known_at, limit=limit))
        profile = self.client.agent(agent_id, as_of=as_of, known_at=known_at, history_limit=20)
        return dict(profile)

    @server_errors
    def check_constraints(
        self,
        context: Annotated[str, Field(description="Where the agent acts, e.g. 'code/python/http'")],
        intended_action: Annotated[
            IntendedAction, Field(description="What it is about to use and do")
        ],
        as_of: Annotated[Seconds | None, AS_OF] = None,
        known_at: Annotated[Seconds | None, KNOWN_AT] = None,
    ) -> dict[str, Any]:
        """Before acting, check the rules in force where you act (must_use, must_not_use,
        requires, prefer, avoid; rules of a parent context apply below it). Returns `ok`,
        the rules your intended action `violations`, and `advice`, each with who set the
        rule and why. Fix every violation before you act."""
        return self.client.check_constraints(
            context, intended_action.model_dump(), as_of=as_of, known_at=known_at
        )

    # ---- writes (signed with --key) ------------------------------------------------------

    @server_errors
    def assert_claim(
        self,
        subject: Annotated[str, SUBJECT],
        predicate: Annotated[str, PREDICATE],
        object: Annotated[
            Value,
            Field(
                description="The value: a string, number or boolean, or a tagged "
                '{"type": "Text"|"Number"|"Boolean"|"Reference", "value": ...}'
            ),
        ],
        confidence: Annotated[float, Field(ge=0, le=1, description="Your confidence, 0..1")],
        source: Annotated[
            str | None, Field(description="Where it comes from: URL, DOI, pubmed://ID")
        ] = None,
        source_class: Annotated[Tier | None, Field(description="Evidence tier claimed")] = None,
        lifecycle: Annotated[Lifecycle | None, Field(description="Default Proposed")] = None,
        parent_hash: Annotated[
            Hex64 | None, Field(description="The assertion this one refines")
        ] = None,
    ) -> dict[str, Any]:
        """Record a claim, signed with this server's agent key. Conflicting claims are kept
        side by side; lenses decide at read time. Returns record_id (the assertion hash),
        seq and status (created, or exists for an identical earlier record)."""
        self._need_key("assert_claim")
        answer = self.client.assert_(
            subject,
            predicate,
            object,
            confidence,
            source=source,
            source_class=source_class,
            lifecycle=lifecycle,
            parent_hash=parent_hash,
        )
        return self._written(dict(answer))

    @server_errors
    def vote(
        self,
        assertion_hash: Annotated[Hex64, Field(description="The assertion voted on")],
        weight: Annotated[float, Field(ge=-1, le=1, description="-1 disagree .. 1 agree")],
    ) -> dict[str, Any]:
        """Vote on an assertion, signed with this server's agent key; a later vote by the
        same agent replaces its earlier one. Returns record_id, seq and status."""
        self._need_key("vote")
        return self._written(dict(self.client.vote(assertion_hash, weight)))

    @server_errors
    def supersede(
        self,
        target_hash: Annotated[Hex64, Field(description="The assertion to hide or correct")],
        reason: Annotated[str, Field(min_length=1, description="Why, for the audit trail")],
        replacement_hash: Annotated[
            Hex64 | None, Field(description="The assertion that replaces it (for Correct)")
        ] = None,
        type: Annotated[
            Literal["Invalidate", "Correct"] | None, Field(description="Default Invalidate")
        ] = None,
    ) -> dict[str, Any]:
        """Hide an assertion from lenses (nothing is deleted; known_at still shows it). Only
        a signer of the target, or an admin, may supersede it: otherwise the server refuses
        with 403 and says why. Returns record_id, seq and status."""
        self._need_key("supersede")
        answer = self.client.supersede(
            target_hash, reason, replacement_hash=replacement_hash, type=type
        )
        return self._written(dict(answer))


READ_TOOLS: tuple[str, ...] = ("query", "skeptic", "layered", "trace", "search_concepts")
READ_TOOLS += ("explain", "agent", "check_constraints")  # constraints: issue 17 part 5
WRITE_TOOLS = ("assert_claim", "vote", "supersede")
