// How far into its buffer a rule's fast pattern can end, read from the
// inspection list: an absolute content ends by offset + depth (startswith
// included); a relative one by the previous match's latest end + distance +
// within; a pcre anchored at the buffer's start (^ without /m, or /A) with
// bounded repetition by its longest match. A packet prefilter then looks for
// the pattern in that many bytes only (detect/packet-prefilter.ts), where
// the whole payload of a 64 KB frame was scanned before.
import type { ContentItem, Item } from './rule.ts';

/** The latest end of `fast` (an item of `items`) in its buffer, or -1: anywhere. */
export function fastEnd(items: readonly Item[], fast: ContentItem): number {
  /** The latest end of the previous match (the relative cursor), or -1: unknown. */
  let prev = 0;
  for (const it of items) {
    let end = -1;
    switch (it.k) {
      case 'content': {
        if (it.vars.depth !== undefined || it.vars.offset !== undefined || it.vars.distance !== undefined || it.vars.within !== undefined) end = -1;
        else if (it.hasDistance || it.hasWithin) end = prev >= 0 && it.hasWithin ? prev + Math.max(0, it.distance) + it.within : -1;
        else end = it.hasDepth ? it.offset + it.depth : -1;
        if (it === fast) return end;
        if (!it.neg) prev = end;
        break;
      }
      case 'pcre': {
        if (it.spec.negated) break;
        const len = it.spec.anchoredMaxLen;
        prev = len < 0 ? -1 : it.spec.relative ? (prev >= 0 ? prev + len : -1) : len;
        break;
      }
      case 'byte_jump': case 'byte_extract': prev = -1; break;
      default: break; // byte_test, isdataat, bsize: the cursor stays
    }
  }
  return -1;
}
