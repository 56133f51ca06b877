-- pagecow store schema, version 30 (SPEC §6): names are bytes and times are nanoseconds.
-- Names, lower paths and symlink targets become BLOBs holding their bytes exactly (a name need not
-- be UTF-8; the stored TEXT of earlier versions was UTF-8, so its bytes carry over as they are).
-- Times become whole seconds and nanoseconds: a double of milliseconds could not hold them. Times
-- recorded by earlier versions were milliseconds already rounded; they convert to the nearest
-- nanosecond of that value and stay as precise as they were.

CREATE TABLE inodes_30 (
  ino        INTEGER PRIMARY KEY,
  type       TEXT NOT NULL CHECK (type IN ('file', 'directory', 'symlink', 'fifo', 'socket', 'char-device', 'block-device')),
  origin     BLOB,                      -- the object's path in the lower, relative to its root (empty: the root); NULL if created in the upper
  nlink      INTEGER NOT NULL CHECK (nlink >= 0),
  mode       INTEGER NOT NULL CHECK (mode >= 0 AND mode <= 4095),
  uid        INTEGER NOT NULL,
  gid        INTEGER NOT NULL,
  rdev       INTEGER NOT NULL DEFAULT 0,
  atime_sec  INTEGER NOT NULL,          -- seconds since the epoch, rounded down (negative before 1970)
  atime_nsec INTEGER NOT NULL CHECK (atime_nsec >= 0 AND atime_nsec < 1000000000),
  mtime_sec  INTEGER NOT NULL,
  mtime_nsec INTEGER NOT NULL CHECK (mtime_nsec >= 0 AND mtime_nsec < 1000000000),
  ctime_sec  INTEGER NOT NULL,
  ctime_nsec INTEGER NOT NULL CHECK (ctime_nsec >= 0 AND ctime_nsec < 1000000000),
  target     BLOB,                      -- symlink target bytes, for symlinks created in the upper
  file       INTEGER UNIQUE REFERENCES files(id),
  lower_fp   TEXT,                      -- JSON: the lower file's size, mtime (mtimeNs, or mtimeMs if recorded before 30), blocks, sample
  opaque     INTEGER NOT NULL DEFAULT 0
);

INSERT INTO inodes_30
SELECT ino, type, CAST(origin AS BLOB), nlink, mode, uid, gid, rdev,
       CAST(floor(atime_ms / 1000) AS INTEGER), min(999999999, CAST(round((atime_ms - floor(atime_ms / 1000) * 1000) * 1000000) AS INTEGER)),
       CAST(floor(mtime_ms / 1000) AS INTEGER), min(999999999, CAST(round((mtime_ms - floor(mtime_ms / 1000) * 1000) * 1000000) AS INTEGER)),
       CAST(floor(ctime_ms / 1000) AS INTEGER), min(999999999, CAST(round((ctime_ms - floor(ctime_ms / 1000) * 1000) * 1000000) AS INTEGER)),
       CAST(target AS BLOB), file, lower_fp, opaque
FROM inodes;

DROP TABLE inodes;
ALTER TABLE inodes_30 RENAME TO inodes;
CREATE INDEX inodes_by_origin ON inodes (origin) WHERE origin IS NOT NULL;

CREATE TABLE dirents_30 (
  parent INTEGER NOT NULL,             -- the directory's ino
  name   BLOB NOT NULL,                -- the name's bytes (no "/", no NUL, 1 to 255 bytes)
  ino    INTEGER,                      -- NULL: whiteout
  PRIMARY KEY (parent, name)
) WITHOUT ROWID;

INSERT INTO dirents_30 SELECT parent, CAST(name AS BLOB), ino FROM dirents;

DROP TABLE dirents;
ALTER TABLE dirents_30 RENAME TO dirents;
CREATE INDEX dirents_by_ino ON dirents (ino) WHERE ino IS NOT NULL;
