-- pagecow store schema, version 10: one database per store.

-- Store-wide settings, one JSON value per key (kind, page size, lower fingerprint...).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Every paged file of the store. Image mode has exactly one, id 1.
CREATE TABLE files (
  id            INTEGER PRIMARY KEY,
  size          INTEGER NOT NULL CHECK (size >= 0),          -- logical size in bytes
  lower_cut     INTEGER NOT NULL CHECK (lower_cut >= 0),     -- bytes at or past this never come from the lower (SPEC §4)
  bytes_written INTEGER NOT NULL DEFAULT 0,                  -- bytes users asked to write or zero
  upper_written INTEGER NOT NULL DEFAULT 0                   -- bytes written to the upper data file
);

-- The page-state bitmaps, split into chunks of 65536 pages so that a flush rewrites only the
-- chunks it changed. Bitmaps are roaring's portable format over page indexes within the chunk.
-- A page in neither bitmap is LOWER.
CREATE TABLE page_chunks (
  file       INTEGER NOT NULL REFERENCES files(id),
  chunk      INTEGER NOT NULL CHECK (chunk >= 0),
  data       BLOB NOT NULL,
  zero       BLOB NOT NULL,
  data_count INTEGER NOT NULL CHECK (data_count >= 0),
  zero_count INTEGER NOT NULL CHECK (zero_count >= 0),
  PRIMARY KEY (file, chunk)
) WITHOUT ROWID;
