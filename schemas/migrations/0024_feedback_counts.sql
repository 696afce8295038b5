-- What redaction found in a correction's or a comment's text, under the feedback's kind ('correction': 1,
-- 'correction.EMAIL': 1; inferences.pii's shape): counts only, kept when raw text expires; they feed the
-- privacy statistics of the window of the call the feedback is about. Empty when redaction was off.
ALTER TABLE {db}.feedback ADD COLUMN IF NOT EXISTS pii Map(LowCardinality(String), UInt16)
