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

-- How many rows each namespace table holds, kept by triggers in the same transactions: a row lost
-- (a deleted entry would make a file vanish, a deleted inode row revert an object to its lower's
-- metadata, a deleted counter hand out a number twice) is caught at open, where the counts are
-- compared with the tables (lib/integrity/row-counts.ts). Any single damage to a count or a table
-- makes them differ. The triggers call pagecow_counted(), a function only pagecow's connections
-- define (lib/store/database.ts): a row added or removed by another program fails, and one removed
-- after dropping the triggers leaves the count behind.
CREATE TABLE row_counts (
  tbl TEXT PRIMARY KEY,
  n   INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO row_counts (tbl, n) SELECT 'inodes', count(*) FROM inodes;
INSERT INTO row_counts (tbl, n) SELECT 'dirents', count(*) FROM dirents;
INSERT INTO row_counts (tbl, n) SELECT 'xattrs', count(*) FROM xattrs;
INSERT INTO row_counts (tbl, n) SELECT 'counters', count(*) FROM counters;
INSERT INTO row_counts (tbl, n) SELECT 'files', count(*) FROM files;
CREATE TRIGGER inodes_added AFTER INSERT ON inodes BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'inodes'; END;
CREATE TRIGGER inodes_removed AFTER DELETE ON inodes BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'inodes'; END;
CREATE TRIGGER dirents_added AFTER INSERT ON dirents BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'dirents'; END;
CREATE TRIGGER dirents_removed AFTER DELETE ON dirents BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'dirents'; END;
CREATE TRIGGER xattrs_added AFTER INSERT ON xattrs BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'xattrs'; END;
CREATE TRIGGER xattrs_removed AFTER DELETE ON xattrs BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'xattrs'; END;
CREATE TRIGGER counters_added AFTER INSERT ON counters BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'counters'; END;
CREATE TRIGGER counters_removed AFTER DELETE ON counters BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'counters'; END;
CREATE TRIGGER files_added AFTER INSERT ON files BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'files'; END;
CREATE TRIGGER files_removed AFTER DELETE ON files BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'files'; END;

-- Lower binding (opt-in, `pagecow verify --record`): the sums of every lower page, laid out as
-- page_sums (blocks of 1024 xxHash64 sums, 0: no page). `file` names the lower object: 1 for an
-- image store's image; a lower file's inode number in a tree store (lower files get a paged file
-- id only when first copied up, and the inode is what the store already checks a lower file by).
-- A page's sum is of its bytes as the lower stores them (the last page short, not padded), so
-- a bound file's size is told by its sums: its pages are the leading non-zero ones.
CREATE TABLE lower_sums (
  file  INTEGER NOT NULL,
  block INTEGER NOT NULL CHECK (block >= 0),
  sums  BLOB NOT NULL,
  sum   BLOB NOT NULL,
  PRIMARY KEY (file, block)
) WITHOUT ROWID;

-- Partial-page copy-ups (every store): the sum of the lower page a DATA page was built on (its
-- bytes as the lower stores them), committed with the page map; gone when the page stops
-- depending on the lower (wholly rewritten, zeroed, truncated away). `file` is the paged file id,
-- `base` the lower page's xxHash64 (8 bytes little-endian), `sum` the row's own, as in every table.
CREATE TABLE copyup_base (
  file INTEGER NOT NULL,
  page INTEGER NOT NULL CHECK (page >= 0),
  base BLOB NOT NULL,
  sum  BLOB NOT NULL,
  PRIMARY KEY (file, page)
) WITHOUT ROWID;
