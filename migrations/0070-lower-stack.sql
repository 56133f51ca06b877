-- pagecow store schema, version 70 (issue 13): a tree store has a list of lowers, leftmost on top
-- as overlayfs's lowerdir=A:B:C, and one of them may be another tree store; a store others are
-- made on is sealed (its record says so, and writable opens fail). The store record's one `lower`
-- becomes `lowers`, a list of one; its checksum is taken again after this (migrations.ts).
UPDATE meta
SET value = json_set(json_remove(value, '$.lower'), '$.lowers', json_array(json_extract(value, '$.lower')))
WHERE key = 'store' AND json_extract(value, '$.kind') = 'tree' AND json_type(value, '$.lower') = 'object';
