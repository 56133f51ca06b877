-- pagecow store schema, version 40 (SPEC §8, issue 10): a store never serves bytes it cannot vouch
-- for. Every DATA page has a checksum, kept with the page map and committed with it.

-- The checksums of the upper's DATA pages: per paged file, blocks of 1024 pages, each an 8-byte
-- xxHash64 little-endian (0: no sum), and the row's own sum of (file, block, sums).
CREATE TABLE page_sums (
  file  INTEGER NOT NULL,
  block INTEGER NOT NULL CHECK (block >= 0),
  sums  BLOB NOT NULL,
  sum   BLOB NOT NULL,
  PRIMARY KEY (file, block)
) WITHOUT ROWID;

-- Every row carries a checksum of its table and columns (lib/integrity/row-sums.ts), verified when
-- it is read: a flipped bit or an edited cell is caught, not served. Rows made before this schema
-- get theirs at the upgrade (lib/integrity/sum-existing-rows.ts).
ALTER TABLE meta ADD COLUMN sum BLOB;
ALTER TABLE files ADD COLUMN data_pages INTEGER NOT NULL DEFAULT 0 CHECK (data_pages >= 0); -- what its page map rows add up to:
ALTER TABLE files ADD COLUMN zero_pages INTEGER NOT NULL DEFAULT 0 CHECK (zero_pages >= 0); -- a row removed or added is caught at open
ALTER TABLE files ADD COLUMN sum BLOB;
ALTER TABLE page_chunks ADD COLUMN sum BLOB;
ALTER TABLE inodes ADD COLUMN sum BLOB;
ALTER TABLE dirents ADD COLUMN sum BLOB;
ALTER TABLE xattrs ADD COLUMN sum BLOB;
ALTER TABLE counters ADD COLUMN sum BLOB;
ALTER TABLE purge ADD COLUMN sum BLOB;
