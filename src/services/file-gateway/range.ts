// HTTP conditional and range requests for downloads (RFC 9110): one byte
// range ("bytes=a-b", "bytes=a-", "bytes=-n"); several ranges are answered
// with the whole file (allowed, and it keeps multipart out of the gateway);
// If-None-Match against our ETag; If-Range decides whether Range applies.
import { createHash } from 'node:crypto';

export type RangeResult =
  | { kind: 'none' }
  | { kind: 'range'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/** Parse a Range header for a file of `size` bytes (end inclusive). Malformed or multiple ranges: none. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (m === null || (m[1] === '' && m[2] === '')) return { kind: 'none' };
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? Infinity : Number(m[2]);
  if (end < start) return { kind: 'none' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end: Math.min(end, size - 1) };
}

/** Our strong ETag of a publication's current content: opaque (says nothing of the storage's). */
export function makeEtag(publicationId: string, storageValidator: string, size: number): string {
  const h = createHash('sha256').update(`${publicationId}\0${storageValidator}\0${size}`).digest('base64url').slice(0, 27);
  return `"${h}"`;
}

function etagList(header: string): string[] {
  return header.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** If-None-Match (weak comparison): true when `etag` matches, i.e. answer 304. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const opaque = (t: string): string => (t.startsWith('W/') ? t.slice(2) : t);
  return etagList(header).some((t) => t === '*' || opaque(t) === opaque(etag));
}

/** If-Range: Range applies only when the validator matches exactly (strong ETag or the exact Last-Modified date). */
export function ifRangeAllows(header: string | undefined, etag: string, lastModified: string | undefined): boolean {
  if (header === undefined) return true;
  const v = header.trim();
  if (v.startsWith('"')) return v === etag;
  if (v.startsWith('W/')) return false;
  return lastModified !== undefined && v === lastModified;
}
