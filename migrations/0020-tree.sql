-- pagecow store schema, version 20: the namespace of tree mode (SPEC §6). Image stores get the
-- tables too and leave them empty. File data still lives in `files` and `page_chunks`: every
-- regular file with pages in the upper is one paged file there, exactly like the image of image mode.

-- The objects the upper knows something about. A lower object gets a row only when it is changed
-- (metadata, data, a new name, a removed name of a hard-linked file); its metadata is copied into
-- the row then. Objects created in the upper always have a row.
CREATE TABLE inodes (
  ino       INTEGER PRIMARY KEY,       -- the st_ino reported: the lower's for lower objects, >= 2^48 for upper-created ones
  type      TEXT NOT NULL CHECK (type IN ('file', 'directory', 'symlink', 'fifo', 'socket', 'char-device', 'block-device')),
  origin    TEXT,                      -- the object's path in the lower, relative to its root ('' is the root); NULL if created in the upper
  nlink     INTEGER NOT NULL CHECK (nlink >= 0), -- names in the merged view (directories: the lower's count until entries change)
  mode      INTEGER NOT NULL CHECK (mode >= 0 AND mode <= 4095), -- permission bits (07777)
  uid       INTEGER NOT NULL,
  gid       INTEGER NOT NULL,
  rdev      INTEGER NOT NULL DEFAULT 0,
  atime_ms  REAL NOT NULL,
  mtime_ms  REAL NOT NULL,
  ctime_ms  REAL NOT NULL,
  target    TEXT,                      -- symlink target, for symlinks created in the upper
  file      INTEGER UNIQUE REFERENCES files(id), -- the paged file holding the data; NULL while the data is all the lower's (or empty)
  lower_fp  TEXT,                      -- JSON: the lower file's size, mtime, blocks (and sampled hash once pages were copied)
  opaque    INTEGER NOT NULL DEFAULT 0 -- a directory created where the lower has one: the lower's content is hidden
);
-- A lookup that falls through to the lower checks that nothing recorded there was removed or replaced.
CREATE INDEX inodes_by_origin ON inodes (origin) WHERE origin IS NOT NULL;

-- Directory entries of the upper, layered over the lower's: an entry here wins over a lower entry
-- of the same name; ino NULL is a whiteout (the lower's entry is removed).
CREATE TABLE dirents (
  parent INTEGER NOT NULL,             -- the directory's ino
  name   TEXT NOT NULL,
  ino    INTEGER,                      -- NULL: whiteout
  PRIMARY KEY (parent, name)
) WITHOUT ROWID;
CREATE INDEX dirents_by_ino ON dirents (ino) WHERE ino IS NOT NULL;

-- Extended attributes set or removed in the upper; value NULL hides the lower's attribute.
CREATE TABLE xattrs (
  ino   INTEGER NOT NULL,
  name  TEXT NOT NULL,
  value BLOB,
  PRIMARY KEY (ino, name)
) WITHOUT ROWID;

-- Persisted counters: next_ino (inode numbers of upper-created objects), next_file (paged file ids).
CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

-- Upper data files whose records are gone; deleted after the commit and again at the next open.
CREATE TABLE purge (
  file INTEGER PRIMARY KEY
);
