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

-- Tree stores: the directory entries changed while `epoch` was the newest, each with the upper
-- entry it had before its first change in that epoch (`had` 0: none, the lower's showed, if any;
-- `ino` NULL with `had` 1: a whiteout) and that object's type then. With the current entries and
-- the lower (which never changes) they tell what a name held at a mark.
CREATE TABLE name_changes (
  epoch  INTEGER NOT NULL CHECK (epoch > 0),
  parent INTEGER NOT NULL,
  name   BLOB NOT NULL,
  had    INTEGER NOT NULL CHECK (had IN (0, 1)),
  ino    INTEGER,
  type   TEXT,
  sum    BLOB NOT NULL,
  PRIMARY KEY (epoch, parent, name)
) WITHOUT ROWID;

-- Tree stores: the objects whose metadata (mode, owner, times, xattrs) changed in `epoch`.
CREATE TABLE inode_changes (
  epoch INTEGER NOT NULL CHECK (epoch > 0),
  ino   INTEGER NOT NULL,
  sum   BLOB NOT NULL,
  PRIMARY KEY (epoch, ino)
) WITHOUT ROWID;

-- A lost row would make a change vanish: count them, as the namespace tables are counted.
INSERT INTO row_counts (tbl, n) VALUES ('marks', 0), ('page_changes', 0), ('name_changes', 0), ('inode_changes', 0);
CREATE TRIGGER marks_added AFTER INSERT ON marks BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'marks'; END;
CREATE TRIGGER marks_removed AFTER DELETE ON marks BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'marks'; END;
CREATE TRIGGER page_changes_added AFTER INSERT ON page_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'page_changes'; END;
CREATE TRIGGER page_changes_removed AFTER DELETE ON page_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'page_changes'; END;
CREATE TRIGGER name_changes_added AFTER INSERT ON name_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'name_changes'; END;
CREATE TRIGGER name_changes_removed AFTER DELETE ON name_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'name_changes'; END;
CREATE TRIGGER inode_changes_added AFTER INSERT ON inode_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n + 1) WHERE tbl = 'inode_changes'; END;
CREATE TRIGGER inode_changes_removed AFTER DELETE ON inode_changes BEGIN UPDATE row_counts SET n = pagecow_counted(n - 1) WHERE tbl = 'inode_changes'; END;
