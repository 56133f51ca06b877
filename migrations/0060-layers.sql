-- pagecow store schema, version 60 (SPEC §11, issue 13): layers. An image store's record may now
-- name another store as its lower ({"format": "store", path, relative, identity, generation}), and
-- a store that is the base of another is sealed ("sealed": {at, by}: never written again). Both
-- live in the store record (meta 'store'), which a pagecow before this schema validates strictly:
-- the version bump makes it refuse such a store with EVERSION (its schema check comes first)
-- instead of calling the record corrupt. No table changes here.
SELECT 1;
