"""The migrations rendered for a ClickHouse cluster: ``ON CLUSTER``, Replicated, Distributed.

The migration files are written for one server (:mod:`storage.migrate`); their text and
checksums never change. With a cluster name (``Settings.clickhouse_cluster``) each
statement is rewritten:

- a ``*MergeTree`` table ``t`` becomes ``t_local`` on every node, with the Replicated
  engine of the same kind (``Replicated<Kind>MergeTree('/clickhouse/tables/{shard}/
  {database}/{table}', '{replica}', <args>)``), and ``t`` becomes a ``Distributed`` table
  over the ``t_local`` of every shard. Readers and writers keep using ``t``. The sharding
  key hashes the table's whole ``ORDER BY`` key: the copies of a row that a
  ReplacingMergeTree collapses share that key, so they land on one shard and still
  collapse;
- other tables (the ``Null`` insert points) and materialized views are created on every
  node as they are; a view writes into the Distributed table, which routes each row;
- ``ALTER`` of columns applies to ``t_local`` and ``t``; ``ALTER`` of indexes,
  projections and settings to ``t_local`` only;
- ``RENAME`` renames the local tables and re-creates the Distributed tables over them
  (a Distributed table names its local table; it cannot follow a rename); ``DROP`` drops
  both; ``INSERT ... SELECT`` runs once, through the Distributed tables, synchronously;
- every DDL statement gets ``ON CLUSTER <name>``.

A statement of another form raises :class:`ClusterRenderError`: a new migration that
the rules above do not cover must extend them (tests/unit/storage/test_cluster.py
renders every migration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from storage.clickhouse import check_identifier

#: Where a replicated table keeps its state in Keeper (macros expanded by each server).
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
#: The replica name: the ``replica`` macro of each server's config.
REPLICA_NAME = "{replica}"
#: Suffix of the per-node table under a Distributed one.
LOCAL = "_local"


class ClusterRenderError(ValueError):
    """A migration statement has a form the cluster rendering does not know."""


_NAME = r"(?P<db>\w+)\.(?P<name>\w+)"
_CREATE_TABLE = re.compile(rf"^CREATE TABLE IF NOT EXISTS {_NAME}\s*(?P<body>\(.*)$", re.S)
_CREATE_VIEW = re.compile(
    rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS {_NAME}(?P<rest>\s+TO\s+.*)$", re.S
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>\w+)(?P<args>\([^)]*\))?", re.S)
_ORDER_BY = re.compile(r"\bORDER BY\s+(?P<key>\([^)]*\)|\w+)")
_ALTER = re.compile(rf"^ALTER TABLE {_NAME}\s+(?P<op>.*)$", re.S)
_INSERT = re.compile(rf"^INSERT INTO {_NAME}\s+(?P<rest>SELECT\b.*)$", re.S)
_RENAME = re.compile(r"^RENAME TABLE\s+(?P<pairs>.*)$", re.S)
_PAIR = re.compile(rf"^{_NAME}\s+TO\s+(?P<db2>\w+)\.(?P<name2>\w+)$")
_DROP = re.compile(rf"^DROP TABLE (?P<if>IF EXISTS )?{_NAME}$")
#: ALTER operations that change the columns: applied to the local and Distributed tables.
_COLUMN_OPS = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b")
#: ALTER operations on the stored data's layout: the local tables only.
_LOCAL_OPS = re.compile(
    r"^((ADD|DROP|MATERIALIZE|CLEAR) (INDEX|PROJECTION)|MODIFY (SETTING|TTL|ORDER BY))\b"
)


@dataclass
class ClusterRenderer:
    """Rewrites single-server migration statements for cluster ``cluster``, in order.

    It is stateful: it remembers which tables are sharded (local + Distributed) and
    their sharding keys, so render every migration from the first, in version order,
    even when only the last ones will be applied.
    """

    cluster: str
    database: str
    #: sharded table name -> sharding key expression
    sharded: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_identifier(self.cluster)
        check_identifier(self.database)

    @property
    def on(self) -> str:
        """The ``ON CLUSTER`` clause."""
        return f"ON CLUSTER {self.cluster}"

    def render(self, statement: str, where: str = "") -> list[str]:
        """The cluster statements for one single-server statement (``where`` names it in
        errors)."""
        text = statement.strip()
        for rule in (
            self._create_table,
            self._create_view,
            self._alter,
            self._insert,
            self._rename,
            self._drop,
        ):
            out = rule(text)
            if out is not None:
                return out
        head = " ".join(text.split())[:80]
        raise ClusterRenderError(f"{where}: no cluster rendering for statement {head!r}")

    def distributed(self, name: str) -> str:
        """The statement that creates Distributed table ``name`` over ``name_local``."""
        db = self.database
        return (
            f"CREATE TABLE IF NOT EXISTS {db}.{name} {self.on} AS {db}.{name}{LOCAL}\n"
            f"ENGINE = Distributed({self.cluster}, {db}, {name}{LOCAL}, "
            f"{self.sharded[name]})"
        )

    def _create_table(self, text: str) -> list[str] | None:
        m = _CREATE_TABLE.match(text)
        if m is None:
            return None
        db, name, body = m["db"], m["name"], m["body"]
        engine = _ENGINE.search(body)
        if engine is None:
            raise ClusterRenderError(f"table {name} has no ENGINE")
        kind = engine["engine"]
        if not kind.endswith("MergeTree"):  # Null, Memory...: the same table on every node
            return [f"CREATE TABLE IF NOT EXISTS {db}.{name} {self.on}\n{body}"]
        if kind.startswith("Replicated"):
            raise ClusterRenderError(f"table {name} is already {kind}")
        order = _ORDER_BY.search(body, engine.end())
        if order is None:
            raise ClusterRenderError(f"table {name} has no ORDER BY to shard by")
        key = order["key"]
        inner = key[1:-1] if key.startswith("(") else key
        args = [f"'{REPLICA_PATH}'", f"'{REPLICA_NAME}'"]
        if engine["args"] and engine["args"][1:-1].strip():
            args.append(engine["args"][1:-1].strip())
        replicated = f"ENGINE = Replicated{kind}({', '.join(args)})"
        local_body = body[: engine.start()] + replicated + body[engine.end() :]
        self.sharded[name] = f"cityHash64({inner})"
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{name}{LOCAL} {self.on}\n{local_body}",
            self.distributed(name),
        ]

    def _create_view(self, text: str) -> list[str] | None:
        m = _CREATE_VIEW.match(text)
        if m is None:
            return None
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {m['db']}.{m['name']} {self.on}{m['rest']}"
        ]

    def _alter(self, text: str) -> list[str] | None:
        m = _ALTER.match(text)
        if m is None:
            return None
        db, name, op = m["db"], m["name"], m["op"]
        if len(_top_level_split(op)) != 1:
            raise ClusterRenderError(f"ALTER TABLE {name}: one operation per statement, please")
        if name not in self.sharded:
            return [f"ALTER TABLE {db}.{name} {self.on} {op}"]
        local = f"ALTER TABLE {db}.{name}{LOCAL} {self.on} {op}"
        if _COLUMN_OPS.match(op):
            return [local, f"ALTER TABLE {db}.{name} {self.on} {op}"]
        if _LOCAL_OPS.match(op):
            return [local]
        raise ClusterRenderError(f"ALTER TABLE {name}: no cluster rendering for {op[:40]!r}")

    def _insert(self, text: str) -> list[str] | None:
        m = _INSERT.match(text)
        if m is None:
            return None
        # through the Distributed tables, once; synchronous, so the statements after it
        # (a RENAME, a DROP of the source) see every row in place
        return [
            f"INSERT INTO {m['db']}.{m['name']} SETTINGS distributed_foreground_insert = 1\n"
            f"{m['rest']}"
        ]

    def _rename(self, text: str) -> list[str] | None:
        m = _RENAME.match(text)
        if m is None:
            return None
        pairs = []
        for part in _top_level_split(m["pairs"]):
            p = _PAIR.match(" ".join(part.split()))
            if p is None:
                raise ClusterRenderError(f"RENAME: cannot read {part.strip()!r}")
            pairs.append((p["db"], p["name"], p["db2"], p["name2"]))
        if not any(old in self.sharded for _, old, _, _ in pairs):
            listed = ", ".join(f"{d}.{o} TO {d2}.{n}" for d, o, d2, n in pairs)
            return [f"RENAME TABLE {listed} {self.on}"]
        if not all(old in self.sharded for _, old, _, _ in pairs):
            raise ClusterRenderError("RENAME mixes sharded and other tables")
        db = self.database
        out = [f"DROP TABLE IF EXISTS {db}.{old} {self.on} SYNC" for _, old, _, _ in pairs]
        listed = ", ".join(f"{d}.{o}{LOCAL} TO {d2}.{n}{LOCAL}" for d, o, d2, n in pairs)
        out.append(f"RENAME TABLE {listed} {self.on}")
        keys = {old: self.sharded.pop(old) for _, old, _, _ in pairs}
        for _, old, _, new in pairs:
            self.sharded[new] = keys[old]
        out += [self.distributed(new) for _, _, _, new in pairs]
        return out

    def _drop(self, text: str) -> list[str] | None:
        m = _DROP.match(text)
        if m is None:
            return None
        db, name, if_exists = m["db"], m["name"], m["if"] or ""
        if name not in self.sharded:
            return [f"DROP TABLE {if_exists}{db}.{name} {self.on} SYNC"]
        del self.sharded[name]
        return [
            f"DROP TABLE IF EXISTS {db}.{name} {self.on} SYNC",
            f"DROP TABLE {if_exists}{db}.{name}{LOCAL} {self.on} SYNC",
        ]


def _top_level_split(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and ch == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def render_cluster(
    migrations: Iterable[tuple[str, Sequence[str]]], cluster: str, database: str
) -> list[list[str]]:
    """Each migration's single-server statements (``(name, statements)`` in version
    order) rendered for ``cluster``: one list of statements per migration."""
    renderer = ClusterRenderer(cluster, database)
    return [
        [out for i, s in enumerate(stmts) for out in renderer.render(s, f"{name} #{i + 1}")]
        for name, stmts in migrations
    ]


def bookkeeping(database: str, cluster: str | None) -> list[str]:
    """The statements that create the database and ``schema_migrations``.

    On a cluster, ``schema_migrations`` is one replicated table shared by every node of
    every shard (its Keeper path has no ``{shard}``), so any node knows what was applied.
    """
    db = check_identifier(database)
    columns = "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')) "
    if cluster is None:
        return [
            f"CREATE DATABASE IF NOT EXISTS {db}",
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
            + columns
            + "ENGINE = ReplacingMergeTree ORDER BY version",
        ]
    on = f"ON CLUSTER {check_identifier(cluster)}"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db} {on}",
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations {on} "
        + columns
        + "ENGINE = ReplicatedReplacingMergeTree("
        + f"'/clickhouse/tables/all/{{database}}/schema_migrations', '{REPLICA_NAME}') "
        + "ORDER BY version",
    ]
