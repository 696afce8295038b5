"""Claims: exactly one process wins a piece of work that several processes may reach at once.

API replicas and Kafka workers share one ClickHouse. Two of them can evaluate the same window (a
partition moves during a rebalance, late feedback recomputes a window), or resume the same unfinished
delivery. A read-then-write check ("no alert stored yet, so fire") lets both through. A claim is one
row in ``claims`` written with ``insert_deduplication_token`` = (project, kind, key): ClickHouse
checks and records that token while it holds the table's parts lock, so of racing inserts exactly one
row is stored, and every claimant then reads back the same owner. The winner does the work.

An owner is ``host:pid:nonce``. A claim held by a process that has died (same host, pid gone, or this
pid with another nonce: a restarted container) can be taken over with the next ``generation`` of
the key, which is again a claim only one process wins.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from streams.storage.client import Storage
from streams.storage.times import as_utc

log = structlog.get_logger(__name__)


_owner: tuple[int, str] | None = None


def process_owner() -> str:
    """This process's owner id: host, pid and a nonce that tells a restarted pid 1 from its predecessor.
    One per process (recomputed in a forked child)."""
    global _owner
    if _owner is None or _owner[0] != os.getpid():
        _owner = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}")
    return _owner[1]


@dataclass(frozen=True)
class Holder:
    """The newest claim on a key: who holds it, since when, and how many generations it has had."""

    owner: str
    claimed_at: datetime
    generations: int


class Claims:
    """Claim keys of one kind (``alert``, ``retrain``, ``delivery``) for this process."""

    def __init__(self, storage: Storage, owner: str | None = None) -> None:
        self._storage = storage
        self._db = storage.database
        self.owner = owner or process_owner()

    def claim(self, project: str, kind: str, keys: Sequence[str]) -> set[str]:
        """Claim ``keys``; returns those this process won (now, or earlier under the same owner).

        Keys someone else already holds are not inserted again; each free key is one insert (a
        deduplication token covers a whole insert), then the owners are read back once.
        """
        if not keys:
            return set()
        held = self.owners(project, kind, keys)
        for key in keys:
            if key not in held:
                self._storage.insert_rows(
                    "claims",
                    ["project", "kind", "claim_key", "owner"],
                    [[project, kind, key, self.owner]],
                    settings={"insert_deduplication_token": f"{project}\x1f{kind}\x1f{key}", "insert_deduplicate": 1},
                )
        if all(key in held for key in keys):
            won = {key for key, owner in held.items() if owner == self.owner}
        else:
            won = {key for key, owner in self.owners(project, kind, keys).items() if owner == self.owner}
        lost = len(keys) - len(won)
        if lost:
            log.info("claims_lost", project=project, kind=kind, keys=len(keys), lost=lost)
        return won

    def owners(self, project: str, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """key → owner of the keys that are claimed. Normally one row per key; should a token have left
        the deduplication window, the first row (by time, then owner) stands, for every reader alike."""
        rows = self._storage.query(
            f"SELECT claim_key, argMin(owner, (claimed_at, owner)) FROM {self._db}.claims "
            "WHERE project = {project:String} AND kind = {kind:String} AND claim_key IN {keys:Array(String)} "
            "GROUP BY claim_key",
            {"project": project, "kind": kind, "keys": list(keys)},
        ).result_rows
        return {key: owner for key, owner in rows}

    def holders(self, project: str, kind: str, prefixes: Sequence[str]) -> dict[str, Holder]:
        """Per prefix, the newest generation's holder of keys ``prefix`` / ``prefix#n`` (see ``generation``)."""
        if not prefixes:
            return {}
        rows = self._storage.query(
            "SELECT splitByChar('#', claim_key)[1] AS prefix, argMax(owner, (claimed_at, claim_key)), "
            "max(claimed_at), uniqExact(claim_key) "
            f"FROM {self._db}.claims WHERE project = {{project:String}} AND kind = {{kind:String}} "
            "AND splitByChar('#', claim_key)[1] IN {prefixes:Array(String)} GROUP BY prefix",
            {"project": project, "kind": kind, "prefixes": list(prefixes)},
        ).result_rows
        return {prefix: Holder(owner, as_utc(at), int(count)) for prefix, owner, at, count in rows}

    def claim_or_take_over(self, project: str, kind: str, prefix: str, *, stale_after: timedelta) -> bool:
        """Whether this process holds the work ``prefix`` names: it holds it already, won it now, or took
        it over (the key's next generation, again a claim only one process wins) from a holder that has
        died, or that ran on another host and claimed it more than ``stale_after`` ago."""
        holder = self.holders(project, kind, [prefix]).get(prefix)
        if holder is not None:
            if holder.owner == self.owner:
                return True
            alive = self.alive(holder.owner)
            if alive or (alive is None and holder.claimed_at > datetime.now(UTC) - stale_after):
                return False
            log.info("claim_taken_over", project=project, kind=kind, generation=holder.generations)
        return bool(self.claim(project, kind, [generation(prefix, holder.generations if holder else 0)]))

    def alive(self, owner: str) -> bool | None:
        """Whether ``owner`` still runs: True/False when it can be told from here, None when it ran on
        another host (only its age can say)."""
        if owner == self.owner:
            return True
        host, _, rest = owner.partition(":")
        pid, _, _ = rest.partition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return None
        if int(pid) == os.getpid():
            return False  # this pid, another nonce: the process this one replaced
        return os.path.exists(f"/proc/{pid}")


def generation(prefix: str, number: int) -> str:
    """The key of a claim's ``number``-th generation (0 is the prefix itself)."""
    return prefix if number == 0 else f"{prefix}#{number}"
