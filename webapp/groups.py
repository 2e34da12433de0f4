"""Groups: teams whose members may use the models the group allows, within its limits.

A user may be in several groups and has one *primary* group: the one an admin chose, else the
first they joined. Pooled limits are charged to the primary group. How groups combine into a
user's effective rules lives with each rule: model access in ``webapp.access``, limits and
budgets in ``webapp.limits``; this module keeps the groups themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context
from sqlalchemy import delete, func, select, update

from . import audit
from .extensions import db
from .models import Group, GroupMember, User

NAME_MAX = 64
LIMIT_FIELDS = (
    "member_requests_per_minute",
    "member_tokens_per_day",
    "member_monthly_budget",
    "pooled_requests_per_minute",
    "pooled_tokens_per_day",
    "pooled_monthly_budget",
)


class GroupError(ValueError):
    """An admin's change that cannot be made; ``str()`` says why, for the page."""


@dataclass(frozen=True)
class GroupRules:
    """A group as the rules read it (plain values, no session needed)."""

    id: int
    name: str
    models: frozenset[str]
    member_requests_per_minute: int | None
    member_tokens_per_day: int | None
    member_monthly_budget: float | None
    pooled_requests_per_minute: int | None
    pooled_tokens_per_day: int | None
    pooled_monthly_budget: float | None


def _rules(group: Group) -> GroupRules:
    return GroupRules(
        id=group.id,
        name=group.name,
        models=frozenset(group.models or ()),
        **{name: getattr(group, name) for name in LIMIT_FIELDS},
    )


def user_groups(user) -> list[GroupRules]:
    """The user's groups, primary first, then in the order they joined (one query, once per request:
    a turn asks for them when it checks the model and again when it takes from the limits)."""
    user_id = getattr(user, "id", None)
    if user_id is None:
        return []
    read = g.setdefault("user_groups", {}) if has_request_context() else {}
    if user_id not in read:
        read[user_id] = [
            _rules(group)
            for group in db.session.execute(
                select(Group)
                .join(GroupMember, GroupMember.group_id == Group.id)
                .where(GroupMember.user_id == user_id)
                .order_by(GroupMember.created_at, Group.id)
            ).scalars()
        ]
    groups = list(read[user_id])
    primary_id = getattr(user, "primary_group_id", None)
    groups.sort(key=lambda g: g.id != primary_id)  # stable: the rest keep their joining order
    return groups


def _forget_read() -> None:
    """A change to groups or members: this request's later reads see it (``user_groups`` keeps them)."""
    if has_request_context():
        g.pop("user_groups", None)


def primary_group(groups: list[GroupRules]) -> GroupRules | None:
    """The group pooled limits are charged to (``user_groups`` puts it first)."""
    return groups[0] if groups else None


# -- admin changes (each one audited; the caller commits) ---------------------------------


def all_groups() -> list[tuple[Group, int]]:
    """Every group with its member count, by name."""
    counts = select(GroupMember.group_id, func.count().label("members")).group_by(GroupMember.group_id).subquery()
    return [
        (group, int(members or 0))
        for group, members in db.session.execute(
            select(Group, counts.c.members).outerjoin(counts, counts.c.group_id == Group.id).order_by(Group.name)
        )
    ]


def members(group: Group) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group.id)
            .order_by(User.username)
        )
    )


def _clean_name(name: str, keep: Group | None = None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise GroupError("A group needs a name.")
    if len(name) > NAME_MAX:
        raise GroupError(f"A group's name has at most {NAME_MAX} characters.")
    clash = db.session.scalar(select(Group).where(func.lower(Group.name) == name.lower()))
    if clash is not None and clash is not keep:
        raise GroupError(f"There is already a group named {clash.name}.")
    return name


def create_group(actor, name: str) -> Group:
    group = Group(name=_clean_name(name), models=[])
    db.session.add(group)
    db.session.flush()
    audit.record(actor, "group.create", f"group:{group.name}", None, {"name": group.name})
    return group


def rename_group(actor, group: Group, name: str) -> None:
    _forget_read()
    before = group.name
    group.name = _clean_name(name, keep=group)
    audit.record(actor, "group.rename", f"group:{group.name}", {"name": before}, {"name": group.name})


def delete_group(actor, group: Group) -> None:
    """Members stay users; a member whose primary group this was falls back to their next group."""
    _forget_read()
    group_id, name = group.id, group.name
    # Explicit, not only ON DELETE: SQLite here runs without foreign-key enforcement.
    db.session.execute(
        update(User)
        .where(User.primary_group_id == group_id)
        .values(primary_group_id=None)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
    db.session.delete(group)
    db.session.flush()
    db.session.expire_all()
    audit.record(actor, "group.delete", f"group:{name}", {"name": name}, None)


def set_rules(actor, group: Group, models: list[str], limits: dict) -> None:
    """The group's model allow-list and its limits (None: not set by the group; 0: unlimited)."""
    _forget_read()
    before = {"models": list(group.models or []), **{f: getattr(group, f) for f in LIMIT_FIELDS}}
    group.models = sorted(set(models))
    for name in LIMIT_FIELDS:
        setattr(group, name, limits.get(name))
    after = {"models": list(group.models), **{f: getattr(group, f) for f in LIMIT_FIELDS}}
    audit.record(actor, "group.rules", f"group:{group.name}", before, after)


def find_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.username) == (username or "").strip().lower()))


def add_member(actor, group: Group, user: User) -> None:
    _forget_read()
    if db.session.get(GroupMember, (group.id, user.id)) is not None:
        raise GroupError(f"{user.username} is already in {group.name}.")
    db.session.add(GroupMember(group_id=group.id, user_id=user.id))
    db.session.flush()
    audit.record(actor, "group.member_add", f"group:{group.name}", None, {"user": user.username})


def remove_member(actor, group: Group, user: User) -> None:
    _forget_read()
    membership = db.session.get(GroupMember, (group.id, user.id))
    if membership is None:
        raise GroupError(f"{user.username} is not in {group.name}.")
    db.session.delete(membership)
    if user.primary_group_id == group.id:
        user.primary_group_id = None  # back to the first group they joined
    db.session.flush()
    audit.record(actor, "group.member_remove", f"group:{group.name}", {"user": user.username}, None)


def set_primary(actor, user: User, group: Group | None) -> None:
    """The group ``user``'s pooled spending is charged to; None: the first group they joined."""
    if group is not None and db.session.get(GroupMember, (group.id, user.id)) is None:
        raise GroupError(f"{user.username} is not in {group.name}.")
    before = user.primary_group_id
    user.primary_group_id = group.id if group is not None else None
    db.session.flush()
    audit.record(
        actor, "user.primary_group", f"user:{user.username}", {"group_id": before}, {"group_id": user.primary_group_id}
    )
