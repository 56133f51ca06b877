// The three states a page can be in (SPEC §2).

/**
 * `lower`: never written in the upper, reads the lower's bytes.
 * `data`: copied up or written, reads the upper's bytes.
 * `zero`: zeroed in the upper (discard, write-zeroes) with no data stored, reads zeros.
 */
export type PageState = 'lower' | 'data' | 'zero'
