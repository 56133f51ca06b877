// Inode numbers of the merged tree: stable across copy-up, rename and reopen (SPEC §6).
// Lower objects keep their lower st_ino; objects created in the upper get numbers from a
// persisted counter in a range no lower number reaches.

/** First inode number of objects created in the upper (2^48); lower numbers must stay below. */
export const UPPER_INO_BASE = 2 ** 48
/** First paged file id of a tree store (image stores use id 1 for their one file). */
export const FIRST_FILE_ID = 1
