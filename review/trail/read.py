"""Reads of the audit trail for the Audit trail page: filter options and one page, newest first (keyset)."""

from __future__ import annotations

import json

import sqlite_utils


def describe_payload(payload: str | None) -> str:
    """The trail's JSON payload as 'key: value; …' for a person (the JSON itself stays in the trail)."""
    if not payload:
        return ""
    try:
        data = json.loads(payload)
    except ValueError:
        return str(payload)
    if not isinstance(data, dict):
        return str(data)
    parts = []
    for k, v in data.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False)
        elif isinstance(v, bool):
            v = "yes" if v else "no"
        parts.append(f"{str(k).replace('_', ' ')}: {v}")
    return "; ".join(parts)


FAILED_SIGN_INS = "(failed sign-ins)"  # the Who filter's option for sign_in_failed rows, whatever name was typed
SYSTEM_ACTOR = "cli"  # auth.SYSTEM: the `review` command


def filter_options(db: sqlite_utils.Database) -> dict:
    """{'datasets': {name: id}, 'actors': [...], 'actions': [...], 'failed_sign_ins': n} for the filters.

    ``actors`` are the accounts (the users table, by name), then ``cli`` if the `review` command acted:
    never the names typed in failed sign-ins (those are any text a signed-out visitor types, and were the
    trail's actors: 510 of them pushed every user out of the list). The Who filter offers them apart,
    as FAILED_SIGN_INS (``page(failed_sign_ins=True)``); ``failed_sign_ins`` is how many rows that is."""
    actors = [r[0] for r in db.execute("SELECT name FROM users ORDER BY lower(name), name")]
    if (
        SYSTEM_ACTOR not in actors
        and db.execute("SELECT 1 FROM audit_log WHERE actor=? LIMIT 1", [SYSTEM_ACTOR]).fetchone()
    ):
        actors.append(SYSTEM_ACTOR)
    return {
        "datasets": {n: i for i, n in db.execute("SELECT id, name FROM datasets ORDER BY name")},
        "actors": actors,
        "actions": [r[0] for r in db.execute("SELECT DISTINCT action FROM audit_log ORDER BY action")],
        "failed_sign_ins": db.execute("SELECT COUNT(*) FROM audit_log WHERE action='sign_in_failed'").fetchone()[0],
    }


def page(
    db: sqlite_utils.Database,
    before_id: int | None = None,
    limit: int = 50,
    dataset_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    failed_sign_ins: bool = False,
) -> list[dict]:
    """Up to ``limit`` audit rows with id < before_id (newest first), filtered: id, at, actor, action,
    dataset (its name), row, details (the payload in words). ``failed_sign_ins``: only the failed
    sign-ins (whatever name was typed; each row's ``skipped`` says how many more the rate limit left out)."""
    cond, params = ["a.id < ?"], [before_id if before_id is not None else 2**62]
    if failed_sign_ins:
        cond.append("a.action = 'sign_in_failed'")
    for col, val in (("a.dataset_id", dataset_id), ("a.actor", actor), ("a.action", action)):
        if val is not None:
            cond.append(f"{col} = ?")
            params.append(val)
    rows = db.query(
        "SELECT a.id, a.at, a.actor, a.action, d.name AS dataset, a.idx AS row, a.payload FROM audit_log a"
        f" LEFT JOIN datasets d ON d.id=a.dataset_id WHERE {' AND '.join(cond)} ORDER BY a.id DESC LIMIT ?",
        [*params, limit],
    )
    return [
        {
            **{k: r[k] for k in ("id", "at", "actor", "action", "dataset", "row")},
            "details": describe_payload(r["payload"]),
        }
        for r in rows
    ]
