"""What state an agent is in, as the dashboard sorts them (Wazuh's buckets), as SQL conditions
(and `state_of` for a row already read).

One state each, the first that applies:
- `revoked`: its key is refused;
- `never`: enrolled, no heartbeat yet;
- `silent`: heard from, but its last heartbeat is older than the service's silence threshold
  (`VIGIE_AGENT_SILENT_MINUTES`, the one the `agent_silent` job uses);
- `active`: a heartbeat within the threshold.

The `agent_silent` job also notifies an agent that never sent a heartbeat once its enrollment
is older than the threshold: such an agent is `never` here, which says more.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_

from api.agents.models import Agent, as_utc


class AgentState(StrEnum):
    ACTIVE = "active"
    SILENT = "silent"
    NEVER = "never"
    REVOKED = "revoked"


def condition(state: AgentState, now: datetime, silent_after: timedelta) -> ColumnElement[bool]:
    """The agents in `state` at `now`."""
    live = Agent.revoked.is_(False)
    threshold = now - silent_after
    if state is AgentState.REVOKED:
        return Agent.revoked.is_(True)
    if state is AgentState.NEVER:
        return and_(live, Agent.last_heartbeat.is_(None))
    if state is AgentState.SILENT:
        return and_(live, Agent.last_heartbeat < threshold)
    return and_(live, Agent.last_heartbeat >= threshold)


def state_of(agent: Agent, now: datetime, silent_after: timedelta) -> AgentState:
    """The state `condition` puts an agent already read in at `now`."""
    if agent.revoked:
        return AgentState.REVOKED
    if agent.last_heartbeat is None:
        return AgentState.NEVER
    if as_utc(agent.last_heartbeat) < now - silent_after:
        return AgentState.SILENT
    return AgentState.ACTIVE
