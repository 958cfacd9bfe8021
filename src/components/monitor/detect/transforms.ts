// Suricata's buffer transforms: a rule's sticky buffer is rewritten by its
// transforms, in order, before its content/pcre/bsize items see it. They run
// only on application buffers (DNS, TLS, HTTP), never on a packet's payload,
// so the per-packet path of other flows never reaches them.
import { createHash } from 'node:crypto';

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** One transform applied to a buffer (a new buffer; the input is never changed). */
export function applyTransform(name: string, b: Uint8Array): Uint8Array {
  switch (name) {
    case 'dotprefix': {
      const out = new Uint8Array(b.length + 1);
      out[0] = 0x2e;
      out.set(b, 1);
      return out;
    }
    case 'to_lowercase': return b.map((c) => (c >= 0x41 && c <= 0x5a ? c + 32 : c));
    case 'to_uppercase': return b.map((c) => (c >= 0x61 && c <= 0x7a ? c - 32 : c));
    case 'strip_whitespace': return b.filter((c) => !isSpace(c));
    case 'compress_whitespace': {
      const out: number[] = [];
      for (let i = 0; i < b.length; i++) {
        if (isSpace(b[i])) {
          if (i > 0 && isSpace(b[i - 1])) continue;
          out.push(0x20);
        } else out.push(b[i]);
      }
      return Uint8Array.from(out);
    }
    case 'to_md5': return new Uint8Array(createHash('md5').update(b).digest());
    case 'to_sha1': return new Uint8Array(createHash('sha1').update(b).digest());
    case 'to_sha256': return new Uint8Array(createHash('sha256').update(b).digest());
    case 'url_decode': {
      // %XX and '+' (as Suricata's url_decode); a bad escape stays as it is.
      const out = new Uint8Array(b.length);
      let n = 0;
      for (let i = 0; i < b.length; i++) {
        const c = b[i];
        if (c === 0x25 && i + 2 < b.length) {
          const h = hexVal(b[i + 1]);
          const l = hexVal(b[i + 2]);
          if (h >= 0 && l >= 0) {
            out[n++] = (h << 4) | l;
            i += 2;
            continue;
          }
        }
        out[n++] = c === 0x2b ? 0x20 : c;
      }
      return out.slice(0, n);
    }
    default: return b;
  }
}

export function applyTransforms(names: readonly string[], b: Uint8Array): Uint8Array {
  let out = b;
  for (const n of names) out = applyTransform(n, out);
  return out;
}
