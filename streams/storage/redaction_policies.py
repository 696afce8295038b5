"""The ``redaction_policies`` table: each project's ``RedactionPolicy``, stored as its JSON."""

from __future__ import annotations

from schemas.privacy import RedactionPolicy
from streams.storage.project_documents import ProjectDocuments

TABLE = "redaction_policies"
_TABLE = ProjectDocuments(TABLE, RedactionPolicy)

get = _TABLE.get  # the project's own policy, or None (it follows the server's default)
all_policies = _TABLE.all
put = _TABLE.put
delete = _TABLE.delete  # back to the server's default; False if the project had no policy of its own
