"""The models one generation asks in turn: the one requested, then its usable fallbacks, and the log of
every attempt (issue 26; the rules live in ``webapp.fallbacks``)."""

from __future__ import annotations

import logging

import redis

from webapp import fallbacks, live, scheduling
from webapp.extensions import db
from webapp.llm.errors import LLMError
from webapp.model_options import applicable_options
from webapp.models import User

log = logging.getLogger(__name__)


class Route:
    """Which model a reply asks, in turn: the one requested, then its fallbacks (``webapp.fallbacks``) when
    one fails before any text in a way its chain moves on for, and the log of every attempt."""

    def __init__(
        self,
        user_id: int,
        model,
        connection,
        writer: live.LiveWriter,
        earlier: list | None = None,
        slot: tuple[int, str | None] | None = None,
    ):
        self.user_id = user_id
        self.slot = slot  # (generation id, job id): the provider slot it holds moves with a fallback
        self.requested = model
        self.model = model
        self.connection = connection
        self.writer = writer
        self.chain = fallbacks.chain_of(model.model_id)
        db.session.rollback()  # the settings read: hold no database connection while the reply streams
        self.tried = {model.model_id}
        # A continuation (``earlier``: the attempts that wrote the text so far) adds to the reply's log, and
        # its usage is the reply's next ledger part (0: the reply as first asked).
        self.log: list[dict] = list(earlier or [])
        self.continuing = earlier is not None
        self.part = fallbacks.continuation_part(earlier) if self.continuing else 0

    @property
    def moved(self) -> bool:
        return self.model.model_id != self.requested.model_id

    def start(self):
        """The first model to ask: the requested one, unless it is cooling down and a fallback is free."""
        if self.chain.fallbacks and self._quietly(fallbacks.is_cooling, self.connection, self.model.model_id):
            self._move_on(fallbacks.COOLING_DOWN)
        return self.model

    def asking(self, model, waited: float) -> None:
        self.log.append(fallbacks.attempt(model.model_id, waited))
        if self.continuing:
            self.log[-1].update(continues=True, part=self.part)

    def options(self, model, options: dict) -> dict:
        """The conversation's options, those the model declares when it is a fallback."""
        return options if model is self.requested else applicable_options(model, options)

    def failed(self, error: LLMError) -> None:
        self.log[-1].update(error=error.code, kind=fallbacks.failure_kind(error))
        self._quietly(fallbacks.note_failure, self.connection, self.model.model_id, error)

    def fallback_for(self, model, error: LLMError):
        """The next model after ``model`` failed before any text, or None (stay: retry or fail)."""
        kind = fallbacks.failure_kind(error)
        if kind is None or kind not in self.chain.moves_on or not self.chain.fallbacks:
            return None
        if self._move_on(kind) is None:
            return None
        self._quietly(fallbacks.honour_retry_after, self.connection, model.model_id, error)
        return self.model

    def _move_on(self, kind: str):
        skipped: list[tuple[str, str]] = []  # (model id, why)
        try:
            user = db.session.get(User, self.user_id)
            while True:
                replacement, cooling = fallbacks.next_model(user, self.chain, self.tried, self.connection)
                skipped += [(model_id, fallbacks.COOLING_DOWN) for model_id in cooling]
                self.tried.update(cooling)
                if replacement is None or self._take_slot(replacement):
                    break
                skipped.append((replacement.model_id, fallbacks.AT_CAPACITY))  # its provider is at its cap
                self.tried.add(replacement.model_id)
        except redis.RedisError:
            return None
        finally:
            db.session.rollback()
        if replacement is not None and kind == fallbacks.COOLING_DOWN:
            self.log.append(fallbacks.attempt(self.model.model_id, error=kind, kind=kind))
        for model_id, why in skipped:
            self.log.append(fallbacks.attempt(model_id, error=why, kind=why))
        if replacement is None:
            return None
        log.info("generation: %s %s; falling back to %s", self.model.model_id, kind, replacement.model_id)
        self.writer.fallback({"from": self.model.model_id, "to": replacement.model_id, "kind": kind})
        self.tried.add(replacement.model_id)
        self.model = replacement
        return replacement

    def _take_slot(self, replacement) -> bool:
        """Move the reply's provider slot to the replacement's provider; False when that one is at its cap."""
        if self.slot is None:
            return True
        return scheduling.move_slot(*self.slot, replacement.provider)

    @staticmethod
    def _quietly(function, *args):
        """Cooldown bookkeeping never fails a reply: without Redis, no cooldowns."""
        try:
            return function(*args)
        except redis.RedisError:
            log.warning("cooldowns: Redis unavailable")
            return None

    def answered(self) -> dict:
        """What the final record says of the route: the model that answered and every attempt."""
        answered = {"model_id": self.model.model_id, "provider": self.model.provider, "attempt_log": self.log}
        return {**answered, "continued": True} if self.continuing else answered
