"""What a text-only chat turn sends, counted rather than timed: Redis commands (Valkey's commandstats) and, on
PostgreSQL, SQL statements (pg_stat_statements), per complete turn. Unlike CPU or latency these do not
depend on the machine or on what else runs on it, so two commits compare exactly."""

from __future__ import annotations

from tests.support.waiting import wait_for

from .users import Stats

# Valkey counts these too; they are the bench's own reading and resetting, not the app's.
_OWN_COMMANDS = {"cmdstat_info", "cmdstat_config|resetstat"}


def _statements(stack):
    """A connection to the stack's PostgreSQL with pg_stat_statements, or None (SQLite, or not loaded)."""
    url = stack.env["DATABASE_URL"]
    if not url.startswith("postgresql"):
        return None
    import psycopg

    connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    try:
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        connection.execute("SELECT pg_stat_statements_reset()")
    except psycopg.Error:  # the server was not started with it in shared_preload_libraries
        connection.close()
        return None
    return connection


def start_counting(stack):
    """Zero Valkey's command counts and PostgreSQL's statement counts; what ``counted`` needs afterwards."""
    statements = _statements(stack)
    stack.redis.config_resetstat()
    return statements


def counted(stack, statements, stats: Stats, turns: int) -> dict:
    """Per complete turn since ``start_counting``: Redis commands, and SQL statements on PostgreSQL."""
    # The worker's last bookkeeping (the job's result, its registries) follows the reply's end by a moment.
    wait_for(lambda: stack.in_flight() == 0, 30, "the worker idle")
    commands = {
        name: entry["calls"] for name, entry in stack.redis.info("commandstats").items() if name not in _OWN_COMMANDS
    }
    done = turns - len(stats.errors)
    result = {
        "turns": done,
        "errors": stats.errors[:5],
        "redis_commands_per_turn": sum(commands.values()) / done if done else None,
        "redis_top": {
            name.removeprefix("cmdstat_"): round(calls / done, 2)
            for name, calls in sorted(commands.items(), key=lambda kv: -kv[1])[:8]
        }
        if done
        else {},
        "sql_statements_per_turn": None,
    }
    if statements is not None:
        with statements:
            total = statements.execute(
                "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'"
            ).fetchone()[0]
        result["sql_statements_per_turn"] = float(total) / done if done else None
    return result
