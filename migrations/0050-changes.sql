-- pagecow store schema, version 50 (SPEC §7, issue 12): change tracking. A mark names a moment;
-- the pages changed since it are recorded with the page maps, in the same transactions.

-- One row per mark. `epoch` orders the marks (a newer mark has a larger one) and tags the change
-- records written while the mark is the newest; `created` is when it was taken (ISO 8601, UTC).
CREATE TABLE marks (
  name       TEXT PRIMARY KEY,
  epoch      INTEGER NOT NULL UNIQUE CHECK (epoch > 0),
  created    TEXT NOT NULL,
  sum        BLOB NOT NULL
) WITHOUT ROWID;

-- The pages of a paged file changed while `epoch` was the newest epoch: one roaring bitmap (its
-- portable format) per chunk of 65 536 pages. The pages changed since a mark are the union of the
-- rows with an epoch at or after the mark's. A page may be in several epochs' rows: the record is
-- a superset of what changed, never less (SPEC §7; a crash can only add pages, see the README).
CREATE TABLE page_changes (
  file  INTEGER NOT NULL,
  epoch INTEGER NOT NULL CHECK (epoch > 0),
  chunk INTEGER NOT NULL CHECK (chunk >= 0),
  pages BLOB NOT NULL,
  sum   BLOB NOT NULL,
  PRIMARY KEY (file, epoch, chunk)
) WITHOUT ROWID;

-- A lost row would make a change vanish: count them, as the namespace tables are counted.
INSERT INTO row_counts (tbl, n) VALUES ('marks', 0), ('page_changes', 0);
CREATE TRIGGER marks_added AFTER INSERT ON marks BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'marks'; END;
CREATE TRIGGER marks_removed AFTER DELETE ON marks BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'marks'; END;
CREATE TRIGGER page_changes_added AFTER INSERT ON page_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'page_changes'; END;
CREATE TRIGGER page_changes_removed AFTER DELETE ON page_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'page_changes'; END;
