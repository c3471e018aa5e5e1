"""The admin key `apiary serve` keeps for its operator in ``<home>/admin.key`` (mode 0600).

Issued on the first start in a home, when there is no file. A file that is there is never
replaced: when its key does not open this database (it is another database's, say two
servers share a home, or it was revoked or has expired), serve keeps running without it,
leaves the file as it is and says what is wrong and what to do. Replacing it silently
would strand whoever relies on it (the other database's server) and leave one more admin
key valid that nobody can find; refusing to start would stop a hive for a file that only
its operator's convenience needs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from domain.cause import Cause
from domain.hive import Hive
from domain.keys import ApiKey, KeyState, Role, parse_token, secret_matches

log = logging.getLogger(__name__)

FILE_NAME = "admin.key"
NAME = "admin"


@dataclass(frozen=True)
class AdminKey:
    path: Path
    problem: str | None = None  # why the file's key does not open this database (None: it does)

    def advice(self, database: str) -> str:
        """What the operator reads at start-up."""
        if self.problem is None:
            return f"admin key in {self.path}"
        return (
            f"the admin key in {self.path} does not open this database ({database}): "
            f"{self.problem}. The file was left as it is. For an admin key of this database, "
            f"run `apiary keys create --role admin --name {NAME}` against it (the same "
            "APIARY_DATABASE_URL, or the same APIARY_HOME for the embedded one), or remove "
            f"{self.path} and start serve again to have one issued and written there"
        )


def admin_key(hive: Hive, home: Path) -> AdminKey:
    """The file's key checked against this database; issued and written when there is no
    file (never over one: a file written meanwhile by another server stands)."""
    path = home / FILE_NAME
    if not path.exists():
        issued = hive.keys.issue(NAME, Role.ADMIN, Cause("serve", "admin-key"))
        if _write_new(path, issued.token):
            return AdminKey(path)
        hive.keys.revoke(issued.key.id, Cause("serve", "admin-key-not-written"))
    found = AdminKey(path, why_unusable(hive, path.read_text().strip()))
    if found.problem is not None:
        log.warning(
            "the admin key file does not open this database; left as it is",
            extra={"action": "admin_key_unusable", "path": str(path), "problem": found.problem},
        )
    return found


def why_unusable(hive: Hive, token: str) -> str | None:
    """Why ``token`` is no admin key of this database (None: it is one)."""
    parsed = parse_token(token)
    if parsed is None:
        return "the file holds no API key"
    key = hive.load_many(ApiKey, [parsed[0]]).get(parsed[0])
    if key is None:
        return "this database never issued it (it is another database's)"
    if not secret_matches(key, parsed[1]):
        return "its secret does not match"
    state = key.state(hive.clock())
    if state is not KeyState.ACTIVE:
        return f"it is {state}"
    if key.role is not Role.ADMIN:
        return f"it is a {key.role} key, not an admin key"
    return None


def _write_new(path: Path, token: str) -> bool:
    """Write ``token`` to ``path`` (0600) unless a file is there by now; True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    try:
        os.link(tmp, path)  # fails if the file exists: never replaces one
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
