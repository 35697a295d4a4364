"""Who gets which event: query filters and the audience rule of SPEC §4.

A :class:`Filter` is hashable so the hub can group streams with the same
filter and compute each group's bytes once per wake-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import TOPICS, Event


class InvalidTopic(ValueError):
    """A topic pattern that matches no known topic."""


def parse_topics(raw: str) -> tuple[str, ...]:
    """Comma list of exact topics or prefix wildcards (``appointment.*``, ``*``).

    A pattern that can match no topic is an error rather than a silent
    empty stream: the client most likely misspelt it.
    """
    patterns = tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))
    for p in patterns:
        if not any(topic_matches(p, t) for t in TOPICS):
            raise InvalidTopic(p)
    return () if "*" in patterns else patterns


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``pattern`` (exact, ``prefix.*`` or ``*``) covers ``topic``."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


@dataclass(frozen=True, slots=True)
class Filter:
    """What one stream receives.

    ``audience_staff_id`` is the listener's own scope (None for an admin);
    ``staff_id`` and ``product_id`` are query filters that only narrow.
    """

    topics: tuple[str, ...] = ()
    staff_id: int | None = None
    product_id: int | None = None
    audience_staff_id: int | None = None

    def matches(self, event: Event) -> bool:
        """True when this stream should receive ``event``."""
        # A staff member sees every appointment that is or was theirs; the
        # audience holds the staff before and after the change.
        if self.audience_staff_id is not None and event.resource == "appointment" \
                and (event.staff_ids is None or self.audience_staff_id not in event.staff_ids):
            return False
        if self.topics and not any(topic_matches(p, event.topic) for p in self.topics):
            return False
        if self.staff_id is not None and event.staff_ids is not None \
                and self.staff_id not in event.staff_ids:
            return False
        return not (self.product_id is not None and event.product_ids is not None
                    and self.product_id not in event.product_ids)

    @property
    def everything(self) -> bool:
        """True when every event matches (the common admin stream)."""
        return self == _EVERYTHING


_EVERYTHING = Filter()
