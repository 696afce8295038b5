-- Entities found by redaction at ingest, per scanned field ('response': 2, 0 when scanned and clean)
-- and per field and kind ('response.EMAIL': 1): counts only, never values, so they are kept when
-- raw text expires and feed the `privacy` statistics family. Empty when redaction was off.
ALTER TABLE {db}.inferences ADD COLUMN IF NOT EXISTS pii Map(LowCardinality(String), UInt16);
