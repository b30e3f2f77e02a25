"""The forced tools of ``LLMProposer``: ``submit_batch`` (observations, proposals, the
acknowledgement) and ``submit_review`` (the block-end review). Their input schemas follow
the strict tool-use rules: every object closed, every property required, nulls as ``anyOf``
branches, no numeric bounds (the space's ranges are in the system prompt and are checked in
code, ``llm_parse`` and ``check_proposal``).
"""

from __future__ import annotations

from typing import Any

from inr_tune.search import strategies
from inr_tune.search.space import SearchSpace

__all__ = ["BATCH_TOOL", "EXPECT_VALUES", "REVIEW_TOOL", "batch_tool", "review_tool"]

BATCH_TOOL = "submit_batch"
REVIEW_TOOL = "submit_review"
EXPECT_VALUES = ("improve", "worsen", "same")


def batch_tool(space: SearchSpace) -> dict[str, Any]:
    """The ``submit_batch`` tool: observations, proposals and the acknowledgement.

    One proposal = one parameter (``param``, an enum of the space's names) and its new
    ``value``; the baseline has ``param`` and ``value`` null. The schema follows the strict
    tool-use rules (every object closed, every property required, nulls as ``anyOf``
    branches, no numeric bounds: the space's ranges are in the system prompt and are
    checked in code).
    """

    def obj(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    observation_item = obj(
        {
            "node_id": {"type": "integer", "description": "a node of the finished batch"},
            "observation": {
                "type": "string",
                "description": "what the result shows, with numbers; no verdict",
            },
            "visual": {
                "type": "string",
                "description": "remark on the node's field panel; empty if none is attached",
            },
        }
    )
    proposal_item = obj(
        {
            "parent": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "description": "a finished node of the current block, or null for the root config",
            },
            "param": {
                "anyOf": [{"type": "string", "enum": list(space.params)}, {"type": "null"}],
                "description": "the one parameter to change; null only for the baseline",
            },
            "value": {
                "anyOf": [
                    {"type": "number"},
                    {"type": "string"},
                    {"type": "boolean"},
                    {"type": "null"},
                ],
                "description": "its new value, inside the allowed space; null for the baseline",
            },
            "strategy": {"type": "string", "enum": list(strategies.STRATEGIES)},
            "hypothesis": {
                "type": "string",
                "description": "why this change, and what it should do to final_r2",
            },
            "expect": {"type": "string", "enum": list(EXPECT_VALUES)},
        }
    )
    return {
        "name": BATCH_TOOL,
        "description": (
            "Submit observations on the finished trials and the next trials to run "
            "(one parameter change per trial)."
        ),
        "strict": True,
        "input_schema": obj(
            {
                "observations": {"type": "array", "items": observation_item},
                "proposals": {"type": "array", "items": proposal_item},
                "acknowledgement": {
                    "type": "string",
                    "description": "reply to the user's steering text; empty if there is none",
                },
            }
        ),
    }


def review_tool() -> dict[str, Any]:
    """The ``submit_review`` tool: the block-end review for memory.md."""
    strings = {"type": "array", "items": {"type": "string"}}
    props: dict[str, Any] = {
        "summary": {"type": "string", "description": "the block in a paragraph, with numbers"},
        "principles": {**strings, "description": "general lessons, each citing node ids"},
        "open_questions": {**strings, "description": "questions for the next blocks"},
        "next_ucb_c": {"type": "number", "description": "UCB exploration constant, 0.5 to 3.0"},
        "new_rules": {**strings, "description": "rules to add to this run's rule list"},
    }
    return {
        "name": REVIEW_TOOL,
        "description": "Submit the review of the block that just ended.",
        "strict": True,
        "input_schema": {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        },
    }
