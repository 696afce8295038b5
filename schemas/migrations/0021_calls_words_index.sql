-- The calls explorer's text search (`q`) is a case-insensitive substring of the prompt or the response.
-- Without an index, a rare word reads the texts of its whole range (a search over 30 days, every
-- granule of the project). This skip index keeps, per granule (8,192 calls), a bloom filter of the
-- lower-cased words (runs of ASCII letters and digits) of both texts, joined by a line break so no word
-- spans the two. A search whose text holds a whole word (one with a space or punctuation on both sides
-- inside the search, like `123456` in `order 123456:`) asks the filter for it and reads only the
-- granules that may hold it; the search itself still decides each call, so the results are those of a
-- plain scan. 32 KB and 3 hashes per granule: under 1 % false positives up to ~15,000 distinct words
-- per granule. `tokenbf_v1` serves `hasToken` on every ClickHouse version loopwatch runs on.
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_words lower(concat(prompt, '\n', response))
    TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1;
-- builds it for rows written before this migration (a background mutation; until it finishes, a part
-- without the index is read as before)
ALTER TABLE {db}.inferences MATERIALIZE INDEX idx_words
