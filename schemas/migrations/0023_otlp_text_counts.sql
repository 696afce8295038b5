-- What redaction found in the texts an OTLP log event brought (inferences.pii's shape: 'prompt': 1,
-- 'prompt.EMAIL': 1): kept with the texts, so the call they fill counts them in its privacy statistics
-- whichever comes first, the log or its span (streams/storage/otlp_texts.py).
ALTER TABLE {db}.otlp_texts ADD COLUMN IF NOT EXISTS pii Map(LowCardinality(String), UInt16)
