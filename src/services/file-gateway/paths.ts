// Share paths: what `microgate publish add PATH` accepts. A path names one file
// relative to the share's root; it is checked and normalised once, when it is
// published, and requests never carry a path at all (only a publication's ID),
// so nothing a client sends is ever turned into a storage path.

const CONTROL = /[\u0000-\u001f\u007f]/;
export const MAX_PATH_BYTES = 4096;
export const MAX_SEGMENT_BYTES = 255;

/**
 * "docs/report.pdf" or "/docs/report.pdf" -> "docs/report.pdf". Throws an
 * Error saying what is wrong for: empty paths, empty segments ("a//b", a
 * trailing "/"), "." and ".." segments, backslashes, control characters,
 * over-long segments or paths.
 */
export function normalizeSharePath(input: string): string {
  if (typeof input !== 'string' || input === '') throw new Error('the path is empty');
  const p = input.startsWith('/') ? input.slice(1) : input;
  if (p === '') throw new Error('the path names the share itself; publish a file');
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) throw new Error(`the path is longer than ${MAX_PATH_BYTES} bytes`);
  if (p.includes('\\')) throw new Error('the path contains a backslash; use "/" between folders');
  if (CONTROL.test(p)) throw new Error('the path contains a control character');
  const segs = p.split('/');
  for (const s of segs) {
    if (s === '') throw new Error(p.endsWith('/') ? 'the path ends in "/": publish a file, not a folder' : 'the path has an empty segment ("//")');
    if (s === '.' || s === '..') throw new Error(`the path has a "${s}" segment; give the path from the share's root without "." or ".."`);
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) throw new Error(`a segment of the path is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return segs.join('/');
}

/** The segments of a normalised share path. */
export function pathSegments(path: string): string[] {
  return path.split('/');
}

/** The last segment: the file's name. */
export function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

/** A normalised share path appended to a base URL ending in "/", every segment percent-encoded. */
export function shareUrl(base: string, path: string): string {
  return base + pathSegments(path).map(encodeURIComponent).join('/');
}
