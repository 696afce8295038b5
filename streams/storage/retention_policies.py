"""The ``retention_policies`` table: each project's ``RetentionPolicy``, stored as its JSON."""

from __future__ import annotations

from schemas.privacy import RetentionPolicy
from streams.storage.project_documents import ProjectDocuments

TABLE = "retention_policies"
_TABLE = ProjectDocuments(TABLE, RetentionPolicy)

get = _TABLE.get  # the project's policy, or None (only the server's TTLs apply)
all_policies = _TABLE.all
put = _TABLE.put
delete = _TABLE.delete  # False if the project had no policy
